//! The SQLite incident store on real files in temporary directories: schema and migrations,
//! one-unresolved-per-key, timelines, listing with filters and cursors (also over 100,000
//! incidents), the outbox, pruning, concurrent readers, and `kill -9` of a writing process.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lienthong::incidents::store::{MAX_PAGE, SCHEMA_VERSION};
use lienthong::incidents::*;
use rusqlite::Connection;
use serde_json::json;

const T0: UnixMillis = 1_760_000_000_000;

fn db(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("lienthong.db")
}

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
        check: None,
        state: None,
        message: message.to_string(),
        evidence: None,
    }
}

fn opened(at: UnixMillis) -> NewEvent {
    NewEvent {
        at,
        kind: EventKind::Opened,
        check: Some("site/phuong-ben-thanh/link".into()),
        state: Some("down".into()),
        message: "Mất kết nối".into(),
        evidence: Some(json!({ "reason": "timeout", "loss": 1.0, "rtt_ms": null })),
    }
}

fn raw(path: &Path) -> Connection {
    Connection::open(path).expect("raw open")
}

#[test]
fn store_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Store>();
    check::<Arc<Store>>();
}

#[test]
fn open_migrate_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let id = {
        let store = Store::open(&path).unwrap();
        assert_eq!(store.path(), path);
        let c = raw(&path);
        let v: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let mode: String = c
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let tables: BTreeSet<String> = c
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for t in [
            "incidents",
            "incident_sites",
            "incident_teams",
            "events",
            "notes",
            "outbox",
            "maintenance",
        ] {
            assert!(tables.contains(t), "{t} in {tables:?}");
        }
        let inc = new_incident("site/a/link", &["a"], &["t1"], Severity::Critical);
        store.open_incident(&inc, &opened(T0), &[]).unwrap().0
    };
    // Reopen: nothing to migrate, data still there.
    let store = Store::open(&path).unwrap();
    let got = store.get(id).unwrap().expect("incident after reopen");
    assert_eq!(got.key, "site/a/link");
    assert_eq!(got.events.len(), 1);
    let v: i64 = raw(&path)
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    // Open twice at once (two handles on one file) works too.
    let again = Store::open(&path).unwrap();
    assert_eq!(again.unresolved().unwrap().len(), 1);
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    raw(&path)
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    match Store::open(&path) {
        Err(StoreError::TooNew { found, known }) => {
            assert_eq!(found, SCHEMA_VERSION + 1);
            assert_eq!(known, SCHEMA_VERSION);
        }
        other => panic!("expected TooNew, got {other:?}"),
    }
    // Nothing was written to it.
    let tables: i64 = raw(&path)
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tables, 0);
}

#[test]
fn open_incident_is_idempotent_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db(&dir)).unwrap();
    let hook = strings(&["hook"]);
    let inc = new_incident("site/a/link", &["a"], &["t1"], Severity::Critical);

    let (id, created) = store.open_incident(&inc, &opened(T0), &hook).unwrap();
    assert!(created);
    let (again, created) = store
        .open_incident(&inc, &opened(T0 + 1000), &hook)
        .unwrap();
    assert!(!created);
    assert_eq!(again, id);
    assert_eq!(store.get(id).unwrap().unwrap().events.len(), 1);
    assert_eq!(store.outbox_pending().unwrap(), 1);

    let other = new_incident("site/b/link", &["b"], &["t1"], Severity::Warning);
    let (other_id, created) = store.open_incident(&other, &opened(T0), &hook).unwrap();
    assert!(created);
    assert_ne!(other_id, id);

    // Resolve, then the same key opens a new incident.
    let resolved = event(T0 + 60_000, EventKind::Resolved, "Đã khôi phục");
    assert!(store.resolve(id, &resolved, &hook).unwrap());
    assert!(!store.resolve(id, &resolved, &hook).unwrap());
    assert!(!store.resolve(9_999, &resolved, &hook).unwrap());
    let (new_id, created) = store
        .open_incident(&inc, &opened(T0 + 120_000), &hook)
        .unwrap();
    assert!(created);
    assert!(new_id > other_id);
    let (same, created) = store
        .open_incident(&inc, &opened(T0 + 130_000), &hook)
        .unwrap();
    assert_eq!((same, created), (new_id, false));

    let old = store.get(id).unwrap().unwrap();
    assert_eq!(old.state, IncidentState::Resolved);
    assert_eq!(old.resolved_at, Some(T0 + 60_000));
    let kinds: Vec<EventKind> = old.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::Opened, EventKind::Resolved]);

    let open: Vec<i64> = store.unresolved().unwrap().iter().map(|i| i.id).collect();
    assert_eq!(open, [other_id, new_id]);

    // The partial unique index itself refuses a second unresolved row for a key.
    let c = raw(store.path());
    let dup = c.execute(
        "INSERT INTO incidents (key, title, title_en, severity, scope, started_at) \
         VALUES ('site/a/link', 't', 't', 'critical', 'site', 0)",
        [],
    );
    assert!(dup.is_err(), "duplicate unresolved key accepted");
}

#[test]
fn timeline_notes_and_ack_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db(&dir)).unwrap();
    let mut inc = new_incident(
        "service/lgsp",
        &["phuong-ben-thanh", "xa-con-dao", "phuong-sai-gon"],
        &["to-trung-tam", "to-ba-ria"],
        Severity::Critical,
    );
    inc.scope = Scope::Service;
    inc.service = Some("lgsp".into());
    let (id, _) = store.open_incident(&inc, &opened(T0), &[]).unwrap();

    let got = store.get(id).unwrap().unwrap();
    assert_eq!(got.id, id);
    assert_eq!(got.key, inc.key);
    assert_eq!(got.title, inc.title);
    assert_eq!(got.title_en, inc.title_en);
    assert_eq!(got.severity, Severity::Critical);
    assert_eq!(got.scope, Scope::Service);
    assert_eq!(got.service.as_deref(), Some("lgsp"));
    assert_eq!(got.sites, inc.sites, "sites keep their order");
    assert_eq!(got.teams, inc.teams);
    assert_eq!(got.state, IncidentState::Open);
    assert_eq!(got.started_at, T0);
    assert_eq!(got.events.len(), 1);
    let first = &got.events[0];
    assert_eq!(first.incident_id, id);
    assert_eq!(first.kind, EventKind::Opened);
    assert_eq!(first.check.as_deref(), Some("site/phuong-ben-thanh/link"));
    assert_eq!(first.state.as_deref(), Some("down"));
    assert_eq!(
        first.evidence,
        Some(json!({ "reason": "timeout", "loss": 1.0, "rtt_ms": null }))
    );

    let attached = NewEvent {
        at: T0 + 2_000,
        kind: EventKind::Attached,
        check: Some("site/xa-con-dao/endpoint".into()),
        state: Some("down".into()),
        message: "Cổng dịch vụ công không phản hồi".into(),
        evidence: Some(json!({ "status": 502, "rtt_ms": 4012.5 })),
    };
    let ev_id = store.append_event(id, &attached, &[]).unwrap();
    assert!(ev_id > first.id);
    store
        .set_sites(id, &strings(&["xa-con-dao", "phuong-ben-thanh"]))
        .unwrap();
    assert!(matches!(
        store.append_event(424_242, &attached, &[]),
        Err(StoreError::NoSuchIncident(424_242))
    ));
    assert!(matches!(
        store.set_sites(424_242, &[]),
        Err(StoreError::NoSuchIncident(424_242))
    ));

    // Acknowledge: first call records, second changes nothing.
    let (acked, ack_ev) = store
        .acknowledge(id, T0 + 5_000, "tổ trung tâm")
        .unwrap()
        .unwrap();
    assert_eq!(acked.state, IncidentState::Acknowledged);
    assert_eq!(acked.acknowledged_at, Some(T0 + 5_000));
    assert_eq!(acked.acknowledged_by.as_deref(), Some("tổ trung tâm"));
    assert_eq!(ack_ev.kind, EventKind::Acknowledged);
    assert_eq!(ack_ev.at, T0 + 5_000);
    assert_eq!(acked.events.last(), Some(&ack_ev));
    let (again, again_ev) = store
        .acknowledge(id, T0 + 9_000, "someone else")
        .unwrap()
        .unwrap();
    assert_eq!(again, acked);
    assert_eq!(again_ev, ack_ev);
    assert!(store.acknowledge(424_242, T0, "x").unwrap().is_none());

    let (note, note_ev) = store
        .add_note(id, T0 + 7_000, "Anh Tuấn", "Đã gọi nhà mạng, chờ xử lý cáp")
        .unwrap()
        .unwrap();
    assert_eq!(note.author, "Anh Tuấn");
    assert_eq!(note_ev.kind, EventKind::Note);
    assert!(note_ev.message.contains("chờ xử lý cáp"));
    assert!(store.add_note(424_242, T0, "a", "b").unwrap().is_none());

    let resolved = event(T0 + 60_000, EventKind::Resolved, "Đã khôi phục");
    assert!(store.resolve(id, &resolved, &[]).unwrap());

    let got = store.get(id).unwrap().unwrap();
    assert_eq!(got.state, IncidentState::Resolved);
    assert_eq!(got.sites, strings(&["xa-con-dao", "phuong-ben-thanh"]));
    assert_eq!(got.notes, vec![note]);
    let kinds: Vec<EventKind> = got.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::Opened,
            EventKind::Attached,
            EventKind::Acknowledged,
            EventKind::Note,
            EventKind::Resolved
        ]
    );
    assert_eq!(got.events[1].evidence, attached.evidence);
    assert_eq!(got.events[3], note_ev);
    assert!(got.events.windows(2).all(|w| w[0].id < w[1].id));
    assert!(store.get(424_242).unwrap().is_none());

    // Every kind survives the TEXT column.
    for kind in [
        EventKind::Opened,
        EventKind::StateChange,
        EventKind::Attached,
        EventKind::SitesChanged,
        EventKind::Acknowledged,
        EventKind::Note,
        EventKind::Resolved,
        EventKind::Resumed,
    ] {
        let e = store.append_event(id, &event(T0, kind, "k"), &[]).unwrap();
        assert_eq!(store.events_after(e - 1, 1).unwrap()[0].kind, kind);
    }
    let stored: Vec<String> = raw(store.path())
        .prepare("SELECT DISTINCT kind FROM events ORDER BY kind")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(stored.contains(&"state_change".to_string()), "{stored:?}");
    assert!(stored.contains(&"sites_changed".to_string()), "{stored:?}");

    // Feeds.
    let all = store.events_after(0, 1000).unwrap();
    assert_eq!(all.len(), 13);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    let recent = store.recent_events(3).unwrap();
    assert_eq!(recent.len(), 3);
    assert_eq!(recent[0].id, all.last().unwrap().id);
    assert!(recent.windows(2).all(|w| w[0].id > w[1].id));
    assert_eq!(store.events_after(all[10].id, 100).unwrap().len(), 2);
}

/// What the test believes about each incident, to compute expected listings.
#[derive(Clone, Debug)]
struct Shadow {
    id: i64,
    sites: Vec<String>,
    teams: Vec<String>,
    severity: Severity,
    state: IncidentState,
    started_at: UnixMillis,
}

fn matches(s: &Shadow, f: &IncidentFilter) -> bool {
    f.state.is_none_or(|st| st == s.state)
        && f.site.as_ref().is_none_or(|x| s.sites.contains(x))
        && f.team.as_ref().is_none_or(|x| s.teams.contains(x))
        && f.severity.is_none_or(|x| x == s.severity)
        && f.since.is_none_or(|x| s.started_at >= x)
}

fn expected(all: &[Shadow], f: &IncidentFilter) -> Vec<i64> {
    let mut ids: Vec<i64> = all.iter().filter(|s| matches(s, f)).map(|s| s.id).collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids
}

/// Walks every page; checks pages are disjoint, ordered and complete.
fn walk(store: &Store, f: &IncidentFilter, limit: u32) -> Vec<i64> {
    let mut seen = Vec::new();
    let mut cursor = None;
    for _ in 0..100_000 {
        let page = store.list(f, cursor, limit).unwrap();
        assert!(page.items.len() <= limit as usize);
        for it in &page.items {
            assert!(it.events.is_empty() && it.notes.is_empty());
        }
        seen.extend(page.items.iter().map(|i| i.id));
        match page.next_cursor {
            Some(c) => {
                assert_eq!(page.items.len(), limit as usize, "short page with a cursor");
                assert_eq!(Some(c), page.items.last().map(|i| i.id));
                cursor = Some(c);
            }
            None => return seen,
        }
    }
    panic!("pagination does not end");
}

fn filters(sites: &[String], teams: &[String], since: UnixMillis) -> Vec<IncidentFilter> {
    let mut out = vec![IncidentFilter::default()];
    for state in [
        IncidentState::Open,
        IncidentState::Acknowledged,
        IncidentState::Resolved,
    ] {
        out.push(IncidentFilter {
            state: Some(state),
            ..Default::default()
        });
    }
    out.push(IncidentFilter {
        site: Some(sites[3].clone()),
        ..Default::default()
    });
    out.push(IncidentFilter {
        team: Some(teams[1].clone()),
        ..Default::default()
    });
    out.push(IncidentFilter {
        severity: Some(Severity::Critical),
        ..Default::default()
    });
    out.push(IncidentFilter {
        since: Some(since),
        ..Default::default()
    });
    out.push(IncidentFilter {
        site: Some(sites[5].clone()),
        team: Some(teams[5 % teams.len()].clone()),
        severity: Some(Severity::Warning),
        state: Some(IncidentState::Resolved),
        since: Some(since),
    });
    out.push(IncidentFilter {
        team: Some(teams[2].clone()),
        state: Some(IncidentState::Open),
        ..Default::default()
    });
    out.push(IncidentFilter {
        site: Some(sites[7].clone()),
        team: Some(teams[(7 + 1) % teams.len()].clone()), // a team that does not cover it
        ..Default::default()
    });
    out.push(IncidentFilter {
        site: Some("no-such-site".into()),
        ..Default::default()
    });
    out
}

#[test]
fn list_filters_and_cursor_pagination() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db(&dir)).unwrap();
    let sites: Vec<String> = (0..20).map(|i| format!("site-{i:02}")).collect();
    let teams: Vec<String> = (0..4).map(|i| format!("team-{i}")).collect();
    let mut shadow = Vec::new();
    for n in 0..1234i64 {
        let s = (n % 20) as usize;
        let mut inc_sites = vec![sites[s].as_str()];
        if n % 10 == 0 {
            inc_sites.push(sites[(s + 3) % 20].as_str());
        }
        let team = teams[s % 4].as_str();
        let severity = if n % 3 == 0 {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let inc = new_incident(&format!("k/{n}"), &inc_sites, &[team], severity);
        let started_at = T0 + n * 1000;
        let (id, created) = store.open_incident(&inc, &opened(started_at), &[]).unwrap();
        assert!(created);
        let mut state = IncidentState::Open;
        if n % 4 != 0 {
            store
                .resolve(id, &event(started_at + 500, EventKind::Resolved, "ok"), &[])
                .unwrap();
            state = IncidentState::Resolved;
        } else if n % 8 == 0 {
            store.acknowledge(id, started_at + 100, "tech").unwrap();
            state = IncidentState::Acknowledged;
        }
        shadow.push(Shadow {
            id,
            sites: inc_sites.iter().map(|s| s.to_string()).collect(),
            teams: vec![team.to_string()],
            severity,
            state,
            started_at,
        });
    }
    let since = T0 + 1000 * 1000;
    for f in filters(&sites, &teams, since) {
        let want = expected(&shadow, &f);
        for limit in [1, 7, 100, 500] {
            let got = walk(&store, &f, limit);
            assert_eq!(got, want, "filter {f:?} limit {limit}");
        }
        let set: HashSet<i64> = want.iter().copied().collect();
        assert_eq!(set.len(), want.len());
    }
    // Items carry their sites and teams.
    let page = store.list(&IncidentFilter::default(), None, 20).unwrap();
    for it in &page.items {
        let sh = shadow.iter().find(|s| s.id == it.id).unwrap();
        assert_eq!(it.sites, sh.sites);
        assert_eq!(it.teams, sh.teams);
        assert_eq!(it.state, sh.state);
        assert_eq!(it.severity, sh.severity);
    }
    // Limits are clamped to 1..=500.
    let f = IncidentFilter::default();
    assert_eq!(store.list(&f, None, 0).unwrap().items.len(), 1);
    let big = store.list(&f, None, 10_000).unwrap();
    assert_eq!(big.items.len(), MAX_PAGE as usize);
    assert_eq!(big.next_cursor, Some(big.items[499].id));
    // A cursor below every id: empty last page.
    let end = store.list(&f, Some(shadow[0].id), 50).unwrap();
    assert!(end.items.is_empty() && end.next_cursor.is_none());
}

#[test]
fn outbox_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db(&dir)).unwrap();
    let targets = strings(&["webhook", "alertmanager"]);
    let inc = new_incident("site/a/link", &["a"], &["t"], Severity::Critical);
    let (id, _) = store.open_incident(&inc, &opened(T0), &targets).unwrap();
    let opened_ev = store.get(id).unwrap().unwrap().events[0].id;

    assert!(store.due_outbox(T0 - 1, 10).unwrap().is_empty());
    let due = store.due_outbox(T0, 10).unwrap();
    assert_eq!(due.len(), 2);
    assert_eq!(due[0].target, "webhook");
    assert_eq!(due[1].target, "alertmanager");
    for d in &due {
        assert_eq!(d.incident_id, id);
        assert_eq!(d.event_id, opened_ev);
        assert_eq!(d.idempotency_key, format!("{opened_ev}:{}", d.target));
        assert_eq!(d.attempts, 0);
        assert_eq!(d.next_attempt_at, T0);
        assert!(d.last_error.is_none());
    }
    assert!(due[0].id < due[1].id);
    assert_eq!(store.outbox_pending().unwrap(), 2);

    // A failure: counted, retried later, error cut to 500 characters (not bytes).
    let long = "lỗi ".repeat(400);
    store.outbox_failed(due[0].id, T0 + 30_000, &long).unwrap();
    let due_now = store.due_outbox(T0 + 1, 10).unwrap();
    assert_eq!(due_now.len(), 1);
    assert_eq!(due_now[0].target, "alertmanager");
    let later = store.due_outbox(T0 + 30_000, 10).unwrap();
    assert_eq!(later.len(), 2);
    let failed = &later[0];
    assert_eq!(failed.attempts, 1);
    assert_eq!(failed.next_attempt_at, T0 + 30_000);
    let err = failed.last_error.as_deref().unwrap();
    assert_eq!(err.chars().count(), 500);
    assert!(long.starts_with(err));
    store
        .outbox_failed(due[0].id, T0 + 90_000, "again")
        .unwrap();
    let again = store.due_outbox(T0 + 90_000, 10).unwrap();
    assert_eq!(again[0].attempts, 2);
    assert_eq!(again[0].last_error.as_deref(), Some("again"));

    // Delivered rows leave the queue; a late failure report does not bring them back.
    store.outbox_delivered(due[1].id, T0 + 2).unwrap();
    assert_eq!(store.outbox_pending().unwrap(), 1);
    store.outbox_failed(due[1].id, T0, "late").unwrap();
    store.outbox_delivered(due[0].id, T0 + 91_000).unwrap();
    assert_eq!(store.outbox_pending().unwrap(), 0);
    assert!(store.due_outbox(i64::MAX, 10).unwrap().is_empty());

    // Events get rows for each target once; ack and notes notify nobody.
    let ev = store
        .append_event(
            id,
            &event(T0 + 5, EventKind::StateChange, "x"),
            &strings(&["webhook", "webhook"]),
        )
        .unwrap();
    store.acknowledge(id, T0 + 6, "a").unwrap();
    store.add_note(id, T0 + 7, "a", "n").unwrap();
    let due = store.due_outbox(i64::MAX, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].idempotency_key, format!("{ev}:webhook"));
    // Limit and order.
    for n in 0..5 {
        store
            .append_event(
                id,
                &event(T0 + 10 + n, EventKind::StateChange, "y"),
                &targets,
            )
            .unwrap();
    }
    let first3 = store.due_outbox(i64::MAX, 3).unwrap();
    assert_eq!(first3.len(), 3);
    assert!(first3.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(first3[0].id, due[0].id);
    assert_eq!(store.outbox_pending().unwrap(), 11);

    // The outbox survives a restart.
    drop(store);
    let store = Store::open(&db(&dir)).unwrap();
    assert_eq!(store.outbox_pending().unwrap(), 11);
}

#[test]
fn prune_resolved_with_cascade() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db(&dir)).unwrap();
    let hook = strings(&["hook"]);
    let mut ids = Vec::new();
    for n in 0..2500i64 {
        let inc = new_incident(&format!("k/{n}"), &["a", "b"], &["t"], Severity::Warning);
        let (id, _) = store.open_incident(&inc, &opened(T0 + n), &[]).unwrap();
        store.add_note(id, T0 + n, "a", "note").unwrap();
        ids.push(id);
    }
    // Resolved long ago: 0..2000 (2000..2100 with an undelivered notification);
    // resolved recently: 2100..2200; unresolved: the rest.
    for (n, &id) in ids.iter().enumerate().take(2200) {
        let at = if n < 2100 { T0 + 10_000 } else { T0 + 900_000 };
        let notify: &[String] = if (2000..2100).contains(&n) {
            &hook
        } else {
            &[]
        };
        store
            .resolve(id, &event(at, EventKind::Resolved, "ok"), notify)
            .unwrap();
    }
    let removed = store.prune_resolved(T0 + 500_000).unwrap();
    assert_eq!(removed, 2000);
    assert!(store.get(ids[0]).unwrap().is_none());
    assert!(store.get(ids[1999]).unwrap().is_none());
    assert!(
        store.get(ids[2000]).unwrap().is_some(),
        "pending notification kept"
    );
    assert!(store.get(ids[2150]).unwrap().is_some());
    assert!(store.get(ids[2400]).unwrap().is_some());
    let c = raw(store.path());
    for table in [
        "events",
        "notes",
        "incident_sites",
        "incident_teams",
        "outbox",
    ] {
        let orphans: i64 = c
            .query_row(
                &format!(
                    "SELECT count(*) FROM {table} \
                     WHERE incident_id NOT IN (SELECT id FROM incidents)"
                ),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(orphans, 0, "orphans in {table}");
    }
    let events: i64 = c
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(events, 500 * 2 + 200);

    // Once delivered, those go too.
    for item in store.due_outbox(i64::MAX, 500).unwrap() {
        store.outbox_delivered(item.id, T0).unwrap();
    }
    assert_eq!(store.prune_resolved(T0 + 500_000).unwrap(), 100);
    assert_eq!(store.prune_resolved(T0 + 500_000).unwrap(), 0);

    // Ids are never reused, even after the newest rows were pruned.
    let last_event = store.recent_events(1).unwrap()[0].id;
    store
        .resolve(
            *ids.last().unwrap(),
            &event(T0, EventKind::Resolved, "ok"),
            &[],
        )
        .unwrap();
    let newest = store.recent_events(1).unwrap()[0].id;
    assert!(newest > last_event);
    assert_eq!(store.prune_resolved(i64::MAX).unwrap(), 101);
    let (id, _) = store
        .open_incident(
            &new_incident("fresh", &["a"], &[], Severity::Warning),
            &opened(T0),
            &[],
        )
        .unwrap();
    assert!(id > *ids.last().unwrap());
    assert!(store.recent_events(1).unwrap()[0].id > newest);
}

#[test]
fn maintenance_windows_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db(&dir)).unwrap();
    let w = |site: Option<&str>, service: Option<&str>, starts_at, ends_at| MaintenanceWindow {
        id: 0,
        site: site.map(Into::into),
        service: service.map(Into::into),
        starts_at,
        ends_at,
        reason: "Nâng cấp thiết bị".into(),
        created_by: "api".into(),
    };
    let a = store
        .add_maintenance(&w(Some("xa-con-dao"), None, T0 + 100, T0 + 200))
        .unwrap();
    let b = store
        .add_maintenance(&w(None, Some("lgsp"), T0, T0 + 50))
        .unwrap();
    let c = store
        .add_maintenance(&w(None, None, T0 + 10, T0 + 500))
        .unwrap();
    assert!(a < b && b < c);
    let now = store.maintenance_windows(T0).unwrap();
    let ids: Vec<i64> = now.iter().map(|w| w.id).collect();
    assert_eq!(ids, [b, c, a], "by start time");
    assert_eq!(
        now[2],
        MaintenanceWindow {
            id: a,
            ..w(Some("xa-con-dao"), None, T0 + 100, T0 + 200)
        }
    );
    let later: Vec<i64> = store
        .maintenance_windows(T0 + 50)
        .unwrap()
        .iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(later, [c, a], "a window ending at `now` is over");
    assert!(store.maintenance_windows(T0 + 500).unwrap().is_empty());
}

#[test]
fn readers_do_not_block_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&db(&dir)).unwrap());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let page = store.list(&IncidentFilter::default(), None, 50).unwrap();
                    if let Some(first) = page.items.first() {
                        let inc = store.get(first.id).unwrap().unwrap();
                        assert!(!inc.events.is_empty(), "snapshot has the Opened event");
                    }
                    store.unresolved().unwrap();
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let started = Instant::now();
    for n in 0..500i64 {
        let inc = new_incident(&format!("k/{}", n % 50), &["a"], &["t"], Severity::Warning);
        let (id, created) = store.open_incident(&inc, &opened(T0 + n), &[]).unwrap();
        if !created {
            store
                .resolve(id, &event(T0 + n, EventKind::Resolved, "ok"), &[])
                .unwrap();
        }
    }
    let write_time = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads: u64 = readers.into_iter().map(|h| h.join().unwrap()).sum();
    println!("500 writes in {write_time:?} alongside {reads} reader loops");
}

/// 100,000 incidents of history: filtered first pages stay index walks. Timings are printed
/// (run with `--release -- --nocapture`); only correctness is asserted.
#[test]
fn hundred_thousand_incidents() {
    const N: i64 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db(&dir)).unwrap();
    let sites: Vec<String> = (0..168).map(|i| format!("site-{i:03}")).collect();
    let teams: Vec<String> = (0..12).map(|i| format!("team-{i:02}")).collect();
    let mut history = Vec::with_capacity(N as usize);
    for n in 0..N {
        let s = (n * 7919 % 168) as usize;
        let mut inc_sites = vec![sites[s].clone()];
        if n % 97 == 0 {
            inc_sites.extend((1..6).map(|k| sites[(s + k * 11) % 168].clone()));
        }
        // Mostly in time order, with a few late imports from the past.
        let started_at = if n % 1000 == 999 {
            T0 - n * 1000
        } else {
            T0 + n * 60_000
        };
        let unresolved = n >= N - 150;
        let acknowledged = n % 3 == 0 || !unresolved && n % 2 == 0;
        let resolved_at = (!unresolved).then_some(started_at + 300_000);
        let mut events = vec![IncidentEvent {
            id: 0,
            incident_id: 0,
            at: started_at,
            kind: EventKind::Opened,
            check: Some(format!("site/{}/link", sites[s])),
            state: Some("down".into()),
            message: "Mất kết nối".into(),
            evidence: Some(json!({ "reason": "timeout" })),
        }];
        if let Some(at) = resolved_at {
            events.push(IncidentEvent {
                at,
                kind: EventKind::Resolved,
                message: "Đã khôi phục".into(),
                ..events[0].clone()
            });
        }
        history.push(Incident {
            id: 0,
            key: if unresolved {
                format!("site/{n}/link")
            } else {
                format!("site/{}/link", sites[s])
            },
            title: format!("Mất kết nối: {}", sites[s]),
            title_en: format!("Link down: {}", sites[s]),
            severity: if n % 5 == 0 {
                Severity::Critical
            } else {
                Severity::Warning
            },
            scope: if inc_sites.len() > 1 {
                Scope::City
            } else {
                Scope::Site
            },
            state: IncidentState::Open, // derived on read
            sites: inc_sites,
            service: None,
            teams: vec![teams[s % 12].clone()],
            started_at,
            acknowledged_at: acknowledged.then_some(started_at + 1000),
            acknowledged_by: acknowledged.then(|| "tech".to_string()),
            resolved_at,
            ack_expires_at: None,
            assigned_to: None,
            events,
            notes: Vec::new(),
        });
    }
    let t = Instant::now();
    let ids = store.insert_history(&history).unwrap();
    println!("inserted {N} incidents in {:?}", t.elapsed());
    assert_eq!(ids.len(), N as usize);
    let shadow: Vec<Shadow> = history
        .iter()
        .zip(&ids)
        .map(|(h, &id)| Shadow {
            id,
            sites: h.sites.clone(),
            teams: h.teams.clone(),
            severity: h.severity,
            state: if h.resolved_at.is_some() {
                IncidentState::Resolved
            } else if h.acknowledged_at.is_some() {
                IncidentState::Acknowledged
            } else {
                IncidentState::Open
            },
            started_at: h.started_at,
        })
        .collect();

    let recent = T0 + (N - 400) * 60_000;
    let old = T0 + (N / 2) * 60_000;
    let mut cases: Vec<(&str, IncidentFilter)> = vec![
        ("none", IncidentFilter::default()),
        (
            "site",
            IncidentFilter {
                site: Some(sites[42].clone()),
                ..Default::default()
            },
        ),
        (
            "team",
            IncidentFilter {
                team: Some(teams[7].clone()),
                ..Default::default()
            },
        ),
        (
            "severity",
            IncidentFilter {
                severity: Some(Severity::Critical),
                ..Default::default()
            },
        ),
        (
            "state=open",
            IncidentFilter {
                state: Some(IncidentState::Open),
                ..Default::default()
            },
        ),
        (
            "state=acknowledged",
            IncidentFilter {
                state: Some(IncidentState::Acknowledged),
                ..Default::default()
            },
        ),
        (
            "state=resolved",
            IncidentFilter {
                state: Some(IncidentState::Resolved),
                ..Default::default()
            },
        ),
        (
            "since recent",
            IncidentFilter {
                since: Some(recent),
                ..Default::default()
            },
        ),
        (
            "since old",
            IncidentFilter {
                since: Some(old),
                ..Default::default()
            },
        ),
        (
            "since future",
            IncidentFilter {
                since: Some(i64::MAX),
                ..Default::default()
            },
        ),
        (
            "site+resolved",
            IncidentFilter {
                site: Some(sites[42].clone()),
                state: Some(IncidentState::Resolved),
                ..Default::default()
            },
        ),
        (
            "team+open",
            IncidentFilter {
                team: Some(teams[3].clone()),
                state: Some(IncidentState::Open),
                ..Default::default()
            },
        ),
        (
            "team+critical+since old",
            IncidentFilter {
                team: Some(teams[3].clone()),
                severity: Some(Severity::Critical),
                since: Some(old),
                ..Default::default()
            },
        ),
        (
            "site+since recent",
            IncidentFilter {
                site: Some(sites[100].clone()),
                since: Some(recent),
                ..Default::default()
            },
        ),
        (
            "site+other team",
            IncidentFilter {
                site: Some(sites[1].clone()),
                team: Some(teams[2].clone()),
                ..Default::default()
            },
        ),
        (
            "critical+acknowledged",
            IncidentFilter {
                severity: Some(Severity::Critical),
                state: Some(IncidentState::Acknowledged),
                ..Default::default()
            },
        ),
        (
            "unknown site",
            IncidentFilter {
                site: Some("no-such-site".into()),
                ..Default::default()
            },
        ),
    ];
    // Second pages too, from the middle of the history.
    let mid = ids[N as usize / 2];
    let mut worst = Duration::ZERO;
    for (name, f) in cases.drain(..) {
        let want = expected(&shadow, &f);
        for (cursor, limit) in [(None, 50u32), (Some(mid), 50), (None, 500)] {
            let page = store.list(&f, cursor, limit).unwrap(); // warm the statement cache
            let mut times = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                let again = store.list(&f, cursor, limit).unwrap();
                times.push(t.elapsed());
                assert_eq!(again, page);
            }
            times.sort();
            let median = times[2];
            worst = worst.max(median);
            let want_page: Vec<i64> = want
                .iter()
                .copied()
                .filter(|&id| cursor.is_none_or(|c| id < c))
                .collect();
            let got: Vec<i64> = page.items.iter().map(|i| i.id).collect();
            let n = want_page.len().min(limit as usize);
            assert_eq!(got, want_page[..n], "{name} cursor {cursor:?}");
            let more = want_page.len() > limit as usize;
            assert_eq!(page.next_cursor, more.then(|| got[n - 1]), "{name}");
            println!(
                "list {name:<24} cursor={:<5} limit={limit:<3} -> {:>3} items, median {median:?}",
                if cursor.is_some() { "mid" } else { "none" },
                got.len()
            );
        }
    }
    println!("slowest median page: {worst:?}");
    let t = Instant::now();
    let open = store.unresolved().unwrap();
    println!("unresolved(): {} in {:?}", open.len(), t.elapsed());
    assert_eq!(open.len(), 150);
    let t = Instant::now();
    let inc = store.get(ids[12_345]).unwrap().unwrap();
    println!("get(): {:?}", t.elapsed());
    assert_eq!(inc.events.len(), 2);
    let t = Instant::now();
    let pruned = store.prune_resolved(T0 + (N / 10) * 60_000).unwrap();
    println!("prune_resolved(): {pruned} in {:?}", t.elapsed());
    assert!(pruned > 9_000);
}

// ---------------------------------------------------------------------------------------------
// kill -9 of a writing process
// ---------------------------------------------------------------------------------------------

const CRASH_ENV: &str = "LIENTHONG_STORE_CRASH_DB";

/// Not a test on its own: with `LIENTHONG_STORE_CRASH_DB` set (by
/// `kill_9_loses_no_committed_incident`), this process writes incidents into that file until it
/// is killed, reporting each committed write on stdout.
#[test]
fn crash_writer_child() {
    let Ok(path) = std::env::var(CRASH_ENV) else {
        return;
    };
    let store = Store::open(Path::new(&path)).unwrap();
    let hook = strings(&["hook"]);
    let seed = std::process::id() as i64;
    // Resume what the previous run left open, as the engine does at start-up.
    for inc in store.unresolved().unwrap() {
        store
            .append_event(inc.id, &event(T0, EventKind::Resumed, "resumed"), &hook)
            .unwrap();
    }
    println!("READY");
    for n in 0i64.. {
        let key = format!("site/k{}/link", (n * 31 + seed) % 40);
        let inc = new_incident(&key, &["a", "b", "c"], &["t1", "t2"], Severity::Critical);
        let (id, created) = store.open_incident(&inc, &opened(T0 + n), &hook).unwrap();
        println!("OPENED {id} {created}");
        store
            .append_event(
                id,
                &NewEvent {
                    evidence: Some(json!({ "n": n, "pad": "x".repeat(300) })),
                    ..event(T0 + n, EventKind::StateChange, "thay đổi")
                },
                &hook,
            )
            .unwrap();
        if n % 3 == 0 {
            let done = store
                .resolve(id, &event(T0 + n, EventKind::Resolved, "ok"), &hook)
                .unwrap();
            if done {
                println!("RESOLVED {id}");
            }
        }
        if n % 50 == 0 {
            store.add_note(id, T0 + n, "child", "note").unwrap();
            store.acknowledge(id, T0 + n, "child").unwrap();
        }
    }
}

#[test]
fn kill_9_loses_no_committed_incident() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let exe = std::env::current_exe().unwrap();
    let mut opened_ids = HashSet::new();
    let mut resolved_ids = HashSet::new();
    let mut total_lines = 0;
    for round in 0..4u64 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Let it write for a while (a different number of commits each round), then kill -9.
        let want = 200 + round as usize * 150;
        let mut commits = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut lines = Vec::new();
        while commits < want && Instant::now() < deadline {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
                if line.starts_with("OPENED") {
                    commits += 1;
                }
                lines.push(line);
            }
        }
        assert!(commits >= want, "child wrote only {commits} incidents");
        std::thread::sleep(Duration::from_millis(3 + round * 7));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success());
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        total_lines += lines.len();
        for line in lines {
            let mut it = line.split_whitespace();
            match (it.next(), it.next().and_then(|s| s.parse::<i64>().ok())) {
                (Some("OPENED"), Some(id)) => {
                    opened_ids.insert(id);
                }
                (Some("RESOLVED"), Some(id)) => {
                    resolved_ids.insert(id);
                }
                _ => {}
            }
        }
    }
    println!(
        "{total_lines} lines from 4 killed writers: {} incidents, {} resolved",
        opened_ids.len(),
        resolved_ids.len()
    );

    // Reopen as the process would after the crash.
    let store = Store::open(&path).unwrap();
    let c = raw(&path);
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let fk: i64 = c
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(fk, 0, "foreign key violations");

    // Everything the children reported as committed is there.
    for &id in &opened_ids {
        let inc = store
            .get(id)
            .unwrap()
            .unwrap_or_else(|| panic!("incident {id} lost"));
        assert_eq!(inc.events[0].kind, EventKind::Opened, "incident {id}");
        assert_eq!(inc.sites, strings(&["a", "b", "c"]));
    }
    for &id in &resolved_ids {
        let inc = store.get(id).unwrap().unwrap();
        assert_eq!(inc.state, IncidentState::Resolved);
        let resolved = inc.events.iter().filter(|e| e.kind == EventKind::Resolved);
        assert_eq!(resolved.count(), 1, "incident {id}");
    }
    // Every incident in the file has its Opened event first; every event its outbox row.
    let missing_opened: i64 = c
        .query_row(
            "SELECT count(*) FROM incidents i WHERE (SELECT kind FROM events e \
             WHERE e.incident_id = i.id ORDER BY e.id LIMIT 1) IS NOT 'opened'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(missing_opened, 0);
    let without_outbox: i64 = c
        .query_row(
            "SELECT count(*) FROM events e WHERE e.kind NOT IN ('note', 'acknowledged') \
             AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_id = e.id)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(without_outbox, 0);
    // No key has two unresolved incidents; each resolved one has exactly one Resolved event.
    let dup_keys: i64 = c
        .query_row(
            "SELECT count(*) FROM (SELECT key FROM incidents WHERE resolved_at IS NULL \
             GROUP BY key HAVING count(*) > 1)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(dup_keys, 0);
    let bad_resolved: i64 = c
        .query_row(
            "SELECT count(*) FROM incidents i WHERE (resolved_at IS NOT NULL) != \
             ((SELECT count(*) FROM events e WHERE e.incident_id = i.id AND kind = 'resolved') = 1)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(bad_resolved, 0);
    let unresolved = store.unresolved().unwrap();
    let keys: HashMap<&str, i64> = unresolved.iter().map(|i| (i.key.as_str(), i.id)).collect();
    assert_eq!(keys.len(), unresolved.len());
    let all: i64 = c
        .query_row("SELECT count(*) FROM incidents", [], |r| r.get(0))
        .unwrap();
    assert!(all as usize >= opened_ids.len());
    println!(
        "after reopen: {all} incidents, {} unresolved, integrity ok",
        unresolved.len()
    );
}

/// "Monitor blind" minutes (runs while the prober was isolated) survive the minute rows, the
/// hourly rollup, and a database of schema version 2 migrates through 3, 4 and 5.
#[test]
fn blind_minutes_roll_up_and_old_databases_migrate() {
    use lienthong::availability::{MinuteRow, MinuteStats};
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    {
        // A version-2 database: what migrations 3 (blind), 4 (escalation) and 5 (agent
        // sequences) added, dropped again.
        Store::open(&path).unwrap();
        let c = raw(&path);
        c.execute_batch(
            "ALTER TABLE history_minute DROP COLUMN blind;
             ALTER TABLE history_hour DROP COLUMN blind_minutes;
             DROP INDEX incidents_first_ack;
             ALTER TABLE incidents DROP COLUMN first_acknowledged_at;
             ALTER TABLE incidents DROP COLUMN ack_expires_at;
             ALTER TABLE incidents DROP COLUMN assigned_to;
             ALTER TABLE incidents DROP COLUMN escalation_base_at;
             DROP TABLE escalations;
             DROP TABLE agent_seq;
             PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let v: i64 = raw(&path)
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    let hour = 29_000_000 / 60;
    let rows: Vec<MinuteRow> = (0..60)
        .map(|m| MinuteRow {
            check: "site/a/link".into(),
            minute: hour * 60 + m,
            stats: if m < 20 {
                MinuteStats {
                    blind: 6,
                    ..Default::default()
                }
            } else {
                MinuteStats {
                    attempts: 6,
                    successes: 6,
                    ..Default::default()
                }
            },
        })
        .collect();
    store.history_write(&rows).unwrap();
    let minutes = store.history_window(hour * 60, hour * 60 + 60).unwrap();
    let a = &minutes.checks["site/a/link"].agg;
    assert_eq!((a.minutes, a.blind_minutes), (40, 20));
    assert_eq!(a.availability(), Some(1.0));
    store.history_rollup(hour * 60 + 70).unwrap();
    let (pruned, _) = store.history_prune(hour * 60 + 60, 0).unwrap();
    assert_eq!(pruned, 60, "the minutes are gone; the hour row remains");
    let hours = store.history_window(hour * 60, hour * 60 + 60).unwrap();
    let a = &hours.checks["site/a/link"].agg;
    assert_eq!(
        (a.minutes, a.blind_minutes),
        (40, 20),
        "from the hourly row"
    );
}
