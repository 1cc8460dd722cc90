//! Incident benchmark (a bench binary, not a test).
//!
//! 1. Time from fault start to incident open, at the shipped intervals, for the five fault
//!    kinds of issue 3 — on a virtual clock: a discrete-event copy of the scheduler feeds the real
//!    incident engine and SQLite store, each fault starting at a different phase of the check
//!    intervals (so the numbers include waiting for the next scheduled run).
//! 2. API latency with 100,000 incidents in history: the real router on 127.0.0.1, sequential
//!    requests over a mix of list filters, pages and single incidents.
//!
//! `cargo bench --bench incidents` (`BENCH_RUNS=40` fault starts per kind by default).

#[path = "../tests/support/sim.rs"]
mod sim;

#[path = "support/api_latency.rs"]
mod api_latency;
use api_latency::percentile;

use std::sync::Arc;
use std::time::Instant;

use lienthong::config::CheckDef;
use lienthong::incidents::{EventKind, Incident, IncidentState, Scope, Severity, Store};
use sim::*;

struct Case {
    name: &'static str,
    owner: &'static str,
    fault: Fault,
    duration: f64,
    key: &'static str,
    only: fn(&CheckDef) -> bool,
}

fn detection(runs: u64) {
    let cases = [
        Case {
            name: "ward link down",
            owner: "phuong-ben-thanh",
            fault: Fault::LinkDown,
            duration: 60.0,
            key: "site/phuong-ben-thanh/link",
            only: |c| c.id.site.as_deref() == Some("phuong-ben-thanh"),
        },
        Case {
            name: "ward endpoint down",
            owner: "phuong-ben-thanh",
            fault: Fault::EndpointDown,
            duration: 60.0,
            key: "site/phuong-ben-thanh/endpoint",
            only: |c| c.id.site.as_deref() == Some("phuong-ben-thanh"),
        },
        Case {
            name: "shared service 503",
            owner: "thu-tuc-hanh-chinh",
            fault: Fault::Http503,
            duration: 60.0,
            key: "service/thu-tuc-hanh-chinh",
            only: |c| c.id.service.as_deref() == Some("thu-tuc-hanh-chinh"),
        },
        Case {
            name: "Côn Đảo loss 15 %",
            owner: "dac-khu-con-dao",
            fault: Fault::Loss(0.15),
            duration: 120.0,
            key: "site/dac-khu-con-dao/link-degraded",
            only: |c| c.id.site.as_deref() == Some("dac-khu-con-dao"),
        },
        Case {
            name: "ward endpoint 4 s slow",
            owner: "phuong-sai-gon",
            fault: Fault::Slow(4.0),
            duration: 60.0,
            key: "site/phuong-sai-gon/endpoint-slow",
            only: |c| c.id.site.as_deref() == Some("phuong-sai-gon"),
        },
    ];
    println!(
        "time from fault start to incident open ({runs} fault starts per kind, shipped intervals)"
    );
    println!(
        "{:<26} {:>8} {:>8} {:>8} {:>8} {:>10} {:>7}",
        "fault", "min s", "median", "p90", "max s", "caught", "extra"
    );
    for case in &cases {
        let mut times = Vec::new();
        let mut missed = 0;
        let mut extra = 0;
        for run in 0..runs {
            let mut sim = Sim::new(shipped());
            // Spread fault starts over the phases of the 10 s intervals (and a warm-up first).
            let start = 120.0 + run as f64 * 2.37;
            let mut w =
                World::new(1000 + run).fault(case.owner, start, start + case.duration, case.fault);
            sim.run(&mut w, 0.0, start + case.duration + 60.0, &case.only);
            let all = sim.incidents();
            extra += all.iter().filter(|i| i.key != case.key).count();
            match all.iter().find(|i| i.key == case.key) {
                Some(i) => times.push(secs_since_epoch(i.started_at) - start),
                None => missed += 1,
            }
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{:<26} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>5}/{:<4} {:>7}",
            case.name,
            percentile(&times, 0.0),
            percentile(&times, 0.5),
            percentile(&times, 0.9),
            percentile(&times, 1.0),
            times.len(),
            times.len() + missed,
            extra
        );
    }
}

/// False alarms: the island links' normal ~3 % loss and jitter over simulated days.
fn island_false_alarms(days: u64) {
    let mut sim = Sim::new(shipped());
    sim.tick_ms = 10_000;
    let mut w = World::new(77);
    let islands =
        |c: &CheckDef| c.link_class == "island" && c.role == lienthong::config::CheckRole::Link;
    sim.run(&mut w, 0.0, days as f64 * 86_400.0, &islands);
    let n = sim.incidents().len();
    println!("\nisland links at their normal ~3 % loss: {n} incidents over {days} simulated days × 3 island sites ({:.3} per site-day)", n as f64 / (3 * days) as f64);
}

fn history(n: usize) -> Vec<Incident> {
    let sites: Vec<String> = shipped().sites.iter().map(|s| s.slug.clone()).collect();
    let t0 = EPOCH_MS as i64 - 400 * 86_400_000;
    (0..n)
        .map(|i| {
            let site = sites[i % sites.len()].clone();
            let started = t0 + i as i64 * 300_000;
            let resolved = i + 50 < n;
            Incident {
                id: 0,
                key: format!("site/{site}/link"),
                title: format!("Mất kết nối: {site}"),
                title_en: format!("Link down: {site}"),
                severity: if i % 3 == 0 {
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
                events: vec![lienthong::incidents::IncidentEvent {
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
        })
        .collect()
}

fn api_latency() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("bench.db")).unwrap());
    let t = Instant::now();
    let ids = store.insert_history(&history(100_000)).unwrap();
    println!(
        "\nAPI with 100,000 incidents in history (loaded in {:.1} s)",
        t.elapsed().as_secs_f64()
    );
    let mid = ids[ids.len() / 2];
    api_latency::measure(
        store,
        &[
            "/api/v1/incidents".to_string(),
            "/api/v1/incidents?state=open".into(),
            "/api/v1/incidents?state=resolved&limit=100".into(),
            "/api/v1/incidents?site=dac-khu-con-dao".into(),
            "/api/v1/incidents?team=to-2&severity=critical".into(),
            "/api/v1/incidents?since=2026-11-01T00:00:00Z".into(),
            format!("/api/v1/incidents?cursor={mid}"),
            format!("/api/v1/incidents/{mid}"),
        ],
    );
}

fn main() {
    let runs = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    detection(runs);
    island_false_alarms(
        std::env::var("BENCH_DAYS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(7),
    );
    api_latency();
}
