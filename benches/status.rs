//! Status page and readiness bench.
//!
//! 1. The status page (`GET /`) of the shipped config (168 sites, 512 checks) with live results,
//!    open incidents and a day of history: server time (gather + render, cold and with the
//!    readiness cached) and the size of the page; then the same over HTTP on 127.0.0.1, and a
//!    site page.
//! 2. Readiness over 30 days of minute data for 168 sites × 5 checks (+ the shared services),
//!    written through the store's real path (minute rows, hourly rollups): windows of 24 h,
//!    7 days and 30 days ending mid-hour (so both edges read minute rows).
//!
//! Run with `cargo bench --bench status`. The 30-day database (~1.5 GB, ~2 min to build) is
//! kept in `target/bench-data/` and reused; delete it to rebuild. `BENCH_ITERS` (default 200)
//! sets the page iterations. `BENCH_PAGE_OUT=path` also writes the rendered page there.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lienthong::availability::{bucket_of, MinuteRow, MinuteStats, SparseHist};
use lienthong::config::{CheckDef, Config, Inventory};
use lienthong::health::{SiteStatus, State as Health};
use lienthong::incidents::{EventKind, NewEvent, NewIncident, Scope, Severity, Store};
use lienthong::probe::http::HttpDetails;
use lienthong::probe::icmp::IcmpDetails;
use lienthong::probe::{Details, Failure, Outcome, ProbeKind, Reason};
use lienthong::readiness::{self, Lang};
use lienthong::state::LiveState;
use lienthong::web::status::{gather, render_index, PageCache};
use lienthong::web::{router, AppState};

const MINUTE_MS: i64 = 60_000;
const DB_VERSION: &str = "v1";

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let iters: usize = std::env::var("BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    println!("== status page: shipped config ==");
    status_page(iters);
    println!();
    println!("== readiness: 30 days of minute data, 168 sites × 5 checks ==");
    readiness_30_days();
}

fn shipped() -> Inventory {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("probes.toml");
    (*Config::load(&path).expect("probes.toml").inventory).clone()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn at(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms as u64)
}

/// A plausible minute of one check; `bad` = a failing minute.
fn minute_stats(def: &CheckDef, seed: u64, bad: bool) -> MinuteStats {
    let icmp = def.probe.kind() == ProbeKind::Icmp;
    let island = def.link_class == "island";
    let base = match (icmp, island) {
        (true, true) => 240.0,
        (true, false) => 8.0,
        (false, true) => 900.0,
        (false, false) => 120.0,
    };
    let mut s = MinuteStats {
        attempts: 6,
        successes: if bad { 0 } else { 6 },
        ..MinuteStats::default()
    };
    let mut hist = SparseHist::default();
    if !bad {
        for k in 0..6u64 {
            let jitter = ((seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(k * 1442695040888963407))
                >> 33)
                % 100;
            let v = base * (1.0 + jitter as f64 / 400.0);
            s.lat_n += 1;
            s.lat_sum += v;
            s.lat_max = s.lat_max.max(v);
            hist.add(bucket_of(v), 1);
        }
        if icmp {
            s.sent = if island { 6 * 40 } else { 30 };
            s.lost = if island {
                (seed % 12) as u32
            } else {
                u32::from(seed.is_multiple_of(50))
            };
        }
    }
    s.hist = hist;
    s
}

fn outcome(def: &CheckDef, down: bool, slow: bool) -> Outcome {
    let failure = down.then(|| Failure {
        reason: if def.probe.kind() == ProbeKind::Icmp {
            Reason::PacketLoss
        } else {
            Reason::ConnectRefused
        },
        message: "connection refused (simulated)".into(),
    });
    let details = match def.probe.kind() {
        ProbeKind::Icmp => {
            let rtt = if def.link_class == "island" {
                0.24
            } else {
                0.008
            };
            let received = if down { 0 } else { 5 };
            Details::Icmp(IcmpDetails {
                sent: 5,
                received,
                rtts: vec![rtt; received as usize],
                rtt_min: (!down).then_some(rtt * 0.9),
                rtt_avg: (!down).then_some(rtt),
                rtt_max: (!down).then_some(rtt * 1.2),
                jitter: (!down).then_some(rtt * 0.05),
                loss_ratio: if down { 1.0 } else { 0.0 },
                socket: "udp_echo",
                ..Default::default()
            })
        }
        ProbeKind::Http => Details::Http(HttpDetails {
            status: (!down).then_some(200),
            ..Default::default()
        }),
        _ => Details::None,
    };
    Outcome {
        success: !down,
        duration: Duration::from_millis(if slow { 3200 } else { 120 }),
        failure,
        details,
    }
}

fn stats(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let pick = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!(
        "median {:.2} ms, p95 {:.2} ms, max {:.2} ms (n = {})",
        pick(0.5),
        pick(0.95),
        v[v.len() - 1],
        v.len()
    )
}

fn status_page(iters: usize) {
    let inv = Arc::new(shipped());
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("lienthong.db")).unwrap());
    let state = Arc::new(LiveState::default());
    state.set_inventory(inv.clone());
    let now = now_ms();
    // Live results: 3 sites down, 5 degraded, 2 in maintenance.
    let down: Vec<&str> = inv.sites.iter().take(3).map(|s| s.slug.as_str()).collect();
    let degraded: Vec<&str> = inv
        .sites
        .iter()
        .skip(40)
        .take(5)
        .map(|s| s.slug.as_str())
        .collect();
    let maint: Vec<&str> = inv
        .sites
        .iter()
        .skip(90)
        .take(2)
        .map(|s| s.slug.as_str())
        .collect();
    for def in &inv.checks {
        let site = def.id.site.as_deref().unwrap_or("");
        let is_down = down.contains(&site);
        let slow = degraded.contains(&site) && &*def.id.name == "endpoint";
        state.record(&def.id, &outcome(def, is_down, slow), at(now - 2_000));
        let h = if is_down {
            Health::Down
        } else if slow {
            Health::Degraded
        } else {
            Health::Up
        };
        state.set_health(&def.id, h);
    }
    for s in &inv.sites {
        let st = if down.contains(&s.slug.as_str()) {
            SiteStatus::Down
        } else if degraded.contains(&s.slug.as_str()) {
            SiteStatus::Degraded
        } else if maint.contains(&s.slug.as_str()) {
            SiteStatus::Maintenance
        } else {
            SiteStatus::Up
        };
        state.set_site_status(&s.slug, st);
    }
    state.set_running(true);
    // 25 hours of minute history, written and rolled up as the service does.
    let t = Instant::now();
    let end_m = now / MINUTE_MS;
    for m in end_m - 25 * 60..end_m {
        let rows: Vec<MinuteRow> = inv
            .checks
            .iter()
            .enumerate()
            .map(|(i, def)| {
                let bad =
                    def.id.site.as_deref().is_some_and(|s| down.contains(&s)) && m > end_m - 20;
                MinuteRow {
                    check: def.id.key(),
                    minute: m,
                    stats: minute_stats(def, (m as u64) * 1000 + i as u64, bad),
                }
            })
            .collect();
        store.history_write(&rows).unwrap();
        if m % 60 == 0 {
            store.history_rollup(m).unwrap();
        }
    }
    store.history_rollup(end_m).unwrap();
    println!(
        "history: 25 h × {} checks written and rolled up in {:.1} s",
        inv.checks.len(),
        t.elapsed().as_secs_f64()
    );
    // Open incidents.
    for (i, slug) in down.iter().enumerate() {
        let site = inv.site(slug).unwrap();
        store
            .open_incident(
                &NewIncident {
                    key: format!("site/{slug}/link"),
                    title: format!("Mất kết nối: {}", site.name),
                    title_en: format!("Link down: {}", site.name),
                    severity: Severity::Critical,
                    scope: Scope::Site,
                    sites: vec![slug.to_string()],
                    service: None,
                    teams: vec![],
                },
                &NewEvent {
                    at: now - 600_000 - i as i64 * 60_000,
                    kind: EventKind::Opened,
                    check: Some(format!("site/{slug}/link")),
                    state: Some("down".into()),
                    message: "down".into(),
                    evidence: None,
                },
                &[],
            )
            .unwrap();
    }

    // Server time without HTTP: gather (live state, store, readiness) + render.
    let cache = PageCache::default();
    let t = Instant::now();
    let d = gather(&state, &store, &cache, now);
    let gather_cold = t.elapsed();
    let t = Instant::now();
    let page = render_index(&d, Lang::Vi).into_string();
    let render = t.elapsed();
    println!(
        "GET / cold (readiness of the last 24 h computed): gather {:.1} ms + render {:.1} ms; page {} bytes ({:.0} KB)",
        gather_cold.as_secs_f64() * 1e3,
        render.as_secs_f64() * 1e3,
        page.len(),
        page.len() as f64 / 1024.0
    );
    if let Ok(p) = std::env::var("BENCH_PAGE_OUT") {
        std::fs::write(&p, &page).unwrap();
        println!("page written to {p}");
    }
    let mut warm = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        let d = gather(&state, &store, &cache, now);
        let p = render_index(&d, Lang::Vi).into_string();
        std::hint::black_box(p);
        warm.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "GET / warm (readiness cached, recomputed once a minute): {}",
        stats(warm)
    );

    // Over HTTP on loopback, as a browser gets it.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let app = router(AppState {
            metrics: Arc::new(lienthong::metrics::Metrics::new()),
            state: state.clone(),
            store: store.clone(),
            events: tokio::sync::broadcast::channel(16).0,
            api_token: None,
            maintenance_changed: Arc::new(tokio::sync::Notify::new()),
            pages: Arc::new(PageCache::default()),
            actions: Default::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let get = |path: String| {
            let http = http.clone();
            async move {
                let t = Instant::now();
                let r = http
                    .get(format!("http://{addr}{path}"))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{path}: {}", r.status());
                let body = r.bytes().await.unwrap();
                (t.elapsed().as_secs_f64() * 1e3, body.len())
            }
        };
        let (first, size) = get("/".into()).await;
        let mut times = Vec::new();
        for _ in 0..iters {
            times.push(get("/".into()).await.0);
        }
        println!(
            "HTTP GET / on 127.0.0.1: first {first:.1} ms, then {}; body {size} bytes",
            stats(times)
        );
        let slug = down[0];
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..iters.min(100) {
            let (t, n) = get(format!("/sites/{slug}")).await;
            times.push(t);
            size = n;
        }
        println!(
            "HTTP GET /sites/{slug}: {}; body {size} bytes",
            stats(times)
        );
        let mut times = Vec::new();
        for _ in 0..20 {
            times.push(get("/api/v1/readiness".into()).await.0);
        }
        println!(
            "HTTP GET /api/v1/readiness (24 h, uncached): {}",
            stats(times)
        );
    });
}

/// The shipped inventory with two more checks per site: 5 per site.
fn five_checks() -> Inventory {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("probes.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let extra = r#"
[[template]]
name = "portal"
role = "other"
title = "Cổng thông tin"
probe.http = { url = "{addr.endpoint}" }

[[template]]
name = "sip"
role = "other"
title = "Tổng đài"
probe.tcp = { address = "{addr.video}" }

"#;
    let i = text.find("[inventory]").unwrap();
    let text = format!("{}{extra}{}", &text[..i], &text[i..]);
    (*Config::from_str(&path, &text).unwrap().inventory).clone()
}

fn readiness_db(inv: &Inventory, end_m: i64, days: i64) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!(
        "readiness-{DB_VERSION}-{days}d-{}checks-{end_m}.db",
        inv.checks.len()
    ));
    if path.exists() {
        println!("reusing {}", path.display());
        return path;
    }
    let tmp = path.with_extension("partial");
    let _ = std::fs::remove_file(&tmp);
    let store = Store::open(&tmp).unwrap();
    let t = Instant::now();
    let start_m = end_m - days * 1440 - 60;
    let keys: Vec<String> = inv.checks.iter().map(|c| c.id.key()).collect();
    // Each site has a few outages over the month.
    let outage: HashMap<&str, (i64, i64)> = inv
        .sites
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 7 == 0)
        .map(|(i, s)| {
            let at = start_m + (i as i64 * 7919) % (days * 1440);
            (s.slug.as_str(), (at, at + 20 + (i as i64 % 90)))
        })
        .collect();
    let mut rows = Vec::with_capacity(inv.checks.len() * 60);
    let mut written = 0usize;
    for m in start_m..end_m {
        for (i, def) in inv.checks.iter().enumerate() {
            let bad = def
                .id
                .site
                .as_deref()
                .and_then(|s| outage.get(s))
                .is_some_and(|&(a, b)| (a..b).contains(&m));
            rows.push(MinuteRow {
                check: keys[i].clone(),
                minute: m,
                stats: minute_stats(def, (m as u64) * 4096 + i as u64, bad),
            });
        }
        if m % 60 == 59 {
            written += store.history_write(&rows).unwrap();
            rows.clear();
            store.history_rollup(m + 1 + 5).unwrap();
        }
        if m % (1440 * 5) == 0 {
            println!(
                "  building: {:.0} % ({} rows, {:.0} s)",
                (m - start_m) as f64 * 100.0 / (end_m - start_m) as f64,
                written,
                t.elapsed().as_secs_f64()
            );
        }
    }
    written += store.history_write(&rows).unwrap();
    drop(store);
    std::fs::rename(&tmp, &path).unwrap();
    for ext in ["partial-wal", "partial-shm"] {
        let _ = std::fs::remove_file(path.with_extension(ext));
    }
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    println!(
        "built {} in {:.0} s: {written} minute rows, {:.0} MB",
        path.display(),
        t.elapsed().as_secs_f64(),
        size as f64 / 1e6
    );
    path
}

fn readiness_30_days() {
    let inv = five_checks();
    let site_checks = inv.checks.iter().filter(|c| c.id.site.is_some()).count();
    println!(
        "inventory: {} sites, {} site checks ({} per site), {} service checks",
        inv.sites.len(),
        site_checks,
        site_checks / inv.sites.len(),
        inv.checks.len() - site_checks
    );
    // A fixed end, 37 minutes past the hour: both edges of every window read minute rows.
    let end = lienthong::localtime::parse_local("2026-06-01 00:37").unwrap();
    let end_m = end / MINUTE_MS;
    let path = readiness_db(&inv, end_m, 30);
    let store = Store::open(&path).unwrap();
    for (name, span) in [("24 h", 1i64), ("7 days", 7), ("30 days", 30)] {
        let from = end - span * 86_400_000;
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..5 {
            let t = Instant::now();
            let r = readiness::load(&store, &inv, from, end, end).unwrap();
            times.push(t.elapsed().as_secs_f64() * 1e3);
            last = Some(r);
        }
        let r = last.unwrap();
        let t = Instant::now();
        let md = readiness::markdown(&r, Lang::Vi);
        let csv = readiness::csv(&r, Lang::Vi);
        let render = t.elapsed().as_secs_f64() * 1e3;
        println!(
            "readiness over {name}: {}; {} — md {} KB + csv {} KB rendered in {render:.1} ms",
            stats(times),
            r.city.headline,
            md.len() / 1024,
            csv.len() / 1024
        );
    }
}
