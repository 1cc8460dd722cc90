//! The incident engine on a virtual clock: a discrete-event copy of the scheduler feeds the real
//! `IncidentEngine` (real SQLite store) with outcomes from a fault model, so hours of probing
//! run in seconds and every timing is exact.

#[path = "support/sim.rs"]
mod sim;

use std::sync::Arc;
use std::time::Duration;

use lienthong::config::{CheckDef, CheckRole};
use lienthong::incidents::correlation::IncidentEngine;
use lienthong::incidents::{EventKind, Scope, Severity, Store};
use sim::*;

fn everything(_: &CheckDef) -> bool {
    true
}

#[test]
fn ward_link_outage_gives_one_incident_with_children_attached() {
    let mut sim = Sim::new(shipped());
    let mut w = World::new(1).fault("phuong-ben-thanh", 100.0, 220.0, Fault::LinkDown);
    sim.run(&mut w, 0.0, 320.0, &everything);
    let all = sim.incidents();
    assert_eq!(
        all.len(),
        1,
        "{:#?}",
        all.iter().map(|i| &i.key).collect::<Vec<_>>()
    );
    let inc = &all[0];
    assert_eq!(inc.key, "site/phuong-ben-thanh/link");
    assert_eq!(inc.title, "Mất kết nối: Phường Bến Thành");
    assert_eq!((inc.severity, inc.scope), (Severity::Critical, Scope::Site));
    assert_eq!(inc.sites, ["phuong-ben-thanh"]);
    let opened = secs_since_epoch(inc.started_at) - 100.0;
    let resolved = secs_since_epoch(inc.resolved_at.expect("resolved")) - 220.0;
    eprintln!(
        "ward link outage: opened after {opened:.1} s, resolved {resolved:.1} s after recovery"
    );
    assert!(opened > 0.0 && opened <= 20.0, "opened after {opened} s");
    assert!(
        resolved > 0.0 && resolved <= 30.0,
        "resolved after {resolved} s"
    );
    let attached: Vec<&str> = inc
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Attached)
        .filter_map(|e| e.check.as_deref())
        .collect();
    assert!(
        attached.contains(&"site/phuong-ben-thanh/endpoint"),
        "{attached:?}"
    );
    assert!(
        attached.contains(&"site/phuong-ben-thanh/video"),
        "{attached:?}"
    );
    assert!(inc.events.iter().any(|e| e.kind == EventKind::Opened
        && e.evidence
            .as_ref()
            .is_some_and(|v| v["reason"] == "packet_loss")));
    assert_eq!(inc.events.last().unwrap().kind, EventKind::Resolved);
}

#[test]
fn shared_service_outage_gives_one_city_wide_incident() {
    let mut sim = Sim::new(shipped());
    let mut w = World::new(2).fault("thu-tuc-hanh-chinh", 100.0, 160.0, Fault::Http503);
    sim.run(&mut w, 0.0, 260.0, &everything);
    let all = sim.incidents();
    assert_eq!(
        all.len(),
        1,
        "{:#?}",
        all.iter().map(|i| &i.key).collect::<Vec<_>>()
    );
    let inc = &all[0];
    assert_eq!(
        (inc.key.as_str(), inc.scope, inc.severity),
        (
            "service/thu-tuc-hanh-chinh",
            Scope::Service,
            Severity::Critical
        )
    );
    assert_eq!(inc.sites.len(), 168, "lists every affected site");
    let opened = secs_since_epoch(inc.started_at) - 100.0;
    eprintln!("shared-service outage: opened after {opened:.1} s");
    assert!(opened <= 20.0, "opened after {opened} s");
    assert!(inc.resolved_at.is_some());
}

#[test]
fn island_links_normal_loss_raise_nothing_over_a_simulated_day() {
    let mut sim = Sim::new(shipped());
    sim.tick_ms = 10_000;
    let mut w = World::new(3);
    let islands = |c: &CheckDef| c.link_class == "island" && c.role == CheckRole::Link;
    sim.run(&mut w, 0.0, 86_400.0, &islands);
    let all = sim.incidents();
    assert!(
        all.is_empty(),
        "false alarms: {:#?}",
        all.iter()
            .map(|i| (
                &i.key,
                &i.title,
                secs_since_epoch(i.started_at),
                i.events.first().and_then(|e| e.evidence.clone())
            ))
            .collect::<Vec<_>>()
    );
}

#[test]
fn island_loss_rise_to_15_percent_is_caught() {
    let mut caught = Vec::new();
    for seed in 0..10 {
        let mut sim = Sim::new(shipped());
        let start = 600.0 + seed as f64 * 7.3;
        let mut w = World::new(100 + seed).fault(
            "dac-khu-con-dao",
            start,
            start + 120.0,
            Fault::Loss(0.15),
        );
        let con_dao = |c: &CheckDef| {
            c.id.site.as_deref() == Some("dac-khu-con-dao") && c.role == CheckRole::Link
        };
        sim.run(&mut w, 0.0, start + 400.0, &con_dao);
        let all = sim.incidents();
        assert_eq!(
            all.len(),
            1,
            "seed {seed}: {:#?}",
            all.iter().map(|i| &i.key).collect::<Vec<_>>()
        );
        assert_eq!(
            (all[0].key.as_str(), all[0].severity),
            ("site/dac-khu-con-dao/link-degraded", Severity::Warning)
        );
        caught.push(secs_since_epoch(all[0].started_at) - start);
    }
    caught.sort_by(f64::total_cmp);
    eprintln!("island loss rise: detection times {caught:.1?}");
    assert!(caught.iter().all(|d| *d > 0.0 && *d < 120.0));
}

#[test]
fn endpoint_slowdown_is_a_warning() {
    let mut sim = Sim::new(shipped());
    let mut w = World::new(4).fault("phuong-sai-gon", 100.0, 160.0, Fault::Slow(4.0));
    let sai_gon = |c: &CheckDef| c.id.site.as_deref() == Some("phuong-sai-gon");
    sim.run(&mut w, 0.0, 260.0, &sai_gon);
    let all = sim.incidents();
    assert_eq!(
        all.len(),
        1,
        "{:#?}",
        all.iter().map(|i| &i.key).collect::<Vec<_>>()
    );
    assert_eq!(
        (all[0].key.as_str(), all[0].severity),
        ("site/phuong-sai-gon/slow", Severity::Warning)
    );
    eprintln!(
        "slowdown: opened after {:.1} s",
        secs_since_epoch(all[0].started_at) - 100.0
    );
    assert!(all[0].resolved_at.is_some());
}

#[test]
fn every_site_failing_at_once_gives_one_prober_incident() {
    let mut sim = Sim::new(shipped());
    let sites = |c: &CheckDef| c.id.site.is_some();
    let mut w = World::new(5).fault("*", 100.0, 400.0, Fault::LinkDown);
    sim.run(&mut w, 0.0, 500.0, &sites);
    let all = sim.incidents();
    assert_eq!(
        all.len(),
        1,
        "{:#?}",
        all.iter()
            .map(|i| (
                &i.key,
                secs_since_epoch(i.started_at),
                i.resolved_at.map(secs_since_epoch)
            ))
            .collect::<Vec<_>>()
    );
    let inc = &all[0];
    assert_eq!((inc.key.as_str(), inc.scope), ("prober", Scope::Prober));
    assert_eq!(inc.sites.len(), 168);
    assert!(
        inc.resolved_at.is_some(),
        "resolved once the links are back"
    );
}

/// The prober's own uplink lost: every site link and every shared service fails at once. One
/// prober incident; the services fold under it (attached to its timeline, not paged); when the
/// uplink returns everything recovers and nothing else opens.
#[test]
fn prober_isolation_folds_shared_services() {
    let mut sim = Sim::new(shipped());
    let mut w = World::new(11).fault("*", 100.0, 300.0, Fault::LinkDown);
    sim.run(&mut w, 0.0, 500.0, &everything);
    let all = sim.incidents();
    let keys: Vec<(&str, f64)> = all
        .iter()
        .map(|i| (i.key.as_str(), secs_since_epoch(i.started_at)))
        .collect();
    assert_eq!(keys.len(), 1, "one incident for one cause: {keys:?}");
    let prober = &all[0];
    assert_eq!(prober.scope, Scope::Prober);
    assert!(
        prober.resolved_at.is_some(),
        "resolved once the uplink is back"
    );
    let attached = prober
        .events
        .iter()
        .filter(|e| e.message.contains("attached to the prober incident"))
        .count();
    assert!(
        attached >= 1,
        "the shared services' failures are on the prober timeline: {:#?}",
        prober.events
    );
}

/// While the prober is isolated (every other link down at once), Thạnh An's rounds still pass
/// but 300 ms slower: what a cut-off prober measures is not the link's normal, so its RTT
/// baseline learns nothing meanwhile ("monitor blind", also exported as
/// `lienthong_monitor_blind`), no incident of its own opens, and blind ends with the isolation.
#[test]
fn isolation_window_teaches_the_baselines_nothing() {
    let sites = |c: &CheckDef| c.id.site.is_some();
    let thanh_an = |sim: &Sim| {
        sim.inv
            .checks
            .iter()
            .find(|c| c.id.site.as_deref() == Some("xa-thanh-an") && c.role == CheckRole::Link)
            .unwrap()
            .id
            .clone()
    };
    let ms = |d: Option<Duration>| d.expect("warmed up").as_secs_f64() * 1000.0;
    // Control: the same rise with the prober connected moves the baseline (slowly).
    let mut control = Sim::new(shipped());
    let link = thanh_an(&control);
    let mut w = World::new(21).fault("xa-thanh-an", 1800.0, 2100.0, Fault::Latency(0.3));
    control.run(&mut w, 0.0, 1800.0, &sites);
    let before = ms(control.engine.rtt_baseline(&link));
    control.run(&mut w, 1800.0, 2090.0, &sites);
    let learned = ms(control.engine.rtt_baseline(&link)) - before;
    assert!(
        learned > 2.0,
        "connected, the rise moves the baseline by {learned:.2} ms"
    );

    let mut sim = Sim::new(shipped());
    let mut w = World::new(21)
        .fault("xa-thanh-an", 1800.0, 2100.0, Fault::Latency(0.3))
        .fault("*", 1800.0, 2100.0, Fault::LinkDown);
    sim.run(&mut w, 0.0, 1800.0, &sites);
    assert_eq!(
        ms(sim.engine.rtt_baseline(&link)),
        before,
        "same world until the fault"
    );
    assert!(!sim.engine.monitor_blind());
    sim.run(&mut w, 1800.0, 2090.0, &sites);
    assert!(sim.engine.monitor_blind(), "prober isolated");
    // Only the rounds before the isolation was recognised (~10 s) count.
    let moved = ms(sim.engine.rtt_baseline(&link)) - before;
    assert!(
        moved.abs() < learned / 5.0,
        "blind, the baseline moved {moved:.2} ms (connected: {learned:.2} ms)"
    );
    sim.run(&mut w, 2090.0, 2400.0, &sites);
    assert!(!sim.engine.monitor_blind(), "blind ends with the isolation");
    let keys: Vec<String> = sim.incidents().iter().map(|i| i.key.clone()).collect();
    assert_eq!(keys, ["prober"], "one incident for one cause");
    eprintln!("baseline moved {moved:.2} ms blind vs {learned:.2} ms connected");
}

/// A shared service that fails while the prober is healthy still opens at once (the fold
/// only applies during an isolation).
#[test]
fn shared_service_outage_alone_still_opens() {
    let mut sim = Sim::new(shipped());
    let svc = sim.inv.services[0].slug.clone();
    let mut w = World::new(12).fault(&svc, 100.0, 200.0, Fault::LinkDown);
    sim.run(&mut w, 0.0, 300.0, &everything);
    let all = sim.incidents();
    assert_eq!(
        all.len(),
        1,
        "{:?}",
        all.iter().map(|i| &i.key).collect::<Vec<_>>()
    );
    assert_eq!(all[0].scope, Scope::Service);
    let opened = secs_since_epoch(all[0].started_at);
    assert!((100.0..125.0).contains(&opened), "opened at {opened}");
}

/// Thạnh An's link RTT rises by 300 ms for 120 s (a fallback path), rounds still pass: one
/// warning "Đường truyền trễ cao" within 30 s, with the baseline in the evidence, resolved on
/// return. Before, no absolute threshold caught it (island degraded_rtt is 400 ms).
#[test]
fn island_latency_rise_is_caught_against_the_link_baseline() {
    let mut times = Vec::new();
    for seed in 13..19 {
        let mut sim = Sim::new(shipped());
        let only = |c: &CheckDef| c.id.site.as_deref() == Some("xa-thanh-an");
        let mut w = World::new(seed).fault("xa-thanh-an", 1800.0, 1920.0, Fault::Latency(0.3));
        sim.run(&mut w, 0.0, 2200.0, &only);
        let all = sim.incidents();
        let keys: Vec<(&str, &str)> = all
            .iter()
            .map(|i| (i.key.as_str(), i.title.as_str()))
            .collect();
        assert_eq!(keys.len(), 1, "seed {seed}: {keys:?}");
        let inc = &all[0];
        assert_eq!(inc.key, "site/xa-thanh-an/link-degraded");
        assert!(
            inc.title.starts_with("Đường truyền trễ cao"),
            "{}",
            inc.title
        );
        let opened = secs_since_epoch(inc.started_at) - 1800.0;
        assert!(
            (0.0..30.0).contains(&opened),
            "seed {seed}: detected after {opened:.1} s"
        );
        times.push(opened);
        let ev = inc.events[0].evidence.as_ref().expect("evidence");
        let baseline = ev["rtt_baseline_seconds"]
            .as_f64()
            .expect("baseline in the evidence");
        assert!((0.03..0.1).contains(&baseline), "baseline {baseline}");
        assert!(ev["rtt_median_seconds"].as_f64().unwrap() > 0.3);
        let resolved = secs_since_epoch(inc.resolved_at.expect("resolved after the rise"));
        assert!(
            resolved > 1920.0 && resolved < 2000.0,
            "resolved at {resolved}"
        );
    }
    eprintln!("island +300 ms latency rise detected after {times:.1?} s");
}

/// Normal island jitter (35–70 ms, bursts of 100–400 ms on one packet in 25) over nine
/// island-site-days raises no latency incident.
#[test]
fn island_normal_jitter_raises_no_latency_incident() {
    for seed in [21, 22, 23] {
        let mut sim = Sim::new(shipped());
        sim.tick_ms = 10_000;
        let mut w = World::new(seed);
        let islands = |c: &CheckDef| c.link_class == "island" && c.role == CheckRole::Link;
        sim.run(&mut w, 0.0, 86_400.0, &islands);
        let latency: Vec<(String, f64)> = sim
            .incidents()
            .into_iter()
            .filter(|i| i.title.starts_with("Đường truyền trễ cao"))
            .map(|i| (i.key, secs_since_epoch(i.started_at)))
            .collect();
        assert!(
            latency.is_empty(),
            "seed {seed}: false latency alarms {latency:?}"
        );
    }
}

/// A ward whose service centre and video point are both slow: one incident "… phản hồi chậm"
/// for the site, the second check attached to it, resolved when both are fast again.
#[test]
fn one_slow_incident_per_site() {
    let mut sim = Sim::new(shipped());
    let only = |c: &CheckDef| c.id.site.as_deref() == Some("phuong-sai-gon");
    let mut w = World::new(14).fault("phuong-sai-gon", 100.0, 220.0, Fault::SlowAll(4.0));
    sim.run(&mut w, 0.0, 400.0, &only);
    let all = sim.incidents();
    let keys: Vec<&str> = all.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["site/phuong-sai-gon/slow"]);
    let inc = &all[0];
    assert_eq!(inc.title, "Phường Sài Gòn phản hồi chậm");
    let checks: std::collections::BTreeSet<&str> = inc
        .events
        .iter()
        .filter_map(|e| e.check.as_deref())
        .collect();
    assert!(
        checks.contains("site/phuong-sai-gon/endpoint")
            && checks.contains("site/phuong-sai-gon/video"),
        "both slow checks are on the one incident: {checks:?}"
    );
    assert!(inc.resolved_at.is_some());
}

fn ward_cert(serial: &str, expires_in: f64) -> lienthong::probe::tls::CertInfo {
    lienthong::probe::tls::CertInfo {
        id: format!("CN=ward CA#{serial}"),
        subject: "CN=tan-dinh.example".into(),
        issuer: "CN=ward CA".into(),
        not_after: (EPOCH_MS / 1000) as i64 + expires_in as i64,
        problem: None,
    }
}

/// Every HTTP and TCP check of `site` presents `cert` at `t`, then the engine ticks.
fn present_cert(sim: &mut Sim, site: &str, t: f64, cert: &lienthong::probe::tls::CertInfo) {
    use lienthong::probe::{Details, HttpDetails, Outcome, ProbeSpec, TcpDetails};
    let checks: Vec<CheckDef> = sim
        .inv
        .checks
        .iter()
        .filter(|c| c.id.site.as_deref() == Some(site))
        .map(|c| CheckDef::clone(c))
        .collect();
    for def in &checks {
        let details = match def.probe {
            ProbeSpec::Http(_) => Details::Http(HttpDetails {
                status: Some(200),
                cert: Some(cert.clone()),
                ..Default::default()
            }),
            ProbeSpec::Tcp(_) => Details::Tcp(TcpDetails {
                cert: Some(cert.clone()),
                ..Default::default()
            }),
            _ => continue,
        };
        sim.engine.observe(def, &Outcome::ok(details), at(t));
    }
    sim.engine.tick(at(t));
}

const DAY: f64 = 86_400.0;

/// A certificate shared by a ward's service centre and video point, 10 days from expiry: one
/// warning for the certificate (not one per check); at 5 days it turns critical (the warning
/// resolves, the critical opens); renewed, it resolves.
#[test]
fn certificate_lifecycle_is_one_incident_per_certificate() {
    let mut sim = Sim::new(shipped());
    let site = "phuong-tan-dinh";
    let old = ward_cert("01", 10.0 * DAY + 100.0);
    present_cert(&mut sim, site, 100.0, &old);
    let all = sim.incidents();
    assert_eq!(
        all.len(),
        1,
        "{:?}",
        all.iter().map(|i| &i.key).collect::<Vec<_>>()
    );
    assert_eq!(all[0].severity, Severity::Warning);
    assert_eq!(
        all[0].title,
        "Chứng chỉ sắp hết hạn (còn 10 ngày): Phường Tân Định"
    );
    assert_eq!(all[0].sites, [site]);
    // Five days later: critical.
    present_cert(&mut sim, site, 5.0 * DAY + 100.0, &old);
    let all = sim.incidents();
    let open: Vec<_> = all.iter().filter(|i| i.resolved_at.is_none()).collect();
    assert_eq!(open.len(), 1, "one open incident per certificate");
    assert_eq!(open[0].severity, Severity::Critical);
    assert!(open[0].key.ends_with("/critical"));
    // Renewed: a new certificate far from expiry.
    present_cert(
        &mut sim,
        site,
        5.0 * DAY + 200.0,
        &ward_cert("02", 400.0 * DAY),
    );
    assert!(sim.incidents().iter().all(|i| i.resolved_at.is_some()));
}

/// `[incidents] cert_warning` / `cert_critical` move the thresholds: with 45 / 30 days, a
/// certificate 40 days from expiry is a warning (the defaults, 21 / 7, would say nothing), and
/// at 25 days critical.
#[test]
fn certificate_thresholds_come_from_the_config() {
    let site = "phuong-tan-dinh";
    let cert = ward_cert("01", 40.0 * DAY);
    let mut quiet = Sim::new(shipped());
    present_cert(&mut quiet, site, 100.0, &cert);
    assert!(
        quiet.incidents().is_empty(),
        "40 days left: nothing under the defaults"
    );

    let mut inv = shipped();
    inv.incidents.cert_warning = lienthong::config::HumanDuration(Duration::from_secs(45 * 86_400));
    inv.incidents.cert_critical =
        lienthong::config::HumanDuration(Duration::from_secs(30 * 86_400));
    let mut sim = Sim::new(inv);
    present_cert(&mut sim, site, 100.0, &cert);
    let all = sim.incidents();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].severity, Severity::Warning);
    present_cert(&mut sim, site, 15.0 * DAY + 100.0, &cert);
    let open: Vec<_> = sim
        .incidents()
        .into_iter()
        .filter(|i| i.resolved_at.is_none())
        .collect();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].severity, Severity::Critical, "25 days left < 30");
}

#[test]
fn maintenance_window_opens_nothing() {
    let mut inv = shipped();
    let spec: lienthong::config::MaintenanceSpec = toml::from_str(
        r#"site = "phuong-ben-thanh"
reason = "Thay thiết bị mạng"
start = "2026-11-25 07:00"
end = "2026-11-25 09:00""#,
    )
    .unwrap();
    inv.maintenance
        .push(lienthong::config::maintenance::Window::compile(&spec).unwrap());
    let mut sim = Sim::new(inv);
    let mut w = World::new(6).fault("phuong-ben-thanh", 100.0, 220.0, Fault::LinkDown);
    sim.run(&mut w, 0.0, 300.0, &everything);
    assert!(sim.incidents().is_empty());
    let st = sim.engine.site_status_of("phuong-ben-thanh", at(150.0));
    assert_eq!(st.as_str(), "maintenance");
}

/// Restart in the middle of a link outage; the link is back at once, the service centre 30 s
/// later (slower to recover). The resumed link incident resolves; the endpoint's failure began
/// inside the outage (the new process cannot know when), so it must not open its own incident.
#[test]
fn restart_mid_outage_opens_no_symptom_incident() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lienthong.db");
    let inv = Arc::new(shipped());
    let mk = |t: f64| restarted(&inv, &db, t);
    let only = |c: &CheckDef| c.id.site.as_deref() == Some("phuong-ben-thanh");
    let mut w = World::new(8)
        .fault("phuong-ben-thanh", 100.0, 200.0, Fault::LinkDown)
        .fault("phuong-ben-thanh", 200.0, 230.0, Fault::EndpointDown);
    let mut first = mk(0.0);
    first.run(&mut w, 0.0, 200.0, &only);
    assert_eq!(first.incidents().len(), 1);
    drop(first);
    let mut second = mk(200.0);
    second.run(&mut w, 200.0, 400.0, &only);
    let all = second.incidents();
    let keys: Vec<&str> = all.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        ["site/phuong-ben-thanh/link"],
        "one incident for one cause"
    );
    assert!(all[0].resolved_at.is_some());
}

#[test]
fn restart_resumes_open_incidents_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lienthong.db");
    let inv = Arc::new(shipped());
    let mk = |t: f64| restarted(&inv, &db, t);
    let only = |c: &CheckDef| c.id.site.as_deref() == Some("phuong-ben-thanh");
    let mut w = World::new(7).fault("phuong-ben-thanh", 100.0, 400.0, Fault::LinkDown);
    let mut first = mk(0.0);
    first.run(&mut w, 0.0, 200.0, &only);
    assert_eq!(first.incidents().len(), 1);
    drop(first);
    // Restart mid-outage: the same incident continues.
    let mut second = mk(200.0);
    second.run(&mut w, 200.0, 300.0, &only);
    drop(second);
    // Restart again; the link comes back at 400 s: resolved exactly once.
    let mut third = mk(300.0);
    third.run(&mut w, 300.0, 500.0, &only);
    let all = third.incidents();
    assert_eq!(
        all.len(),
        1,
        "{:#?}",
        all.iter().map(|i| &i.key).collect::<Vec<_>>()
    );
    let inc = &all[0];
    assert_eq!(
        inc.events
            .iter()
            .filter(|e| e.kind == EventKind::Resumed)
            .count(),
        2
    );
    assert_eq!(
        inc.events
            .iter()
            .filter(|e| e.kind == EventKind::Resolved)
            .count(),
        1
    );
    assert_eq!(
        inc.events
            .iter()
            .filter(|e| e.kind == EventKind::Opened)
            .count(),
        1
    );
    assert!(secs_since_epoch(inc.resolved_at.unwrap()) > 400.0);
}

#[test]
fn endpoint_down_with_link_up_is_its_own_incident() {
    let mut sim = Sim::new(shipped());
    let mut w = World::new(8).fault("phuong-ben-thanh", 100.0, 160.0, Fault::EndpointDown);
    let only = |c: &CheckDef| c.id.site.as_deref() == Some("phuong-ben-thanh");
    sim.run(&mut w, 0.0, 260.0, &only);
    let all = sim.incidents();
    assert_eq!(
        all.len(),
        1,
        "{:#?}",
        all.iter().map(|i| &i.key).collect::<Vec<_>>()
    );
    assert_eq!(
        (all[0].key.as_str(), all[0].severity),
        ("site/phuong-ben-thanh/endpoint", Severity::Critical)
    );
    assert_eq!(
        all[0].title,
        "Trung tâm phục vụ hành chính công không hoạt động: Phường Bến Thành"
    );
    assert!(all[0].resolved_at.is_some());
}

/// A process (re)started at `t` on an existing database: its unresolved incidents resume.
fn restarted(inv: &Arc<lienthong::config::Inventory>, db: &std::path::Path, t: f64) -> Sim {
    let store = Arc::new(Store::open(db).unwrap());
    let engine = IncidentEngine::new(
        inv.clone(),
        store.clone(),
        tokio::sync::broadcast::channel(16).0,
        at(t),
    )
    .unwrap();
    Sim {
        inv: inv.clone(),
        store,
        engine,
        tick_ms: 1000,
        _dir: None,
    }
}

/// A ward report on a healthy site opens a `reported` incident that no tick resolves; when the
/// site's link then goes down, the report is merged into the automatic incident (one open
/// incident, the reference on its timeline); a report during the outage attaches to it.
#[test]
fn ward_report_merges_into_the_automatic_incident() {
    use lienthong::incidents::correlation::WardReport;
    let mut sim = Sim::new(shipped());
    let mut w = World::new(3).fault("phuong-ben-thanh", 100.0, 400.0, Fault::LinkDown);
    let only = |c: &CheckDef| c.id.site.as_deref() == Some("phuong-ben-thanh");
    sim.run(&mut w, 0.0, 50.0, &only);
    let r = |what: &str| WardReport {
        site: "phuong-ben-thanh".into(),
        what: what.into(),
        contact: "Chị Lan".into(),
        via: "site phuong-ben-thanh".into(),
    };
    let first = sim
        .engine
        .report(&r("Điểm cầu không có tiếng"), at(50.0))
        .unwrap()
        .unwrap();
    assert!(first.created && !first.attached);
    assert_eq!(first.key, "site/phuong-ben-thanh/reported");
    assert!(sim
        .engine
        .report(&r("x"), at(51.0))
        .unwrap()
        .is_some_and(|o| o.incident_id == first.incident_id && !o.created));
    let unknown = WardReport {
        site: "nowhere".into(),
        ..r("x")
    };
    assert_eq!(sim.engine.report(&unknown, at(52.0)).unwrap(), None);
    // Healthy checks and ticks do not end a person's report.
    sim.run(&mut w, 52.0, 99.0, &only);
    let rep = sim.store.get(first.incident_id).unwrap().unwrap();
    assert!(
        rep.resolved_at.is_none(),
        "a report is not resolved by health"
    );
    // The link goes down: its incident takes the report over.
    sim.run(&mut w, 99.0, 200.0, &only);
    let all = sim.incidents();
    let open: Vec<&str> = all
        .iter()
        .filter(|i| i.resolved_at.is_none())
        .map(|i| i.key.as_str())
        .collect();
    assert_eq!(open, ["site/phuong-ben-thanh/link"], "one open incident");
    let link = all.iter().find(|i| i.key.ends_with("/link")).unwrap();
    assert!(link
        .events
        .iter()
        .any(|e| e.kind == EventKind::Attached
            && e.message.contains(&format!("#{}", first.incident_id))));
    let rep = sim.store.get(first.incident_id).unwrap().unwrap();
    assert!(rep.resolved_at.is_some());
    assert!(rep
        .events
        .last()
        .unwrap()
        .message
        .contains(&format!("#{}", link.id)));
    // A report during the outage goes on the link incident's timeline.
    let during = sim
        .engine
        .report(&r("Mất mạng"), at(200.0))
        .unwrap()
        .unwrap();
    assert!(during.attached && !during.created);
    assert_eq!(during.incident_id, link.id);
    let link = sim.store.get(link.id).unwrap().unwrap();
    let ev = link.events.last().unwrap();
    assert_eq!(ev.state.as_deref(), Some("reported"));
    assert_eq!(ev.evidence.as_ref().unwrap()["report"]["what"], "Mất mạng");
}
