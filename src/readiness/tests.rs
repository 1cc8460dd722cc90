use super::render::csv_field;
use super::*;
use crate::availability::{bucket_of, MinuteStats, SparseHist};
use crate::config::Config;
use crate::incidents::rollups::CheckWindow;
use crate::incidents::{IncidentState, Severity};

const CONFIG: &str = r#"
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

[link_class.slow]
interval = "2m"
timeout = "5s"
packets = 5
pacing = "200ms"
max_loss = 0.4
degraded_loss = 0.05
degraded_rtt = "60ms"
degraded_jitter = "20ms"
degraded_latency = "2s"

[readiness]
availability = { mainland = 0.99 }
min_observed = "10m"
min_coverage = 0.9

[[template]]
name = "link"
role = "link"
title = "Đường truyền"
probe.icmp = { host = "{addr.link}" }

[[template]]
name = "endpoint"
role = "endpoint"
title = "Cổng"
probe.http = { url = "http://{addr.link}/" }

[inventory]
sites = [
  { code = "1", slug = "a", name = "Phường A", kind = "phuong", former_province = "tphcm", former_district = "Quận 1", island = false, lat = 10.7, lon = 106.7, addr = { link = "127.0.0.1" } },
]
"#;

fn inv() -> Inventory {
    (*Config::from_str(std::path::Path::new("t.toml"), CONFIG)
        .unwrap()
        .inventory)
        .clone()
}

/// `n` minutes from minute 0 with `ok` of `runs` passing, latency `lat` ms.
fn minutes(n: u64, runs: u32, ok: u32, lat: f64, maint: bool) -> CheckAgg {
    let mut a = CheckAgg::default();
    for _ in 0..n {
        let mut s = MinuteStats::default();
        if maint {
            s.maint = runs;
        } else {
            s.attempts = runs;
            s.successes = ok;
            s.lat_n = ok;
            s.lat_sum = lat * ok as f64;
            s.lat_max = lat;
            s.sent = runs * 5;
            s.lost = 0;
            s.hist = SparseHist(vec![(bucket_of(lat), ok)]);
        }
        a.add_minute(&s);
    }
    a
}

fn data(from: i64, to: i64, checks: &[(&str, i64, CheckAgg)]) -> WindowData {
    WindowData {
        from_minute: from,
        to_minute: to,
        checks: checks
            .iter()
            .map(|(k, first, agg)| {
                (
                    k.to_string(),
                    CheckWindow {
                        first_minute: *first,
                        agg: agg.clone(),
                    },
                )
            })
            .collect(),
        start_rounded: false,
    }
}

fn run(d: &WindowData, critical: &[Incident]) -> Report {
    compute(
        &inv(),
        d,
        critical,
        d.from_minute * 60_000,
        d.to_minute * 60_000,
        d.to_minute * 60_000,
    )
}

/// The test config plus a shared service and a ward agent at `a` (a second site `b` has
/// none).
fn inv_with_agent() -> Inventory {
    let text = CONFIG.replace(
        "[inventory]",
        r#"[link_class.datacenter]
interval = "10s"
timeout = "4s"
packets = 5
pacing = "200ms"
max_loss = 0.4
degraded_loss = 0.02
degraded_rtt = "20ms"
degraded_jitter = "10ms"
degraded_latency = "1s"

[[service]]
slug = "dms"
name = "Quản lý văn bản"
link_class = "datacenter"
[[service.check]]
name = "web"
title = "Ứng dụng"
probe.http = { url = "http://127.0.0.1:1/" }

[[agent]]
site = "a"
token_sha256 = "0b6f7c1a3e7d4f0c9a8b2d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192"

[inventory]"#,
    );
    let text = text.replace(
        "addr = { link = \"127.0.0.1\" } },\n]",
        "addr = { link = \"127.0.0.1\" } },\n  { code = \"2\", slug = \"b\", name = \"Phường B\", kind = \"phuong\", former_province = \"tphcm\", former_district = \"Quận 1\", island = false, lat = 10.8, lon = 106.7, addr = { link = \"127.0.0.1\" } },\n]",
    );
    (*Config::from_str(std::path::Path::new("t.toml"), &text)
        .unwrap()
        .inventory)
        .clone()
}

#[test]
fn shared_services_unreachable_from_the_ward_alone_make_it_not_ready() {
    let inv = inv_with_agent();
    let own = |site: &str| {
        [
            (
                format!("site/{site}/link"),
                0,
                minutes(60, 6, 6, 12.0, false),
            ),
            (
                format!("site/{site}/endpoint"),
                0,
                minutes(60, 6, 6, 300.0, false),
            ),
        ]
    };
    let mut rows: Vec<(String, i64, CheckAgg)> = own("a").into_iter().chain(own("b")).collect();
    // The data centre reaches the service all hour; the ward's agent only 50 of 60 minutes
    // (and slowly: the data centre's 1 s latency limit does not apply from the ward).
    rows.push(("service/dms/web".into(), 0, minutes(60, 6, 6, 300.0, false)));
    let mut ward = minutes(50, 6, 6, 1800.0, false);
    ward.merge(&minutes(10, 6, 0, 0.0, false));
    rows.push(("service/dms/web@site:a".into(), 0, ward));
    let refs: Vec<(&str, i64, CheckAgg)> = rows
        .iter()
        .map(|(k, f, a)| (k.as_str(), *f, a.clone()))
        .collect();
    let r = compute(&inv, &data(0, 60, &refs), &[], 0, 3_600_000, 3_600_000);
    let a = &r.sites[0];
    assert_eq!(a.verdict, Verdict::NotReady, "{:?}", a.reasons);
    let codes: Vec<&str> = a.reasons.iter().map(|f| f.code).collect();
    assert_eq!(codes, ["ward_services"]);
    assert!(
        a.reasons[0].vi.contains("(từ phường)"),
        "{}",
        a.reasons[0].vi
    );
    assert_eq!(a.ward_services.verdict, Some(Verdict::NotReady));
    assert_eq!(a.ward_services.target, 0.99);
    assert!((a.ward_services.availability.unwrap() - 50.0 / 60.0).abs() < 1e-9);
    assert_eq!(a.ward_services.checks[0].latency_limit_ms, None);
    assert_eq!(
        a.checks.len(),
        2,
        "the agent copy is not one of the site's own checks"
    );
    // The service itself is judged from the data centre only: ready.
    assert_eq!(
        r.services[0].verdict,
        Verdict::Ready,
        "{:?}",
        r.services[0].reasons
    );
    assert_eq!(r.services[0].checks.len(), 1);
    // No agent at b: not applicable, and b is ready on its own checks.
    let b = &r.sites[1];
    assert_eq!(b.verdict, Verdict::Ready, "{:?}", b.reasons);
    assert!(!b.ward_services.applicable);
    assert_eq!(b.ward_services.verdict, None);
    let md = markdown(&r, Lang::Vi);
    assert!(md.contains("| không áp dụng |"), "{md}");
    assert!(md.contains("chưa sẵn sàng (83,33 %)"), "{md}");
    let csv = csv(&r, Lang::En);
    assert!(csv.contains(",service/dms/web@site:a,not ready,"), "{csv}");
    // Without the agent's data (a new agent): insufficient, not ready.
    let refs: Vec<(&str, i64, CheckAgg)> = refs
        .into_iter()
        .filter(|(k, _, _)| !k.contains('@'))
        .collect();
    let r = compute(&inv, &data(0, 60, &refs), &[], 0, 3_600_000, 3_600_000);
    assert_eq!(
        r.sites[0].ward_services.verdict,
        Some(Verdict::InsufficientData)
    );
    assert_eq!(r.sites[0].verdict, Verdict::InsufficientData);
}

#[test]
fn no_data_is_insufficient_not_ready() {
    let r = run(&data(0, 60, &[]), &[]);
    assert_eq!(r.city.total, 1);
    assert_eq!(r.city.insufficient_data, 1);
    // No verdict anywhere: collecting, not "0/1 sẵn sàng".
    assert_eq!(r.city.headline, "Đang thu thập dữ liệu — còn ~10 phút");
    assert_eq!(r.city.headline_en, "Collecting data — about 10 min left");
    assert_eq!(r.city.collecting_minutes_left, Some(10));
    let md = markdown(&r, Lang::Vi);
    assert!(md.contains("không đủ dữ liệu để kết luận"), "{md}");
    assert!(!md.contains("chưa sẵn sàng toàn bộ"), "{md}");
    let s = &r.sites[0];
    assert_eq!(s.verdict, Verdict::InsufficientData);
    assert!(s.reasons.iter().all(|f| f.code == "no_data"));
    assert_eq!(s.checks[0].availability, None);
    assert_eq!(s.checks[0].coverage, None);
}

#[test]
fn full_good_window_is_ready() {
    let d = data(
        0,
        60,
        &[
            ("site/a/link", 0, minutes(60, 6, 6, 12.0, false)),
            ("site/a/endpoint", 0, minutes(60, 6, 6, 300.0, false)),
        ],
    );
    let r = run(&d, &[]);
    assert_eq!(
        r.sites[0].verdict,
        Verdict::Ready,
        "{:?}",
        r.sites[0].reasons
    );
    assert_eq!(r.city.headline, "1/1 sẵn sàng");
    assert!(r.city.all_ready);
    let link = &r.sites[0].checks[0];
    assert_eq!(link.availability, Some(1.0));
    assert_eq!((link.observed_minutes, link.expected_minutes), (60, 60));
    assert!((link.latency_quantile_ms.unwrap() / 12.0 - 1.0).abs() < 0.1);
    assert_eq!(link.loss, Some(0.0));
}

#[test]
fn availability_is_per_minute_and_below_target_fails() {
    // 59 good minutes and one minute of 30 failing re-probes: 59/60 = 98.3 % < 99 %.
    let mut link = minutes(59, 6, 6, 12.0, false);
    link.merge(&minutes(1, 30, 0, 0.0, false));
    let d = data(
        0,
        60,
        &[
            ("site/a/link", 0, link),
            ("site/a/endpoint", 0, minutes(60, 6, 6, 300.0, false)),
        ],
    );
    let r = run(&d, &[]);
    let c = &r.sites[0].checks[0];
    assert!((c.availability.unwrap() - 59.0 / 60.0).abs() < 1e-9);
    assert_eq!(r.sites[0].verdict, Verdict::NotReady);
    assert_eq!(r.sites[0].reasons[0].code, "availability");
    assert!(r.sites[0].reasons[0].vi.contains("98,33 % < mục tiêu 99 %"));
}

#[test]
fn maintenance_minutes_are_left_out() {
    // 30 minutes down inside maintenance, 30 good outside: ready, with a note.
    let mut link = minutes(30, 6, 6, 12.0, false);
    link.merge(&minutes(30, 6, 0, 0.0, true));
    let mut ep = minutes(30, 6, 6, 300.0, false);
    ep.merge(&minutes(30, 6, 0, 0.0, true));
    let d = data(
        0,
        60,
        &[("site/a/link", 0, link), ("site/a/endpoint", 0, ep)],
    );
    let r = run(&d, &[]);
    let s = &r.sites[0];
    assert_eq!(s.verdict, Verdict::Ready, "{:?}", s.reasons);
    assert_eq!(s.checks[0].availability, Some(1.0));
    assert_eq!(s.checks[0].expected_minutes, 30);
    assert_eq!(s.checks[0].maintenance_minutes, 30);
    assert!(s.notes.iter().any(|n| n.code == "maintenance"));
}

/// `n` minutes whose runs all came while the prober was isolated.
fn blind(n: u64, runs: u32) -> CheckAgg {
    let mut a = CheckAgg::default();
    for _ in 0..n {
        a.add_minute(&MinuteStats {
            blind: runs,
            ..MinuteStats::default()
        });
    }
    a
}

/// 30 good minutes, then 30 while the prober itself was cut off (its rounds all failed, but
/// they are kept apart as "monitor blind"): ready, expected minutes 30, with a note.
#[test]
fn monitor_blind_minutes_are_left_out() {
    let mut link = minutes(30, 6, 6, 12.0, false);
    link.merge(&blind(30, 6));
    let mut ep = minutes(30, 6, 6, 300.0, false);
    ep.merge(&blind(30, 6));
    let d = data(
        0,
        60,
        &[("site/a/link", 0, link), ("site/a/endpoint", 0, ep)],
    );
    let r = run(&d, &[]);
    let s = &r.sites[0];
    assert_eq!(s.verdict, Verdict::Ready, "{:?}", s.reasons);
    assert_eq!(s.checks[0].availability, Some(1.0));
    assert_eq!(s.checks[0].expected_minutes, 30);
    assert_eq!(s.checks[0].blind_minutes, 30);
    let note = s.notes.iter().find(|n| n.code == "monitor_blind").unwrap();
    assert!(
        note.vi.contains("30 phút máy giám sát mất kết nối"),
        "{}",
        note.vi
    );

    let all = data(
        0,
        60,
        &[
            ("site/a/link", 0, blind(60, 6)),
            ("site/a/endpoint", 0, blind(60, 6)),
        ],
    );
    let r = run(&all, &[]);
    assert_eq!(r.sites[0].verdict, Verdict::InsufficientData);
    assert_eq!(r.sites[0].reasons[0].code, "monitor_blind_only");
}

#[test]
fn all_maintenance_is_insufficient() {
    let d = data(
        0,
        60,
        &[
            ("site/a/link", 0, minutes(60, 6, 0, 0.0, true)),
            ("site/a/endpoint", 0, minutes(60, 6, 0, 0.0, true)),
        ],
    );
    let r = run(&d, &[]);
    assert_eq!(r.sites[0].verdict, Verdict::InsufficientData);
    assert_eq!(r.sites[0].reasons[0].code, "maintenance_only");
}

#[test]
fn partial_windows() {
    // Monitoring started 20 minutes before the end of a 24 h window: judged on those 20.
    let link = minutes(20, 6, 6, 12.0, false);
    let ep = minutes(20, 6, 6, 300.0, false);
    let d = data(
        0,
        1440,
        &[("site/a/link", 1420, link), ("site/a/endpoint", 1420, ep)],
    );
    let r = run(&d, &[]);
    let s = &r.sites[0];
    assert_eq!(s.verdict, Verdict::Ready, "{:?}", s.reasons);
    assert_eq!(s.checks[0].expected_minutes, 20);
    assert!(s.checks[0].monitored_since.is_some());
    assert!(s.notes.iter().any(|n| n.code == "since"));

    // Only 5 minutes: too short.
    let d = data(
        0,
        1440,
        &[
            ("site/a/link", 1435, minutes(5, 6, 6, 12.0, false)),
            ("site/a/endpoint", 1435, minutes(5, 6, 6, 300.0, false)),
        ],
    );
    let r = run(&d, &[]);
    assert_eq!(r.sites[0].verdict, Verdict::InsufficientData);
    assert_eq!(r.sites[0].reasons[0].code, "too_short");

    // A gap (prober stopped for half of the window): low coverage.
    let d = data(
        0,
        60,
        &[
            ("site/a/link", 0, minutes(30, 6, 6, 12.0, false)),
            ("site/a/endpoint", 0, minutes(30, 6, 6, 300.0, false)),
        ],
    );
    let r = run(&d, &[]);
    assert_eq!(r.sites[0].verdict, Verdict::InsufficientData);
    assert_eq!(r.sites[0].reasons[0].code, "low_coverage");
    assert_eq!(r.sites[0].checks[0].coverage, Some(0.5));

    // Five failing minutes are not enough to judge either...
    let d = data(
        0,
        1440,
        &[
            ("site/a/link", 1435, minutes(5, 6, 0, 0.0, false)),
            ("site/a/endpoint", 1435, minutes(5, 6, 6, 300.0, false)),
        ],
    );
    let r = run(&d, &[]);
    assert_eq!(r.sites[0].verdict, Verdict::InsufficientData);
    assert_eq!(r.sites[0].checks[0].availability, Some(0.0));

    // ... but half an hour of failure over a window half covered is a failure.
    let d = data(
        0,
        60,
        &[
            ("site/a/link", 0, minutes(30, 6, 0, 0.0, false)),
            ("site/a/endpoint", 0, minutes(30, 6, 6, 300.0, false)),
        ],
    );
    let r = run(&d, &[]);
    assert_eq!(r.sites[0].verdict, Verdict::NotReady);
    let codes: Vec<&str> = r.sites[0].checks[0]
        .findings
        .iter()
        .map(|f| f.code)
        .collect();
    assert_eq!(codes, ["low_coverage", "availability"]);
}

#[test]
fn window_and_minute_span() {
    let day = std::time::Duration::from_secs(86_400);
    let now = 100 * 86_400_000;
    assert_eq!(window(None, None, day, now), Ok((now - 86_400_000, now)));
    assert!(window(Some(now), Some(now - 1), day, now).is_err());
    assert!(window(Some(now + 1), None, day, now).is_err());
    // A window running into the future ends now.
    assert_eq!(minute_span(0, now + 3_600_000, now), (0, now / 60_000));
    // Partial minutes at the edges are left out.
    assert_eq!(minute_span(30_000, 150_000, 10_000_000), (1, 2));
    assert_eq!(minute_span(30_000, 50_000, 10_000_000), (1, 1));
}

#[test]
fn slow_interval_expects_fewer_minutes() {
    let mut inv = inv();
    for c in &mut inv.checks {
        std::sync::Arc::make_mut(c).interval = std::time::Duration::from_secs(120);
    }
    let d = data(
        0,
        60,
        &[
            ("site/a/link", 0, minutes(30, 1, 1, 12.0, false)),
            ("site/a/endpoint", 0, minutes(30, 1, 1, 300.0, false)),
        ],
    );
    let r = compute(&inv, &d, &[], 0, 3_600_000, 3_600_000);
    assert_eq!(r.sites[0].checks[0].expected_minutes, 30);
    assert_eq!(r.sites[0].verdict, Verdict::Ready);
}

#[test]
fn latency_loss_and_incidents() {
    let mut link = minutes(60, 6, 6, 90.0, false); // p95 90 ms > 60 ms
    link.lost = link.sent / 10; // 10 % > 5 %
    let d = data(
        0,
        60,
        &[
            ("site/a/link", 0, link),
            ("site/a/endpoint", 0, minutes(60, 6, 6, 300.0, false)),
        ],
    );
    let inc = Incident {
        id: 7,
        key: "site/a/link".into(),
        title: "Mất kết nối: Phường A".into(),
        title_en: "Link down: Phường A".into(),
        severity: Severity::Critical,
        scope: Scope::Site,
        state: IncidentState::Open,
        sites: vec!["a".into()],
        service: None,
        teams: vec![],
        started_at: 1_000,
        acknowledged_at: None,
        acknowledged_by: None,
        resolved_at: None,
        ack_expires_at: None,
        assigned_to: None,
        events: vec![],
        notes: vec![],
    };
    let r = run(&d, &[inc]);
    let codes: Vec<&str> = r.sites[0].reasons.iter().map(|f| f.code).collect();
    assert_eq!(codes, ["critical_incident", "latency", "loss"]);
    assert_eq!(r.sites[0].open_critical[0].id, 7);
    assert_eq!(r.provinces[0].not_ready_sites, ["a"]);
}

#[test]
fn criteria_are_validated() {
    let bad = CONFIG.replace(
        "availability = { mainland = 0.99 }",
        "availability = { mainland = 1.5, nowhere = 0.9 }\nlatency_quantile = 1.0",
    );
    let e = Config::from_str(std::path::Path::new("t.toml"), &bad)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("availability.mainland must be in (0, 1]"), "{e}");
    assert!(e.contains("unknown link class `nowhere`"), "{e}");
    assert!(e.contains("latency_quantile"), "{e}");
    // Classes not listed keep their built-in targets.
    let inv = inv();
    assert_eq!(inv.readiness.target("mainland"), 0.99);
    assert_eq!(inv.readiness.target("island"), 0.98);
    assert_eq!(inv.readiness.target("slow"), 0.99);
}

#[test]
fn formats() {
    assert_eq!(pct(0.99999, Lang::Vi), "99,99 %");
    assert_eq!(pct(1.0, Lang::En), "100%");
    assert_eq!(ms(3.25, Lang::Vi), "3,2 ms");
    assert_eq!(ms(1250.0, Lang::En), "1.25 s");
    assert_eq!(csv_field("a,\"b\""), "\"a,\"\"b\"\"\"");
}
