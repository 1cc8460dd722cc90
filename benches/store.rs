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

use std::sync::Arc;
use std::time::Instant;

use lienthong::incidents::location::StoreLocation;
use lienthong::incidents::*;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let app = lienthong::web::router(lienthong::web::AppState {
            metrics: Arc::new(lienthong::metrics::Metrics::new()),
            state: Arc::new(lienthong::state::LiveState::default()),
            store: store.clone(),
            events: tokio::sync::broadcast::channel(16).0,
            api_token: None,
            maintenance_changed: Arc::new(tokio::sync::Notify::new()),
            pages: Default::default(),
            actions: Default::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let mid = ids[ids.len() / 2];
        let paths = [
            "/api/v1/incidents".to_string(),
            "/api/v1/incidents?state=open".into(),
            "/api/v1/incidents?state=resolved&limit=100".into(),
            "/api/v1/incidents?site=phuong-7".into(),
            "/api/v1/incidents?team=to-2&severity=critical".into(),
            format!("/api/v1/incidents?cursor={mid}"),
            format!("/api/v1/incidents/{mid}"),
        ];
        let mut all = Vec::new();
        for p in &paths {
            let mut lat = Vec::new();
            for _ in 0..200 {
                let t = Instant::now();
                let r = client.get(format!("{base}{p}")).send().await.unwrap();
                assert!(r.status().is_success(), "{p}: {}", r.status());
                let _ = r.bytes().await.unwrap();
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            lat.sort_by(f64::total_cmp);
            println!(
                "  {:<48} p50 {:>6.2} ms  p99 {:>6.2} ms",
                p,
                percentile(&lat, 0.5),
                percentile(&lat, 0.99)
            );
            all.extend(lat);
        }
        all.sort_by(f64::total_cmp);
        println!(
            "  all {} requests: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            all.len(),
            percentile(&all, 0.5),
            percentile(&all, 0.99),
            percentile(&all, 1.0)
        );
    });
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
