//! The incident store's operations on both backends through the one code path: each scenario
//! runs on a SQLite file and on a private PostgreSQL cluster (tests/common/pg.rs; skipped
//! outside CI when PostgreSQL is missing, a failure under `CI=true`).
//!
//! Covered: open/idempotent key/resolve, timeline, notes, acknowledgement, listing filters and
//! cursors, the outbox (due, failed, delivered, drop, shift, idempotency keys), maintenance
//! windows, pruning, imported history, availability rollups, escalation, agent sequences,
//! team figures, and reopening (migrations applied once).

mod common;

use std::collections::HashSet;

use common::pg::{Pg, PASSWORD};
use lienthong::availability::{MinuteRow, MinuteStats, SparseHist};
use lienthong::incidents::db;
use lienthong::incidents::escalation::UnackReason;
use lienthong::incidents::location::StoreLocation;
use lienthong::incidents::*;

const T0: UnixMillis = 1_760_000_000_000;

/// A backend under test: opens the same database again on each call.
struct Backend {
    loc: StoreLocation,
    _dir: tempfile::TempDir,
    _pg: Option<Pg>,
}

impl Backend {
    fn sqlite() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        Backend {
            loc: StoreLocation::Sqlite(dir.path().join("lienthong.db")),
            _dir: dir,
            _pg: None,
        }
    }

    fn postgres() -> Option<Backend> {
        let pg = Pg::start()?;
        pg.create_db("lienthong");
        let StoreLocation::Postgres(t) = StoreLocation::parse(&pg.url("lienthong")).unwrap() else {
            unreachable!()
        };
        Some(Backend {
            loc: StoreLocation::Postgres(t.with_password(Some(PASSWORD.into()))),
            _dir: tempfile::tempdir().unwrap(),
            _pg: Some(pg),
        })
    }

    fn open(&self) -> Store {
        Store::open_location(&self.loc).unwrap_or_else(|e| panic!("open {}: {e}", self.loc))
    }
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(&super::Backend::sqlite()); })*
        }
        mod postgres {
            $(#[test] fn $name() {
                if let Some(b) = super::Backend::postgres() { super::$name(&b); }
            })*
        }
    };
}

both!(
    incidents_timeline_and_listing,
    outbox_lifecycle,
    maintenance_and_pruning,
    history_rollups,
    escalation_and_assignment,
    agent_sequences_and_figures,
    reopen_migrates_once,
);

fn strings(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

fn new_incident(key: &str, sites: &[&str], teams: &[&str], severity: Severity) -> NewIncident {
    NewIncident {
        key: key.to_string(),
        title: format!("Mất kết nối: {key}"),
        title_en: format!("Link down: {key}"),
        severity,
        scope: if sites.len() > 1 {
            Scope::City
        } else {
            Scope::Site
        },
        sites: strings(sites),
        service: None,
        teams: strings(teams),
    }
}

fn event(at: UnixMillis, kind: EventKind, message: &str) -> NewEvent {
    NewEvent {
        at,
        kind,
        check: Some("site/phuong-ben-thanh/link".into()),
        state: Some("down".into()),
        message: message.to_string(),
        evidence: Some(serde_json::json!({ "loss": 1.0, "đường": "cáp quang" })),
    }
}

fn incidents_timeline_and_listing(b: &Backend) {
    let store = b.open();
    let inc = new_incident(
        "link/ben-thanh",
        &["phuong-ben-thanh", "phuong-sai-gon", "phuong-ben-thanh"],
        &["mang", "ha-tang"],
        Severity::Critical,
    );
    let (id, created) = store
        .open_incident(&inc, &event(T0, EventKind::Opened, "mở"), &[])
        .unwrap();
    assert!(created);
    let (again, created) = store
        .open_incident(&inc, &event(T0 + 1, EventKind::Opened, "mở lại"), &[])
        .unwrap();
    assert_eq!(
        (again, created),
        (id, false),
        "one unresolved incident per key"
    );

    store
        .append_event(id, &event(T0 + 10, EventKind::StateChange, "cập nhật"), &[])
        .unwrap();
    assert!(matches!(
        store.append_event(9_999, &event(T0, EventKind::StateChange, "x"), &[]),
        Err(StoreError::NoSuchIncident(9_999))
    ));
    store
        .set_sites(id, &strings(&["phuong-sai-gon", "phuong-tan-dinh"]))
        .unwrap();
    let (inc_acked, ack_ev) = store.acknowledge(id, T0 + 20, "chị Lan").unwrap().unwrap();
    assert_eq!(inc_acked.state, IncidentState::Acknowledged);
    assert_eq!(ack_ev.kind, EventKind::Acknowledged);
    // Idempotent: the same event again.
    let (_, ack_ev2) = store.acknowledge(id, T0 + 30, "anh Minh").unwrap().unwrap();
    assert_eq!(ack_ev2.id, ack_ev.id);
    let (note, note_ev) = store
        .add_note(id, T0 + 40, "anh Minh", "đã gọi nhà mạng")
        .unwrap()
        .unwrap();
    assert_eq!(note_ev.evidence.unwrap()["note_id"], note.id);
    assert!(store.add_note(9_999, T0, "x", "y").unwrap().is_none());

    let got = store.get(id).unwrap().unwrap();
    assert_eq!(got.sites, strings(&["phuong-sai-gon", "phuong-tan-dinh"]));
    assert_eq!(
        got.teams,
        strings(&["mang", "ha-tang"]),
        "teams in stored order"
    );
    assert_eq!(got.acknowledged_by.as_deref(), Some("chị Lan"));
    let kinds: Vec<EventKind> = got.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::Opened,
            EventKind::StateChange,
            EventKind::Acknowledged,
            EventKind::Note
        ]
    );
    assert_eq!(
        got.events[0].evidence.as_ref().unwrap()["đường"],
        "cáp quang"
    );
    assert_eq!(got.notes.len(), 1);
    assert_eq!(got.notes[0].text, "đã gọi nhà mạng");

    assert!(store
        .resolve(
            id,
            &event(T0 + 50, EventKind::Resolved, "đã khôi phục"),
            &[]
        )
        .unwrap());
    assert!(!store
        .resolve(id, &event(T0 + 60, EventKind::Resolved, "again"), &[])
        .unwrap());
    assert!(store.unresolved().unwrap().is_empty());

    // 30 more incidents over 3 sites / 2 severities, for filters and cursors.
    let mut ids = vec![id];
    for n in 0..30 {
        let site = ["phuong-a", "phuong-b", "phuong-c"][n % 3];
        let sev = if n % 2 == 0 {
            Severity::Warning
        } else {
            Severity::Critical
        };
        let (i, _) = store
            .open_incident(
                &new_incident(&format!("k{n}"), &[site], &["mang"], sev),
                &event(T0 + 1000 * n as i64, EventKind::Opened, "mở"),
                &[],
            )
            .unwrap();
        if n % 5 == 0 {
            store
                .resolve(
                    i,
                    &event(T0 + 1000 * n as i64 + 1, EventKind::Resolved, "ok"),
                    &[],
                )
                .unwrap();
        }
        ids.push(i);
    }
    let walk = |f: &IncidentFilter, limit: u32| {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = store.list(f, cursor, limit).unwrap();
            out.extend(page.items.iter().map(|i| i.id));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return out,
            }
        }
    };
    let all = walk(&IncidentFilter::default(), 7);
    let mut want = ids.clone();
    want.reverse();
    assert_eq!(all, want, "newest first over pages");
    let site_b = walk(
        &IncidentFilter {
            site: Some("phuong-b".into()),
            ..Default::default()
        },
        4,
    );
    assert_eq!(site_b.len(), 10);
    let open_crit = walk(
        &IncidentFilter {
            state: Some(IncidentState::Open),
            severity: Some(Severity::Critical),
            ..Default::default()
        },
        3,
    );
    assert_eq!(open_crit.len(), 12, "15 critical, 3 of them resolved");
    let since = walk(
        &IncidentFilter {
            since: Some(T0 + 25_000),
            team: Some("mang".into()),
            ..Default::default()
        },
        2,
    );
    assert_eq!(since.len(), 5);
    assert_eq!(store.recent_events(3).unwrap().len(), 3);
    let after = store.events_after(0, 1000).unwrap();
    assert!(after.windows(2).all(|w| w[0].id < w[1].id));
}

fn outbox_lifecycle(b: &Backend) {
    let store = b.open();
    let targets = strings(&["zalo", "email"]);
    let (id, _) = store
        .open_incident(
            &new_incident("k", &["phuong-a"], &[], Severity::Critical),
            &event(T0, EventKind::Opened, "mở"),
            &targets,
        )
        .unwrap();
    store
        .resolve(id, &event(T0 + 100, EventKind::Resolved, "ok"), &targets)
        .unwrap();
    assert_eq!(store.outbox_pending().unwrap(), 4);
    let due = store.due_outbox(T0 + 100, 10).unwrap();
    assert_eq!(due.len(), 4);
    let keys: HashSet<&str> = due.iter().map(|o| o.idempotency_key.as_str()).collect();
    assert_eq!(keys.len(), 4, "one idempotency key per (event, target)");
    assert!(due
        .iter()
        .all(|o| o.idempotency_key == format!("{}:{}", o.event_id, o.target)));
    assert_eq!(store.due_outbox(T0 + 99, 10).unwrap().len(), 2);

    store
        .outbox_failed(due[0].id, T0 + 5_000, &"é".repeat(900))
        .unwrap();
    let later = store.due_outbox(T0 + 100, 10).unwrap();
    assert_eq!(later.len(), 3);
    let failed = store
        .due_outbox(T0 + 5_000, 10)
        .unwrap()
        .into_iter()
        .find(|o| o.id == due[0].id)
        .unwrap();
    assert_eq!(failed.attempts, 1);
    assert_eq!(failed.last_error.unwrap().chars().count(), 500);

    store.outbox_delivered(due[1].id, T0 + 200).unwrap();
    store.outbox_delivered(due[1].id, T0 + 300).unwrap();
    assert_eq!(store.outbox_pending().unwrap(), 3);
    // Clock stepped back one hour: everything shifts.
    assert_eq!(store.outbox_shift(-3_600_000).unwrap(), 3);
    let within = store.due_outbox_within(T0, 60_000, 10).unwrap();
    assert_eq!(within.len(), 3);
    store
        .outbox_defer(due[2].id, T0 + 9_000, "im lặng")
        .unwrap();
    store.outbox_drop(due[3].id).unwrap();
    // Left: due[0] (failed) and due[2] (deferred), both for zalo.
    assert_eq!(store.outbox_drop_target("zalo").unwrap(), 2);
    assert_eq!(store.outbox_pending().unwrap(), 0);
}

fn maintenance_and_pruning(b: &Backend) {
    let store = b.open();
    let w = MaintenanceWindow {
        id: 0,
        site: Some("phuong-a".into()),
        service: None,
        starts_at: T0 + 1_000,
        ends_at: T0 + 10_000,
        reason: "thay thiết bị".into(),
        created_by: "api".into(),
    };
    let id = store.add_maintenance(&w).unwrap();
    let id2 = store
        .add_maintenance(&MaintenanceWindow {
            site: None,
            service: Some("dich-vu-cong".into()),
            ..w.clone()
        })
        .unwrap();
    assert_ne!(id, id2);
    assert_eq!(store.maintenance_windows(T0).unwrap().len(), 2);
    // Ended before it starts: covers nothing (starts_at = min(starts_at, now)).
    let ended = store.end_maintenance(id, T0 + 500).unwrap().unwrap();
    assert_eq!((ended.starts_at, ended.ends_at), (T0 + 500, T0 + 500));
    assert_eq!(store.maintenance_window(id).unwrap().unwrap(), ended);
    assert!(store.delete_maintenance(id2).unwrap());
    assert!(!store.delete_maintenance(id2).unwrap());
    assert!(store.maintenance_windows(T0 + 500).unwrap().is_empty());

    // Pruning keeps incidents with undelivered notifications.
    let mut resolved = Vec::new();
    for n in 0..5 {
        let notify = if n == 0 { strings(&["zalo"]) } else { vec![] };
        let (i, _) = store
            .open_incident(
                &new_incident(
                    &format!("p{n}"),
                    &["phuong-a"],
                    &["mang"],
                    Severity::Warning,
                ),
                &event(T0, EventKind::Opened, "mở"),
                &notify,
            )
            .unwrap();
        store.add_note(i, T0 + 1, "x", "ghi chú").unwrap().unwrap();
        store
            .resolve(i, &event(T0 + 10, EventKind::Resolved, "ok"), &[])
            .unwrap();
        resolved.push(i);
    }
    assert_eq!(store.prune_resolved(T0 + 11).unwrap(), 4);
    assert!(store.get(resolved[0]).unwrap().is_some());
    assert!(store.get(resolved[1]).unwrap().is_none());

    // Imported history keeps timestamps, events and notes; fresh ids.
    let old = store.get(resolved[0]).unwrap().unwrap();
    let ids = store.insert_history(std::slice::from_ref(&old)).unwrap();
    let copy = store.get(ids[0]).unwrap().unwrap();
    assert_ne!(copy.id, old.id);
    assert_eq!(copy.started_at, old.started_at);
    assert_eq!(copy.events.len(), old.events.len());
    assert_eq!(copy.notes.len(), 1);
    assert_eq!(copy.teams, old.teams);
}

fn stats(attempts: u32, successes: u32, lat: f64) -> MinuteStats {
    let mut hist = SparseHist::default();
    hist.add(3, successes);
    MinuteStats {
        attempts,
        successes,
        maint: 0,
        lat_n: successes,
        lat_sum: lat * successes as f64,
        lat_max: lat,
        sent: 0,
        lost: 0,
        hist,
        blind: 0,
    }
}

fn history_rollups(b: &Backend) {
    let store = b.open();
    let m0 = 29_000_000; // minutes since the epoch, an hour boundary below
    let m0 = m0 - m0 % 60;
    let mut rows = Vec::new();
    for m in 0..120 {
        rows.push(MinuteRow {
            check: "site/phuong-a/link".into(),
            minute: m0 + m,
            stats: stats(4, if m < 60 { 4 } else { 2 }, 12.5),
        });
    }
    assert_eq!(store.history_write(&rows).unwrap(), 120);
    assert_eq!(store.history_extent().unwrap(), Some((m0, m0 + 119)));
    assert_eq!(store.history_rollup(m0 + 200).unwrap(), 2);
    // A late half of a minute already rolled up: merged, and its hour rolled again.
    store
        .history_write(&[MinuteRow {
            check: "site/phuong-a/link".into(),
            minute: m0 + 5,
            stats: stats(4, 0, 40.0),
        }])
        .unwrap();
    let w = store.history_window(m0, m0 + 120).unwrap();
    let agg = &w.checks["site/phuong-a/link"].agg;
    assert_eq!(agg.minutes, 120);
    assert_eq!(agg.attempts, 484);
    assert_eq!(agg.successes, 360);
    assert_eq!(agg.lat_max, 40.0);
    assert_eq!(agg.hist.0.iter().sum::<u64>(), 360);
    // Part of an hour from minutes.
    let w = store.history_window(m0 + 30, m0 + 90).unwrap();
    assert_eq!(w.checks["site/phuong-a/link"].agg.minutes, 60);
    let series = store
        .history_series(&strings(&["site/phuong-a/link", "nope"]), m0, m0 + 10)
        .unwrap();
    assert_eq!(series["site/phuong-a/link"].len(), 10);
    assert!(!series.contains_key("nope"));
    // Retention: the minutes of the first hour go, its hourly row stays.
    let (m, h) = store.history_prune(m0 + 60, m0 / 60 - 1).unwrap();
    assert_eq!((m, h), (60, 0));
    let w = store.history_window(m0, m0 + 120).unwrap();
    assert_eq!(w.checks["site/phuong-a/link"].agg.minutes, 120);
    let (_, h) = store.history_prune(m0 + 60, m0 / 60 + 1).unwrap();
    assert_eq!(h, 1);
}

fn escalation_and_assignment(b: &Backend) {
    let store = b.open();
    let (id, _) = store
        .open_incident(
            &new_incident("e", &["phuong-a"], &["mang", "ha-tang"], Severity::Critical),
            &event(T0, EventKind::Opened, "mở"),
            &[],
        )
        .unwrap();
    let rows = store.escalation_rows().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].teams, strings(&["mang", "ha-tang"]));
    assert_eq!(rows[0].base_at, T0);
    assert!(rows[0].fired.is_empty());
    let ev = NewEvent {
        kind: EventKind::Escalated,
        ..event(T0 + 60_000, EventKind::Escalated, "vượt cấp")
    };
    assert!(store
        .record_escalation(id, "mang", 0, &ev, &strings(&["zalo"]))
        .unwrap()
        .is_some());
    assert!(
        store
            .record_escalation(id, "mang", 0, &ev, &strings(&["zalo"]))
            .unwrap()
            .is_none(),
        "a step fires once"
    );
    assert_eq!(
        store.escalation_rows().unwrap()[0].fired,
        [("mang".to_string(), 0)]
    );
    assert_eq!(store.outbox_pending().unwrap(), 1);

    store
        .acknowledge_until(id, T0 + 100_000, "chị Lan", Some(T0 + 200_000))
        .unwrap()
        .unwrap();
    assert_eq!(store.next_ack_expiry().unwrap(), Some(T0 + 200_000));
    assert!(store.expire_acks(T0 + 150_000).unwrap().is_empty());
    let expired = store.expire_acks(T0 + 200_000).unwrap();
    assert_eq!(expired.len(), 1);
    let row = &store.escalation_rows().unwrap()[0];
    assert!(!row.acknowledged);
    assert_eq!(
        row.base_at,
        T0 + 100_000,
        "acknowledged time does not count"
    );

    store.acknowledge(id, T0 + 300_000, "anh Minh").unwrap();
    let (inc, ev) = store
        .unacknowledge(id, T0 + 310_000, "chị Lan", UnackReason::Withdrawn)
        .unwrap()
        .unwrap();
    assert!(ev.is_some());
    assert_eq!(inc.state, IncidentState::Open);

    let (inc, ev) = store
        .assign(id, T0 + 400_000, "chị Lan", Some("anh Tâm"))
        .unwrap()
        .unwrap();
    assert!(ev.is_some());
    assert_eq!(inc.assigned_to.as_deref(), Some("anh Tâm"));
    let (_, ev) = store
        .assign(id, T0 + 400_001, "chị Lan", Some("anh Tâm"))
        .unwrap()
        .unwrap();
    assert!(ev.is_none(), "same assignee: nothing changes");
}

fn agent_sequences_and_figures(b: &Backend) {
    let store = b.open();
    assert_eq!(store.agent_seq("phuong-a").unwrap().last_seq, 0);
    let s = store.agent_advance("phuong-a", 10, 9, 1, T0).unwrap();
    assert_eq!((s.last_seq, s.applied, s.missing), (10, 9, 1));
    let s = store.agent_advance("phuong-a", 15, 5, 0, T0 + 1).unwrap();
    assert_eq!((s.last_seq, s.applied, s.missing), (15, 14, 1));
    assert_eq!(store.agent_seq("phuong-a").unwrap(), s);

    let (id, _) = store
        .open_incident(
            &new_incident("f", &["phuong-a"], &["mang"], Severity::Critical),
            &event(T0, EventKind::Opened, "mở"),
            &[],
        )
        .unwrap();
    store.acknowledge(id, T0 + 60_000, "x").unwrap();
    store
        .resolve(id, &event(T0 + 120_000, EventKind::Resolved, "ok"), &[])
        .unwrap();
    let rows = store.figure_rows(T0 - 1).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].teams, strings(&["mang"]));
    assert_eq!(rows[0].sites, strings(&["phuong-a"]));
    assert_eq!(rows[0].first_ack_at, Some(T0 + 60_000));
    assert_eq!(store.acknowledged_since(T0).unwrap().len(), 1);
    assert_eq!(store.resolved_since(T0 + 120_001).unwrap().len(), 0);
    assert_eq!(store.critical_open_at(T0 + 1).unwrap().len(), 1);
    assert_eq!(store.critical_open_at(T0 + 120_000).unwrap().len(), 0);
}

fn reopen_migrates_once(b: &Backend) {
    let id = {
        let store = b.open();
        store
            .open_incident(
                &new_incident("r", &["phuong-a"], &[], Severity::Warning),
                &event(T0, EventKind::Opened, "mở"),
                &strings(&["zalo"]),
            )
            .unwrap()
            .0
    };
    let store = b.open();
    let got = store.get(id).unwrap().unwrap();
    assert_eq!(got.key, "r");
    assert_eq!(store.unresolved().unwrap().len(), 1);
    assert_eq!(store.outbox_pending().unwrap(), 1);
    store.probe_write().unwrap();
    // Ids keep growing after reopen (never reused).
    let (id2, _) = store
        .open_incident(
            &new_incident("r2", &["phuong-a"], &[], Severity::Warning),
            &event(T0, EventKind::Opened, "mở"),
            &[],
        )
        .unwrap();
    assert!(id2 > id);
}

/// `lienthong migrate --from sqlite:… --to postgres://…`: everything copied with its ids, the
/// PostgreSQL ids continue after them, a second copy into the now non-empty store is refused,
/// and the password is never printed.
#[test]
fn migrate_sqlite_to_postgres() {
    let Some(pg) = Backend::postgres() else {
        return;
    };
    let sqlite = Backend::sqlite();
    let src = sqlite.open();
    // Some of everything: incidents with timelines, notes, outbox, maintenance, history,
    // escalations, agent sequences.
    escalation_and_assignment(&sqlite);
    history_rollups(&sqlite);
    src.agent_advance("phuong-a", 10, 9, 1, T0).unwrap();
    let (open_id, _) = src
        .open_incident(
            &new_incident("m", &["phuong-b"], &["mang"], Severity::Warning),
            &event(T0, EventKind::Opened, "mở"),
            &strings(&["zalo", "email"]),
        )
        .unwrap();
    src.add_maintenance(&MaintenanceWindow {
        id: 0,
        site: Some("phuong-b".into()),
        service: None,
        starts_at: T0,
        ends_at: T0 + 1_000_000,
        reason: "bảo trì".into(),
        created_by: "api".into(),
    })
    .unwrap();
    let StoreLocation::Sqlite(path) = &sqlite.loc else {
        unreachable!()
    };
    let url = pg._pg.as_ref().unwrap().url("lienthong");
    let pw = sqlite._dir.path().join("pw");
    std::fs::write(&pw, PASSWORD).unwrap();
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_lienthong"))
            .args(["migrate", "--from"])
            .arg(format!("sqlite:{}", path.display()))
            .args(["--to", &url, "--password-file"])
            .arg(&pw)
            .output()
            .unwrap()
    };
    let out = run();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("incidents: "), "{text}");
    assert!(!text.contains(PASSWORD));

    let dst = pg.open();
    let all = |s: &Store| {
        let mut v = Vec::new();
        let mut cursor = None;
        loop {
            let page = s.list(&IncidentFilter::default(), cursor, 500).unwrap();
            v.extend(page.items.iter().map(|i| s.get(i.id).unwrap().unwrap()));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return v,
            }
        }
    };
    let (a, b) = (all(&src), all(&dst));
    assert!(!a.is_empty());
    assert_eq!(a, b, "incidents, events and notes identical, ids included");
    let keys = |s: &Store| {
        let mut k: Vec<String> = s
            .due_outbox(i64::MAX / 2, 500)
            .unwrap()
            .into_iter()
            .map(|o| o.idempotency_key)
            .collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&src),
        keys(&dst),
        "pending outbox (idempotency keys) kept"
    );
    assert_eq!(
        src.maintenance_windows(T0).unwrap(),
        dst.maintenance_windows(T0).unwrap()
    );
    assert_eq!(src.history_extent().unwrap(), dst.history_extent().unwrap());
    let (f, t) = src.history_extent().unwrap().unwrap();
    assert_eq!(
        src.history_window(f, t + 1).unwrap(),
        dst.history_window(f, t + 1).unwrap()
    );
    assert_eq!(
        src.escalation_rows().unwrap(),
        dst.escalation_rows().unwrap()
    );
    assert_eq!(
        src.agent_seq("phuong-a").unwrap(),
        dst.agent_seq("phuong-a").unwrap()
    );
    // New ids continue after the copied ones.
    dst.resolve(open_id, &event(T0 + 5, EventKind::Resolved, "ok"), &[])
        .unwrap();
    let (next, _) = dst
        .open_incident(
            &new_incident("after", &["phuong-b"], &[], Severity::Warning),
            &event(T0 + 10, EventKind::Opened, "mở"),
            &[],
        )
        .unwrap();
    assert!(next > a.iter().map(|i| i.id).max().unwrap());
    // Into a non-empty store: refused.
    let again = run();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

/// The fence (PostgreSQL): with two instances on one store, only the lease holder's
/// leader-only writes commit; once its lease expired and the other took it over, the deposed
/// leader's next write is refused even though its own clock still says it leads. API writes
/// (acknowledge, notes) work on both.
#[test]
fn deposed_leader_cannot_write() {
    let Some(b) = Backend::postgres() else {
        return;
    };
    let (one, two) = (b.open(), b.open());
    one.join_cluster("one");
    two.join_cluster("two");
    assert!(one.lease_round(Some("127.0.0.1:1")).unwrap());
    assert!(!two.lease_round(Some("127.0.0.1:2")).unwrap());
    assert!(one.is_leader() && !two.is_leader());
    let inc = |k: &str| new_incident(k, &["phuong-a"], &[], Severity::Critical);
    let (id, _) = one
        .open_incident(&inc("k1"), &event(T0, EventKind::Opened, "mở"), &[])
        .unwrap();
    let refused = two.open_incident(&inc("k2"), &event(T0, EventKind::Opened, "mở"), &[]);
    assert!(
        matches!(refused, Err(StoreError::Db(db::DbError::NotLeader))),
        "{refused:?}"
    );
    assert!(two.get(id).unwrap().is_some(), "both read the shared store");
    assert!(two
        .add_note(id, T0 + 1, "x", "từ máy dự phòng")
        .unwrap()
        .is_some());
    assert!(
        two.health().problem().is_none(),
        "a fenced write is not a store failure"
    );

    // `one` is cut off past its lease: the lease expires (forced here), `two` takes over.
    let admin = b.open();
    admin.force_lease_expiry_for_tests().unwrap();
    assert!(two.lease_round(Some("127.0.0.1:2")).unwrap());
    assert!(one.is_leader(), "one's local deadline has not passed yet");
    let late = one.resolve(id, &event(T0 + 2, EventKind::Resolved, "ok"), &[]);
    assert!(
        matches!(late, Err(StoreError::Db(db::DbError::NotLeader))),
        "a deposed leader's late write must fail: {late:?}"
    );
    assert!(two.get(id).unwrap().unwrap().resolved_at.is_none());
    assert!(two
        .resolve(id, &event(T0 + 3, EventKind::Resolved, "ok"), &[])
        .unwrap());
    // The next round tells `one` it lost.
    assert!(!one.lease_round(Some("127.0.0.1:1")).unwrap());
    assert!(!one.is_leader());
    let members = two.cluster().unwrap();
    let roles: Vec<(&str, &str)> = members
        .iter()
        .map(|m| (m.instance.as_str(), m.role))
        .collect();
    assert!(
        roles.contains(&("two", "leader")) && roles.contains(&("one", "standby")),
        "{roles:?}"
    );
}

/// The lease epoch (PostgreSQL): a holder that renews an expired lease nobody took continues
/// its lead (`continued`: its queued writes may be applied); once another instance led in
/// between, taking it back is a new lead (`continued` false: the queue is superseded). The
/// other instances' latest check views are read back, by instance, and tallied.
#[test]
fn lease_epoch_tells_a_continued_lead_and_views_are_shared() {
    let Some(b) = Backend::postgres() else {
        return;
    };
    let (one, two, admin) = (b.open(), b.open(), b.open());
    one.join_cluster("one");
    two.join_cluster("two");
    let first = one.lease_round_detail(None).unwrap();
    assert!(
        first.leader && !first.continued,
        "a first lead continues nothing"
    );
    assert!(one.lease_round_detail(None).unwrap().continued);
    admin.force_lease_expiry_for_tests().unwrap();
    let back = one.lease_round_detail(None).unwrap();
    assert!(
        back.leader && back.continued,
        "nobody led meanwhile: {back:?}"
    );
    admin.force_lease_expiry_for_tests().unwrap();
    assert!(two.lease_round_detail(None).unwrap().leader);
    assert!(!one.lease_round_detail(None).unwrap().leader);
    admin.force_lease_expiry_for_tests().unwrap();
    let again = one.lease_round_detail(None).unwrap();
    assert!(
        again.leader && !again.continued,
        "two led in between: {again:?}"
    );

    use lienthong::incidents::vantage::{tally, CheckView};
    let view = |check: &str, up: bool, at: i64| CheckView {
        check: check.into(),
        up,
        at,
    };
    one.publish_check_views("one", &[view("site/a/x", false, T0)])
        .unwrap();
    two.publish_check_views(
        "two",
        &[
            view("site/a/x", true, T0),
            view("site/a/y", true, T0 - 60_000),
        ],
    )
    .unwrap();
    // Upsert: the latest row wins.
    two.publish_check_views("two", &[view("site/a/x", false, T0 + 1)])
        .unwrap();
    let seen = one.check_views("one", T0 - 1, 60_000).unwrap();
    assert!(
        one.check_views("one", T0 - 1, 0).unwrap().is_empty(),
        "an instance without a recent heartbeat does not vote"
    );
    assert_eq!(seen.len(), 1, "only the other instance: {seen:?}");
    assert_eq!(
        seen["two"],
        vec![view("site/a/x", false, T0 + 1)],
        "stale rows left out"
    );
    let votes = tally(&seen);
    assert_eq!(votes["site/a/x"].down, 1);
    assert!(votes["site/a/x"].down_with_own());
}

/// `[store] ca_file`: TLS to PostgreSQL, the server verified against that CA and the URL's
/// host name. The cluster here accepts only TLS over TCP (`hostssl`).
#[test]
fn postgres_over_tls_verifies_the_server() {
    use common::tls::Ca;
    let ca = Ca::root("lienthong test PostgreSQL CA");
    let leaf = ca.leaf(&["127.0.0.1"], (2000, 1, 1), (4000, 1, 1), &[]);
    let Some(pg) = Pg::start_tls(&leaf.cert_pem, &leaf.key_pem) else {
        return;
    };
    pg.create_db("lienthong");
    let dir = tempfile::tempdir().unwrap();
    let pem = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let (ca_file, other_ca) = (
        pem("pg-ca.pem", ca.pem()),
        pem("other-ca.pem", Ca::root("another CA").pem()),
    );
    let target = |url: &str| {
        let StoreLocation::Postgres(t) = StoreLocation::parse(url).unwrap() else {
            unreachable!()
        };
        t.with_password(Some(PASSWORD.into()))
    };
    let open = |t: &location::PgTarget| Store::open_location(&StoreLocation::Postgres(t.clone()));
    let url = pg.url("lienthong");

    // Verified TLS: the store opens and writes, and every session the server sees is encrypted.
    let tls = target(&url).with_ca_file(Some(&ca_file)).unwrap();
    assert!(tls.uses_tls());
    let store = open(&tls).unwrap_or_else(|e| panic!("open over TLS: {e}"));
    let (id, created) = store
        .open_incident(
            &new_incident("tls", &["phuong-a"], &["mang"], Severity::Warning),
            &event(T0, EventKind::Opened, "mở"),
            &[],
        )
        .unwrap();
    assert!(created && store.get(id).unwrap().is_some());
    let conn = db::Conn::Pg(Box::new(
        db::PgConn::connect(&tls.config(), Default::default()).unwrap(),
    ));
    let count = |sql: &str| -> i64 {
        conn.query_row(sql, Vec::<db::Value>::new(), |r| r.get(0))
            .unwrap()
    };
    let sessions = "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
                    WHERE a.application_name = 'lienthong'";
    assert!(
        count(&format!("{sessions} AND s.ssl")) >= 2,
        "the store's sessions"
    );
    assert_eq!(count(&format!("{sessions} AND NOT s.ssl")), 0);
    drop(store);

    // Refusals, each with its reason: plain TCP (hostssl only), a server signed by another
    // CA, a certificate for another name (the TLS name is the URL's host, the address
    // `hostaddr`, so only 127.0.0.1 is contacted).
    let cases = [
        (target(&url), "no encryption"),
        (
            target(&url).with_ca_file(Some(&other_ca)).unwrap(),
            "invalid peer certificate",
        ),
        (
            target(&format!(
                "postgres://lienthong@db.lienthong.test:{}/lienthong?hostaddr=127.0.0.1",
                pg.port
            ))
            .with_ca_file(Some(&ca_file))
            .unwrap(),
            "invalid peer certificate",
        ),
    ];
    for (t, words) in cases {
        let e = open(&t).expect_err("refused").to_string();
        eprintln!("refused: {e}");
        assert!(e.contains(words), "{t:?}: `{e}` lacks `{words}`");
        assert!(!e.contains(PASSWORD));
    }

    // `lienthong migrate --ca-file` copies into the TLS-only server; without it, refused.
    let sqlite = Backend::sqlite();
    escalation_and_assignment(&sqlite);
    let StoreLocation::Sqlite(path) = &sqlite.loc else {
        unreachable!()
    };
    pg.create_db("copy");
    let pw = pem("pw", PASSWORD);
    let migrate = |ca: Option<&std::path::Path>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_lienthong"));
        cmd.args(["migrate", "--from"])
            .arg(format!("sqlite:{}", path.display()))
            .args(["--to", &pg.url("copy"), "--password-file"])
            .arg(&pw);
        if let Some(ca) = ca {
            cmd.arg("--ca-file").arg(ca);
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!text.contains(PASSWORD));
        (out.status.success(), text)
    };
    let (ok, text) = migrate(None);
    assert!(!ok && text.contains("no encryption"), "{text}");
    let (ok, text) = migrate(Some(&ca_file));
    assert!(ok && text.contains("incidents: "), "{text}");

    // Bad settings are named: sslmode=require without a CA, a CA file that is not PEM, a
    // missing one.
    let e = target(&format!("{url}?sslmode=require"))
        .with_ca_file(None)
        .unwrap_err();
    assert!(e.contains("[store] ca_file"), "{e}");
    let not_pem = pem("not.pem", "hello");
    for (path, words) in [
        (not_pem.as_path(), "holds no PEM certificate"),
        (dir.path().join("missing.pem").as_path(), "missing.pem"),
    ] {
        let e = target(&url).with_ca_file(Some(path)).unwrap_err();
        assert!(e.contains("store ca_file") && e.contains(words), "{e}");
    }
}
