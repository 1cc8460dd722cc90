//! The whole service on 127.0.0.1:0: scheduling, /metrics (names + promtool lint), health
//! endpoints, the JSON API, and hot reload (a bad config keeps the old one running).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lienthong::config::Config;
use lienthong::service::{self, Handles, Loader};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

fn config_text(http_port: u16, tcp_port: u16, closed_port: u16, interval: &str) -> String {
    let db = std::env::temp_dir().join(format!("lienthong-service-test-{}.db", std::process::id()));
    let db = db.display();
    format!(
        r#"
[incidents]
database = "{db}"

[scheduler]
max_concurrency = 8
per_site_concurrency = 2

[link_class.mainland]
interval = "{interval}"
timeout = "1s"
packets = 2
pacing = "50ms"
max_loss = 0.5
degraded_loss = 0.1
degraded_rtt = "100ms"
degraded_jitter = "50ms"
degraded_latency = "1s"

[[template]]
name = "endpoint"
role = "endpoint"
title = "Trung tâm phục vụ hành chính công"
probe.http = {{ url = "{{addr.endpoint}}" }}

[[template]]
name = "video"
role = "video"
title = "Điểm cầu truyền hình"
probe.tcp = {{ address = "{{addr.video}}" }}

[[service]]
slug = "lgsp"
name = "Nền tảng tích hợp, chia sẻ dữ liệu (LGSP)"
link_class = "mainland"
[[service.check]]
name = "api"
probe.http = {{ url = "http://127.0.0.1:{closed_port}/status" }}

[inventory]
sites = [
  {{ code = "1", slug = "phuong-a", name = "Phường A", kind = "phuong", former_province = "tphcm", former_district = "Quận 1", island = false, lat = 10.7, lon = 106.7, addr = {{ endpoint = "http://127.0.0.1:{http_port}/", video = "127.0.0.1:{tcp_port}" }} }},
  {{ code = "2", slug = "xa-b", name = "Xã B", kind = "xa", former_province = "tphcm", former_district = "Huyện Cần Giờ", island = false, lat = 10.4, lon = 106.9, link_class = "mainland", addr = {{ endpoint = "http://127.0.0.1:{http_port}/", video = "127.0.0.1:{closed_port}" }} }},
]
"#
    )
}

async fn http_server() -> u16 {
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(l, app).await });
    port
}

async fn tcp_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let _ = s.write_all(b"hello\r\n").await;
        }
    });
    port
}

/// Bound, never listening, kept for the process: connects are refused and no later `bind(0)`
/// in this binary can take the port.
async fn closed_port() -> u16 {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    std::mem::forget(socket);
    port
}

/// `/metrics` once `ready` holds for it, or after 15 s (the assertions then say what is
/// missing).
async fn wait_metrics(base: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, m) = get(&format!("{base}/metrics")).await;
        if ready(&m) || tokio::time::Instant::now() > deadline {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn get(url: &str) -> (u16, String) {
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = c.get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_probes_exports_metrics_and_reloads() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (http_port, tcp_port, closed) =
        (http_server().await, tcp_server().await, closed_port().await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("probes.toml");
    std::fs::write(&path, config_text(http_port, tcp_port, closed, "2s")).unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let p = path.clone();
    let loader: Loader = Arc::new(move || Config::load(&p).map(|c| (*c.inventory).clone()));
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
    let shutdown = CancellationToken::new();
    let handles = Handles::new();
    let task = tokio::spawn(service::run(
        loader,
        listener,
        reload_rx,
        shutdown.clone(),
        handles.clone(),
    ));

    // Every check runs within one interval (first runs are staggered over it): wait until the
    // xa-b video failure is counted (the last series the assertions below need), 15 s at most.
    wait_metrics(&base, |m| {
        m.contains(r#"probe_success{check="endpoint",kind="http",service="",site="phuong-a"} 1"#)
            && m.contains(r#"probe_success{check="video",kind="tcp",service="",site="phuong-a"} 1"#)
            && m.contains(r#"probe_success{check="video",kind="tcp",service="",site="xa-b"} 0"#)
            && m.contains(r#"reason="connect_refused",service="lgsp""#)
            && m.contains("\nprobe_http_status_code")
    })
    .await;
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200);
    let (code, body) = get(&format!("{base}/readyz")).await;
    assert_eq!(code, 200, "{body}");

    let (_, metrics) = get(&format!("{base}/metrics")).await;
    for name in [
        "probe_success",
        "probe_duration_seconds",
        "probe_http_duration_seconds",
        "probe_http_status_code",
        "lienthong_probe_attempts_total",
        "lienthong_probe_failures_total",
        "lienthong_site_info",
        "lienthong_check_info",
        "lienthong_build_info",
        "lienthong_config_last_reload_successful",
        "lienthong_config_last_reload_success_timestamp_seconds",
        "lienthong_scheduler_lag_seconds_bucket",
        "lienthong_probes_in_flight",
        "lienthong_probe_duration_seconds_bucket",
    ] {
        assert!(
            metrics.contains(&format!("\n{name}")),
            "missing {name} in /metrics"
        );
    }
    assert!(
        metrics.contains(
            r#"probe_success{check="endpoint",kind="http",service="",site="phuong-a"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"probe_success{check="video",kind="tcp",service="",site="phuong-a"} 1"#)
    );
    assert!(metrics.contains(r#"probe_success{check="video",kind="tcp",service="",site="xa-b"} 0"#));
    assert!(metrics.contains(r#"lienthong_probe_failures_total{check="video",kind="tcp",reason="connect_refused",service="",site="xa-b"}"#));
    assert!(metrics.contains(r#"lienthong_probe_failures_total{check="api",kind="http",reason="connect_refused",service="lgsp",site=""}"#));
    assert!(metrics.contains(r#"lienthong_site_info{code="1",former_district="Quận 1",former_province="tphcm",island="false",kind="phuong",link_class="mainland",name="Phường A",site="phuong-a"} 1"#));
    // Bounded cardinality: no URL or address leaks into labels.
    assert!(
        !metrics.contains("127.0.0.1"),
        "an address leaked into a label"
    );

    // promtool's linter, when installed (CI installs it).
    if let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(metrics.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.trim().is_empty(),
            "promtool check metrics: {text}"
        );
    } else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "promtool is missing in CI (apt-get install prometheus)"
        );
        eprintln!("SKIPPED promtool lint: promtool not installed (apt-get install prometheus)");
    }

    let (code, checks) = get(&format!("{base}/api/v1/checks")).await;
    assert_eq!(code, 200);
    let checks: serde_json::Value = serde_json::from_str(&checks).unwrap();
    assert_eq!(checks.as_array().unwrap().len(), 5);
    let (code, body) = get(&format!("{base}/api/v1/sites/nope")).await;
    assert_eq!(code, 404);
    assert!(body.contains("\"error\""));

    // A broken config on reload is rejected; the old checks keep running.
    std::fs::write(&path, "this is not toml").unwrap();
    reload_tx.send(()).await.unwrap();
    let metrics = wait_metrics(&base, |m| {
        m.contains("lienthong_config_last_reload_successful 0")
    })
    .await;
    assert!(metrics.contains("lienthong_config_last_reload_successful 0"));
    assert!(metrics.contains("lienthong_checks_configured 5"));

    // A good new config (one site fewer) replaces it and drops the removed series.
    let text = config_text(http_port, tcp_port, closed, "2s");
    let one_site: String = text
        .lines()
        .filter(|l| !l.contains("xa-b"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&path, one_site).unwrap();
    reload_tx.send(()).await.unwrap();
    let metrics = wait_metrics(&base, |m| {
        m.contains("lienthong_config_last_reload_successful 1")
    })
    .await;
    assert!(metrics.contains("lienthong_config_last_reload_successful 1"));
    assert!(metrics.contains("lienthong_checks_configured 3"));
    let stale: Vec<&str> = metrics
        .lines()
        .filter(|l| l.contains(r#"site="xa-b""#))
        .collect();
    assert!(
        stale.is_empty(),
        "series of the removed site remain: {stale:#?}"
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("graceful stop")
        .unwrap()
        .unwrap();
    assert!(!handles.state.is_running());
    let _ = Path::new(".");
}
