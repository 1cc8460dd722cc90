//! DNS probe against an in-process UDP responder on 127.0.0.1 built with hickory-proto.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use lienthong::probe::dns::{parse_rcode, rcode_name};
use lienthong::probe::{BuildError, Details, DnsDetails, DnsProbe, DnsSpec, Outcome, Reason};
use tokio::net::UdpSocket;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Answers A records from the table, NXDOMAIN for unknown names.
    Table,
    Silent,
    /// Our id followed by junk: claims to be the response but is not DNS.
    Garbage,
    /// A datagram with the wrong id, one too short to be DNS, then the real answer.
    NoiseThenAnswer,
    /// The table answer with TC set.
    Truncated,
    /// Only answers with the wrong id.
    WrongIdOnly,
}

fn table(name: &str) -> Option<Vec<Ipv4Addr>> {
    match name {
        "www.example.test." => Some(vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)]),
        "one.example.test." => Some(vec![Ipv4Addr::new(192, 0, 2, 7)]),
        _ => None,
    }
}

fn answer(query: &Message, mode: Mode) -> Message {
    let mut r = Message::new();
    r.set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .set_truncated(mode == Mode::Truncated)
        .add_queries(query.queries().to_vec());
    let Some(q) = query.query() else {
        r.set_response_code(ResponseCode::FormErr);
        return r;
    };
    match table(&q.name().to_lowercase().to_string()) {
        Some(ips) if q.query_type() == RecordType::A => {
            for ip in ips {
                r.add_answer(Record::from_rdata(q.name().clone(), 60, RData::A(A(ip))));
            }
        }
        Some(_) => {}
        None => {
            r.set_response_code(ResponseCode::NXDomain);
        }
    }
    r
}

async fn responder(mode: Mode) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                continue;
            };
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let reply = answer(&query, mode).to_vec().unwrap();
            match mode {
                Mode::Silent => {}
                Mode::Garbage => {
                    let mut junk = query.id().to_be_bytes().to_vec();
                    junk.extend_from_slice(&[0xff; 5]);
                    let _ = sock.send_to(&junk, peer).await;
                }
                Mode::NoiseThenAnswer => {
                    let mut stale = reply.clone();
                    stale[0] ^= 0xff;
                    let _ = sock.send_to(&stale, peer).await;
                    let _ = sock.send_to(&[0x01], peer).await;
                    let _ = sock.send_to(&reply, peer).await;
                }
                Mode::WrongIdOnly => {
                    let mut stale = reply.clone();
                    stale[1] ^= 0xff;
                    let _ = sock.send_to(&stale, peer).await;
                }
                Mode::Table | Mode::Truncated => {
                    let _ = sock.send_to(&reply, peer).await;
                }
            }
        }
    });
    addr
}

fn spec(server: SocketAddr, query: &str) -> DnsSpec {
    DnsSpec {
        server: server.to_string(),
        query: query.into(),
        record: "A".into(),
        expect_rcode: "NOERROR".into(),
        expect_answers: vec![],
        min_answers: 0,
        recursion_desired: true,
    }
}

async fn run(spec: &DnsSpec, timeout: Duration) -> Outcome {
    DnsProbe::build(spec)
        .expect("valid spec")
        .run(timeout)
        .await
}

fn details(o: &Outcome) -> &DnsDetails {
    match &o.details {
        Details::Dns(d) => d,
        other => panic!("expected dns details, got {other:?}"),
    }
}

const T: Duration = Duration::from_secs(2);

#[tokio::test]
async fn expected_answer_succeeds() {
    let server = responder(Mode::Table).await;
    let mut s = spec(server, "www.example.test");
    s.expect_answers = vec![r"^10\.0\.0\.1$".into(), r"^10\.0\.0\.2$".into()];
    s.min_answers = 2;
    let o = run(&s, T).await;
    assert!(o.success, "{o:?}");
    let d = details(&o);
    assert_eq!(d.rcode.as_deref(), Some("NOERROR"));
    assert_eq!(d.answers, vec!["10.0.0.1", "10.0.0.2"]);
    assert_eq!(d.answer_rrs, 2);
    assert_eq!(d.authority_rrs, 0);
    assert!(!d.truncated);
    assert!(d.connect.is_some() && d.request.is_some());
}

#[tokio::test]
async fn answer_mismatch_is_dns_answer() {
    let server = responder(Mode::Table).await;
    let mut s = spec(server, "one.example.test.");
    s.expect_answers = vec![r"^192\.0\.2\.7$".into(), r"^10\.9\.".into()];
    let o = run(&s, T).await;
    assert_eq!(o.reason(), Some(Reason::DnsAnswer), "{o:?}");
    let msg = &o.failure.as_ref().unwrap().message;
    assert!(
        msg.contains(r"10\.9\.") && msg.contains("192.0.2.7"),
        "{msg}"
    );

    let mut s = spec(server, "one.example.test.");
    s.min_answers = 2;
    let o = run(&s, T).await;
    assert_eq!(o.reason(), Some(Reason::DnsAnswer), "{o:?}");
    assert_eq!(details(&o).answers, vec!["192.0.2.7"]);
}

#[tokio::test]
async fn nxdomain_when_noerror_expected_is_dns_rcode() {
    let server = responder(Mode::Table).await;
    let o = run(&spec(server, "missing.example.test."), T).await;
    assert_eq!(o.reason(), Some(Reason::DnsRcode), "{o:?}");
    assert_eq!(details(&o).rcode.as_deref(), Some("NXDOMAIN"));
    let msg = &o.failure.as_ref().unwrap().message;
    assert!(
        msg.contains("expected rcode NOERROR, got NXDOMAIN"),
        "{msg}"
    );
}

#[tokio::test]
async fn nxdomain_expected_succeeds() {
    let server = responder(Mode::Table).await;
    let mut s = spec(server, "missing.example.test.");
    s.expect_rcode = "nxdomain".into();
    let o = run(&s, T).await;
    assert!(o.success, "{o:?}");
    assert!(details(&o).answers.is_empty());
}

#[tokio::test]
async fn silent_server_times_out() {
    let server = responder(Mode::Silent).await;
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let o = run(&spec(server, "www.example.test."), timeout).await;
    assert_eq!(o.reason(), Some(Reason::Timeout), "{o:?}");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= timeout && elapsed < timeout + Duration::from_millis(700),
        "{elapsed:?}"
    );
    assert!(details(&o).rcode.is_none());
}

#[tokio::test]
async fn garbage_response_is_protocol() {
    let server = responder(Mode::Garbage).await;
    let started = Instant::now();
    let o = run(&spec(server, "www.example.test."), T).await;
    assert_eq!(o.reason(), Some(Reason::Protocol), "{o:?}");
    // Fails on the datagram itself, not at the timeout.
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn foreign_datagrams_are_skipped() {
    let server = responder(Mode::NoiseThenAnswer).await;
    let o = run(&spec(server, "www.example.test."), T).await;
    assert!(o.success, "{o:?}");
    assert_eq!(details(&o).answers.len(), 2);
}

#[tokio::test]
async fn only_wrong_ids_until_timeout_is_protocol() {
    let server = responder(Mode::WrongIdOnly).await;
    let o = run(
        &spec(server, "www.example.test."),
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(o.reason(), Some(Reason::Protocol), "{o:?}");
    assert!(o.failure.as_ref().unwrap().message.contains("wrong id"));
}

#[tokio::test]
async fn truncated_response_is_a_failure() {
    let server = responder(Mode::Truncated).await;
    let o = run(&spec(server, "www.example.test."), T).await;
    assert_eq!(o.reason(), Some(Reason::DnsAnswer), "{o:?}");
    assert!(
        o.failure.as_ref().unwrap().message.contains("TC bit"),
        "{o:?}"
    );
    assert!(details(&o).truncated);
}

#[tokio::test]
async fn closed_port_is_connect_refused() {
    // The discard port, bound by nobody here (a freed ephemeral port could be re-taken).
    let server: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let o = run(&spec(server, "www.example.test."), T).await;
    assert_eq!(o.reason(), Some(Reason::ConnectRefused), "{o:?}");
}

#[test]
fn build_validates_the_spec() {
    let server: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    let invalid_field = |s: &DnsSpec| match DnsProbe::build(s) {
        Err(BuildError::Invalid { field, .. }) => field,
        other => panic!("expected an invalid spec, got {other:?}"),
    };
    let mut s = spec(server, "www.example.test.");
    s.record = "BOGUS".into();
    assert_eq!(invalid_field(&s), "record");
    s.record = "AXFR".into();
    assert_eq!(invalid_field(&s), "record");

    let mut s = spec(server, "www.example.test.");
    s.expect_rcode = "MAYBE".into();
    assert_eq!(invalid_field(&s), "expect_rcode");

    let mut s = spec(server, "www.example.test.");
    s.expect_answers = vec!["(".into()];
    assert_eq!(invalid_field(&s), "expect_answers");

    let mut s = spec(server, "www.example.test.");
    s.server = "dns.example.test:53".into();
    assert_eq!(invalid_field(&s), "server");

    // Lower-case types, a bare IP (port 53) and bracketed IPv6 are fine.
    let mut s = spec(server, "www.example.test.");
    s.record = "aaaa".into();
    for addr in ["127.0.0.1", "[::1]", "::1", "[::1]:5353"] {
        s.server = addr.into();
        assert!(DnsProbe::build(&s).is_ok(), "{addr}");
    }
}

#[test]
fn rcode_names() {
    assert_eq!(parse_rcode("NoError"), Some(0));
    assert_eq!(parse_rcode("nxdomain"), Some(3));
    assert_eq!(parse_rcode("SERVFAIL"), Some(2));
    assert_eq!(parse_rcode("5"), Some(5));
    assert_eq!(parse_rcode("nope"), None);
    assert_eq!(rcode_name(3), "NXDOMAIN");
    assert_eq!(rcode_name(16), "BADVERS");
    assert_eq!(rcode_name(42), "RCODE42");
}
