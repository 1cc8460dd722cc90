//! Readiness report on a fixed database built here through the real path (engine recorder →
//! minute rows → hourly rollups): golden Markdown and CSV, the CLI on the same database, and
//! hourly rollups giving the same numbers as the minutes they came from.
//!
//! Regenerate the golden files with `UPDATE_GOLDEN=1 cargo test --test readiness`.

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use lienthong::availability::Recorder;
use lienthong::config::{CheckDef, Config, Inventory};
use lienthong::incidents::{EventKind, NewEvent, NewIncident, Scope, Severity, Store};
use lienthong::localtime::parse_local;
use lienthong::probe::http::HttpDetails;
use lienthong::probe::icmp::IcmpDetails;
use lienthong::probe::{Details, Failure, Outcome, Reason};
use lienthong::readiness::{self, Lang, Verdict};

const CONFIG: &str = r#"
[incidents]
database = "lienthong.db"

[readiness]
window = "24h"
availability = { mainland = 0.995, island = 0.98, datacenter = 0.999 }
min_observed = "10m"
min_coverage = 0.9

[link_class.mainland]
interval = "10s"
timeout = "5s"
packets = 5
pacing = "200ms"
max_loss = 0.4
degraded_loss = 0.05
degraded_rtt = "60ms"
degraded_jitter = "20ms"
degraded_latency = "2s"

[link_class.island]
interval = "10s"
timeout = "9s"
packets = 40
pacing = "150ms"
max_loss = 0.6
degraded_loss = 0.10
degraded_rtt = "400ms"
degraded_jitter = "120ms"
degraded_latency = "5s"

[link_class.datacenter]
interval = "10s"
timeout = "4s"
packets = 5
pacing = "200ms"
max_loss = 0.4
degraded_loss = 0.02
degraded_rtt = "20ms"
degraded_jitter = "10ms"
degraded_latency = "2s"

[[template]]
name = "link"
role = "link"
title = "Đường truyền mạng"
title_en = "Network link"
probe.icmp = { host = "{addr.link}" }

[[template]]
name = "endpoint"
role = "endpoint"
title = "Trung tâm phục vụ hành chính công"
title_en = "Public-service centre"
probe.http = { url = "{addr.endpoint}" }

[[service]]
slug = "lgsp"
name = "Nền tảng tích hợp, chia sẻ dữ liệu (LGSP)"
name_en = "Data-sharing platform (LGSP)"
link_class = "datacenter"
[[service.check]]
name = "api"
probe.http = { url = "http://127.0.0.1:1/status" }

# Ward agents: their copies of the service checks feed "shared software reachable from the
# ward" (the other two sites: not applicable).
[[agent]]
site = "phuong-tan-dinh"
token_sha256 = "0b6f7c1a3e7d4f0c9a8b2d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192"

[[agent]]
site = "phuong-ben-thanh"
token_sha256 = "1c7f8d2b4f8e5a1dab9c3e6f7a819203b4c5d6e7f8091a2b3c4d5e6f70819203"

[[team]]
name = "to-trung-tam"
title = "Tổ kỹ thuật khu trung tâm"
former_districts = ["Quận 1"]

[[team]]
name = "to-phan-mem"
title = "Tổ phần mềm dùng chung"
services = ["*"]

[[team]]
name = "to-bien-dao"
title = "Tổ kỹ thuật biển, đảo"
sites = ["dac-khu-con-dao"]
former_provinces = ["ba-ria-vung-tau"]

[inventory]
sites = [
  { code = "26734", slug = "phuong-ben-thanh", name = "Phường Bến Thành", kind = "phuong", former_province = "tphcm", former_district = "Quận 1", island = false, lat = 10.77, lon = 106.69, addr = { link = "127.0.0.1", endpoint = "http://127.0.0.1:1/" } },
  { code = "26737", slug = "phuong-tan-dinh", name = "Phường Tân Định", kind = "phuong", former_province = "tphcm", former_district = "Quận 1", island = false, lat = 10.79, lon = 106.70, addr = { link = "127.0.0.1", endpoint = "http://127.0.0.1:1/" } },
  { code = "26680", slug = "dac-khu-con-dao", name = "Đặc khu Côn Đảo", kind = "dac-khu", former_province = "ba-ria-vung-tau", former_district = "Huyện Côn Đảo", island = true, lat = 8.68, lon = 106.61, addr = { link = "127.0.0.1", endpoint = "http://127.0.0.1:1/" } },
  { code = "25000", slug = "phuong-thu-dau-mot", name = "Phường Thủ Dầu Một", kind = "phuong", former_province = "binh-duong", former_district = "TP. Thủ Dầu Một", island = false, lat = 10.98, lon = 106.65, addr = { link = "127.0.0.1", endpoint = "http://127.0.0.1:1/" } },
]
"#;

/// The window of the report: one day, local time.
const FROM: &str = "2026-11-01 07:00";
const TO: &str = "2026-11-02 07:00";

fn inventory() -> Inventory {
    (*Config::from_str(Path::new("probes.toml"), CONFIG)
        .unwrap()
        .inventory)
        .clone()
}

fn icmp(received: u32, sent: u32, rtt_ms: f64) -> Outcome {
    Outcome {
        success: received * 10 > sent * 4,
        duration: Duration::from_secs(1),
        failure: (received * 10 <= sent * 4).then(|| Failure {
            reason: Reason::PacketLoss,
            message: "lost".into(),
        }),
        details: Details::Icmp(IcmpDetails {
            sent,
            received,
            rtt_avg: (received > 0).then_some(rtt_ms / 1000.0),
            loss_ratio: 1.0 - received as f64 / sent as f64,
            ..Default::default()
        }),
    }
}

fn http(ok: bool, ms: u64) -> Outcome {
    Outcome {
        success: ok,
        duration: Duration::from_millis(ms),
        failure: (!ok).then(|| Failure {
            reason: Reason::ConnectRefused,
            message: "refused".into(),
        }),
        details: Details::Http(HttpDetails::default()),
    }
}

/// What each check returns at minute `m` of the window (0 = FROM) and run `k` of that minute,
/// and whether a maintenance window covers it.
fn outcome(def: &CheckDef, m: i64, k: i64) -> Option<(Outcome, bool)> {
    let site = def.id.site.as_deref().unwrap_or("");
    let link = &*def.id.name == "link";
    Some(match (site, def.id.service.as_deref()) {
        // Healthy all day.
        ("phuong-tan-dinh", _) => {
            if link {
                (icmp(5, 5, 8.0 + (k % 3) as f64), false)
            } else {
                (http(true, 120), false)
            }
        }
        // Link cut for 30 minutes in the afternoon: every check fails.
        ("phuong-ben-thanh", _) => {
            let down = (480..510).contains(&m);
            if link {
                (icmp(if down { 0 } else { 5 }, 5, 9.0), false)
            } else {
                (http(!down, 150), false)
            }
        }
        // Island: ~3 % loss, RTT 250 ms; down 02:00–04:00 inside a maintenance window.
        ("dac-khu-con-dao", _) => {
            let maint = (1140..1260).contains(&m);
            if link {
                let rx = if maint {
                    0
                } else {
                    40 - u32::from((m + k) % 8 == 0) * 10
                };
                (icmp(rx, 40, 250.0), maint)
            } else {
                (http(!maint, 900), maint)
            }
        }
        // Monitoring of this site started 5 minutes before the end of the window.
        ("phuong-thu-dau-mot", _) => {
            if m < 1435 {
                return None;
            }
            if link {
                (icmp(5, 5, 20.0), false)
            } else {
                (http(true, 200), false)
            }
        }
        // The shared service answers slowly one run in ten: p95 over its 2 s limit.
        (_, Some("lgsp")) => (
            http(true, if k == 0 && m % 2 == 0 { 2600 } else { 300 }),
            false,
        ),
        _ => return None,
    })
}

struct Fixture {
    _dir: tempfile::TempDir,
    db: PathBuf,
    config: PathBuf,
    store: Store,
    inv: Inventory,
    from: i64,
    to: i64,
}

/// Builds the database: six runs per check per minute through the engine's recorder, flushed
/// minute by minute, hours rolled up; one open and one resolved critical incident.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lienthong.db");
    let config = dir.path().join("probes.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let store = Store::open(&db).unwrap();
    let inv = inventory();
    let from = parse_local(FROM).unwrap();
    let to = parse_local(TO).unwrap();
    let rec = Recorder::new();
    // An hour of history before the window, so the window's start is not the first data.
    for m in -60..(to - from) / 60_000 {
        for k in 0..6 {
            let at =
                UNIX_EPOCH + Duration::from_millis((from + m * 60_000 + k * 10_000 + 500) as u64);
            for def in &inv.checks {
                if let Some((o, maint)) = outcome(def, m.max(0), k) {
                    if m < 0 && def.id.site.as_deref() == Some("phuong-thu-dau-mot") {
                        continue;
                    }
                    rec.record(&def.id, &o, at, maint, false);
                }
            }
        }
        let end = UNIX_EPOCH + Duration::from_millis((from + (m + 1) * 60_000) as u64);
        store.history_write(&rec.take(end, false)).unwrap();
        if m % 60 == 59 {
            store
                .history_rollup(lienthong::availability::minute_of(end) + 10)
                .unwrap();
        }
    }
    let incident = |key: &str, site: &str, title: &str, at: i64| {
        store
            .open_incident(
                &NewIncident {
                    key: key.into(),
                    title: format!("Mất kết nối: {title}"),
                    title_en: format!("Link down: {title}"),
                    severity: Severity::Critical,
                    scope: Scope::Site,
                    sites: vec![site.into()],
                    service: None,
                    teams: vec![],
                },
                &NewEvent {
                    at,
                    kind: EventKind::Opened,
                    check: Some(format!("{key}/link")),
                    state: Some("down".into()),
                    message: "down".into(),
                    evidence: None,
                },
                &[],
            )
            .unwrap()
            .0
    };
    // Resolved before the end: does not count.
    let old = incident(
        "site/phuong-tan-dinh",
        "phuong-tan-dinh",
        "Phường Tân Định",
        from + 3_600_000,
    );
    store
        .resolve(
            old,
            &NewEvent {
                at: from + 3_900_000,
                kind: EventKind::Resolved,
                check: None,
                state: None,
                message: "up".into(),
                evidence: None,
            },
            &[],
        )
        .unwrap();
    // Still open at the end of the window.
    incident(
        "site/phuong-ben-thanh",
        "phuong-ben-thanh",
        "Phường Bến Thành",
        to - 1_800_000,
    );
    Fixture {
        _dir: dir,
        db,
        config,
        store,
        inv,
        from,
        to,
    }
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} missing: run UPDATE_GOLDEN=1 cargo test --test readiness",
            path.display()
        )
    });
    if expected != actual {
        let out = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/test-artifacts")
            .join(name);
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        std::fs::write(&out, actual).unwrap();
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from the golden file at line {} (actual written to {}):\n  expected: {:?}\n  actual:   {:?}",
            line + 1,
            out.display(),
            expected.lines().nth(line),
            actual.lines().nth(line)
        );
    }
}

#[test]
fn golden_markdown_and_csv() {
    let f = fixture();
    let now = f.to + 300_000;
    let r = readiness::load(&f.store, &f.inv, f.from, f.to, now).unwrap();

    // The verdicts the scenario was built for.
    let verdict = |slug: &str| r.sites.iter().find(|s| s.slug == slug).unwrap();
    assert_eq!(verdict("phuong-tan-dinh").verdict, Verdict::Ready);
    let bt = verdict("phuong-ben-thanh");
    assert_eq!(bt.verdict, Verdict::NotReady);
    let codes: Vec<&str> = bt.reasons.iter().map(|f| f.code).collect();
    assert_eq!(
        codes,
        [
            "critical_incident",
            "availability",
            "availability",
            "ward_services"
        ]
    );
    // The ward's agent lost the service with the link: the criterion fails there, holds at
    // Tân Định, and does not apply where there is no agent.
    assert_eq!(bt.ward_services.verdict, Some(Verdict::NotReady));
    assert_eq!(bt.ward_services.checks.len(), 1);
    assert_eq!(bt.ward_services.target, 0.995);
    assert!((bt.ward_services.availability.unwrap() - 1410.0 / 1440.0).abs() < 1e-9);
    let td = verdict("phuong-tan-dinh");
    assert_eq!(td.ward_services.verdict, Some(Verdict::Ready));
    assert_eq!(
        td.checks.len(),
        2,
        "agent copies are not the site's own checks"
    );
    assert_eq!(r.services[0].checks.len(), 1, "nor the service's");
    let link = &bt.checks[0];
    assert!((link.availability.unwrap() - 1410.0 / 1440.0).abs() < 1e-9);
    assert_eq!((link.observed_minutes, link.expected_minutes), (1440, 1440));
    let cd = verdict("dac-khu-con-dao");
    assert_eq!(cd.verdict, Verdict::Ready, "{:?}", cd.reasons);
    assert_eq!(cd.checks[0].maintenance_minutes, 120);
    assert_eq!(cd.checks[0].expected_minutes, 1320);
    let loss = cd.checks[0].loss.unwrap();
    assert!((0.02..0.05).contains(&loss), "island loss {loss}");
    assert!(!cd.ward_services.applicable);
    assert_eq!(cd.ward_services.verdict, None);
    assert_eq!(cd.ward_services.text(Lang::Vi), "không áp dụng");
    assert_eq!(cd.ward_services.text(Lang::En), "n/a");
    let tdm = verdict("phuong-thu-dau-mot");
    assert_eq!(tdm.verdict, Verdict::InsufficientData);
    assert_eq!(tdm.reasons[0].code, "too_short");
    assert_eq!(r.services[0].verdict, Verdict::NotReady);
    assert_eq!(r.services[0].reasons[0].code, "latency");
    assert_eq!(r.city.headline, "2/4 sẵn sàng");
    assert!(!r.city.all_ready);
    assert_eq!(r.teams.len(), 3);
    assert_eq!((r.teams[0].total, r.teams[0].not_ready), (2, 1));
    assert_eq!(
        (
            r.teams[1].total,
            r.teams[1].services_total,
            r.teams[1].services_ready
        ),
        (0, 1, 0)
    );
    assert_eq!(r.teams[2].total, 1);
    assert_eq!(r.from_local, FROM);
    assert_eq!(r.to_local, TO);

    golden("readiness.md", &readiness::markdown(&r, Lang::Vi));
    golden("readiness.en.md", &readiness::markdown(&r, Lang::En));
    golden("readiness.csv", &readiness::csv(&r, Lang::Vi));

    // The command line on the same database (the service stopped) prints the same CSV.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .args([
            "readiness",
            "--format",
            "csv",
            "--from",
            FROM,
            "--to",
            TO,
            "--config",
        ])
        .arg(&f.config)
        .arg("--database")
        .arg(&f.db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        readiness::csv(&r, Lang::Vi)
    );
    // JSON carries the same verdicts; HTML is a full document.
    for (format, needle) in [
        ("json", "\"headline\": \"2/4 sẵn sàng\""),
        ("json", "\"ward_services\": {"),
        ("html", "2/4 sẵn sàng"),
        ("md", "**2/4 sẵn sàng**"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_lienthong"))
            .args([
                "readiness",
                "--format",
                format,
                "--from",
                FROM,
                "--to",
                TO,
                "--config",
            ])
            .arg(&f.config)
            .current_dir(f.db.parent().unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains(needle), "{format}: {text}");
    }
    // Bad input is explained.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .args(["readiness", "--from", "yesterday", "--config"])
        .arg(&f.config)
        .arg("--database")
        .arg(&f.db)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("YYYY-MM-DD HH:MM"));
}

/// Run where there is neither a config nor a database: one message says what is missing and
/// how to point at it (the I/O error once, not twice).
#[test]
fn readiness_without_config_or_database_says_what_to_pass() {
    let empty = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_lienthong"))
            .args(args)
            .current_dir(empty.path())
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&["readiness"]);
    assert!(err.contains("no database at lienthong.db"), "{err}");
    assert!(err.contains("--database PATH"), "{err}");
    let err = run(&["readiness", "--config", "probes.toml"]);
    assert_eq!(
        err.matches("No such file or directory").count(),
        1,
        "said once: {err}"
    );
    assert!(err.contains("hint: no probes.toml in "), "{err}");
    assert!(err.contains("--config PATH"), "{err}");
}

#[test]
fn hourly_rollups_match_the_minutes_and_retention_keeps_reports() {
    let f = fixture();
    let now = f.to + 300_000;
    let from_m = f.from / 60_000;
    let to_m = f.to / 60_000;
    // Hour-aligned window: hours (rolled up) and minutes give the same numbers.
    let mixed = f.store.history_window(from_m, to_m).unwrap();
    // One hour recomputed from its minutes (windows not aligned to the hour read minute
    // rows only) equals the hourly row.
    let h0 = from_m + 8 * 60; // the outage hour of Bến Thành
    let by_hour = f.store.history_window(h0, h0 + 60).unwrap();
    let by_minutes = {
        let a = f.store.history_window(h0, h0 + 30).unwrap();
        let b = f.store.history_window(h0 + 30, h0 + 60).unwrap();
        let mut m = a.clone();
        for (k, c) in b.checks {
            m.checks.get_mut(&k).unwrap().agg.merge(&c.agg);
        }
        m
    };
    for (k, c) in &by_hour.checks {
        let m = &by_minutes.checks[k];
        assert_eq!(c.agg.minutes, m.agg.minutes, "{k}");
        assert_eq!(c.agg.attempts, m.agg.attempts, "{k}");
        assert_eq!(c.agg.hist, m.agg.hist, "{k}");
        assert!((c.agg.avail - m.agg.avail).abs() < 1e-9, "{k}");
    }
    let bt = &by_hour.checks["site/phuong-ben-thanh/link"].agg;
    assert_eq!((bt.minutes, bt.successes, bt.attempts), (60, 180, 360));
    assert!(!mixed.start_rounded);

    // Retention: minutes older than the end of the window deleted, hours kept. A report on an
    // hour-aligned window is unchanged; one starting mid-hour is rounded to the hour.
    let before = readiness::load(&f.store, &f.inv, f.from, f.to, now).unwrap();
    let (m, h) = f.store.history_prune(to_m, 0).unwrap();
    assert!(m > 0 && h == 0, "{m} {h}");
    let after = readiness::load(&f.store, &f.inv, f.from, f.to, now).unwrap();
    assert_eq!(
        readiness::csv(&before, Lang::Vi),
        readiness::csv(&after, Lang::Vi)
    );
    let mid = readiness::load(&f.store, &f.inv, f.from + 1_800_000, f.to, now).unwrap();
    assert!(mid.start_rounded);
    assert!(readiness::markdown(&mid, Lang::Vi).contains("tính trọn giờ"));
}
