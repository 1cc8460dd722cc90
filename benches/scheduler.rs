//! Scheduler load bench: 10,000 checks (half HTTP GET, half TCP connect) against loopback
//! servers, every result recorded into the real [`Metrics`] as in production.
//!
//! Run with `cargo bench --bench scheduler` (default 120 s; e.g. `BENCH_SECS=30 cargo bench
//! --bench scheduler` for a shorter run). Diagnostic knobs: `BENCH_NO_METRICS=1` skips
//! `Metrics::record` (to see its share), `BENCH_SCRAPE_SECS=15` renders the metrics page that
//! often, as a Prometheus scrape would.
//!
//! The loopback servers run in a child process (this same binary, re-executed with
//! `LIENTHONG_BENCH_SERVER=1`), so the CPU and memory figures of the parent are the prober's
//! alone; the child's CPU is printed separately. Servers listen on 127.0.0.1..127.0.0.8 only, to
//! spread connections (and TIME_WAIT entries) over several 4-tuples.
//!
//! Scheduling lag (planned vs real start of a run) is reported two ways:
//! - from the scheduler's own `lienthong_scheduler_lag_seconds` histogram: its mean is exact
//!   (sum / count), its percentiles are bucket-interpolated, so coarse;
//! - per run, reconstructed in the sink: a run started at `now - outcome.duration`, and the
//!   scheduler planned it at `start + stagger(check) + k × interval` (the sink never asks for an
//!   early re-run). The scheduler's `start` instant is private; it is calibrated so that the mean
//!   reconstructed lag equals the histogram's exact mean. The bucket shares of both are printed
//!   side by side as a cross-check.
//!
//! The first interval is the warm-up (every check's first run is staggered over it); figures are
//! given for the steady state after it and for the whole run.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use lienthong::config::{CheckDef, CheckId, Config};
use lienthong::metrics::Metrics;
use lienthong::probe::{Outcome, Reason};
use lienthong::scheduler::{stagger, Scheduler};
use prometheus::core::Metric as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const SITES: usize = 500;
/// Per site: this many HTTP checks and as many TCP checks.
const HTTP_PER_SITE: usize = 10;
const TCP_PER_SITE: usize = 10;
const CHECKS_PER_SITE: usize = HTTP_PER_SITE + TCP_PER_SITE;
const INTERVAL: Duration = Duration::from_secs(10);
const TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONCURRENCY: usize = 512;
const PER_SITE_CONCURRENCY: usize = 20;
const WORKER_THREADS: usize = 2;
/// Servers bind 127.0.0.1 ..= 127.0.0.LOOPBACK_ADDRS.
const LOOPBACK_ADDRS: u8 = 8;
const SERVER_ENV: &str = "LIENTHONG_BENCH_SERVER";

fn main() {
    if std::env::var_os(SERVER_ENV).is_some() {
        server_main();
        return;
    }
    let secs: u64 = match std::env::var("BENCH_SECS") {
        Ok(s) => s
            .parse()
            .expect("BENCH_SECS must be a whole number of seconds"),
        Err(_) => 120,
    };
    bench(Duration::from_secs(secs.max(1)));
}

// ---------------------------------------------------------------------------------------------
// Loopback servers (child process)
// ---------------------------------------------------------------------------------------------

/// Binds an HTTP and a TCP server on each loopback address, prints `http ADDR` / `tcp ADDR`
/// lines then `ready`, and serves until its stdin closes (the parent exited or dropped it).
fn server_main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("server runtime");
    rt.block_on(async {
        let mut out = std::io::stdout().lock();
        for i in 1..=LOOPBACK_ADDRS {
            let ip = format!("127.0.0.{i}");
            let http = TcpListener::bind((ip.as_str(), 0))
                .await
                .expect("bind http server");
            let tcp = TcpListener::bind((ip.as_str(), 0))
                .await
                .expect("bind tcp server");
            writeln!(out, "http {}", http.local_addr().expect("local addr")).expect("stdout");
            writeln!(out, "tcp {}", tcp.local_addr().expect("local addr")).expect("stdout");
            tokio::spawn(http_server(http));
            tokio::spawn(tcp_server(tcp));
        }
        writeln!(out, "ready").expect("stdout");
        out.flush().expect("stdout");
        drop(out);
        // Exit when the parent goes away.
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        })
        .await
        .expect("stdin watcher");
    });
}

/// HTTP/1.1: reads the request head, answers `200 ok` with `Connection: close`, closes.
async fn http_server(listener: TcpListener) {
    const RESPONSE: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            let mut len = 0;
            loop {
                match sock.read(&mut buf[len..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => len += n,
                }
                if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
                if len == buf.len() {
                    return;
                }
            }
            let _ = sock.write_all(RESPONSE).await;
            let _ = sock.shutdown().await;
        });
    }
}

/// Accepts and closes at once.
async fn tcp_server(listener: TcpListener) {
    loop {
        if let Ok((sock, _)) = listener.accept().await {
            drop(sock);
        }
    }
}

/// Starts the server child and reads its addresses.
fn spawn_servers() -> (Child, Vec<SocketAddr>, Vec<SocketAddr>) {
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .env(SERVER_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn loopback server process");
    let stdout = child.stdout.take().expect("child stdout");
    let (mut http, mut tcp) = (Vec::new(), Vec::new());
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read child stdout");
        match line.split_once(' ') {
            Some(("http", a)) => http.push(a.parse().expect("http addr")),
            Some(("tcp", a)) => tcp.push(a.parse().expect("tcp addr")),
            _ if line == "ready" => break,
            _ => panic!("unexpected line from server process: {line}"),
        }
    }
    assert!(
        !http.is_empty() && !tcp.is_empty(),
        "server process did not start"
    );
    (child, http, tcp)
}

// ---------------------------------------------------------------------------------------------
// Inventory
// ---------------------------------------------------------------------------------------------

/// A `probes.toml` with SITES sites and CHECKS_PER_SITE templates, loaded through the real
/// parser/validator/expander.
fn config_text(http: &[SocketAddr], tcp: &[SocketAddr]) -> String {
    let mut t = String::new();
    t += &format!(
        "[scheduler]\nmax_concurrency = {MAX_CONCURRENCY}\nper_site_concurrency = {PER_SITE_CONCURRENCY}\n\n"
    );
    t += &format!(
        "[link_class.bench]\ninterval = \"{}s\"\ntimeout = \"{}s\"\npackets = 1\npacing = \"100ms\"\n\
         max_loss = 0.5\ndegraded_loss = 0.1\ndegraded_rtt = \"100ms\"\ndegraded_jitter = \"50ms\"\n\
         degraded_latency = \"2s\"\n\n",
        INTERVAL.as_secs(),
        TIMEOUT.as_secs()
    );
    for j in 0..HTTP_PER_SITE {
        t += &format!(
            "[[template]]\nname = \"h{j}\"\nrole = \"endpoint\"\ntitle = \"HTTP {j}\"\n\
             probe.http = {{ url = \"{{addr.http}}\", expect_status = [200], body_max_bytes = 65536 }}\n\n"
        );
    }
    for j in 0..TCP_PER_SITE {
        t += &format!(
            "[[template]]\nname = \"t{j}\"\nrole = \"video\"\ntitle = \"TCP {j}\"\n\
             probe.tcp = {{ address = \"{{addr.tcp}}\" }}\n\n"
        );
    }
    t += "[inventory]\nsites = [\n";
    for i in 0..SITES {
        let h = http[i % http.len()];
        let c = tcp[i % tcp.len()];
        t += &format!(
            "  {{ code = \"{code}\", slug = \"s{i:04}\", name = \"Site {i}\", kind = \"phuong\", \
             former_province = \"bench\", former_district = \"bench\", island = false, lat = 10.7, \
             lon = 106.7, link_class = \"bench\", addr = {{ http = \"http://{h}/healthz\", tcp = \"{c}\" }} }},\n",
            code = 90000 + i
        );
    }
    t += "]\n";
    t
}

/// The dense index of a bench check: site number × CHECKS_PER_SITE + template number.
fn check_index(id: &CheckId) -> Option<usize> {
    let site: usize = id.site.as_deref()?.strip_prefix('s')?.parse().ok()?;
    let (offset, n) = match id.name.split_at_checked(1)? {
        ("h", n) => (0, n),
        ("t", n) => (HTTP_PER_SITE, n),
        _ => return None,
    };
    Some(site * CHECKS_PER_SITE + offset + n.parse::<usize>().ok()?)
}

// ---------------------------------------------------------------------------------------------
// Sink
// ---------------------------------------------------------------------------------------------

struct Sample {
    index: u32,
    /// When the run started, in ns since the bench epoch.
    started_ns: u64,
}

struct BenchSink {
    metrics: Arc<Metrics>,
    /// False only for the BENCH_NO_METRICS diagnostic (to see the share of metrics recording).
    record_metrics: bool,
    epoch: Instant,
    ok: AtomicU64,
    failed: AtomicU64,
    /// Reason → (count, first message).
    failures: Mutex<BTreeMap<&'static str, (u64, String)>>,
    samples: Mutex<Vec<Sample>>,
}

impl BenchSink {
    fn record(&self, check: &CheckDef, outcome: Outcome, finished: SystemTime) -> Option<Duration> {
        let now = Instant::now();
        if self.record_metrics {
            self.metrics.record(check, &outcome, finished);
        }
        if outcome.success {
            self.ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
            let reason = outcome.reason().map(Reason::as_str).unwrap_or("unknown");
            let message = outcome.failure.map(|f| f.message).unwrap_or_default();
            let mut f = self.failures.lock().expect("failures lock");
            f.entry(reason).or_insert((0, message)).0 += 1;
        }
        if let Some(index) = check_index(&check.id) {
            let started = now.checked_sub(outcome.duration).unwrap_or(self.epoch);
            let started_ns = started.saturating_duration_since(self.epoch).as_nanos() as u64;
            self.samples.lock().expect("samples lock").push(Sample {
                index: index as u32,
                started_ns,
            });
        }
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Process figures
// ---------------------------------------------------------------------------------------------

/// (utime, stime) of a process, in seconds (clock ticks of 1/100 s).
fn cpu_seconds(pid: &str) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field n is at index n - 3.
    let secs = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0) as f64
            / 100.0
    };
    (secs(14), secs(15))
}

/// A `Vm…:` line of /proc/PID/status, in MiB.
fn status_mib(pid: &str, key: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// The scheduler's lag histogram at one instant.
#[derive(Clone)]
struct LagHist {
    /// Cumulative (upper bound in s, count) pairs.
    buckets: Vec<(f64, u64)>,
    count: u64,
    /// Exact sum of every observed lag, in seconds.
    sum: f64,
}

fn lag_hist(m: &Metrics) -> LagHist {
    let proto = m.lag.metric();
    let h = proto.get_histogram();
    LagHist {
        buckets: h
            .get_bucket()
            .iter()
            .map(|b| (b.upper_bound(), b.cumulative_count()))
            .collect(),
        count: h.get_sample_count(),
        sum: h.get_sample_sum(),
    }
}

impl LagHist {
    fn since(&self, before: &LagHist) -> LagHist {
        LagHist {
            buckets: self
                .buckets
                .iter()
                .zip(&before.buckets)
                .map(|(a, b)| (a.0, a.1 - b.1))
                .collect(),
            count: self.count - before.count,
            sum: self.sum - before.sum,
        }
    }

    fn mean(&self) -> f64 {
        self.sum / self.count.max(1) as f64
    }

    /// Percentile interpolated within buckets, as Prometheus' `histogram_quantile` does.
    fn quantile(&self, q: f64) -> f64 {
        if self.count == 0 {
            return f64::NAN;
        }
        let rank = q * self.count as f64;
        let (mut lower, mut below) = (0.0, 0u64);
        for &(upper, cum) in &self.buckets {
            if cum as f64 >= rank {
                let in_bucket = (cum - below) as f64;
                let frac = if in_bucket > 0.0 {
                    (rank - below as f64) / in_bucket
                } else {
                    1.0
                };
                return lower + (upper - lower) * frac;
            }
            lower = upper;
            below = cum;
        }
        f64::INFINITY // above the last finite bucket
    }

    /// `≤0.5ms:12 ≤1ms:…` over the non-empty buckets.
    fn describe(&self) -> String {
        let mut below = 0;
        let mut parts = Vec::new();
        for &(upper, cum) in &self.buckets {
            if cum > below {
                parts.push(format!("≤{}ms:{}", upper * 1e3, cum - below));
            }
            below = cum;
        }
        if self.count > below {
            let last = self.buckets.last().map(|b| b.0 * 1e3).unwrap_or(0.0);
            parts.push(format!(">{last}ms:{}", self.count - below));
        }
        parts.join(" ")
    }
}

struct Snapshot {
    at: Instant,
    /// (user, sys) seconds of this process.
    cpu: (f64, f64),
    server_cpu: (f64, f64),
    done: u64,
    failed: u64,
    lag: LagHist,
}

fn snapshot(sink: &BenchSink, metrics: &Metrics, child_pid: &str) -> Snapshot {
    Snapshot {
        at: Instant::now(),
        cpu: cpu_seconds("self"),
        server_cpu: cpu_seconds(child_pid),
        done: sink.ok.load(Ordering::Relaxed) + sink.failed.load(Ordering::Relaxed),
        failed: sink.failed.load(Ordering::Relaxed),
        lag: lag_hist(metrics),
    }
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64
}

// ---------------------------------------------------------------------------------------------
// The bench
// ---------------------------------------------------------------------------------------------

fn bench(duration: Duration) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // As in production: a subscriber at `info`, so the scheduler's `debug!` is filtered out.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let (mut child, http_addrs, tcp_addrs) = spawn_servers();
    let child_pid = child.id().to_string();

    let built = Instant::now();
    let text = config_text(&http_addrs, &tcp_addrs);
    let config =
        Config::from_str(Path::new("bench-probes.toml"), &text).expect("bench config is valid");
    let inv = config.inventory.clone();
    let load_time = built.elapsed();
    assert_eq!(inv.checks.len(), SITES * CHECKS_PER_SITE);
    let mut staggers = vec![Duration::ZERO; inv.checks.len()];
    for c in &inv.checks {
        staggers[check_index(&c.id).expect("bench check id")] = stagger(c);
    }

    let metrics = Arc::new(Metrics::new());
    metrics.set_inventory(&inv, None);
    let warmup = INTERVAL.min(duration);
    let expected_runs =
        (inv.checks.len() as f64 * duration.as_secs_f64() / INTERVAL.as_secs_f64()) as usize;

    println!("lienthong scheduler bench");
    println!(
        "  reproduce:            BENCH_SECS={} cargo bench --bench scheduler   (BENCH_SECS defaults to 120)",
        duration.as_secs()
    );
    println!(
        "  checks:               {} ({} HTTP GET + {} TCP connect) over {SITES} sites",
        inv.checks.len(),
        SITES * HTTP_PER_SITE,
        SITES * TCP_PER_SITE
    );
    println!(
        "  interval / timeout:   {:?} / {:?}  (nominal {:.0} probes/s)",
        INTERVAL,
        TIMEOUT,
        inv.checks.len() as f64 / INTERVAL.as_secs_f64()
    );
    println!(
        "  max_concurrency:      {MAX_CONCURRENCY}, per_site_concurrency: {PER_SITE_CONCURRENCY}"
    );
    println!(
        "  runtime:              tokio multi-thread, {WORKER_THREADS} workers; host has {} CPUs",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!("  servers (child pid {child_pid}): HTTP {http_addrs:?}");
    println!("                        TCP  {tcp_addrs:?}");
    println!(
        "  duration:             {:?} (warm-up = first {:?})",
        duration, warmup
    );
    println!(
        "  config load+expand:   {:.0} ms; RSS after load {:.1} MiB",
        load_time.as_secs_f64() * 1e3,
        status_mib("self", "VmRSS:")
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .enable_all()
        .build()
        .expect("runtime");
    let epoch = Instant::now();
    let sink = Arc::new(BenchSink {
        metrics: metrics.clone(),
        record_metrics: std::env::var_os("BENCH_NO_METRICS").is_none(),
        epoch,
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        failures: Mutex::new(BTreeMap::new()),
        samples: Mutex::new(Vec::with_capacity(expected_runs + expected_runs / 10)),
    });

    let (s0, s1, s2) = rt.block_on(async {
        let cancel = CancellationToken::new();
        let s0 = snapshot(&sink, &metrics, &child_pid);
        let before = Instant::now();
        // A plain consumer of the result queue: this bench measures the scheduler and probes
        // without the engine (see benches/serve.rs for the real service path).
        let (queue, mut rx) = tokio::sync::mpsc::channel::<lienthong::result_writer::FinishedRun>(16_384);
        let consumer_sink = sink.clone();
        std::thread::spawn(move || {
            while let Some(r) = rx.blocking_recv() {
                consumer_sink.record(&r.check, r.outcome, r.finished);
            }
        });
        let scheduler = Scheduler::start(&inv, queue, metrics.clone(), &cancel).expect("probes build");
        let after = Instant::now();
        println!(
            "  Scheduler::start:     {:.0} ms (builds every probe, spawns every task); RSS after {:.1} MiB",
            (after - before).as_secs_f64() * 1e3,
            status_mib("self", "VmRSS:")
        );
        // Optional Prometheus-like scrapes (BENCH_SCRAPE_SECS, off by default).
        let scrape_every: u64 = std::env::var("BENCH_SCRAPE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let scraper = (scrape_every > 0).then(|| {
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(scrape_every));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let t = Instant::now();
                    let len = metrics.render().len();
                    eprintln!(
                        "  … scrape: {:.1} ms, {} KiB, RSS {:.1} MiB",
                        t.elapsed().as_secs_f64() * 1e3,
                        len / 1024,
                        status_mib("self", "VmRSS:")
                    );
                }
            })
        });
        // Warm-up counts from the scheduler's start.
        tokio::time::sleep_until((after + warmup).into()).await;
        let s1 = snapshot(&sink, &metrics, &child_pid);
        let mut next_report = after + warmup;
        let end = after + duration;
        loop {
            next_report += Duration::from_secs(30);
            if next_report >= end {
                break;
            }
            tokio::time::sleep_until(next_report.into()).await;
            let done = sink.ok.load(Ordering::Relaxed) + sink.failed.load(Ordering::Relaxed);
            eprintln!(
                "  … {:>4.0} s: {done} probes, {} failed, RSS {:.1} MiB",
                (next_report - after).as_secs_f64(),
                sink.failed.load(Ordering::Relaxed),
                status_mib("self", "VmRSS:")
            );
        }
        tokio::time::sleep_until(end.into()).await;
        let s2 = snapshot(&sink, &metrics, &child_pid);
        if let Some(scraper) = scraper {
            scraper.abort();
        }
        let stopping = Instant::now();
        scheduler.stop().await;
        println!("  Scheduler::stop:      {:.0} ms", stopping.elapsed().as_secs_f64() * 1e3);
        (s0, s1, s2)
    });
    let lag_final = lag_hist(&metrics);
    let peak_rss = status_mib("self", "VmHWM:");
    let rss = status_mib("self", "VmRSS:");
    let server_rss = status_mib(&child_pid, "VmHWM:");
    // One metrics page, rendered after the run (so it does not count in the peak RSS above).
    let render_started = Instant::now();
    let page = metrics.render();
    let render_time = render_started.elapsed();
    let series = page.lines().filter(|l| !l.starts_with('#')).count();
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();

    // Precise lag, reconstructed from the samples: started - stagger - k × interval is the
    // scheduler's (private) start instant plus the run's lag.
    let mut samples = std::mem::take(&mut *sink.samples.lock().expect("samples lock"));
    samples.sort_by_key(|s| (s.index, s.started_ns));
    let interval_ns = INTERVAL.as_nanos() as i64;
    let mut raw: Vec<(u64, i64)> = Vec::with_capacity(samples.len()); // (run number k, start + lag)
    let mut k = 0u64;
    for (i, s) in samples.iter().enumerate() {
        k = if i > 0 && samples[i - 1].index == s.index {
            k + 1
        } else {
            0
        };
        let planned = staggers[s.index as usize].as_nanos() as i64 + k as i64 * interval_ns;
        raw.push((k, s.started_ns as i64 - planned));
    }
    // The start instant is calibrated so that the mean lag equals the histogram's exact mean
    // (sum / count). Lag has a near-constant part (tokio's 1 ms timer tick: staggers are whole
    // milliseconds, so every deadline sits at the same phase of the tick) that a
    // "smallest lag = 0" estimate would miss.
    let mean_raw = raw.iter().map(|r| r.1 as f64).sum::<f64>() / raw.len().max(1) as f64;
    let start_est = (mean_raw - lag_final.mean() * 1e9).round() as i64;
    let min_raw = raw.iter().map(|r| r.1).min().unwrap_or(0);
    let lag_of = |r: &(u64, i64)| (r.1 - start_est).max(0) as u64;
    let mut lag_all: Vec<u64> = raw.iter().map(lag_of).collect();
    let mut lag_steady: Vec<u64> = raw.iter().filter(|r| r.0 >= 1).map(lag_of).collect();
    lag_all.sort_unstable();
    lag_steady.sort_unstable();

    let report = |label: &str, a: &Snapshot, b: &Snapshot, lag: &[u64]| {
        let wall = (b.at - a.at).as_secs_f64();
        let done = b.done - a.done;
        let (user, sys) = (b.cpu.0 - a.cpu.0, b.cpu.1 - a.cpu.1);
        let cpu = user + sys;
        let server_cpu = (b.server_cpu.0 + b.server_cpu.1) - (a.server_cpu.0 + a.server_cpu.1);
        let hist = b.lag.since(&a.lag);
        println!("{label} ({wall:.1} s wall)");
        println!("  probes completed:     {done}");
        println!("  probes/s:             {:.1}", done as f64 / wall);
        println!("  failures:             {}", b.failed - a.failed);
        println!(
            "  CPU (user+sys):       {cpu:.2} s = {:.1} % of one core (user {user:.2} s, sys {sys:.2} s)",
            100.0 * cpu / wall
        );
        println!(
            "  CPU per 1,000 probes: {:.1} ms",
            if done > 0 {
                1e6 * cpu / done as f64
            } else {
                f64::NAN
            }
        );
        println!(
            "  server process CPU:   {server_cpu:.2} s = {:.1} % of one core (not included above)",
            100.0 * server_cpu / wall
        );
        println!(
            "  lag (n={}):          p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
            lag.len(),
            percentile(lag, 0.50) / 1e6,
            percentile(lag, 0.99) / 1e6,
            percentile(lag, 0.999) / 1e6,
            lag.last().copied().unwrap_or(0) as f64 / 1e6
        );
        println!(
            "  lag histogram (n={}): mean {:.3} ms (exact), p50 {:.3} ms, p99 {:.3} ms (bucket-interpolated)",
            hist.count,
            hist.mean() * 1e3,
            hist.quantile(0.50) * 1e3,
            hist.quantile(0.99) * 1e3
        );
        println!("  lag buckets:          {}", hist.describe());
        // Cross-check of the reconstruction: the same buckets over the sink-derived lags.
        let share = |le: f64| {
            let n = lag.partition_point(|&x| (x as f64) <= le * 1e9);
            format!("{:.1}%", 100.0 * n as f64 / lag.len().max(1) as f64)
        };
        let hshare = |le: f64| {
            let n = hist
                .buckets
                .iter()
                .find(|b| b.0 >= le)
                .map(|b| b.1)
                .unwrap_or(0);
            format!("{:.1}%", 100.0 * n as f64 / hist.count.max(1) as f64)
        };
        println!(
            "  share ≤0.5/1/2.5/10 ms: reconstructed {} {} {} {}; histogram {} {} {} {}",
            share(0.0005),
            share(0.001),
            share(0.0025),
            share(0.01),
            hshare(0.0005),
            hshare(0.001),
            hshare(0.0025),
            hshare(0.01)
        );
    };
    println!();
    if duration > warmup {
        report(
            "STEADY STATE (after the first interval; lag of runs k ≥ 1)",
            &s1,
            &s2,
            &lag_steady,
        );
        println!();
    }
    report("WHOLE RUN (warm-up included)", &s0, &s2, &lag_all);
    println!();
    println!("  peak RSS (VmHWM):     {peak_rss:.1} MiB (RSS at end {rss:.1} MiB; server process peak {server_rss:.1} MiB)");
    println!(
        "  lag calibration:      {} runs recorded, {} observed by the scheduler; smallest lag {:.3} ms \
         (the constant part a min-based estimate would miss)",
        raw.len(),
        lag_final.count,
        (min_raw - start_est) as f64 / 1e6
    );
    println!(
        "  metrics page:         {series} samples, {} KiB, rendered in {:.0} ms (idle, after the run; \
         RSS after {:.1} MiB)",
        page.len() / 1024,
        render_time.as_secs_f64() * 1e3,
        status_mib("self", "VmRSS:")
    );
    if !sink.record_metrics {
        println!(
            "  NOTE: BENCH_NO_METRICS set: results were NOT recorded into Metrics (diagnostic run)"
        );
    }
    let failures = sink.failures.lock().expect("failures lock");
    if !failures.is_empty() {
        println!("  failures by reason:");
        for (reason, (n, msg)) in failures.iter() {
            println!("    {reason}: {n} (first: {msg})");
        }
    }
}
