//! HTTP probe against real servers on 127.0.0.1.

mod common;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use common::tls::{serve_https, unix, Ca};
use lienthong::probe::{
    BuildContext, BuildError, Details, HttpDetails, HttpSpec, Outcome, ProbeSpec, Reason,
};
use serde_json::json;

const SLACK: Duration = Duration::from_millis(700);

fn spec(url: &str) -> HttpSpec {
    serde_json::from_value(json!({ "url": url })).expect("spec")
}

fn build(spec: &HttpSpec) -> Result<lienthong::probe::Probe, BuildError> {
    ProbeSpec::Http(spec.clone()).build(&BuildContext::default())
}

async fn run(spec: &HttpSpec, timeout: Duration) -> (Outcome, HttpDetails) {
    let probe = build(spec).expect("build");
    let outcome = probe.run(timeout).await;
    let Details::Http(details) = outcome.details.clone() else {
        panic!("not http details: {:?}", outcome.details)
    };
    (outcome, details)
}

fn assert_reason(outcome: &Outcome, reason: Reason) {
    assert_eq!(outcome.reason(), Some(reason), "outcome: {outcome:?}");
}

fn app() -> Router {
    Router::new()
        .route("/", get(|| async { "hello lienthong" }))
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .route(
            "/json",
            get(|| async {
                axum::Json(json!({"status": "ok", "count": 3, "nested": {"up": true}}))
            }),
        )
        .route("/echo", post(|body: Bytes| async move { body }))
        .route(
            "/needs-header",
            get(|headers: HeaderMap| async move {
                match headers.get("x-probe").and_then(|v| v.to_str().ok()) {
                    Some("yes") => StatusCode::OK,
                    _ => StatusCode::BAD_REQUEST,
                }
            }),
        )
        .route(
            "/user-agent",
            // The one user-agent the request carried, as the body (400 for none or several).
            get(|headers: HeaderMap| async move {
                let all: Vec<_> = headers.get_all("user-agent").iter().collect();
                match all.as_slice() {
                    [one] => (StatusCode::OK, one.to_str().unwrap_or("").to_string()),
                    _ => (StatusCode::BAD_REQUEST, String::new()),
                }
            }),
        )
        .route("/r1", get(|| async { Redirect::to("r2") }))
        .route("/r2", get(|| async { Redirect::permanent("/") }))
        .route(
            "/drip",
            get(|| async {
                let stream = futures::stream::unfold((), |()| async {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Some((Ok::<_, Infallible>(Bytes::from_static(b"x")), ()))
                });
                Body::from_stream(stream)
            }),
        )
        .route(
            "/endless",
            get(|| async {
                let chunk = Bytes::from(vec![b'x'; 16 * 1024]);
                let stream =
                    futures::stream::repeat_with(move || Ok::<_, Infallible>(chunk.clone()));
                Body::from_stream(stream)
            }),
        )
}

#[tokio::test]
async fn success_reports_status_and_phases() {
    let addr = common::serve(app()).await;
    let (outcome, d) = run(&spec(&format!("http://{addr}/")), Duration::from_secs(2)).await;
    assert!(outcome.success, "{outcome:?}");
    assert_eq!(d.status, Some(200));
    assert_eq!(d.body_bytes, "hello lienthong".len() as u64);
    let p = d.phases;
    assert!(p.resolve.is_some() && p.connect.is_some(), "{p:?}");
    assert!(p.processing.is_some() && p.transfer.is_some(), "{p:?}");
    assert_eq!(p.tls, None);
    assert!(!d.tls);
    assert_eq!(d.cert_earliest_expiry, None);
}

#[tokio::test]
async fn hostname_url_resolves_and_sets_host_header() {
    let router = Router::new().route(
        "/",
        get(|headers: HeaderMap| async move {
            let host = headers
                .get("host")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            host.to_owned()
        }),
    );
    let addr = common::serve(router).await;
    let mut s = spec(&format!("http://localhost:{}/", addr.port()));
    s.body_contains = Some(format!("localhost:{}", addr.port()));
    let (outcome, _) = run(&s, Duration::from_secs(2)).await;
    assert!(outcome.success, "{outcome:?}");
}

#[tokio::test]
async fn refused_port_is_connect_refused() {
    let addr = common::closed_port().await;
    let (outcome, d) = run(&spec(&format!("http://{addr}/")), Duration::from_secs(2)).await;
    assert_reason(&outcome, Reason::ConnectRefused);
    assert!(d.phases.connect.is_some());
    assert_eq!(d.status, None);
}

#[tokio::test]
async fn silent_server_times_out_during_processing() {
    let addr = common::silent_server().await;
    let timeout = Duration::from_secs(1);
    let started = Instant::now();
    let (outcome, d) = run(&spec(&format!("http://{addr}/")), timeout).await;
    assert!(
        started.elapsed() < timeout + SLACK,
        "took {:?}",
        started.elapsed()
    );
    assert_reason(&outcome, Reason::Timeout);
    let msg = &outcome.failure.as_ref().expect("failure").message;
    assert!(msg.contains("processing"), "{msg}");
    assert!(d.phases.connect.is_some());
    assert!(
        d.phases.processing.is_some(),
        "in-progress phase is counted"
    );
}

#[tokio::test]
async fn drip_fed_body_times_out_during_transfer() {
    let addr = common::serve(app()).await;
    let timeout = Duration::from_secs(1);
    let started = Instant::now();
    let (outcome, d) = run(&spec(&format!("http://{addr}/drip")), timeout).await;
    assert!(
        started.elapsed() < timeout + SLACK,
        "took {:?}",
        started.elapsed()
    );
    assert_reason(&outcome, Reason::Timeout);
    let msg = &outcome.failure.as_ref().expect("failure").message;
    assert!(msg.contains("transfer"), "{msg}");
    assert_eq!(d.status, Some(200));
    assert!(d.body_bytes > 0 && d.body_bytes < 20, "{}", d.body_bytes);
    assert!(d.phases.transfer.is_some());
}

#[tokio::test]
async fn endless_body_stops_at_the_cap() {
    let addr = common::serve(app()).await;
    let mut s = spec(&format!("http://{addr}/endless"));
    s.body_max_bytes = 256 * 1024;
    // A body check makes the probe keep the body: the buffer must still stay bounded.
    s.body_contains = Some("never there".into());
    let started = Instant::now();
    let (outcome, d) = run(&s, Duration::from_secs(5)).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_reason(&outcome, Reason::BodyTooLarge);
    // Read stops within one chunk of the cap; nothing more was ever buffered.
    assert!(d.body_bytes > s.body_max_bytes, "{}", d.body_bytes);
    assert!(
        d.body_bytes <= s.body_max_bytes + 512 * 1024,
        "{}",
        d.body_bytes
    );
}

#[tokio::test]
async fn declared_length_over_cap_fails_without_reading() {
    let addr = common::serve(app()).await;
    let mut s = spec(&format!("http://{addr}/"));
    s.body_max_bytes = 4;
    let (outcome, d) = run(&s, Duration::from_secs(2)).await;
    assert_reason(&outcome, Reason::BodyTooLarge);
    assert_eq!(d.status, Some(200));
}

#[tokio::test]
async fn unexpected_status_is_http_status() {
    let addr = common::serve(app()).await;
    let (outcome, d) = run(
        &spec(&format!("http://{addr}/missing")),
        Duration::from_secs(2),
    )
    .await;
    assert_reason(&outcome, Reason::HttpStatus);
    assert_eq!(d.status, Some(404));

    let mut s = spec(&format!("http://{addr}/missing"));
    s.expect_status = vec![404];
    let (outcome, _) = run(&s, Duration::from_secs(2)).await;
    assert!(outcome.success, "{outcome:?}");

    let mut s = spec(&format!("http://{addr}/"));
    s.expect_status = vec![204];
    let (outcome, _) = run(&s, Duration::from_secs(2)).await;
    assert_reason(&outcome, Reason::HttpStatus);
}

#[tokio::test]
async fn body_substring_and_regex() {
    let addr = common::serve(app()).await;
    let url = format!("http://{addr}/");
    let mut s = spec(&url);
    s.body_contains = Some("lienthong".into());
    s.body_regex = Some(r"^hello \w+$".into());
    let (outcome, _) = run(&s, Duration::from_secs(2)).await;
    assert!(outcome.success, "{outcome:?}");

    let mut s = spec(&url);
    s.body_contains = Some("goodbye".into());
    assert_reason(
        &run(&s, Duration::from_secs(2)).await.0,
        Reason::BodyMismatch,
    );

    let mut s = spec(&url);
    s.body_regex = Some(r"^\d+$".into());
    assert_reason(
        &run(&s, Duration::from_secs(2)).await.0,
        Reason::BodyMismatch,
    );
}

#[tokio::test]
async fn json_field_comparison() {
    let addr = common::serve(app()).await;
    let url = format!("http://{addr}/json");
    for (pointer, equals, ok) in [
        ("/status", "ok", true),
        ("/count", "3", true),
        ("/nested/up", "true", true),
        ("/status", "\"ok\"", false),
        ("/nested/up", "false", false),
        ("/absent", "x", false),
    ] {
        let mut s = spec(&url);
        s.expect_json = Some(
            serde_json::from_value(json!({"pointer": pointer, "equals": equals}))
                .expect("json spec"),
        );
        let (outcome, _) = run(&s, Duration::from_secs(2)).await;
        if ok {
            assert!(outcome.success, "{pointer}={equals}: {outcome:?}");
        } else {
            assert_reason(&outcome, Reason::BodyMismatch);
        }
    }
    // Not JSON at all.
    let mut s = spec(&format!("http://{addr}/"));
    s.expect_json =
        Some(serde_json::from_value(json!({"pointer": "/a", "equals": "1"})).expect("json spec"));
    assert_reason(
        &run(&s, Duration::from_secs(2)).await.0,
        Reason::BodyMismatch,
    );
}

#[tokio::test]
async fn method_headers_and_body_are_sent() {
    let addr = common::serve(app()).await;
    let mut s = spec(&format!("http://{addr}/echo"));
    s.method = "post".into();
    s.body = Some("ping-payload".into());
    s.body_contains = Some("ping-payload".into());
    let (outcome, _) = run(&s, Duration::from_secs(2)).await;
    assert!(outcome.success, "{outcome:?}");

    let mut s = spec(&format!("http://{addr}/needs-header"));
    s.headers.insert("X-Probe".into(), "yes".into());
    assert!(run(&s, Duration::from_secs(2)).await.0.success);
    let s = spec(&format!("http://{addr}/needs-header"));
    assert_reason(&run(&s, Duration::from_secs(2)).await.0, Reason::HttpStatus);
}

#[tokio::test]
async fn user_agent_is_ours_unless_configured() {
    let addr = common::serve(app()).await;
    let mut s = spec(&format!("http://{addr}/user-agent"));
    s.body_contains = Some("lienthong".into());
    let (outcome, d) = run(&s, Duration::from_secs(2)).await;
    assert!(outcome.success, "{outcome:?}");
    assert_eq!(d.body_bytes, "lienthong".len() as u64);

    // A configured one replaces ours (any spelling of the name), and is the only one sent.
    let mut s = spec(&format!("http://{addr}/user-agent"));
    s.headers
        .insert("USER-AGENT".into(), "phuong-probe/2".into());
    s.headers.insert("X-Probe".into(), "yes".into());
    s.body_contains = Some("phuong-probe/2".into());
    let (outcome, d) = run(&s, Duration::from_secs(2)).await;
    assert!(outcome.success, "{outcome:?}");
    assert_eq!(d.body_bytes, "phuong-probe/2".len() as u64);
}

#[tokio::test]
async fn redirects_followed_up_to_the_limit() {
    let addr = common::serve(app()).await;
    let url = format!("http://{addr}/r1");

    let mut s = spec(&url);
    s.max_redirects = 5;
    s.body_contains = Some("hello".into());
    let (outcome, d) = run(&s, Duration::from_secs(2)).await;
    assert!(outcome.success, "{outcome:?}");
    assert_eq!((d.status, d.redirects), (Some(200), 2));

    // Not followed: the 3xx is judged against expect_status.
    let (outcome, d) = run(&spec(&url), Duration::from_secs(2)).await;
    assert_reason(&outcome, Reason::HttpStatus);
    assert_eq!((d.status, d.redirects), (Some(303), 0));
    let mut s = spec(&url);
    s.expect_status = vec![303];
    assert!(run(&s, Duration::from_secs(2)).await.0.success);

    // Limit reached on the second hop.
    let mut s = spec(&url);
    s.max_redirects = 1;
    let (outcome, d) = run(&s, Duration::from_secs(2)).await;
    assert_reason(&outcome, Reason::HttpStatus);
    assert_eq!((d.status, d.redirects), (Some(308), 1));
}

#[tokio::test]
async fn absolute_redirect_to_another_origin_drops_credentials() {
    let target = common::serve(Router::new().route(
        "/",
        get(|headers: HeaderMap| async move {
            match headers.contains_key("authorization") {
                true => StatusCode::BAD_REQUEST,
                false => StatusCode::OK,
            }
        }),
    ))
    .await;
    let location = format!("http://{target}/");
    let origin = common::serve(Router::new().route(
        "/go",
        get(move || async move { Redirect::temporary(&location) }),
    ))
    .await;
    common::set_env("LIENTHONG_TEST_TOKEN_REDIRECT", "tok-123");
    let mut s = spec(&format!("http://{origin}/go"));
    s.max_redirects = 1;
    s.bearer_token_env = Some("LIENTHONG_TEST_TOKEN_REDIRECT".into());
    let (outcome, d) = run(&s, Duration::from_secs(2)).await;
    assert!(outcome.success, "{outcome:?}");
    assert_eq!(d.redirects, 1);
}

fn auth_app(expected: &'static str) -> Router {
    Router::new().route(
        "/",
        get(move |headers: HeaderMap| async move {
            match headers.get("authorization").and_then(|v| v.to_str().ok()) {
                Some(v) if v == expected => StatusCode::OK.into_response(),
                _ => StatusCode::UNAUTHORIZED.into_response(),
            }
        }),
    )
}

#[tokio::test]
async fn basic_auth_password_from_env() {
    // base64("probe:s3cret-pw")
    let addr = common::serve(auth_app("Basic cHJvYmU6czNjcmV0LXB3")).await;
    common::set_env("LIENTHONG_TEST_BASIC_OK", "s3cret-pw");
    common::set_env("LIENTHONG_TEST_BASIC_BAD", "wrong-pw");
    let mut s = spec(&format!("http://{addr}/"));
    s.basic_auth = Some(
        serde_json::from_value(
            json!({"username": "probe", "password_env": "LIENTHONG_TEST_BASIC_OK"}),
        )
        .expect("auth"),
    );
    let (outcome, _) = run(&s, Duration::from_secs(2)).await;
    assert!(outcome.success, "{outcome:?}");

    s.basic_auth = Some(
        serde_json::from_value(
            json!({"username": "probe", "password_env": "LIENTHONG_TEST_BASIC_BAD"}),
        )
        .expect("auth"),
    );
    let (outcome, _) = run(&s, Duration::from_secs(2)).await;
    assert_reason(&outcome, Reason::HttpStatus);
    let text = format!("{outcome:?} {:?}", build(&s).expect("build"));
    assert!(
        !text.contains("wrong-pw") && !text.contains("cHJvYmU6d3JvbmctcHc"),
        "{text}"
    );
}

#[tokio::test]
async fn bearer_token_from_env() {
    let addr = common::serve(auth_app("Bearer tok-xyz")).await;
    common::set_env("LIENTHONG_TEST_BEARER", "tok-xyz");
    let mut s = spec(&format!("http://{addr}/"));
    s.bearer_token_env = Some("LIENTHONG_TEST_BEARER".into());
    assert!(run(&s, Duration::from_secs(2)).await.0.success);
}

#[test]
fn run_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let probe = build(&spec("http://127.0.0.1:1/")).expect("build");
    assert_send(&probe.run(Duration::from_secs(1)));
}

#[test]
fn build_errors() {
    let mut s = spec("http://127.0.0.1:1/");
    s.bearer_token_env = Some("LIENTHONG_TEST_DEFINITELY_UNSET".into());
    assert!(
        matches!(build(&s), Err(BuildError::MissingEnv(v)) if v == "LIENTHONG_TEST_DEFINITELY_UNSET")
    );

    let mut s = spec("http://127.0.0.1:1/");
    s.body_regex = Some("(unclosed".into());
    assert!(matches!(
        build(&s),
        Err(BuildError::Invalid {
            field: "body_regex",
            ..
        })
    ));

    assert!(matches!(
        build(&spec("ftp://example/")),
        Err(BuildError::Invalid { field: "url", .. })
    ));
    assert!(matches!(
        build(&spec("not a url")),
        Err(BuildError::Invalid { field: "url", .. })
    ));

    let mut s = spec("https://127.0.0.1:1/");
    s.ca_file = Some("/nonexistent/ca.pem".into());
    assert!(matches!(build(&s), Err(BuildError::Io { .. })));
}

// ---- HTTPS ----

const LONG_AGO: (i32, u8, u8) = (2019, 1, 1);
const FAR: (i32, u8, u8) = (2095, 1, 1);

#[tokio::test]
async fn https_verified_with_ca_file() {
    let ca = Ca::root("lienthong test root");
    let leaf = ca.leaf(&["localhost", "127.0.0.1"], LONG_AGO, FAR, &[]);
    let addr = serve_https(app(), &leaf).await;
    let ca_file = ca.pem_file();
    for host in ["localhost", "127.0.0.1"] {
        let mut s = spec(&format!("https://{host}:{}/", addr.port()));
        s.ca_file = Some(ca_file.path().to_string_lossy().into_owned());
        s.body_contains = Some("hello".into());
        let (outcome, d) = run(&s, Duration::from_secs(2)).await;
        assert!(outcome.success, "{host}: {outcome:?}");
        assert!(d.tls && d.phases.tls.is_some(), "{d:?}");
        assert_eq!(d.cert_earliest_expiry, Some(unix(FAR)));
    }
}

#[tokio::test]
async fn https_unknown_ca_fails_but_reports_expiry() {
    let ca = Ca::root("unknown root");
    let leaf = ca.leaf(&["127.0.0.1"], LONG_AGO, FAR, &[]);
    let addr = serve_https(app(), &leaf).await;
    let (outcome, d) = run(&spec(&format!("https://{addr}/")), Duration::from_secs(2)).await;
    assert_reason(&outcome, Reason::CertUntrusted);
    let cert = d
        .cert
        .as_ref()
        .expect("the presented certificate is recorded");
    assert_eq!(cert.issuer, "CN=unknown root");
    let msg = &outcome.failure.as_ref().expect("failure").message;
    assert!(
        msg.contains("UnknownIssuer") || msg.contains("unknown"),
        "{msg}"
    );
    assert_eq!(d.cert_earliest_expiry, Some(unix(FAR)));
    assert_eq!(d.status, None);
}

#[tokio::test]
async fn https_wrong_name_fails() {
    let ca = Ca::root("lienthong test root");
    let leaf = ca.leaf(&["other.example"], LONG_AGO, FAR, &[]);
    let addr = serve_https(app(), &leaf).await;
    let ca_file = ca.pem_file();
    let mut s = spec(&format!("https://{addr}/"));
    s.ca_file = Some(ca_file.path().to_string_lossy().into_owned());
    let (outcome, _) = run(&s, Duration::from_secs(2)).await;
    assert_reason(&outcome, Reason::CertHostname);
}

/// Expired and untrusted at once (an expired certificate from an unknown CA): the reason says
/// "expired" — the one thing the team must renew — not a generic handshake error.
#[tokio::test]
async fn https_expired_and_untrusted_says_expired() {
    let ca = Ca::root("some private root");
    let leaf = ca.leaf(&["127.0.0.1"], (2018, 1, 1), (2020, 1, 1), &[]);
    let addr = serve_https(app(), &leaf).await;
    let (outcome, d) = run(&spec(&format!("https://{addr}/")), Duration::from_secs(2)).await;
    assert_reason(&outcome, Reason::CertExpired);
    let cert = d.cert.expect("recorded");
    assert_eq!(cert.not_after, unix((2020, 1, 1)));
    assert_eq!(cert.subject, "CN=127.0.0.1");
}

#[tokio::test]
async fn https_expired_leaf_fails_with_past_expiry() {
    let ca = Ca::root("lienthong test root");
    let leaf = ca.leaf(&["127.0.0.1"], (2018, 1, 1), (2020, 1, 1), &[]);
    let addr = serve_https(app(), &leaf).await;
    let ca_file = ca.pem_file();
    let mut s = spec(&format!("https://{addr}/"));
    s.ca_file = Some(ca_file.path().to_string_lossy().into_owned());
    let (outcome, d) = run(&s, Duration::from_secs(2)).await;
    assert_reason(&outcome, Reason::CertExpired);
    let msg = &outcome.failure.as_ref().expect("failure").message;
    assert!(msg.to_lowercase().contains("expired"), "{msg}");
    assert_eq!(d.cert_earliest_expiry, Some(unix((2020, 1, 1))));
}

#[tokio::test]
async fn https_without_verification_succeeds_and_reports_expiry() {
    let ca = Ca::root("unknown root");
    let leaf = ca.leaf(&["some.name"], (2018, 1, 1), (2020, 1, 1), &[]);
    let addr = serve_https(app(), &leaf).await;
    let mut s = spec(&format!("https://{addr}/"));
    s.tls_verify = false;
    let (outcome, d) = run(&s, Duration::from_secs(2)).await;
    assert!(outcome.success, "{outcome:?}");
    assert_eq!(d.status, Some(200));
    assert_eq!(d.cert_earliest_expiry, Some(unix((2020, 1, 1))));
}

#[tokio::test]
async fn https_earliest_expiry_is_min_over_chain() {
    let root = Ca::root("lienthong test root");
    let inter = root.intermediate("lienthong intermediate", (2090, 1, 1));
    let leaf = inter.leaf(&["127.0.0.1"], LONG_AGO, FAR, &[&inter]);
    let addr = serve_https(app(), &leaf).await;
    let ca_file = root.pem_file();
    let mut s = spec(&format!("https://{addr}/"));
    s.ca_file = Some(ca_file.path().to_string_lossy().into_owned());
    let (outcome, d) = run(&s, Duration::from_secs(2)).await;
    assert!(outcome.success, "{outcome:?}");
    assert_eq!(d.cert_earliest_expiry, Some(unix((2090, 1, 1))));
}
