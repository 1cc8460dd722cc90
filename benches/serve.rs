//! End-to-end bench of the real service: `lienthong serve` (scheduler, probes, the result writer,
//! health, the incident engine, availability history, the SQLite store, metrics, HTTP) runs as
//! a child process with a synthetic inventory against loopback targets served by this process,
//! and /metrics is scraped every 15 s as Prometheus would.
//!
//! ```sh
//! cargo bench --bench serve                                   # 10,000 checks at 10 s, 60 s
//! BENCH_CHECKS=20000 BENCH_INTERVAL=15 cargo bench --bench serve
//! BENCH_OUTAGE=1 cargo bench --bench serve                    # + 60 s with every target silent
//! ```
//!
//! Knobs: `BENCH_CHECKS` (default 10000; per site: 1 UDP-echo link round, 2 HTTP, 2 TCP, i.e.
//! 20 % rounds, 40 % HTTP, 40 % TCP), `BENCH_INTERVAL` seconds (10), `BENCH_SECS` of steady
//! state measured after the warm-up interval (60), `BENCH_OUTAGE=1` (then every target stops
//! answering for 60 s — HTTP and TCP accept and stay silent, UDP echo drops — and recovers; the
//! bench reports the schedule during the outage, the incidents opened and the recovery),
//! `BENCH_WRAP` (a profiler command line the service runs under, e.g. `heaptrack -o FILE`;
//! the CPU and RSS figures are then the wrapper's).
//!
//! Figures: achieved vs intended probes/s, failures by reason, CPU of the service process (% of
//! one core, from /proc/PID/stat), scheduler lag p50/p99/max from the service's own
//! `lienthong_scheduler_lag_seconds` histogram (bucket upper bounds, so "≤"), peak RSS
//! (VmHWM), /metrics fetch time and size. Every address is on 127.40.0.0/24.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TARGET_IPS: u8 = 16;
const TIMEOUT_SECS: u64 = 5;
const OUTAGE: Duration = Duration::from_secs(60);
const SCRAPE_EVERY: Duration = Duration::from_secs(15);

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// Target farm (in this process; its CPU is not the service's)
// ---------------------------------------------------------------------------------------------

struct Farm {
    http: Vec<SocketAddr>,
    tcp: Vec<SocketAddr>,
    udp: Vec<SocketAddr>,
    silent: Arc<AtomicBool>,
}

fn start_farm(rt: &tokio::runtime::Runtime) -> Farm {
    let silent = Arc::new(AtomicBool::new(false));
    // UDP echo targets share one port (the template's udp_echo_port is a number, not a
    // placeholder): find one that is free on every target address.
    let echo_port = (0..200)
        .map(|k| 27_000 + k * 7)
        .find(|p| {
            (1..=TARGET_IPS).all(|i| {
                std::net::UdpSocket::bind(("127.40.0.".to_string() + &i.to_string(), *p)).is_ok()
            })
        })
        .expect("a UDP port free on every target address");
    rt.block_on(async {
        let (mut http, mut tcp, mut udp) = (Vec::new(), Vec::new(), Vec::new());
        for i in 1..=TARGET_IPS {
            let ip = format!("127.40.0.{i}");
            let h = tokio::net::TcpListener::bind((ip.as_str(), 0))
                .await
                .expect("bind http");
            let t = tokio::net::TcpListener::bind((ip.as_str(), 0))
                .await
                .expect("bind tcp");
            let u = tokio::net::UdpSocket::bind((ip.as_str(), echo_port))
                .await
                .expect("bind udp");
            http.push(h.local_addr().unwrap());
            tcp.push(t.local_addr().unwrap());
            udp.push(u.local_addr().unwrap());
            tokio::spawn(http_server(h, silent.clone()));
            tokio::spawn(banner_server(t, silent.clone()));
            tokio::spawn(udp_echo(u, silent.clone()));
        }
        Farm {
            http,
            tcp,
            udp,
            silent,
        }
    })
}

/// Reads until the peer closes (a silent target holds the connection until the probe gives up).
async fn hold(mut sock: tokio::net::TcpStream) {
    let mut buf = [0u8; 1024];
    while let Ok(n) = sock.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

async fn http_server(listener: tokio::net::TcpListener, silent: Arc<AtomicBool>) {
    const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let silent = silent.clone();
        tokio::spawn(async move {
            if silent.load(Ordering::Relaxed) {
                return hold(sock).await;
            }
            let mut buf = [0u8; 4096];
            let mut len = 0;
            loop {
                match sock.read(&mut buf[len..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => len += n,
                }
                if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") || len == buf.len() {
                    break;
                }
            }
            let _ = sock.write_all(RESPONSE).await;
            let _ = sock.shutdown().await;
        });
    }
}

/// Writes a banner the TCP check expects, then closes.
async fn banner_server(listener: tokio::net::TcpListener, silent: Arc<AtomicBool>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let silent = silent.clone();
        tokio::spawn(async move {
            if silent.load(Ordering::Relaxed) {
                return hold(sock).await;
            }
            let _ = sock.write_all(b"VC-READY\r\n").await;
            let _ = sock.shutdown().await;
        });
    }
}

async fn udp_echo(sock: tokio::net::UdpSocket, silent: Arc<AtomicBool>) {
    let mut buf = [0u8; 2048];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        if !silent.load(Ordering::Relaxed) {
            let _ = sock.send_to(&buf[..n], from).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Synthetic inventory, loaded by the service through the real parser and validator
// ---------------------------------------------------------------------------------------------

fn config_text(farm: &Farm, sites: usize, interval: u64, db: &Path) -> String {
    let mut t = String::new();
    t += &format!(
        "[incidents]\ndatabase = \"{}\"\nconfirm_interval = \"1s\"\nprober_share = 0.5\n\n",
        db.display()
    );
    // Enough concurrency for every check to be in flight at its timeout at once (an outage):
    // rate × timeout, plus confirm re-runs.
    let rate = (sites * 5) as u64 / interval.max(1);
    t += &format!(
        "[scheduler]\nmax_concurrency = {}\nper_site_concurrency = 8\n\n",
        (rate * TIMEOUT_SECS * 2).max(256)
    );
    t += &format!(
        "[link_class.bench]\ninterval = \"{interval}s\"\ntimeout = \"{TIMEOUT_SECS}s\"\npackets = 3\n\
         pacing = \"100ms\"\nreply_timeout = \"1s\"\nmax_loss = 0.5\ndegraded_loss = 0.2\n\
         degraded_rtt = \"200ms\"\ndegraded_jitter = \"100ms\"\ndegraded_latency = \"2s\"\n\n"
    );
    t += &format!(
        "[[template]]\nname = \"link\"\nrole = \"link\"\ntitle = \"Link\"\n\
         probe.icmp = {{ host = \"{{addr.link}}\", udp_echo_port = {} }}\n\n",
        farm.udp[0].port()
    );
    for j in 0..2 {
        t += &format!(
            "[[template]]\nname = \"h{j}\"\nrole = \"endpoint\"\ntitle = \"HTTP {j}\"\n\
             probe.http = {{ url = \"{{addr.http}}\", expect_status = [200], body_max_bytes = 65536 }}\n\n"
        );
    }
    for j in 0..2 {
        t += &format!(
            "[[template]]\nname = \"t{j}\"\nrole = \"video\"\ntitle = \"TCP {j}\"\n\
             probe.tcp = {{ address = \"{{addr.tcp}}\", expect = \"VC-READY\" }}\n\n"
        );
    }
    t += "[inventory]\nsites = [\n";
    for i in 0..sites {
        let n = farm.http.len();
        let (h, c, u) = (
            farm.http[i % n],
            farm.tcp[(i / 3) % n],
            farm.udp[(i / 7) % n],
        );
        t += &format!(
            "  {{ code = \"{code}\", slug = \"s{i:05}\", name = \"Site {i}\", kind = \"phuong\", \
             former_province = \"bench\", former_district = \"bench\", island = false, lat = 10.7, \
             lon = 106.7, link_class = \"bench\", addr = {{ link = \"{uip}\", \
             http = \"http://{h}/\", tcp = \"{c}\" }} }},\n",
            code = 900000 + i,
            uip = u.ip(),
        );
    }
    t += "]\n";
    t
}

// ---------------------------------------------------------------------------------------------
// Measuring the service process
// ---------------------------------------------------------------------------------------------

/// utime + stime of a process in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| {
        f.get(n - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field(14) + field(15)) as f64 / 100.0
}

fn status_mib(pid: u32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// A plain HTTP/1.0 GET (the service closes after the response): (status, body, seconds).
fn get(addr: SocketAddr, path: &str) -> Option<(u16, String, f64)> {
    let started = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: bench\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let took = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string(), took))
}

/// The parts of an exposition the bench reads.
#[derive(Default, Clone)]
struct Scrape {
    attempts: f64,
    failures: BTreeMap<String, f64>,
    /// Cumulative lag buckets (le, count) and the total count.
    lag: Vec<(f64, f64)>,
    incidents_opened: BTreeMap<String, f64>,
    incidents_open: f64,
    bytes: usize,
    seconds: f64,
}

fn label<'a>(series: &'a str, name: &str) -> Option<&'a str> {
    let start = series.find(&format!("{name}=\""))? + name.len() + 2;
    let end = series[start..].find('"')? + start;
    Some(&series[start..end])
}

fn scrape(addr: SocketAddr) -> Option<Scrape> {
    let (status, body, seconds) = get(addr, "/metrics")?;
    if status != 200 {
        return None;
    }
    let mut s = Scrape {
        bytes: body.len(),
        seconds,
        ..Scrape::default()
    };
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        if series.starts_with("lienthong_probe_attempts_total") {
            s.attempts += v;
        } else if series.starts_with("lienthong_probe_failures_total") {
            *s.failures
                .entry(label(series, "reason").unwrap_or("?").to_string())
                .or_default() += v;
        } else if series.starts_with("lienthong_scheduler_lag_seconds_bucket") {
            let le = label(series, "le").unwrap_or("+Inf");
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::INFINITY)
            };
            s.lag.push((le, v));
        } else if series.starts_with("lienthong_incidents_total") {
            *s.incidents_opened
                .entry(label(series, "scope").unwrap_or("?").to_string())
                .or_default() += v;
        } else if series.starts_with("lienthong_incidents_open") {
            s.incidents_open += v;
        }
    }
    Some(s)
}

/// Lag quantiles between two scrapes, as bucket upper bounds: (p50, p99, max, runs).
fn lag_between(a: &Scrape, b: &Scrape) -> (f64, f64, f64, f64) {
    let delta: Vec<(f64, f64)> = b
        .lag
        .iter()
        .map(|(le, n)| {
            let before = a
                .lag
                .iter()
                .find(|(l, _)| l == le)
                .map(|(_, n)| *n)
                .unwrap_or(0.0);
            (*le, n - before)
        })
        .collect();
    let total = delta.last().map(|(_, n)| *n).unwrap_or(0.0);
    let q = |q: f64| {
        delta
            .iter()
            .find(|(_, n)| *n >= q * total)
            .map(|(le, _)| *le)
            .unwrap_or(f64::NAN)
    };
    let max = delta
        .iter()
        .find(|(_, n)| *n >= total)
        .map(|(le, _)| *le)
        .unwrap_or(f64::NAN);
    (q(0.5), q(0.99), max, total)
}

fn ms(v: f64) -> String {
    if v.is_infinite() {
        "> 5 s".into()
    } else {
        format!("≤ {:.1} ms", v * 1e3)
    }
}

struct Service {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Service {
    fn drop(&mut self) {
        // The whole process group: under BENCH_WRAP the child is the wrapper (heaptrack is a
        // shell script), and the service must not outlive the bench.
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

fn start_service(config: &Path, log: &Path) -> Service {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = std::fs::File::create(log).expect("log file");
    // BENCH_WRAP="heaptrack -o /tmp/x" (or "perf record -g -o …") runs the service under a
    // profiler; the CPU and RSS figures are then the wrapper's, not the service's.
    let wrap: Vec<String> = std::env::var("BENCH_WRAP")
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    let mut cmd = match wrap.split_first() {
        Some((prog, args)) => {
            let mut c = Command::new(prog);
            c.args(args).arg(env!("CARGO_BIN_EXE_lienthong"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_lienthong")),
    };
    let child = cmd
        .process_group(0)
        .args(["serve", "--config"])
        .arg(config)
        .args(["--listen", &addr.to_string()])
        .env(
            "LIENTHONG_LOG",
            std::env::var("LIENTHONG_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start lienthong serve");
    let svc = Service { child, addr };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if matches!(get(addr, "/readyz"), Some((200, _, _))) {
            return svc;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("lienthong serve did not become ready; see {}", "its log");
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let checks = env_num("BENCH_CHECKS", 10_000) as usize;
    let interval = env_num("BENCH_INTERVAL", 10);
    let secs = env_num("BENCH_SECS", 60);
    let outage = std::env::var("BENCH_OUTAGE").is_ok_and(|v| v == "1");
    let sites = checks.div_ceil(5);
    let checks = sites * 5;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("farm runtime");
    let farm = start_farm(&rt);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("bench-probes.toml");
    std::fs::write(
        &config,
        config_text(&farm, sites, interval, &dir.path().join("bench.db")),
    )
    .expect("write config");
    let log = dir.path().join("serve.log");
    println!(
        "serve bench: {checks} checks ({sites} sites × link round + 2 HTTP + 2 TCP) every {interval} s, \
         timeout {TIMEOUT_SECS} s, /metrics every {} s",
        SCRAPE_EVERY.as_secs()
    );
    let started = Instant::now();
    let svc = start_service(&config, &log);
    let pid = svc.child.id();
    println!(
        "  started and ready in {:.1} s; RSS {:.1} MiB",
        started.elapsed().as_secs_f64(),
        status_mib(pid, "VmRSS:")
    );

    // Warm-up: every check's first run is staggered over one interval.
    std::thread::sleep(Duration::from_secs(interval + 5));
    let s0 = scrape(svc.addr).expect("scrape");
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    let mut scrapes = vec![(s0.seconds, s0.bytes)];
    let mut last = s0.clone();
    while t0.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(
            SCRAPE_EVERY.min(Duration::from_secs(secs).saturating_sub(t0.elapsed())),
        );
        if let Some(s) = scrape(svc.addr) {
            scrapes.push((s.seconds, s.bytes));
            last = s;
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    let achieved = (last.attempts - s0.attempts) / wall;
    let intended = checks as f64 / interval as f64;
    let (p50, p99, max, runs) = lag_between(&s0, &last);
    println!("steady state ({wall:.0} s after the warm-up interval):");
    println!(
        "  probes/s:     {achieved:.0} achieved / {intended:.0} intended ({:.1} %)",
        100.0 * achieved / intended
    );
    let failures: Vec<String> = last
        .failures
        .iter()
        .map(|(r, n)| (r, n - s0.failures.get(r).copied().unwrap_or(0.0)))
        .filter(|(_, n)| *n > 0.0)
        .map(|(r, n)| format!("{r}={n:.0}"))
        .collect();
    println!(
        "  failures:     {}",
        if failures.is_empty() {
            "0".to_string()
        } else {
            failures.join(", ")
        }
    );
    println!(
        "  CPU:          {:.1} % of one core ({:.0} µs per probe)",
        100.0 * cpu / wall,
        1e6 * cpu / (achieved * wall).max(1.0)
    );
    println!(
        "  lag:          p50 {} / p99 {} / max {} over {runs:.0} runs",
        ms(p50),
        ms(p99),
        ms(max)
    );
    println!(
        "  RSS:          {:.1} MiB now, peak (VmHWM) {:.1} MiB",
        status_mib(pid, "VmRSS:"),
        status_mib(pid, "VmHWM:")
    );
    let mut times: Vec<f64> = scrapes.iter().map(|(t, _)| *t).collect();
    times.sort_by(f64::total_cmp);
    println!(
        "  /metrics:     {:.0} ms median, {:.0} ms max, {:.2} MB",
        times[times.len() / 2] * 1e3,
        times.last().copied().unwrap_or(0.0) * 1e3,
        last.bytes as f64 / 1e6
    );
    println!(
        "  incidents opened: {:?}",
        last.incidents_opened
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect::<Vec<_>>()
    );

    if outage {
        outage_phase(&svc, &farm, &last, interval);
    }
    drop(svc);
    if std::env::var_os("BENCH_KEEP_LOG").is_some() {
        let keep = std::env::temp_dir().join("lienthong-serve-bench.log");
        let _ = std::fs::copy(&log, &keep);
        let _ = std::fs::copy(
            &config,
            std::env::temp_dir().join("lienthong-serve-bench.toml"),
        );
        println!("  service log kept at {}", keep.display());
    }
}

/// Every target silent for [`OUTAGE`], then back; reports the schedule and the incidents.
fn outage_phase(svc: &Service, farm: &Farm, before: &Scrape, interval: u64) {
    let pid = svc.child.id();
    println!("outage: every target silent for {} s", OUTAGE.as_secs());
    let cpu0 = cpu_seconds(pid);
    let a = scrape(svc.addr).unwrap_or_else(|| before.clone());
    farm.silent.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    let mut prober_at = None;
    let mut last = a.clone();
    while t0.elapsed() < OUTAGE {
        std::thread::sleep(Duration::from_secs(1));
        if prober_at.is_none() {
            if let Some((200, body, _)) = get(svc.addr, "/api/v1/incidents?state=open") {
                if body.contains("\"key\":\"prober\"") {
                    prober_at = Some(t0.elapsed().as_secs_f64());
                }
            }
        }
        if t0
            .elapsed()
            .as_secs()
            .is_multiple_of(SCRAPE_EVERY.as_secs())
        {
            if let Some(s) = scrape(svc.addr) {
                last = s;
            }
        }
    }
    if let Some(s) = scrape(svc.addr) {
        last = s;
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    let (p50, p99, max, runs) = lag_between(&a, &last);
    println!(
        "  probes/s during the outage: {:.0} (confirm re-runs included); CPU {:.1} % of one core",
        (last.attempts - a.attempts) / wall,
        100.0 * cpu / wall
    );
    println!(
        "  lag:          p50 {} / p99 {} / max {} over {runs:.0} runs",
        ms(p50),
        ms(p99),
        ms(max)
    );
    match prober_at {
        Some(t) => println!("  prober-isolation incident open {t:.1} s after the outage began"),
        None => println!("  NO prober-isolation incident during the outage"),
    }
    let opened: Vec<(String, f64)> = last
        .incidents_opened
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v - a.incidents_opened.get(k).copied().unwrap_or(0.0),
            )
        })
        .filter(|(_, v)| *v > 0.0)
        .collect();
    println!("  incidents opened during the outage, by scope: {opened:?}");
    farm.silent.store(false, Ordering::Relaxed);
    let t1 = Instant::now();
    let mut cleared = None;
    while t1.elapsed() < Duration::from_secs(120 + interval) {
        std::thread::sleep(Duration::from_secs(1));
        if let Some(s) = scrape(svc.addr) {
            if s.incidents_open == 0.0 {
                cleared = Some(t1.elapsed().as_secs_f64());
                last = s;
                break;
            }
            last = s;
        }
    }
    match cleared {
        Some(t) => println!("  recovered: no open incident {t:.1} s after the targets came back"),
        None => println!(
            "  NOT recovered: {} incidents still open {} s after the targets came back",
            last.incidents_open,
            t1.elapsed().as_secs()
        ),
    }
    let opened_after: Vec<(String, f64)> = last
        .incidents_opened
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v - a.incidents_opened.get(k).copied().unwrap_or(0.0),
            )
        })
        .filter(|(_, v)| *v > 0.0)
        .collect();
    println!("  incidents opened from the outage start to recovery: {opened_after:?}");
    println!("  peak RSS (VmHWM) {:.1} MiB", status_mib(pid, "VmHWM:"));
}
