//! Active/standby on PostgreSQL: a private cluster (tests/common/pg.rs), two `lienthong serve`
//! processes on one store, toggled HTTP targets that open and resolve incidents, and a
//! recording webhook receiver, all on 127.0.0.1.
//!
//! 1. `a` starts first and leads, `b` is standby (`/readyz`, `/api/v1/cluster`,
//!    `lienthong_leader`).
//! 2. With incidents opening and resolving, `a` is killed with SIGKILL: `b` must lead within
//!    30 s and carry on from the stored state.
//! 3. `a` comes back as standby; PostgreSQL is restarted (`pg_ctl stop -m fast` + start) while
//!    faults continue.
//! 4. Everything up: every incident resolved, no key with overlapping incidents, every outbox
//!    row delivered; a key received twice only across the SIGKILL (a send whose "delivered"
//!    mark died with the process). The password appears in no log.
//!
//! Skipped outside CI without PostgreSQL; under `CI=true` a missing PostgreSQL fails.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::bin::{self, Receiver, Serve, ServeOpts, Targets};
use common::pg::{Pg, PASSWORD};
use lienthong::incidents::db::{Conn, PgConn, Value};
use lienthong::incidents::location::StoreLocation;

const SITES: usize = 6;

/// Kills the child on drop (a failed assertion leaves no process behind).
struct Guard(Option<Serve>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            s.kill9();
        }
    }
}

impl Guard {
    fn s(&self) -> &Serve {
        self.0.as_ref().unwrap()
    }
}

fn role(s: &Serve) -> String {
    let (code, body) = s.get("/readyz");
    if code != 200 {
        return format!("{code}");
    }
    if body.contains("role: leader") {
        "leader".into()
    } else if body.contains("role: standby") {
        "standby".into()
    } else {
        body
    }
}

fn wait_role(s: &Serve, want: &str, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if role(s) == want {
            return Some(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

/// Counts through a direct connection (the test's own reader).
struct Db(Conn);

impl Db {
    fn connect(url: &str) -> Db {
        let StoreLocation::Postgres(t) = StoreLocation::parse(url).unwrap() else {
            unreachable!()
        };
        let t = t.with_password(Some(PASSWORD.into()));
        Db(Conn::Pg(Box::new(
            PgConn::connect(&t.config(), Default::default()).expect("test connection"),
        )))
    }

    fn count(&self, sql: &str) -> i64 {
        self.0
            .query_row(sql, Vec::<Value>::new(), |r| r.get(0))
            .unwrap_or(i64::MAX)
    }

    fn keys(&self) -> Vec<String> {
        self.0
            .prepare("SELECT idempotency_key FROM outbox")
            .unwrap()
            .query_map(Vec::<Value>::new(), |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }
}

#[test]
fn standby_takes_over_and_nothing_is_lost() {
    let Some(pg) = Pg::start() else {
        return;
    };
    pg.create_db("lienthong");
    let url = pg.url("lienthong");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let targets = rt.block_on(Targets::start(SITES));
    let (receiver, hook) = rt.block_on(Receiver::start());
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pgpass");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let config = |instance: &str| {
        let extra = format!(
            "[store]\nurl = \"{url}\"\npassword_file = \"{}\"\ninstance = \"{instance}\"\n\n\
             [[notify]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://{hook}/hook\"\ntimeout = \"2s\"\n",
            pw.display()
        );
        let path = dir.path().join(format!("{instance}.toml"));
        let unused = dir.path().join("unused.db");
        std::fs::write(&path, bin::config(&unused, targets.addr, SITES, &extra)).unwrap();
        path
    };
    let (cfg_a, cfg_b) = (config("a"), config("b"));
    let spawn = |cfg: &std::path::Path, name: &str| {
        Guard(Some(Serve::spawn(&ServeOpts {
            config: cfg,
            dir: dir.path(),
            port: bin::free_port(),
            log: &dir.path().join(format!("{name}.log")),
            env: &[],
            wrapper: &[],
        })))
    };

    let mut a = spawn(&cfg_a, "a");
    assert!(
        wait_role(a.s(), "leader", Duration::from_secs(30)).is_some(),
        "a leads: {}\n{}",
        role(a.s()),
        a.s().log_text()
    );
    let b = spawn(&cfg_b, "b");
    assert!(
        wait_role(b.s(), "standby", Duration::from_secs(30)).is_some(),
        "b is standby: {}\n{}",
        role(b.s()),
        b.s().log_text()
    );
    let (_, cluster) = b.s().get("/api/v1/cluster");
    let c: serde_json::Value = serde_json::from_str(&cluster).unwrap();
    let roles: HashSet<(String, String)> = c["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["instance"].as_str().unwrap().to_string(),
                m["role"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(roles.contains(&("a".into(), "leader".into())), "{cluster}");
    assert!(roles.contains(&("b".into(), "standby".into())), "{cluster}");
    let (_, metrics) = a.s().get("/metrics");
    assert!(
        metrics.contains("lienthong_leader{instance=\"a\"} 1"),
        "leader gauge on a"
    );
    let (_, metrics) = b.s().get("/metrics");
    assert!(
        metrics.contains("lienthong_leader{instance=\"b\"} 0"),
        "leader gauge on b"
    );

    // Faults: each site alternates down 2–5 s and up 2–5 s.
    let stop = Arc::new(AtomicBool::new(false));
    let faults = {
        let t = targets.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            use rand::Rng;
            let mut rng = rand::rng();
            let mut next: Vec<Instant> = (0..SITES)
                .map(|_| Instant::now() + Duration::from_millis(rng.random_range(200..3000)))
                .collect();
            let mut flips = 0usize;
            while !stop.load(Ordering::Relaxed) {
                for (i, at) in next.iter_mut().enumerate() {
                    if Instant::now() >= *at {
                        let up = !t.up[i].load(Ordering::Relaxed);
                        t.set(i, up);
                        flips += 1;
                        *at = Instant::now() + Duration::from_millis(rng.random_range(2000..5000));
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            flips
        })
    };

    let db = Db::connect(&url);
    // Wait until incidents are opening and notifications flowing under a.
    let until = Instant::now() + Duration::from_secs(40);
    while Instant::now() < until
        && (db.count("SELECT count(*) FROM incidents") < 3 || receiver.count() < 2)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        db.count("SELECT count(*) FROM incidents") >= 3,
        "faults open incidents under a\n{}",
        a.s().log_text()
    );
    let kill_at = Instant::now();
    a.0.take().unwrap().kill9();
    let took = wait_role(b.s(), "leader", Duration::from_secs(30));
    let Some(took) = took else {
        panic!(
            "b did not lead within 30 s of a's SIGKILL\n{}",
            b.s().log_text()
        );
    };
    eprintln!("failover: b leads {took:?} after a's SIGKILL");

    // b works as leader for a while; then a returns as standby.
    std::thread::sleep(Duration::from_secs(8));
    let a2 = spawn(&cfg_a, "a2");
    assert!(
        wait_role(a2.s(), "standby", Duration::from_secs(30)).is_some(),
        "a back as standby: {}",
        role(a2.s())
    );
    let before_restart = receiver.count();
    // PostgreSQL restarts under load.
    pg.pg_ctl_stop("fast");
    std::thread::sleep(Duration::from_secs(3));
    pg.pg_ctl_start();
    std::thread::sleep(Duration::from_secs(8));
    stop.store(true, Ordering::Relaxed);
    let flips = faults.join().unwrap();
    targets.all(true);

    // Drain: every incident resolved, every row delivered.
    let db = Db::connect(&url);
    let until = Instant::now() + Duration::from_secs(90);
    let (mut open, mut pending) = (i64::MAX, i64::MAX);
    while Instant::now() < until {
        open = db.count("SELECT count(*) FROM incidents WHERE resolved_at IS NULL");
        pending = db.count("SELECT count(*) FROM outbox WHERE delivered_at IS NULL");
        if open == 0 && pending == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let logs = format!(
        "--- b ---\n{}\n--- a2 ---\n{}",
        b.s().log_text(),
        a2.s().log_text()
    );
    let tail: String = logs.lines().rev().take(60).collect::<Vec<_>>().join("\n");
    assert_eq!(open, 0, "every incident resolved once all is up\n{tail}");
    assert_eq!(pending, 0, "every outbox row delivered\n{tail}");
    assert_eq!(
        role(b.s()),
        "leader",
        "b still leads after the database restart\n{tail}"
    );
    assert_eq!(role(a2.s()), "standby");

    let overlaps = db.count(
        "SELECT count(*) FROM incidents x JOIN incidents y ON x.key = y.key AND x.id < y.id \
         WHERE y.started_at < x.resolved_at",
    );
    assert_eq!(
        overlaps, 0,
        "an incident present twice (overlapping, same key)"
    );
    let incidents = db.count("SELECT count(*) FROM incidents");
    let outbox = db.keys();
    let duplicates = receiver.assert_each_key_once(&outbox, &[kill_at]);
    assert!(
        duplicates <= 1,
        "at most the one delivery in flight at the SIGKILL"
    );
    assert!(
        receiver.count() > before_restart,
        "notifications flowed after the database restart"
    );
    for (name, text) in [
        ("b", b.s().log_text()),
        ("a2", a2.s().log_text()),
        ("pg", pg.log()),
    ] {
        assert!(
            !text.contains(PASSWORD),
            "the password appears in the {name} log"
        );
    }
    let (_, cluster) = b.s().get("/api/v1/cluster");
    assert!(!cluster.contains(PASSWORD));

    // The leaders' report reads the shared store the config names (no `--database`).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .args(["readiness", "--format", "json", "--config"])
        .arg(&cfg_b)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "readiness on PostgreSQL: {stderr}");
    assert!(!stderr.contains(PASSWORD) && !dir.path().join("unused.db").exists());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["sites"].as_array().unwrap().len(), SITES, "{report}");
    assert_eq!(
        report["team_figures"]["city"]["severities"][0]["incidents"], incidents,
        "the report counts the incidents of the shared store"
    );
    eprintln!(
        "{flips} fault flips: {incidents} incidents, {} outbox rows, {} deliveries, 0 lost, \
         {duplicates} duplicate (in flight at the SIGKILL); failover {took:?}",
        outbox.len(),
        receiver.count()
    );
    drop(b);
    drop(a2);
}

/// The database stops for longer than the lease while a target fails and recovers: the
/// leader goes on in memory, queues the incident's open and resolve, and once PostgreSQL is
/// back renews its lease with the same epoch (the standby leaves it the hold-off) and writes
/// them: the incident is in the store and each of its notifications is delivered once.
#[test]
fn a_long_database_outage_loses_nothing_queued() {
    let Some(pg) = Pg::start() else {
        return;
    };
    pg.create_db("lienthong");
    let url = pg.url("lienthong");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let targets = rt.block_on(Targets::start(SITES));
    let (receiver, hook) = rt.block_on(Receiver::start());
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pgpass");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let config = |instance: &str| {
        let extra = format!(
            "[store]\nurl = \"{url}\"\npassword_file = \"{}\"\ninstance = \"{instance}\"\n\n\
             [[notify]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://{hook}/hook\"\ntimeout = \"2s\"\n",
            pw.display()
        );
        let path = dir.path().join(format!("{instance}.toml"));
        let unused = dir.path().join("unused.db");
        std::fs::write(&path, bin::config(&unused, targets.addr, SITES, &extra)).unwrap();
        path
    };
    let spawn = |instance: &str| {
        Guard(Some(Serve::spawn(&ServeOpts {
            config: &config(instance),
            dir: dir.path(),
            port: bin::free_port(),
            log: &dir.path().join(format!("{instance}.log")),
            env: &[],
            wrapper: &[],
        })))
    };
    let a = spawn("a");
    assert!(
        wait_role(a.s(), "leader", Duration::from_secs(30)).is_some(),
        "a leads\n{}",
        a.s().log_text()
    );
    let b = spawn("b");
    assert!(
        wait_role(b.s(), "standby", Duration::from_secs(30)).is_some(),
        "b is standby\n{}",
        b.s().log_text()
    );
    std::thread::sleep(Duration::from_secs(3));
    let outage_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let stopped = Instant::now();
    pg.pg_ctl_stop("fast");
    std::thread::sleep(Duration::from_secs(2));
    targets.set(0, false);
    std::thread::sleep(Duration::from_secs(8));
    targets.set(0, true);
    // 20 s without the database: well past the 12 s lease.
    std::thread::sleep(Duration::from_secs(20).saturating_sub(stopped.elapsed()));
    pg.pg_ctl_start();

    let db = Db::connect(&url);
    let done = format!(
        "SELECT count(*) FROM incidents WHERE key LIKE 'site/phuong-0/%' \
         AND started_at >= {outage_ms} AND resolved_at IS NOT NULL"
    );
    let undelivered = format!(
        "SELECT count(*) FROM outbox o JOIN incidents i ON i.id = o.incident_id \
         WHERE i.started_at >= {outage_ms} AND o.delivered_at IS NULL"
    );
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until && (db.count(&done) < 1 || db.count(&undelivered) != 0) {
        std::thread::sleep(Duration::from_millis(300));
    }
    let logs = || {
        format!(
            "--- a ---\n{}\n--- b ---\n{}",
            a.s().log_text(),
            b.s().log_text()
        )
    };
    assert_eq!(
        db.count(&done),
        1,
        "the incident that opened and resolved during the outage is stored\n{}",
        logs()
    );
    assert_eq!(
        db.count(&undelivered),
        0,
        "its notifications delivered\n{}",
        logs()
    );
    let kinds = db.count(&format!(
        "SELECT count(DISTINCT e.kind) FROM events e JOIN incidents i ON i.id = e.incident_id \
         WHERE i.started_at >= {outage_ms} AND e.kind IN ('opened', 'resolved')"
    ));
    assert_eq!(kinds, 2, "its timeline has the open and the resolution");
    let keys: Vec<String> =
        db.0.prepare(&format!(
            "SELECT o.idempotency_key FROM outbox o JOIN incidents i ON i.id = o.incident_id \
             WHERE i.started_at >= {outage_ms}"
        ))
        .unwrap()
        .query_map(Vec::<Value>::new(), |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(keys.len() >= 2, "open and resolve notified: {keys:?}");
    let by_key = receiver.by_key();
    for k in &keys {
        assert_eq!(by_key.get(k), Some(&1), "{k} delivered exactly once");
    }
    assert_eq!(
        role(a.s()),
        "leader",
        "a leads again (same epoch)\n{}",
        logs()
    );
    assert!(
        wait_role(b.s(), "standby", Duration::from_secs(10)).is_some(),
        "b ready as standby again: {:?}",
        b.s().get("/readyz")
    );
    let (_, metrics) = a.s().get("/metrics");
    assert!(
        metrics.contains("lienthong_store_queued_writes_dropped_total{reason=\"superseded\"} 0"),
        "nothing superseded"
    );
    assert!(
        metrics.contains("lienthong_store_queued_writes 0"),
        "queue drained"
    );
    assert!(
        a.s()
            .log_text()
            .contains("database unreachable past the leader lease"),
        "a clear log line for the outage"
    );
    eprintln!(
        "outage: {} notifications for the incident, each once",
        keys.len()
    );
}

/// Every instance is a vantage point: `a` (leader) and `b` (standby) probe the same checks at
/// different addresses (two target servers). Site 0 failing from `a` only opens no incident
/// while `b` sees it up (1 of 2 is no strict majority); failing from both opens one, and it
/// resolves when both see it up. Each instance's series carry `vantage="<instance>"`.
#[test]
fn a_fault_seen_from_one_vantage_only_is_no_incident() {
    let Some(pg) = Pg::start() else {
        return;
    };
    pg.create_db("lienthong");
    let url = pg.url("lienthong");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ta, tb) =
        rt.block_on(async { (Targets::start(SITES).await, Targets::start(SITES).await) });
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pgpass");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let spawn = |instance: &str, targets: &Targets| {
        let extra = format!(
            "[store]\nurl = \"{url}\"\npassword_file = \"{}\"\ninstance = \"{instance}\"\n",
            pw.display()
        );
        let path = dir.path().join(format!("{instance}.toml"));
        let unused = dir.path().join("unused.db");
        std::fs::write(&path, bin::config(&unused, targets.addr, SITES, &extra)).unwrap();
        Guard(Some(Serve::spawn(&ServeOpts {
            config: &path,
            dir: dir.path(),
            port: bin::free_port(),
            log: &dir.path().join(format!("{instance}.log")),
            env: &[],
            wrapper: &[],
        })))
    };
    let a = spawn("a", &ta);
    assert!(
        wait_role(a.s(), "leader", Duration::from_secs(30)).is_some(),
        "a leads\n{}",
        a.s().log_text()
    );
    let b = spawn("b", &tb);
    assert!(
        wait_role(b.s(), "standby", Duration::from_secs(30)).is_some(),
        "b is standby\n{}",
        b.s().log_text()
    );
    for (s, name) in [(&a, "a"), (&b, "b")] {
        let want = format!("site=\"phuong-0\",vantage=\"{name}\"");
        let has = || {
            let (_, m) = s.s().get("/metrics");
            m.lines()
                .any(|l| l.starts_with("probe_success{") && l.contains(&want))
        };
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until && !has() {
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(has(), "{name}'s own series carry vantage=\"{name}\"");
    }
    let db = Db::connect(&url);
    // Both vantage points' rows are in the shared store.
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until
        && db.count("SELECT count(DISTINCT instance) FROM check_states") < 2
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        db.count("SELECT count(DISTINCT instance) FROM check_states"),
        2
    );
    std::thread::sleep(Duration::from_secs(4));
    // b's status page shows the leader's live site statuses, not "unknown".
    let page_status = |s: &Serve| {
        let (_, html) = s.get("/sites/phuong-0");
        html.split("data-slug=\"phuong-0\" data-status=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("none")
            .to_string()
    };
    let wait_page = |s: &Serve, want: &str| {
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until && page_status(s) != want {
            std::thread::sleep(Duration::from_millis(300));
        }
        page_status(s)
    };
    assert_eq!(
        wait_page(b.s(), "up"),
        "up",
        "standby's page shows the site up"
    );
    let site0 = "SELECT count(*) FROM incidents WHERE key LIKE 'site/phuong-0/%'";
    let open0 = "SELECT count(*) FROM incidents WHERE key LIKE 'site/phuong-0/%' \
                 AND resolved_at IS NULL";

    // Seen down from a only, for 15 s: no incident.
    ta.set(0, false);
    let until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < until {
        assert_eq!(
            db.count(site0),
            0,
            "a fault seen from one of two vantage points opened an incident\n{}",
            a.s().log_text()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let (_, m) = a.s().get("/metrics");
    assert!(
        m.lines().any(|l| l.starts_with("probe_success{")
            && l.contains("site=\"phuong-0\",vantage=\"a\"")
            && l.ends_with(" 0")),
        "a does see the fault"
    );

    // Down from both: the quorum holds, one incident.
    tb.set(0, false);
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until && db.count(open0) < 1 {
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(
        db.count(open0),
        1,
        "down from both vantage points: one incident\n{}",
        a.s().log_text()
    );
    assert_eq!(
        wait_page(b.s(), "down"),
        "down",
        "standby's page follows the leader"
    );
    // b sees it up again: 1 of 2, the incident resolves though a still sees it down.
    tb.set(0, true);
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until && db.count(open0) > 0 {
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(
        db.count(open0),
        0,
        "resolved once only one vantage point sees it down"
    );
    assert_eq!(db.count(site0), 1, "one incident in all");
    ta.set(0, true);
    assert_eq!(
        db.count("SELECT count(*) FROM incidents WHERE key NOT LIKE 'site/phuong-0/%'"),
        0,
        "no other incident"
    );
}

/// `lienthong serve` as instance `a` on the store at `url` (password file in `dir`), probing
/// `targets`, with `extra` config appended.
fn instance_a(dir: &std::path::Path, url: &str, targets: &Targets, extra: &str) -> Guard {
    let pw = dir.join("pgpass");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let extra = format!(
        "[store]\nurl = \"{url}\"\npassword_file = \"{}\"\ninstance = \"a\"\n\n{extra}",
        pw.display()
    );
    let path = dir.join("a.toml");
    std::fs::write(
        &path,
        bin::config(&dir.join("unused.db"), targets.addr, SITES, &extra),
    )
    .unwrap();
    Guard(Some(Serve::spawn(&ServeOpts {
        config: &path,
        dir,
        port: bin::free_port(),
        log: &dir.join("a.log"),
        env: &[],
        wrapper: &[],
    })))
}

/// PostgreSQL down when the service starts: it starts anyway (probing and /metrics run,
/// `/readyz` and the store API answer 503 with the reason) and, once the database is up,
/// migrates it, takes the lease and opens incidents as usual.
#[test]
fn starts_without_its_database_and_connects_when_it_is_back() {
    let Some(pg) = Pg::start() else {
        return;
    };
    pg.create_db("lienthong");
    let url = pg.url("lienthong");
    pg.pg_ctl_stop("fast");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let targets = rt.block_on(Targets::start(SITES));
    let dir = tempfile::tempdir().unwrap();
    let a = instance_a(dir.path(), &url, &targets, "");
    let probing = || {
        let (code, m) = a.s().get("/metrics");
        code == 200 && m.lines().any(|l| l.starts_with("probe_success{"))
    };
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until && !probing() {
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        probing(),
        "probing and /metrics without the database\n{}",
        a.s().log_text()
    );
    let (code, body) = a.s().get("/readyz");
    assert_eq!(code, 503, "not ready without the database: {body}");
    assert!(body.contains("postgresql"), "readiness says why: {body}");
    let (code, body) = a.s().get("/api/v1/incidents");
    assert_eq!(code, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("a JSON error");
    assert!(
        v.to_string().contains("incident store unavailable"),
        "the reason: {body}"
    );
    assert!(!body.contains(PASSWORD) && !a.s().log_text().contains(PASSWORD));
    // Every store-backed read answers 503 with a JSON reason, as the OpenAPI document says.
    let (_, doc) = a.s().get("/api/v1/openapi.json");
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    for path in [
        "/api/v1/incidents/1",
        "/api/v1/maintenance",
        "/api/v1/teams",
        "/api/v1/readiness",
        "/readiness",
        "/incidents.atom",
    ] {
        let (code, body) = a.s().get(path);
        assert_eq!(code, 503, "{path} without the database: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("a JSON error");
        assert!(v["error"].as_str().is_some(), "{path}: {body}");
        assert!(!body.contains(PASSWORD));
        let documented =
            doc["paths"][path.replace("/1", "/{id}")]["get"]["responses"]["503"].is_object();
        assert!(documented, "{path}: 503 not in the OpenAPI document");
    }

    pg.pg_ctl_start();
    assert!(
        wait_role(a.s(), "leader", Duration::from_secs(30)).is_some(),
        "leads once the database is back: {}\n{}",
        role(a.s()),
        a.s().log_text()
    );
    let db = Db::connect(&url);
    targets.set(1, false);
    let open = "SELECT count(*) FROM incidents WHERE key LIKE 'site/phuong-1/%' \
                AND resolved_at IS NULL";
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until && db.count(open) != 1 {
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(
        db.count(open),
        1,
        "incidents open as usual\n{}",
        a.s().log_text()
    );
    let (code, _) = a.s().get("/api/v1/incidents");
    assert_eq!(code, 200);
}

/// The database stops while a notification is on the wire: the receiver answers 200 after
/// PostgreSQL went down, so the "delivered" mark cannot be written. The leader remembers the
/// delivery, writes the mark once the database is back, and never sends it again.
#[test]
fn a_delivery_whose_mark_fails_is_not_sent_again() {
    let Some(pg) = Pg::start() else {
        return;
    };
    let pg = Arc::new(pg);
    pg.create_db("lienthong");
    let url = pg.url("lienthong");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let targets = rt.block_on(Targets::start(SITES));
    let (receiver, hook) = rt.block_on(Receiver::start());
    let stopped_at = Arc::new(Mutex::new(None));
    {
        let (pg, stopped_at) = (pg.clone(), stopped_at.clone());
        *receiver.before_first_answer.lock().unwrap() = Some(Box::new(move || {
            pg.pg_ctl_stop("fast");
            *stopped_at.lock().unwrap() = Some(Instant::now());
        }));
    }
    let dir = tempfile::tempdir().unwrap();
    let notify = format!(
        "[[notify]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://{hook}/hook\"\ntimeout = \"10s\"\n"
    );
    let a = instance_a(dir.path(), &url, &targets, &notify);
    assert!(
        wait_role(a.s(), "leader", Duration::from_secs(30)).is_some(),
        "a leads\n{}",
        a.s().log_text()
    );
    // A fault: its incident's notification stops the database before it is answered.
    targets.set(0, false);
    let until = Instant::now() + Duration::from_secs(30);
    while stopped_at.lock().unwrap().is_none() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        stopped_at.lock().unwrap().is_some(),
        "a notification arrived\n{}",
        a.s().log_text()
    );
    std::thread::sleep(Duration::from_secs(3));
    pg.pg_ctl_start();
    std::thread::sleep(Duration::from_secs(3));
    targets.set(0, true);

    let until = Instant::now() + Duration::from_secs(60);
    let (mut open, mut pending) = (i64::MAX, i64::MAX);
    while Instant::now() < until {
        let db = Db::connect(&url);
        open = db.count("SELECT count(*) FROM incidents WHERE resolved_at IS NULL");
        pending = db.count("SELECT count(*) FROM outbox WHERE delivered_at IS NULL");
        if open == 0 && pending == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = a.s().log_text();
    assert_eq!((open, pending), (0, 0), "resolved and delivered\n{log}");
    let outbox = Db::connect(&url).keys();
    assert!(outbox.len() >= 2, "opened and resolved: {outbox:?}");
    // No kill: every key exactly once, the one answered while the database was down included.
    let duplicates = receiver.assert_each_key_once(&outbox, &[]);
    assert_eq!(duplicates, 0);
    assert!(
        log.contains("delivered mark still failing"),
        "the mark failed while the database was down\n{log}"
    );
    assert!(!log.contains(PASSWORD));
}
