//! 200 config mutations, valid and invalid (sites, `[[notify]]`, `[server]`), each applied with
//! SIGHUP to the real binary: an invalid file keeps the old config running, a valid one is
//! applied (sites served, `[server]` timeouts reloaded, listen / max_connections counted in
//! `lienthong_config_reload_needs_restart`), and the resident memory stays flat.

mod common;

use std::time::{Duration, Instant};

use common::bin::{self, Serve, ServeOpts, Targets};

/// One mutation of the base config: (name, file text, expected when valid).
struct Mutation {
    name: &'static str,
    text: String,
    /// None = invalid (the old config keeps running).
    valid: Option<Expect>,
}

#[derive(Clone, Copy, PartialEq, Debug)]
struct Expect {
    sites: usize,
    needs_restart: i64,
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn reloads(m: &str) -> f64 {
    metric(m, "lienthong_config_reloads_total{result=\"success\"}").unwrap_or(0.0)
        + metric(m, "lienthong_config_reloads_total{result=\"failure\"}").unwrap_or(0.0)
}

fn mutations(
    db: &std::path::Path,
    targets: std::net::SocketAddr,
    hook: &str,
    port: u16,
) -> Vec<Mutation> {
    let notify = |n: usize| -> String {
        (0..n)
            .map(|i| format!("[[notify]]\nname = \"hook{i}\"\nkind = \"webhook\"\nurl = \"{hook}?n={i}\"\n\n"))
            .collect()
    };
    let server = |extra: &str| format!("[server]\nlisten = \"127.0.0.1:{port}\"\n{extra}\n");
    let base = |sites: usize, extra: &str| bin::config(db, targets, sites, extra);
    let ok = |sites, needs_restart| {
        Some(Expect {
            sites,
            needs_restart,
        })
    };
    vec![
        Mutation {
            name: "base",
            text: base(2, &server("")),
            valid: ok(2, 0),
        },
        Mutation {
            name: "more sites",
            text: base(4, &server("")),
            valid: ok(4, 0),
        },
        Mutation {
            name: "notify added",
            text: base(3, &format!("{}{}", server(""), notify(2))),
            valid: ok(3, 0),
        },
        Mutation {
            name: "notify changed",
            text: base(
                3,
                &format!("{}{}", server(""), notify(1).replace("n=0", "n=x")),
            ),
            valid: ok(3, 0),
        },
        Mutation {
            name: "server timeouts",
            text: base(
                2,
                &server("header_read_timeout = \"3s\"\nidle_timeout = \"30s\""),
            ),
            valid: ok(2, 0),
        },
        Mutation {
            name: "server listen moved",
            text: base(2, &server("").replace(&port.to_string(), "1")),
            valid: ok(2, 1),
        },
        Mutation {
            name: "server cap and listen",
            text: base(
                1,
                &server("max_connections = 64").replace(&port.to_string(), "2"),
            ),
            valid: ok(1, 2),
        },
        Mutation {
            name: "bad toml",
            text: base(2, &server("")).replace("[inventory]", "[inventory"),
            valid: None,
        },
        Mutation {
            name: "unknown field",
            text: base(2, &server("colour = \"red\"")),
            valid: None,
        },
        Mutation {
            name: "bad listen port",
            text: base(2, &server("").replace(&port.to_string(), "99999")),
            valid: None,
        },
        Mutation {
            name: "idle timeout too short",
            text: base(2, &server("idle_timeout = \"5s\"")),
            valid: None,
        },
        Mutation {
            name: "notify bad scheme",
            text: base(
                2,
                &format!("{}{}", server(""), notify(1).replace("http://", "ftp://")),
            ),
            valid: None,
        },
        Mutation {
            name: "notify unknown kind",
            text: base(
                2,
                &format!("{}{}", server(""), notify(1).replace("webhook", "pager")),
            ),
            valid: None,
        },
        Mutation {
            name: "duplicate slug",
            text: base(2, &server("")).replace("phuong-1", "phuong-0"),
            valid: None,
        },
        Mutation {
            name: "timeout not below interval",
            text: base(2, &server("")).replace("timeout = \"500ms\"", "timeout = \"5s\""),
            valid: None,
        },
        Mutation {
            name: "empty file",
            text: String::new(),
            valid: None,
        },
    ]
}

fn run(n: usize) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let targets = rt.block_on(Targets::start(4));
    let (_receiver, hook) = rt.block_on(common::bin::Receiver::start());
    let hook = format!("http://{hook}/hook");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lienthong.db");
    let path = dir.path().join("probes.toml");
    let port = bin::free_port();
    let all = mutations(&db, targets.addr, &hook, port);
    std::fs::write(&path, &all[0].text).unwrap();
    let log = dir.path().join("serve.log");
    let serve = Serve::spawn(&ServeOpts {
        config: &path,
        dir: dir.path(),
        port,
        log: &log,
        env: &[],
        wrapper: &[],
    });
    let (code, _) = serve.wait_for("/readyz", Duration::from_secs(20), |c, _| c == 200);
    assert_eq!(code, 200, "{}", serve.log_text());

    let mut current = all[0].valid.unwrap();
    let mut rss = Vec::new();
    let mut rng_state = 0x9e37_79b9_u64;
    let (mut valid, mut invalid) = (0, 0);
    let started = Instant::now();
    for i in 0..n {
        // A fixed pseudo-random order (every mutation often, valid and invalid interleaved).
        rng_state = rng_state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let m = &all[(rng_state >> 33) as usize % all.len()];
        let (_, before) = serve.get("/metrics");
        let count = reloads(&before);
        std::fs::write(&path, &m.text).unwrap();
        serve.signal("-HUP");
        let (_, after) = serve.wait_for("/metrics", Duration::from_secs(10), |c, b| {
            c == 200 && reloads(b) > count
        });
        assert!(
            reloads(&after) > count,
            "mutation {i} ({}) was not processed",
            m.name
        );
        let ok = metric(&after, "lienthong_config_last_reload_successful");
        match m.valid {
            Some(e) => {
                valid += 1;
                assert_eq!(
                    ok,
                    Some(1.0),
                    "mutation {i} ({}) is valid:\n{}",
                    m.name,
                    tail(&serve)
                );
                current = e;
            }
            None => {
                invalid += 1;
                assert_eq!(ok, Some(0.0), "mutation {i} ({}) is invalid", m.name);
            }
        }
        // The running config is the last valid one.
        let (_, sites) = serve.get("/api/v1/sites");
        let sites: serde_json::Value = serde_json::from_str(&sites).unwrap();
        let listed = sites
            .as_array()
            .or_else(|| sites["items"].as_array())
            .map_or(0, |a| a.len());
        assert_eq!(
            listed, current.sites,
            "mutation {i} ({}): sites served",
            m.name
        );
        assert_eq!(
            metric(&after, "lienthong_config_reload_needs_restart"),
            Some(current.needs_restart as f64),
            "mutation {i} ({}): settings needing a restart",
            m.name
        );
        if i == 20 || i + 1 == n {
            rss.push(serve.rss_kb());
        }
    }
    let took = started.elapsed();
    let (code, _) = serve.get("/healthz");
    assert_eq!(code, 200, "still serving on the first address");
    let text = serve.log_text();
    assert!(
        text.contains("[server] timeouts reloaded"),
        "timeouts applied live"
    );
    assert!(text.contains("need a restart"), "listen change logged");
    assert!(text.contains("notify targets reloaded"), "notify reloaded");
    assert!(serve.stop(Duration::from_secs(20)), "graceful stop");
    let (first, last) = (rss[0], rss[rss.len() - 1]);
    eprintln!(
        "{n} reloads ({valid} valid, {invalid} invalid) in {took:?}; RSS {first} kB after 20, {last} kB at the end"
    );
    assert!(
        last <= first + first / 4 + 4096,
        "RSS grew from {first} kB to {last} kB over {n} reloads"
    );
}

fn tail(s: &Serve) -> String {
    let t = s.log_text();
    t.lines().rev().take(15).collect::<Vec<_>>().join("\n")
}

/// CI variant: 200 mutations.
#[test]
fn two_hundred_reload_mutations_keep_or_apply_the_config() {
    run(200);
}

/// Long variant: 2,000 mutations (memory over many reloads).
#[test]
#[ignore]
fn reload_mutations_long() {
    run(2000);
}
