//! Ward agents at city scale: the real central (`lienthong serve`, child process) with 168
//! `[[agent]]`s and 8 shared-service checks; ONE real `lienthong agent` process (its RSS and CPU
//! are measured) plus 167 simulated agents in this process, each pushing what an agent with the
//! default check set pushes (8 checks every 15 s → a batch of 3 results every 5 s, a heartbeat
//! every 10 s). Everything on 127.0.0.1.
//!
//! ```sh
//! cargo bench --bench agents              # 60 s measured
//! BENCH_SECS=120 cargo bench --bench agents
//! ```
//!
//! Figures: the agent's RSS (VmRSS, VmHWM) and CPU (% of one core, /proc/PID/stat); the
//! central's CPU with no agent pushing (baseline) and with 168, and its CPU per applied result.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

const SITES: usize = 168;
const SERVICES: usize = 8;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ticks_per_sec() -> f64 {
    // sysconf(_SC_CLK_TCK) is 100 on every Linux this runs on.
    100.0
}

/// utime + stime of a process, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ut: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let st: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    (ut + st) / ticks_per_sec()
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn sha256_hex(s: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, s.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn slug(i: usize) -> String {
    format!("phuong-{i:03}")
}

fn token(i: usize) -> String {
    format!("bench-token-{i:03}-5f1c")
}

fn write_central(dir: &Path, svc: std::net::SocketAddr) -> std::path::PathBuf {
    let mut t = format!(
        "[incidents]\ndatabase = \"{}\"\n\n",
        dir.join("central.db").display()
    );
    for i in 0..SITES {
        t.push_str(&format!(
            "[[agent]]\nsite = \"{}\"\ntoken_sha256 = \"{}\"\n\n",
            slug(i),
            sha256_hex(&token(i))
        ));
    }
    t.push_str(
        r#"[link_class.mainland]
interval = "15s"
timeout = "5s"
packets = 2
pacing = "50ms"
max_loss = 0.5
degraded_loss = 0.1
degraded_rtt = "100ms"
degraded_jitter = "50ms"
degraded_latency = "2s"

"#,
    );
    for s in 0..SERVICES {
        t.push_str(&format!(
            "[[service]]\nslug = \"svc-{s}\"\nname = \"Dịch vụ {s}\"\nlink_class = \"mainland\"\n[[service.check]]\nname = \"web\"\nprobe.http = {{ url = \"http://{svc}/s{s}\", body_contains = \"ok\" }}\n\n"
        ));
    }
    t.push_str("[inventory]\nsites = [\n");
    for i in 0..SITES {
        t.push_str(&format!(
            "  {{ code = \"{i}\", slug = \"{}\", name = \"Phường {i}\", kind = \"phuong\", former_province = \"tphcm\", former_district = \"Quận 1\", island = false, lat = 10.7, lon = 106.7 }},\n",
            slug(i)
        ));
    }
    t.push_str("]\n");
    let p = dir.join("probes.toml");
    std::fs::write(&p, t).unwrap();
    p
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// One simulated agent: a batch of 3 results every 5 s, a heartbeat every 10 s.
async fn simulated(
    base: String,
    i: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
    sent: Arc<AtomicU64>,
) {
    let http = reqwest::Client::new();
    let tok = token(i);
    let site = slug(i);
    let mut seq = 0u64;
    let mut n = 0u64;
    // Spread the agents over the 5 s period.
    tokio::time::sleep(Duration::from_millis((i as u64 * 5000) / SITES as u64)).await;
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        if n.is_multiple_of(2) {
            let hb = json!({ "version": "bench", "sent_ms": now_ms(), "clock_offset_ms": 0, "spooled": 0, "dropped": 0 });
            let _ = http
                .post(format!("{base}/api/v1/agents/{site}/heartbeat"))
                .bearer_auth(&tok)
                .json(&hb)
                .send()
                .await;
        }
        n += 1;
        let results: Vec<Value> = (0..3)
            .map(|k| {
                seq += 1;
                json!({ "seq": seq, "check": format!("service/svc-{}/web", (seq as usize + k) % SERVICES),
                        "finished_ms": now_ms(), "success": true, "duration_seconds": 0.004 })
            })
            .collect();
        let ok = http
            .post(format!("{base}/api/v1/agents/{site}/results"))
            .bearer_auth(&tok)
            .json(&json!({ "results": results }))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            sent.fetch_add(3, Ordering::Relaxed);
        }
    }
}

async fn applied(base: &str) -> u64 {
    let v: Value = reqwest::get(format!("{base}/api/v1/agents"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|a| a["applied"].as_u64().unwrap_or(0))
        .sum()
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let secs = env_num("BENCH_SECS", 60);
    let dir = tempfile::tempdir().unwrap();
    let app = axum::Router::new().route("/{p}", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let svc = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = write_central(dir.path(), svc);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let bin = env!("CARGO_BIN_EXE_lienthong");
    let central = Kill(
        Command::new(bin)
            .args([
                "serve",
                "--config",
                config.to_str().unwrap(),
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .env("LIENTHONG_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let cpid = central.0.id();
    let until = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{base}/readyz"))
        .await
        .map_or(true, |r| !r.status().is_success())
    {
        assert!(Instant::now() < until, "central did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Baseline: the central with its own 8 checks and no agent.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (c0, t0) = (cpu_secs(cpid), Instant::now());
    tokio::time::sleep(Duration::from_secs(15)).await;
    let base_cpu = (cpu_secs(cpid) - c0) / t0.elapsed().as_secs_f64();

    // The real agent (site 0), with the central's 8 service checks.
    let adir = dir.path().join("agent");
    std::fs::create_dir_all(&adir).unwrap();
    std::fs::write(adir.join("token"), token(0)).unwrap();
    std::fs::write(
        adir.join("agent.toml"),
        format!(
            "central = \"{base}\"\nsite = \"{}\"\ntoken_file = \"{}\"\nspool_dir = \"{}\"\n",
            slug(0),
            adir.join("token").display(),
            adir.join("spool").display()
        ),
    )
    .unwrap();
    let agent = Kill(
        Command::new(bin)
            .args([
                "agent",
                "--config",
                adir.join("agent.toml").to_str().unwrap(),
            ])
            .env("LIENTHONG_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let apid = agent.0.id();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut sims = Vec::new();
    for i in 1..SITES {
        sims.push(tokio::spawn(simulated(
            base.clone(),
            i,
            stop.clone(),
            sent.clone(),
        )));
    }
    // Warm-up: every agent has pushed, the real one has run each check once.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let (c1, a1, r1, t1) = (
        cpu_secs(cpid),
        cpu_secs(apid),
        applied(&base).await,
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let el = t1.elapsed().as_secs_f64();
    let (c2, a2, r2) = (cpu_secs(cpid), cpu_secs(apid), applied(&base).await);
    stop.store(true, Ordering::Relaxed);
    let central_cpu = (c2 - c1) / el;
    let results = (r2 - r1) as f64;
    let per_result_us = (central_cpu - base_cpu).max(0.0) * el / results.max(1.0) * 1e6;
    println!("ward agents bench ({secs} s measured, {SITES} agents: 1 real + {} simulated, {SERVICES} service checks each)", SITES - 1);
    println!(
        "  agent (real process): RSS {} KiB (peak {} KiB), CPU {:.3} % of one core",
        status_kib(apid, "VmRSS:"),
        status_kib(apid, "VmHWM:"),
        (a2 - a1) / el * 100.0
    );
    println!(
        "  central: CPU {:.1} % of one core with agents, {:.1} % baseline (own checks only)",
        central_cpu * 100.0,
        base_cpu * 100.0
    );
    println!("  central: {results:.0} results applied ({:.1}/s), {per_result_us:.0} µs CPU per pushed result (above baseline; includes HTTP, auth, SQLite sequence update, writer)",
        results / el);
    println!("  (CPU from /proc/PID/stat at 100 ticks/s; resolution 10 ms)");
    drop(agent);
    drop(central);
    for s in sims {
        s.abort();
    }
}
