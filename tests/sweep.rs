//! The pre-conference sweep (`POST /api/v1/sweep`, its event stream, the status page button in
//! Chromium) and ward reports (`POST /api/v1/reports`), against the whole service in-process on
//! 127.0.0.1:0 with 168 sites whose links (UDP echo) and conference points (TCP) are real
//! servers on loopback started here. Three sites are broken on purpose: two conference points
//! refuse connections, one link goes to an address where nothing answers.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const SITES: usize = 168;
const PROVINCES: [&str; 3] = ["tphcm", "binh-duong", "ba-ria-vung-tau"];
/// Site numbers whose conference point refuses connections.
const VIDEO_DOWN: [usize; 2] = [7, 50];
/// Site number whose link has nothing answering.
const LINK_DOWN: usize = 100;

fn slug(i: usize) -> String {
    format!("phuong-{i:03}")
}

fn province(i: usize) -> &'static str {
    PROVINCES[i % 3]
}

/// An RFC 862 echo server on 127.0.0.1:0.
async fn udp_echo() -> u16 {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = sock.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let _ = sock.send_to(&buf[..n], from).await;
        }
    });
    port
}

/// A conference point: accepts and closes.
async fn tcp_point() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            drop(s);
        }
    });
    port
}

/// The 168-site config; `interval` of every check, `extra` appended (e.g. `[reports]`).
async fn config(db: &Path, token_env: &str, interval: &str, extra: &str) -> String {
    let echo = udp_echo().await;
    let point = tcp_point().await;
    let closed = common::closed_port().await.port();
    let mut sites = String::new();
    for i in 1..=SITES {
        let link = if i == LINK_DOWN {
            "127.0.0.2"
        } else {
            "127.0.0.1"
        };
        let video = if VIDEO_DOWN.contains(&i) {
            closed
        } else {
            point
        };
        sites.push_str(&format!(
            "  {{ code = \"{i}\", slug = \"{}\", name = \"Phường {i:03}\", kind = \"phuong\", former_province = \"{}\", former_district = \"Quận {}\", island = false, lat = 10.7, lon = 106.7, addr = {{ link = \"{link}\", video = \"127.0.0.1:{video}\" }} }},\n",
            slug(i),
            province(i),
            i % 7
        ));
    }
    format!(
        r#"
[incidents]
database = "{db}"

[api]
token_env = "{token_env}"

[scheduler]
max_concurrency = 64
per_site_concurrency = 2

[[team]]
name = "to-tphcm"
title = "Tổ TP.HCM"
former_provinces = ["tphcm"]

[[team]]
name = "to-binh-duong"
title = "Tổ Bình Dương"
former_provinces = ["binh-duong"]

[[team]]
name = "to-ba-ria-vung-tau"
title = "Tổ Bà Rịa – Vũng Tàu"
former_provinces = ["ba-ria-vung-tau"]

{extra}

[link_class.mainland]
interval = "{interval}"
timeout = "2s"
packets = 3
pacing = "20ms"
reply_timeout = "1500ms"
max_loss = 0.4
degraded_loss = 0.5
degraded_rtt = "200ms"
degraded_jitter = "100ms"
degraded_latency = "1s"

[[template]]
name = "link"
role = "link"
title = "Đường truyền mạng"
probe.icmp = {{ host = "{{addr.link}}", udp_echo_port = {echo} }}

[[template]]
name = "video"
role = "video"
title = "Điểm cầu truyền hình trực tuyến"
probe.tcp = {{ address = "{{addr.video}}" }}

[inventory]
sites = [
{sites}]
"#,
        db = db.display()
    )
}

struct Svc {
    run: common::svc::Running,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn start(token_env: &str, interval: &str, extra: impl Fn(&Path) -> String) -> Svc {
    common::set_env(token_env, "sweep-write-token");
    let dir = tempfile::tempdir().unwrap();
    let text = config(
        &dir.path().join("db.sqlite"),
        token_env,
        interval,
        &extra(dir.path()),
    )
    .await;
    let run = common::svc::start(dir.path().join("probes.toml"), &text).await;
    let (code, body) = run
        .wait_for("/readyz", Duration::from_secs(20), |c, _| c == 200)
        .await;
    if code != 200 {
        if run.task.is_finished() {
            panic!("service ended: {:?}", run.task.await);
        }
        panic!("service not ready: {body}");
    }
    Svc {
        run,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
        _dir: dir,
    }
}

impl Svc {
    async fn sweep(&self, token: Option<&str>, body: Option<&str>) -> (u16, Value) {
        let mut rq = self.http.post(format!("{}/api/v1/sweep", self.run.base));
        if let Some(t) = token {
            rq = rq.bearer_auth(t);
        }
        if let Some(b) = body {
            rq = rq.body(b.to_string());
        }
        let r = rq.send().await.unwrap();
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut rq = self
            .http
            .post(format!("{}{path}", self.run.base))
            .body(body.to_string());
        if let Some(t) = token {
            rq = rq.bearer_auth(t);
        }
        let r = rq.send().await.unwrap();
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(Value::Null))
    }

    async fn get_json(&self, path: &str) -> Value {
        let (code, body) = self.run.get(path).await;
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

fn not_ready(v: &Value) -> BTreeSet<String> {
    v["sites"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["ready"] == false)
        .map(|r| r["site"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_of_168_sites_answers_the_table_and_records_the_runs() {
    // An hour between scheduled runs: what /api/v1/checks shows after the sweep is the sweep.
    let svc = start("LT_TEST_SWEEP_TOKEN_A", "1h", |_| String::new()).await;
    let before = svc.get_json("/api/v1/checks").await;
    let ran_before: u64 = before
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["runs"].as_u64().unwrap())
        .sum();
    let t = Instant::now();
    let (code, v) = svc.sweep(Some("sweep-write-token"), None).await;
    let took = t.elapsed();
    assert_eq!(code, 200, "{v}");
    eprintln!(
        "sweep of {SITES} sites (336 checks) answered in {:.2} s (server: {} s)",
        took.as_secs_f64(),
        v["duration_seconds"]
    );
    assert_eq!(v["total"], SITES);
    assert_eq!(v["ready"], SITES - 3);
    assert_eq!(v["not_ready"], 3);
    let want: BTreeSet<String> = VIDEO_DOWN
        .iter()
        .chain([&LINK_DOWN])
        .map(|i| slug(*i))
        .collect();
    assert_eq!(not_ready(&v), want);
    let rows = v["sites"].as_array().unwrap();
    let order: Vec<&str> = rows.iter().map(|r| r["site"].as_str().unwrap()).collect();
    let expected: Vec<String> = (1..=SITES).map(slug).collect();
    assert_eq!(order, expected, "inventory order");
    for r in rows {
        let checks = r["checks"].as_array().unwrap();
        assert_eq!(checks.len(), 2, "{r}");
        let roles: BTreeSet<&str> = checks.iter().map(|c| c["role"].as_str().unwrap()).collect();
        assert_eq!(roles, BTreeSet::from(["link", "video"]));
        if r["ready"] == true {
            assert!(r["reason"].is_null(), "{r}");
            assert!(checks.iter().all(|c| c["success"] == true), "{r}");
        }
        assert!(r["last_incident"].is_null(), "no incident yet: {r}");
    }
    let row = |i: usize| rows.iter().find(|r| r["site"] == slug(i)).unwrap();
    let video = row(7);
    assert_eq!(
        video["reason"], "Điểm cầu truyền hình: bị từ chối kết nối",
        "{video}"
    );
    assert_eq!(video["reason_en"], "Conference point: connection refused");
    let link = row(LINK_DOWN);
    assert!(
        link["reason"]
            .as_str()
            .unwrap()
            .starts_with("Đường truyền: "),
        "{link}"
    );
    assert!(
        !link["reason"].as_str().unwrap().contains("Điểm cầu"),
        "the conference point answered: {link}"
    );

    // Every swept check went through the writer: the live state counts its run and its result.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let checks = svc.get_json("/api/v1/checks").await;
        let checks = checks.as_array().unwrap();
        let unrecorded: Vec<&Value> = checks.iter().filter(|c| c["runs"] == 0).collect();
        if unrecorded.is_empty() {
            let total: u64 = checks.iter().map(|c| c["runs"].as_u64().unwrap()).sum();
            assert!(total >= ran_before + 2 * SITES as u64);
            for c in checks {
                let site = c["site"].as_str().unwrap();
                let swept = rows.iter().find(|r| r["site"] == site).unwrap();
                let res = swept["checks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|x| x["key"] == c["key"])
                    .unwrap();
                if c["runs"] == 1 {
                    assert_eq!(c["last"]["success"], res["success"], "{c}");
                }
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} checks show no run after the sweep, e.g. {}",
            unrecorded.len(),
            unrecorded[0]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    svc.run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_filters_stream_and_bad_requests() {
    let svc = start("LT_TEST_SWEEP_TOKEN_B", "1h", |_| String::new()).await;
    let tok = Some("sweep-write-token");

    let (code, v) = svc
        .sweep(tok, Some(r#"{"former_province": "binh-duong"}"#))
        .await;
    assert_eq!(code, 200, "{v}");
    let n = (1..=SITES).filter(|i| province(*i) == "binh-duong").count();
    assert_eq!(v["total"], n);
    assert!(v["sites"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["former_province"] == "binh-duong"));
    let (code, t) = svc.sweep(tok, Some(r#"{"team": "to-binh-duong"}"#)).await;
    assert_eq!(code, 200);
    assert_eq!(t["total"], n, "the team covers the former province");
    let (code, v) = svc
        .sweep(
            tok,
            Some(r#"{"sites": ["phuong-007", "phuong-001"], "team": "to-tphcm"}"#),
        )
        .await;
    assert_eq!(
        code, 400,
        "phuong-007 is not tphcm, phuong-001 neither: {v}"
    );
    let (code, v) = svc
        .sweep(tok, Some(r#"{"sites": ["phuong-007", "phuong-003"]}"#))
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["total"], 2);
    assert_eq!(not_ready(&v), BTreeSet::from(["phuong-007".to_string()]));

    // 4xx with a JSON reason naming what is wrong.
    let big = format!(r#"{{"sites": ["{}"]}}"#, "x".repeat(20_000));
    for (token, body, status, words) in [
        (None, Some("{}"), 401, vec!["Authorization"]),
        (Some("nope"), Some("{}"), 403, vec!["invalid bearer token"]),
        (
            tok,
            Some(r#"{"sites": ["phuong-0071"]}"#),
            400,
            vec!["`phuong-0071`", "did you mean"],
        ),
        (
            tok,
            Some(r#"{"former_province": "ha-noi"}"#),
            400,
            vec!["former_province", "binh-duong"],
        ),
        (
            tok,
            Some(r#"{"team": "to-x"}"#),
            400,
            vec!["team", "to-tphcm"],
        ),
        (
            tok,
            Some(r#"{"province": "tphcm"}"#),
            400,
            vec!["unknown field `province`"],
        ),
        (
            tok,
            Some(r#"{"sites": "phuong-001"}"#),
            400,
            vec!["invalid JSON"],
        ),
        (tok, Some("{"), 400, vec!["invalid JSON"]),
        (tok, Some(big.as_str()), 413, vec!["larger than 16 KiB"]),
        (
            tok,
            Some(r#"{"former_province": "tphcm", "team": "to-binh-duong"}"#),
            400,
            vec!["matches no site"],
        ),
    ] {
        let (code, v) = svc.sweep(token, body).await;
        assert_eq!(code, status, "{body:?}: {v}");
        let reason = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{body:?}: {v}"));
        for w in words {
            assert!(reason.contains(w), "{body:?}: `{reason}` lacks `{w}`");
        }
    }

    // Live: Server-Sent Events, one `site` event per site, `start` first and `done` last.
    let r = svc
        .http
        .post(format!("{}/api/v1/sweep", svc.run.base))
        .bearer_auth("sweep-write-token")
        .header("accept", "text/event-stream")
        .body(r#"{"sites": ["phuong-001", "phuong-050", "phuong-100"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = r.text().await.unwrap();
    let events: Vec<(String, Value)> = text
        .split("\n\n")
        .filter_map(|chunk| {
            let ev = chunk.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = chunk.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((ev.to_string(), serde_json::from_str(data).unwrap()))
        })
        .collect();
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["start", "site", "site", "site", "done"], "{text}");
    assert_eq!(events[0].1["total"], 3);
    let streamed: BTreeSet<&str> = events[1..4]
        .iter()
        .map(|(_, v)| v["site"].as_str().unwrap())
        .collect();
    assert_eq!(
        streamed,
        BTreeSet::from(["phuong-001", "phuong-050", "phuong-100"])
    );
    assert_eq!(events[4].1["not_ready"], 2);

    // The CLI: a table, exit 2 when a site is not ready, 0 when all are; a bad filter is said.
    let cli = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_lienthong"))
                .arg("sweep")
                .args(args)
                .env("LT_TEST_SWEEP_CLI", "sweep-write-token")
                .output()
                .unwrap()
        })
    };
    let url = svc.run.base.clone();
    let args = |extra: &[&str]| {
        let mut a = vec![
            "--url".to_string(),
            url.clone(),
            "--token-env".into(),
            "LT_TEST_SWEEP_CLI".into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let out = cli(args(&["--site", "phuong-007", "--site", "phuong-001"]))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("2 đơn vị: 1 sẵn sàng, 1 chưa sẵn sàng"),
        "{text}"
    );
    let line = text.lines().find(|l| l.starts_with("Phường 007")).unwrap();
    assert!(
        line.contains("CHƯA") && line.contains("Điểm cầu truyền hình: bị từ chối kết nối"),
        "{line}"
    );
    let out = cli(args(&["--site", "phuong-001", "--lang", "en"]))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("1 sites: 1 ready, 0 not ready"), "{text}");
    let out = cli(args(&["--team", "to-x"])).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("400") && err.contains("unknown team `to-x`"),
        "{err}"
    );
    svc.run.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Ward reports

const SITE_TOKEN: &str = "site-100-token-0123456789";
const SITE1_TOKEN: &str = "site-001-token-0123456789";
const TEAM_TOKEN: &str = "team-tphcm-token-0123456789";
const TEAM_BD_TOKEN: &str = "team-bd-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ward_reports_attach_to_the_open_incident_and_check_tokens() {
    // phuong-100's link (province index 100 % 3 = 1: binh-duong) fails from the start.
    assert_eq!(province(LINK_DOWN), "binh-duong");
    assert_eq!(province(3), "tphcm");
    common::set_env("LT_TEST_REPORT_TEAM_TPHCM", TEAM_TOKEN);
    common::set_env("LT_TEST_REPORT_TEAM_BD", TEAM_BD_TOKEN);
    let svc = start("LT_TEST_SWEEP_TOKEN_C", "3s", |dir| {
        let file = dir.join("report-tokens");
        std::fs::write(
            &file,
            format!(
                "# site tokens\nsite {} {SITE_TOKEN}\nsite {} {SITE1_TOKEN}\n",
                slug(LINK_DOWN),
                slug(1)
            ),
        )
        .unwrap();
        format!(
            "[reports]\ntokens_file = \"{}\"\nteam_token_env = {{ to-tphcm = \"LT_TEST_REPORT_TEAM_TPHCM\", to-binh-duong = \"LT_TEST_REPORT_TEAM_BD\" }}\n",
            file.display()
        )
    })
    .await;
    let report = |site: String, what: &str| json!({ "site": site, "what": what, "contact": "Chị Lan, 0909 123 456" });

    // Token checks (before any incident).
    let body = report(slug(LINK_DOWN), "Mất mạng");
    for (token, status, word) in [
        (None, 401, "Authorization"),
        (
            Some("site-100-token-012345678"),
            403,
            "invalid report token",
        ),
        (Some("sweep-write-token"), 403, "invalid report token"),
        (Some(SITE1_TOKEN), 403, "does not cover site `phuong-100`"),
        (Some(TEAM_TOKEN), 403, "team to-tphcm does not cover"),
    ] {
        let (code, v) = svc.post("/api/v1/reports", token, body.clone()).await;
        assert_eq!(code, status, "{token:?}: {v}");
        assert!(
            v["error"].as_str().unwrap().contains(word),
            "{token:?}: {v}"
        );
        assert!(!v.to_string().contains(SITE_TOKEN));
    }
    for (b, word) in [
        (
            json!({ "site": slug(LINK_DOWN), "what": "x" }),
            "missing field `contact`",
        ),
        (
            json!({ "site": slug(LINK_DOWN), "what": " ", "contact": "a" }),
            "what: must be",
        ),
        (
            json!({ "site": "phuong-1000", "what": "x", "contact": "a" }),
            "unknown site `phuong-1000`",
        ),
        (
            json!({ "site": slug(LINK_DOWN), "what": "x", "contact": "a", "phone": 1 }),
            "unknown field `phone`",
        ),
    ] {
        let (code, v) = svc
            .post("/api/v1/reports", Some(SITE_TOKEN), b.clone())
            .await;
        assert_eq!(code, 400, "{b}: {v}");
        assert!(v["error"].as_str().unwrap().contains(word), "{b}: {v}");
    }

    // The automatic link incident of phuong-100 opens.
    let deadline = Instant::now() + Duration::from_secs(60);
    let link_id = loop {
        let v = svc
            .get_json(&format!("/api/v1/incidents?site={}", slug(LINK_DOWN)))
            .await;
        if let Some(i) = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["key"] == format!("site/{}/link", slug(LINK_DOWN)))
        {
            break i["id"].as_i64().unwrap();
        }
        assert!(Instant::now() < deadline, "no link incident: {v}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    // The site's report is attached to it: no second incident.
    let (code, v) = svc
        .post(
            "/api/v1/reports",
            Some(SITE_TOKEN),
            report(slug(LINK_DOWN), "Điểm cầu mất tín hiệu"),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["attached"], true);
    assert_eq!(v["created"], false);
    assert_eq!(v["incident_id"], link_id);
    // The team's token covers the site too.
    let (code, v) = svc
        .post(
            "/api/v1/reports",
            Some(TEAM_BD_TOKEN),
            report(slug(LINK_DOWN), "Tổ xác nhận"),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["incident_id"], link_id);
    let list = svc
        .get_json(&format!("/api/v1/incidents?site={}", slug(LINK_DOWN)))
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    let inc = svc.get_json(&format!("/api/v1/incidents/{link_id}")).await;
    let text = inc.to_string();
    assert!(text.contains("Điểm cầu mất tín hiệu"), "{inc}");
    assert!(text.contains("site phuong-100") && text.contains("team to-binh-duong"));
    assert!(!text.contains(SITE_TOKEN) && !text.contains(TEAM_BD_TOKEN));

    // A healthy site: the report opens a `reported` incident; a second one joins it.
    let (code, v) = svc
        .post(
            "/api/v1/reports",
            Some(TEAM_TOKEN),
            report(slug(3), "Không nghe được tiếng"),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["created"], true);
    assert_eq!(v["attached"], false);
    assert_eq!(v["key"], "site/phuong-003/reported");
    let reported = v["incident_id"].as_i64().unwrap();
    let (code, v) = svc
        .post(
            "/api/v1/reports",
            Some(TEAM_TOKEN),
            report(slug(3), "Vẫn chưa nghe được"),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["incident_id"], reported);
    let inc = svc.get_json(&format!("/api/v1/incidents/{reported}")).await;
    assert_eq!(inc["state"], "open");
    assert_eq!(inc["teams"], json!(["to-tphcm"]));
    // It shows on the status page, and stays open across ticks (nothing "recovers" it).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, page) = svc.run.get("/").await;
    assert!(page.contains("Đơn vị báo sự cố: Phường 003"), "status page");
    let (_, metrics) = svc.run.get("/metrics").await;
    assert!(
        metrics.contains("kind=\"reported\""),
        "the paging series carries the kind"
    );

    // Closing: only a reported incident, only by a token covering it.
    let (code, v) = svc
        .post(
            &format!("/api/v1/reports/{reported}/close"),
            Some(SITE1_TOKEN),
            json!({}),
        )
        .await;
    assert_eq!(code, 403, "{v}");
    let (code, v) = svc
        .post(
            &format!("/api/v1/reports/{link_id}/close"),
            Some(SITE_TOKEN),
            json!({}),
        )
        .await;
    assert_eq!(code, 409, "{v}");
    let (code, v) = svc
        .post(
            &format!("/api/v1/reports/{reported}/close"),
            Some(TEAM_TOKEN),
            json!({ "by": "Anh Minh" }),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    let inc = svc.get_json(&format!("/api/v1/incidents/{reported}")).await;
    assert_eq!(inc["state"], "resolved");
    assert!(inc.to_string().contains("Anh Minh (team to-tphcm)"));
    let (code, _) = svc
        .post(
            &format!("/api/v1/reports/{reported}/close"),
            Some(TEAM_TOKEN),
            json!({}),
        )
        .await;
    assert_eq!(code, 409);

    // The sweep's "last incident" column names the link incident.
    let (code, v) = svc
        .sweep(
            Some("sweep-write-token"),
            Some(r#"{"sites": ["phuong-100"]}"#),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(v["sites"][0]["last_incident"]["id"], link_id, "{v}");
    svc.run.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The status page's button in Chromium (driven by chromedriver over WebDriver, on loopback)

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Whether Chromium and chromedriver are there; outside CI a missing one skips, under CI=true
/// it fails (`.ci/run` installs both).
fn have_browser(test: &str) -> bool {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return true;
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "{test}: {CHROMIUM} or {CHROMEDRIVER} not found and CI=true (.ci/run installs chromium chromium-driver)"
    );
    eprintln!("SKIPPED {test}: {CHROMIUM} or {CHROMEDRIVER} missing (apt-get install chromium chromium-driver)");
    false
}

struct Driver {
    child: std::process::Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Driver {
    async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await {
                if let Ok(v) = r.json::<Value>().await {
                    if v["value"]["ready"] == true {
                        break;
                    }
                }
            }
            assert!(Instant::now() < until, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display())
                ]
            }
        } } });
        let v: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        Driver {
            child,
            base,
            session,
            http,
            _profile: profile,
        }
    }

    async fn cmd(&self, path: &str, body: Value) -> Value {
        let v: Value = self
            .http
            .post(format!("{}/session/{}{path}", self.base, self.session))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(v["value"]["error"].is_null(), "{path}: {v}");
        v["value"].clone()
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .cmd("/element", json!({ "using": "css selector", "value": css }))
            .await;
        // The W3C element reference is the object's only value.
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    async fn js(&self, script: &str) -> Value {
        self.cmd("/execute/sync", json!({ "script": script, "args": [] }))
            .await
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css).await;
        self.cmd(&format!("/element/{e}/clear"), json!({})).await;
        self.cmd(&format!("/element/{e}/value"), json!({ "text": text }))
            .await;
    }

    async fn click(&self, css: &str) {
        let e = self.element(css).await;
        self.cmd(&format!("/element/{e}/click"), json!({})).await;
    }

    /// Polls `#sweep-status[data-done]` until the sweep ends; returns (value, the largest
    /// number of finished rows seen strictly between none and all, if any).
    async fn wait_done(&self, total: usize) -> (String, Option<u64>) {
        let until = Instant::now() + Duration::from_secs(60);
        let mut partial = None;
        loop {
            let v = self
                .js("var s=document.getElementById('sweep-status'); return [s.getAttribute('data-done'), document.querySelectorAll('#sweep-rows tr[data-ready]').length];")
                .await;
            let n = v[1].as_u64().unwrap_or(0);
            if n > 0 && (n as usize) < total {
                partial = Some(n);
            }
            if let Some(done) = v[0].as_str() {
                return (done.to_string(), partial);
            }
            assert!(
                Instant::now() < until,
                "the sweep did not finish in the page"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn quit(mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_sweep_button_in_chromium() {
    if !have_browser("status_page_sweep_button_in_chromium") {
        return;
    }
    let svc = start("LT_TEST_SWEEP_TOKEN_D", "1h", |_| String::new()).await;
    let (_, html) = svc.run.get("/").await;
    assert!(html.contains("Kiểm tra trước hội nghị"));
    assert!(
        !html.contains("sweep-write-token"),
        "the token is never in the page"
    );
    let d = Driver::start().await;
    d.cmd("/url", json!({ "url": format!("{}/", svc.run.base) }))
        .await;

    // A wrong token: the reason is shown, and the token is not kept.
    d.type_into("#sweep-token", "wrong-token").await;
    d.click("#sweep-run").await;
    let (done, _) = d.wait_done(SITES).await;
    assert_eq!(done, "error");
    let v = d
        .js("return [document.getElementById('sweep-status').textContent, sessionStorage.getItem('lt-token')];")
        .await;
    assert!(v[0].as_str().unwrap().contains("403"), "{v}");
    assert!(v[1].is_null(), "a refused token is forgotten: {v}");

    // The right one: the table fills live, not-ready sites on top.
    d.type_into("#sweep-token", "sweep-write-token").await;
    let t = Instant::now();
    d.click("#sweep-run").await;
    let (done, partial) = d.wait_done(SITES).await;
    eprintln!(
        "browser sweep finished in {:.2} s; a partial table was seen: {partial:?}",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(done, "1");
    let rows = d
        .js("return Array.from(document.querySelectorAll('#sweep-rows tr')).map(function(tr){return [tr.getAttribute('data-slug'), tr.getAttribute('data-ready'), tr.children[1].textContent, tr.children[2].textContent];});")
        .await;
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), SITES);
    let bad: BTreeSet<String> = rows
        .iter()
        .filter(|r| r[1] == "0")
        .map(|r| r[0].as_str().unwrap().to_string())
        .collect();
    let want: BTreeSet<String> = VIDEO_DOWN
        .iter()
        .chain([&LINK_DOWN])
        .map(|i| slug(*i))
        .collect();
    assert_eq!(bad, want);
    assert!(rows[..3].iter().all(|r| r[1] == "0"), "not ready first");
    assert!(rows[3..].iter().all(|r| r[1] == "1"));
    let seven = rows.iter().find(|r| r[0] == "phuong-007").unwrap();
    assert!(seven[2].as_str().unwrap().contains("chưa sẵn sàng"));
    assert_eq!(seven[3], "Điểm cầu truyền hình: bị từ chối kết nối");
    let v = d
        .js("return [document.getElementById('sweep-status').textContent, sessionStorage.getItem('lt-token'), document.documentElement.outerHTML.indexOf('sweep-write-token')];")
        .await;
    let status = v[0].as_str().unwrap();
    assert!(
        status.contains("168/168") && status.contains("165 sẵn sàng"),
        "{status}"
    );
    assert_eq!(v[1], "sweep-write-token", "kept in sessionStorage");
    assert_eq!(v[2], -1, "never written into the document");
    d.quit().await;
    svc.run.stop().await;
}
