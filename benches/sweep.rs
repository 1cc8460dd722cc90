//! Pre-conference sweep bench: the 168-site demo (the built-in probes.toml, the simulator on its
//! loopback addresses with emulated link delay and loss, one link down) served in-process on
//! 127.0.0.1:0 while its normal schedule runs; `POST /api/v1/sweep` over all sites, timed from
//! the client. The goal is an answer within 20 s.
//!
//! `cargo bench --bench sweep` (uses the demo's fixed loopback ports 127.10.0.N: run it alone,
//! not next to `lienthong demo` or the demo tests). `BENCH_SWEEPS=5` sweeps (default 5) after
//! `BENCH_WARMUP_SECS=12` of normal probing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lienthong::config::Config;
use lienthong::service::{self, Handles, Loader};
use lienthong::simulator::{self, Scenario, Simulator};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const TOKEN_ENV: &str = "LT_BENCH_SWEEP_TOKEN";
const TOKEN: &str = "bench-sweep-token";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(bench());
}

async fn bench() {
    let sweeps = env_u64("BENCH_SWEEPS", 5).max(1);
    let warmup = env_u64("BENCH_WARMUP_SECS", 12);
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var(TOKEN_ENV, TOKEN);
    let mut inv = (*Config::from_str(
        std::path::Path::new("probes.toml (built in)"),
        lienthong::demo::BUILTIN_CONFIG,
    )
    .unwrap()
    .inventory)
        .clone();
    inv.incidents.database = dir.path().join("bench.db").display().to_string();
    inv.api.token_env = TOKEN_ENV.into();
    let echo_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let scenario = Scenario::parse(&format!(
        "cycle = \"1h\"\nudp_echo_port = {echo_port}\n[[fault]]\nat = \"0s\"\nduration = \"1h\"\nkind = \"link_down\"\nsite = \"phuong-ben-thanh\"\n"
    ))
    .unwrap();
    let sim = Arc::new(
        Simulator::start(&inv, scenario, dir.path())
            .await
            .expect("simulator (are the demo's loopback ports free?)"),
    );
    let (sim2, base_inv) = (sim.clone(), inv.clone());
    let loader: Loader = Arc::new(move || {
        let mut inv = base_inv.clone();
        simulator::overlay(&mut inv, &sim2);
        Ok(inv)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (_reload, reload_rx) = tokio::sync::mpsc::channel(1);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(service::run(
        loader,
        listener,
        reload_rx,
        shutdown.clone(),
        Handles::new(),
    ));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    while http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map_or(true, |r| !r.status().is_success())
    {
        assert!(Instant::now() < until, "service not ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "sweep bench: {} sites, {} checks, [scheduler] max_concurrency {} per_site {}; {warmup} s of normal probing first",
        inv.sites.len(),
        inv.checks.len(),
        inv.scheduler.max_concurrency,
        inv.scheduler.per_site_concurrency
    );
    tokio::time::sleep(Duration::from_secs(warmup)).await;
    let mut times = Vec::new();
    for i in 0..sweeps {
        let t = Instant::now();
        let r = http
            .post(format!("{base}/api/v1/sweep"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        let v: Value = r.json().await.unwrap();
        let took = t.elapsed().as_secs_f64();
        times.push(took);
        let slowest = v["sites"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["checks"].as_array().cloned().unwrap_or_default())
            .filter_map(|c| c["duration_seconds"].as_f64())
            .fold(0.0f64, f64::max);
        let not_ready: Vec<String> = v["sites"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["ready"] == false)
            .map(|s| {
                format!(
                    "{} ({})",
                    s["site"].as_str().unwrap(),
                    s["reason"].as_str().unwrap_or("")
                )
            })
            .collect();
        println!(
            "sweep {}: {took:.2} s for {} sites ({} ready, {} not ready), slowest probe {slowest:.2} s; not ready: {}",
            i + 1,
            v["total"],
            v["ready"],
            v["not_ready"],
            not_ready.join(", ")
        );
    }
    // The live form: time to the first and the last site event.
    let t = Instant::now();
    let mut r = http
        .post(format!("{base}/api/v1/sweep"))
        .bearer_auth(TOKEN)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let (mut first, mut sites, mut buf) = (None, 0usize, String::new());
    while let Some(chunk) = r.chunk().await.unwrap() {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        let n = buf.matches("event: site").count();
        if n > 0 && first.is_none() {
            first = Some(t.elapsed().as_secs_f64());
        }
        sites = n;
        if buf.contains("event: done") {
            break;
        }
    }
    let last = t.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    println!(
        "sweep (JSON) over {sweeps} runs: min {:.2} s, median {:.2} s, max {:.2} s (goal: 20 s)",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1]
    );
    println!(
        "sweep (SSE): first site after {:.2} s, all {sites} after {last:.2} s",
        first.unwrap_or(f64::NAN)
    );
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    if let Ok(sim) = Arc::try_unwrap(sim) {
        sim.stop().await;
    }
}
