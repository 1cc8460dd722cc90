//! Ward agents against real processes on 127.0.0.1: the central (`lienthong serve`) and two
//! agents (`lienthong agent`). A central killed with SIGKILL for 60 s and restarted loses no result and
//! applies none twice (counted by sequence); a path fault seen only from one ward opens exactly
//! one ward incident; the agent endpoints refuse bad credentials and bad batches with the right
//! status and apply nothing; a bad agent.toml gets file:line:column errors.

mod common;
#[path = "support/sim.rs"]
mod sim;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use common::free_port;
use serde_json::{json, Value};

const TOKEN_A: &str = "agent-a-7f3c0d1e";
const TOKEN_B: &str = "agent-b-91aa42c8";

fn sha256_hex(s: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, s.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The shared service ("dms"): 200 "ok" unless the request carries the bearer token of a
/// blocked ward (each process reads `DMS_TOKEN` from its own environment, so the ward's
/// agent can be given a path the data centre does not have).
async fn dms(blocked: Arc<AtomicBool>) -> std::net::SocketAddr {
    let app = Router::new().route(
        "/health",
        get(move |h: HeaderMap| {
            let blocked = blocked.clone();
            async move {
                let auth = h
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if auth == "Bearer ward-b" && blocked.load(Ordering::SeqCst) {
                    (StatusCode::FORBIDDEN, "blocked by the ward firewall")
                } else {
                    (StatusCode::OK, "ok")
                }
            }
        }),
    );
    common::serve(app).await
}

/// A TCP listener standing for the wards' links (the central's link checks pass).
async fn link() -> std::net::SocketAddr {
    common::serve_raw(|s| async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(s);
    })
    .await
}

fn central_config(dir: &Path, dms: std::net::SocketAddr, link: std::net::SocketAddr) -> PathBuf {
    std::fs::write(dir.join("a.token"), format!("{TOKEN_A}\n")).unwrap();
    let text = format!(
        r#"
[incidents]
database = "{db}"

[[agent]]
site = "phuong-a"
token_file = "{tok}"

[[agent]]
site = "phuong-b"
token_sha256 = "{hash_b}"

[link_class.mainland]
interval = "1s"
timeout = "800ms"
packets = 2
pacing = "50ms"
max_loss = 0.5
degraded_loss = 0.1
degraded_rtt = "100ms"
degraded_jitter = "50ms"
degraded_latency = "1s"

[[template]]
name = "link"
role = "link"
title = "Đường truyền"
probe.tcp = {{ address = "{link}" }}

[[service]]
slug = "dms"
name = "Quản lý văn bản"
name_en = "Document management"
link_class = "mainland"
[[service.check]]
name = "web"
probe.http = {{ url = "http://{dms}/health", body_contains = "ok", bearer_token_env = "DMS_TOKEN" }}

[inventory]
sites = [
  {{ code = "1", slug = "phuong-a", name = "Phường A", kind = "phuong", former_province = "tphcm", former_district = "Quận 1", island = false, lat = 10.7, lon = 106.7 }},
  {{ code = "2", slug = "phuong-b", name = "Phường B", kind = "phuong", former_province = "tphcm", former_district = "Quận 1", island = false, lat = 10.8, lon = 106.7 }},
]
"#,
        db = dir.join("central.db").display(),
        tok = dir.join("a.token").display(),
        hash_b = sha256_hex(TOKEN_B),
    );
    let path = dir.join("probes.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// agent.toml of `site`; with `gateway`, a local check of the ward's gateway (TCP).
fn agent_config(
    dir: &Path,
    site: &str,
    token: &str,
    port: u16,
    gateway: Option<std::net::SocketAddr>,
) -> PathBuf {
    let d = dir.join(site);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("token"), token).unwrap();
    let text = format!(
        r#"
central = "http://127.0.0.1:{port}"
site = "{site}"
token_file = "{tok}"
spool_dir = "{spool}"
push_every = "500ms"
{local}"#,
        tok = d.join("token").display(),
        spool = d.join("spool").display(),
        local = gateway
            .map(|g| format!(
                "\n[[check]]\nname = \"gateway\"\ntitle = \"Cổng mạng của phường\"\ninterval = \"1s\"\ntimeout = \"800ms\"\nprobe.tcp = {{ address = \"{g}\" }}\n"
            ))
            .unwrap_or_default(),
    );
    let path = d.join("agent.toml");
    std::fs::write(&path, text).unwrap();
    path
}

struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(args: &[&str], envs: &[(&str, &str)], log: PathBuf) -> Proc {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lienthong"));
        cmd.args(args)
            .env("LIENTHONG_LOG", "info")
            .stdout(Stdio::null())
            .stderr(out);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        Proc {
            child: cmd.spawn().unwrap(),
            log,
        }
    }

    fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status();
    }

    fn wait(&mut self, limit: Duration) {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_central(dir: &Path, config: &Path, port: u16) -> Proc {
    Proc::spawn(
        &[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ],
        &[("DMS_TOKEN", "central")],
        dir.join("central.log"),
    )
}

async fn get_json(port: u16, path: &str) -> Option<Value> {
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

async fn wait_for<T, F: std::future::Future<Output = Option<T>>>(
    limit: Duration,
    mut f: impl FnMut() -> F,
) -> Option<T> {
    let until = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() > until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn agent_view(port: u16, site: &str) -> Option<Value> {
    get_json(port, "/api/v1/agents")
        .await?
        .as_array()?
        .iter()
        .find(|a| a["site"] == site)
        .cloned()
}

async fn incidents(port: u16) -> Vec<Value> {
    get_json(port, "/api/v1/incidents?limit=500")
        .await
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default()
}

/// Sequences an agent has numbered so far and what is still in its spool.
fn spool_accounting(dir: &Path, site: &str) -> (u64, u64) {
    let spool = dir.join(site).join("spool");
    let state: Value =
        serde_json::from_slice(&std::fs::read(spool.join("state.json")).unwrap()).unwrap();
    let next = state["next_seq"].as_u64().unwrap();
    let mut waiting = 0;
    for e in std::fs::read_dir(spool.join("queue")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        let (a, b) = name.trim_end_matches(".json").split_once('-').unwrap();
        waiting += b.parse::<u64>().unwrap() + 1 - a.parse::<u64>().unwrap();
    }
    (next - 1, waiting)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn central_restart_and_ward_fault() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let blocked = Arc::new(AtomicBool::new(false));
    let dms = dms(blocked.clone()).await;
    let link = link().await;
    let config = central_config(dir.path(), dms, link);
    let port = free_port();
    let mut central = start_central(dir.path(), &config, port);
    let cfg_a = agent_config(dir.path(), "phuong-a", TOKEN_A, port, Some(link));
    let cfg_b = agent_config(dir.path(), "phuong-b", TOKEN_B, port, None);
    let mut agent_a = Proc::spawn(
        &["agent", "--config", cfg_a.to_str().unwrap()],
        &[("DMS_TOKEN", "ward-a")],
        dir.path().join("agent-a.log"),
    );
    let mut agent_b = Proc::spawn(
        &["agent", "--config", cfg_b.to_str().unwrap()],
        &[("DMS_TOKEN", "ward-b")],
        dir.path().join("agent-b.log"),
    );
    let logs = |c: &Proc, a: &Proc, b: &Proc| {
        format!(
            "--- central\n{}\n--- agent a\n{}\n--- agent b\n{}",
            c.log(),
            a.log(),
            b.log()
        )
    };

    // Both agents push; the data centre and both wards see the service up.
    for site in ["phuong-a", "phuong-b"] {
        let v = wait_for(Duration::from_secs(30), || async move {
            agent_view(port, site)
                .await
                .filter(|v| v["applied"].as_u64() >= Some(3) && v["up"] == true)
        })
        .await;
        assert!(
            v.is_some(),
            "{site} never pushed:\n{}",
            logs(&central, &agent_a, &agent_b)
        );
    }
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"probe_success{check="web",kind="http",service="dms",site="phuong-b",vantage="site:phuong-b"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"probe_success{check="web",kind="http",service="dms",site=""} 1"#),
        "the data centre's own series stays: {metrics}"
    );
    assert!(
        metrics.contains(r#"lienthong_agent_up{site="phuong-a"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("lienthong_agent_last_seen_timestamp_seconds{site=\"phuong-b\"}"));
    // Agent A's own check (agent.toml) is recorded centrally under its vantage, in the API
    // and on the ward's page; agent B declared none.
    let local = wait_for(Duration::from_secs(20), || async move {
        let m = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        m.contains(r#"probe_success{check="gateway",kind="tcp",service="",site="phuong-a",vantage="site:phuong-a"} 1"#)
            .then_some(m)
    })
    .await;
    let local = local.unwrap_or_else(|| {
        panic!(
            "local check not recorded:\n{}",
            logs(&central, &agent_a, &agent_b)
        )
    });
    assert!(!local.contains(r#"check="gateway",kind="tcp",service="",site="phuong-b""#));
    let checks = get_json(port, "/api/v1/checks").await.unwrap();
    let items = checks
        .as_array()
        .or_else(|| checks["items"].as_array())
        .cloned()
        .unwrap_or_default();
    let gw = items
        .iter()
        .find(|c| c["key"] == "site/phuong-a/gateway@site:phuong-a")
        .unwrap_or_else(|| panic!("gateway in /api/v1/checks: {checks}"));
    assert_eq!(gw["vantage"], "site:phuong-a");
    assert_eq!(gw["last"]["success"], true, "{gw}");
    assert!(metrics.contains("lienthong_agent_spooled_results{site=\"phuong-b\"}"));

    // Ward B's path to the service breaks; the data centre and ward A still reach it.
    blocked.store(true, Ordering::SeqCst);
    let ward_key = "site/phuong-b/dms@agent";
    let opened = wait_for(Duration::from_secs(30), || async move {
        incidents(port)
            .await
            .into_iter()
            .find(|i| i["key"] == ward_key)
    })
    .await
    .unwrap_or_else(|| panic!("no ward incident:\n{}", logs(&central, &agent_a, &agent_b)));
    assert_eq!(
        opened["title"],
        "Phường B không truy cập được Quản lý văn bản"
    );
    // The ward's page shows the service as seen from there (down) beside the data centre's
    // view (up); the status page counts one failing service for ward B, none for ward A.
    let page = |path: &'static str| async move {
        reqwest::get(format!("http://127.0.0.1:{port}{path}"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let site_b = page("/sites/phuong-b").await;
    let view = &site_b[site_b
        .find("id=\"ward-view\"")
        .expect("ward view on the site page")..];
    assert!(
        view.contains("Phần mềm dùng chung nhìn từ phường"),
        "{view}"
    );
    let row = &view[view.find("data-service=\"dms\"").expect("a dms row")..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("data-health=\"down\""), "{row}");
    assert!(row.contains("Quản lý văn bản"), "{row}");
    assert!(row.contains("Gián đoạn"), "{row}");
    assert!(
        row.matches("s-up").count() == 1 && row.contains("s-down"),
        "ward down, data centre up: {row}"
    );
    // The readiness panel names the criterion (a fresh agent: not enough data yet).
    let crit = &site_b[site_b
        .find("id=\"ward-criterion\"")
        .expect("ward criterion")..];
    assert!(
        crit.contains("Phần mềm dùng chung truy cập được từ phường: "),
        "{crit}"
    );
    assert!(crit.contains("không đủ dữ liệu"), "{crit}");
    let en = page("/sites/phuong-b?lang=en").await;
    assert!(en.contains("Shared services as seen from this ward"));
    assert!(en.contains("From the data centre"));
    let index = page("/").await;
    let panel = &index[index.find("id=\"ward-agents\"").expect("ward agents on /")..];
    assert!(
        panel.contains("data-site=\"phuong-b\" data-failing=\"1\""),
        "{panel}"
    );
    assert!(
        panel.contains("data-site=\"phuong-a\" data-failing=\"0\""),
        "{panel}"
    );
    assert!(panel.contains("1/1 lỗi"), "{panel}");

    // A few more seconds of failures: still exactly one incident, and not a city-wide one.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let all = incidents(port).await;
    let keys: Vec<&str> = all.iter().filter_map(|i| i["key"].as_str()).collect();
    assert_eq!(keys, vec![ward_key], "exactly one ward incident: {all:#?}");

    // Kill the central mid-fault; the agents spool meanwhile.
    let before = agent_view(port, "phuong-a").await.unwrap();
    central.signal("-KILL");
    central.wait(Duration::from_secs(5));
    // As long as the issue asks (60 s): the agents spool and back off meanwhile.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let (numbered_a, waiting_a) = spool_accounting(dir.path(), "phuong-a");
    assert!(
        waiting_a > 0 && numbered_a > before["last_seq"].as_u64().unwrap(),
        "agent A spools while the central is down ({numbered_a}, {waiting_a})"
    );
    let (numbered_b, _) = spool_accounting(dir.path(), "phuong-b");
    let mut central = start_central(dir.path(), &config, port);

    // The spools drain in order: each sequence applied once, none missing.
    for (site, numbered) in [("phuong-a", numbered_a), ("phuong-b", numbered_b)] {
        let v = wait_for(Duration::from_secs(30), || async move {
            agent_view(port, site).await.filter(|v| {
                v["last_seq"].as_u64() > Some(numbered) && v["spooled"].as_u64() < Some(5)
            })
        })
        .await;
        assert!(
            v.is_some(),
            "{site} did not catch up:\n{}",
            logs(&central, &agent_a, &agent_b)
        );
    }
    // The same ward incident continues across the restart (no second one).
    let all = incidents(port).await;
    let ward: Vec<&Value> = all.iter().filter(|i| i["key"] == ward_key).collect();
    assert_eq!(ward.len(), 1, "{all:#?}");
    assert_eq!(ward[0]["id"], opened["id"]);
    assert!(
        !all.iter()
            .any(|i| i["key"].as_str().is_some_and(|k| k.starts_with("service/"))),
        "{all:#?}"
    );

    // The path comes back: the ward incident resolves.
    blocked.store(false, Ordering::SeqCst);
    let resolved = wait_for(Duration::from_secs(30), || async move {
        incidents(port)
            .await
            .into_iter()
            .find(|i| i["key"] == ward_key && i["state"] == "resolved")
    })
    .await;
    assert!(resolved.is_some(), "{}", logs(&central, &agent_a, &agent_b));

    // Stop the agents, let the central see their last pushes, then account for every sequence:
    // applied exactly once (applied == last_seq, nothing missing) or still in the spool.
    agent_a.signal("-TERM");
    agent_b.signal("-TERM");
    agent_a.wait(Duration::from_secs(10));
    agent_b.wait(Duration::from_secs(10));
    for site in ["phuong-a", "phuong-b"] {
        let v = agent_view(port, site).await.unwrap();
        let (numbered, waiting) = spool_accounting(dir.path(), site);
        let (last, applied, missing) = (
            v["last_seq"].as_u64().unwrap(),
            v["applied"].as_u64().unwrap(),
            v["missing"].as_u64().unwrap(),
        );
        assert_eq!(missing, 0, "{site}: {v}");
        assert_eq!(applied, last, "{site}: every sequence applied once: {v}");
        assert_eq!(
            last + waiting,
            numbered,
            "{site}: every numbered result is applied or still spooled: {v}"
        );
    }
    central.signal("-TERM");
    central.wait(Duration::from_secs(10));
}

async fn post(base: &str, path: &str, token: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(body)
        .timeout(Duration::from_secs(5));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

fn batch(first: u64, n: u64, check: &str) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let results: Vec<Value> = (first..first + n)
        .map(|seq| {
            json!({ "seq": seq, "check": check, "finished_ms": now, "success": true, "duration_seconds": 0.01 })
        })
        .collect();
    serde_json::to_vec(&json!({ "results": results })).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_endpoints_refuse_and_apply_nothing_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let blocked = Arc::new(AtomicBool::new(false));
    let dms = dms(blocked).await;
    let link = link().await;
    let config = central_config(dir.path(), dms, link);
    let text = std::fs::read_to_string(&config).unwrap();
    std::env::set_var("DMS_TOKEN", "central");
    let svc = common::svc::start(config, &text).await;
    let base = svc.base.clone();
    let results = "/api/v1/agents/phuong-b/results";
    let good = || batch(1, 3, "service/dms/web");
    svc.wait_for("/api/v1/agents", Duration::from_secs(10), |c, _| c == 200)
        .await;

    let (code, body) = post(&base, results, None, good()).await;
    assert_eq!(code, 401, "{body}");
    assert!(body["error"].as_str().unwrap().contains("Authorization"));
    let (code, body) = post(&base, results, Some("not-a-token"), good()).await;
    assert_eq!(code, 401, "{body}");
    // Ward A's token posting for ward B.
    let (code, body) = post(&base, results, Some(TOKEN_A), good()).await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("phuong-a"),
        "{body}"
    );
    let (code, body) = post(&base, results, Some(TOKEN_B), b"{\"results\": [".to_vec()).await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("invalid JSON"),
        "{body}"
    );
    // One bad result spoils the batch: nothing of it is applied.
    let mut mixed: Value = serde_json::from_slice(&good()).unwrap();
    mixed["results"][2]["check"] = json!("service/nope/web");
    let (code, body) = post(
        &base,
        results,
        Some(TOKEN_B),
        serde_json::to_vec(&mixed).unwrap(),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("service/nope/web"),
        "{body}"
    );
    // A local check declared under a name that is no check name: refused, nothing applied.
    let mut bad_local: Value = serde_json::from_slice(&good()).unwrap();
    bad_local["local_checks"] = json!([{
        "name": "gateway/../x",
        "title": "t",
        "interval_seconds": 15.0,
        "timeout_seconds": 5.0,
        "probe": { "tcp": { "address": "127.0.0.1:1" } }
    }]);
    let (code, body) = post(
        &base,
        results,
        Some(TOKEN_B),
        serde_json::to_vec(&bad_local).unwrap(),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("local_checks[0]"),
        "{body}"
    );
    let mut unordered: Value = serde_json::from_slice(&good()).unwrap();
    unordered["results"][1]["seq"] = json!(1);
    let (code, _) = post(
        &base,
        results,
        Some(TOKEN_B),
        serde_json::to_vec(&unordered).unwrap(),
    )
    .await;
    assert_eq!(code, 400);
    // A declared 3 MiB body is refused before it is read (raw request: the server answers
    // without waiting for the body, which a client library would still be writing).
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut c = tokio::net::TcpStream::connect(svc.addr).await.unwrap();
        let head = format!(
            "POST {results} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN_B}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            3 * 1024 * 1024
        );
        c.write_all(head.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("\"error\""), "{answer}");
    }
    let (code, body) = post(
        &base,
        results,
        Some(TOKEN_B),
        batch(1, 6000, "service/dms/web"),
    )
    .await;
    assert_eq!(code, 413, "{body}");
    let view = |v: Option<Value>| {
        v.and_then(|a| {
            a.as_array()?
                .iter()
                .find(|x| x["site"] == "phuong-b")
                .cloned()
        })
        .unwrap()
    };
    let (_, listed) = svc.get("/api/v1/agents").await;
    let b = view(serde_json::from_str(&listed).ok());
    assert_eq!(b["applied"], 0, "nothing applied by refused requests: {b}");
    assert_eq!(b["last_seq"], 0);

    // A good batch applies; resending it applies nothing more.
    let (code, body) = post(&base, results, Some(TOKEN_B), good()).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["applied"], 3);
    let (code, body) = post(&base, results, Some(TOKEN_B), good()).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        (body["applied"].as_u64(), body["duplicates"].as_u64()),
        (Some(0), Some(3))
    );
    // Overlapping: 2..=5 applies 4 and 5 only.
    let (_, body) = post(
        &base,
        results,
        Some(TOKEN_B),
        batch(2, 4, "service/dms/web"),
    )
    .await;
    assert_eq!(
        (body["applied"].as_u64(), body["duplicates"].as_u64()),
        (Some(2), Some(2))
    );
    let (_, listed) = svc.get("/api/v1/agents").await;
    let b = view(serde_json::from_str(&listed).ok());
    assert_eq!(
        (b["applied"].as_u64(), b["last_seq"].as_u64()),
        (Some(5), Some(5)),
        "{b}"
    );
    // The results went through the writer: the agent-run series counted each run once.
    let (_, metrics) = svc
        .wait_for("/metrics", Duration::from_secs(5), |_, m| {
            m.contains(r#"lienthong_probe_attempts_total{check="web",kind="http",service="dms",site="phuong-b",vantage="site:phuong-b"} 5"#)
        })
        .await;
    assert!(
        metrics.contains(r#"lienthong_probe_attempts_total{check="web",kind="http",service="dms",site="phuong-b",vantage="site:phuong-b"} 5"#),
        "{metrics}"
    );

    // The API tells the views apart.
    let (_, checks) = svc.get("/api/v1/checks").await;
    let checks: Value = serde_json::from_str(&checks).unwrap();
    let ward = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"] == "service/dms/web@site:phuong-b")
        .unwrap();
    assert_eq!(ward["vantage"], "site:phuong-b");
    assert_eq!(ward["runs"], 5);
    let own = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"] == "service/dms/web")
        .unwrap();
    assert_eq!(own["vantage"], Value::Null);

    // Heartbeat: the offset is kept and a skew above 5 s flagged.
    let hb = json!({ "version": "test", "sent_ms": 1, "clock_offset_ms": -7200, "spooled": 12, "dropped": 0 });
    let (code, body) = post(
        &base,
        "/api/v1/agents/phuong-b/heartbeat",
        Some(TOKEN_B),
        serde_json::to_vec(&hb).unwrap(),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["last_seq"], 5);
    let (code, _) = post(
        &base,
        "/api/v1/agents/phuong-a/heartbeat",
        Some(TOKEN_B),
        serde_json::to_vec(&hb).unwrap(),
    )
    .await;
    assert_eq!(code, 403);
    let (_, listed) = svc.get("/api/v1/agents").await;
    let b = view(serde_json::from_str(&listed).ok());
    assert_eq!(b["clock_skew"], true, "{b}");
    assert_eq!(b["clock_offset_ms"], -7200);
    assert_eq!(b["spooled"], 12);
    assert_eq!(b["version"], "test");

    // The check list: only with the site's own token, and never the token itself.
    let r = reqwest::Client::new()
        .get(format!("{base}/api/v1/agents/phuong-a/checks"))
        .bearer_auth(TOKEN_A)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list: Value = r.json().await.unwrap();
    assert_eq!(list["checks"][0]["key"], "service/dms/web");
    assert!(!list.to_string().contains(TOKEN_A));
    let r = reqwest::Client::new()
        .get(format!("{base}/api/v1/agents/phuong-a/checks"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(!listed.contains(TOKEN_A) && !listed.contains(TOKEN_B));
    svc.stop().await;
}

#[test]
fn bad_agent_toml_gets_file_line_column_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        "central = \"ftp://central\"\nsite = \"phuong-a\"\ntoken_file = \"/nonexistent/token\"\n\n[[check]]\nname = \"gw\"\ninterval = \"5s\"\ntimeout = \"10s\"\nprobe.tcp = { address = \"127.0.0.1:1\" }\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .args(["agent", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let p = path.display();
    assert!(
        err.contains(&format!("{p}:1:11: central must be an http(s) URL")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{p}:3:14: cannot read token file")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{p}:5:1: check `gw`: timeout")),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");

    std::fs::write(&path, "central = \"http://127.0.0.1:9\"\nsit = \"x\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .args(["agent", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{p}:2:1: unknown field `sit`")),
        "{err}"
    );

    // The shipped example is valid once its token file exists.
    let example = std::fs::read_to_string("examples/agent.toml").unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t").unwrap();
    let example = example.replace("/etc/lienthong/agent.token", token.to_str().unwrap());
    std::fs::write(&path, example).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .args(["agent", "--check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Heartbeat lost: with the central's link check to the ward failing, only the existing link
/// incident; with it passing, one "agent offline" warning, resolved when the agent is back.
/// (Virtual clock: the real engine and store, fed by the simulator of tests/incidents.rs.)
#[test]
fn heartbeat_lost_is_the_link_incident_or_one_agent_offline_warning() {
    use lienthong::config::{AgentDef, AgentToken, CheckRole};
    let mut inv = sim::shipped();
    for site in ["phuong-ben-thanh", "phuong-sai-gon"] {
        inv.agents.push(AgentDef {
            site: site.into(),
            token: AgentToken::Sha256([7; 32]),
            service_checks: false,
        });
    }
    let mut s = sim::Sim::new(inv);
    let presence = lienthong::incidents::correlation::AgentPresence::default();
    s.engine.set_agent_presence(presence.clone());
    let seen = |site: &str, t: f64| {
        presence
            .lock()
            .unwrap()
            .insert(site.to_string(), sim::at(t));
    };
    // Both agents last heard from at 120 s; Bến Thành's link goes down at 100 s.
    seen("phuong-ben-thanh", 120.0);
    seen("phuong-sai-gon", 120.0);
    let mut w = sim::World::new(9).fault("phuong-ben-thanh", 100.0, 10_000.0, sim::Fault::LinkDown);
    let links = |c: &lienthong::config::CheckDef| {
        c.role == CheckRole::Link
            && matches!(
                c.id.site.as_deref(),
                Some("phuong-ben-thanh" | "phuong-sai-gon")
            )
    };
    s.run(&mut w, 0.0, 300.0, &links);
    let keys = |s: &sim::Sim| {
        let mut k: Vec<(String, bool)> = s
            .incidents()
            .into_iter()
            .map(|i| (i.key, i.resolved_at.is_some()))
            .collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&s),
        vec![
            ("site/phuong-ben-thanh/link".to_string(), false),
            ("site/phuong-sai-gon/agent-offline".to_string(), false),
        ]
    );
    let offline = s
        .incidents()
        .into_iter()
        .find(|i| i.key.ends_with("agent-offline"))
        .unwrap();
    assert_eq!(offline.title, "Mất tín hiệu agent tại Phường Sài Gòn");
    assert_eq!(offline.severity, lienthong::incidents::Severity::Warning);
    let opened = sim::secs_since_epoch(offline.started_at);
    assert!((165.0..170.0).contains(&opened), "opened at {opened}");
    // The Sài Gòn agent is back: its warning resolves; nothing new opens.
    seen("phuong-sai-gon", 300.0);
    s.run(&mut w, 300.0, 320.0, &links);
    assert_eq!(
        keys(&s),
        vec![
            ("site/phuong-ben-thanh/link".to_string(), false),
            ("site/phuong-sai-gon/agent-offline".to_string(), true),
        ]
    );
}

#[test]
fn bad_agent_sections_of_probes_toml_are_located() {
    // The config's service check names this variable; do not depend on another test setting it.
    std::env::set_var("DMS_TOKEN", "central");
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(central_config(
        dir.path(),
        "127.0.0.1:1".parse().unwrap(),
        "127.0.0.1:2".parse().unwrap(),
    ))
    .unwrap();
    let bad = format!(
        "[[agent]]\nsite = \"phuong-zz\"\ntoken_sha256 = \"{h}\"\n\n[[agent]]\nsite = \"phuong-a\"\ntoken_sha256 = \"abc\"\n\n[[agent]]\nsite = \"phuong-b\"\n\n{good}",
        h = sha256_hex("x")
    );
    let path = Path::new("probes.toml");
    let err = lienthong::config::Config::from_str(path, &bad).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("probes.toml:1:1: agent names unknown site `phuong-zz`"),
        "{text}"
    );
    assert!(
        text.contains("probes.toml:5:1: agent `phuong-a`: token_sha256 is not 64 hex digits"),
        "{text}"
    );
    assert!(
        text.contains(
            "probes.toml:9:1: agent `phuong-b` needs exactly one of token_file or token_sha256"
        ),
        "{text}"
    );
    // Twice the same site (the fixture already has phuong-a and phuong-b).
    let dup = format!(
        "[[agent]]\nsite = \"phuong-a\"\ntoken_sha256 = \"{}\"\n\n{good}",
        sha256_hex("y")
    );
    let text = lienthong::config::Config::from_str(path, &dup)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("duplicate [[agent]] for site `phuong-a`"),
        "{text}"
    );
    // A token file that cannot be read loads with a located warning.
    let missing = good.replace(
        &dir.path().join("a.token").display().to_string(),
        "/nonexistent/a.token",
    );
    let cfg = lienthong::config::Config::from_str(path, &missing).unwrap();
    let w = cfg.render_warnings().unwrap_or_default();
    assert!(
        w.contains("warning: agent `phuong-a`: token file /nonexistent/a.token cannot be read"),
        "{w}"
    );
    // The agent-run copies: one per agent and service check, never scheduled centrally.
    let cfg = lienthong::config::Config::from_str(path, &good).unwrap();
    let keys: Vec<String> = cfg
        .inventory
        .checks
        .iter()
        .filter(|c| c.id.is_agent())
        .map(|c| c.id.key())
        .collect();
    assert_eq!(
        keys,
        [
            "service/dms/web@site:phuong-a",
            "service/dms/web@site:phuong-b"
        ]
    );
}
