//! Escalation and acknowledgement (issue 11, item 1) and team figures (item 2): escalation steps
//! and acknowledgement expiry on the engine's virtual clock, delivered through the real outbox
//! to real webhook receivers on 127.0.0.1; quiet hours; restart; the write API's 4xx answers;
//! team figures against a scripted set of incidents, and their Prometheus series.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{StatusCode as AxStatus, Uri};
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use lienthong::config::{Config, Inventory};
use lienthong::incidents::correlation::IncidentEngine;
use lienthong::incidents::escalation::UnackReason;
use lienthong::incidents::figures::{compute, TeamMetrics};
use lienthong::incidents::*;
use lienthong::notify::Notifier;

/// Virtual time zero: 2026-11-25 00:00 UTC.
const T0: i64 = 1_795_564_800_000;
const MIN: i64 = 60_000;

fn at(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms as u64)
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

// --- a webhook receiver ------------------------------------------------------------------

#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<(String, Value, i64)>>>,
    /// The wall clock the receiver stamps requests with (the notifier's, in the quiet test).
    offset_ms: Arc<AtomicI64>,
}

async fn record(State(r): State<Receiver>, uri: Uri, body: axum::body::Bytes) -> AxStatus {
    r.seen.lock().unwrap().push((
        uri.path().to_string(),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
        wall_ms() + r.offset_ms.load(Ordering::SeqCst),
    ));
    AxStatus::OK
}

impl Receiver {
    async fn start(offset_ms: i64) -> (Receiver, String) {
        let r = Receiver {
            offset_ms: Arc::new(AtomicI64::new(offset_ms)),
            ..Default::default()
        };
        let addr = common::serve(Router::new().fallback(post(record)).with_state(r.clone())).await;
        (r, format!("http://{addr}"))
    }

    fn requests(&self) -> Vec<(String, Value, i64)> {
        self.seen.lock().unwrap().clone()
    }

    async fn wait_for(&self, pred: impl Fn(&[(String, Value, i64)]) -> bool, within: Duration) {
        let deadline = Instant::now() + within;
        while !pred(&self.requests()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

// --- config ------------------------------------------------------------------------------

/// The shipped probes.toml with escalation steps on the team of the former HCMC and three
/// webhook targets (paths tell them apart at one receiver).
fn inventory(base: &str, quiet: Option<&str>) -> Inventory {
    let text = std::fs::read_to_string("probes.toml").unwrap();
    let anchor = "former_provinces = [\"tphcm\"]\n";
    assert!(text.contains(anchor));
    let steps = "former_provinces = [\"tphcm\"]\n\n\
                 [[team.escalation]]\nafter = \"10m\"\nnotify = [\"to-truong\"]\n\n\
                 [[team.escalation]]\nafter = \"30m\"\nnotify = [\"truong-phong\", \"to-truong\"]\n";
    let mut text = text.replacen(anchor, steps, 1);
    let quiet = quiet
        .map(|q| format!("quiet_hours = \"{q}\"\n"))
        .unwrap_or_default();
    text.push_str(&format!(
        "\n[[notify]]\nname = \"to-truong\"\nkind = \"webhook\"\nurl = \"{base}/to-truong\"\n{quiet}\
         teams = [\"khong-co-to-nay\"]\n\n\
         [[notify]]\nname = \"truong-phong\"\nkind = \"webhook\"\nurl = \"{base}/truong-phong\"\n\
         teams = [\"khong-co-to-nay\"]\n"
    ));
    (*Config::from_str(Path::new("probes.toml"), &text)
        .unwrap_or_else(|e| panic!("{e}"))
        .inventory)
        .clone()
}

fn open_site_incident(store: &Store, site: &str, severity: Severity, t: i64) -> i64 {
    let new = NewIncident {
        key: format!("site/{site}/link"),
        title: format!("Mất kết nối: {site}"),
        title_en: format!("Link down: {site}"),
        severity,
        scope: Scope::Site,
        sites: vec![site.into()],
        service: None,
        teams: vec!["to-tphcm".into()],
    };
    let ev = NewEvent {
        at: t,
        kind: EventKind::Opened,
        check: Some(format!("site/{site}/link")),
        state: Some("down".into()),
        message: "Mất kết nối".into(),
        evidence: None,
    };
    store.open_incident(&new, &ev, &[]).unwrap().0
}

fn escalations(store: &Store, id: i64) -> Vec<IncidentEvent> {
    store
        .get(id)
        .unwrap()
        .unwrap()
        .events
        .into_iter()
        .filter(|e| e.kind == EventKind::Escalated)
        .collect()
}

fn engine(inv: &Arc<Inventory>, store: &Arc<Store>, t: i64) -> IncidentEngine {
    IncidentEngine::new(
        inv.clone(),
        store.clone(),
        tokio::sync::broadcast::channel(64).0,
        at(t),
    )
    .unwrap()
}

/// Ticks every virtual second over `[from, to)`.
fn run(e: &mut IncidentEngine, from: i64, to: i64) {
    let mut t = from;
    while t < to {
        e.tick(at(t));
        t += 1000;
    }
}

#[tokio::test]
async fn escalation_and_ack_expiry_on_a_virtual_clock_reach_real_webhooks() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (rx, base) = Receiver::start(0).await;
    let inv = Arc::new(inventory(&base, None));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lienthong.db");
    let store = Arc::new(Store::open(&db).unwrap());
    // Phường Bến Thành (former HCMC): team to-tphcm.
    let id = open_site_incident(&store, "phuong-ben-thanh", Severity::Critical, T0);
    let mut e = engine(&inv, &store, T0);

    // 0 … 10 min unacknowledged: step 1 fires at exactly 10 min, once.
    run(&mut e, T0, T0 + 10 * MIN);
    assert!(escalations(&store, id).is_empty());
    run(&mut e, T0 + 10 * MIN, T0 + 10 * MIN + 5_000);
    let esc = escalations(&store, id);
    assert_eq!(esc.len(), 1, "{esc:#?}");
    assert_eq!(esc[0].at, T0 + 10 * MIN);
    assert_eq!(esc[0].evidence.as_ref().unwrap()["step"], 1);
    assert_eq!(esc[0].evidence.as_ref().unwrap()["team"], "to-tphcm");

    // Acknowledged at 12 min for 10 min: nothing fires while it holds, even past 30 min of age.
    let (inc, _) = store
        .acknowledge_until(id, T0 + 12 * MIN, "Nguyễn Văn A", Some(T0 + 22 * MIN))
        .unwrap()
        .unwrap();
    assert_eq!(inc.state, IncidentState::Acknowledged);
    assert_eq!(inc.ack_expires_at, Some(T0 + 22 * MIN));
    run(&mut e, T0 + 12 * MIN, T0 + 22 * MIN);
    assert_eq!(
        store.get(id).unwrap().unwrap().state,
        IncidentState::Acknowledged
    );

    // At 22 min the acknowledgement lapses: open again, by "lienthong", reason expired.
    run(&mut e, T0 + 22 * MIN, T0 + 22 * MIN + 1000);
    let inc = store.get(id).unwrap().unwrap();
    assert_eq!(inc.state, IncidentState::Open);
    assert_eq!(inc.ack_expires_at, None);
    let unack = inc
        .events
        .iter()
        .find(|e| e.kind == EventKind::Unacknowledged)
        .expect("an unacknowledged event");
    assert_eq!(unack.at, T0 + 22 * MIN);
    assert_eq!(unack.evidence.as_ref().unwrap()["reason"], "expired");
    assert_eq!(
        unack.evidence.as_ref().unwrap()["acknowledged_by"],
        "Nguyễn Văn A"
    );

    // Unacknowledged time: 12 min before the ack + time since 22 min. Step 2 (30 min) fires at
    // 22 + 18 = 40 min of age, not at 30 min.
    run(&mut e, T0 + 22 * MIN + 1000, T0 + 40 * MIN);
    assert_eq!(escalations(&store, id).len(), 1);

    // A restart just before: the new engine neither repeats step 1 nor loses step 2.
    drop(e);
    drop(store);
    let store = Arc::new(Store::open(&db).unwrap());
    let mut e = engine(&inv, &store, T0 + 40 * MIN);
    run(&mut e, T0 + 40 * MIN, T0 + 41 * MIN);
    let esc = escalations(&store, id);
    assert_eq!(esc.len(), 2, "{esc:#?}");
    assert_eq!(esc[1].at, T0 + 40 * MIN);
    assert_eq!(esc[1].evidence.as_ref().unwrap()["step"], 2);

    // Delivered through the outbox: step 1 to to-truong; step 2 to truong-phong and
    // to-truong. The targets' own team filter does not apply to an escalation.
    let registry = prometheus::Registry::new();
    let cancel = CancellationToken::new();
    let n = Notifier::new(store.clone(), inv.notify.clone(), &registry).unwrap();
    tokio::spawn(n.run(cancel.clone()));
    rx.wait_for(|r| r.len() >= 3, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = rx.requests();
    cancel.cancel();
    let mut seen: Vec<(String, i64)> = got
        .iter()
        .map(|(path, body, _)| {
            assert_eq!(body["event"]["kind"], "escalated", "{body:#}");
            assert_eq!(body["incident"]["id"], id);
            (
                path.clone(),
                body["event"]["evidence"]["step"].as_i64().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("/to-truong".to_string(), 1),
            ("/to-truong".to_string(), 2),
            ("/truong-phong".to_string(), 2)
        ]
    );
    assert_eq!(store.outbox_pending().unwrap(), 0);

    // Resolved: nothing further, whatever the clock.
    store
        .resolve(
            id,
            &NewEvent {
                at: T0 + 50 * MIN,
                kind: EventKind::Resolved,
                check: None,
                state: Some("up".into()),
                message: "Đã khắc phục".into(),
                evidence: None,
            },
            &[],
        )
        .unwrap();
    run(&mut e, T0 + 50 * MIN, T0 + 52 * MIN);
    assert_eq!(escalations(&store, id).len(), 2);
}

#[test]
fn unacknowledge_and_reacknowledge_keep_the_first_ack_time_and_the_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("x.db")).unwrap());
    let inv = Arc::new(inventory("http://127.0.0.1:9", None));
    let id = open_site_incident(&store, "phuong-ben-thanh", Severity::Warning, T0);
    let mut e = engine(&inv, &store, T0);
    store.acknowledge(id, T0 + 2 * MIN, "A").unwrap().unwrap();
    // Withdrawn by B at 5 min: 3 min acknowledged do not count on the escalation clock.
    let (inc, ev) = store
        .unacknowledge(id, T0 + 5 * MIN, "B", UnackReason::Withdrawn)
        .unwrap()
        .unwrap();
    assert_eq!(inc.state, IncidentState::Open);
    let ev = ev.expect("an event");
    assert_eq!(ev.evidence.as_ref().unwrap()["by"], "B");
    assert_eq!(ev.evidence.as_ref().unwrap()["reason"], "withdrawn");
    // Nothing to withdraw now.
    let (_, none) = store
        .unacknowledge(id, T0 + 6 * MIN, "B", UnackReason::Withdrawn)
        .unwrap()
        .unwrap();
    assert!(none.is_none());
    run(&mut e, T0 + 5 * MIN, T0 + 13 * MIN);
    assert!(
        escalations(&store, id).is_empty(),
        "only 10 min - 3 min paused"
    );
    run(&mut e, T0 + 13 * MIN, T0 + 13 * MIN + 1000);
    assert_eq!(escalations(&store, id).len(), 1);
    // Assignment, re-assignment to the same person (no event), unassignment.
    let (inc, ev) = store
        .assign(id, T0 + 14 * MIN, "A", Some("Trần Thị C"))
        .unwrap()
        .unwrap();
    assert_eq!(inc.assigned_to.as_deref(), Some("Trần Thị C"));
    assert!(ev.is_some());
    let (_, ev) = store
        .assign(id, T0 + 15 * MIN, "A", Some("Trần Thị C"))
        .unwrap()
        .unwrap();
    assert!(ev.is_none());
    let (inc, ev) = store.assign(id, T0 + 16 * MIN, "B", None).unwrap().unwrap();
    assert_eq!(inc.assigned_to, None);
    assert_eq!(ev.unwrap().evidence.unwrap()["previous"], "Trần Thị C");
    // Re-acknowledged by D: a new acknowledged event; first acknowledgement time kept for figures.
    let (inc, ev) = store.acknowledge(id, T0 + 20 * MIN, "D").unwrap().unwrap();
    assert_eq!(inc.acknowledged_by.as_deref(), Some("D"));
    assert_eq!(ev.at, T0 + 20 * MIN);
    let rows = store.figure_rows(T0).unwrap();
    assert_eq!(rows[0].first_ack_at, Some(T0 + 2 * MIN));
    // The timeline says who did what, when.
    let kinds: Vec<(EventKind, i64)> = store
        .get(id)
        .unwrap()
        .unwrap()
        .events
        .iter()
        .map(|e| (e.kind, (e.at - T0) / MIN))
        .collect();
    assert_eq!(
        kinds,
        [
            (EventKind::Opened, 0),
            (EventKind::Resumed, 0),
            (EventKind::Acknowledged, 2),
            (EventKind::Unacknowledged, 5),
            (EventKind::Escalated, 13),
            (EventKind::Assigned, 14),
            (EventKind::Assigned, 16),
            (EventKind::Acknowledged, 20),
        ]
    );
}

#[tokio::test]
async fn quiet_hours_hold_warnings_but_not_critical_incidents() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The notifier's wall clock reads 05:59:57 Asia/Ho_Chi_Minh now; quiet until 06:00.
    let local_0559_57 = lienthong::localtime::parse_local("2026-12-02 05:59").unwrap() + 57_000;
    let offset = local_0559_57 - wall_ms();
    let (rx, base) = Receiver::start(offset).await;
    let inv = Arc::new(inventory(&base, Some("22:00-06:00")));
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("q.db")).unwrap());
    let now = local_0559_57;
    let warn = open_site_incident(
        &store,
        "phuong-ben-thanh",
        Severity::Warning,
        now - 11 * MIN,
    );
    let crit = open_site_incident(
        &store,
        "phuong-tan-dinh",
        Severity::Critical,
        now - 11 * MIN,
    );
    let mut e = engine(&inv, &store, now);
    e.tick(at(now));
    assert_eq!(escalations(&store, warn).len(), 1);
    assert_eq!(escalations(&store, crit).len(), 1);

    let registry = prometheus::Registry::new();
    let cancel = CancellationToken::new();
    // The clocks read 05:59:57 when the notifier starts, however long the set-up took.
    let offset = local_0559_57 - wall_ms();
    rx.offset_ms.store(offset, Ordering::SeqCst);
    let n = Notifier::new(store.clone(), inv.notify.clone(), &registry)
        .unwrap()
        .with_wall_clock(Arc::new(move || {
            SystemTime::now() + Duration::from_millis(offset as u64)
        }));
    tokio::spawn(n.run(cancel.clone()));
    // The critical one at once; the warning waits in the outbox, not counted as an attempt.
    rx.wait_for(|r| !r.is_empty(), Duration::from_secs(2)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = rx.requests();
    assert_eq!(first.len(), 1, "{first:#?}");
    assert_eq!(first[0].1["incident"]["id"], crit);
    let pending = store.due_outbox(i64::MAX, 10).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].incident_id, warn);
    assert_eq!(pending[0].attempts, 0);
    assert!(
        pending[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("quiet hours"),
        "{pending:?}"
    );
    // After 06:00 it goes.
    rx.wait_for(|r| r.len() >= 2, Duration::from_secs(8)).await;
    cancel.cancel();
    let all = rx.requests();
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!(all[1].1["incident"]["id"], warn);
    let six = lienthong::localtime::parse_local("2026-12-02 06:00").unwrap();
    assert!(
        all[1].2 >= six,
        "delivered {} ms before 06:00",
        six - all[1].2
    );
}

#[test]
fn config_errors_name_the_line_and_the_fix() {
    let base = std::fs::read_to_string("probes.toml").unwrap();
    let anchor = "former_provinces = [\"tphcm\"]\n";
    let cases = [
        (
            "[[team.escalation]]\nafter = \"30m\"\nnotify = [\"x\"]\n\n[[team.escalation]]\nafter = \"10m\"\nnotify = [\"x\"]\n",
            "",
            "is not later than the step before it",
        ),
        (
            "[[team.escalation]]\nafter = \"10m\"\nnotify = [\"khong-co\"]\n",
            "",
            "escalation notifies unknown target `khong-co`",
        ),
        (
            "",
            "quiet_hours = \"22h-6h\"\n",
            "expected \"HH:MM-HH:MM\"",
        ),
    ];
    for (steps, quiet, want) in cases {
        let mut text = base.replacen(anchor, &format!("{anchor}\n{steps}"), 1);
        text.push_str(&format!(
            "\n[[notify]]\nname = \"x\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n{quiet}"
        ));
        let err = match Config::from_str(Path::new("probes.toml"), &text) {
            Ok(_) => panic!("accepted: {want}"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(want), "{err}");
        assert!(err.contains("probes.toml:"), "no file:line:col in {err}");
    }
}

// --- the write API -------------------------------------------------------------------------

const TOKEN: &str = "token-for-escalation-tests";

async fn api() -> (tempfile::TempDir, Arc<Store>, String, i64) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("api.db")).unwrap());
    let id = open_site_incident(
        &store,
        "phuong-ben-thanh",
        Severity::Critical,
        wall_ms() - 5 * MIN,
    );
    let state = Arc::new(lienthong::state::LiveState::default());
    state.set_inventory(Arc::new(inventory("http://127.0.0.1:9", None)));
    let app = lienthong::web::AppState {
        metrics: Arc::new(lienthong::metrics::Metrics::new()),
        state,
        store: store.clone(),
        events: tokio::sync::broadcast::channel(64).0,
        api_token: Some(Arc::from(TOKEN)),
        maintenance_changed: Arc::new(tokio::sync::Notify::new()),
        pages: Default::default(),
        actions: Default::default(),
    };
    let addr = common::serve(lienthong::web::router(app)).await;
    (dir, store, format!("http://{addr}"), id)
}

async fn post_api(base: &str, path: &str, body: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(base: &str, path: &str) -> (u16, Value) {
    let r = reqwest::get(format!("{base}{path}")).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn api_ack_expiry_unack_assign_and_their_4xx() {
    let (_dir, store, base, id) = api().await;
    let p = |s: &str| format!("/api/v1/incidents/{id}/{s}");
    // Bad expiries → 400 naming the field.
    for bad in [
        r#"{"by":"A","expires_in":"soon"}"#,
        r#"{"by":"A","expires_in":"0s"}"#,
        r#"{"by":"A","expires_in":"30d"}"#,
    ] {
        let (s, b) = post_api(&base, &p("ack"), bad).await;
        assert_eq!(s, 400, "{bad}: {b}");
        assert!(
            b["error"].as_str().unwrap().starts_with("expires_in:"),
            "{b}"
        );
    }
    // Nothing to withdraw yet → 409.
    let (s, b) = post_api(&base, &p("unack"), r#"{"by":"B"}"#).await;
    assert_eq!(s, 409, "{b}");
    assert!(
        b["error"].as_str().unwrap().contains("not acknowledged"),
        "{b}"
    );
    // Ack with an expiry.
    let before = wall_ms();
    let (s, b) = post_api(
        &base,
        &p("ack"),
        r#"{"by":"Nguyễn Văn A","expires_in":"30m"}"#,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["state"], "acknowledged");
    let exp = lienthong::localtime::parse_rfc3339(b["ack_expires_at"].as_str().unwrap()).unwrap();
    assert!(
        (before - 1000 + 30 * MIN..=wall_ms() + 30 * MIN).contains(&exp),
        "{b}"
    );
    // Withdraw it.
    let (s, b) = post_api(&base, &p("unack"), r#"{"by":"Trưởng phòng"}"#).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["state"], "open");
    assert_eq!(b["ack_expires_at"], Value::Null);
    let last = b["events"].as_array().unwrap().last().unwrap();
    assert_eq!(last["kind"], "unacknowledged");
    assert_eq!(last["evidence"]["by"], "Trưởng phòng");
    // Assign: assignee required, not blank, no unknown fields.
    for (bad, want) in [
        (r#"{"by":"A"}"#, "assignee: required"),
        (r#"{"by":"A","assignee":"  "}"#, "assignee: must be"),
        (r#"{"by":"A","assignee":"C","who":1}"#, "unknown field"),
        ("[1]", "request body"),
    ] {
        let (s, b) = post_api(&base, &p("assign"), bad).await;
        assert_eq!(s, 400, "{bad}: {b}");
        assert!(b["error"].as_str().unwrap().contains(want), "{bad}: {b}");
    }
    let (s, b) = post_api(&base, &p("assign"), r#"{"by":"A","assignee":"Trần Thị C"}"#).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["assigned_to"], "Trần Thị C");
    let (s, b) = post_api(&base, &p("assign"), r#"{"by":"A","assignee":null}"#).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["assigned_to"], Value::Null);
    // Unknown incident → 404; no token → 401.
    let (s, _) = post_api(
        &base,
        "/api/v1/incidents/999999/assign",
        r#"{"assignee":"C"}"#,
    )
    .await;
    assert_eq!(s, 404);
    let r = reqwest::Client::new()
        .post(format!("{base}{}", p("unack")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // The timeline has it all.
    let kinds: Vec<EventKind> = store
        .get(id)
        .unwrap()
        .unwrap()
        .events
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::Opened,
            EventKind::Acknowledged,
            EventKind::Unacknowledged,
            EventKind::Assigned,
            EventKind::Assigned
        ]
    );
}

#[tokio::test]
async fn api_teams_figures_and_bad_windows() {
    let (_dir, store, base, id) = api().await;
    store.acknowledge(id, wall_ms(), "A").unwrap();
    let (s, f) = get(&base, "/api/v1/teams?window=1h").await;
    assert_eq!(s, 200, "{f}");
    let tphcm = f["teams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["team"] == "to-tphcm")
        .unwrap()
        .clone();
    assert_eq!(tphcm["severities"][0]["incidents"], 1);
    assert_eq!(tphcm["severities"][0]["acknowledged"], 1);
    let tta = tphcm["severities"][0]["time_to_acknowledge"]["median_seconds"]
        .as_f64()
        .unwrap();
    assert!((299.0..=310.0).contains(&tta), "{tta}");
    assert_eq!(tphcm["open"]["count"], 1);
    assert_eq!(tphcm["sites"][0]["site"], "phuong-ben-thanh");
    assert_eq!(f["city"]["team"], "*");
    for (q, want) in [
        ("window=soon", "window:"),
        ("from=yesterday", "from:"),
        ("team=x", "unknown parameter `team`"),
        ("window=1h&from=2026-11-25T00:00:00Z", "cannot be combined"),
        (
            "from=2026-11-26T00:00:00Z&to=2026-11-25T00:00:00Z",
            "before",
        ),
    ] {
        let (s, b) = get(&base, &format!("/api/v1/teams?{q}")).await;
        assert_eq!(s, 400, "{q}: {b}");
        assert!(b["error"].as_str().unwrap().contains(want), "{q}: {b}");
    }
}

// --- team figures ------------------------------------------------------------------------

fn scripted(
    severity: Severity,
    start_min: i64,
    ack_min: Option<i64>,
    resolve_min: Option<i64>,
    teams: &[&str],
    site: &str,
) -> Incident {
    let start = T0 + start_min * MIN;
    Incident {
        id: 0,
        key: format!("site/{site}/link/{start_min}"),
        title: "x".into(),
        title_en: "x".into(),
        severity,
        scope: Scope::Site,
        state: IncidentState::Open,
        sites: vec![site.into()],
        service: None,
        teams: teams.iter().map(|t| t.to_string()).collect(),
        started_at: start,
        acknowledged_at: ack_min.map(|m| start + m * MIN),
        acknowledged_by: ack_min.map(|_| "A".into()),
        resolved_at: resolve_min.map(|m| start + m * MIN),
        ack_expires_at: None,
        assigned_to: None,
        events: vec![],
        notes: vec![],
    }
}

#[test]
fn team_figures_match_a_scripted_set_of_incidents() {
    use Severity::{Critical as C, Warning as W};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("f.db")).unwrap();
    // Window: [T0, T0 + 1 day). Times in minutes: (severity, start, ack after, resolved after).
    let history = vec![
        scripted(C, 10, Some(2), Some(30), &["a"], "s1"),
        scripted(C, 20, Some(4), Some(60), &["a"], "s1"),
        scripted(C, 30, Some(6), Some(90), &["a", "b"], "s2"),
        scripted(C, 40, Some(20), None, &["a"], "s3"),
        scripted(W, 50, None, Some(5), &["a"], "s1"),
        scripted(W, 60, Some(1), Some(10), &["b"], "s2"),
        // Before the window: not counted, but open at its end (age from its start).
        scripted(C, -120, Some(1), None, &["b"], "s9"),
        // Started before the window, resolved in it: not counted.
        scripted(C, -60, Some(1), Some(70), &["a"], "s9"),
        // After the window: neither counted nor open at its end.
        scripted(W, 24 * 60 + 5, None, None, &["a"], "s1"),
    ];
    store.insert_history(&history).unwrap();
    let (from, to) = (T0, T0 + 24 * 60 * MIN);
    let now = to + 30 * MIN;
    let teams = vec![
        ("a".to_string(), "Tổ A".to_string()),
        ("b".to_string(), "Tổ B".to_string()),
    ];
    let f = compute(&store.figure_rows(from).unwrap(), &teams, from, to, now);
    let a = &f.teams[0];
    assert_eq!(a.team, "a");
    let all = &a.severities[0];
    assert_eq!((all.incidents, all.acknowledged, all.resolved), (5, 4, 4));
    // Acks 2, 4, 6, 20 min: median (nearest rank, 2nd of 4) 4 min, p90 (4th) 20 min, max 20 min.
    let s = |m: i64| Some((m * 60) as f64);
    let tta = &all.time_to_acknowledge;
    assert_eq!(
        (tta.median_seconds, tta.p90_seconds, tta.max_seconds),
        (s(4), s(20), s(20))
    );
    // Resolutions 5, 30, 60, 90 min.
    let ttr = &all.time_to_resolve;
    assert_eq!(
        (ttr.median_seconds, ttr.p90_seconds, ttr.max_seconds),
        (s(30), s(90), s(90))
    );
    let crit = &a.severities[1];
    assert_eq!((crit.severity.as_str(), crit.incidents), ("critical", 4));
    assert_eq!(crit.time_to_resolve.median_seconds, s(60));
    let warn = &a.severities[2];
    assert_eq!(
        (warn.incidents, warn.acknowledged, warn.resolved),
        (1, 0, 1)
    );
    assert_eq!(warn.time_to_acknowledge.median_seconds, None);
    // Open at the end of the window: the one started at 40 min.
    assert_eq!(a.open.count, 1);
    assert_eq!(a.open.oldest_seconds, Some(((24 * 60 - 40) * 60) as f64));
    assert_eq!(
        a.sites
            .iter()
            .map(|c| (c.site.as_str(), c.incidents))
            .collect::<Vec<_>>(),
        [("s1", 3), ("s2", 1), ("s3", 1)]
    );
    let b = &f.teams[1];
    assert_eq!(b.severities[0].incidents, 2);
    assert_eq!(b.open.count, 1, "the one started before the window");
    assert_eq!(b.open.oldest_seconds, Some(((24 * 60 + 120) * 60) as f64));
    // The city counts the shared incident once.
    assert_eq!(f.city.severities[0].incidents, 6);
    assert_eq!(f.city.open.count, 2);

    // Prometheus: the poller observes each acknowledgement and resolution once.
    let registry = prometheus::Registry::new();
    let mut m = TeamMetrics::new(&registry, from).unwrap();
    let names = vec!["a".to_string(), "b".to_string(), "c".to_string()];
    m.poll(&store, &names, now).unwrap();
    m.poll(&store, &names, now).unwrap();
    let hist = |name: &str, team: &str| -> (u64, f64) {
        for mf in registry.gather() {
            if mf.name() != name {
                continue;
            }
            for x in mf.get_metric() {
                if x.get_label()
                    .iter()
                    .any(|l| l.name() == "team" && l.value() == team)
                {
                    let h = x.get_histogram();
                    return (h.get_sample_count(), h.get_sample_sum());
                }
            }
        }
        panic!("no {name}{{team={team}}}")
    };
    // Team a acknowledged: 2, 4, 6, 20 (in the window) + 1 (the one started at -60, acked at
    // -59: before the poller's start, not observed) → 4; sum 32 min.
    assert_eq!(
        hist("lienthong_incident_ack_seconds", "a"),
        (4, 32.0 * 60.0)
    );
    // Resolved since start for a: 30, 60, 90, 5 + the pre-window one (resolved at +10 min,
    // 70 min after its start).
    assert_eq!(
        hist("lienthong_incident_resolve_seconds", "a"),
        (5, (30.0 + 60.0 + 90.0 + 5.0 + 70.0) * 60.0)
    );
    assert_eq!(
        hist("lienthong_incident_ack_seconds", "c"),
        (0, 0.0),
        "every team has its series"
    );
    let gauge = |team: &str| {
        registry
            .gather()
            .iter()
            .find(|mf| mf.name() == "lienthong_incident_open_age_seconds")
            .and_then(|mf| {
                mf.get_metric()
                    .iter()
                    .find(|x| x.get_label().iter().any(|l| l.value() == team))
                    .map(|x| x.get_gauge().get_value())
            })
    };
    // At `now`, a's oldest open is the one started at 40 min; the one after the window is
    // younger.
    assert_eq!(gauge("a"), Some(((24 * 60 + 30 - 40) * 60) as f64));
    assert_eq!(gauge("c"), Some(0.0));
    // Later acknowledgements are observed at the next poll only.
    let ids = store
        .insert_history(&[scripted(W, 100, None, None, &["c"], "s5")])
        .unwrap();
    store.acknowledge(ids[0], T0 + 107 * MIN, "A").unwrap();
    m.poll(&store, &names, now).unwrap();
    assert_eq!(hist("lienthong_incident_ack_seconds", "c"), (1, 7.0 * 60.0));
}
