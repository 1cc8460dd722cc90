//! Transaction probe against a real HTTP application on 127.0.0.1:0: log in (CSRF token in the
//! login page, session cookie), look up a dossier (JSON API), log out (cleanup).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Form, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{AppendHeaders, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use lienthong::config::Config;
use lienthong::probe::{
    BuildContext, Details, Outcome, ProbeSpec, Reason, TransactionDetails, TransactionSpec,
};

const PASSWORD: &str = "mat-khau-Rat-Bi-Mat-42";
const API_KEY: &str = "khoa-api-9f8e7d6c";

#[derive(Default)]
struct App {
    /// sid → (csrf, logged in, bearer token)
    sessions: HashMap<String, (String, bool, String)>,
    next: u32,
    logouts: u32,
    /// Cookie headers seen by the lookup.
    cookies_seen: Vec<String>,
}

type Shared = Arc<Mutex<App>>;

fn sid_of(h: &HeaderMap) -> Option<String> {
    let c = h.get("cookie")?.to_str().ok()?;
    c.split("; ")
        .find_map(|kv| kv.strip_prefix("SID="))
        .map(str::to_owned)
}

async fn login_page(State(app): State<Shared>) -> Response {
    let mut a = app.lock().unwrap();
    a.next += 1;
    let (sid, csrf) = (format!("sid-{}-xyz", a.next), format!("csrf{}abc", a.next));
    a.sessions
        .insert(sid.clone(), (csrf.clone(), false, String::new()));
    let page = format!(
        "<html><form method=post><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"></form></html>"
    );
    (
        AppendHeaders([
            ("set-cookie", format!("SID={sid}; Path=/; HttpOnly")),
            ("set-cookie", "lang=vi; Path=/".to_owned()),
            ("x-request-id", format!("req-{}", a.next)),
        ]),
        page,
    )
        .into_response()
}

async fn login(
    State(app): State<Shared>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let mut a = app.lock().unwrap();
    let Some(sid) = sid_of(&headers) else {
        return (StatusCode::UNAUTHORIZED, "no session").into_response();
    };
    let key_ok = headers.get("x-api-key").and_then(|v| v.to_str().ok()) == Some(API_KEY);
    let Some(s) = a.sessions.get_mut(&sid) else {
        return (StatusCode::UNAUTHORIZED, "unknown session").into_response();
    };
    if f.get("csrf") != Some(&s.0) {
        return (StatusCode::FORBIDDEN, "bad csrf").into_response();
    }
    if f.get("password").map(String::as_str) != Some(PASSWORD) || !key_ok {
        return (StatusCode::UNAUTHORIZED, "bad password").into_response();
    }
    s.1 = true;
    s.2 = format!("tok-{sid}-secret");
    axum::Json(serde_json::json!({"status": "ok", "token": s.2, "user": {"name": "giamsat"}}))
        .into_response()
}

async fn lookup(
    State(app): State<Shared>,
    headers: HeaderMap,
    UrlPath(code): UrlPath<String>,
) -> Response {
    let mut a = app.lock().unwrap();
    if let Some(c) = headers.get("cookie").and_then(|v| v.to_str().ok()) {
        a.cookies_seen.push(c.to_owned());
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ok = sid_of(&headers)
        .and_then(|sid| a.sessions.get(&sid).cloned())
        .is_some_and(|s| s.1 && auth == format!("Bearer {}", s.2));
    if !ok {
        return (StatusCode::UNAUTHORIZED, "not logged in").into_response();
    }
    if code == "HS-LOI" {
        return axum::Json(serde_json::json!({"status": "error"})).into_response();
    }
    // Echoes the token back: a mismatch message on this field must not show it.
    let token = auth.trim_start_matches("Bearer ").to_owned();
    (
        [("content-type", "application/json; charset=utf-8")],
        serde_json::json!({"status": "ok", "ho_so": {"ma": code, "trang_thai": "dang-xu-ly"}, "echo": token})
            .to_string(),
    )
        .into_response()
}

async fn logout(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let mut a = app.lock().unwrap();
    if let Some(sid) = sid_of(&headers) {
        a.sessions.remove(&sid);
    }
    a.logouts += 1;
    (
        [("set-cookie", "SID=; Max-Age=0; Path=/")],
        axum::Json(serde_json::json!({"status": "ok"})),
    )
        .into_response()
}

async fn serve() -> (String, Shared) {
    let state: Shared = Arc::default();
    let app = Router::new()
        .route("/login", get(login_page).post(login))
        .route("/api/ho-so/{code}", get(lookup))
        .route("/logout", post(logout))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(120)).await;
                "slow"
            }),
        )
        .route(
            "/hang",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                "never"
            }),
        )
        .with_state(state.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (base, state)
}

/// A secret file in a temp dir (kept alive by the returned guard).
fn secret_file() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("motcua.pass");
    std::fs::write(&p, format!("{PASSWORD}\n")).unwrap();
    (dir, p.display().to_string())
}

/// The full flow as TOML (what an operator writes), `lookup` and extra steps spliced in.
fn flow_toml(base: &str, pass_file: &str, code: &str, extra: &str) -> String {
    format!(
        r#"
step_timeout = "3s"
secrets = {{ password = {{ file = "{pass_file}" }}, api_key = {{ env = "LIENTHONG_TEST_TX_API_KEY" }} }}

[[step]]
name = "trang-dang-nhap"
url = "{base}/login"
expect_status = [200]
body_regex = "name=\"csrf\""
expect_header = [{{ name = "set-cookie" }}, {{ name = "x-request-id", regex = "^req-[0-9]+$" }}]
max_duration = "5s"
extract = [
  {{ var = "csrf", regex = 'name="csrf" value="([^"]+)"' }},
  {{ var = "sid", cookie = "SID" }},
  {{ var = "req", header = "x-request-id" }},
]

[[step]]
name = "dang-nhap"
method = "POST"
url = "{base}/login"
headers = {{ x-api-key = "{{{{api_key}}}}", x-trace = "{{{{req}}}}" }}
form = {{ username = "giamsat", password = "{{{{password}}}}", csrf = "{{{{csrf}}}}" }}
expect_json = [{{ pointer = "/status", equals = "ok" }}, {{ pointer = "/token", exists = true }}, {{ pointer = "/error", exists = false }}]
extract = [{{ var = "token", json = "/token" }}, {{ var = "user", json = "/user/name" }}]

[[step]]
name = "tra-cuu"
url = "{base}/api/ho-so/{code}"
headers = {{ authorization = "Bearer {{{{token}}}}" }}
expect_header = [{{ name = "content-type", regex = "json" }}]
expect_json = [{{ pointer = "/status", equals = "ok" }}, {{ pointer = "/ho_so/ma", equals = "{code}" }}]
{extra}

[[step]]
name = "dang-xuat"
method = "POST"
url = "{base}/logout"
cleanup = true
expect_json = [{{ pointer = "/status", equals = "ok" }}]
"#
    )
}

fn spec_of(toml_text: &str) -> TransactionSpec {
    toml::from_str(toml_text).unwrap_or_else(|e| panic!("spec: {e}\n{toml_text}"))
}

async fn run(spec: &TransactionSpec, timeout: Duration) -> (Outcome, TransactionDetails) {
    std::env::set_var("LIENTHONG_TEST_TX_API_KEY", API_KEY);
    let probe = ProbeSpec::Transaction(spec.clone())
        .build(&BuildContext::default())
        .expect("build");
    let o = probe.run(timeout).await;
    let Details::Transaction(d) = o.details.clone() else {
        panic!("not transaction details: {o:?}")
    };
    (o, *d)
}

fn step<'a>(d: &'a TransactionDetails, name: &str) -> &'a lienthong::probe::StepDetails {
    d.steps.iter().find(|s| s.name == name).unwrap()
}

#[tokio::test]
async fn full_flow_passes_with_every_extraction_and_cookies() {
    let (base, app) = serve().await;
    let (_dir, pass) = secret_file();
    let (o, d) = run(
        &spec_of(&flow_toml(&base, &pass, "HS-2026-000123", "")),
        Duration::from_secs(10),
    )
    .await;
    assert!(o.success, "{o:?}");
    assert_eq!(d.steps.len(), 4);
    assert!(d.steps.iter().all(|s| s.ran && s.success), "{d:?}");
    assert_eq!(
        step(&d, "trang-dang-nhap").extracted,
        ["csrf", "sid", "req"]
    );
    assert_eq!(step(&d, "dang-nhap").extracted, ["token", "user"]);
    assert_eq!(step(&d, "tra-cuu").status, Some(200));
    assert!(step(&d, "tra-cuu").phases.connect.is_some());
    let a = app.lock().unwrap();
    assert_eq!(a.logouts, 1);
    // Both cookies of the login page went along with the lookup.
    assert_eq!(a.cookies_seen.len(), 1);
    assert!(
        a.cookies_seen[0].contains("SID=sid-"),
        "{:?}",
        a.cookies_seen
    );
    assert!(
        a.cookies_seen[0].contains("lang=vi"),
        "{:?}",
        a.cookies_seen
    );
    assert!(a.sessions.is_empty(), "logout ended the session");
}

#[tokio::test]
async fn json_mismatch_names_the_step_and_cleanup_still_logs_out() {
    let (base, app) = serve().await;
    let (_dir, pass) = secret_file();
    // An extra non-cleanup step after the failing one is skipped.
    let mut text = flow_toml(&base, &pass, "HS-LOI", "");
    text.push_str(&format!(
        "\n[[step]]\nname = \"sau-dang-xuat\"\nurl = \"{base}/login\"\n"
    ));
    let (o, d) = run(&spec_of(&text), Duration::from_secs(10)).await;
    assert!(!o.success);
    assert_eq!(o.reason(), Some(Reason::JsonMismatch));
    let msg = &o.failure.as_ref().unwrap().message;
    assert!(
        msg.starts_with("step=\"tra-cuu\" reason=\"json_mismatch\""),
        "{msg}"
    );
    assert!(
        msg.contains("JSON /status is \"error\", expected \"ok\""),
        "{msg}"
    );
    assert_eq!(d.failed_step.as_deref(), Some("tra-cuu"));
    let logout = step(&d, "dang-xuat");
    assert!(logout.ran && logout.success, "{logout:?}");
    let after = step(&d, "sau-dang-xuat");
    assert!(!after.ran && !after.success);
    assert_eq!(app.lock().unwrap().logouts, 1);
}

/// One failing assertion per kind, each in the lookup step: its reason and message.
#[tokio::test]
async fn every_assertion_kind_fails_with_its_reason() {
    let (base, _app) = serve().await;
    let (_dir, pass) = secret_file();
    let cases: [(&str, &str, Reason, &str); 7] = [
        (
            "HS-1",
            "expect_status = [201]",
            Reason::HttpStatus,
            "status 200 not in expected set [201]",
        ),
        (
            "HS-1",
            "body_regex = \"khong-co\"",
            Reason::BodyMismatch,
            "body does not match /khong-co/",
        ),
        (
            "HS-1",
            "expect_header = [{ name = \"x-khong-co\" }]",
            Reason::HeaderMismatch,
            "no x-khong-co header",
        ),
        (
            "HS-1",
            "expect_json = [{ pointer = \"/ho_so\", exists = false }]",
            Reason::JsonMismatch,
            "JSON has a field at /ho_so (expected none)",
        ),
        (
            "HS-1",
            "max_duration = \"1ns\"",
            Reason::TooSlow,
            "more than max_duration",
        ),
        (
            "HS-1",
            "extract = [{ var = \"x\", json = \"/khong/co\" }]",
            Reason::ExtractFailed,
            "extract `x`: JSON has no field at /khong/co",
        ),
        (
            "HS-1",
            "extract = [{ var = \"y\", cookie = \"KHONG\" }]",
            Reason::ExtractFailed,
            "extract `y`: no cookie KHONG",
        ),
    ];
    for (code, extra, reason, want) in cases {
        // The flow's own `expect_json`/`expect_header` lines are replaced when `extra` sets them.
        let mut text = flow_toml(&base, &pass, code, "");
        let key = extra.split(' ').next().unwrap();
        let lookup_start = text.find("name = \"tra-cuu\"").unwrap();
        let lookup_end = text[lookup_start..].find("[[step]]").unwrap() + lookup_start;
        let lookup: String = text[lookup_start..lookup_end]
            .lines()
            .filter(|l| !l.starts_with(&format!("{key} =")))
            .map(|l| format!("{l}\n"))
            .collect();
        text.replace_range(lookup_start..lookup_end, &format!("{lookup}{extra}\n\n"));
        let (o, d) = run(&spec_of(&text), Duration::from_secs(10)).await;
        assert_eq!(o.reason(), Some(reason), "{extra}: {o:?}");
        let msg = &o.failure.as_ref().unwrap().message;
        assert!(msg.contains("step=\"tra-cuu\""), "{extra}: {msg}");
        assert!(msg.contains(want), "{extra}: {msg}");
        assert!(step(&d, "dang-xuat").success, "{extra}: cleanup ran");
    }
}

#[tokio::test]
async fn hung_step_is_named_and_the_whole_deadline_is_kept() {
    let (base, app) = serve().await;
    let (_dir, pass) = secret_file();
    let hang = format!("\n[[step]]\nname = \"treo\"\nurl = \"{base}/hang\"\ntimeout = \"30s\"\n");
    let text = flow_toml(&base, &pass, "HS-1", "").replacen(
        "\n[[step]]\nname = \"dang-xuat\"",
        &format!("{hang}\n[[step]]\nname = \"dang-xuat\""),
        1,
    );
    let started = Instant::now();
    let (o, d) = run(&spec_of(&text), Duration::from_millis(1500)).await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500 + 700), "took {took:?}");
    assert_eq!(o.reason(), Some(Reason::Timeout), "{o:?}");
    let msg = &o.failure.as_ref().unwrap().message;
    assert!(msg.starts_with("step=\"treo\" reason=\"timeout\""), "{msg}");
    assert!(msg.contains("transaction's timeout"), "{msg}");
    assert!(msg.contains("processing"), "the phase that hung: {msg}");
    // No time was left for the cleanup: it is reported as not started, not run past the deadline.
    let logout = step(&d, "dang-xuat");
    assert!(!logout.ran, "{logout:?}");
    assert_eq!(logout.reason, Some(Reason::Timeout));
    assert_eq!(app.lock().unwrap().logouts, 0);

    // A step timeout shorter than the run leaves time for the cleanup.
    let text = text.replace("timeout = \"30s\"", "timeout = \"300ms\"");
    let (o, d) = run(&spec_of(&text), Duration::from_secs(10)).await;
    let msg = &o.failure.as_ref().unwrap().message;
    assert!(msg.starts_with("step=\"treo\" reason=\"timeout\""), "{msg}");
    assert!(msg.contains("step timeout 300ms"), "{msg}");
    assert!(step(&d, "treo").duration < Duration::from_millis(1000));
    assert!(step(&d, "dang-xuat").success);
    assert_eq!(app.lock().unwrap().logouts, 1);
}

#[tokio::test]
async fn slow_step_within_budget_passes_max_duration() {
    let (base, _app) = serve().await;
    let text = format!(
        "[[step]]\nname = \"cham\"\nurl = \"{base}/slow\"\nmax_duration = \"5s\"\nbody_regex = \"^slow$\"\n"
    );
    let (o, d) = run(&spec_of(&text), Duration::from_secs(5)).await;
    assert!(o.success, "{o:?}");
    assert!(step(&d, "cham").duration >= Duration::from_millis(100));
}

/// Secrets and extracted values never leave the probe: not in the failure message, the JSON the
/// API serves, the `lienthong probe` breakdown, nor the probe's Debug text.
#[tokio::test]
async fn secrets_and_extracted_values_are_redacted_everywhere() {
    let (base, _app) = serve().await;
    let (_dir, pass) = secret_file();
    // The lookup echoes the bearer token; asserting on it puts the token into the message.
    let text = flow_toml(&base, &pass, "HS-1", "").replace(
        "{ pointer = \"/ho_so/ma\", equals = \"HS-1\" }",
        "{ pointer = \"/echo\", equals = \"{{password}}\" }",
    );
    let spec = spec_of(&text);
    let (o, _d) = run(&spec, Duration::from_secs(10)).await;
    assert_eq!(o.reason(), Some(Reason::JsonMismatch), "{o:?}");
    let msg = o.failure.as_ref().unwrap().message.clone();
    assert!(
        msg.contains("JSON /echo is \"***\", expected \"***\""),
        "{msg}"
    );

    let cfg = Config::from_str(Path::new("tx.toml"), &config_with(&text)).expect("config loads");
    let check = cfg
        .inventory
        .checks
        .iter()
        .find(|c| &*c.id.name == "giao-dich")
        .unwrap();
    let probe = check.probe.build(&check.build_context()).unwrap();
    let report = lienthong::report::breakdown(check, &o);
    let api = serde_json::to_string(&o).unwrap();
    let debug = format!("{probe:?} {:?}", check.probe);
    for (what, text) in [
        ("message", &msg),
        ("report", &report),
        ("api", &api),
        ("debug", &debug),
    ] {
        for secret in [PASSWORD, API_KEY, "tok-sid-", "csrf1abc", "sid-1-xyz"] {
            assert!(!text.contains(secret), "{what} shows {secret}: {text}");
        }
    }
    // The report still says what happened, step by step.
    assert!(report.contains("step 3 tra-cuu: GET"), "{report}");
    assert!(report.contains("extracted: [token, user]"), "{report}");
    assert!(report.contains("failed: json_mismatch"), "{report}");
    assert!(report.contains("(cleanup)"), "{report}");
}

/// `probes.toml` around one service check whose probe is `probe_toml` (a TransactionSpec's
/// TOML, as in a `[service.check.probe.transaction]` table).
fn config_with(probe_toml: &str) -> String {
    let mut body = String::new();
    for line in probe_toml.lines() {
        let line = match line.trim() {
            "[[step]]" => "[[service.check.probe.transaction.step]]".to_owned(),
            _ => line.to_owned(),
        };
        body.push_str(&line);
        body.push('\n');
    }
    // Top-level keys of the spec come first, under the probe's table header.
    format!(
        r#"[link_class.datacenter]
interval = "30s"
timeout = "10s"
packets = 3
pacing = "200ms"
max_loss = 0.4
degraded_loss = 0.05
degraded_rtt = "60ms"
degraded_jitter = "20ms"
degraded_latency = "2s"

[[service]]
slug = "thu-tuc-hanh-chinh"
name = "Hệ thống thông tin giải quyết thủ tục hành chính"
link_class = "datacenter"

[[service.check]]
name = "giao-dich"
title = "Giao dịch"
[service.check.probe.transaction]
{body}
[inventory]
sites = [
  {{ code = "1", slug = "a", name = "Phường A", kind = "phuong", former_province = "tphcm", former_district = "Quận 1", island = false, lat = 10.7, lon = 106.7, link_class = "datacenter" }},
]
"#
    )
}

fn problems(text: &str) -> String {
    match Config::from_str(Path::new("tx.toml"), text) {
        Ok(_) => panic!("loaded without error:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn check_config_rejects_bad_steps_at_their_line() {
    std::env::set_var("LIENTHONG_TEST_TX_API_KEY", API_KEY);
    let (_dir, pass) = secret_file();
    let base = "http://127.0.0.1:9";

    // A variable used before any step extracts it.
    let text = config_with(
        &flow_toml(base, &pass, "HS-1", "").replace("Bearer {{token}}", "Bearer {{tokn}}"),
    );
    let err = problems(&text);
    let line = line_of(&text, "{{tokn}}");
    assert!(err.contains(&format!("tx.toml:{line}:")), "{err}");
    assert!(
        err.contains("uses {{tokn}} before any step extracts it"),
        "{err}"
    );
    assert!(err.contains("hint: extract it in an earlier step"), "{err}");

    // Duplicate step names.
    let text = config_with(
        &flow_toml(base, &pass, "HS-1", "").replace("name = \"dang-xuat\"", "name = \"dang-nhap\""),
    );
    let err = problems(&text);
    let line = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("name = \"dang-nhap\""))
        .map(|(i, _)| i + 1)
        .next()
        .unwrap();
    assert!(err.contains("duplicate step name `dang-nhap`"), "{err}");
    assert!(err.contains(&format!("tx.toml:{line}:")), "{err}");
    assert!(err.contains("hint: every step needs its own name"), "{err}");

    // A missing secret file.
    let text = config_with(&flow_toml(
        base,
        "/nonexistent/lienthong/motcua.pass",
        "HS-1",
        "",
    ));
    let err = problems(&text);
    let line = line_of(&text, "/nonexistent/lienthong/motcua.pass");
    assert!(err.contains(&format!("tx.toml:{line}:")), "{err}");
    assert!(
        err.contains("secret `password`: cannot read file /nonexistent/lienthong/motcua.pass"),
        "{err}"
    );
    assert!(err.contains("hint: create the file"), "{err}");

    // The good flow loads.
    Config::from_str(
        Path::new("tx.toml"),
        &config_with(&flow_toml(base, &pass, "HS-1", "")),
    )
    .expect("valid flow");
}

#[test]
fn step_series_are_exported() {
    std::env::set_var("LIENTHONG_TEST_TX_API_KEY", API_KEY);
    let (_dir, pass) = secret_file();
    let text = config_with(&flow_toml("http://127.0.0.1:9", &pass, "HS-1", ""));
    let cfg = Config::from_str(Path::new("tx.toml"), &text).unwrap();
    let check = cfg.inventory.checks[0].clone();
    let m = lienthong::metrics::Metrics::new();
    m.set_inventory(&cfg.inventory, None);
    let steps = ["trang-dang-nhap", "dang-nhap", "tra-cuu", "dang-xuat"]
        .iter()
        .enumerate()
        .map(|(i, n)| lienthong::probe::StepDetails {
            name: n.to_string(),
            ran: true,
            success: i < 2 || i == 3,
            duration: Duration::from_millis(10 * (i as u64 + 1)),
            ..Default::default()
        })
        .collect();
    let o = Outcome::fail(
        Reason::JsonMismatch,
        "step=\"tra-cuu\" reason=\"json_mismatch\": x",
        Details::Transaction(Box::new(TransactionDetails {
            steps,
            failed_step: Some("tra-cuu".into()),
            cert_earliest_expiry: None,
        })),
    );
    m.record(&check, &o, std::time::SystemTime::now());
    let text = m.render();
    let l = "check=\"giao-dich\",kind=\"transaction\",service=\"thu-tuc-hanh-chinh\",site=\"\"";
    for want in [
        format!("lienthong_transaction_step_duration_seconds{{{l},step=\"dang-nhap\"}} 0.02"),
        format!("lienthong_transaction_step_duration_seconds{{{l},step=\"tra-cuu\"}} 0.03"),
        format!("lienthong_transaction_step_success{{{l},step=\"tra-cuu\"}} 0"),
        format!("lienthong_transaction_step_success{{{l},step=\"dang-xuat\"}} 1"),
        "lienthong_probe_failures_total{check=\"giao-dich\",kind=\"transaction\",reason=\"json_mismatch\",service=\"thu-tuc-hanh-chinh\",site=\"\"} 1".to_owned(),
    ] {
        assert!(text.contains(&want), "missing {want}\n{text}");
    }
    // Steps in name order within the check, as the text format's sort wants.
    let order: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("lienthong_transaction_step_success{"))
        .collect();
    assert_eq!(order.len(), 4);
    assert!(
        order[0].contains("\"dang-nhap\"") && order[3].contains("\"trang-dang-nhap\""),
        "{order:?}"
    );
    // The text writer and the prometheus encoder agree on these families too.
    let mut encoded = String::new();
    let gathered = m.gather();
    prometheus::TextEncoder::new()
        .encode_utf8(&gathered, &mut encoded)
        .unwrap();
    let pick = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.contains("lienthong_transaction_step"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(pick(&text), pick(&encoded));
}

/// In a `[[template]]`, `{code}` / `{addr.KEY}` are filled per site while a transaction's
/// `{{variable}}` is left for the run.
#[test]
fn templated_transaction_keeps_its_variables() {
    let text = config_with("").replace(
        "[inventory]",
        r#"[[template]]
name = "mot-cua"
role = "other"
title = "Một cửa"
[template.probe.transaction]
[[template.probe.transaction.step]]
name = "trang"
url = "http://127.0.0.1:9/{code}/login"
extract = [{ var = "csrf", regex = "csrf=(\\w+)" }]
[[template.probe.transaction.step]]
name = "gui"
method = "POST"
url = "http://127.0.0.1:9/{code}/login"
form = { csrf = "{{csrf}}", don_vi = "{slug}" }

[inventory]"#,
    );
    // The service check of config_with has no steps: drop it.
    let text = text.replace(
        "[service.check.probe.transaction]\n\n",
        "probe.http = { url = \"http://127.0.0.1:9/\", body_contains = \"x\" }\n",
    );
    let cfg =
        Config::from_str(Path::new("tx.toml"), &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let c = cfg
        .inventory
        .checks
        .iter()
        .find(|c| &*c.id.name == "mot-cua")
        .unwrap();
    let ProbeSpec::Transaction(t) = &c.probe else {
        panic!("{:?}", c.probe)
    };
    assert_eq!(t.steps[0].url, "http://127.0.0.1:9/1/login");
    let form = t.steps[1].form.as_ref().unwrap();
    assert_eq!(form["csrf"], "{{csrf}}");
    assert_eq!(form["don_vi"], "a");
}
