//! The built-in simulator started from the shipped probes.toml, checked with plain sockets (and,
//! at the end, with the real probes). Every address used is in 127.0.0.0/8.
//!
//! The simulator binds the fixed addresses of probes.toml, so the tests take turns (LOCK).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use lienthong::config::{CheckId, Config, Inventory};
use lienthong::probe::{Details, ProbeSpec, Reason};
use lienthong::simulator::{self, FaultKind, Scenario, Simulator};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Mutex;
use tokio::time::{timeout, Instant};

static LOCK: Mutex<()> = Mutex::const_new(());

/// Faults on from the start and for the whole run (except the test of recovery).
const LONG: &str = r#"
cycle = "1h"
udp_echo_port = 17907

[[fault]]
at = "0s"
duration = "1h"
kind = "link_down"
site = "phuong-ben-thanh"

[[fault]]
at = "0s"
duration = "1h"
kind = "http_status"
service = "thu-tuc-hanh-chinh"
status = 503

[[fault]]
at = "0s"
duration = "1h"
kind = "slow"
site = "phuong-sai-gon"
check = "endpoint"
delay = "700ms"

[[fault]]
at = "0s"
duration = "1h"
kind = "tcp_down"
service = "hoi-nghi-truyen-hinh"

[[fault]]
at = "0s"
duration = "1h"
kind = "link_latency"
site = "phuong-tan-dinh"
delay = "80ms"
"#;

/// A link_down that ends after 6 s (room for a slow set-up before the checks inside it).
const SHORT: &str = r#"
cycle = "1h"
udp_echo_port = 17907

[[fault]]
at = "0s"
duration = "6s"
kind = "link_down"
site = "phuong-ben-thanh"
"#;

fn inventory() -> Inventory {
    let cfg = Config::load(Path::new("probes.toml")).expect("shipped probes.toml loads");
    (*cfg.inventory).clone()
}

/// The shipped probes.toml with the demo's simulated ward agents, as `lienthong demo` runs it.
fn inventory_with_demo_agents() -> Inventory {
    let text = std::fs::read_to_string("probes.toml").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let agents = lienthong::demo::DemoAgents::new(dir.path(), &inventory());
    let cfg = Config::from_str(
        Path::new("probes.toml"),
        &format!("{text}\n{}", agents.toml()),
    )
    .expect("probes.toml with the demo agents loads");
    (*cfg.inventory).clone()
}

/// The status of a GET, 0 when the connection is closed or reset without an answer.
async fn status_or_zero(target: &str, path: &str) -> u16 {
    let Ok(mut s) = TcpStream::connect(addr(target)).await else {
        return 0;
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return 0;
    }
    let mut raw = Vec::new();
    let _ = timeout(Duration::from_secs(5), s.read_to_end(&mut raw)).await;
    String::from_utf8_lossy(&raw)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

async fn start(text: &str) -> (Simulator, Inventory, tempfile::TempDir) {
    let inv = inventory();
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = Scenario::parse(text).expect("test scenario parses");
    let sim = Simulator::start(&inv, scenario, dir.path())
        .await
        .expect("simulator starts");
    (sim, inv, dir)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

/// Sends `n` echo datagrams one after the other; returns the RTT of each answered one.
async fn echo_rtts(target: SocketAddr, n: usize) -> Vec<Duration> {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    sock.connect(target).await.expect("connect");
    let mut rtts = Vec::new();
    let mut buf = [0u8; 64];
    for i in 0..n {
        let msg = format!("lienthong-test-{i}");
        let t = Instant::now();
        sock.send(msg.as_bytes()).await.expect("send");
        let deadline = t + Duration::from_millis(300);
        while let Ok(Ok(k)) = tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            if &buf[..k] == msg.as_bytes() {
                rtts.push(t.elapsed());
                break;
            }
        }
    }
    rtts
}

/// A minimal HTTP/1.1 GET over any stream; returns (status, body).
async fn get_on<S>(mut s: S, host: &str, path: &str) -> (u16, String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write request");
    let mut raw = Vec::new();
    let _ = timeout(Duration::from_secs(5), s.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

async fn get(target: &str, path: &str) -> (u16, String) {
    let s = TcpStream::connect(addr(target)).await.expect("connect");
    get_on(s, target, path).await
}

fn refused(r: std::io::Result<TcpStream>) -> bool {
    matches!(r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
}

#[tokio::test]
async fn shipped_example_is_the_default_demo() {
    let file = Scenario::load(Path::new("examples/scenario.toml")).expect("example parses");
    assert_eq!(file, Scenario::default_demo());
    // Its `path_down` needs the demo's simulated ward agents.
    let inv = inventory_with_demo_agents();
    assert!(
        file.unknown_targets(&inv).is_empty(),
        "{:?}",
        file.unknown_targets(&inv)
    );
    let first = file.faults.iter().map(|f| f.at).min().unwrap_or_default();
    assert!(first <= Duration::from_secs(30), "first fault within 30 s");
}

#[tokio::test]
async fn links_are_emulated_in_udp_echo() {
    let _g = LOCK.lock().await;
    let (sim, _inv, _dir) = start(LONG).await;
    assert_eq!(sim.udp_echo_port(), 17907);

    // Côn Đảo (island): ≥ 35 ms each way of the emulated link; 3 % loss at most drops a few.
    let island = echo_rtts(addr("127.10.0.168:17907"), 12).await;
    assert!(island.len() >= 8, "island echo mostly answered: {island:?}");
    assert!(
        island.iter().all(|r| *r >= Duration::from_millis(30)),
        "{island:?}"
    );
    // Long Sơn too (island class from `island = true`).
    let long_son = echo_rtts(addr("127.10.0.143:17907"), 3).await;
    assert!(
        long_son.iter().all(|r| *r >= Duration::from_millis(30)),
        "{long_son:?}"
    );

    // A mainland ward: fast.
    let mainland = echo_rtts(addr("127.10.0.2:17907"), 5).await;
    assert_eq!(mainland.len(), 5);
    let avg = mainland.iter().sum::<Duration>() / 5;
    assert!(avg < Duration::from_millis(30), "{mainland:?}");

    // link_latency adds its delay.
    let slowed = echo_rtts(addr("127.10.0.1:17907"), 3).await;
    assert_eq!(slowed.len(), 3);
    assert!(
        slowed.iter().all(|r| *r >= Duration::from_millis(80)),
        "{slowed:?}"
    );

    // link_down: the echo is silent.
    assert!(echo_rtts(addr("127.10.0.3:17907"), 2).await.is_empty());

    let active = sim.active_faults();
    assert_eq!(active.len(), 5, "{active:?}");
    assert!(active
        .iter()
        .any(|f| f.kind == FaultKind::LinkDown && f.target == "site/phuong-ben-thanh"));
    sim.stop().await;
}

#[tokio::test]
async fn link_down_refuses_connections_then_recovers() {
    let _g = LOCK.lock().await;
    let t0 = Instant::now();
    let (sim, _inv, _dir) = start(SHORT).await;

    // While the link is down: endpoint and video ports refuse, echo is silent.
    assert!(
        refused(TcpStream::connect(addr("127.10.0.3:18080")).await),
        "endpoint refused"
    );
    assert!(
        refused(TcpStream::connect(addr("127.10.0.3:15060")).await),
        "video refused"
    );
    assert!(echo_rtts(addr("127.10.0.3:17907"), 1).await.is_empty());
    // The neighbour is unaffected.
    assert_eq!(get("127.10.0.2:18080", "/healthz").await.0, 200);
    assert_eq!(sim.active_faults().len(), 1);
    assert!(
        t0.elapsed() < Duration::from_secs(6),
        "checks ran inside the fault"
    );

    // After the fault: listeners are bound again.
    tokio::time::sleep_until(t0 + Duration::from_millis(6300)).await;
    let mut ok = false;
    for _ in 0..20 {
        if TcpStream::connect(addr("127.10.0.3:18080")).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "endpoint accepts again after the fault");
    let (status, body) = get("127.10.0.3:18080", "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "{\"status\":\"ok\"}"));
    assert!(
        TcpStream::connect(addr("127.10.0.3:15060")).await.is_ok(),
        "video accepts again"
    );
    assert_eq!(echo_rtts(addr("127.10.0.3:17907"), 2).await.len(), 2);
    assert!(sim.active_faults().is_empty());
    sim.stop().await;
}

#[tokio::test]
async fn http_tcp_dns_and_faults() {
    let _g = LOCK.lock().await;
    let (sim, _inv, _dir) = start(LONG).await;

    // Normal site endpoint and shared services.
    assert_eq!(
        get("127.10.0.50:18080", "/healthz").await,
        (200, "{\"status\":\"ok\"}".into())
    );
    let (status, body) = get("127.20.0.2:18080", "/").await;
    assert_eq!(status, 200);
    assert!(body.contains("dichvucong"), "{body}");
    assert_eq!(get("127.20.0.5:18080", "/status").await.0, 200);
    assert_eq!(get("127.20.0.5:18080", "/nothing").await.0, 404);

    // http_status 503 on the administrative-procedures system (portal and API).
    assert_eq!(get("127.20.0.1:18080", "/").await.0, 503);
    assert_eq!(get("127.20.0.1:18080", "/api/health").await.0, 503);

    // slow: the endpoint of phuong-sai-gon answers after the delay.
    let t = Instant::now();
    assert_eq!(get("127.10.0.2:18080", "/healthz").await.0, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(700),
        "{:?}",
        t.elapsed()
    );

    // TCP banner (SMTP of the e-mail service) and a video point.
    for target in ["127.20.0.4:12525", "127.10.0.7:15060"] {
        let mut s = TcpStream::connect(addr(target)).await.expect("connect");
        let mut buf = [0u8; 64];
        let n = timeout(Duration::from_secs(2), s.read(&mut buf))
            .await
            .expect("banner in time")
            .expect("read");
        assert_eq!(&buf[..n], b"220 lienthong-sim ESMTP\r\n");
    }
    // tcp_down: the bridge's TCP listener is closed, its HTTPS portal is not.
    assert!(refused(TcpStream::connect(addr("127.20.0.3:15060")).await));
    assert!(TcpStream::connect(addr("127.20.0.3:18443")).await.is_ok());

    // DNS: the check's name → 127.20.0.1, other names NXDOMAIN.
    let dns = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    dns.connect(addr("127.20.0.6:15353"))
        .await
        .expect("connect");
    for (name, rtype, rcode, answer) in [
        (
            "dichvucong.hochiminhcity.gov.vn.",
            RecordType::A,
            ResponseCode::NoError,
            Some("127.20.0.1"),
        ),
        (
            "DichVuCong.HoChiMinhCity.gov.vn.",
            RecordType::A,
            ResponseCode::NoError,
            Some("127.20.0.1"),
        ),
        (
            "dichvucong.hochiminhcity.gov.vn.",
            RecordType::AAAA,
            ResponseCode::NoError,
            None,
        ),
        (
            "nowhere.example.",
            RecordType::A,
            ResponseCode::NXDomain,
            None,
        ),
    ] {
        let mut q = Message::new();
        q.set_id(4242)
            .set_message_type(MessageType::Query)
            .set_recursion_desired(true);
        q.add_query(Query::query(Name::from_ascii(name).expect("name"), rtype));
        dns.send(&q.to_vec().expect("encode")).await.expect("send");
        let mut buf = [0u8; 512];
        let n = timeout(Duration::from_secs(2), dns.recv(&mut buf))
            .await
            .expect("DNS answer in time")
            .expect("recv");
        let r = Message::from_vec(&buf[..n]).expect("decode");
        assert_eq!(r.id(), 4242);
        assert_eq!(r.response_code(), rcode, "{name} {rtype}");
        let got: Vec<String> = r
            .answers()
            .iter()
            .filter_map(|rr| match rr.data() {
                RData::A(a) => Some(a.0.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(
            got,
            answer.map(|a| vec![a.to_string()]).unwrap_or_default(),
            "{name} {rtype}"
        );
    }
    // Garbage is ignored, the responder keeps serving.
    dns.send(b"\x00garbage").await.expect("send");

    // HTTPS with the demo CA; the leaf expires in about 10 days.
    let roots: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(sim.ca_file())
        .expect("CA file")
        .collect::<Result<_, _>>()
        .expect("CA PEM");
    assert!(sim.ca_file().ends_with("lienthong-demo-ca.pem"));
    let mut store = rustls::RootCertStore::empty();
    for c in roots {
        store.add(c).expect("CA cert");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(store)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(addr("127.20.0.3:18443"))
        .await
        .expect("connect");
    let name = ServerName::try_from("127.20.0.3")
        .expect("ip name")
        .to_owned();
    let tls = connector
        .connect(name, tcp)
        .await
        .expect("TLS verifies against the demo CA");
    let leaf = tls.get_ref().1.peer_certificates().expect("chain")[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).expect("leaf parses");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let left = cert.validity().not_after.timestamp() - now;
    assert!(
        (9 * 86_400..=10 * 86_400 + 60).contains(&left),
        "leaf expires in {left} s"
    );
    let (status, body) = get_on(tls, "127.20.0.3", "/").await;
    assert_eq!(status, 200);
    assert!(body.contains("dichvucong"));

    sim.stop().await;
    // Stopped: the sockets are closed.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(refused(TcpStream::connect(addr("127.10.0.50:18080")).await));
}

#[tokio::test]
async fn targets_outside_loopback_are_skipped() {
    let _g = LOCK.lock().await;
    let mut inv = inventory();
    // Keep two sites and the DNS service; move one target of each kind off loopback.
    inv.checks
        .retain(|c| matches!(c.id.owner(), "phuong-tan-dinh" | "phuong-sai-gon" | "dns"));
    for c in &mut inv.checks {
        if c.id.owner() != "phuong-tan-dinh" && c.id.owner() != "dns" {
            continue;
        }
        match &mut std::sync::Arc::make_mut(c).probe {
            ProbeSpec::Icmp(s) => s.host = "192.0.2.1".into(),
            ProbeSpec::Http(s) => s.url = "https://192.0.2.1:18080/healthz".into(),
            ProbeSpec::Tcp(s) => s.address = "dichvucong.example:15060".into(),
            ProbeSpec::Dns(s) => s.server = "192.0.2.53:53".into(),
            ProbeSpec::Transaction(t) => t
                .steps
                .iter_mut()
                .for_each(|s| s.url = "http://192.0.2.1:18080/login".into()),
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = Scenario::parse("udp_echo_port = 17907").expect("scenario");
    // Binding 192.0.2.1 would fail: start succeeds only because those targets are skipped.
    let sim = Simulator::start(&inv, scenario, dir.path())
        .await
        .expect("starts");
    simulator::overlay(&mut inv, &sim);
    for c in &inv.checks {
        let moved = c.id.owner() != "phuong-sai-gon";
        match &c.probe {
            ProbeSpec::Icmp(s) => assert_eq!(s.udp_echo_port.is_none(), moved, "{}", c.id),
            ProbeSpec::Http(s) => assert!(s.ca_file.is_none(), "{}", c.id),
            _ => {}
        }
    }
    assert!(refused(TcpStream::connect(addr("127.10.0.1:18080")).await));
    assert_eq!(get("127.10.0.2:18080", "/healthz").await.0, 200);
    assert!(sim.active_faults().is_empty());
    sim.stop().await;
}

fn check<'a>(inv: &'a Inventory, key: &str) -> &'a lienthong::config::CheckDef {
    inv.checks
        .iter()
        .find(|c| c.id.key() == key)
        .unwrap_or_else(|| panic!("no check {key}"))
}

#[tokio::test]
async fn real_probes_against_the_simulator() {
    let _g = LOCK.lock().await;
    let (sim, mut inv, _dir) = start(LONG).await;
    simulator::overlay(&mut inv, &sim);
    let link = check(&inv, "site/dac-khu-con-dao/link");
    match &link.probe {
        ProbeSpec::Icmp(s) => assert_eq!(s.udp_echo_port, Some(17907)),
        other => panic!("link is icmp: {other:?}"),
    }
    match &check(&inv, "service/hoi-nghi-truyen-hinh/web").probe {
        ProbeSpec::Http(s) => {
            assert_eq!(s.ca_file.as_deref().map(Path::new), Some(sim.ca_file()))
        }
        other => panic!("web is http: {other:?}"),
    }

    let keys = [
        "site/dac-khu-con-dao/link",
        "site/phuong-tan-dinh/link",
        "site/phuong-ben-thanh/link",
        "site/phuong-ben-thanh/endpoint",
        "site/phuong-ben-thanh/video",
        "site/phuong-sai-gon/endpoint",
        "site/xa-cu-chi/endpoint",
        "service/thu-tuc-hanh-chinh/portal",
        "service/quan-ly-van-ban/web",
        "service/hoi-nghi-truyen-hinh/web",
        "service/hoi-nghi-truyen-hinh/bridge",
        "service/thu-dien-tu/smtp",
        "service/lgsp/api",
        "service/dns/resolve",
    ];
    let runs = keys.iter().map(|k| {
        let c = check(&inv, k).clone();
        async move {
            let probe = c.probe.build(&c.build_context()).expect("probe builds");
            (c.id.clone(), probe.run(c.timeout).await)
        }
    });
    let results: Vec<(CheckId, lienthong::probe::Outcome)> = futures::future::join_all(runs).await;
    let get = |k: &str| {
        &results
            .iter()
            .find(|(id, _)| id.key() == k)
            .expect("result")
            .1
    };
    for k in [
        "site/dac-khu-con-dao/link",
        "site/phuong-tan-dinh/link",
        "site/phuong-sai-gon/endpoint",
        "site/xa-cu-chi/endpoint",
        "service/quan-ly-van-ban/web",
        "service/hoi-nghi-truyen-hinh/web",
        "service/thu-dien-tu/smtp",
        "service/lgsp/api",
        "service/dns/resolve",
    ] {
        assert!(get(k).success, "{k}: {:?}", get(k));
    }
    match &get("site/dac-khu-con-dao/link").details {
        Details::Icmp(d) => assert!(d.rtt_avg.unwrap_or(0.0) >= 0.030, "island RTT {d:?}"),
        other => panic!("{other:?}"),
    }
    match &get("site/phuong-tan-dinh/link").details {
        Details::Icmp(d) => assert!(d.rtt_min.unwrap_or(0.0) >= 0.080, "link_latency {d:?}"),
        other => panic!("{other:?}"),
    }
    match &get("service/hoi-nghi-truyen-hinh/web").details {
        Details::Http(d) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock")
                .as_secs() as i64;
            let left = d.cert_earliest_expiry.expect("expiry") - now;
            assert!(left <= 10 * 86_400 + 60, "near expiry: {left} s");
        }
        other => panic!("{other:?}"),
    }
    assert!(get("site/phuong-sai-gon/endpoint").duration >= Duration::from_millis(700));
    for (k, reason) in [
        ("site/phuong-ben-thanh/endpoint", Reason::ConnectRefused),
        ("site/phuong-ben-thanh/video", Reason::ConnectRefused),
        (
            "service/hoi-nghi-truyen-hinh/bridge",
            Reason::ConnectRefused,
        ),
        ("service/thu-tuc-hanh-chinh/portal", Reason::HttpStatus),
    ] {
        assert_eq!(get(k).reason(), Some(reason), "{k}: {:?}", get(k));
    }
    assert!(!get("site/phuong-ben-thanh/link").success);
    sim.stop().await;
}

/// A ward's own path (the relay its agent-run checks go through): `path_down` closes that
/// ward's connections only; another ward's relay and the direct address keep answering.
#[tokio::test]
async fn path_down_breaks_one_wards_path_only() {
    let _g = LOCK.lock().await;
    let t0 = Instant::now();
    let mut inv = inventory_with_demo_agents();
    let dir = tempfile::tempdir().unwrap();
    let scenario = Scenario::parse(
        r#"
cycle = "1h"
udp_echo_port = 17917
[[fault]]
at = "0s"
duration = "6s"
kind = "path_down"
site = "phuong-cau-ong-lanh"
service = "quan-ly-van-ban"
"#,
    )
    .unwrap();
    let sim = Simulator::start(&inv, scenario, dir.path()).await.unwrap();
    let paths = sim.start_ward_paths(&inv).await.unwrap();
    assert!(!paths.is_empty());
    paths.overlay(&mut inv);
    let via = |ward: &str| -> String {
        let id = CheckId::agent(ward, "quan-ly-van-ban", "web");
        let c = inv.checks.iter().find(|c| c.id == id).expect("agent copy");
        let ProbeSpec::Http(h) = &c.probe else {
            panic!("http check")
        };
        assert!(h.url.starts_with("http://127.0.0.1:"), "{}", h.url);
        h.url["http://".len()..]
            .split('/')
            .next()
            .unwrap()
            .to_string()
    };
    let (broken, fine) = (via("phuong-cau-ong-lanh"), via("phuong-tan-dinh"));
    assert_ne!(broken, fine, "one relay per ward");
    // The data centre's own copy is untouched.
    let own = inv
        .checks
        .iter()
        .find(|c| c.id == CheckId::service("quan-ly-van-ban", "web"))
        .unwrap();
    let ProbeSpec::Http(h) = &own.probe else {
        panic!()
    };
    assert!(h.url.starts_with("http://127.20.0.2:18080/"), "{}", h.url);

    assert_eq!(status_or_zero(&broken, "/api/health").await, 0, "path down");
    assert_eq!(status_or_zero(&fine, "/api/health").await, 200);
    assert_eq!(status_or_zero("127.20.0.2:18080", "/api/health").await, 200);
    assert!(
        t0.elapsed() < Duration::from_secs(6),
        "checked inside the fault"
    );
    tokio::time::sleep_until(t0 + Duration::from_millis(6300)).await;
    assert_eq!(
        status_or_zero(&broken, "/api/health").await,
        200,
        "path back"
    );
    sim.stop().await;
}
