//! TCP probe against real servers on 127.0.0.1.

mod common;

use std::time::{Duration, Instant};

use common::tls::{serve_tls_raw, unix, Ca};
use lienthong::probe::{
    BuildContext, BuildError, Details, Outcome, ProbeSpec, Reason, TcpDetails, TcpSpec,
};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const SLACK: Duration = Duration::from_millis(700);
const FAR: (i32, u8, u8) = (2095, 1, 1);

fn spec(address: &str) -> TcpSpec {
    serde_json::from_value(json!({ "address": address })).expect("spec")
}

fn build(spec: &TcpSpec) -> Result<lienthong::probe::Probe, BuildError> {
    ProbeSpec::Tcp(spec.clone()).build(&BuildContext::default())
}

async fn run(spec: &TcpSpec, timeout: Duration) -> (Outcome, TcpDetails) {
    let outcome = build(spec).expect("build").run(timeout).await;
    let Details::Tcp(details) = outcome.details.clone() else {
        panic!("not tcp details: {:?}", outcome.details)
    };
    (outcome, details)
}

fn assert_reason(outcome: &Outcome, reason: Reason) {
    assert_eq!(outcome.reason(), Some(reason), "outcome: {outcome:?}");
}

/// A line server: answers `PING` with `+PONG`, anything else with `-ERR` and closes.
async fn pong_server() -> std::net::SocketAddr {
    common::serve_raw(|stream| async move {
        let (read, mut write) = stream.into_split();
        let mut line = String::new();
        if BufReader::new(read).read_line(&mut line).await.is_ok() {
            let reply: &[u8] = match line.trim_end() {
                "PING" => b"+PONG\r\n",
                _ => b"-ERR unknown\r\n",
            };
            let _ = write.write_all(reply).await;
        }
    })
    .await
}

#[tokio::test]
async fn connect_only_succeeds() {
    let addr = common::silent_server().await;
    let (outcome, d) = run(&spec(&addr.to_string()), Duration::from_secs(2)).await;
    assert!(outcome.success, "{outcome:?}");
    assert!(d.phases.resolve.is_some() && d.phases.connect.is_some());
    assert_eq!((d.phases.tls, d.phases.processing), (None, None));
    assert!(!d.tls);
}

#[tokio::test]
async fn hostname_address_resolves() {
    let addr = common::silent_server().await;
    let s = spec(&format!("localhost:{}", addr.port()));
    assert!(run(&s, Duration::from_secs(2)).await.0.success);
}

#[tokio::test]
async fn refused_port_is_connect_refused() {
    let addr = common::closed_port().await;
    let (outcome, _) = run(&spec(&addr.to_string()), Duration::from_secs(2)).await;
    assert_reason(&outcome, Reason::ConnectRefused);
}

#[tokio::test]
async fn send_expect_matches() {
    let addr = pong_server().await;
    let mut s = spec(&addr.to_string());
    s.send = Some("PING\r\n".into());
    s.expect = Some(r"^\+PONG\r\n".into());
    let (outcome, d) = run(&s, Duration::from_secs(2)).await;
    assert!(outcome.success, "{outcome:?}");
    assert!(d.phases.processing.is_some());
}

#[tokio::test]
async fn send_expect_mismatch_on_close() {
    let addr = pong_server().await;
    let mut s = spec(&addr.to_string());
    s.send = Some("HELLO\r\n".into());
    s.expect = Some(r"^\+PONG".into());
    let (outcome, _) = run(&s, Duration::from_secs(2)).await;
    assert_reason(&outcome, Reason::ExpectMismatch);
    let msg = &outcome.failure.as_ref().expect("failure").message;
    assert!(msg.contains("closed") && msg.contains("-ERR"), "{msg}");
}

#[tokio::test]
async fn expect_mismatch_at_read_cap() {
    let addr = common::serve_raw(|mut stream| async move {
        let chunk = [b'a'; 4096];
        while stream.write_all(&chunk).await.is_ok() {}
    })
    .await;
    let mut s = spec(&addr.to_string());
    s.expect = Some("zzz".into());
    s.read_max_bytes = 10_000;
    let started = Instant::now();
    let (outcome, _) = run(&s, Duration::from_secs(3)).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_reason(&outcome, Reason::ExpectMismatch);
    let msg = &outcome.failure.as_ref().expect("failure").message;
    assert!(msg.contains("cap") && msg.contains("10000 bytes"), "{msg}");
}

#[tokio::test]
async fn silent_server_with_expect_times_out() {
    let addr = common::silent_server().await;
    let mut s = spec(&addr.to_string());
    s.expect = Some("^220".into());
    let timeout = Duration::from_secs(1);
    let started = Instant::now();
    let (outcome, d) = run(&s, timeout).await;
    assert!(
        started.elapsed() < timeout + SLACK,
        "took {:?}",
        started.elapsed()
    );
    assert_reason(&outcome, Reason::Timeout);
    let msg = &outcome.failure.as_ref().expect("failure").message;
    assert!(msg.contains("processing"), "{msg}");
    assert!(d.phases.connect.is_some() && d.phases.processing.is_some());
}

#[tokio::test]
async fn tls_handshake_with_silent_server_times_out() {
    let addr = common::silent_server().await;
    let mut s = spec(&addr.to_string());
    s.tls = true;
    let timeout = Duration::from_secs(1);
    let started = Instant::now();
    let (outcome, d) = run(&s, timeout).await;
    assert!(
        started.elapsed() < timeout + SLACK,
        "took {:?}",
        started.elapsed()
    );
    assert_reason(&outcome, Reason::Timeout);
    let msg = &outcome.failure.as_ref().expect("failure").message;
    assert!(msg.contains("TLS handshake"), "{msg}");
    assert!(
        d.phases.tls.is_some() && d.cert_earliest_expiry.is_none(),
        "{d:?}"
    );
}

async fn banner_tls_server(leaf: &common::tls::Leaf) -> std::net::SocketAddr {
    serve_tls_raw(leaf, |mut tls| async move {
        let _ = tls.write_all(b"220 ready\r\n").await;
        let _ = tls.flush().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await
}

#[tokio::test]
async fn tls_handshake_ok_with_server_name_override() {
    let ca = Ca::root("lienthong test root");
    let leaf = ca.leaf(&["mail.lienthong.test"], (2019, 1, 1), FAR, &[]);
    let addr = banner_tls_server(&leaf).await;
    let ca_file = ca.pem_file();
    let mut s = spec(&addr.to_string());
    s.tls = true;
    s.ca_file = Some(ca_file.path().to_string_lossy().into_owned());
    s.server_name = Some("mail.lienthong.test".into());
    s.expect = Some("^220 ".into());
    let (outcome, d) = run(&s, Duration::from_secs(2)).await;
    assert!(outcome.success, "{outcome:?}");
    assert!(
        d.tls && d.phases.tls.is_some() && d.phases.processing.is_some(),
        "{d:?}"
    );
    assert_eq!(d.cert_earliest_expiry, Some(unix(FAR)));
}

#[tokio::test]
async fn tls_bad_certificate_fails_with_expiry() {
    let ca = Ca::root("unknown root");
    let leaf = ca.leaf(&["127.0.0.1"], (2019, 1, 1), FAR, &[]);
    let addr = banner_tls_server(&leaf).await;
    let mut s = spec(&addr.to_string());
    s.tls = true;
    let (outcome, d) = run(&s, Duration::from_secs(2)).await;
    assert_reason(&outcome, Reason::CertUntrusted);
    assert_eq!(d.cert_earliest_expiry, Some(unix(FAR)));

    s.tls_verify = false;
    s.expect = Some("^220".into());
    let (outcome, d) = run(&s, Duration::from_secs(2)).await;
    assert!(outcome.success, "{outcome:?}");
    assert_eq!(d.cert_earliest_expiry, Some(unix(FAR)));
}

#[test]
fn build_errors() {
    for bad in ["no-port", "host:notaport", "::1:80", ":80"] {
        assert!(
            matches!(
                build(&spec(bad)),
                Err(BuildError::Invalid {
                    field: "address",
                    ..
                })
            ),
            "{bad}"
        );
    }
    assert!(build(&spec("[::1]:80")).is_ok());
    let mut s = spec("127.0.0.1:1");
    s.expect = Some("(".into());
    assert!(matches!(
        build(&s),
        Err(BuildError::Invalid {
            field: "expect",
            ..
        })
    ));
}
