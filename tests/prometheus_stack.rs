//! The Grafana dashboards, Prometheus rules and Alertmanager config of `dashboards/` and `deploy/`
//! against the real programs (Debian `prometheus` and `prometheus-alertmanager`), no mocks:
//!
//! - static: dashboard lint (unique panel ids, `${datasource}` everywhere, no hard-coded
//!   datasource uid, every `$variable` defined), `promtool check config|rules`, `promtool test
//!   rules`, `amtool check-config`, runbook links resolve to README headings, the compose and
//!   provisioning files reference files that exist;
//! - live: `lienthong demo` with one ward's link cut early (and a shared service answering 503),
//!   a real Prometheus scraping it every 2 s with a copy of the rules (short `for:` and group
//!   intervals), a real Alertmanager with a copy of alertmanager.yml whose webhooks point to a
//!   sink in this test; `promtool check metrics` on the live /metrics; every rule (health ok,
//!   recording rules return data, alert expressions evaluate) and every dashboard query
//!   (variables substituted, once with real values and once with "All") through
//!   `/api/v1/query`; SiteDown firing in Prometheus; lienthong's incident for the ward firing
//!   LienthongIncident (the paging rule on `lienthong_incident_open`) within 35 s of opening,
//!   one alert in Alertmanager although both paths are on, on the on-call route, SiteDown (a
//!   ticket) inhibited by it, and the on-call webhook reached.
//!
//! Skips (with a message) when prometheus / promtool / alertmanager are not installed:
//! `apt-get install -y --no-install-recommends prometheus prometheus-alertmanager`.
//! Everything listens on 127.0.0.1; every process is stopped by PID, also on panic.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::free_port;
use serde_json::Value;

const WARD: &str = "phuong-ben-thanh";
const SERVICE: &str = "thu-tuc-hanh-chinh";

const SCENARIO: &str = r#"
cycle = "10m"
udp_echo_port = 17207
[[fault]]
at = "10s"
duration = "9m"
kind = "link_down"
site = "phuong-ben-thanh"
[[fault]]
at = "10s"
duration = "9m"
kind = "http_status"
status = 503
service = "thu-tuc-hanh-chinh"
"#;

/// Teams named as the rules derive them (site:lienthong_site_info:team), so the incident
/// metrics carry the same `team` values as the alerts.
const TEAMS: &str = r#"
[[team]]
name = "to-tphcm"
title = "Tổ chuyên trách khu vực TP.HCM cũ"
former_provinces = ["tphcm"]

[[team]]
name = "to-binh-duong"
title = "Tổ chuyên trách khu vực Bình Dương cũ"
former_provinces = ["binh-duong"]

[[team]]
name = "to-ba-ria-vung-tau"
title = "Tổ chuyên trách khu vực Bà Rịa – Vũng Tàu cũ"
former_provinces = ["ba-ria-vung-tau"]

[[team]]
name = "to-phan-mem-dung-chung"
title = "Tổ phần mềm dùng chung"
services = ["*"]
"#;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Started processes, stopped by PID (SIGTERM, then SIGKILL) in reverse order on drop.
struct Procs {
    children: Vec<(&'static str, Child, PathBuf)>,
}

impl Procs {
    fn spawn(&mut self, name: &'static str, cmd: &mut Command, log: PathBuf) -> u32 {
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let pid = child.id();
        eprintln!("started {name} (pid {pid}), log {}", log.display());
        self.children.push((name, child, log));
        pid
    }

    /// Panics with the log tail when a process has exited, or with the first panic message when
    /// one of its threads panicked (lienthong keeps running when a probe task panics).
    fn assert_running(&mut self) {
        for (name, child, log) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{name} exited ({status}):\n{}", tail(log, 40));
            }
            let text = std::fs::read_to_string(&*log).unwrap_or_default();
            if let Some(at) = text.find("panicked at") {
                let excerpt: String = text[at..].lines().take(3).collect::<Vec<_>>().join("\n");
                panic!("{name} panicked ({}):\n{excerpt}", log.display());
            }
        }
    }

    fn logs(&self) -> String {
        self.children
            .iter()
            .map(|(n, _, l)| format!("--- {n} ({})\n{}", l.display(), tail(l, 15)))
            .collect()
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (name, child, _) in self.children.iter_mut().rev() {
            if !matches!(child.try_wait(), Ok(None)) {
                continue;
            }
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if !matches!(child.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if matches!(child.try_wait(), Ok(None)) {
                eprintln!("{name} (pid {pid}) ignored SIGTERM: killing");
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}",
        out.status
    );
    text
}

fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no *.{ext} in {dir}");
    v
}

// ---------------------------------------------------------------------------------------------
// Dashboards

struct Dashboard {
    file: String,
    json: Value,
}

fn dashboards() -> Vec<Dashboard> {
    files("dashboards", "json")
        .into_iter()
        .map(|p| Dashboard {
            file: p.file_name().unwrap().to_string_lossy().into_owned(),
            json: serde_json::from_str(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display())),
        })
        .collect()
}

/// Every panel, rows' nested panels included.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().into_iter().flatten() {
        out.push(p);
        for q in p["panels"].as_array().into_iter().flatten() {
            out.push(q);
        }
    }
    out
}

fn variables(d: &Value) -> Vec<&Value> {
    d["templating"]["list"]
        .as_array()
        .map(|v| v.iter().collect())
        .unwrap_or_default()
}

/// `$name`, `${name}` and `${name:format}` references in a query.
fn var_refs(expr: &str) -> BTreeSet<String> {
    let re =
        regex::Regex::new(r"\$\{([A-Za-z0-9_]+)(?::[^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)").unwrap();
    re.captures_iter(expr)
        .map(|c| c.get(1).or(c.get(2)).unwrap().as_str().to_string())
        .collect()
}

fn substitute(expr: &str, values: &BTreeMap<String, String>) -> String {
    let re =
        regex::Regex::new(r"\$\{([A-Za-z0-9_]+)(?::[^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)").unwrap();
    re.replace_all(expr, |c: &regex::Captures| {
        let name = c.get(1).or(c.get(2)).unwrap().as_str();
        values
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("no value for ${name} in {expr}"))
    })
    .into_owned()
}

const BUILTINS: [&str; 5] = [
    "__rate_interval",
    "__interval",
    "__range",
    "__range_s",
    "__interval_ms",
];

fn lint_dashboards(ds: &[Dashboard]) {
    let mut uids = BTreeSet::new();
    let want_ds = serde_json::json!({"type": "prometheus", "uid": "${datasource}"});
    for d in ds {
        let j = &d.json;
        let f = &d.file;
        assert!(
            uids.insert(j["uid"].as_str().unwrap_or("").to_string()),
            "{f}: duplicate uid"
        );
        let title = j["title"].as_str().unwrap_or("");
        assert!(
            !title.is_ascii(),
            "{f}: the title should be Vietnamese: {title}"
        );
        assert!(
            j["schemaVersion"].as_i64().unwrap_or(0) >= 36,
            "{f}: old schema"
        );
        assert!(j.get("__inputs").is_none(), "{f}: exported with __inputs");
        let vars = variables(j);
        let names: BTreeSet<&str> = vars.iter().filter_map(|v| v["name"].as_str()).collect();
        assert!(
            vars.iter().any(|v| v["name"] == "datasource"
                && v["type"] == "datasource"
                && v["query"] == "prometheus"),
            "{f}: no datasource variable"
        );
        // Every datasource reference anywhere is the variable.
        fn walk(v: &Value, f: &str, want: &Value) {
            match v {
                Value::Object(m) => {
                    if let Some(ds) = m.get("datasource") {
                        assert_eq!(ds, want, "{f}: hard-coded datasource");
                    }
                    m.values().for_each(|x| walk(x, f, want));
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, f, want)),
                _ => {}
            }
        }
        walk(j, f, &want_ds);
        let mut ids = BTreeSet::new();
        for p in panels(j) {
            let id = p["id"]
                .as_i64()
                .unwrap_or_else(|| panic!("{f}: panel without id"));
            assert!(ids.insert(id), "{f}: duplicate panel id {id}");
            assert!(p["gridPos"].is_object(), "{f}: panel {id} has no gridPos");
            if p["type"] == "row" {
                continue;
            }
            assert!(
                !p["title"].as_str().unwrap_or("").is_empty(),
                "{f}: panel {id} untitled"
            );
            assert_eq!(p["datasource"], want_ds, "{f}: panel {id} datasource");
            let targets = p["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{f}: panel {id} has no query");
            for t in targets {
                assert_eq!(
                    t["datasource"], want_ds,
                    "{f}: panel {id} target datasource"
                );
                let expr = t["expr"].as_str().unwrap_or("");
                assert!(!expr.trim().is_empty(), "{f}: panel {id} empty query");
                for r in var_refs(expr) {
                    assert!(
                        names.contains(r.as_str()) || BUILTINS.contains(&r.as_str()),
                        "{f}: panel {id} uses undefined ${r}"
                    );
                }
            }
            if let Some(r) = p["repeat"].as_str() {
                assert!(
                    names.contains(r),
                    "{f}: panel {id} repeats over undefined ${r}"
                );
            }
        }
    }
    // The site dashboards filter by former province, team and site.
    for d in ds.iter().filter(|d| {
        [
            "lienthong-tong-quan",
            "lienthong-don-vi",
            "lienthong-duong-truyen",
        ]
        .contains(&d.json["uid"].as_str().unwrap_or(""))
    }) {
        let names: BTreeSet<&str> = variables(&d.json)
            .iter()
            .filter_map(|v| v["name"].as_str())
            .collect();
        for v in ["former_province", "team"] {
            assert!(names.contains(v), "{}: no ${v} variable", d.file);
        }
    }
    let site_vars = ds
        .iter()
        .filter(|d| variables(&d.json).iter().any(|v| v["name"] == "site"))
        .count();
    assert!(
        site_vars >= 2,
        "the site and link dashboards need a $site variable"
    );
}

/// The shared-software dashboard has the transaction row with the step series (their queries
/// then must return data from the demo's transaction check, like every panel's).
fn check_transaction_row(ds: &[Dashboard]) {
    let d = ds
        .iter()
        .find(|d| d.file.ends_with("lienthong-phan-mem-dung-chung.json"))
        .expect("shared-software dashboard");
    let all = panels(&d.json);
    assert!(
        all.iter()
            .any(|p| p["type"] == "row" && p["title"] == "Giao dịch phần mềm dùng chung"),
        "{}: no «Giao dịch phần mềm dùng chung» row",
        d.file
    );
    for metric in [
        "lienthong_transaction_step_duration_seconds",
        "lienthong_transaction_step_success",
    ] {
        let used = all.iter().any(|p| {
            p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|t| t["expr"].as_str().is_some_and(|e| e.contains(metric)))
        });
        assert!(used, "{}: no panel shows {metric}", d.file);
    }
}

/// Every query of the dashboards (panel targets, variable queries, annotations), with the
/// values to substitute. `data`: whether the query must return data.
fn dashboard_queries(
    d: &Dashboard,
    real: &BTreeMap<String, String>,
    all: bool,
) -> Vec<(String, String, bool)> {
    let mut values = BTreeMap::new();
    for (k, v) in [
        ("__rate_interval", "30s"),
        ("__interval", "10s"),
        ("__interval_ms", "10000"),
        ("__range", "5m"),
        ("__range_s", "300"),
    ] {
        values.insert(k.to_string(), v.to_string());
    }
    for v in variables(&d.json) {
        let name = v["name"].as_str().unwrap().to_string();
        if name == "datasource" {
            continue;
        }
        let include_all = v["includeAll"].as_bool().unwrap_or(false);
        let value = if all && include_all {
            v["allValue"].as_str().unwrap_or(".*").to_string()
        } else {
            real.get(&name)
                .unwrap_or_else(|| panic!("{}: no test value for ${name}", d.file))
                .clone()
        };
        values.insert(name, value);
    }
    let mut out = Vec::new();
    for v in variables(&d.json) {
        if v["type"] != "query" {
            continue;
        }
        let q = v["query"]["query"]
            .as_str()
            .or(v["query"].as_str())
            .unwrap_or("")
            .to_string();
        // label_values(expr, label) → expr; query_result(expr) → expr.
        let inner = if let Some(rest) = q.strip_prefix("label_values(") {
            let rest = rest.strip_suffix(')').unwrap();
            rest[..rest.rfind(',').unwrap()].trim().to_string()
        } else if let Some(rest) = q.strip_prefix("query_result(") {
            rest.strip_suffix(')').unwrap().to_string()
        } else {
            panic!("{}: unsupported variable query {q}", d.file)
        };
        out.push((
            format!("{} variable ${}", d.file, v["name"].as_str().unwrap()),
            substitute(&inner, &values),
            true,
        ));
    }
    for a in d.json["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(e) = a["expr"].as_str() {
            out.push((
                format!("{} annotation {}", d.file, a["name"]),
                substitute(e, &values),
                false,
            ));
        }
    }
    for p in panels(&d.json) {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                format!(
                    "{} panel {} «{}» {}",
                    d.file,
                    p["id"],
                    p["title"].as_str().unwrap_or(""),
                    t["refId"]
                ),
                substitute(t["expr"].as_str().unwrap(), &values),
                true,
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Static checks of deploy/

/// Every static `runbook_url` of the rules names a page of docs/runbooks/ (the templated one of
/// LienthongIncident comes from lienthong itself and is checked live).
fn check_runbooks() {
    let mut missing = BTreeSet::new();
    let mut seen = 0;
    for f in files("deploy/prometheus/rules", "yml") {
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            if let Some(url) = line.trim().strip_prefix("runbook_url:") {
                seen += 1;
                let url = url.trim();
                if url.contains("{{") {
                    continue;
                }
                let page = url
                    .strip_prefix("https://git.example.invalid/lienthong/docs/runbooks/")
                    .unwrap_or_else(|| panic!("{url}: not a docs/runbooks page"));
                if !Path::new("docs/runbooks").join(page).is_file() {
                    missing.insert(page.to_string());
                }
            }
        }
    }
    assert!(seen > 0, "no runbook_url in the rules");
    assert!(
        missing.is_empty(),
        "runbook pages missing from docs/runbooks: {missing:?}"
    );
}

/// The host paths the compose file mounts or builds from exist (there is no Docker engine here
/// to run it: `docker compose config` would need the compose plugin).
fn check_compose() {
    let dir = repo().join("deploy");
    let text = std::fs::read_to_string(dir.join("docker-compose.yml")).unwrap();
    let mut n = 0;
    for line in text.lines() {
        let l = line.trim().trim_start_matches("- ").trim();
        let path = if let Some(rest) = l.strip_prefix("context:") {
            rest.trim()
        } else if l.starts_with("./") || l.starts_with("../") {
            l.split(':').next().unwrap()
        } else if let Some(rest) = l.strip_prefix("dockerfile:") {
            // relative to the context (..)
            n += 1;
            assert!(
                repo().join(rest.trim()).is_file(),
                "compose: {rest} missing"
            );
            continue;
        } else {
            continue;
        };
        n += 1;
        assert!(dir.join(path).exists(), "compose: {path} does not exist");
    }
    assert!(
        n >= 8,
        "compose: expected the build context and the mounted files ({n})"
    );
    let prov =
        std::fs::read_to_string(repo().join("dashboards/provisioning/dashboards.yaml")).unwrap();
    assert!(prov.contains("/var/lib/grafana/dashboards/lienthong"));
    assert!(text.contains("../dashboards:/var/lib/grafana/dashboards/lienthong"));
}

// ---------------------------------------------------------------------------------------------
// HTTP

async fn get_json(client: &reqwest::Client, url: &str) -> Result<Value, String> {
    let r = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = r.status();
    let body = r.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{url}: {status}: {body}"));
    }
    serde_json::from_str(&body).map_err(|e| format!("{url}: {e}: {body}"))
}

/// An instant query; Err on any API error (parse error, bad vector matching …).
async fn query(client: &reqwest::Client, prom: &str, q: &str) -> Result<Vec<Value>, String> {
    let url = url::Url::parse_with_params(&format!("{prom}/api/v1/query"), &[("query", q)])
        .map_err(|e| e.to_string())?;
    let r = client.get(url).send().await.map_err(|e| e.to_string())?;
    let body = r.text().await.map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    if v["status"] != "success" {
        return Err(format!("{}: {}", v["errorType"], v["error"]));
    }
    match &v["data"]["result"] {
        Value::Array(a) => Ok(a.clone()),
        // scalar / string results
        other => Ok(vec![other.clone()]),
    }
}

async fn wait_for<F, Fut, T>(what: &str, timeout: Duration, procs: &mut Procs, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            eprintln!("  {what}: after {:.1} s", start.elapsed().as_secs_f64());
            return v;
        }
        procs.assert_running();
        if start.elapsed() > timeout {
            panic!(
                "timed out after {timeout:?} waiting for {what}\n{}",
                procs.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A webhook receiver: records "METHOD PATH\nBODY" of every request, answers 200.
async fn webhook_sink() -> (u16, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let sink = sink.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let n = match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            let first = text.lines().next().unwrap_or("").to_string();
                            sink.lock()
                                .unwrap()
                                .push(format!("{first}\n{}", &text[end + 4..]));
                            let _ = s
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                                .await;
                            break;
                        }
                    }
                }
            });
        }
    });
    (port, got)
}

// ---------------------------------------------------------------------------------------------

/// Test copies of the rules: `for:` 4 s, every group evaluated every 2 s.
fn write_test_rules(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for f in files("deploy/prometheus/rules", "yml") {
        let text: String = std::fs::read_to_string(&f)
            .unwrap()
            .lines()
            .map(|l| {
                let indent = &l[..l.len() - l.trim_start().len()];
                if l.trim_start().starts_with("for:") {
                    format!("{indent}for: 4s\n")
                } else if l.trim_start().starts_with("interval:") {
                    format!("{indent}interval: 2s\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        std::fs::write(dir.join(f.file_name().unwrap()), text).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_and_rules_work_against_real_prometheus_and_alertmanager() {
    let t0 = Instant::now();
    let _ = rustls::crypto::ring::default_provider().install_default();

    // Static checks that need no program.
    let ds = dashboards();
    lint_dashboards(&ds);
    check_transaction_row(&ds);
    check_compose();
    check_runbooks();
    eprintln!(
        "dashboard lint, compose files, runbook links: ok ({} dashboards)",
        ds.len()
    );

    let (Some(prometheus), Some(promtool), Some(alertmanager)) = (
        which(&["prometheus"]),
        which(&["promtool"]),
        which(&["alertmanager", "prometheus-alertmanager"]),
    ) else {
        eprintln!(
            "SKIPPED prometheus_stack: prometheus, promtool or alertmanager not installed \
             (apt-get install -y --no-install-recommends prometheus prometheus-alertmanager)"
        );
        return;
    };

    // promtool on the shipped files.
    let rules = files("deploy/prometheus/rules", "yml");
    run(
        Command::new(&promtool)
            .arg("check")
            .arg("rules")
            .args(&rules),
        "promtool check rules",
    );
    for cfg in [
        "deploy/prometheus/prometheus.yml",
        "deploy/multi-vantage/prometheus.yml",
    ] {
        run(
            Command::new(&promtool)
                .args(["check", "config"])
                .arg(repo().join(cfg)),
            &format!("promtool check config {cfg}"),
        );
    }
    let out = run(
        Command::new(&promtool)
            .args(["test", "rules"])
            .args(files("deploy/prometheus/tests", "yml")),
        "promtool test rules",
    );
    assert!(out.contains("SUCCESS"), "{out}");
    if let Some(amtool) = which(&["amtool"]) {
        run(
            Command::new(amtool)
                .arg("check-config")
                .arg(repo().join("deploy/alertmanager/alertmanager.yml")),
            "amtool check-config",
        );
    }
    eprintln!(
        "promtool check/test, amtool: ok ({:.1} s)",
        t0.elapsed().as_secs_f64()
    );

    // The stack.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (lt_port, prom_port, am_port) = (free_port(), free_port(), free_port());
    let (sink_port, sink) = webhook_sink().await;
    let lt = format!("http://127.0.0.1:{lt_port}");
    let prom = format!("http://127.0.0.1:{prom_port}");
    let am = format!("http://127.0.0.1:{am_port}");
    let mut procs = Procs {
        children: Vec::new(),
    };

    // Alertmanager: the shipped config, webhooks to the sink, short waits.
    let am_cfg: String =
        std::fs::read_to_string(repo().join("deploy/alertmanager/alertmanager.yml"))
            .unwrap()
            .replace("127.0.0.1:9199", &format!("127.0.0.1:{sink_port}"))
            .lines()
            .map(|l| {
                let indent = &l[..l.len() - l.trim_start().len()];
                match l.trim_start().split(':').next() {
                    Some("group_wait") => format!("{indent}group_wait: 1s\n"),
                    Some("group_interval") => format!("{indent}group_interval: 2s\n"),
                    _ => format!("{l}\n"),
                }
            })
            .collect();
    std::fs::write(dir.join("alertmanager.yml"), am_cfg).unwrap();
    std::fs::create_dir_all(dir.join("am-data")).unwrap();
    procs.spawn(
        "alertmanager",
        Command::new(&alertmanager)
            .arg(format!(
                "--config.file={}",
                dir.join("alertmanager.yml").display()
            ))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address="),
        dir.join("alertmanager.log"),
    );

    // lienthong demo: the shipped probes.toml plus teams and a notify target to Alertmanager.
    let lt_dir = dir.join("lienthong");
    std::fs::create_dir_all(&lt_dir).unwrap();
    let mut probes = std::fs::read_to_string(repo().join("probes.toml")).unwrap();
    if !probes.contains("[[team]]") {
        probes.push_str(TEAMS);
    }
    probes.push_str(&format!(
        "\n[[notify]]\nname = \"kiem-thu-alertmanager\"\nkind = \"alertmanager\"\nurl = \"{am}\"\n"
    ));
    std::fs::write(lt_dir.join("probes.toml"), probes).unwrap();
    // The transaction's secret file, relative to the config.
    std::fs::create_dir_all(lt_dir.join("deploy/demo")).unwrap();
    std::fs::copy(
        repo().join("deploy/demo/motcua.pass"),
        lt_dir.join("deploy/demo/motcua.pass"),
    )
    .unwrap();
    std::fs::write(lt_dir.join("scenario.toml"), SCENARIO).unwrap();
    let lt_started = Instant::now();
    procs.spawn(
        "lienthong",
        Command::new(env!("CARGO_BIN_EXE_lienthong"))
            .args(["demo", "--listen", &format!("127.0.0.1:{lt_port}")])
            .args(["--scenario", "scenario.toml", "--config", "probes.toml"])
            .current_dir(&lt_dir)
            .env("LIENTHONG_LOG", "warn"),
        dir.join("lienthong.log"),
    );

    // Prometheus: every 2 s, test copies of the rules.
    write_test_rules(&dir.join("rules"));
    let prom_cfg = format!(
        r#"global:
  scrape_interval: 2s
  scrape_timeout: 2s
  evaluation_interval: 2s
rule_files:
  - {rules}/*.yml
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:{am_port}"]
scrape_configs:
  - job_name: lienthong
    static_configs:
      - targets: ["127.0.0.1:{lt_port}"]
        labels:
          vantage: kiem-thu
"#,
        rules = dir.join("rules").display()
    );
    std::fs::write(dir.join("prometheus.yml"), prom_cfg).unwrap();
    run(
        Command::new(&promtool)
            .args(["check", "config"])
            .arg(dir.join("prometheus.yml")),
        "promtool check config (test copy)",
    );
    procs.spawn(
        "prometheus",
        Command::new(&prometheus)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .arg("--log.level=warn"),
        dir.join("prometheus.log"),
    );

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let c = &client;
    for (name, url) in [
        ("lienthong /metrics", format!("{lt}/metrics")),
        ("prometheus ready", format!("{prom}/-/ready")),
        ("alertmanager ready", format!("{am}/-/ready")),
    ] {
        wait_for(name, Duration::from_secs(60), &mut procs, || {
            let url = url.clone();
            async move {
                let r = c.get(&url).send().await.ok()?;
                r.status().is_success().then_some(())
            }
        })
        .await;
    }

    // promtool check metrics on the live exposition.
    let metrics = c
        .get(format!("{lt}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut lint = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    lint.stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let lint = lint.wait_with_output().unwrap();
    assert!(
        lint.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
    eprintln!(
        "promtool check metrics on live /metrics: ok ({} lines)",
        metrics.lines().count()
    );

    // SiteDown firing in Prometheus.
    let prom_alerts = format!("{prom}/api/v1/alerts");
    wait_for(
        "SiteDown firing in Prometheus",
        Duration::from_secs(150),
        &mut procs,
        || {
            let url = prom_alerts.clone();
            async move {
                let v = get_json(c, &url).await.ok()?;
                v["data"]["alerts"].as_array()?.iter().find(|a| {
                    a["labels"]["alertname"] == "SiteDown"
                        && a["labels"]["site"] == WARD
                        && a["state"] == "firing"
                })?;
                Some(())
            }
        },
    )
    .await;
    eprintln!(
        "  (the outage starts 10 s after lienthong started; SiteDown fired {:.1} s after start)",
        lt_started.elapsed().as_secs_f64()
    );
    // lienthong opens its incident for the ward (after its own grace period) and delivers it to
    // Alertmanager: the incident and notification panels need both.
    wait_for(
        "incident open and delivered, scraped",
        Duration::from_secs(90),
        &mut procs,
        || async {
            let open = query(
                c,
                &prom,
                r#"lienthong_incidents_open{scope="site", team="to-tphcm"}"#,
            )
            .await
            .ok()?;
            let sent = query(
                c,
                &prom,
                "lienthong_notification_last_success_timestamp_seconds",
            )
            .await
            .ok()?;
            (!open.is_empty() && !sent.is_empty()).then_some(())
        },
    )
    .await;
    // Every group evaluated at least a few times: the 30-day ratios are derived three levels deep.
    wait_for(
        "availability ratios recorded",
        Duration::from_secs(60),
        &mut procs,
        || async {
            let r = query(c, &prom, "site:lienthong_availability:ratio_30d")
                .await
                .ok()?;
            let s = query(c, &prom, "service:lienthong_availability:ratio_30d")
                .await
                .ok()?;
            (!r.is_empty() && !s.is_empty()).then_some(())
        },
    )
    .await;

    // Every rule: healthy, recording rules return data, alert expressions evaluate.
    let rules_api = get_json(c, &format!("{prom}/api/v1/rules")).await.unwrap();
    let mut failures = Vec::new();
    let (mut n_rec, mut n_alert) = (0, 0);
    for g in rules_api["data"]["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            let name = r["name"].as_str().unwrap_or("");
            let q = r["query"].as_str().unwrap_or("");
            if r["health"] != "ok" {
                failures.push(format!(
                    "rule {name}: health {} {}",
                    r["health"], r["lastError"]
                ));
            }
            match query(c, &prom, q).await {
                Err(e) => failures.push(format!("rule {name}: {e}\n    {q}")),
                Ok(res) if r["type"] == "recording" && res.is_empty() => {
                    failures.push(format!("recording rule {name}: no data\n    {q}"))
                }
                Ok(_) => {}
            }
            if r["type"] == "recording" {
                n_rec += 1;
            } else {
                n_alert += 1;
            }
        }
    }
    assert!(
        n_rec >= 20 && n_alert >= 10,
        "rules loaded: {n_rec} recording, {n_alert} alerts"
    );
    eprintln!("rules through /api/v1/query: {n_rec} recording, {n_alert} alerting");

    // Every dashboard query, with real values and with "All".
    let real: BTreeMap<String, String> = [
        ("former_province", "tphcm".to_string()),
        ("team", "to-tphcm".to_string()),
        ("site", WARD.to_string()),
        ("service", SERVICE.to_string()),
        ("instance", format!("127.0.0.1:{lt_port}")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut n_queries = 0;
    for all in [false, true] {
        for d in &ds {
            for (what, q, need_data) in dashboard_queries(d, &real, all) {
                n_queries += 1;
                let pass = if all { "All" } else { "real values" };
                match query(c, &prom, &q).await {
                    Err(e) => failures.push(format!("{what} [{pass}]: {e}\n    {q}")),
                    Ok(res) if need_data && res.is_empty() => {
                        failures.push(format!("{what} [{pass}]: no data\n    {q}"))
                    }
                    Ok(_) => {}
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} queries failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("dashboard queries through /api/v1/query: {n_queries} ok");

    // Paging: lienthong's incident for the ward fires LienthongIncident in Prometheus (the rule
    // on lienthong_incident_open, no `for:`) within 35 s of lienthong opening it.
    let incidents = get_json(c, &format!("{lt}/api/v1/incidents?state=open"))
        .await
        .unwrap();
    let ward_incident = incidents["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == format!("site/{WARD}/link"))
        .cloned()
        .expect("lienthong's incident for the ward");
    let incident_id = ward_incident["id"].as_i64().unwrap().to_string();
    let opened_at = humantime::parse_rfc3339(ward_incident["started_at"].as_str().unwrap())
        .unwrap_or_else(|_| std::time::SystemTime::now());
    let firing = wait_for(
        "LienthongIncident firing in Prometheus",
        Duration::from_secs(60),
        &mut procs,
        || {
            let url = prom_alerts.clone();
            let id = incident_id.clone();
            async move {
                let v = get_json(c, &url).await.ok()?;
                v["data"]["alerts"]
                    .as_array()?
                    .iter()
                    .find(|a| {
                        a["labels"]["alertname"] == "LienthongIncident"
                            && a["labels"]["incident_id"] == id.as_str()
                            && a["state"] == "firing"
                    })
                    .cloned()
            }
        },
    )
    .await;
    let active_at = humantime::parse_rfc3339_weak(
        firing["activeAt"]
            .as_str()
            .unwrap()
            .split('.')
            .next()
            .unwrap(),
    )
    .unwrap();
    let lag = active_at
        .duration_since(opened_at)
        .unwrap_or_default()
        .as_secs_f64();
    eprintln!("  LienthongIncident active in Prometheus {lag:.1} s after lienthong opened incident {incident_id}");
    assert!(
        lag <= 35.0,
        "paging alert {lag:.1} s after the incident opened (bound 35 s)"
    );
    assert_eq!(firing["labels"]["kind"], "link_down");
    assert_eq!(firing["labels"]["severity"], "critical");
    assert_eq!(firing["annotations"]["summary"], ward_incident["title"]);
    // The runbook link is lienthong's own page for the kind (no runbook_base_url set), and it
    // is there.
    let runbook = firing["annotations"]["runbook_url"].as_str().unwrap_or("");
    assert_eq!(runbook, format!("{lt}/runbooks/sitedown"), "{firing}");
    let page = c.get(runbook).send().await.expect("runbook page");
    assert_eq!(page.status(), 200);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("SiteDown — Đơn vị mất kết nối"));

    // Alertmanager: exactly one alert for the incident although both paths are on (the rule
    // and lienthong's own push carry the same labels), active on the team's on-call route.
    let am_alerts = format!("{am}/api/v2/alerts");
    let paged = wait_for(
        "one LienthongIncident for the ward in Alertmanager, on the on-call route",
        Duration::from_secs(60),
        &mut procs,
        || {
            let url = am_alerts.clone();
            let id = incident_id.clone();
            async move {
                let v = get_json(c, &url).await.ok()?;
                let mine: Vec<Value> = v
                    .as_array()?
                    .iter()
                    .filter(|a| {
                        a["labels"]["alertname"] == "LienthongIncident"
                            && a["labels"]["incident_id"] == id.as_str()
                    })
                    .cloned()
                    .collect();
                (mine.len() == 1 && mine[0]["status"]["state"] == "active").then(|| mine[0].clone())
            }
        },
    )
    .await;
    assert_eq!(paged["labels"]["team"], "to-tphcm");
    let receivers: Vec<&str> = paged["receivers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(
        receivers.contains(&"to-tphcm-truc"),
        "receivers {receivers:?}"
    );
    // The BBE-style SiteDown is a non-paging ticket, held while the incident pages.
    wait_for(
        "SiteDown (ticket) inhibited by the incident",
        Duration::from_secs(60),
        &mut procs,
        || {
            let url = am_alerts.clone();
            async move {
                let v = get_json(c, &url).await.ok()?;
                let t = v.as_array()?.iter().find(|a| {
                    a["labels"]["alertname"] == "SiteDown" && a["labels"]["site"] == WARD
                })?;
                (t["labels"]["severity"] == "ticket"
                    && t["status"]["state"] == "suppressed"
                    && !t["status"]["inhibitedBy"].as_array()?.is_empty())
                .then_some(())
            }
        },
    )
    .await;
    wait_for(
        "the on-call webhook of to-tphcm",
        Duration::from_secs(30),
        &mut procs,
        || {
            let got = sink.lock().unwrap().clone();
            async move {
                got.iter()
                    .any(|r| {
                        r.starts_with("POST /to-tphcm/truc ")
                            && r.contains("LienthongIncident")
                            && r.contains(WARD)
                    })
                    .then_some(())
            }
        },
    )
    .await;

    drop(procs);
    eprintln!(
        "prometheus_stack: all checks passed in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}
