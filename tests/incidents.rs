//! The incident engine on a virtual clock: a discrete-event copy of the scheduler feeds the real
//! `IncidentEngine` (real SQLite store) with outcomes from a fault model, so hours of probing
//! run in seconds and every timing is exact.

use std::collections::{BinaryHeap, HashMap};
use std::cmp::Reverse;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lienthong::config::{CheckDef, CheckRole, Config, Inventory};
use lienthong::incidents::engine::IncidentEngine;
use lienthong::incidents::{EventKind, Incident, IncidentFilter, Scope, Severity, Store};
use lienthong::probe::{Details, HttpDetails, IcmpDetails, Outcome, Reason, TcpDetails};
use lienthong::scheduler::stagger;
use rand::{Rng, SeedableRng};

/// Virtual time zero (a fixed date keeps maintenance tests deterministic): 2026-11-25 00:00 UTC.
const EPOCH_MS: u64 = 1_795_564_800_000;

fn at(secs: f64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(EPOCH_MS) + Duration::from_secs_f64(secs)
}

fn shipped() -> Inventory {
    let text = std::fs::read_to_string("probes.toml").unwrap();
    (*Config::from_str(Path::new("probes.toml"), &text).unwrap().inventory).clone()
}

/// What a check returns at virtual time `t`.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Fault {
    None,
    LinkDown,
    Loss(f64),
    Http503,
    Slow(f64),
}

struct World {
    faults: Vec<(String, f64, f64, Fault)>, // (owner slug, from, to, fault)
    rng: rand::rngs::StdRng,
}

impl World {
    fn new(seed: u64) -> Self {
        World { faults: Vec::new(), rng: rand::rngs::StdRng::seed_from_u64(seed) }
    }
    fn fault(mut self, owner: &str, from: f64, to: f64, f: Fault) -> Self {
        self.faults.push((owner.into(), from, to, f));
        self
    }
    fn active(&self, owner: &str, t: f64) -> Fault {
        self.faults
            .iter()
            .find(|(o, from, to, _)| (o == owner || o == "*") && (*from..*to).contains(&t))
            .map(|f| f.3)
            .unwrap_or(Fault::None)
    }

    fn outcome(&mut self, c: &CheckDef, t: f64) -> Outcome {
        let fault = self.active(c.id.owner(), t);
        let island = c.link_class == "island";
        match c.role {
            CheckRole::Link => {
                let shape = c.round;
                let loss = match fault {
                    Fault::LinkDown => 1.0,
                    Fault::Loss(p) => p,
                    _ if island => 0.03,
                    _ => 0.0,
                };
                let mut rtts = Vec::new();
                for _ in 0..shape.packets {
                    if self.rng.random::<f64>() >= loss {
                        let base = if island { 0.035 + self.rng.random::<f64>() * 0.035 } else { 0.002 };
                        rtts.push(base);
                    }
                }
                let sent = shape.packets;
                let received = rtts.len() as u32;
                let loss_ratio = 1.0 - received as f64 / sent as f64;
                let n = rtts.len().max(1) as f64;
                let avg = rtts.iter().sum::<f64>() / n;
                let sd = (rtts.iter().map(|r| (r - avg).powi(2)).sum::<f64>() / n).sqrt();
                let d = IcmpDetails {
                    sent,
                    received,
                    rtt_min: rtts.iter().cloned().reduce(f64::min),
                    rtt_max: rtts.iter().cloned().reduce(f64::max),
                    rtt_avg: (received > 0).then_some(avg),
                    jitter: (received > 0).then_some(sd),
                    rtts,
                    loss_ratio,
                    resolve: Some(0.0),
                    setup: Some(0.0),
                    socket: "udp_echo",
                };
                let round = shape.pacing * (sent - 1) + if received < sent { shape.reply_timeout } else { Duration::from_millis(80) };
                let mut o = if loss_ratio > shape.max_loss {
                    Outcome::fail(Reason::PacketLoss, format!("{:.0}% loss", loss_ratio * 100.0), Details::Icmp(d))
                } else {
                    Outcome::ok(Details::Icmp(d))
                };
                o.duration = round;
                o
            }
            _ => {
                let http = matches!(c.probe, lienthong::probe::ProbeSpec::Http(_));
                let details = |status| {
                    if http {
                        Details::Http(HttpDetails { status, ..Default::default() })
                    } else {
                        Details::Tcp(TcpDetails::default())
                    }
                };
                let mut o = match fault {
                    Fault::LinkDown => Outcome::fail(Reason::ConnectRefused, "connection refused", details(None)),
                    Fault::Http503 if http => Outcome::fail(Reason::HttpStatus, "status 503", details(Some(503))),
                    _ => Outcome::ok(details(Some(200))),
                };
                o.duration = match fault {
                    Fault::Slow(s) if http => Duration::from_secs_f64(s),
                    _ => Duration::from_millis(5),
                };
                o
            }
        }
    }
}

struct Sim {
    inv: Arc<Inventory>,
    store: Arc<Store>,
    engine: IncidentEngine,
    /// Virtual milliseconds between engine ticks (the service ticks every second).
    tick_ms: u64,
    _dir: Option<tempfile::TempDir>,
}

impl Sim {
    fn new(inv: Inventory) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("lienthong.db")).unwrap());
        let inv = Arc::new(inv);
        let engine = IncidentEngine::new(inv.clone(), store.clone(), tokio::sync::broadcast::channel(16).0, at(0.0)).unwrap();
        Sim { inv, store, engine, tick_ms: 1000, _dir: Some(dir) }
    }

    /// Runs the checks whose owner passes `only` from `from` to `to` seconds of virtual time.
    fn run(&mut self, world: &mut World, from: f64, to: f64, only: &dyn Fn(&CheckDef) -> bool) {
        let checks: Vec<&CheckDef> = self.inv.checks.iter().filter(|c| only(c)).collect();
        // (start time ms, index); usize::MAX = the engine's 1 s tick.
        let mut heap: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
        let mut planned: HashMap<usize, f64> = HashMap::new();
        for (i, c) in checks.iter().enumerate() {
            let t = from + stagger(c).as_secs_f64();
            planned.insert(i, t);
            heap.push(Reverse(((t * 1000.0) as u64, i)));
        }
        heap.push(Reverse(((from * 1000.0) as u64, usize::MAX)));
        while let Some(Reverse((t_ms, i))) = heap.pop() {
            let t = t_ms as f64 / 1000.0;
            if t >= to {
                break;
            }
            if i == usize::MAX {
                self.engine.tick(at(t));
                heap.push(Reverse((t_ms + self.tick_ms, usize::MAX)));
                continue;
            }
            let c = checks[i];
            let o = world.outcome(c, t);
            let done = t + o.duration.as_secs_f64();
            let early = self.engine.observe(c, &o, at(done));
            let next = match early {
                Some(d) => done + d.as_secs_f64(),
                None => {
                    let mut n = planned[&i] + c.interval.as_secs_f64();
                    while n <= done {
                        n += c.interval.as_secs_f64();
                    }
                    n
                }
            };
            planned.insert(i, next);
            heap.push(Reverse(((next * 1000.0) as u64, i)));
        }
    }

    fn incidents(&self) -> Vec<Incident> {
        let page = self.store.list(&IncidentFilter::default(), None, 500).unwrap();
        page.items.into_iter().map(|i| self.store.get(i.id).unwrap().unwrap()).collect()
    }
}

fn secs_since_epoch(ms: i64) -> f64 {
    (ms as f64 - EPOCH_MS as f64) / 1000.0
}

fn everything(_: &CheckDef) -> bool {
    true
}

#[test]
fn ward_link_outage_gives_one_incident_with_children_attached() {
    let mut sim = Sim::new(shipped());
    let mut w = World::new(1).fault("phuong-ben-thanh", 100.0, 220.0, Fault::LinkDown);
    sim.run(&mut w, 0.0, 320.0, &everything);
    let all = sim.incidents();
    assert_eq!(all.len(), 1, "{:#?}", all.iter().map(|i| &i.key).collect::<Vec<_>>());
    let inc = &all[0];
    assert_eq!(inc.key, "site/phuong-ben-thanh/link");
    assert_eq!(inc.title, "Mất kết nối: Phường Bến Thành");
    assert_eq!((inc.severity, inc.scope), (Severity::Critical, Scope::Site));
    assert_eq!(inc.sites, ["phuong-ben-thanh"]);
    let opened = secs_since_epoch(inc.started_at) - 100.0;
    let resolved = secs_since_epoch(inc.resolved_at.expect("resolved")) - 220.0;
    eprintln!("ward link outage: opened after {opened:.1} s, resolved {resolved:.1} s after recovery");
    assert!(opened > 0.0 && opened <= 20.0, "opened after {opened} s");
    assert!(resolved > 0.0 && resolved <= 30.0, "resolved after {resolved} s");
    let attached: Vec<&str> = inc.events.iter().filter(|e| e.kind == EventKind::Attached).filter_map(|e| e.check.as_deref()).collect();
    assert!(attached.contains(&"site/phuong-ben-thanh/endpoint"), "{attached:?}");
    assert!(attached.contains(&"site/phuong-ben-thanh/video"), "{attached:?}");
    assert!(inc.events.iter().any(|e| e.kind == EventKind::Opened && e.evidence.as_ref().is_some_and(|v| v["reason"] == "packet_loss")));
    assert_eq!(inc.events.last().unwrap().kind, EventKind::Resolved);
}

#[test]
fn shared_service_outage_gives_one_city_wide_incident() {
    let mut sim = Sim::new(shipped());
    let mut w = World::new(2).fault("thu-tuc-hanh-chinh", 100.0, 160.0, Fault::Http503);
    sim.run(&mut w, 0.0, 260.0, &everything);
    let all = sim.incidents();
    assert_eq!(all.len(), 1, "{:#?}", all.iter().map(|i| &i.key).collect::<Vec<_>>());
    let inc = &all[0];
    assert_eq!((inc.key.as_str(), inc.scope, inc.severity), ("service/thu-tuc-hanh-chinh", Scope::Service, Severity::Critical));
    assert_eq!(inc.sites.len(), 168, "lists every affected site");
    let opened = secs_since_epoch(inc.started_at) - 100.0;
    eprintln!("shared-service outage: opened after {opened:.1} s");
    assert!(opened <= 20.0, "opened after {opened} s");
    assert!(inc.resolved_at.is_some());
}

#[test]
fn island_links_normal_loss_raise_nothing_over_a_simulated_day() {
    let mut sim = Sim::new(shipped());
    sim.tick_ms = 10_000;
    let mut w = World::new(3);
    let islands = |c: &CheckDef| c.link_class == "island" && c.role == CheckRole::Link;
    sim.run(&mut w, 0.0, 86_400.0, &islands);
    let all = sim.incidents();
    assert!(all.is_empty(), "false alarms: {:#?}", all.iter().map(|i| (&i.key, secs_since_epoch(i.started_at))).collect::<Vec<_>>());
}

#[test]
fn island_loss_rise_to_15_percent_is_caught() {
    let mut caught = Vec::new();
    for seed in 0..10 {
        let mut sim = Sim::new(shipped());
        let start = 600.0 + seed as f64 * 7.3;
        let mut w = World::new(100 + seed).fault("dac-khu-con-dao", start, start + 120.0, Fault::Loss(0.15));
        let con_dao = |c: &CheckDef| c.id.site.as_deref() == Some("dac-khu-con-dao") && c.role == CheckRole::Link;
        sim.run(&mut w, 0.0, start + 400.0, &con_dao);
        let all = sim.incidents();
        assert_eq!(all.len(), 1, "seed {seed}: {:#?}", all.iter().map(|i| &i.key).collect::<Vec<_>>());
        assert_eq!((all[0].key.as_str(), all[0].severity), ("site/dac-khu-con-dao/link-degraded", Severity::Warning));
        caught.push(secs_since_epoch(all[0].started_at) - start);
    }
    caught.sort_by(f64::total_cmp);
    eprintln!("island loss rise: detection times {caught:.1?}");
    assert!(caught.iter().all(|d| *d > 0.0 && *d < 120.0));
}

#[test]
fn endpoint_slowdown_is_a_warning() {
    let mut sim = Sim::new(shipped());
    let mut w = World::new(4).fault("phuong-sai-gon", 100.0, 160.0, Fault::Slow(4.0));
    let sai_gon = |c: &CheckDef| c.id.site.as_deref() == Some("phuong-sai-gon");
    sim.run(&mut w, 0.0, 260.0, &sai_gon);
    let all = sim.incidents();
    assert_eq!(all.len(), 1, "{:#?}", all.iter().map(|i| &i.key).collect::<Vec<_>>());
    assert_eq!((all[0].key.as_str(), all[0].severity), ("site/phuong-sai-gon/endpoint-slow", Severity::Warning));
    eprintln!("slowdown: opened after {:.1} s", secs_since_epoch(all[0].started_at) - 100.0);
    assert!(all[0].resolved_at.is_some());
}

#[test]
fn every_site_failing_at_once_gives_one_prober_incident() {
    let mut sim = Sim::new(shipped());
    let sites = |c: &CheckDef| c.id.site.is_some();
    let mut w = World::new(5).fault("*", 100.0, 400.0, Fault::LinkDown);
    sim.run(&mut w, 0.0, 500.0, &sites);
    let all = sim.incidents();
    assert_eq!(all.len(), 1, "{:#?}", all.iter().map(|i| &i.key).collect::<Vec<_>>());
    let inc = &all[0];
    assert_eq!((inc.key.as_str(), inc.scope), ("prober", Scope::Prober));
    assert_eq!(inc.sites.len(), 168);
    assert!(inc.resolved_at.is_some(), "resolved once the links are back");
}

#[test]
fn maintenance_window_opens_nothing() {
    let mut inv = shipped();
    let spec: lienthong::config::MaintenanceSpec = toml::from_str(
        r#"site = "phuong-ben-thanh"
reason = "Thay thiết bị mạng"
start = "2026-11-25 07:00"
end = "2026-11-25 09:00""#,
    )
    .unwrap();
    inv.maintenance.push(lienthong::maintenance::Window::compile(&spec).unwrap());
    let mut sim = Sim::new(inv);
    let mut w = World::new(6).fault("phuong-ben-thanh", 100.0, 220.0, Fault::LinkDown);
    sim.run(&mut w, 0.0, 300.0, &everything);
    assert!(sim.incidents().is_empty());
    let st = sim.engine.site_status_of("phuong-ben-thanh", at(150.0));
    assert_eq!(st.as_str(), "maintenance");
}

#[test]
fn restart_resumes_open_incidents_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lienthong.db");
    let inv = Arc::new(shipped());
    let mk = |t: f64| {
        let store = Arc::new(Store::open(&db).unwrap());
        let engine = IncidentEngine::new(inv.clone(), store.clone(), tokio::sync::broadcast::channel(16).0, at(t)).unwrap();
        Sim { inv: inv.clone(), store, engine, tick_ms: 1000, _dir: None }
    };
    let only = |c: &CheckDef| c.id.site.as_deref() == Some("phuong-ben-thanh");
    let mut w = World::new(7).fault("phuong-ben-thanh", 100.0, 400.0, Fault::LinkDown);
    let mut first = mk(0.0);
    first.run(&mut w, 0.0, 200.0, &only);
    assert_eq!(first.incidents().len(), 1);
    drop(first);
    // Restart mid-outage: the same incident continues.
    let mut second = mk(200.0);
    second.run(&mut w, 200.0, 300.0, &only);
    drop(second);
    // Restart again; the link comes back at 400 s: resolved exactly once.
    let mut third = mk(300.0);
    third.run(&mut w, 300.0, 500.0, &only);
    let all = third.incidents();
    assert_eq!(all.len(), 1, "{:#?}", all.iter().map(|i| &i.key).collect::<Vec<_>>());
    let inc = &all[0];
    assert_eq!(inc.events.iter().filter(|e| e.kind == EventKind::Resumed).count(), 2);
    assert_eq!(inc.events.iter().filter(|e| e.kind == EventKind::Resolved).count(), 1);
    assert_eq!(inc.events.iter().filter(|e| e.kind == EventKind::Opened).count(), 1);
    assert!(secs_since_epoch(inc.resolved_at.unwrap()) > 400.0);
}
