//! The simulator's administrative-procedures application (log in with a CSRF-style token and a
//! session cookie → JSON lookup → log out) driven by a real transaction check on a free
//! 127.0.0.1 port, healthy and under the `lookup_error` fault; the failures feed the real
//! incident engine: one city-wide incident whose timeline names the failing step.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lienthong::config::{CheckDef, Config, Inventory};
use lienthong::incidents::correlation::IncidentEngine;
use lienthong::incidents::{IncidentFilter, Scope, Store};
use lienthong::probe::{Details, Outcome, Reason};
use lienthong::simulator::scenario::Scenario;
use lienthong::simulator::Simulator;

use common::free_port;

/// The shipped example's service block (portal + transaction), moved to `port`, with the
/// secret file next to the config.
fn inventory(dir: &Path, port: u16) -> Inventory {
    let shipped = std::fs::read_to_string("probes.toml").unwrap();
    let start = shipped
        .find("[[service]]\nslug = \"thu-tuc-hanh-chinh\"")
        .unwrap();
    let end = start + 1 + shipped[start + 1..].find("[[service]]").unwrap();
    let service = shipped[start..end].replace("127.20.0.1:18080", &format!("127.0.0.1:{port}"));
    std::fs::create_dir_all(dir.join("deploy/demo")).unwrap();
    std::fs::copy(
        "deploy/demo/motcua.pass",
        dir.join("deploy/demo/motcua.pass"),
    )
    .unwrap();
    let text = format!(
        r#"[link_class.datacenter]
interval = "10s"
timeout = "4s"
packets = 3
pacing = "200ms"
max_loss = 0.4
degraded_loss = 0.05
degraded_rtt = "60ms"
degraded_jitter = "20ms"
degraded_latency = "2s"

{service}
[inventory]
sites = [
  {{ code = "1", slug = "a", name = "Phường A", kind = "phuong", former_province = "tphcm", former_district = "Quận 1", island = false, lat = 10.7, lon = 106.7, link_class = "datacenter" }},
  {{ code = "2", slug = "b", name = "Xã B", kind = "xa", former_province = "tphcm", former_district = "Huyện Cần Giờ", island = false, lat = 10.4, lon = 106.9, link_class = "datacenter" }},
]
"#
    );
    let path = dir.join("probes.toml");
    std::fs::write(&path, text).unwrap();
    (*Config::load(&path).expect("config").inventory).clone()
}

fn check<'a>(inv: &'a Inventory, name: &str) -> &'a CheckDef {
    inv.checks.iter().find(|c| &*c.id.name == name).unwrap()
}

async fn run(c: &CheckDef) -> Outcome {
    c.probe
        .build(&c.build_context())
        .unwrap()
        .run(c.timeout)
        .await
}

fn lookup_fault() -> Scenario {
    Scenario::parse(
        r#"
[[fault]]
at = "0s"
duration = "10m"
kind = "lookup_error"
service = "thu-tuc-hanh-chinh"
"#,
    )
    .unwrap()
}

#[tokio::test]
async fn simulated_flow_passes_then_fails_at_the_lookup_and_opens_one_incident() {
    let dir = tempfile::tempdir().unwrap();

    // Healthy: the whole flow passes (the CSRF token and the session cookie are required).
    let inv = inventory(dir.path(), free_port());
    let sim = Simulator::start(&inv, Scenario::default(), dir.path())
        .await
        .unwrap();
    let o = run(check(&inv, "giao-dich")).await;
    assert!(o.success, "{o:?}");
    let Details::Transaction(d) = &o.details else {
        panic!("{o:?}")
    };
    assert_eq!(d.steps.len(), 4);
    assert_eq!(d.steps[0].extracted, ["csrf"]);
    assert!(d.steps.iter().all(|s| s.ran && s.success), "{d:?}");
    sim.stop().await;

    // lookup_error: the portal stays green, the transaction fails at `tra-cuu`, logs out anyway.
    let inv = Arc::new(inventory(dir.path(), free_port()));
    let sim = Simulator::start(&inv, lookup_fault(), dir.path())
        .await
        .unwrap();
    let portal = run(check(&inv, "portal")).await;
    assert!(portal.success, "{portal:?}");
    let tx = check(&inv, "giao-dich");
    let o = run(tx).await;
    assert_eq!(o.reason(), Some(Reason::JsonMismatch), "{o:?}");
    let msg = &o.failure.as_ref().unwrap().message;
    assert!(
        msg.starts_with(r#"step="tra-cuu" reason="json_mismatch": JSON /status is "error""#),
        "{msg}"
    );
    let Details::Transaction(d) = &o.details else {
        panic!("{o:?}")
    };
    assert!(d.steps[1].success, "login still works: {d:?}");
    assert!(d.steps[3].ran && d.steps[3].success, "logout ran: {d:?}");

    // The same failures through the incident engine: one city-wide incident naming the step.
    let store = Arc::new(Store::open(&dir.path().join("incidents.db")).unwrap());
    let t0 = SystemTime::now();
    let mut engine = IncidentEngine::new(
        inv.clone(),
        store.clone(),
        tokio::sync::broadcast::channel(64).0,
        t0,
    )
    .unwrap();
    let portal_def = check(&inv, "portal");
    for i in 0..8u64 {
        let now = t0 + Duration::from_secs(2 * i);
        engine.observe(tx, &run(tx).await, now);
        engine.observe(portal_def, &portal, now);
        engine.tick(now);
    }
    sim.stop().await;
    let all = store
        .list(&IncidentFilter::default(), None, 100)
        .unwrap()
        .items;
    assert_eq!(all.len(), 1, "{all:?}");
    let inc = &all[0];
    assert_eq!(inc.scope, Scope::Service);
    assert_eq!(inc.key, "service/thu-tuc-hanh-chinh");
    assert_eq!(inc.sites.len(), 2, "city-wide: every site");
    let events = store.events_after(0, 100).unwrap();
    assert!(
        events.iter().any(|e| e
            .message
            .contains(r#"(step="tra-cuu" reason="json_mismatch")"#)),
        "{events:?}"
    );
}
