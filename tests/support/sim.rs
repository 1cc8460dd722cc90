//! A discrete-event copy of the scheduler on a virtual clock, feeding the real `IncidentEngine`
//! (real SQLite store) with outcomes from a fault model. Shared by tests/incidents.rs and
//! benches/incidents.rs (included with `#[path]`).
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lienthong::config::{CheckDef, CheckRole, Config, Inventory};
use lienthong::incidents::correlation::IncidentEngine;
use lienthong::incidents::{Incident, IncidentFilter, Store};
use lienthong::probe::{Details, HttpDetails, IcmpDetails, Outcome, Reason, TcpDetails};
use lienthong::scheduler::stagger;
use rand::{Rng, SeedableRng};

/// Virtual time zero (a fixed date keeps maintenance tests deterministic): 2026-11-25 00:00 UTC.
pub const EPOCH_MS: u64 = 1_795_564_800_000;

pub fn at(secs: f64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(EPOCH_MS) + Duration::from_secs_f64(secs)
}

pub fn shipped() -> Inventory {
    let text = std::fs::read_to_string("probes.toml").unwrap();
    (*Config::from_str(Path::new("probes.toml"), &text)
        .unwrap()
        .inventory)
        .clone()
}

/// What a check returns at virtual time `t`.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Fault {
    None,
    LinkDown,
    /// Only the public-service centre fails (connection refused); the link is fine.
    EndpointDown,
    Loss(f64),
    Http503,
    Slow(f64),
    /// Every HTTP and TCP check of the owner answers after this many seconds.
    SlowAll(f64),
    /// The link's RTT rises by this many seconds (e.g. a fallback path); no loss.
    Latency(f64),
}

pub struct World {
    faults: Vec<(String, f64, f64, Fault)>, // (owner slug, from, to, fault)
    rng: rand::rngs::StdRng,
    jitter_rng: rand::rngs::StdRng,
}

impl World {
    pub fn new(seed: u64) -> Self {
        World {
            faults: Vec::new(),
            rng: rand::rngs::StdRng::seed_from_u64(seed),
            jitter_rng: rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed),
        }
    }
    pub fn fault(mut self, owner: &str, from: f64, to: f64, f: Fault) -> Self {
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
                        // Spikes and mainland jitter come from their own stream, so the
                        // loss draws are the same as without them.
                        let base = if island {
                            // ~35–70 ms, and one packet in 25 caught in a 100–400 ms burst.
                            let spike = if self.jitter_rng.random::<f64>() < 0.04 {
                                0.1 + self.jitter_rng.random::<f64>() * 0.3
                            } else {
                                0.0
                            };
                            0.035 + self.rng.random::<f64>() * 0.035 + spike
                        } else {
                            0.002 + self.jitter_rng.random::<f64>() * 0.002
                        };
                        let extra = match fault {
                            Fault::Latency(s) => s,
                            _ => 0.0,
                        };
                        rtts.push(base + extra);
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
                let round = shape.pacing * (sent - 1)
                    + if received < sent {
                        shape.reply_timeout
                    } else {
                        Duration::from_millis(80)
                    };
                let mut o = if loss_ratio > shape.max_loss {
                    Outcome::fail(
                        Reason::PacketLoss,
                        format!("{:.0}% loss", loss_ratio * 100.0),
                        Details::Icmp(d),
                    )
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
                        Details::Http(HttpDetails {
                            status,
                            ..Default::default()
                        })
                    } else {
                        Details::Tcp(TcpDetails::default())
                    }
                };
                let mut o = match fault {
                    Fault::LinkDown => {
                        Outcome::fail(Reason::ConnectRefused, "connection refused", details(None))
                    }
                    Fault::EndpointDown if c.role == CheckRole::Endpoint => {
                        Outcome::fail(Reason::ConnectRefused, "connection refused", details(None))
                    }
                    Fault::Http503 if http => {
                        Outcome::fail(Reason::HttpStatus, "status 503", details(Some(503)))
                    }
                    _ => Outcome::ok(details(Some(200))),
                };
                o.duration = match fault {
                    Fault::Slow(s) if http => Duration::from_secs_f64(s),
                    Fault::SlowAll(s) => Duration::from_secs_f64(s),
                    _ => Duration::from_millis(5),
                };
                o
            }
        }
    }
}

pub struct Sim {
    pub inv: Arc<Inventory>,
    pub store: Arc<Store>,
    pub engine: IncidentEngine,
    /// Virtual milliseconds between engine ticks (the service ticks every second).
    pub tick_ms: u64,
    pub _dir: Option<tempfile::TempDir>,
}

impl Sim {
    pub fn new(inv: Inventory) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("lienthong.db")).unwrap());
        let inv = Arc::new(inv);
        let engine = IncidentEngine::new(
            inv.clone(),
            store.clone(),
            tokio::sync::broadcast::channel(16).0,
            at(0.0),
        )
        .unwrap();
        Sim {
            inv,
            store,
            engine,
            tick_ms: 1000,
            _dir: Some(dir),
        }
    }

    /// Runs the checks whose owner passes `only` from `from` to `to` seconds of virtual time.
    pub fn run(&mut self, world: &mut World, from: f64, to: f64, only: &dyn Fn(&CheckDef) -> bool) {
        let checks: Vec<&CheckDef> = self
            .inv
            .checks
            .iter()
            .map(|c| &**c)
            .filter(|c| only(c))
            .collect();
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

    pub fn incidents(&self) -> Vec<Incident> {
        let page = self
            .store
            .list(&IncidentFilter::default(), None, 500)
            .unwrap();
        page.items
            .into_iter()
            .map(|i| self.store.get(i.id).unwrap().unwrap())
            .collect()
    }
}

pub fn secs_since_epoch(ms: i64) -> f64 {
    (ms as f64 - EPOCH_MS as f64) / 1000.0
}
