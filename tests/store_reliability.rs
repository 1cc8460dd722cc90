//! Store reliability: one instance per database (lock naming the holder's PID), a deleted or
//! replaced file is noticed, the WAL stays bounded, every failed operation is counted and
//! `/readyz` says degraded while the disk is full (a small tmpfs this test mounts).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lienthong::incidents::store::{lock_path, JOURNAL_SIZE_LIMIT};
use lienthong::incidents::{EventKind, NewEvent, NewIncident, Scope, Severity, Store, StoreError};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn incident(key: &str) -> NewIncident {
    NewIncident {
        key: key.into(),
        title: "Mất kết nối: Phường A".into(),
        title_en: "Link down: Phường A".into(),
        severity: Severity::Critical,
        scope: Scope::Site,
        service: None,
        sites: vec!["phuong-a".into()],
        teams: vec![],
    }
}

fn event(at: i64, message: String) -> NewEvent {
    NewEvent {
        at,
        kind: EventKind::Opened,
        check: Some("site/phuong-a/link".into()),
        state: None,
        message,
        evidence: None,
    }
}

fn wal_len(db: &Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
}

#[test]
fn second_open_in_process_names_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lienthong.db");
    let registry = prometheus::Registry::new();
    let first = Store::open_exclusive(&db, &registry).unwrap();
    let pid = std::fs::read_to_string(lock_path(&db)).unwrap();
    assert_eq!(pid.trim(), std::process::id().to_string());
    match Store::open_exclusive(&db, &prometheus::Registry::new()) {
        Err(e @ StoreError::Locked { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&format!(
                    "is in use by lienthong PID {}",
                    std::process::id()
                )),
                "{msg}"
            );
        }
        other => panic!("second open must be refused: {other:?}"),
    }
    drop(first);
    // Released with the store: the next start succeeds.
    Store::open_exclusive(&db, &prometheus::Registry::new()).expect("lock released on drop");
}

#[test]
fn second_serve_on_the_same_database_refuses_with_the_pid() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("probes.toml");
    let db = dir.path().join("lienthong.db");
    std::fs::write(&config, common::svc::config(&db, "")).unwrap();
    let serve = |listen: &str| {
        Command::new(env!("CARGO_BIN_EXE_lienthong"))
            .args(["serve", "--listen", listen, "--config"])
            .arg(&config)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start serve")
    };
    let mut first = serve("127.0.0.1:0");
    let until = Instant::now() + Duration::from_secs(20);
    let lock = lock_path(&db);
    while std::fs::read_to_string(&lock).map_or(true, |s| s.trim() != first.id().to_string()) {
        assert!(Instant::now() < until, "first serve did not take the lock");
        std::thread::sleep(Duration::from_millis(100));
    }
    let second = serve("127.0.0.1:0");
    let out = second.wait_with_output().unwrap();
    let _ = first.kill();
    let _ = first.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "second serve must exit non-zero");
    let want = format!("is in use by lienthong PID {}", first.id());
    assert!(stderr.contains(&want), "stderr: {stderr}");
}

#[test]
fn deleted_or_replaced_database_is_detected_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lienthong.db");
    let registry = prometheus::Registry::new();
    let store = Store::open_exclusive(&db, &registry).unwrap();
    let health = store.health();
    store.watch_once();
    assert_eq!(health.problem(), None);

    std::fs::remove_file(&db).unwrap();
    store.watch_once();
    let problem = health.problem().expect("deleted file noticed");
    assert!(problem.contains("was deleted"), "{problem}");
    assert_eq!(health.errors("file_check"), 1);

    // Replaced (a new file at the path) is also caught, on a fresh store.
    let db2 = dir.path().join("other.db");
    let store2 = Store::open_exclusive(&db2, &prometheus::Registry::new()).unwrap();
    std::fs::rename(&db, dir.path().join("gone")).ok();
    std::fs::write(dir.path().join("impostor"), b"x").unwrap();
    std::fs::rename(dir.path().join("impostor"), &db2).unwrap();
    store2.watch_once();
    let problem = store2.health().problem().expect("replaced file noticed");
    assert!(problem.contains("was replaced"), "{problem}");

    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    assert!(
        text.contains(r#"lienthong_store_errors_total{op="file_check"} 1"#),
        "{text}"
    );
}

#[test]
fn wal_stays_bounded_after_many_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lienthong.db");
    let store = Store::open(&db).unwrap();
    let t0 = now_ms();
    let mut max_wal = 0;
    // ~20 MB of timeline text: without journal_size_limit the WAL would stay at 4 MB.
    for i in 0..4000 {
        let (id, _) = store
            .open_incident(
                &incident(&format!("site/s{i}/link")),
                &event(t0 + i, "x".repeat(4000)),
                &[],
            )
            .unwrap();
        store
            .append_event(id, &event(t0 + i, "y".repeat(1000)), &[])
            .unwrap();
        if i % 50 == 0 {
            max_wal = max_wal.max(wal_len(&db));
        }
    }
    max_wal = max_wal.max(wal_len(&db));
    eprintln!("largest WAL seen: {max_wal} bytes");
    // The auto-checkpoint runs every 256 pages (1 MiB); one transaction may overshoot it.
    let bound = JOURNAL_SIZE_LIMIT as u64 + 64 * 1024;
    assert!(
        max_wal <= bound,
        "WAL grew to {max_wal} bytes (bound {bound})"
    );
    let (frames, done) = store.checkpoint().unwrap();
    assert_eq!(frames, done, "nothing left in the WAL");
    assert_eq!(wal_len(&db), 0, "TRUNCATE checkpoint empties the WAL");
}

#[test]
fn failed_operations_are_counted_and_mark_the_store_failing() {
    use std::io::{Seek, Write};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lienthong.db");
    let store = Store::open(&db).unwrap();
    store.checkpoint().unwrap();
    let health = store.health();
    assert_eq!(health.problem(), None);
    // Garbage over the file in place (same inode): every later operation fails.
    let mut f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    f.rewind().unwrap();
    f.write_all(&[0x42; 8192]).unwrap();
    f.sync_all().unwrap();
    assert!(store.unresolved().is_err());
    assert_eq!(health.errors("unresolved"), 1);
    let problem = health.problem().expect("failing");
    assert!(problem.contains("unresolved"), "{problem}");
}

/// Mounts a 1 MiB tmpfs on `dir`. Err says why not (then the test is skipped outside CI).
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_degraded_while_the_disk_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    if let Err(why) = mount_small_tmpfs(&mnt) {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("disk-full test cannot run under CI: {why}");
        }
        eprintln!("skipped: {why}");
        return;
    }
    let _unmount = Unmount(&mnt);
    let db = mnt.join("lienthong.db");
    let svc = common::svc::start(
        dir.path().join("probes.toml"),
        &common::svc::config(&db, ""),
    )
    .await;
    let (code, body) = svc
        .wait_for("/readyz", Duration::from_secs(10), |c, _| c == 200)
        .await;
    assert_eq!(code, 200, "{body}");

    // Fill the volume to the last byte.
    let filler = mnt.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        while f.write_all(&[0]).is_ok() {}
        let _ = f.sync_all();
    }
    let started = Instant::now();
    let (code, body) = svc
        .wait_for("/readyz", Duration::from_secs(20), |c, _| c == 503)
        .await;
    assert_eq!(code, 503, "readyz while the disk is full: {body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON reason");
    let reason = json["error"].as_str().unwrap();
    assert!(reason.contains("store"), "{reason}");
    eprintln!("degraded after {:?}: {reason}", started.elapsed());
    let (_, metrics) = svc.get("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("lienthong_store_errors_total{") && !l.ends_with(" 0")),
        "store errors counted"
    );

    std::fs::remove_file(&filler).unwrap();
    let started = Instant::now();
    let (code, body) = svc
        .wait_for("/readyz", Duration::from_secs(20), |c, _| c == 200)
        .await;
    assert_eq!(code, 200, "ready again once space is back: {body}");
    eprintln!("ready again after {:?}", started.elapsed());
    svc.stop().await;
}
