//! Notification delivery from the outbox to real HTTP receivers on 127.0.0.1.

mod common;

use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use lienthong::config::{HumanDuration, NotifyKind, NotifyTarget};
use lienthong::incidents::{EventKind, NewEvent, NewIncident, Scope, Severity, Store};
use lienthong::localtime::format_rfc3339;
use lienthong::notify::{targets_for, Notifier};

const TOKEN_VAR: &str = "LIENTHONG_TEST_NOTIFY_TOKEN";
const TOKEN: &str = "s3cr3t-token-value";

/// Process-wide setup, done once before any test touches the environment or builds a client.
fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var(TOKEN_VAR, TOKEN);
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[derive(Debug, Clone)]
struct Recorded {
    at: Instant,
    path: String,
    headers: HeaderMap,
    body: Value,
}

#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<Recorded>>>,
    /// Answer 500 to this many requests first.
    fail_first: Arc<Mutex<usize>>,
}

impl Receiver {
    fn failing(n: usize) -> Self {
        let r = Receiver::default();
        *r.fail_first.lock().unwrap() = n;
        r
    }

    fn router(&self) -> Router {
        Router::new()
            .fallback(post(record))
            .with_state(self.clone())
    }

    fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize, within: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + within;
        loop {
            let seen = self.requests();
            if seen.len() >= n || Instant::now() > deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn record(
    State(r): State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    r.seen.lock().unwrap().push(Recorded {
        at: Instant::now(),
        path: uri.path().to_string(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let mut fail = r.fail_first.lock().unwrap();
    if *fail > 0 {
        *fail -= 1;
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

fn target(name: &str, kind: NotifyKind, url: String) -> NotifyTarget {
    NotifyTarget {
        name: name.to_string(),
        kind,
        url,
        bearer_token_env: None,
        severities: vec![],
        teams: vec![],
        timeout: HumanDuration(Duration::from_secs(2)),
        quiet_hours: None,
    }
}

fn new_incident(key: &str) -> NewIncident {
    NewIncident {
        key: key.to_string(),
        title: "Mất kết nối: Phường Bến Thành".into(),
        title_en: "Link down: Ben Thanh Ward".into(),
        severity: Severity::Critical,
        scope: Scope::Site,
        sites: vec!["phuong-ben-thanh".into()],
        service: None,
        teams: vec!["trung-tam".into()],
    }
}

fn event(kind: EventKind, at: i64, state: &str, message: &str) -> NewEvent {
    NewEvent {
        at,
        kind,
        check: Some("site/phuong-ben-thanh/link".into()),
        state: Some(state.into()),
        message: message.into(),
        evidence: Some(serde_json::json!({"reason": "timeout", "loss": 1.0})),
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    registry: prometheus::Registry,
    cancel: CancellationToken,
}

impl Fixture {
    fn new() -> Self {
        setup();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("x.db")).unwrap());
        Fixture {
            _dir: dir,
            store,
            registry: prometheus::Registry::new(),
            cancel: CancellationToken::new(),
        }
    }

    fn start(&self, targets: Vec<NotifyTarget>) -> Arc<tokio::sync::Notify> {
        let n = Notifier::new(self.store.clone(), targets, &self.registry).unwrap();
        let poke = n.poke_handle();
        tokio::spawn(n.run(self.cancel.clone()));
        poke
    }

    fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        for mf in self.registry.gather() {
            if mf.name() != name {
                continue;
            }
            for m in mf.get_metric() {
                let ok = labels.iter().all(|(k, v)| {
                    m.get_label()
                        .iter()
                        .any(|l| l.name() == *k && l.value() == *v)
                });
                if ok {
                    if mf.get_field_type() == prometheus::proto::MetricType::COUNTER {
                        return Some(m.get_counter().get_value());
                    }
                    return Some(m.get_gauge().get_value());
                }
            }
        }
        None
    }

    async fn wait_pending(&self, n: u64, within: Duration) -> u64 {
        let deadline = Instant::now() + within;
        loop {
            let p = self.store.outbox_pending().unwrap();
            if p == n || Instant::now() > deadline {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

#[test]
fn targets_for_filters() {
    let mk = |name: &str, sev: &[&str], teams: &[&str]| NotifyTarget {
        severities: sev.iter().map(|s| s.to_string()).collect(),
        teams: teams.iter().map(|s| s.to_string()).collect(),
        ..target(name, NotifyKind::Webhook, "http://127.0.0.1:1/".into())
    };
    let targets = vec![
        mk("all", &[], &[]),
        mk("crit", &["critical"], &[]),
        mk("warn", &["warning"], &[]),
        mk("both", &["Critical", "warning"], &[]),
        mk("tt", &[], &["trung-tam"]),
        mk("tt-crit", &["critical"], &["trung-tam", "thu-duc"]),
        mk("bd", &[], &["binh-duong"]),
    ];
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let cases: Vec<(Vec<String>, Severity, Vec<String>)> = vec![
        (
            s(&["trung-tam"]),
            Severity::Critical,
            s(&["all", "crit", "both", "tt", "tt-crit"]),
        ),
        (
            s(&["trung-tam"]),
            Severity::Warning,
            s(&["all", "warn", "both", "tt"]),
        ),
        (
            s(&["thu-duc"]),
            Severity::Critical,
            s(&["all", "crit", "both", "tt-crit"]),
        ),
        (
            s(&["binh-duong", "trung-tam"]),
            Severity::Warning,
            s(&["all", "warn", "both", "tt", "bd"]),
        ),
        (s(&[]), Severity::Warning, s(&["all", "warn", "both"])),
    ];
    for (teams, sev, want) in cases {
        assert_eq!(
            targets_for(&teams, sev, &targets),
            want,
            "{teams:?} {sev:?}"
        );
    }
    assert!(targets_for(&s(&["x"]), Severity::Critical, &[]).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_delivered_once_with_body_and_key() {
    let fx = Fixture::new();
    let rx = Receiver::default();
    let addr = common::serve(rx.router()).await;
    let poke = fx.start(vec![target(
        "hook",
        NotifyKind::Webhook,
        format!("http://{addr}/hooks/lienthong"),
    )]);

    let t0 = now_ms();
    let (id, created) = fx
        .store
        .open_incident(
            &new_incident("site/phuong-ben-thanh/link"),
            &event(EventKind::Opened, t0, "down", "Mất kết nối (timeout)"),
            &["hook".into()],
        )
        .unwrap();
    assert!(created);
    poke.notify_one();

    let seen = rx.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(seen.len(), 1, "one delivery");
    assert_eq!(fx.wait_pending(0, Duration::from_secs(2)).await, 0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.requests().len(), 1, "delivered exactly once");

    let r = &seen[0];
    assert_eq!(r.path, "/hooks/lienthong");
    let inc = fx.store.get(id).unwrap().unwrap();
    let ev = &inc.events[0];
    let key = format!("{}:hook", ev.id);
    assert_eq!(r.headers["idempotency-key"], key.as_str());
    assert!(r.headers.get("authorization").is_none());
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let b = &r.body;
    assert_eq!(b["idempotency_key"], key.as_str());
    assert_eq!(b["event"]["id"], ev.id);
    assert_eq!(b["event"]["kind"], "opened");
    assert_eq!(b["event"]["at"], format_rfc3339(t0).as_str());
    assert_eq!(b["event"]["check"], "site/phuong-ben-thanh/link");
    assert_eq!(b["event"]["state"], "down");
    assert_eq!(b["event"]["message"], "Mất kết nối (timeout)");
    assert_eq!(b["event"]["evidence"]["reason"], "timeout");
    let i = &b["incident"];
    assert_eq!(i["id"], id);
    assert_eq!(i["key"], "site/phuong-ben-thanh/link");
    assert_eq!(i["title"], "Mất kết nối: Phường Bến Thành");
    assert_eq!(i["title_en"], "Link down: Ben Thanh Ward");
    assert_eq!(i["severity"], "critical");
    assert_eq!(i["scope"], "site");
    assert_eq!(i["state"], "open");
    assert_eq!(i["sites"], serde_json::json!(["phuong-ben-thanh"]));
    assert_eq!(i["service"], Value::Null);
    assert_eq!(i["teams"], serde_json::json!(["trung-tam"]));
    assert_eq!(i["started_at"], format_rfc3339(t0).as_str());
    assert_eq!(i["acknowledged_at"], Value::Null);
    assert_eq!(i["resolved_at"], Value::Null);

    let labels = [("target", "hook"), ("result", "delivered")];
    assert_eq!(
        fx.metric("lienthong_notifications_total", &labels),
        Some(1.0)
    );
    let failed = [("target", "hook"), ("result", "failed")];
    assert_eq!(
        fx.metric("lienthong_notifications_total", &failed),
        Some(0.0)
    );
    let last = fx
        .metric(
            "lienthong_notification_last_success_timestamp_seconds",
            &[("target", "hook")],
        )
        .unwrap();
    assert!(last * 1000.0 >= t0 as f64 - 1000.0, "{last}");
    assert_eq!(fx.metric("lienthong_notifications_pending", &[]), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_receiver_down_then_back_delivers_once() {
    let fx = Fixture::new();
    let held = common::HeldPort::bind();
    let addr = held.addr;
    let poke = fx.start(vec![target(
        "hook",
        NotifyKind::Webhook,
        format!("http://{addr}/"),
    )]);
    let (id, _) = fx
        .store
        .open_incident(
            &new_incident("site/phuong-ben-thanh/link"),
            &event(EventKind::Opened, now_ms(), "down", "Mất kết nối"),
            &["hook".into()],
        )
        .unwrap();
    poke.notify_one();

    // Down for ~2 s: attempts at ~0 s and ~1 s (backoff 1 s, then 2 s) fail with a connection
    // error that is recorded on the row.
    let deadline = Instant::now() + Duration::from_secs(6);
    let rows = loop {
        let rows = fx.store.due_outbox(i64::MAX, 10).unwrap();
        if rows.first().is_some_and(|r| r.attempts >= 2) || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(rows.len(), 1);
    assert!(rows[0].attempts >= 2, "attempts recorded: {rows:?}");
    let err = rows[0].last_error.clone().unwrap();
    assert!(
        !err.contains(&addr.port().to_string()),
        "no URL in the error: {err}"
    );
    assert!(
        err.to_lowercase().contains("connect") || err.contains("refused"),
        "{err}"
    );
    let failed = [("target", "hook"), ("result", "failed")];
    assert!(fx.metric("lienthong_notifications_total", &failed).unwrap() >= 2.0);
    assert_eq!(fx.metric("lienthong_notifications_pending", &[]), Some(1.0));

    // The receiver comes back on the same port.
    let rx = Receiver::default();
    let listener = held.listen();
    let router = rx.router();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let seen = rx.wait_for(1, Duration::from_secs(8)).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(fx.wait_pending(0, Duration::from_secs(2)).await, 0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.requests().len(), 1, "delivered exactly once");
    let ev = &fx.store.get(id).unwrap().unwrap().events[0];
    assert_eq!(
        seen[0].headers["idempotency-key"],
        format!("{}:hook", ev.id).as_str()
    );
    let ok = [("target", "hook"), ("result", "delivered")];
    assert_eq!(fx.metric("lienthong_notifications_total", &ok), Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_500s_retried_with_backoff_and_same_key() {
    let fx = Fixture::new();
    let rx = Receiver::failing(3);
    let addr = common::serve(rx.router()).await;
    let poke = fx.start(vec![target(
        "hook",
        NotifyKind::Webhook,
        format!("http://{addr}/"),
    )]);
    let t0 = now_ms();
    let (id, _) = fx
        .store
        .open_incident(
            &new_incident("site/phuong-ben-thanh/link"),
            &event(EventKind::Opened, t0, "down", "Mất kết nối"),
            &["hook".into()],
        )
        .unwrap();
    // A second event of the same incident, queued behind the first: delivered after it.
    let ev2 = fx
        .store
        .append_event(
            id,
            &event(EventKind::StateChange, t0 + 1, "down", "Vẫn mất kết nối"),
            &["hook".into()],
        )
        .unwrap();
    poke.notify_one();

    // 3 failures (backoff 1 s, 2 s, 4 s) then success: ~7 s.
    let seen = rx.wait_for(5, Duration::from_secs(12)).await;
    assert_eq!(seen.len(), 5, "3 failed + 2 delivered: {seen:?}");
    assert_eq!(fx.wait_pending(0, Duration::from_secs(2)).await, 0);
    let keys: Vec<&str> = seen
        .iter()
        .map(|r| r.headers["idempotency-key"].to_str().unwrap())
        .collect();
    let inc = fx.store.get(id).unwrap().unwrap();
    let k1 = format!("{}:hook", inc.events[0].id);
    let k2 = format!("{ev2}:hook");
    assert_eq!(
        keys,
        vec![k1.as_str(), &k1, &k1, &k1, &k2],
        "same key, in order"
    );
    for r in &seen {
        assert_eq!(
            r.body["idempotency_key"],
            r.headers["idempotency-key"].to_str().unwrap()
        );
    }
    let gaps: Vec<Duration> = seen.windows(2).map(|w| w[1].at - w[0].at).collect();
    for (i, want) in [1000u64, 2000, 4000].into_iter().enumerate() {
        let g = gaps[i].as_millis() as u64;
        assert!(
            // Backoff +10 % jitter, plus up to a 500 ms tick and the store round-trip (slow
            // on a loaded CI box).
            g + 50 >= want && g <= want + want / 10 + 1500,
            "gap {i}: {g} ms, want ~{want}"
        );
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        rx.requests().len(),
        5,
        "nothing delivered twice after success"
    );
    let failed = [("target", "hook"), ("result", "failed")];
    assert_eq!(
        fx.metric("lienthong_notifications_total", &failed),
        Some(3.0)
    );
    let ok = [("target", "hook"), ("result", "delivered")];
    assert_eq!(fx.metric("lienthong_notifications_total", &ok), Some(2.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_firing_then_resolved() {
    let fx = Fixture::new();
    let rx = Receiver::default();
    let addr = common::serve(rx.router()).await;
    let poke = fx.start(vec![target(
        "am",
        NotifyKind::Alertmanager,
        format!("http://{addr}/"),
    )]);
    let t0 = now_ms();
    let (id, _) = fx
        .store
        .open_incident(
            &new_incident("site/phuong-ben-thanh/link"),
            &event(EventKind::Opened, t0, "down", "Mất kết nối (timeout)"),
            &["am".into()],
        )
        .unwrap();
    poke.notify_one();
    let seen = rx.wait_for(1, Duration::from_secs(5)).await;
    assert!(!seen.is_empty());
    assert_eq!(fx.wait_pending(0, Duration::from_secs(3)).await, 0);
    let seen = rx.requests();
    for r in &seen {
        assert_eq!(r.path, "/api/v2/alerts");
    }
    let firing = &seen.last().unwrap().body;
    let alerts = firing.as_array().expect("an array of alerts");
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!(
        a["labels"],
        serde_json::json!({
            "alertname": "LienthongIncident",
            "incident_id": id.to_string(),
            "key": "site/phuong-ben-thanh/link",
            "kind": "link_down",
            "severity": "critical",
            "scope": "site",
            "team": "trung-tam",
            "site": "phuong-ben-thanh",
        })
    );
    assert_eq!(a["annotations"]["summary"], "Mất kết nối: Phường Bến Thành");
    assert_eq!(a["annotations"]["summary_en"], "Link down: Ben Thanh Ward");
    assert_eq!(a["annotations"]["description"], "Mất kết nối (timeout)");
    assert_eq!(a["annotations"]["sites"], "phuong-ben-thanh");
    assert_eq!(a["startsAt"], format_rfc3339(t0).as_str());
    let ends = a["endsAt"].as_str().unwrap();
    assert!(
        ends > format_rfc3339(now_ms() + 60_000).as_str(),
        "a firing alert ends in the future: {ends}"
    );
    assert!(a.get("generatorURL").is_none());

    let n = rx.requests().len();
    let t1 = now_ms();
    assert!(fx
        .store
        .resolve(
            id,
            &event(EventKind::Resolved, t1, "up", "Đã kết nối lại"),
            &["am".into()]
        )
        .unwrap());
    poke.notify_one();
    // The resolution is the next outbox delivery (it carries an idempotency key); a periodic
    // refresh of the open alert may arrive around it and is not it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let resolved = loop {
        let seen = rx.requests();
        if let Some(r) = seen[n..]
            .iter()
            .find(|r| r.headers.contains_key("idempotency-key"))
        {
            break r.clone();
        }
        assert!(Instant::now() < deadline, "no resolution after {seen:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let a = &resolved.body[0];
    assert_eq!(
        a["endsAt"],
        format_rfc3339(t1).as_str(),
        "resolved: endsAt = resolved_at"
    );
    assert_eq!(a["startsAt"], format_rfc3339(t0).as_str());
    assert_eq!(a["annotations"]["description"], "Đã kết nối lại");
    assert_eq!(a["labels"]["key"], "site/phuong-ben-thanh/link");
    assert_eq!(
        resolved.headers["idempotency-key"],
        format!("{}:am", fx.store.get(id).unwrap().unwrap().events[1].id).as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_service_incident_labels_and_open_refresh() {
    let fx = Fixture::new();
    let rx = Receiver::default();
    let addr = common::serve(rx.router()).await;
    let sites: Vec<String> = (0..60).map(|i| format!("xa-{i}")).collect();
    let inc = NewIncident {
        key: "service/lgsp".into(),
        title: "Sự cố dịch vụ dùng chung: LGSP".into(),
        title_en: "Shared service down: LGSP".into(),
        severity: Severity::Warning,
        scope: Scope::Service,
        sites: sites.clone(),
        service: Some("lgsp".into()),
        teams: vec!["trung-tam".into(), "thu-duc".into()],
    };
    // No outbox row at all (notify = []): the open incident still reaches Alertmanager through
    // the periodic refresh, so it never expires there.
    let (id, _) = fx
        .store
        .open_incident(
            &inc,
            &event(EventKind::Opened, now_ms(), "down", "LGSP lỗi"),
            &[],
        )
        .unwrap();
    let n = Notifier::new(
        fx.store.clone(),
        vec![target(
            "am",
            NotifyKind::Alertmanager,
            format!("http://{addr}"),
        )],
        &fx.registry,
    )
    .unwrap()
    .with_alertmanager_refresh(Duration::from_millis(700));
    tokio::spawn(n.run(fx.cancel.clone()));
    let seen = rx.wait_for(2, Duration::from_secs(5)).await;
    assert!(seen.len() >= 2, "refreshed periodically: {}", seen.len());
    let a = &seen[0].body[0];
    assert_eq!(seen[0].path, "/api/v2/alerts");
    assert_eq!(
        a["labels"],
        serde_json::json!({
            "alertname": "LienthongIncident",
            "incident_id": id.to_string(),
            "key": "service/lgsp",
            "kind": "service_down",
            "severity": "warning",
            "scope": "service",
            "team": "trung-tam,thu-duc",
            "service": "lgsp",
        })
    );
    let s = a["annotations"]["sites"].as_str().unwrap();
    assert!(s.starts_with("xa-0, xa-1, "), "{s}");
    assert!(s.ends_with("xa-49, … và 10 nơi khác"), "{s}");
    assert!(seen[0].headers.get("idempotency-key").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_sent_when_configured() {
    let fx = Fixture::new();
    let rx = Receiver::default();
    let addr = common::serve(rx.router()).await;
    let mut with_token = target(
        "secure",
        NotifyKind::Webhook,
        format!("http://{addr}/secure"),
    );
    with_token.bearer_token_env = Some(TOKEN_VAR.into());
    let plain = target("plain", NotifyKind::Webhook, format!("http://{addr}/plain"));
    let poke = fx.start(vec![with_token, plain]);
    fx.store
        .open_incident(
            &new_incident("site/phuong-ben-thanh/link"),
            &event(EventKind::Opened, now_ms(), "down", "Mất kết nối"),
            &["secure".into(), "plain".into()],
        )
        .unwrap();
    poke.notify_one();
    let seen = rx.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(seen.len(), 2);
    for r in &seen {
        match r.path.as_str() {
            "/secure" => assert_eq!(
                r.headers["authorization"],
                format!("Bearer {TOKEN}").as_str()
            ),
            "/plain" => assert!(r.headers.get("authorization").is_none()),
            p => panic!("unexpected path {p}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_for_unknown_targets_are_parked_not_spun() {
    let fx = Fixture::new();
    let rx = Receiver::default();
    let addr = common::serve(rx.router()).await;
    let poke = fx.start(vec![target(
        "hook",
        NotifyKind::Webhook,
        format!("http://{addr}/"),
    )]);
    fx.store
        .open_incident(
            &new_incident("site/phuong-ben-thanh/link"),
            &event(EventKind::Opened, now_ms(), "down", "Mất kết nối"),
            &["removed".into(), "hook".into()],
        )
        .unwrap();
    poke.notify_one();
    rx.wait_for(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.requests().len(), 1);
    let rows = fx.store.due_outbox(i64::MAX, 10).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].target, "removed");
    assert_eq!(rows[0].attempts, 1, "looked at once, then parked");
    // Parked for the retry cap (5 min): never further ahead, see the clock-step rule.
    assert!(rows[0].next_attempt_at > now_ms() + 4 * 60_000);
    assert!(rows[0]
        .last_error
        .as_deref()
        .unwrap()
        .contains("not configured"));
    assert_eq!(fx.metric("lienthong_notifications_pending", &[]), Some(1.0));
}
