//! Hostile targets on 127.0.0.1:0: every run ends within its timeout (+ 50 ms of scheduling
//! slack) with the reason that names what the target did. The bound is a correctness bound
//! (a probe must never hang past its deadline), with a generous 1 s timeout so it is stable.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use lienthong::probe::{BuildContext, DnsSpec, Outcome, ProbeSpec, Reason};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const TIMEOUT: Duration = Duration::from_secs(1);
/// Wall-clock slack over the probe's own timeout: enough for timer and scheduling delays on a
/// loaded 2-core CI box, far below what a probe that hangs would take.
const SLACK: Duration = Duration::from_millis(500);

/// Runs `spec` once and checks the reason and the deadline.
async fn expect(name: &str, spec: ProbeSpec, reason: Reason) -> Outcome {
    let probe = spec.build(&BuildContext::default()).expect("build");
    let started = Instant::now();
    let outcome = probe.run(TIMEOUT).await;
    let took = started.elapsed();
    eprintln!("{name}: {:?} in {took:?}", outcome.reason());
    assert_eq!(outcome.reason(), Some(reason), "{name}: {outcome:?}");
    assert!(
        took < TIMEOUT + SLACK,
        "{name}: took {took:?}, over timeout {TIMEOUT:?} + {SLACK:?}"
    );
    outcome
}

fn http(url: String, extra: serde_json::Value) -> ProbeSpec {
    let mut v = json!({ "url": url });
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    ProbeSpec::Http(serde_json::from_value(v).expect("http spec"))
}

/// Reads until the end of the request head (or the peer goes away).
async fn read_head(s: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drip_fed_headers_time_out() {
    let addr = common::serve_raw(|mut s| async move {
        read_head(&mut s).await;
        for b in b"HTTP/1.1 200 OK\r\nX-Slow: ".iter().cycle() {
            if s.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    expect(
        "drip",
        http(format!("http://{addr}/"), json!({})),
        Reason::Timeout,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_tls_handshake_times_out() {
    let addr = common::silent_server().await;
    let o = expect(
        "stalled tls",
        http(format!("https://{addr}/"), json!({})),
        Reason::Timeout,
    )
    .await;
    let msg = o.failure.unwrap().message;
    assert!(msg.to_lowercase().contains("tls"), "phase named: {msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_slow_body_times_out() {
    let addr = common::serve_raw(|mut s| async move {
        read_head(&mut s).await;
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        if s.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        while s.write_all(b"4\r\nabcd\r\n").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let o = expect(
        "endless body",
        http(format!("http://{addr}/"), json!({})),
        Reason::Timeout,
    )
    .await;
    assert!(o.failure.unwrap().message.contains("body bytes received"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_fast_body_is_cut_at_the_cap() {
    let addr = common::serve_raw(|mut s| async move {
        read_head(&mut s).await;
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        if s.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let mut chunk = b"10000\r\n".to_vec();
        chunk.extend(std::iter::repeat_n(b'x', 0x10000));
        chunk.extend_from_slice(b"\r\n");
        while s.write_all(&chunk).await.is_ok() {}
    })
    .await;
    let spec = http(
        format!("http://{addr}/"),
        json!({ "body_max_bytes": 262_144 }),
    );
    expect("huge body", spec, Reason::BodyTooLarge).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_declared_body_fails_before_reading() {
    let addr = common::serve_raw(|mut s| async move {
        read_head(&mut s).await;
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n";
        let _ = s.write_all(head.as_bytes()).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    expect(
        "declared huge body",
        http(format!("http://{addr}/"), json!({})),
        Reason::BodyTooLarge,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_informational_heads_are_capped() {
    let addr = common::serve_raw(|mut s| async move {
        read_head(&mut s).await;
        let heads = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(64);
        while s.write_all(&heads).await.is_ok() {}
    })
    .await;
    let o = expect(
        "endless 1xx",
        http(format!("http://{addr}/"), json!({})),
        Reason::Protocol,
    )
    .await;
    assert!(o.duration < TIMEOUT / 2, "capped, not timed out: {o:?}");
    let msg = o.failure.unwrap().message;
    assert!(msg.contains("informational (1xx)"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn few_informational_heads_are_fine() {
    let addr = common::serve_raw(|mut s| async move {
        read_head(&mut s).await;
        let reply =
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n\
                     HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let _ = s.write_all(reply.as_bytes()).await;
    })
    .await;
    let probe = http(format!("http://{addr}/"), json!({}))
        .build(&BuildContext::default())
        .unwrap();
    let o = probe.run(TIMEOUT).await;
    assert!(o.success, "{o:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_hole_times_out() {
    let addr = common::silent_server().await;
    expect(
        "black hole",
        http(format!("http://{addr}/"), json!({})),
        Reason::Timeout,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_tls_is_a_tls_failure() {
    let addr = common::serve_raw(|mut s| async move {
        let junk: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
        let _ = s.write_all(&junk).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    expect(
        "garbage tls",
        http(format!("https://{addr}/"), json!({})),
        Reason::Tls,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_loop_stops_at_the_limit() {
    let addr = common::serve_raw(|mut s| async move {
        read_head(&mut s).await;
        let reply = "HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n";
        let _ = s.write_all(reply.as_bytes()).await;
    })
    .await;
    let o = expect(
        "redirect loop",
        http(format!("http://{addr}/"), json!({ "max_redirects": 5 })),
        Reason::HttpStatus,
    )
    .await;
    assert!(o.failure.unwrap().message.contains("max_redirects"));
}

// --- DNS ---------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Dns {
    Silent,
    Truncated,
    WrongQuestion,
}

async fn dns_server(mode: Dns) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut r = Message::new();
            r.set_id(q.id())
                .set_message_type(MessageType::Response)
                .set_op_code(OpCode::Query);
            match mode {
                Dns::Silent => continue,
                Dns::Truncated => {
                    r.set_truncated(true).add_queries(q.queries().to_vec());
                }
                Dns::WrongQuestion => {
                    let other = Name::from_ascii("other.example.test.").unwrap();
                    r.add_query(Query::query(other, RecordType::A));
                }
            }
            let _ = sock.send_to(&r.to_vec().unwrap(), peer).await;
        }
    });
    addr
}

fn dns(server: SocketAddr) -> ProbeSpec {
    ProbeSpec::Dns(DnsSpec {
        server: server.to_string(),
        query: "www.example.test".into(),
        record: "A".into(),
        expect_rcode: "NOERROR".into(),
        expect_answers: vec![],
        min_answers: 0,
        recursion_desired: true,
    })
}

#[tokio::test]
async fn silent_dns_times_out() {
    let server = dns_server(Dns::Silent).await;
    expect("silent dns", dns(server), Reason::Timeout).await;
}

#[tokio::test]
async fn truncated_dns_fails() {
    let server = dns_server(Dns::Truncated).await;
    let o = expect("truncated dns", dns(server), Reason::DnsAnswer).await;
    assert!(o.failure.unwrap().message.contains("truncated"));
}

#[tokio::test]
async fn wrong_question_dns_fails() {
    let server = dns_server(Dns::WrongQuestion).await;
    let o = expect("wrong question dns", dns(server), Reason::Protocol).await;
    assert!(o.failure.unwrap().message.contains("another question"));
}
