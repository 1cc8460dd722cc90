//! `lienthong demo` as a newcomer runs it (the real binary): all 168 sites appear in /metrics
//! within one interval, the scripted faults show up with the right reasons, SIGTERM stops it.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::demo::Demo;

const SCENARIO: &str = r#"
cycle = "10m"
udp_echo_port = 17107
[[fault]]
at = "0s"
duration = "5m"
kind = "link_down"
site = "phuong-ben-thanh"
[[fault]]
at = "0s"
duration = "5m"
kind = "http_status"
status = 503
service = "thu-tuc-hanh-chinh"
check = "portal"
[[fault]]
at = "0s"
duration = "5m"
kind = "lookup_error"
service = "thu-tuc-hanh-chinh"
check = "giao-dich"
[[fault]]
at = "0s"
duration = "5m"
kind = "slow"
delay = "3s"
site = "phuong-sai-gon"
[[fault]]
at = "0s"
duration = "5m"
kind = "path_down"
site = "phuong-cau-ong-lanh"
service = "quan-ly-van-ban"
"#;

fn scrape(base: &str) -> String {
    let out = Command::new("curl")
        .args(["-sf", &format!("{base}/metrics")])
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => String::new(),
    }
}

fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn demo_shows_all_sites_and_scripted_faults() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Demo::start(dir.path(), SCENARIO);
    let base = demo.base.clone();

    // Within one interval (island class: 20 s) every check has run once.
    let started = Instant::now();
    let mut metrics = String::new();
    let mut ran = 0;
    // 90 s at most: a loaded CI box may start the slowest (island) checks late.
    while started.elapsed() < Duration::from_secs(90) {
        std::thread::sleep(Duration::from_secs(2));
        metrics = scrape(&base);
        ran = metrics
            .lines()
            .filter(|l| l.starts_with("probe_success{") && !l.contains("vantage="))
            .count();
        if ran == 513 && started.elapsed() > Duration::from_secs(21) {
            break;
        }
    }
    assert_eq!(ran, 513, "every check has a probe_success series");
    let sites: std::collections::BTreeSet<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("probe_success{") && !l.contains("site=\"\""))
        .filter_map(|l| l.split("site=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(sites.len(), 168, "every site has results");
    assert_eq!(
        metrics
            .lines()
            .filter(|l| l.starts_with("lienthong_site_info{"))
            .count(),
        168
    );

    let ok = |site: &str, check: &str, kind: &str| {
        value(
            &metrics,
            &format!(
                "probe_success{{check=\"{check}\",kind=\"{kind}\",service=\"\",site=\"{site}\"}}"
            ),
        )
    };
    // The link outage: all three checks of the ward fail, with their reasons.
    assert_eq!(ok("phuong-ben-thanh", "link", "icmp"), Some(0.0));
    assert_eq!(ok("phuong-ben-thanh", "endpoint", "http"), Some(0.0));
    assert!(metrics.contains(r#"lienthong_probe_failures_total{check="link",kind="icmp",reason="packet_loss",service="",site="phuong-ben-thanh"}"#));
    assert!(metrics.contains(r#"lienthong_probe_failures_total{check="endpoint",kind="http",reason="connect_refused",service="",site="phuong-ben-thanh"}"#));
    // The shared service answering 503.
    assert!(metrics.contains(r#"lienthong_probe_failures_total{check="portal",kind="http",reason="http_status",service="thu-tuc-hanh-chinh",site=""}"#));
    assert_eq!(
        value(
            &metrics,
            r#"probe_http_status_code{check="portal",kind="http",service="thu-tuc-hanh-chinh",site=""}"#
        ),
        Some(503.0)
    );
    // The transaction logs in, then fails at the lookup (`lookup_error`); the step series say so.
    assert!(metrics.contains(r#"lienthong_probe_failures_total{check="giao-dich",kind="transaction",reason="json_mismatch",service="thu-tuc-hanh-chinh",site=""}"#));
    let step = |name: &str| {
        value(
            &metrics,
            &format!(
                "lienthong_transaction_step_success{{check=\"giao-dich\",kind=\"transaction\",service=\"thu-tuc-hanh-chinh\",site=\"\",step=\"{name}\"}}"
            ),
        )
    };
    assert_eq!(step("dang-nhap"), Some(1.0));
    assert_eq!(step("tra-cuu"), Some(0.0));
    assert_eq!(step("dang-xuat"), Some(1.0), "the cleanup step logged out");
    // The slow endpoint still answers, slowly.
    assert_eq!(ok("phuong-sai-gon", "endpoint", "http"), Some(1.0));
    let slow = value(
        &metrics,
        r#"probe_duration_seconds{check="endpoint",kind="http",service="",site="phuong-sai-gon"}"#,
    )
    .unwrap();
    assert!(slow >= 3.0, "slow endpoint took {slow}s");
    // Healthy sites are healthy, islands have their emulated latency.
    assert_eq!(ok("phuong-tan-dinh", "link", "icmp"), Some(1.0));
    assert_eq!(ok("phuong-tan-dinh", "endpoint", "http"), Some(1.0));
    assert_eq!(ok("phuong-tan-dinh", "video", "tcp"), Some(1.0));
    let island_rtt = value(&metrics, r#"probe_icmp_duration_rtt_min_seconds{check="link",kind="icmp",service="",site="dac-khu-con-dao"}"#).unwrap();
    assert!(island_rtt >= 0.03, "Côn Đảo min RTT {island_rtt}");
    // The certificate near expiry is measured.
    let expiry = value(&metrics, r#"probe_ssl_earliest_cert_expiry{check="web",kind="http",service="hoi-nghi-truyen-hinh",site=""}"#).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        expiry > now && expiry < now + 11.0 * 86400.0,
        "expiry {expiry}"
    );

    // The faults become incidents, one per cause, and the status gauges agree.
    let wanted = [
        ("site/phuong-ben-thanh/link", "Mất kết nối: Phường Bến Thành"),
        ("service/thu-tuc-hanh-chinh", "Sự cố phần mềm dùng chung: Hệ thống thông tin giải quyết thủ tục hành chính — ảnh hưởng 168 đơn vị"),
        ("site/phuong-sai-gon/slow", "Phường Sài Gòn phản hồi chậm"),
        // Seen only by the ward's simulated agent (its path to the service is down).
        (
            "site/phuong-cau-ong-lanh/quan-ly-van-ban@agent",
            "Phường Cầu Ông Lãnh không truy cập được Hệ thống quản lý văn bản và điều hành",
        ),
    ];
    let mut incidents = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        let out = Command::new("curl")
            .args(["-sf", &format!("{base}/api/v1/incidents?state=open")])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        incidents = v["items"].as_array().cloned().unwrap_or_default();
        if wanted
            .iter()
            .all(|(k, _)| incidents.iter().any(|i| i["key"] == *k))
        {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    for (key, title) in wanted {
        let matching: Vec<_> = incidents.iter().filter(|i| i["key"] == key).collect();
        assert_eq!(matching.len(), 1, "{key}: {incidents:#?}");
        assert_eq!(matching[0]["title"], title);
    }
    assert!(
        !incidents.iter().any(|i| i["key"].as_str().is_some_and(|k| k.starts_with("site/phuong-ben-thanh/") && k != "site/phuong-ben-thanh/link")),
        "the ward's endpoint/video failures are attached to the link incident, not separate: {incidents:#?}"
    );
    let ward_incidents: Vec<_> = incidents
        .iter()
        .filter(|i| i["key"].as_str().is_some_and(|k| k.ends_with("@agent")))
        .collect();
    assert_eq!(
        ward_incidents.len(),
        1,
        "exactly one ward incident: {ward_incidents:#?}"
    );
    let metrics = scrape(&base);
    // The five simulated ward agents push; the broken ward sees the service down, the others
    // (and the data centre) see it working.
    for site in [
        "phuong-tan-dinh",
        "phuong-cau-ong-lanh",
        "phuong-an-phu-dong",
        "phuong-thoi-an",
        "phuong-tan-thoi-hiep",
    ] {
        assert_eq!(
            value(&metrics, &format!("lienthong_agent_up{{site=\"{site}\"}}")),
            Some(1.0),
            "agent of {site} up"
        );
    }
    let dms = |site: &str| {
        value(
            &metrics,
            &format!("probe_success{{check=\"web\",kind=\"http\",service=\"quan-ly-van-ban\",site=\"{site}\",vantage=\"site:{site}\"}}"),
        )
    };
    // Their own check (agent.toml: the ward's video-conference device) is recorded too.
    assert_eq!(
        value(
            &metrics,
            r#"probe_success{check="thiet-bi-hoi-nghi",kind="tcp",service="",site="phuong-tan-dinh",vantage="site:phuong-tan-dinh"}"#
        ),
        Some(1.0)
    );
    assert_eq!(dms("phuong-cau-ong-lanh"), Some(0.0));
    assert_eq!(dms("phuong-tan-dinh"), Some(1.0));
    assert_eq!(
        value(
            &metrics,
            r#"probe_success{check="web",kind="http",service="quan-ly-van-ban",site=""}"#
        ),
        Some(1.0),
        "the data centre reaches the document-management system"
    );
    // One paging series per open incident, with the incident's identity as labels.
    let link = incidents
        .iter()
        .find(|i| i["key"] == "site/phuong-ben-thanh/link")
        .unwrap();
    let series = format!(
        r#"lienthong_incident_open{{former_province="tphcm",incident_id="{}",key="site/phuong-ben-thanh/link",kind="link_down",scope="site",severity="critical",site="phuong-ben-thanh",team="to-tphcm"}} 1"#,
        link["id"]
    );
    assert!(
        metrics.contains(&series),
        "{series} in\n{}",
        metrics
            .lines()
            .filter(|l| l.contains("incident_open"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let open_series = metrics
        .lines()
        .filter(|l| l.starts_with("lienthong_incident_open{"))
        .count();
    assert!(
        open_series >= incidents.len(),
        "one series per open incident"
    );
    assert_eq!(
        value(
            &metrics,
            r#"lienthong_site_status{site="phuong-ben-thanh"}"#
        ),
        Some(4.0),
        "down"
    );
    assert_eq!(
        value(&metrics, r#"lienthong_site_status{site="phuong-sai-gon"}"#),
        Some(2.0),
        "degraded"
    );
    assert_eq!(
        value(&metrics, r#"lienthong_site_status{site="phuong-tan-dinh"}"#),
        Some(1.0),
        "up"
    );

    // SIGTERM: graceful stop.
    demo.signal("-TERM");
    let status = demo.wait_exit(Duration::from_secs(15));
    let log = demo.log_text();
    assert!(status.success(), "exit {status:?}\n{log}");
    assert!(log.contains("lienthong stopped"), "{log}");
    assert!(
        log.contains("The demo's link rounds use UDP echo"),
        "ICMP notice printed once"
    );

    // The README's `lienthong readiness` works on the demo's database, from the same directory
    // (no probes.toml there: the built-in config the demo ran is used, and said so).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .args(["readiness", "--format", "md"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("using the built-in config"), "{stderr}");
    assert!(report.contains("Báo cáo sẵn sàng — 168"), "{report}");
    // A young database says how long until it can judge.
    assert!(report.contains("Đang thu thập dữ liệu — còn ~"), "{report}");
}
