//! The status page in a real headless browser: `lienthong demo` (the real binary) with a
//! scripted outage, Debian's Chromium loading `/` and a site page. Asserts all 168 sites are
//! rendered, the outage is shown as down (icon and word, not colour alone), the readiness
//! summary matches `GET /api/v1/readiness` for the same window, and saves screenshots and DOM
//! dumps to `target/test-artifacts/`.
//!
//! Skipped, with a message, when /usr/bin/chromium is missing (`.ci/run` installs it).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::demo::Demo;

const CHROMIUM: &str = "/usr/bin/chromium";

const SCENARIO: &str = r#"
cycle = "30m"
udp_echo_port = 17307
[[fault]]
at = "0s"
duration = "30m"
kind = "link_down"
site = "phuong-ben-thanh"
[[fault]]
at = "0s"
duration = "30m"
kind = "http_status"
status = 503
service = "thu-tuc-hanh-chinh"
[[fault]]
at = "0s"
duration = "30m"
kind = "slow"
delay = "3s"
site = "phuong-sai-gon"
"#;

/// GET over plain HTTP/1.0 (no client library): (status, body).
fn get(demo: &Demo, path: &str) -> (u16, String) {
    let addr = demo.base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect to the demo");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Whether Chromium is there; outside CI a missing one skips the test, with CI=true it fails.
fn have_chromium(test: &str) -> bool {
    if Path::new(CHROMIUM).exists() {
        return true;
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "{test}: {CHROMIUM} not found and CI=true (.ci/run installs chromium)"
    );
    eprintln!("SKIPPED {test}: {CHROMIUM} not found (apt-get install chromium; .ci/run does)");
    false
}

/// Runs headless Chromium with the flags of the issue and a fresh profile; returns stdout.
fn chromium(args: &[String], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            // (No --virtual-time-budget: the page's event stream never goes idle. Its script
            // runs before the load event, which is when the dump and the screenshot are made.)
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium failed on {url}: {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish on {url} within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().unwrap()
}

/// The value of `attr="…"` in the first tag containing `anchor`.
fn attr(dom: &str, anchor: &str, attr: &str) -> Option<String> {
    let i = dom.find(anchor)?;
    let start = dom[..i].rfind('<')?;
    let end = i + dom[i..].find('>')?;
    let tag = &dom[start..end];
    let key = format!("{attr}=\"");
    let v = tag.find(&key)? + key.len();
    Some(tag[v..v + tag[v..].find('"')?].to_string())
}

/// The text inside the element whose start tag contains `anchor` (first text node).
fn text_after(dom: &str, anchor: &str) -> Option<String> {
    let i = dom.find(anchor)?;
    let rest = &dom[i + dom[i..].find('>')? + 1..];
    Some(rest[..rest.find('<')?].trim().to_string())
}

fn json_u64(v: &serde_json::Value, path: &str) -> u64 {
    v.pointer(path)
        .and_then(|x| x.as_u64())
        .unwrap_or_else(|| panic!("{path} missing in {v}"))
}

#[test]
fn status_page_in_a_real_browser() {
    if !have_chromium("status_page_in_a_real_browser") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path(), SCENARIO);

    // Every site has reported and the scripted outage is confirmed.
    let started = Instant::now();
    let mut page = String::new();
    loop {
        let (status, body) = get(&demo, "/");
        if status == 200 {
            page = body;
            let down = attr(&page, "data-slug=\"phuong-ben-thanh\"", "data-status");
            let unknown = page.matches("data-status=\"unknown\"").count();
            if down.as_deref() == Some("down") && unknown == 0 {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the outage was not shown as down within 90 s (last page {} bytes)\n{}",
            page.len(),
            demo.log_text()
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    assert!(
        page.len() < 300 * 1024,
        "status page is {} bytes",
        page.len()
    );

    // The browser's view.
    let out = artifacts();
    let dom = chromium(&["--dump-dom".into()], &format!("{}/", demo.base));
    std::fs::write(out.join("status-page.html"), &dom).unwrap();
    assert!(
        dom.contains("<html lang=\"vi\" class=\"js\">"),
        "the page's script ran"
    );
    let tiles = dom.matches("class=\"tile ").count();
    assert_eq!(tiles, 168, "every site is rendered");
    let slugs: std::collections::BTreeSet<&str> = dom
        .match_indices("class=\"tile ")
        .filter_map(|(i, _)| dom[i..].split("data-slug=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(slugs.len(), 168, "168 distinct sites");
    assert_eq!(
        attr(&dom, "data-slug=\"phuong-ben-thanh\"", "data-status").as_deref(),
        Some("down")
    );
    // Not colour alone: the tile carries the down icon and the word.
    let tile = &dom[dom.find("data-slug=\"phuong-ben-thanh\"").unwrap()..];
    let tile = &tile[..tile.find("</a>").unwrap()];
    assert!(tile.contains("#i-down"), "{tile}");
    assert!(tile.contains("Gián đoạn"), "{tile}");
    assert!(
        tile.contains("Đường truyền mạng"),
        "the reason names the link: {tile}"
    );
    // Island sites are marked; Côn Đảo is on the map, south of every mainland site.
    for island in ["dac-khu-con-dao", "xa-thanh-an", "xa-long-son"] {
        let t = &dom[dom.find(&format!("data-slug=\"{island}\"")).unwrap()..];
        assert!(
            t[..t.find("</a>").unwrap()].contains("class=\"isl\""),
            "{island}"
        );
        assert_eq!(
            attr(&dom, &format!("data-slug=\"{island}\""), "data-island").as_deref(),
            Some("1")
        );
    }
    let map_y = |slug: &str| -> f64 {
        let i = dom
            .find(&format!("href=\"/sites/{slug}\"><title>"))
            .unwrap_or_else(|| panic!("{slug} on the map"));
        attr(&dom[i..], "class=\"m ", "y").unwrap().parse().unwrap()
    };
    let con_dao = map_y("dac-khu-con-dao");
    for mainland in [
        "xa-long-son",
        "xa-thanh-an",
        "xa-can-gio",
        "phuong-vung-tau",
    ] {
        if dom.contains(&format!("href=\"/sites/{mainland}\"><title>")) {
            assert!(
                con_dao > map_y(mainland) + 40.0,
                "Côn Đảo south of {mainland}"
            );
        }
    }
    // Shared services and open incidents are listed.
    assert_eq!(
        attr(&dom, "data-service=\"thu-tuc-hanh-chinh\"", "data-status").as_deref(),
        Some("down")
    );
    assert!(dom.contains("id=\"incidents\""));

    // The readiness summary is the API's for the same window.
    let from = attr(&dom, "id=\"readiness\"", "data-from").expect("readiness summary");
    let to = attr(&dom, "id=\"readiness\"", "data-to").unwrap();
    let (status, body) = get(&demo, &format!("/api/v1/readiness?from={from}&to={to}"));
    assert_eq!(status, 200, "{body}");
    let api: serde_json::Value = serde_json::from_str(&body).unwrap();
    for (data, path) in [
        ("data-total", "/city/total"),
        ("data-ready", "/city/ready"),
        ("data-not-ready", "/city/not_ready"),
        ("data-insufficient", "/city/insufficient_data"),
        ("data-services-ready", "/city/services_ready"),
        ("data-services-total", "/city/services_total"),
    ] {
        let shown: u64 = attr(&dom, "id=\"readiness\"", data)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(shown, json_u64(&api, path), "{data} vs {path}");
    }
    assert_eq!(json_u64(&api, "/city/total"), 168);
    assert_eq!(
        text_after(&dom, "id=\"readiness-headline\"").unwrap(),
        api["city"]["headline"].as_str().unwrap()
    );
    // Up to now (the default window), the outage site is not ready: its incident is open.
    let (status, body) = get(&demo, "/api/v1/readiness");
    assert_eq!(status, 200, "{body}");
    let api: serde_json::Value = serde_json::from_str(&body).unwrap();
    let bt = api["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["slug"] == "phuong-ben-thanh")
        .unwrap();
    assert_eq!(bt["verdict"], "not_ready", "{bt}");
    assert_eq!(bt["reasons"][0]["code"], "critical_incident", "{bt}");

    // Screenshots for people.
    chromium(
        &[
            "--window-size=1600,2400".into(),
            format!("--screenshot={}", out.join("status-page.png").display()),
        ],
        &format!("{}/", demo.base),
    );
    chromium(
        &[
            "--window-size=1400,1800".into(),
            format!(
                "--screenshot={}",
                out.join("site-phuong-ben-thanh.png").display()
            ),
        ],
        &format!("{}/sites/phuong-ben-thanh", demo.base),
    );
    for png in ["status-page.png", "site-phuong-ben-thanh.png"] {
        let len = std::fs::metadata(out.join(png)).map_or(0, |m| m.len());
        assert!(len > 20_000, "{png}: {len} bytes");
    }

    // The site page: checks with reasons and measurements, the outage incident.
    let site = chromium(
        &["--dump-dom".into()],
        &format!("{}/sites/phuong-ben-thanh", demo.base),
    );
    std::fs::write(out.join("site-phuong-ben-thanh.html"), &site).unwrap();
    assert_eq!(
        attr(&site, "id=\"site\"", "data-status").as_deref(),
        Some("down")
    );
    assert_eq!(
        attr(
            &site,
            "data-check=\"site/phuong-ben-thanh/link\"",
            "data-health"
        )
        .as_deref(),
        Some("down")
    );
    assert!(site.contains("mất gói"), "the link's reason");
    assert!(site.contains("bị từ chối kết nối"), "the endpoint's reason");
    assert!(site.contains("Mất kết nối"), "the open incident");
    assert!(
        site.contains("data-check=\"site/phuong-ben-thanh/link\"><h3"),
        "a chart per check"
    );

    // Search and filters (preset from the URL, applied by the page's script).
    let visible = |dom: &str| -> Vec<String> {
        dom.match_indices("class=\"tile ")
            .filter_map(|(i, _)| {
                let tag = &dom[i..i + dom[i..].find('>')?];
                let class = tag.split('"').nth(1)?;
                (!class.split(' ').any(|c| c == "hide"))
                    .then(|| {
                        tag.split("data-slug=\"")
                            .nth(1)?
                            .split('"')
                            .next()
                            .map(str::to_string)
                    })
                    .flatten()
            })
            .collect()
    };
    let found = visible(&chromium(
        &["--dump-dom".into()],
        &format!("{}/?q=b%E1%BA%BFn%20th%C3%A0nh", demo.base),
    ));
    assert!(found.contains(&"phuong-ben-thanh".to_string()), "{found:?}");
    assert!(found.len() <= 3, "search narrows: {found:?}");
    let folded = visible(&chromium(
        &["--dump-dom".into()],
        &format!("{}/?q=ben%20thanh", demo.base),
    ));
    assert_eq!(found, folded, "search ignores diacritics");
    let islands = visible(&chromium(
        &["--dump-dom".into()],
        &format!("{}/?island=1", demo.base),
    ));
    assert_eq!(islands.len(), 3, "{islands:?}");
    let down = visible(&chromium(
        &["--dump-dom".into()],
        &format!("{}/?status=down", demo.base),
    ));
    assert!(down.contains(&"phuong-ben-thanh".to_string()), "{down:?}");
    assert!(down.len() < 10, "{down:?}");

    // English.
    let en = chromium(&["--dump-dom".into()], &format!("{}/?lang=en", demo.base));
    assert!(en.contains("<html lang=\"en\""));
    assert_eq!(en.matches("class=\"tile ").count(), 168);
    let t = &en[en.find("data-slug=\"phuong-ben-thanh\"").unwrap()..];
    assert!(t[..t.find("</a>").unwrap()].contains("Down"));
    // (The page's report is cached for a minute: it may still be the one from before the first
    // verdict, which says how long data is still being collected.)
    assert!(
        en.contains("/168 ready") || en.contains("Collecting data — about"),
        "English readiness headline"
    );
    assert!(!en.contains("0/168 ready"), "no verdict is not 0 ready");

    // Unknown site: a page, not a crash.
    assert_eq!(get(&demo, "/sites/khong-co").0, 404);
    drop(demo);
}

/// A site page over a real store and router (no browser): a running maintenance window shows
/// its reason, end time and author; ending it through the API removes the panel.
#[tokio::test]
async fn site_page_shows_the_running_maintenance_window() {
    use lienthong::web::{router, AppState};
    use std::sync::Arc;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid.toml");
    let config = lienthong::config::Config::load(&fixture).unwrap();
    let state = Arc::new(lienthong::state::LiveState::default());
    state.set_inventory(config.inventory.clone());
    let store = Arc::new(lienthong::incidents::Store::open(&dir.path().join("db.sqlite")).unwrap());
    let (events, _) = tokio::sync::broadcast::channel(16);
    let app = AppState {
        metrics: Arc::new(lienthong::metrics::Metrics::new()),
        state,
        store,
        events,
        api_token: Some(Arc::from("tok")),
        maintenance_changed: Arc::new(tokio::sync::Notify::new()),
        pages: Default::default(),
        actions: Default::default(),
    };
    let addr = common::serve(router(app)).await;
    let http = reqwest::Client::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let ends = now + 2 * 3_600_000;
    let w: serde_json::Value = http
        .post(format!("http://{addr}/api/v1/maintenance"))
        .bearer_auth("tok")
        .body(
            serde_json::json!({
                "site": "b",
                "starts_at": lienthong::localtime::format_rfc3339(now - 60_000),
                "ends_at": lienthong::localtime::format_rfc3339(ends),
                "reason": "Thay bộ định tuyến <VNPT>",
                "created_by": "Tổ 2 — Lê Thị Hoa"
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = w["id"].as_i64().expect("created");
    let page = |slug: &'static str| {
        let http = http.clone();
        async move {
            http.get(format!("http://{addr}/sites/{slug}"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let html = page("b").await;
    let panel = &html[html
        .find("id=\"site-maintenance\"")
        .expect("a maintenance panel")..];
    assert!(panel.contains("Đang bảo trì"));
    assert!(
        panel.contains("Thay bộ định tuyến &lt;VNPT&gt;"),
        "escaped reason"
    );
    assert!(panel.contains("Tổ 2 — Lê Thị Hoa"));
    let end_local = lienthong::localtime::format_local(ends / 1000 * 1000);
    assert!(panel.contains(&end_local), "end time {end_local}");
    // Another site is not under this window.
    assert!(!page("a").await.contains("id=\"site-maintenance\""));
    let r = http
        .post(format!("http://{addr}/api/v1/maintenance/{id}/end"))
        .bearer_auth("tok")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(!page("b").await.contains("id=\"site-maintenance\""));

    // The inventory has 2 sites: every title counts them, none says 168.
    let get = |path: &'static str| {
        let http = http.clone();
        async move {
            http.get(format!("http://{addr}{path}"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let index = get("/").await;
    assert!(
        index.contains("Trạng thái kết nối 2 xã, phường, đặc khu"),
        "title"
    );
    assert!(get("/?lang=en")
        .await
        .contains("Connectivity of the 2 communes"));
    let feed = get("/incidents.atom").await;
    assert!(feed.contains("Sự cố của 2 xã, phường, đặc khu"), "{feed}");
    let doc = get("/api/v1/openapi.json").await;
    assert!(doc.contains("the 2 commune-level sites"));
    for text in [&index, &feed, &doc] {
        assert!(!text.contains("168 "), "a hard-coded 168");
    }
    // Checks without title_en get an English title from their role, not the Vietnamese one.
    let en = get("/sites/a?lang=en").await;
    assert!(en.contains("Network link (link)"), "English fallback title");
    assert!(en.contains("Public service centre (endpoint)"));
    assert!(!en.contains("Đường truyền mạng"));
    // No data yet: collecting, not a red "0/2 sẵn sàng".
    assert!(
        index.contains("Đang thu thập dữ liệu — còn ~"),
        "collecting headline"
    );
    assert!(!index.contains("0/2 sẵn sàng"));
}

/// The words of the pages over the shipped probes.toml (real router, store and live state): the
/// island unit wording, link class display names, the breached threshold of a degraded link,
/// and the incident list's duration, acknowledgement and owning team.
#[tokio::test]
async fn pages_say_why_and_who() {
    use lienthong::health::State as Health;
    use lienthong::incidents::{EventKind, NewEvent, NewIncident, Scope, Severity, Store};
    use lienthong::probe::{Details, IcmpDetails, Outcome};
    use lienthong::web::{router, AppState};
    use std::sync::Arc;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let config =
        lienthong::config::Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("probes.toml"))
            .unwrap();
    let inv = config.inventory.clone();
    let state = Arc::new(lienthong::state::LiveState::default());
    state.set_inventory(inv.clone());
    let link = inv
        .checks
        .iter()
        .find(|c| c.id.key() == "site/dac-khu-con-dao/link")
        .expect("Côn Đảo's link check");
    let mut o = Outcome::ok(Details::Icmp(IcmpDetails {
        sent: 50,
        received: 41,
        rtt_avg: Some(0.08),
        loss_ratio: 0.18,
        ..Default::default()
    }));
    o.duration = Duration::from_millis(900);
    state.record(&link.id, &o, std::time::SystemTime::now());
    state.set_health(&link.id, Health::Degraded);
    let store = Arc::new(Store::open(&dir.path().join("db.sqlite")).unwrap());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let team = inv
        .teams
        .iter()
        .find(|t| {
            inv.teams_of_site(inv.site("dac-khu-con-dao").unwrap())
                .contains(&t.name)
        })
        .expect("a team covers Côn Đảo")
        .clone();
    let (id, _) = store
        .open_incident(
            &NewIncident {
                key: "site/dac-khu-con-dao/link".into(),
                title: "Mất gói: Đặc khu Côn Đảo".into(),
                title_en: "Loss: Con Dao".into(),
                severity: Severity::Warning,
                scope: Scope::Site,
                sites: vec!["dac-khu-con-dao".into()],
                service: None,
                teams: vec![team.name.clone()],
            },
            &NewEvent {
                at: now - 12 * 60_000 - 5_000,
                kind: EventKind::Opened,
                check: None,
                state: Some("degraded".into()),
                message: "loss".into(),
                evidence: None,
            },
            &[],
        )
        .unwrap();
    store.acknowledge(id, now, "Tổ Côn Đảo — Trần B").unwrap();
    // Five minutes of echo rounds on the island link: 2 of 10 packets lost each minute.
    let minute = now / 60_000;
    let rows: Vec<lienthong::availability::MinuteRow> = (1..=5)
        .map(|k| lienthong::availability::MinuteRow {
            check: link.id.key(),
            minute: minute - k,
            stats: lienthong::availability::MinuteStats {
                attempts: 5,
                successes: 5,
                lat_n: 5,
                lat_sum: 400.0,
                lat_max: 90.0,
                sent: 10,
                lost: 2,
                ..Default::default()
            },
        })
        .collect();
    store.history_write(&rows).unwrap();
    let (events, _) = tokio::sync::broadcast::channel(16);
    let app = AppState {
        metrics: Arc::new(lienthong::metrics::Metrics::new()),
        state,
        store,
        events,
        api_token: None,
        maintenance_changed: Arc::new(tokio::sync::Notify::new()),
        pages: Default::default(),
        actions: Default::default(),
    };
    let addr = common::serve(router(app)).await;
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        async move {
            http.get(format!("http://{addr}{path}"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let index = get("/".into()).await;
    assert!(index.contains("Chỉ đơn vị đảo") && !index.contains("Chỉ xã đảo"));
    assert!(!index.contains("Xã đảo"));
    // The incident list: how long, who took it, which team owns it.
    let inc = &index[index
        .find(&format!("data-incident=\"{id}\""))
        .expect("listed")..];
    let inc = &inc[..inc.find("</div></div>").unwrap_or(inc.len())];
    assert!(inc.contains("đã 12 phút"), "{inc}");
    assert!(inc.contains("Đã tiếp nhận: Tổ Côn Đảo — Trần B"), "{inc}");
    assert!(inc.contains(&format!("Phụ trách: {}", team.title)), "{inc}");

    let site = get("/sites/dac-khu-con-dao".into()).await;
    assert!(site.contains("Đơn vị đảo"));
    let class = &site[site.find("class=\"link-class\"").expect("link class")..];
    assert!(
        class[..200].contains("Đơn vị đảo") && !class[..200].contains(">island<"),
        "{}",
        &class[..200]
    );
    let en = get("/sites/dac-khu-con-dao?lang=en".into()).await;
    assert!(en.contains(">island<"), "English shows the class key");
    // The degraded link says which threshold it is over (island: degraded_loss 10 %).
    let row = &site[site
        .find("data-check=\"site/dac-khu-con-dao/link\"")
        .unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("mất gói 18 % &gt; 10 %"), "{row}");
    assert!(!row.contains("Đạt"), "{row}");
    // The island page charts loss as well as RTT: one bar per minute, the 10 % limit dashed.
    let chart = &site[site
        .find("data-check=\"site/dac-khu-con-dao/link\"><h3")
        .expect("link chart")..];
    let chart = &chart[..chart.find("</div></div>").unwrap()];
    assert!(chart.contains("Tỷ lệ mất gói mỗi phút"), "{chart}");
    assert_eq!(chart.matches("class=\"loss\"").count(), 5, "{chart}");
    assert!(chart.contains("class=\"loss-limit\""));
    assert!(chart.contains(">10 %<"));
    // Only echo rounds have loss.
    let ep = &site[site
        .find("data-check=\"site/dac-khu-con-dao/endpoint\"><h3")
        .expect("endpoint chart")..];
    assert!(!ep[..ep.find("</div>").unwrap()].contains("loss"));
}

/// `/?wall=1` in Chromium at 1920×1080 over the shipped 168 sites with open incidents: the
/// headline, the map, the shared services and the incidents are on screen and nothing scrolls
/// (the page records its own layout check in `data-fits`); a screenshot is saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wall_screen_fits_1920x1080() {
    use lienthong::incidents::{EventKind, NewEvent, NewIncident, Scope, Severity, Store};
    use lienthong::web::{router, AppState};
    use std::sync::Arc;
    if !have_chromium("wall_screen_fits_1920x1080") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config =
        lienthong::config::Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("probes.toml"))
            .unwrap();
    let inv = config.inventory.clone();
    let state = Arc::new(lienthong::state::LiveState::default());
    state.set_inventory(inv.clone());
    let store = Arc::new(Store::open(&dir.path().join("db.sqlite")).unwrap());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // More open incidents than the wall lists: the rest is counted, not scrolled to.
    for s in inv.sites.iter().take(12) {
        store
            .open_incident(
                &NewIncident {
                    key: format!("site/{}/link", s.slug),
                    title: format!("Mất kết nối: {}", s.name),
                    title_en: format!("Link down: {}", s.name),
                    severity: Severity::Critical,
                    scope: Scope::Site,
                    sites: vec![s.slug.clone()],
                    service: None,
                    teams: inv.teams_of_site(s),
                },
                &NewEvent {
                    at: now - 600_000,
                    kind: EventKind::Opened,
                    check: None,
                    state: Some("down".into()),
                    message: "timeout".into(),
                    evidence: None,
                },
                &[],
            )
            .unwrap();
    }
    let (events, _) = tokio::sync::broadcast::channel(16);
    let app = AppState {
        metrics: Arc::new(lienthong::metrics::Metrics::new()),
        state,
        store,
        events,
        api_token: None,
        maintenance_changed: Arc::new(tokio::sync::Notify::new()),
        pages: Default::default(),
        actions: Default::default(),
    };
    let addr = common::serve(router(app)).await;
    let url = format!("http://{addr}/?wall=1");
    let shot = artifacts().join("wall-1920x1080.png");
    let size = "--window-size=1920,1080".to_string();
    let (dom, _) = tokio::task::spawn_blocking({
        let (url, shot, size) = (url.clone(), shot.clone(), size.clone());
        move || {
            let dom = chromium(&[size.clone(), "--dump-dom".into()], &url);
            let png = chromium(&[size, format!("--screenshot={}", shot.display())], &url);
            (dom, png)
        }
    })
    .await
    .unwrap();
    std::fs::write(artifacts().join("wall-1920x1080.html"), &dom).unwrap();
    assert!(dom.contains("<main class=\"wall\">"), "wall layout");
    for id in [
        "id=\"readiness-headline\"",
        "id=\"services\"",
        "id=\"incidents\"",
    ] {
        assert!(dom.contains(id), "{id} on the wall");
    }
    assert!(dom.contains("<svg"), "the map");
    assert!(!dom.contains("id=\"sites\""), "no site list on the wall");
    assert_eq!(
        attr(&dom, "<html", "data-fits").as_deref(),
        Some("1"),
        "everything on one 1920×1080 screen, no scrolling"
    );
    // The incidents beyond the first six are counted.
    assert!(dom.contains("… 6 sự cố khác"), "rest counted");
    assert!(shot.exists(), "screenshot saved");
}
