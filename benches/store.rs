//! Store benchmark, SQLite vs PostgreSQL (a bench binary, not a test): the same operations
//! through the one code path on a SQLite file and on a private PostgreSQL cluster
//! (tests/common/pg.rs: initdb in a temp dir, 127.0.0.1, fsync off like the SQLite file's
//! `synchronous=NORMAL`... see BENCHMARKS.md for what that means).
//!
//! 1. Incident writes: open (with one outbox row) + resolve, sequential, per second.
//! 2. API latency with `BENCH_HISTORY` (default 20,000) incidents in history: the real router on
//!    127.0.0.1, sequential requests over list filters, pages and single incidents.
//!
//! `cargo bench --bench store` (needs /usr/lib/postgresql/*/bin; otherwise SQLite only).

#[path = "../tests/common/pg.rs"]
mod pg;

#[path = "../tests/common/ports.rs"]
mod ports;
use ports::free_port;

#[path = "support/api_latency.rs"]
mod api_latency;

use std::sync::Arc;
use std::time::Instant;

use lienthong::incidents::location::StoreLocation;
use lienthong::incidents::*;

const T0: i64 = 1_760_000_000_000;

fn incident(i: usize, resolved: bool) -> Incident {
    let site = format!("phuong-{}", i % 168);
    let started = T0 + i as i64 * 300_000;
    Incident {
        id: 0,
        key: format!("site/{site}/link/{i}"),
        title: format!("Mất kết nối: {site}"),
        title_en: format!("Link down: {site}"),
        severity: if i.is_multiple_of(3) {
            Severity::Warning
        } else {
            Severity::Critical
        },
        scope: Scope::Site,
        state: if resolved {
            IncidentState::Resolved
        } else {
            IncidentState::Open
        },
        sites: vec![site],
        service: None,
        teams: vec![format!("to-{}", i % 4)],
        started_at: started,
        acknowledged_at: None,
        acknowledged_by: None,
        resolved_at: resolved.then_some(started + 120_000),
        ack_expires_at: None,
        assigned_to: None,
        events: vec![IncidentEvent {
            id: 0,
            incident_id: 0,
            at: started,
            kind: EventKind::Opened,
            check: None,
            state: Some("down".into()),
            message: "Mất kết nối".into(),
            evidence: None,
        }],
        notes: Vec::new(),
    }
}

fn writes(store: &Store, n: usize) -> f64 {
    let notify = vec!["hook".to_string()];
    let t = Instant::now();
    for i in 0..n {
        let inc = NewIncident {
            key: format!("bench/{i}"),
            title: "Mất kết nối".into(),
            title_en: "Link down".into(),
            severity: Severity::Critical,
            scope: Scope::Site,
            sites: vec![format!("phuong-{}", i % 168)],
            service: None,
            teams: vec!["mang".into()],
        };
        let ev = |kind| NewEvent {
            at: T0 + i as i64,
            kind,
            check: Some("site/x/link".into()),
            state: Some("down".into()),
            message: "bench".into(),
            evidence: None,
        };
        let (id, _) = store
            .open_incident(&inc, &ev(EventKind::Opened), &notify)
            .unwrap();
        store
            .resolve(id, &ev(EventKind::Resolved), &notify)
            .unwrap();
    }
    // Two write transactions per cycle.
    (2 * n) as f64 / t.elapsed().as_secs_f64()
}

fn api_latency(store: Arc<Store>, ids: &[i64]) {
    let mid = ids[ids.len() / 2];
    api_latency::measure(
        store,
        &[
            "/api/v1/incidents".to_string(),
            "/api/v1/incidents?state=open".into(),
            "/api/v1/incidents?state=resolved&limit=100".into(),
            "/api/v1/incidents?site=phuong-7".into(),
            "/api/v1/incidents?team=to-2&severity=critical".into(),
            format!("/api/v1/incidents?cursor={mid}"),
            format!("/api/v1/incidents/{mid}"),
        ],
    );
}

fn run(name: &str, store: Store, history: usize) {
    let store = Arc::new(store);
    let w = writes(&store, 2000);
    println!(
        "\n{name}: incident writes (open + resolve, one outbox row each): {w:.0} transactions/s"
    );
    let t = Instant::now();
    let batch: Vec<Incident> = (0..history)
        .map(|i| incident(i, i + 50 < history))
        .collect();
    let mut ids = Vec::new();
    for chunk in batch.chunks(5000) {
        ids.extend(store.insert_history(chunk).unwrap());
    }
    println!(
        "{name}: API with {history} more incidents in history (loaded in {:.1} s)",
        t.elapsed().as_secs_f64()
    );
    api_latency(store, &ids);
}

fn main() {
    let history: usize = std::env::var("BENCH_HISTORY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    run(
        "SQLite",
        Store::open(&dir.path().join("bench.db")).unwrap(),
        history,
    );
    let Some(cluster) = pg::Pg::start() else {
        return;
    };
    cluster.create_db("bench");
    let StoreLocation::Postgres(t) = StoreLocation::parse(&cluster.url("bench")).unwrap() else {
        unreachable!()
    };
    let loc = StoreLocation::Postgres(t.with_password(Some(pg::PASSWORD.into())));
    run("PostgreSQL", Store::open_location(&loc).unwrap(), history);
}
