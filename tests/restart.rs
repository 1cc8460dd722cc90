//! `kill -9` and a graceful restart of the real binary mid-outage: the incident feed loses
//! nothing and duplicates nothing.

mod common;

use std::time::Duration;

use common::demo::Demo;

const SCENARIO: &str = r#"
cycle = "30m"
udp_echo_port = 17207
[[fault]]
at = "0s"
duration = "20m"
kind = "link_down"
site = "phuong-ben-thanh"
"#;

const KEY: &str = "site/phuong-ben-thanh/link";

fn incidents(d: &Demo) -> Vec<serde_json::Value> {
    d.get_json("/api/v1/incidents?limit=500")
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default()
}

fn ward(d: &Demo) -> Vec<serde_json::Value> {
    incidents(d)
        .into_iter()
        .filter(|i| i["key"] == KEY)
        .collect()
}

#[test]
fn kill_9_and_restart_keep_one_incident_per_cause() {
    let dir = tempfile::tempdir().unwrap();
    let first = Demo::start(dir.path(), SCENARIO);
    let opened = first.wait_for(Duration::from_secs(60), |d| ward(d).into_iter().next());
    let opened = opened.unwrap_or_else(|| panic!("no incident for {KEY}:\n{}", first.log_text()));
    let id = opened["id"].as_i64().unwrap();
    assert_eq!(opened["title"], "Mất kết nối: Phường Bến Thành");

    // kill -9 in the middle of the outage.
    first.signal("-KILL");
    drop(first);

    let second = Demo::start(dir.path(), SCENARIO);
    // Long enough for the link to be confirmed down again after the restart.
    std::thread::sleep(Duration::from_secs(25));
    let now = ward(&second);
    assert_eq!(
        now.len(),
        1,
        "one incident for the cause, not two: {now:#?}"
    );
    assert_eq!(
        now[0]["id"].as_i64(),
        Some(id),
        "the same incident continues"
    );
    assert_eq!(now[0]["state"], "open");
    let detail = second.get_json(&format!("/api/v1/incidents/{id}")).unwrap();
    let kinds: Vec<&str> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "opened").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "resumed").count(),
        1,
        "{kinds:?}"
    );

    // A note and an ack survive a graceful restart too.
    let auth = "Authorization: Bearer test-token";
    let url = format!("{}/api/v1/incidents/{id}/notes", second.base);
    let ok = std::process::Command::new("curl")
        .args([
            "-sf",
            "-X",
            "POST",
            "-H",
            auth,
            "-d",
            r#"{"author":"Tổ Q1","text":"Đang kiểm tra cáp"}"#,
            &url,
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    second.signal("-TERM");
    let mut second = second;
    assert!(second.wait_exit(Duration::from_secs(20)).success());
    drop(second);

    let third = Demo::start(dir.path(), SCENARIO);
    std::thread::sleep(Duration::from_secs(3));
    let detail = third.get_json(&format!("/api/v1/incidents/{id}")).unwrap();
    assert_eq!(detail["notes"].as_array().unwrap().len(), 1);
    assert_eq!(detail["notes"][0]["text"], "Đang kiểm tra cáp");
    let all = incidents(&third);
    let mut keys: Vec<&str> = all
        .iter()
        .filter(|i| i["state"] != "resolved")
        .filter_map(|i| i["key"].as_str())
        .collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(
        keys.len(),
        n,
        "no key has two unresolved incidents: {keys:?}"
    );
}
