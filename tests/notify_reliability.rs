//! Notifications under a stepped wall clock and across `[[notify]]` reloads, with real webhook
//! receivers on 127.0.0.1:0.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use lienthong::config::{HumanDuration, NotifyKind, NotifyTarget};
use lienthong::incidents::{EventKind, NewEvent, NewIncident, Scope, Severity, Store};
use lienthong::notify::Notifier;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Records every POST (arrival time, body); answers 500 to the first `fail` requests.
#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<(Instant, Value)>>>,
    fail: Arc<Mutex<usize>>,
}

async fn record(State(r): State<Receiver>, body: axum::body::Bytes) -> StatusCode {
    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
    r.seen.lock().unwrap().push((Instant::now(), v));
    let mut fail = r.fail.lock().unwrap();
    if *fail > 0 {
        *fail -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::OK
}

impl Receiver {
    async fn start(fail: usize) -> (Receiver, String) {
        let r = Receiver::default();
        *r.fail.lock().unwrap() = fail;
        let app = Router::new().fallback(post(record)).with_state(r.clone());
        let addr = common::serve(app).await;
        (r, format!("http://{addr}/hook"))
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn times(&self) -> Vec<Instant> {
        self.seen.lock().unwrap().iter().map(|(t, _)| *t).collect()
    }

    fn keys(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, v)| v["incident"]["key"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    async fn wait_for(&self, n: usize, within: Duration) -> bool {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if self.count() >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.count() >= n
    }
}

fn target(name: &str, url: &str) -> NotifyTarget {
    NotifyTarget {
        name: name.into(),
        kind: NotifyKind::Webhook,
        url: url.into(),
        bearer_token_env: None,
        severities: vec![],
        teams: vec![],
        timeout: HumanDuration(Duration::from_secs(2)),
        quiet_hours: None,
    }
}

fn open(store: &Store, key: &str, at: i64, notify: &[&str]) -> i64 {
    let notify: Vec<String> = notify.iter().map(|s| s.to_string()).collect();
    store
        .open_incident(
            &NewIncident {
                key: key.into(),
                title: "Mất kết nối: Phường A".into(),
                title_en: "Link down: Phường A".into(),
                severity: Severity::Critical,
                scope: Scope::Site,
                sites: vec!["phuong-a".into()],
                service: None,
                teams: vec![],
            },
            &NewEvent {
                at,
                kind: EventKind::Opened,
                check: Some(format!("{key}/link")),
                state: Some("down".into()),
                message: "Mất kết nối".into(),
                evidence: None,
            },
            &notify,
        )
        .unwrap()
        .0
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    registry: prometheus::Registry,
    cancel: CancellationToken,
}

impl Fixture {
    fn new() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("x.db")).unwrap());
        Fixture {
            _dir: dir,
            store,
            registry: prometheus::Registry::new(),
            cancel: CancellationToken::new(),
        }
    }

    fn metric(&self, name: &str, target: &str, result: &str) -> f64 {
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap();
        let want = format!("{name}{{result=\"{result}\",target=\"{target}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&want))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_stored_an_hour_ahead_by_a_stepped_clock_is_delivered_within_its_retry_bound() {
    let fx = Fixture::new();
    let (rx, url) = Receiver::start(0).await;
    open(&fx.store, "site/phuong-a", now_ms(), &["hook"]);
    // A failed attempt whose retry was stamped by a clock running an hour ahead, which has
    // been set back since (attempts = 1: the retry bound is backoff(1) = 2.2 s at most).
    let row = fx.store.due_outbox(i64::MAX, 10).unwrap().remove(0);
    fx.store
        .outbox_failed(row.id, now_ms() + 3_600_000, "HTTP 500")
        .unwrap();
    let started = Instant::now();
    let n = Notifier::new(fx.store.clone(), vec![target("hook", &url)], &fx.registry).unwrap();
    tokio::spawn(n.run(fx.cancel.clone()));
    assert!(
        rx.wait_for(1, Duration::from_secs(5)).await,
        "not delivered"
    );
    let took = started.elapsed();
    eprintln!("row stored 1 h ahead delivered after {took:?}");
    assert!(
        took < Duration::from_millis(2_200),
        "delivered after {took:?}, over its retry bound"
    );
    assert_eq!(drained(&fx.store).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_stepped_forward_then_back_keeps_retries_on_time() {
    let fx = Fixture::new();
    let (rx, url) = Receiver::start(1).await;
    // A virtual wall clock: real time plus an offset the test steps.
    let offset = Arc::new(AtomicI64::new(0));
    let o = offset.clone();
    let wall = Arc::new(move || {
        let off = o.load(Ordering::Relaxed);
        let now = SystemTime::now();
        if off >= 0 {
            now + Duration::from_millis(off as u64)
        } else {
            now - Duration::from_millis(off.unsigned_abs())
        }
    });
    let n = Notifier::new(fx.store.clone(), vec![target("hook", &url)], &fx.registry)
        .unwrap()
        .with_wall_clock(wall);
    let poke = n.poke_handle();
    tokio::spawn(n.run(fx.cancel.clone()));

    // The clock jumps an hour ahead; the first delivery fails and its retry is stamped there.
    offset.store(3_600_000, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(700)).await;
    open(&fx.store, "site/phuong-a", now_ms() + 3_600_000, &["hook"]);
    poke.notify_one();
    assert!(
        rx.wait_for(1, Duration::from_secs(3)).await,
        "first attempt"
    );
    // ... and is set back right after.
    offset.store(0, Ordering::Relaxed);
    assert!(
        rx.wait_for(2, Duration::from_secs(5)).await,
        "retry never came after the clock went back"
    );
    let t = rx.times();
    let gap = t[1] - t[0];
    eprintln!("retry after the clock step back: {gap:?} (backoff 1.0–1.1 s)");
    // Backoff (≤ 1.1 s) plus two delivery ticks of 500 ms (and slack for a loaded CI box);
    // without the fix: an hour.
    assert!(gap < Duration::from_millis(5_000), "retry after {gap:?}");
    assert_eq!(drained(&fx.store).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloaded_targets_apply_to_queued_and_new_rows() {
    let fx = Fixture::new();
    let closed = common::closed_port().await;
    let dead = format!("http://{closed}/hook");
    let (moved, moved_url) = Receiver::start(0).await;
    let (fresh, fresh_url) = Receiver::start(0).await;
    let n = Notifier::new(
        fx.store.clone(),
        vec![target("hook", &dead), target("gone", &dead)],
        &fx.registry,
    )
    .unwrap();
    let poke = n.poke_handle();
    let reload = n.targets_handle();
    tokio::spawn(n.run(fx.cancel.clone()));

    // Both targets fail (nothing listens) and back off with their rows queued.
    open(&fx.store, "site/a", now_ms(), &["hook", "gone"]);
    poke.notify_one();
    let deadline = Instant::now() + Duration::from_secs(5);
    while fx.metric("lienthong_notifications_total", "hook", "failed") < 1.0
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(fx.store.outbox_pending().unwrap(), 2);
    assert!(fx.metric("lienthong_notifications_total", "hook", "failed") >= 1.0);

    // `hook` moves to a live receiver, `gone` is removed, `fresh` is new.
    reload.set(vec![
        target("hook", &moved_url),
        target("fresh", &fresh_url),
    ]);
    assert!(
        moved.wait_for(1, Duration::from_secs(3)).await,
        "queued row delivered to the new URL"
    );
    assert_eq!(moved.keys(), vec!["site/a"]);
    let until = Instant::now() + Duration::from_secs(3);
    while fx.store.outbox_pending().unwrap() > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        fx.store.outbox_pending().unwrap(),
        0,
        "the removed target's row was dropped"
    );
    assert_eq!(
        fx.metric("lienthong_notifications_total", "gone", "dropped"),
        1.0
    );

    // New events reach the new target too.
    open(&fx.store, "site/b", now_ms(), &["hook", "fresh"]);
    poke.notify_one();
    assert!(
        fresh.wait_for(1, Duration::from_secs(3)).await,
        "new target"
    );
    assert!(moved.wait_for(2, Duration::from_secs(3)).await);
    assert_eq!(fresh.keys(), vec!["site/b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reload_moves_deliveries_to_the_new_url() {
    let (a, url_a) = Receiver::start(0).await;
    let (b, url_b) = Receiver::start(0).await;
    let dir = tempfile::tempdir().unwrap();
    let notify =
        |url: &str| format!("[[notify]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{url}\"\n");
    let db = dir.path().join("lienthong.db");
    let text = common::svc::config(&db, &notify(&url_a));
    let svc = common::svc::start(dir.path().join("probes.toml"), &text).await;
    // The site's endpoint is down (closed port): its incident reaches A.
    assert!(
        a.wait_for(1, Duration::from_secs(20)).await,
        "first incident notified"
    );
    // Reload: the target moves to B, and a second site (also down) appears.
    let second = r#"  { code = "2", slug = "xa-b", name = "Xã B", kind = "xa", former_province = "tphcm", former_district = "Huyện Cần Giờ", island = false, lat = 10.4, lon = 106.9, link_class = "mainland", addr = { endpoint = "http://127.0.0.1:1/" } },
]"#;
    let text2 =
        common::svc::config(&db, &notify(&url_b)).replacen("\n]", &format!("\n{second}"), 1);
    std::fs::write(&svc.config, text2).unwrap();
    let before = a.count();
    svc.reload.send(()).await.unwrap();
    let got = b.wait_for(1, Duration::from_secs(20)).await;
    if !got {
        let (_, inc) = svc.get("/api/v1/incidents").await;
        let (_, m) = svc.get("/metrics").await;
        let m: Vec<&str> = m
            .lines()
            .filter(|l| l.contains("reload") || l.contains("notif"))
            .collect();
        panic!(
            "the new site's incident did not reach the new URL: a={:?} {inc}\n{m:#?}",
            a.keys()
        );
    }
    assert!(
        b.keys().iter().any(|k| k.contains("xa-b")),
        "{:?}",
        b.keys()
    );
    assert_eq!(a.count(), before, "nothing more to the old URL");
    svc.stop().await;
}

/// Rows still pending after waiting up to 3 s: the receiver answers before the notifier marks
/// the row delivered, so "received" does not mean "not pending" yet.
async fn drained(store: &lienthong::incidents::Store) -> u64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let n = store.outbox_pending().unwrap();
        if n == 0 || std::time::Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
