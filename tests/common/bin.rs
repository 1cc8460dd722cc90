//! The real `lienthong serve` binary as a child process, toggleable HTTP targets and a
//! recording webhook receiver, all on 127.0.0.1 (the reliability suites that kill, signal or
//! fake the clock of the whole process).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{any, post};
use axum::Router;
use serde_json::Value;

/// A config with `sites` sites, each with one HTTP endpoint check at `{targets}/s/{i}`
/// (interval 1 s, timeout 500 ms) and `extra` inserted before the link class.
pub fn config(db: &Path, targets: SocketAddr, sites: usize, extra: &str) -> String {
    let mut inv = String::new();
    for i in 0..sites {
        inv.push_str(&format!(
            "  {{ code = \"{n}\", slug = \"phuong-{i}\", name = \"Phường {i}\", kind = \"phuong\", former_province = \"tphcm\", former_district = \"Quận 1\", island = false, lat = 10.7, lon = 106.7, addr = {{ endpoint = \"http://{targets}/s/{i}\" }} }},\n",
            n = i + 1
        ));
    }
    format!(
        r#"
[incidents]
database = "{db}"
confirm_interval = "500ms"

{extra}

[link_class.mainland]
interval = "1s"
timeout = "500ms"
packets = 2
pacing = "50ms"
max_loss = 0.5
degraded_loss = 0.1
degraded_rtt = "100ms"
degraded_jitter = "50ms"
degraded_latency = "400ms"

[[template]]
name = "endpoint"
role = "endpoint"
title = "Trung tâm phục vụ hành chính công"
probe.http = {{ url = "{{addr.endpoint}}" }}

[inventory]
sites = [
{inv}]
"#,
        db = db.display()
    )
}

/// See [`super::free_port`].
pub fn free_port() -> u16 {
    super::free_port()
}

/// Targets `/s/{i}`: 200 while site `i` is up, 503 while it is down.
#[derive(Clone)]
pub struct Targets {
    pub up: Arc<Vec<AtomicBool>>,
    pub addr: SocketAddr,
}

async fn target(State(t): State<Arc<Vec<AtomicBool>>>, UrlPath(i): UrlPath<usize>) -> StatusCode {
    match t.get(i) {
        Some(up) if up.load(Ordering::Relaxed) => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl Targets {
    pub async fn start(n: usize) -> Targets {
        let up: Arc<Vec<AtomicBool>> = Arc::new((0..n).map(|_| AtomicBool::new(true)).collect());
        let app = Router::new()
            .route("/s/{i}", any(target))
            .with_state(up.clone());
        let addr = super::serve(app).await;
        Targets { up, addr }
    }

    pub fn set(&self, i: usize, up: bool) {
        self.up[i].store(up, Ordering::Relaxed);
    }

    pub fn all(&self, up: bool) {
        for u in self.up.iter() {
            u.store(up, Ordering::Relaxed);
        }
    }
}

/// One POST the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub at: Instant,
    pub idempotency_key: Option<String>,
    /// Every `Authorization` header, joined by ", ".
    pub authorization: Option<String>,
    pub body: Value,
    /// Answered 200 (false: 500, the sender must retry).
    pub accepted: bool,
}

/// A one-shot action of the receiver.
pub type Hook = Box<dyn FnOnce() + Send>;

/// Records every POST (headers and body) and answers 200, or 500 while `failing` is set.
#[derive(Clone, Default)]
pub struct Receiver {
    pub seen: Arc<Mutex<Vec<Delivery>>>,
    pub failing: Arc<AtomicBool>,
    /// Run once, on the first request, before it is answered (e.g. stop the database).
    pub before_first_answer: Arc<Mutex<Option<Hook>>>,
}

async fn record(
    State(r): State<Receiver>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    r.seen.lock().unwrap().push(Delivery {
        at: Instant::now(),
        idempotency_key: h("idempotency-key"),
        authorization: {
            let all: Vec<&str> = headers
                .get_all("authorization")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            (!all.is_empty()).then(|| all.join(", "))
        },
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        accepted: !r.failing.load(Ordering::Relaxed),
    });
    let hook = r.before_first_answer.lock().unwrap().take();
    if let Some(hook) = hook {
        let _ = tokio::task::spawn_blocking(hook).await;
    }
    if r.failing.load(Ordering::Relaxed) {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::OK
}

impl Receiver {
    /// Returns the receiver and its address.
    pub async fn start() -> (Receiver, SocketAddr) {
        let r = Receiver::default();
        let app = Router::new().fallback(post(record)).with_state(r.clone());
        let addr = super::serve(app).await;
        (r, addr)
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Every outbox key (`outbox`) arrived and nothing else did; a key that arrived twice had a
    /// kill (`kills`: a SIGKILL, or the database stopping under a delivery) between its two
    /// arrivals. Returns how many such duplicates there were.
    pub fn assert_each_key_once(&self, outbox: &[String], kills: &[Instant]) -> usize {
        let by_key = self.by_key();
        let lost: Vec<&String> = outbox.iter().filter(|k| !by_key.contains_key(*k)).collect();
        assert!(lost.is_empty(), "outbox rows never delivered: {lost:?}");
        let unknown: Vec<&String> = by_key.keys().filter(|k| !outbox.contains(k)).collect();
        assert!(
            unknown.is_empty(),
            "deliveries with no outbox row: {unknown:?}"
        );
        let all = self.all();
        let mut duplicates = 0;
        for key in by_key.iter().filter(|(_, n)| **n > 1).map(|(k, _)| k) {
            let times: Vec<Instant> = all
                .iter()
                .filter(|d| d.idempotency_key.as_deref() == Some(key))
                .map(|d| d.at)
                .collect();
            // A request already written when the process died is recorded here just after
            // the kill: a kill shortly before the first arrival counts too.
            const IN_FLIGHT: Duration = Duration::from_secs(1);
            for w in times.windows(2) {
                duplicates += 1;
                assert!(
                    kills.iter().any(|k| *k + IN_FLIGHT >= w[0] && *k <= w[1]),
                    "{key} delivered twice with no kill in between (split brain?)"
                );
            }
        }
        duplicates
    }

    pub fn all(&self) -> Vec<Delivery> {
        self.seen.lock().unwrap().clone()
    }

    /// Deliveries per `Idempotency-Key`.
    pub fn by_key(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for d in self.seen.lock().unwrap().iter() {
            *m.entry(d.idempotency_key.clone().unwrap_or_default())
                .or_insert(0) += 1;
        }
        m
    }
}

/// `lienthong serve` as a child; stderr (the log) is appended to `log`.
pub struct Serve {
    pub child: Child,
    pub base: String,
    pub log: PathBuf,
}

pub struct ServeOpts<'a> {
    pub config: &'a Path,
    pub dir: &'a Path,
    pub port: u16,
    pub log: &'a Path,
    pub env: &'a [(&'a str, &'a str)],
    /// A program (and its arguments) to run the binary under, e.g. `faketime`.
    pub wrapper: &'a [&'a str],
}

impl Serve {
    pub fn spawn(o: &ServeOpts) -> Serve {
        let bin = env!("CARGO_BIN_EXE_lienthong");
        let mut cmd = match o.wrapper.split_first() {
            Some((prog, args)) => {
                let mut c = Command::new(prog);
                c.args(args).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(o.log)
            .unwrap();
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{}", o.port)])
            .arg("--config")
            .arg(o.config)
            .current_dir(o.dir)
            .env("LIENTHONG_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in o.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start lienthong serve");
        Serve {
            child,
            base: format!("http://127.0.0.1:{}", o.port),
            log: o.log.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .arg(sig)
            .arg(self.pid().to_string())
            .status();
    }

    /// SIGKILL and reap.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait up to `limit` for the exit.
    pub fn stop(mut self, limit: Duration) -> bool {
        self.signal("-TERM");
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }

    /// Blocking GET with a short timeout: (status, body, elapsed); status 0 = no answer.
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&format!("{}{path}", self.base), Duration::from_secs(5))
    }

    /// Polls `path` until `f` accepts the answer or `limit` passes.
    pub fn wait_for(
        &self,
        path: &str,
        limit: Duration,
        f: impl Fn(u16, &str) -> bool,
    ) -> (u16, String) {
        let until = Instant::now() + limit;
        loop {
            let (code, body) = self.get(path);
            if f(code, &body) || Instant::now() > until {
                return (code, body);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Resident set size (kB) from /proc.
    pub fn rss_kb(&self) -> u64 {
        rss_kb(self.pid())
    }
}

pub fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A minimal blocking HTTP/1.1 GET (no client runtime needed in sync tests).
pub fn http_get(url: &str, timeout: Duration) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let Ok(addr) = host.parse::<SocketAddr>() else {
        return (0, format!("bad host {host}"));
    };
    assert!(addr.ip().is_loopback(), "tests talk to loopback only");
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, timeout) else {
        return (0, "connect failed".into());
    };
    let _ = s.set_read_timeout(Some(timeout));
    use std::io::Write;
    if s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .is_err()
    {
        return (0, "write failed".into());
    }
    let mut r = BufReader::new(s);
    let mut status = String::new();
    if r.read_line(&mut status).is_err() {
        return (0, "no answer".into());
    }
    let code = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut chunked = false;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        let l = line.to_ascii_lowercase();
        if l.starts_with("transfer-encoding:") && l.contains("chunked") {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            if r.read_line(&mut size).unwrap_or(0) == 0 {
                break;
            }
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            let mut chunk = vec![0; n + 2];
            if r.read_exact(&mut chunk).is_err() {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        let _ = r.read_to_end(&mut body);
    }
    (code, String::from_utf8_lossy(&body).into_owned())
}

/// `CI=true`: a missing tool fails the test; elsewhere it is skipped with a message.
pub fn skip_or_fail(why: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("cannot run under CI: {why}");
    }
    eprintln!("skipped: {why}");
}
