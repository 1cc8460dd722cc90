//! The Prometheus exposition of `Metrics`, without a network: a fixed set of runs of every probe
//! kind renders to a golden file (names, HELP, TYPE, labels, values), reloads drop the series of
//! removed checks, histograms are cumulative and consistent, failures count per reason, and
//! rendering runs concurrently with recording.
//!
//! Regenerate the golden file with `UPDATE_GOLDEN=1 cargo test --test metrics` (review the diff:
//! a changed line is a changed public interface).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use lienthong::config::{CheckDef, Config, Inventory};
use lienthong::health::{SiteStatus, State};
use lienthong::incidents::{Scope, Severity};
use lienthong::metrics::Metrics;
use lienthong::probe::dns::DnsDetails;
use lienthong::probe::http::HttpDetails;
use lienthong::probe::icmp::IcmpDetails;
use lienthong::probe::tcp::TcpDetails;
use lienthong::probe::{Details, Outcome, Phases, Reason};

/// Two sites (ICMP link, HTTP endpoint, TCP video each) and two services (HTTP, DNS).
fn config(extra_site: bool) -> Inventory {
    let mut text = String::from(
        r#"
[link_class.mainland]
interval = "15s"
timeout = "5s"
packets = 3
pacing = "200ms"
max_loss = 0.4
degraded_loss = 0.05
degraded_rtt = "60ms"
degraded_jitter = "20ms"
degraded_latency = "2s"

[[template]]
name = "link"
role = "link"
title = "Đường truyền mạng"
probe.icmp = { host = "{addr.link}" }

[[template]]
name = "endpoint"
role = "endpoint"
title = "Trung tâm phục vụ hành chính công"
probe.http = { url = "{addr.endpoint}" }

[[template]]
name = "video"
role = "video"
title = "Điểm cầu truyền hình"
probe.tcp = { address = "{addr.video}" }

[[service]]
slug = "lgsp"
name = "Nền tảng tích hợp, chia sẻ dữ liệu (LGSP)"
link_class = "mainland"
[[service.check]]
name = "api"
probe.http = { url = "http://127.0.0.1:1/status" }

[[service]]
slug = "dns"
name = "Hệ thống phân giải tên miền"
link_class = "mainland"
[[service.check]]
name = "resolve"
probe.dns = { server = "127.0.0.1:1", query = "a.example.", record = "A" }

[inventory]
sites = [
  { code = "1", slug = "a", name = "Phường A", kind = "phuong", former_province = "tphcm", former_district = "Quận 1", island = false, lat = 10.7, lon = 106.7, addr = { link = "127.0.0.1", endpoint = "http://127.0.0.1:1/", video = "127.0.0.1:1" } },
"#,
    );
    if extra_site {
        text += r#"  { code = "2", slug = "b", name = "Xã \"B\"", kind = "xa", former_province = "tphcm", former_district = "Huyện Cần Giờ", island = true, lat = 10.4, lon = 106.9, link_class = "mainland", addr = { link = "127.0.0.2", endpoint = "http://127.0.0.2:1/", video = "127.0.0.2:1" } },
"#;
    }
    text += "]\n";
    let c = Config::from_str(Path::new("metrics-test.toml"), &text).expect("valid test config");
    (*c.inventory).clone()
}

fn check<'a>(
    inv: &'a Inventory,
    site: Option<&str>,
    service: Option<&str>,
    name: &str,
) -> &'a CheckDef {
    inv.checks
        .iter()
        .find(|c| {
            c.id.site.as_deref() == site
                && c.id.service.as_deref() == service
                && &*c.id.name == name
        })
        .unwrap_or_else(|| panic!("check {site:?}/{service:?}/{name}"))
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn http_ok(status: u16, expiry: Option<i64>) -> Outcome {
    let mut o = Outcome::ok(Details::Http(HttpDetails {
        phases: Phases {
            resolve: Some(Duration::ZERO),
            connect: Some(ms(2)),
            tls: expiry.map(|_| ms(7)),
            processing: Some(ms(30)),
            transfer: Some(ms(1)),
        },
        status: Some(status),
        cert_earliest_expiry: expiry,
        cert: None,
        body_bytes: 1234,
        redirects: 0,
        tls: expiry.is_some(),
    }));
    o.duration = ms(40);
    o
}

fn fail(reason: Reason, details: Details) -> Outcome {
    let mut o = Outcome::fail(reason, "secret text that must not become a label", details);
    o.duration = ms(1000);
    o
}

fn icmp(rtts: &[f64], sent: u32) -> Outcome {
    let n = rtts.len() as f64;
    let avg = (n > 0.0).then(|| rtts.iter().sum::<f64>() / n);
    let d = IcmpDetails {
        sent,
        received: rtts.len() as u32,
        rtts: rtts.to_vec(),
        rtt_min: rtts.iter().copied().reduce(f64::min),
        rtt_avg: avg,
        rtt_max: rtts.iter().copied().reduce(f64::max),
        jitter: avg.map(|a| (rtts.iter().map(|r| (r - a).powi(2)).sum::<f64>() / n).sqrt()),
        loss_ratio: 1.0 - rtts.len() as f64 / sent as f64,
        resolve: Some(0.0),
        setup: Some(0.0001),
        socket: "udp_echo",
    };
    let mut o = if rtts.len() as u32 * 2 >= sent {
        Outcome::ok(Details::Icmp(d))
    } else {
        Outcome::fail(Reason::PacketLoss, "loss", Details::Icmp(d))
    };
    o.duration = ms(600);
    o
}

fn dns_ok() -> Outcome {
    let mut o = Outcome::ok(Details::Dns(DnsDetails {
        rcode: Some("NOERROR".into()),
        answers: vec!["127.0.0.1".into()],
        answer_rrs: 1,
        authority_rrs: 0,
        additional_rrs: 2,
        connect: Some(0.00005),
        request: Some(0.0015),
        truncated: false,
    }));
    o.duration = ms(2);
    o
}

/// The fixed scenario behind the golden file.
fn scenario() -> (Metrics, Inventory) {
    let m = Metrics::new();
    let inv = config(true);
    m.set_inventory(&inv, None);
    let at = |s: u64| UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s);
    let a_link = check(&inv, Some("a"), None, "link");
    let b_link = check(&inv, Some("b"), None, "link");
    let a_ep = check(&inv, Some("a"), None, "endpoint");
    let b_ep = check(&inv, Some("b"), None, "endpoint");
    let a_video = check(&inv, Some("a"), None, "video");
    let b_video = check(&inv, Some("b"), None, "video");
    let api = check(&inv, None, Some("lgsp"), "api");
    let dns = check(&inv, None, Some("dns"), "resolve");

    m.record(a_link, &icmp(&[0.0008, 0.0012, 0.003], 3), at(1));
    m.record(a_link, &icmp(&[0.02, 0.7], 3), at(16));
    m.record(b_link, &icmp(&[], 3), at(2));
    m.record(a_ep, &http_ok(200, Some(1_900_000_000)), at(3));
    m.record(
        b_ep,
        &fail(Reason::HttpStatus, {
            let mut o = http_ok(503, None);
            std::mem::take(&mut o.details)
        }),
        at(4),
    );
    m.record(b_ep, &fail(Reason::Timeout, Details::None), at(19));
    let mut tcp = Outcome::ok(Details::Tcp(TcpDetails {
        phases: Phases {
            connect: Some(ms(1)),
            ..Phases::default()
        },
        cert_earliest_expiry: Some(1_850_000_000),
        cert: None,
        tls: true,
    }));
    tcp.duration = ms(3);
    m.record(a_video, &tcp, at(5));
    m.record(
        b_video,
        &fail(Reason::ConnectRefused, Details::Tcp(TcpDetails::default())),
        at(6),
    );
    m.record(
        api,
        &fail(
            Reason::ConnectRefused,
            Details::Http(HttpDetails::default()),
        ),
        at(7),
    );
    m.record(dns, &dns_ok(), at(8));

    m.set_check_state(a_link, State::Up);
    m.set_check_state(b_link, State::Down);
    m.set_check_state(b_ep, State::Failing);
    m.set_site_status("a", SiteStatus::Up);
    m.set_site_status("b", SiteStatus::Down);
    m.incident_opened(Severity::Critical, Scope::Site);
    m.set_open_incidents(&BTreeMap::from([(
        (Severity::Critical, Scope::Site, "to-tphcm".to_string()),
        1,
    )]));
    m.lag.observe(0.002);
    m.in_flight.set(3);
    (m, inv)
}

/// The exposition without the build line (its revision comes from the build environment).
fn render(m: &Metrics) -> String {
    m.render()
        .lines()
        .filter(|l| !l.starts_with("lienthong_build_info{"))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn exposition_matches_golden_file() {
    let (m, _) = scenario();
    let actual = render(&m);
    assert!(!actual.contains("secret"), "failure text leaked");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/metrics.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .expect("tests/golden/metrics.txt missing: run UPDATE_GOLDEN=1 cargo test --test metrics");
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .filter(|(e, a)| e != a)
            .take(10)
            .map(|(e, a)| format!("- {e}\n+ {a}"))
            .collect();
        panic!(
            "exposition differs from tests/golden/metrics.txt ({} vs {} lines); first differences:\n{}",
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

#[test]
fn removed_checks_series_vanish_on_reload() {
    let (m, _) = scenario();
    assert!(m.render().contains(r#"site="b""#));
    let smaller = config(false);
    let bigger = config(true);
    m.set_inventory(&smaller, Some(&bigger));
    let text = m.render();
    let leftovers: Vec<&str> = text.lines().filter(|l| l.contains(r#"site="b""#)).collect();
    assert!(
        leftovers.is_empty(),
        "series of site b remain: {leftovers:#?}"
    );
    // The kept checks keep their series and counters.
    assert!(text.contains(
        r#"lienthong_probe_attempts_total{check="link",kind="icmp",service="",site="a"} 2"#
    ));
    assert!(text.contains("lienthong_checks_configured 5\n"));
    // Back again: the check reappears from scratch.
    m.set_inventory(&bigger, Some(&smaller));
    let b_ep = check(&bigger, Some("b"), None, "endpoint");
    m.record(b_ep, &http_ok(200, None), UNIX_EPOCH);
    let text = m.render();
    assert!(text.contains(
        r#"lienthong_probe_attempts_total{check="endpoint",kind="http",service="",site="b"} 1"#
    ));
    assert!(!text.contains(
        r#"lienthong_probe_failures_total{check="endpoint",kind="http",reason="timeout""#
    ));
}

/// Every `NAME_bucket{…le=…}` line of a series, in order, and its `_sum` / `_count`.
fn histogram(text: &str, name: &str, labels: &str) -> (Vec<(String, u64)>, f64, u64) {
    let mut buckets = Vec::new();
    let mut sum = f64::NAN;
    let mut count = u64::MAX;
    for line in text.lines() {
        let (series, value) = line.rsplit_once(' ').unwrap_or((line, ""));
        if let Some(rest) = series.strip_prefix(&format!("{name}_bucket{{{labels},le=\"")) {
            buckets.push((
                rest.trim_end_matches("\"}").to_string(),
                value.parse().unwrap(),
            ));
        } else if series == format!("{name}_sum{{{labels}}}") {
            sum = value.parse().unwrap();
        } else if series == format!("{name}_count{{{labels}}}") {
            count = value.parse().unwrap();
        }
    }
    (buckets, sum, count)
}

#[test]
fn rtt_histogram_is_cumulative_and_consistent() {
    let (m, inv) = scenario();
    let labels = r#"check="link",kind="icmp",service="",site="a""#;
    let (buckets, sum, count) = histogram(&m.render(), "lienthong_icmp_rtt_seconds", labels);
    assert_eq!(buckets.len(), 15, "{buckets:?}");
    assert_eq!(buckets.last().unwrap().0, "+Inf");
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
    assert_eq!(buckets.last().unwrap().1, count);
    assert_eq!(count, 5);
    assert!((sum - (0.0008 + 0.0012 + 0.003 + 0.02 + 0.7)).abs() < 1e-12);
    let le = |b: &str| buckets.iter().find(|(l, _)| l == b).unwrap().1;
    assert_eq!(le("0.001"), 1);
    assert_eq!(le("0.0025"), 2);
    assert_eq!(le("0.005"), 3);
    assert_eq!(le("0.025"), 4);
    assert_eq!(le("0.5"), 4);
    assert_eq!(le("1"), 5);

    // A round with no replies adds nothing to the distribution, but the series exists.
    let (b, _, count) = histogram(
        &m.render(),
        "lienthong_icmp_rtt_seconds",
        r#"check="link",kind="icmp",service="",site="b""#,
    );
    assert_eq!((b.len(), count), (15, 0));

    // The per-kind duration histogram sums every run of the kind/role/class.
    let link = check(&inv, Some("a"), None, "link");
    m.record(link, &icmp(&[0.001], 1), UNIX_EPOCH);
    let (b, sum, count) = histogram(
        &m.render(),
        "lienthong_probe_duration_seconds",
        r#"kind="icmp",link_class="mainland",role="link""#,
    );
    assert_eq!(count, 4);
    assert_eq!(b.last().unwrap().1, 4);
    assert!((sum - 2.4).abs() < 1e-9, "{sum}");
}

#[test]
fn failures_count_per_reason() {
    let (m, inv) = scenario();
    let ep = check(&inv, Some("b"), None, "endpoint");
    let line = |reason: &str| {
        format!(
            r#"lienthong_probe_failures_total{{check="endpoint",kind="http",reason="{reason}",service="",site="b"}}"#
        )
    };
    let value = |text: &str, reason: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{} ", line(reason))))
            .map(|v| v.parse::<u64>().unwrap())
    };
    let text = m.render();
    assert_eq!(value(&text, "http_status"), Some(1));
    assert_eq!(value(&text, "timeout"), Some(1));
    assert_eq!(
        value(&text, "tls"),
        None,
        "a reason never seen has no series"
    );
    for _ in 0..3 {
        m.record(ep, &fail(Reason::Tls, Details::None), UNIX_EPOCH);
    }
    m.record(ep, &http_ok(200, None), UNIX_EPOCH);
    let text = m.render();
    assert_eq!(value(&text, "tls"), Some(3));
    assert_eq!(value(&text, "timeout"), Some(1));
    assert!(text.contains(
        r#"lienthong_probe_attempts_total{check="endpoint",kind="http",service="",site="b"} 6"#
    ));
    assert!(text.contains(r#"probe_success{check="endpoint",kind="http",service="",site="b"} 1"#));
}

#[test]
fn render_runs_while_a_writer_records() {
    let m = Arc::new(Metrics::new());
    let inv = config(true);
    m.set_inventory(&inv, None);
    let writer = {
        let (m, inv) = (m.clone(), inv.clone());
        std::thread::spawn(move || {
            for i in 0..2000u64 {
                let c = &inv.checks[i as usize % inv.checks.len()];
                let o = match c.probe.kind() {
                    lienthong::probe::ProbeKind::Icmp => icmp(&[0.001, 0.002], 2),
                    lienthong::probe::ProbeKind::Dns => dns_ok(),
                    _ => http_ok(200, None),
                };
                m.record(c, &o, UNIX_EPOCH + Duration::from_secs(i));
            }
        })
    };
    let mut renders = 0;
    while !writer.is_finished() || renders == 0 {
        let text = m.render();
        assert_eq!(
            text.matches("\nlienthong_check_info{").count(),
            inv.checks.len()
        );
        renders += 1;
    }
    writer.join().unwrap();
    let total: u64 = m
        .render()
        .lines()
        .filter(|l| l.starts_with("lienthong_probe_attempts_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 2000);
}

/// `GET /metrics` through the real router: gzip when asked, the same exposition either way.
#[tokio::test]
async fn metrics_endpoint_gzips_when_asked() {
    use std::io::Read;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(lienthong::incidents::Store::open(&dir.path().join("m.db")).unwrap());
    let (m, _) = scenario();
    let m = Arc::new(m);
    let app = lienthong::web::AppState {
        metrics: m.clone(),
        state: Arc::new(lienthong::state::LiveState::default()),
        store,
        events: tokio::sync::broadcast::channel(4).0,
        api_token: None,
        maintenance_changed: Arc::new(tokio::sync::Notify::new()),
        pages: Default::default(),
        actions: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/metrics", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, lienthong::web::router(app)).await });
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    let plain = http.get(&url).send().await.unwrap();
    assert_eq!(plain.status(), 200);
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.text().await.unwrap();
    assert_eq!(plain, m.render());

    let zipped = http
        .get(&url)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(zipped.status(), 200);
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    assert_eq!(zipped.headers()["vary"], "accept-encoding");
    assert!(zipped.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let bytes = zipped.bytes().await.unwrap();
    assert!(
        bytes.len() < plain.len() / 3,
        "{} vs {}",
        bytes.len(),
        plain.len()
    );
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, plain);

    let refused = http
        .get(&url)
        .header("accept-encoding", "gzip;q=0, identity")
        .send()
        .await
        .unwrap();
    assert!(refused.headers().get("content-encoding").is_none());
    assert_eq!(refused.text().await.unwrap(), plain);
}

/// The fast writer of the per-check families makes exactly what the prometheus crate's
/// `TextEncoder` makes of the same state collected as protos (also after a reload and with a
/// label value that needs escaping).
#[test]
fn render_equals_text_encoder_of_gather() {
    let (m, inv) = scenario();
    let encode = |m: &Metrics| {
        prometheus::TextEncoder::new()
            .encode_to_string(&m.gather())
            .unwrap()
    };
    assert_eq!(m.render(), encode(&m));
    m.set_inventory(&config(false), Some(&inv));
    assert_eq!(m.render(), encode(&m));

    // Within one check name, the first site has runs but no HTTP details yet, the second has.
    let m = Metrics::new();
    m.set_inventory(&inv, None);
    let a_ep = check(&inv, Some("a"), None, "endpoint");
    let b_ep = check(&inv, Some("b"), None, "endpoint");
    m.record(a_ep, &fail(Reason::Timeout, Details::None), UNIX_EPOCH);
    m.record(b_ep, &http_ok(200, Some(1)), UNIX_EPOCH);
    m.set_check_state(b_ep, State::Up);
    let text = m.render();
    assert!(text.contains(
        r#"probe_http_duration_seconds{check="endpoint",kind="http",phase="connect",service="",site="b"} 0.002"#
    ));
    assert_eq!(text, encode(&m));
}

/// Rendered in pieces (as `/metrics` streams it), the exposition is byte for byte the whole
/// one, whatever the piece size.
#[test]
fn render_in_pieces_equals_render() {
    let (m, _) = scenario();
    let whole = m.render();
    for chunk in [1, 100, 4096, usize::MAX] {
        let mut pieces: Vec<String> = Vec::new();
        let mut out = String::new();
        m.render_chunked(&mut out, chunk, &mut |text| {
            pieces.push(std::mem::take(text))
        });
        pieces.push(out);
        if chunk < whole.len() / 4 {
            assert!(pieces.len() > 3, "chunk {chunk}: {} pieces", pieces.len());
        }
        assert_eq!(pieces.concat(), whole, "chunk {chunk}");
    }
}
