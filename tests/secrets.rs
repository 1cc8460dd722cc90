//! A secrets grep over every surface of the real binary: a config full of secrets (URL userinfo
//! and query values of checks and webhooks, literal header values, basic-auth and bearer
//! secrets in the environment, the API token) and none of them may appear in its logs (stdout
//! and stderr, reload errors included), `/metrics`, any API or page response, or the output of
//! `check-config` (valid and invalid files).

mod common;

use std::process::Command;
use std::time::Duration;

use common::bin::{self, Receiver, Serve, ServeOpts, Targets};

/// Every secret of the test contains this marker; no surface may show it.
const MARK: &str = "S3CR3T";

fn config(
    db: &std::path::Path,
    targets: std::net::SocketAddr,
    hook: std::net::SocketAddr,
) -> String {
    let dead = common::bin::free_port();
    format!(
        r#"
[incidents]
database = "{db}"

[api]
token_env = "SECRETS_TEST_API_TOKEN"

[[notify]]
name = "hook"
kind = "webhook"
url = "http://hook-user:hook-pass-{MARK}@{hook}/hook?key=hook-query-{MARK}&plain=1"
bearer_token_env = "SECRETS_TEST_HOOK_TOKEN"

[[notify]]
name = "dead-hook"
kind = "webhook"
url = "http://dead-user:dead-pass-{MARK}@127.0.0.1:{dead}/hook?key=dead-query-{MARK}"
timeout = "1s"

[[notify]]
name = "am"
kind = "alertmanager"
url = "http://am-user:am-pass-{MARK}@127.0.0.1:{dead}/?token=am-query-{MARK}"
timeout = "1s"

[link_class.mainland]
interval = "1s"
timeout = "500ms"
packets = 2
pacing = "50ms"
max_loss = 0.5
degraded_loss = 0.1
degraded_rtt = "100ms"
degraded_jitter = "50ms"
degraded_latency = "400ms"

[[template]]
name = "endpoint"
role = "endpoint"
title = "Trung tâm phục vụ hành chính công"
probe.http = {{ url = "{{addr.endpoint}}", headers = {{ "X-Api-Key" = "header-{MARK}" }}, basic_auth = {{ username = "probe", password_env = "SECRETS_TEST_BASIC" }} }}

[[template]]
name = "portal"
role = "other"
title = "Cổng dịch vụ công"
probe.http = {{ url = "{{addr.portal}}", bearer_token_env = "SECRETS_TEST_BEARER" }}

[inventory]
sites = [
  {{ code = "1", slug = "phuong-a", name = "Phường A", kind = "phuong", former_province = "tphcm", former_district = "Quận 1", island = false, lat = 10.7, lon = 106.7, addr = {{ endpoint = "http://probe-user:probe-pass-{MARK}@{targets}/s/0?token=probe-query-{MARK}", portal = "http://portal:portal-pass-{MARK}@127.0.0.1:{dead}/?sig=portal-query-{MARK}" }} }},
  {{ code = "2", slug = "phuong-b", name = "Phường B", kind = "phuong", former_province = "tphcm", former_district = "Quận 1", island = false, lat = 10.7, lon = 106.7, addr = {{ endpoint = "http://u:b-pass-{MARK}@{targets}/s/1?token=b-query-{MARK}", portal = "http://{targets}/s/1?sig=b-portal-{MARK}" }} }},
]
"#,
        db = db.display()
    )
}

const ENV: &[(&str, &str)] = &[
    ("SECRETS_TEST_API_TOKEN", "api-token-S3CR3T"),
    ("SECRETS_TEST_HOOK_TOKEN", "hook-bearer-S3CR3T"),
    ("SECRETS_TEST_BASIC", "basic-pass-S3CR3T"),
    ("SECRETS_TEST_BEARER", "probe-bearer-S3CR3T"),
    // Debug: every line the service can log, not only the default level.
    ("LIENTHONG_LOG", "debug"),
];

fn leaks(surface: &str, text: &str, found: &mut Vec<String>) {
    for (n, line) in text.lines().enumerate() {
        if line.contains(MARK) {
            found.push(format!(
                "{surface}:{}: {}",
                n + 1,
                line.chars().take(300).collect::<String>()
            ));
        }
    }
}

fn check_config(path: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .arg("check-config")
        .arg(path)
        .envs(ENV.iter().copied())
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn post(url: &str, token: Option<&str>, body: &str) -> String {
    let mut c = Command::new("curl");
    c.args([
        "-s",
        "-i",
        "-m",
        "10",
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
    ]);
    if let Some(t) = token {
        c.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out = c.args(["-d", body, url]).output().expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn no_secret_on_any_surface() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let targets = rt.block_on(Targets::start(2));
    targets.set(0, false); // site A's endpoint answers 503: incidents, failure messages
    let (receiver, hook) = rt.block_on(Receiver::start());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lienthong.db");
    let path = dir.path().join("probes.toml");
    let text = config(&db, targets.addr, hook);
    std::fs::write(&path, &text).unwrap();
    let mut found = Vec::new();

    // check-config: a valid file, and invalid ones quoting secret URLs.
    leaks("check-config (valid)", &check_config(&path), &mut found);
    // Invalid files whose errors quote secret URLs (a bad port, a bad scheme, a bad duration).
    let broken: Vec<String> = vec![
        text.replace(&format!("@{}/s/0?", targets.addr), "@127.0.0.1:99999/s/0?"),
        text.replace(
            "kind = \"webhook\"\nurl = \"http://hook-user",
            "kind = \"webhook\"\nurl = \"ftp://hook-user",
        ),
        text.replace(
            "url = \"{addr.portal}\"",
            "url = \"{addr.portal}\", timeout = \"soon\"",
        ),
    ];
    let mut redacted = 0;
    for (i, b) in broken.iter().enumerate() {
        assert_ne!(b, &text, "variant {i} changes the file");
        let bad = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&bad, b).unwrap();
        let out = check_config(&bad);
        assert!(out.contains("problem(s) found"), "variant {i}: {out}");
        redacted += usize::from(out.contains("***@"));
        leaks(&format!("check-config (invalid {i})"), &out, &mut found);
    }
    assert!(redacted >= 1, "some error quotes a URL (redacted)");

    let log = dir.path().join("serve.log");
    let serve = Serve::spawn(&ServeOpts {
        config: &path,
        dir: dir.path(),
        port: bin::free_port(),
        log: &log,
        env: ENV,
        wrapper: &[],
    });
    // Wait for incidents (A's endpoint 503, A's portal refused) and their notifications.
    let (code, body) = serve.wait_for("/api/v1/incidents", Duration::from_secs(30), |c, b| {
        c == 200 && b.matches("\"key\":").count() >= 2
    });
    assert_eq!(code, 200, "{body}\n{}", serve.log_text());
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while receiver.count() < 2 && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(receiver.count() >= 2, "webhook got the incidents");
    // The bearer token did reach the receiver (so it was configured and is really a secret).
    assert!(receiver.all().iter().any(|d| d
        .authorization
        .as_deref()
        .is_some_and(|a| a.contains("Bearer hook-bearer-S3CR3T"))));
    // Let the dead targets fail a few deliveries (their errors are logged).
    std::thread::sleep(Duration::from_secs(3));

    // Every route of the server.
    let incidents: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = incidents["items"][0]["id"].as_i64().unwrap();
    let mut paths: Vec<String> = [
        "/metrics",
        "/healthz",
        "/readyz",
        "/api/v1/checks",
        "/api/v1/sites",
        "/api/v1/sites/phuong-a",
        "/api/v1/sites/phuong-b",
        "/api/v1/incidents",
        "/api/v1/incidents?state=open",
        "/api/v1/maintenance",
        "/api/v1/readiness",
        "/api/v1/openapi.json",
        "/",
        "/?wall=1",
        "/?lang=en",
        "/sites/phuong-a",
        "/sites/phuong-a?lang=en",
        "/readiness",
        "/incidents.atom",
        "/no-such-route",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for i in incidents["items"].as_array().unwrap() {
        paths.push(format!("/api/v1/incidents/{}", i["id"]));
    }
    for p in &paths {
        let (code, body) = serve.get(p);
        assert!(code > 0, "{p} answered");
        leaks(p, &body, &mut found);
    }
    // Writes and on-demand runs (their answers quote what the probe saw).
    let base = &serve.base;
    let token = "api-token-S3CR3T";
    for (url, tok, body) in [
        (
            format!("{base}/api/v1/checks/phuong-a/endpoint/run"),
            Some(token),
            "{}",
        ),
        (
            format!("{base}/api/v1/checks/phuong-a/portal/run"),
            Some(token),
            "{}",
        ),
        (
            format!("{base}/api/v1/checks/phuong-b/endpoint/run"),
            Some(token),
            "{}",
        ),
        (
            format!("{base}/api/v1/checks/phuong-a/endpoint/run"),
            None,
            "{}",
        ),
        (
            format!("{base}/api/v1/checks/phuong-a/endpoint/run"),
            Some("wrong-S3CR3T"),
            "{}",
        ),
        (
            format!("{base}/api/v1/incidents/{id}/ack"),
            Some(token),
            r#"{"by":"Tổ Q1"}"#,
        ),
        (
            format!("{base}/api/v1/incidents/{id}/notes"),
            Some(token),
            r#"{"author":"Tổ Q1","text":"ok"}"#,
        ),
        (
            format!("{base}/api/v1/incidents/{id}/notes"),
            Some(token),
            "not json",
        ),
    ] {
        let answer = post(&url, tok, body);
        assert!(answer.starts_with("HTTP/1.1"), "{url}: {answer}");
        // The wrong token is the client's own; it must not be echoed either.
        leaks(&url, &answer, &mut found);
    }

    // Reloads that fail (their errors quote secret URLs), then one that succeeds.
    for b in &broken {
        std::fs::write(&path, b).unwrap();
        serve.signal("-HUP");
        std::thread::sleep(Duration::from_millis(700));
    }
    std::fs::write(&path, &text).unwrap();
    serve.signal("-HUP");
    std::thread::sleep(Duration::from_secs(2));
    let (_, metrics) = serve.get("/metrics");
    leaks("/metrics (after reloads)", &metrics, &mut found);
    assert!(serve.stop(Duration::from_secs(20)), "graceful stop");

    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(
        log_text.contains("reload rejected"),
        "the bad reload was logged:\n{log_text}"
    );
    assert!(log_text.contains("config reloaded"), "{log_text}");
    leaks("serve stdout/stderr", &log_text, &mut found);
    if std::env::var_os("SECRETS_TEST_SHOW").is_some() {
        eprintln!("--- log\n{log_text}");
    }

    // The webhook body is a surface too (it is the incident as the API shows it).
    for d in receiver.all() {
        leaks("webhook body", &d.body.to_string(), &mut found);
    }
    eprintln!(
        "{} surfaces grepped ({} routes, {} log lines, {} deliveries)",
        paths.len() + 8 + 1 + broken.len() + 2 + receiver.count(),
        paths.len(),
        log_text.lines().count(),
        receiver.count()
    );
    assert!(found.is_empty(), "secrets shown:\n{}", found.join("\n"));
}
