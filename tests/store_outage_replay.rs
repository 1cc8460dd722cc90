//! Health transitions while the store fails are kept in a bounded buffer and replayed once it
//! works again: a fault that begins and ends while the disk is full (a small tmpfs this test
//! mounts) still produces its incident, opened and resolved at the times it happened, and
//! notified; a fault that began during the outage and lasts is open afterwards.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::bin::{Receiver, Targets};

fn mount_small_tmpfs(dir: &Path) -> Result<(), String> {
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "mount -t tmpfs failed (needs root): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

struct Unmount<'a>(&'a Path);
impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    while f.write_all(&[0]).is_ok() {}
    let _ = f.sync_all();
}

fn incident<'a>(list: &'a serde_json::Value, key: &str) -> Vec<&'a serde_json::Value> {
    list["items"]
        .as_array()
        .map(|a| a.iter().filter(|i| i["key"] == key).collect())
        .unwrap_or_default()
}

fn rfc3339_ms(v: &serde_json::Value) -> i64 {
    // "2026-12-03T12:23:44Z" or with fractional seconds: compare as text is enough for order,
    // but the test wants durations, so parse the seconds of the day.
    let s = v.as_str().unwrap_or_default();
    let t = s
        .split('T')
        .nth(1)
        .unwrap_or_default()
        .trim_end_matches('Z');
    let mut parts = t.split(':');
    let h: f64 = parts.next().unwrap_or("0").parse().unwrap_or(0.0);
    let m: f64 = parts.next().unwrap_or("0").parse().unwrap_or(0.0);
    let sec: f64 = parts.next().unwrap_or("0").parse().unwrap_or(0.0);
    ((h * 3600.0 + m * 60.0 + sec) * 1000.0) as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_during_a_full_disk_produce_their_incidents_once_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    if let Err(why) = mount_small_tmpfs(&mnt) {
        common::bin::skip_or_fail(&why);
        return;
    }
    let _unmount = Unmount(&mnt);
    let targets = Targets::start(2).await;
    let (receiver, hook) = Receiver::start().await;
    let db = mnt.join("lienthong.db");
    let notify =
        format!("[[notify]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://{hook}/hook\"\n");
    let text = common::bin::config(&db, targets.addr, 2, &notify);
    let svc = common::svc::start(dir.path().join("probes.toml"), &text).await;
    let (code, body) = svc
        .wait_for("/readyz", Duration::from_secs(10), |c, _| c == 200)
        .await;
    assert_eq!(code, 200, "{body}");
    tokio::time::sleep(Duration::from_secs(2)).await; // every check has run once (up)

    let filler = mnt.join("filler");
    fill(&filler);
    let (code, body) = svc
        .wait_for("/readyz", Duration::from_secs(20), |c, _| c == 503)
        .await;
    assert_eq!(code, 503, "degraded while the disk is full: {body}");
    let full_at = Instant::now();

    // Site 0: down and back up, all while the disk is full. Site 1: down, and it stays down.
    targets.set(0, false);
    targets.set(1, false);
    tokio::time::sleep(Duration::from_secs(4)).await;
    targets.set(0, true);
    // Recovery needs 3 passes (≈ 3 s at 1 s intervals).
    tokio::time::sleep(Duration::from_secs(6)).await;
    // Still full: the API (reads) shows nothing written yet for site 0.
    let (code, body) = svc.get("/readyz").await;
    assert_eq!(code, 503, "the disk is still full: {body}");
    let delivered_during = receiver.count();

    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    let (code, body) = svc
        .wait_for(
            "/api/v1/incidents?limit=50",
            Duration::from_secs(20),
            |c, b| {
                let v: serde_json::Value = serde_json::from_str(b).unwrap_or_default();
                c == 200
                    && incident(&v, "site/phuong-0/endpoint")
                        .iter()
                        .any(|i| i["state"] == "resolved")
                    && !incident(&v, "site/phuong-1/endpoint").is_empty()
            },
        )
        .await;
    let replayed_after = freed.elapsed();
    let list: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let zero = incident(&list, "site/phuong-0/endpoint");
    assert_eq!(code, 200);
    assert_eq!(
        zero.len(),
        1,
        "the fault that began and ended while the disk was full has one incident: {body}"
    );
    let zero = zero[0];
    assert_eq!(zero["state"], "resolved", "{zero}");
    let (started, resolved) = (
        rfc3339_ms(&zero["started_at"]),
        rfc3339_ms(&zero["resolved_at"]),
    );
    let lasted = resolved - started;
    // Down ≈ 4 s plus confirmation and recovery: the stored times are when it happened, not
    // when it was replayed.
    assert!(
        (2_000..=12_000).contains(&lasted),
        "resolved {lasted} ms after it started: {zero}"
    );
    let one = incident(&list, "site/phuong-1/endpoint");
    assert_eq!(one.len(), 1, "{body}");
    assert_ne!(one[0]["state"], "resolved", "site 1 is still down");
    // The timeline of site 0's incident has its opening and its resolution.
    let (_, detail) = svc.get(&format!("/api/v1/incidents/{}", zero["id"])).await;
    let detail: serde_json::Value = serde_json::from_str(&detail).unwrap();
    let kinds: Vec<&str> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds.first(), Some(&"opened"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"resolved"), "{kinds:?}");

    // And it was notified once written: opened + resolved of site 0, opened of site 1.
    let until = Instant::now() + Duration::from_secs(20);
    while receiver.count() < delivered_during + 3 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kinds: Vec<(String, String)> = receiver
        .all()
        .iter()
        .map(|d| {
            (
                d.body["incident"]["key"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                d.body["event"]["kind"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    for want in [
        ("site/phuong-0/endpoint", "opened"),
        ("site/phuong-0/endpoint", "resolved"),
        ("site/phuong-1/endpoint", "opened"),
    ] {
        assert!(
            kinds.iter().any(|(k, e)| k == want.0 && e == want.1),
            "{want:?} notified: {kinds:?}"
        );
    }
    let (code, body) = svc
        .wait_for("/readyz", Duration::from_secs(20), |c, _| c == 200)
        .await;
    assert_eq!(code, 200, "{body}");
    eprintln!(
        "disk full for {:?}; incidents written {replayed_after:?} after space returned; \
         {} notifications",
        freed - full_at,
        receiver.count()
    );
    svc.stop().await;
}
