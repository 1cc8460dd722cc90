//! The wall clock of the real binary stepped forward one hour and back (libfaketime, Debian
//! package `faketime`; the monotonic clock is left alone, as with an NTP step): deliveries that
//! failed while the clock was ahead are retried within their backoff bound once the receiver
//! works, not an hour later, and the step is logged.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::bin::{self, Receiver, Serve, ServeOpts, Targets};

fn libfaketime() -> Option<PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

fn set_offset(file: &Path, offset: &str) {
    std::fs::write(file, format!("{offset}\n")).unwrap();
}

fn wait(limit: Duration, f: impl Fn() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

#[test]
fn clock_stepped_forward_and_back_keeps_deliveries_within_their_retry_bound() {
    let Some(lib) = libfaketime() else {
        bin::skip_or_fail("libfaketime not found (apt-get install faketime)");
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let targets = rt.block_on(Targets::start(1));
    let (receiver, hook) = rt.block_on(Receiver::start());
    receiver.failing.store(true, Ordering::Relaxed);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lienthong.db");
    let path = dir.path().join("probes.toml");
    let notify =
        format!("[[notify]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://{hook}/hook\"\n");
    std::fs::write(&path, bin::config(&db, targets.addr, 1, &notify)).unwrap();
    let clock = dir.path().join("faketime");
    set_offset(&clock, "+0");
    let lib = lib.to_string_lossy().into_owned();
    let clock_s = clock.to_string_lossy().into_owned();
    let serve = Serve::spawn(&ServeOpts {
        config: &path,
        dir: dir.path(),
        port: bin::free_port(),
        log: &dir.path().join("serve.log"),
        env: &[
            ("LD_PRELOAD", &lib),
            ("FAKETIME_TIMESTAMP_FILE", &clock_s),
            ("FAKETIME_NO_CACHE", "1"),
            ("DONT_FAKE_MONOTONIC", "1"),
        ],
        wrapper: &[],
    });
    let (code, _) = serve.wait_for("/readyz", Duration::from_secs(20), |c, _| c == 200);
    assert_eq!(code, 200, "{}", serve.log_text());
    // The site goes down: its incident's delivery fails (the receiver answers 500).
    targets.set(0, false);
    assert!(
        wait(Duration::from_secs(20), || receiver.count() >= 1),
        "a first delivery attempt: {}",
        serve.log_text()
    );
    // One hour ahead: attempts fail there and are stamped an hour ahead.
    set_offset(&clock, "+3600s");
    let n = receiver.count();
    assert!(
        wait(Duration::from_secs(15), || receiver.count() >= n + 2),
        "retries while the clock is ahead"
    );
    // And back: the receiver works from now on.
    set_offset(&clock, "+0");
    std::thread::sleep(Duration::from_millis(500));
    receiver.failing.store(false, Ordering::Relaxed);
    let healed = Instant::now();
    let attempts_before = receiver.count();
    assert!(
        wait(Duration::from_secs(60), || receiver
            .all()
            .iter()
            .any(|d| d.accepted)),
        "delivered after the clock came back"
    );
    let first_ok = receiver.all().into_iter().find(|d| d.accepted).unwrap();
    let after = first_ok.at.saturating_duration_since(healed);
    // Retries so far: backoff(k) = 2^k s (+10 %); the next one after `healed` comes within the
    // backoff of the attempts made, plus the 500 ms delivery tick.
    let k = attempts_before as u32;
    let bound = Duration::from_millis(((1000u64 << k.min(8)) * 11 / 10).min(300_000) + 1000);
    // The site recovers: the resolution is delivered at once (the target's backoff is over).
    targets.set(0, true);
    let resolved = wait(Duration::from_secs(20), || {
        receiver
            .all()
            .iter()
            .any(|d| d.accepted && d.body["event"]["kind"] == "resolved")
    });
    let log = serve.log_text();
    assert!(serve.stop(Duration::from_secs(20)));
    eprintln!(
        "{attempts_before} failed attempts (clock +1 h for part of them); delivered {after:?} after \
         the receiver recovered (bound {bound:?}); resolution delivered: {resolved}"
    );
    assert!(
        log.contains("wall clock stepped by +36") && log.contains("wall clock stepped by -36"),
        "both steps logged:\n{log}"
    );
    assert!(
        after <= bound,
        "delivered {after:?} after recovery, bound {bound:?}"
    );
    assert!(resolved, "the resolution was delivered");
    // No incident ends before it starts (durations come from the monotonic clock).
    let bad: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM incidents WHERE resolved_at < started_at",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(bad, 0, "an incident resolved before it started");
}
