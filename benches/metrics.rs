//! /metrics at national scale: memory per check and render time of the exposition.
//!
//! Builds a synthetic inventory of `BENCH_CHECKS` checks (default 20,000: 40 % HTTP, 40 % TCP,
//! 20 % ICMP/UDP-echo rounds, five per site) through the real config parser, records runs with
//! realistic details (phases, status, certificate expiry, five-packet echo rounds, 2 % failures
//! by several reasons) into the real [`Metrics`], then renders the exposition 10 times.
//!
//! Prints: record cost per run, render time p50/max and size (plain and gzip, as /metrics
//! sends it to Prometheus), `record` latency while renders run on another thread (the lock
//! the writer and a scrape share), live heap bytes per check (a counting allocator) and the
//! resident-memory growth (VmRSS).
//!
//! Run with `cargo bench --bench metrics` (`BENCH_CHECKS=10000 cargo bench --bench metrics` for
//! another size). No network: the addresses are only parsed.
//!
//! Measured on the 2-core box (load average ≈ 5 from parallel builds), 20,000 checks, 288,471
//! samples, 28.5 MiB of text (1.13 MiB gzip level 1, 20 ms):
//!
//! | | `GaugeVec` per series (before) | slots + direct writer |
//! | --- | --- | --- |
//! | render p50 / max | 883 / 928 ms | 83 / 101 ms |
//! | `record` per run, steady | 3.7 µs | 0.47 µs |
//! | `record` p99.9 while rendering | 91 µs | 1.5 µs |
//! | live heap per check | 7,638 B | 580 B |
//!
//! At 10,000 checks: render p50 28 ms, 581 B/check.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use lienthong::config::{CheckDef, Config, Inventory};
use lienthong::health::State;
use lienthong::metrics::Metrics;
use lienthong::probe::http::HttpDetails;
use lienthong::probe::icmp::IcmpDetails;
use lienthong::probe::tcp::TcpDetails;
use lienthong::probe::{Details, Outcome, Phases, ProbeKind, Reason};

const RENDERS: usize = 10;

/// Counts live heap bytes: RSS alone cannot tell the metrics' share from the freed config
/// parse that the allocator reuses.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    let n: usize = match std::env::var("BENCH_CHECKS") {
        Ok(s) => s.parse().expect("BENCH_CHECKS must be a whole number"),
        Err(_) => 20_000,
    };
    let sites = n.div_ceil(5);
    let inv = inventory(sites);
    let n = inv.checks.len();
    let counts = |k: ProbeKind| inv.checks.iter().filter(|c| c.probe.kind() == k).count();

    println!("lienthong /metrics bench");
    println!("  reproduce:        BENCH_CHECKS={n} cargo bench --bench metrics");
    println!(
        "  checks:           {n} ({} HTTP, {} TCP, {} ICMP) over {sites} sites",
        counts(ProbeKind::Http),
        counts(ProbeKind::Tcp),
        counts(ProbeKind::Icmp)
    );

    let outcomes: Vec<Outcome> = inv
        .checks
        .iter()
        .enumerate()
        .map(|(i, c)| outcome(c, i))
        .collect();
    let finished = SystemTime::now();
    let rss_before = rss_kib();
    let heap_before = LIVE.load(Ordering::Relaxed);
    let metrics = Arc::new(Metrics::new());
    metrics.set_inventory(&inv, None);

    // First run of every check, then a steady-state one (slots exist, failures allocated).
    let t = Instant::now();
    record_all(&metrics, &inv, &outcomes, finished);
    let first = t.elapsed();
    let t = Instant::now();
    record_all(&metrics, &inv, &outcomes, finished);
    let steady = t.elapsed();
    let rss_state = rss_kib();
    let heap_state = LIVE.load(Ordering::Relaxed);

    let mut times = Vec::with_capacity(RENDERS);
    let mut text = String::new();
    for _ in 0..RENDERS {
        let t = Instant::now();
        text = metrics.render();
        times.push(t.elapsed());
    }
    let rss_rendered = rss_kib();
    let heap_rendered = LIVE.load(Ordering::Relaxed) - text.len();
    times.sort();
    let samples = text.lines().filter(|l| !l.starts_with('#')).count();

    let gz = |level: u32| {
        let t = Instant::now();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        e.write_all(text.as_bytes()).expect("gzip");
        let out = e.finish().expect("gzip");
        (out.len(), t.elapsed())
    };
    let (gz1, gz1_t) = gz(1);
    let (gz6, gz6_t) = gz(6);

    // The writer's view of a scrape: the longest record while another thread renders.
    let stop = Arc::new(AtomicBool::new(false));
    let renderer = {
        let (m, stop) = (metrics.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut k = 0;
            while !stop.load(Ordering::Relaxed) {
                std::hint::black_box(m.render());
                k += 1;
            }
            k
        })
    };
    let mut lat = Vec::new();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(3) {
        for (c, o) in inv.checks.iter().zip(&outcomes).take(2000) {
            let r = Instant::now();
            metrics.record(c, o, finished);
            lat.push(r.elapsed());
        }
    }
    lat.sort();
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
    stop.store(true, Ordering::Relaxed);
    let concurrent_renders = renderer.join().expect("render thread");

    let per_run = |d: Duration| d.as_nanos() as f64 / n as f64;
    let kib_per_check = |a: u64, b: u64| (b.saturating_sub(a)) as f64 * 1024.0 / n as f64;
    println!(
        "  record:           {:.0} ns/run first, {:.0} ns/run steady",
        per_run(first),
        per_run(steady)
    );
    println!(
        "  render:           p50 {:.1} ms, max {:.1} ms over {RENDERS} renders",
        ms(times[RENDERS / 2]),
        ms(times[RENDERS - 1])
    );
    println!(
        "  exposition:       {:.2} MiB, {samples} samples; gzip level 1 {:.2} MiB in {:.1} ms, level 6 {:.2} MiB in {:.1} ms",
        text.len() as f64 / 1048576.0,
        gz1 as f64 / 1048576.0,
        ms(gz1_t),
        gz6 as f64 / 1048576.0,
        ms(gz6_t)
    );
    println!(
        "  record vs render: {} records during {concurrent_renders} concurrent renders: p50 {:.2} µs, p99.9 {:.2} µs, max {:.2} ms",
        lat.len(),
        pct(0.5).as_secs_f64() * 1e6,
        pct(0.999).as_secs_f64() * 1e6,
        ms(lat[lat.len() - 1])
    );
    println!(
        "  heap:             {:.0} B/check live after recording; {:.0} B/check after {RENDERS} renders (exposition text excluded)",
        (heap_state - heap_before) as f64 / n as f64,
        (heap_rendered.saturating_sub(heap_before)) as f64 / n as f64,
    );
    println!(
        "  RSS:              {:.1} MiB before, +{:.1} MiB with state ({:.0} B/check), +{:.1} MiB after renders ({:.0} B/check incl. allocator-retained render buffers)",
        rss_before as f64 / 1024.0,
        (rss_state - rss_before) as f64 / 1024.0,
        kib_per_check(rss_before, rss_state),
        (rss_rendered.saturating_sub(rss_before)) as f64 / 1024.0,
        kib_per_check(rss_before, rss_rendered),
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn record_all(m: &Metrics, inv: &Inventory, outcomes: &[Outcome], at: SystemTime) {
    for (c, o) in inv.checks.iter().zip(outcomes) {
        m.record(c, o, at);
        m.set_check_state(c, if o.success { State::Up } else { State::Failing });
    }
}

/// VmRSS of this process, KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `sites` sites of five checks each (2 HTTP, 2 TCP, 1 ICMP), loaded through the real parser.
fn inventory(sites: usize) -> Inventory {
    let mut t = String::from(
        "[link_class.bench]\ninterval = \"10s\"\ntimeout = \"5s\"\npackets = 5\npacing = \"100ms\"\n\
         max_loss = 0.5\ndegraded_loss = 0.1\ndegraded_rtt = \"100ms\"\ndegraded_jitter = \"50ms\"\n\
         degraded_latency = \"2s\"\n\n",
    );
    for (name, role, probe) in [
        ("link", "link", "probe.icmp = { host = \"{addr.link}\" }"),
        (
            "endpoint",
            "endpoint",
            "probe.http = { url = \"{addr.endpoint}\" }",
        ),
        (
            "portal",
            "endpoint",
            "probe.http = { url = \"{addr.portal}\" }",
        ),
        (
            "video",
            "video",
            "probe.tcp = { address = \"{addr.video}\" }",
        ),
        (
            "camera",
            "video",
            "probe.tcp = { address = \"{addr.camera}\" }",
        ),
    ] {
        t += &format!(
            "[[template]]\nname = \"{name}\"\nrole = \"{role}\"\ntitle = \"{name}\"\n{probe}\n\n"
        );
    }
    t += "[inventory]\nsites = [\n";
    for i in 0..sites {
        let ip = format!("127.{}.{}.{}", 10 + i / 65536, (i / 256) % 256, i % 256);
        t += &format!(
            "  {{ code = \"{code}\", slug = \"phuong-so-{i:05}\", name = \"Phường số {i}\", kind = \"phuong\", \
             former_province = \"tphcm\", former_district = \"Quận {d}\", island = false, lat = 10.7, \
             lon = 106.7, link_class = \"bench\", addr = {{ link = \"{ip}\", endpoint = \"http://{ip}:18080/healthz\", \
             portal = \"https://{ip}:18443/\", video = \"{ip}:15060\", camera = \"{ip}:15554\" }} }},\n",
            code = 100000 + i,
            d = i % 24
        );
    }
    t += "]\n";
    let c = Config::from_str(Path::new("bench-metrics.toml"), &t).expect("bench config is valid");
    (*c.inventory).clone()
}

fn ms_d(v: f64) -> Option<Duration> {
    Some(Duration::from_secs_f64(v / 1000.0))
}

/// A plausible run of `c`; every 50th fails (timeout, refused, status, loss by kind).
fn outcome(c: &CheckDef, i: usize) -> Outcome {
    let jitter = (i % 17) as f64 * 0.1;
    let failing = i % 50 == 7;
    let (mut o, secs) = match c.probe.kind() {
        ProbeKind::Http => {
            let tls = c.id.name.as_ref() == "portal";
            let d = HttpDetails {
                phases: Phases {
                    resolve: ms_d(0.0),
                    connect: ms_d(1.5 + jitter),
                    tls: if tls { ms_d(6.0 + jitter) } else { None },
                    processing: ms_d(35.0 + jitter * 10.0),
                    transfer: ms_d(0.8),
                },
                status: Some(if failing { 503 } else { 200 }),
                cert_earliest_expiry: tls.then_some(1_800_000_000 + i as i64),
                cert: None,
                body_bytes: 2048 + i as u64 % 512,
                redirects: 0,
                tls,
            };
            let o = if failing {
                Outcome::fail(Reason::HttpStatus, "status 503", Details::Http(d))
            } else {
                Outcome::ok(Details::Http(d))
            };
            (o, 0.045)
        }
        ProbeKind::Tcp => {
            let d = TcpDetails {
                phases: Phases {
                    connect: ms_d(1.2 + jitter),
                    ..Phases::default()
                },
                cert_earliest_expiry: None,
                cert: None,
                tls: false,
            };
            let o = if failing {
                Outcome::fail(Reason::ConnectRefused, "refused", Details::Tcp(d))
            } else {
                Outcome::ok(Details::Tcp(d))
            };
            (o, 0.002)
        }
        ProbeKind::Icmp => {
            let rtts: Vec<f64> = (0..5)
                .map(|k| 0.004 + (k as f64 + jitter) * 0.0007)
                .take(if failing { 1 } else { 5 })
                .collect();
            let n = rtts.len() as f64;
            let avg = rtts.iter().sum::<f64>() / n;
            let d = IcmpDetails {
                sent: 5,
                received: rtts.len() as u32,
                rtt_min: rtts.first().copied(),
                rtt_avg: Some(avg),
                rtt_max: rtts.last().copied(),
                jitter: Some((rtts.iter().map(|r| (r - avg).powi(2)).sum::<f64>() / n).sqrt()),
                loss_ratio: 1.0 - n / 5.0,
                rtts,
                resolve: Some(0.0),
                setup: Some(0.00002),
                socket: "udp_echo",
            };
            let o = if failing {
                Outcome::fail(Reason::PacketLoss, "80 % loss", Details::Icmp(d))
            } else {
                Outcome::ok(Details::Icmp(d))
            };
            (o, 0.41)
        }
        ProbeKind::Dns => (Outcome::ok(Details::None), 0.002),
        // The shipped config's one transaction: four steps.
        ProbeKind::Transaction => {
            let steps = ["trang-dang-nhap", "dang-nhap", "tra-cuu", "dang-xuat"]
                .iter()
                .map(|n| lienthong::probe::StepDetails {
                    name: n.to_string(),
                    ran: true,
                    success: !failing,
                    duration: Duration::from_secs_f64(0.004 + jitter / 1000.0),
                    ..Default::default()
                })
                .collect();
            let d = Details::Transaction(Box::new(lienthong::probe::TransactionDetails {
                steps,
                ..Default::default()
            }));
            (Outcome::ok(d), 0.016)
        }
    };
    o.duration = Duration::from_secs_f64(secs);
    o
}
