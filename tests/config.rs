//! Config fixtures: one bad file per rule → its message at the right line:column; the shipped
//! probes.toml loads and matches the reference site list.

use std::collections::BTreeMap;
use std::path::Path;

use lienthong::config::Config;

fn problem(name: &str) -> String {
    let path = Path::new("tests/fixtures").join(format!("invalid-{name}.toml"));
    match Config::load(&path) {
        Ok(_) => panic!("{name}: loaded without error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn valid_fixture_loads() {
    let cfg = Config::load(Path::new("tests/fixtures/valid.toml")).expect("valid.toml loads");
    assert_eq!(cfg.inventory.sites.len(), 2);
    assert_eq!(
        cfg.inventory.checks.len(),
        5,
        "2 sites × 2 templates + 1 service check"
    );
    let ep = cfg
        .inventory
        .checks
        .iter()
        .find(|c| c.id.key() == "site/a/endpoint")
        .unwrap();
    match &ep.probe {
        lienthong::probe::ProbeSpec::Http(h) => assert_eq!(h.url, "http://127.0.0.1:1/"),
        other => panic!("endpoint is {other:?}"),
    }
}

#[test]
fn each_invalid_fixture_names_line_column_and_fix() {
    // (fixture, expected location, expected message fragment)
    let cases = [
        (
            "unknown-field",
            "invalid-unknown-field.toml:5:1:",
            "unknown field `pakets`",
        ),
        (
            "duration-unit",
            "invalid-duration-unit.toml:2:12:",
            "time unit needed",
        ),
        (
            "timeout-not-below-interval",
            "invalid-timeout-not-below-interval.toml:3:11:",
            "timeout must be shorter than interval",
        ),
        (
            "unknown-probe-kind",
            "invalid-unknown-probe-kind.toml:16:7:",
            "unknown variant `smtp`",
        ),
        (
            "unknown-probe-field",
            "invalid-unknown-probe-field.toml:22:41:",
            "unknown field `expect_stauts`",
        ),
        (
            "unknown-link-class",
            "invalid-unknown-link-class.toml:35:3:",
            "unknown link class `satellite`",
        ),
        (
            "duplicate-site-slug",
            "invalid-duplicate-site-slug.toml:35:3:",
            "duplicate site slug `a`",
        ),
        (
            "unknown-placeholder",
            "invalid-unknown-placeholder.toml:18:1:",
            "{addr.portal}",
        ),
        (
            "missing-site-address",
            "invalid-missing-site-address.toml:34:3:",
            "no address for {addr.endpoint}",
        ),
        ("bad-regex", "invalid-bad-regex.toml:28:1:", "body_regex"),
        (
            "missing-secret-env",
            "invalid-missing-secret-env.toml:28:1:",
            "LIENTHONG_TEST_SURELY_UNSET_TOKEN",
        ),
        (
            "loss-ratio",
            "invalid-loss-ratio.toml:6:12:",
            "max_loss must be a ratio",
        ),
        (
            "missing-field",
            "invalid-missing-field.toml:12:1:",
            "missing field `title`",
        ),
        (
            "bad-site-kind",
            "invalid-bad-site-kind.toml:35:51:",
            "unknown variant `thon`",
        ),
        (
            "duplicate-service-check",
            "invalid-duplicate-service-check.toml:31:1:",
            "duplicate check `api`",
        ),
        (
            "many-problems",
            "invalid-many-problems.toml:6:12:",
            "max_loss must be a ratio",
        ),
        (
            "type-errors",
            "invalid-type-errors.toml:21:1:",
            "unknown field `titel`",
        ),
        ("empty", "invalid-empty.toml:1:1:", "the file is empty"),
    ];
    let on_disk = std::fs::read_dir("tests/fixtures")
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("invalid-")
        })
        .count();
    assert_eq!(on_disk, cases.len(), "every fixture has a case");
    for (name, location, fragment) in cases {
        let text = problem(name);
        assert!(
            text.contains(location),
            "{name}: expected location {location} in:\n{text}"
        );
        assert!(
            text.contains(fragment),
            "{name}: expected `{fragment}` in:\n{text}"
        );
        assert!(
            !text.contains("(and "),
            "{name}: reported once, not per site:\n{text}"
        );
    }
}

#[test]
fn hints_accompany_common_mistakes() {
    assert!(problem("unknown-field").contains("hint: remove the field or fix its spelling"));
    assert!(problem("duration-unit").contains("hint: durations are strings with a unit"));
    assert!(problem("missing-secret-env").contains("hint: export the variable"));
}

#[test]
fn secrets_never_inline() {
    // A password field does not exist: only password_env.
    let text = std::fs::read_to_string("tests/fixtures/valid.toml").unwrap().replace(
        r#"probe.http = { url = "http://127.0.0.1:1/status" }"#,
        r#"probe.http = { url = "http://127.0.0.1:1/status", basic_auth = { username = "u", password = "p" } }"#,
    );
    let err = Config::from_str(Path::new("inline.toml"), &text)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `password`"), "{err}");
}

/// One row of sites.csv, as far as the comparison needs.
fn reference_sites(csv_path: &Path) -> BTreeMap<String, (String, String, bool)> {
    let text = std::fs::read_to_string(csv_path).unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines().skip(1) {
        // code,slug,name,kind,former_province,former_district,island,…: the first seven
        // fields never contain quoted commas in this file.
        let f: Vec<&str> = line.splitn(8, ',').collect();
        out.insert(
            f[1].to_string(),
            (f[0].to_string(), f[2].to_string(), f[6] == "true"),
        );
    }
    out
}

#[test]
fn shipped_probes_toml_loads_and_matches_sites_csv() {
    let cfg = Config::load(Path::new("probes.toml")).expect("shipped probes.toml loads");
    let inv = &cfg.inventory;
    assert_eq!(inv.sites.len(), 168);
    assert_eq!(
        inv.sites
            .iter()
            .filter(|s| s.kind.as_str() == "phuong")
            .count(),
        113
    );
    assert_eq!(
        inv.sites.iter().filter(|s| s.kind.as_str() == "xa").count(),
        54
    );
    assert_eq!(
        inv.sites
            .iter()
            .filter(|s| s.kind.as_str() == "dac-khu")
            .count(),
        1
    );
    let islands: Vec<&str> = inv
        .sites
        .iter()
        .filter(|s| s.link_class == "island")
        .map(|s| s.slug.as_str())
        .collect();
    assert_eq!(islands, ["xa-thanh-an", "xa-long-son", "dac-khu-con-dao"]);
    for role in ["link", "endpoint", "video"] {
        assert_eq!(
            inv.checks
                .iter()
                .filter(|c| c.role.as_str() == role)
                .count(),
            168,
            "{role} at every site"
        );
    }
    assert!(inv.services.len() >= 5);
    // Network safety: every target in the shipped plan is loopback.
    let text = std::fs::read_to_string("probes.toml").unwrap();
    for word in text.split(|c: char| !(c.is_ascii_digit() || c == '.')) {
        let parts: Vec<&str> = word.split('.').collect();
        if parts.len() == 4 && parts.iter().all(|p| p.parse::<u8>().is_ok()) {
            assert!(
                word.starts_with("127."),
                "non-loopback address {word} in probes.toml"
            );
        }
    }

    let csv = Path::new("../shared/data/sites.csv");
    if !csv.exists() {
        eprintln!("SKIPPED the sites.csv comparison: ../shared/data/sites.csv is absent (clone without the shared reference data)");
        return;
    }
    let reference = reference_sites(csv);
    assert_eq!(reference.len(), 168);
    let shipped: BTreeMap<String, (String, String, bool)> = inv
        .sites
        .iter()
        .map(|s| (s.slug.clone(), (s.code.clone(), s.name.clone(), s.island)))
        .collect();
    assert_eq!(
        shipped, reference,
        "probes.toml sites differ from sites.csv"
    );
}

/// The problems of a fixture as (line:column, message) in the order printed.
fn problems_of(name: &str) -> Vec<(String, String)> {
    let path = Path::new("tests/fixtures").join(format!("invalid-{name}.toml"));
    let err = Config::load(&path).unwrap_err();
    err.problems()
        .iter()
        .map(|p| (format!("{}:{}", p.line, p.column), p.message.clone()))
        .collect()
}

#[test]
fn every_problem_of_a_file_in_one_pass_in_file_order() {
    // A bad link class does not hide a bad URL of a check using it, nor the other sections.
    let got = problems_of("many-problems");
    let want = [
        ("6:12", "link class `mainland`: max_loss must be a ratio"),
        ("28:1", "check `service/lgsp/api`: invalid url: ftp://127.0.0.1:1/status"),
        ("35:135", "site `b`: lat 106.9 is outside -90..90"),
        ("38:1", "notify `chat`: url `https://***@chat.example.vn:99999/hook?token=***` is not a valid URL: invalid port number"),
        ("43:1", "notify `pager`: url `ftp://pager.example.vn/in` has scheme `ftp`"),
    ];
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for ((at, msg), (want_at, want_msg)) in got.iter().zip(want) {
        assert_eq!(at, want_at, "{msg}");
        assert!(msg.contains(want_msg), "{msg} lacks {want_msg}");
    }
    // Type errors stop serde at the first one; each entry is still looked at on its own.
    let got = problems_of("type-errors");
    let want = [
        ("21:1", "unknown field `titel`"),
        ("35:142", "invalid type: string \"10.7\", expected f64"),
        ("36:128", "invalid type: string \"no\", expected a boolean"),
    ];
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for ((at, msg), (want_at, want_msg)) in got.iter().zip(want) {
        assert_eq!(at, want_at, "{msg}");
        assert!(msg.contains(want_msg), "{msg} lacks {want_msg}");
    }
}

#[test]
fn swapped_coordinates_get_a_hint() {
    let text = problem("many-problems");
    assert!(
        text.contains("hint: lat and lon look swapped") && text.contains("lat = 10.4, lon = 106.9"),
        "{text}"
    );
    let valid = std::fs::read_to_string("tests/fixtures/valid.toml").unwrap();
    let far = valid.replace("lat = 10.7, lon = 106.7", "lat = -91, lon = 181");
    let err = Config::from_str(Path::new("far.toml"), &far).unwrap_err();
    let p: Vec<_> = err
        .problems()
        .iter()
        .map(|p| (p.column, &p.message))
        .collect();
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p[0].1.contains("lat -91 is outside -90..90"));
    assert!(p[1].1.contains("lon 181 is outside -180..180"));
    assert!(p[0].0 < p[1].0, "each at its own field");
    assert!(!err.to_string().contains("swapped"));
}

#[test]
fn notify_urls_are_fully_validated() {
    let valid = std::fs::read_to_string("tests/fixtures/valid.toml").unwrap();
    let with = |url: &str| {
        format!("{valid}\n[[notify]]\nname = \"n\"\nkind = \"webhook\"\nurl = \"{url}\"\n")
    };
    for (url, why) in [
        ("http://127.0.0.1:99999/", "invalid port number"),
        ("https://", "empty host"),
        ("http://:80/", "empty host"),
        ("mailto:ops@example.vn", "scheme `mailto`"),
        ("127.0.0.1:9093", "not a valid URL"),
        ("not a url", "not a valid URL"),
    ] {
        let err = Config::from_str(Path::new("n.toml"), &with(url))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains(why), "{url}: {err}");
    }
    assert!(Config::from_str(Path::new("n.toml"), &with("http://127.0.0.1:9093/")).is_ok());
}

#[test]
fn an_empty_file_says_so_and_shows_a_minimal_example_that_loads() {
    let err = Config::load(Path::new("tests/fixtures/invalid-empty.toml")).unwrap_err();
    let p = &err.problems()[0];
    assert_eq!(err.problems().len(), 1);
    assert_eq!(p.message, "the file is empty");
    let hint = p.hint.as_deref().unwrap();
    // The example in the hint is itself a valid config.
    let example: String = hint
        .lines()
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with('('))
        .map(|l| format!("{}\n", l.strip_prefix("  ").unwrap_or(l)))
        .collect();
    let cfg = Config::from_str(Path::new("example.toml"), &example)
        .unwrap_or_else(|e| panic!("the example does not load:\n{example}\n{e}"));
    assert_eq!(cfg.inventory.sites.len(), 1);
    assert!(Config::from_str(Path::new("blank.toml"), "  \n").is_err());
}

#[test]
fn secrets_in_urls_are_redacted_in_every_message() {
    // check-config and the SIGHUP reload both print the ConfigError's Display.
    let text = problem("many-problems");
    assert!(
        !text.contains("hunter2") && !text.contains("abc123"),
        "{text}"
    );
    assert!(text.contains("https://***@chat.example.vn"), "{text}");
    // A probe URL with a password in a check's build error, too.
    let valid = std::fs::read_to_string("tests/fixtures/valid.toml").unwrap();
    let text = valid.replace(
        r#"probe.http = { url = "http://127.0.0.1:1/status" }"#,
        r#"probe.http = { url = "htp://admin:s3cr3t@127.0.0.1:1/status?key=k3y" }"#,
    );
    let err = Config::from_str(Path::new("p.toml"), &text)
        .unwrap_err()
        .to_string();
    assert!(err.contains("check `service/lgsp/api`"), "{err}");
    assert!(!err.contains("s3cr3t") && !err.contains("k3y"), "{err}");
    // And a parse error quoting the value.
    let text = valid.replace(
        r#"probe.http = { url = "http://127.0.0.1:1/status" }"#,
        r#"probe.http = { url = 5, x = "http://admin:s3cr3t@h/" }"#,
    );
    let err = Config::from_str(Path::new("p.toml"), &text)
        .unwrap_err()
        .to_string();
    assert!(!err.contains("s3cr3t"), "{err}");
}

#[test]
fn check_config_defaults_to_probes_toml() {
    let bin = env!("CARGO_BIN_EXE_lienthong");
    let out = std::process::Command::new(bin)
        .arg("check-config")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("probes.toml: ok"), "{stdout}");
    let empty = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin)
        .arg("check-config")
        .current_dir(empty.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("probes.toml"));
}

#[test]
fn section_values_are_located_at_their_key_each_reported() {
    let valid = std::fs::read_to_string("tests/fixtures/valid.toml").unwrap();
    let lines = valid.lines().count();
    let text = format!(
        "{valid}\n[readiness]\nwindow = \"24h\"\navailability = {{ mainland = 1.5, rural = 2.0 }}\nlatency_quantile = 1.0\n\n[api]\nmax_maintenance = \"30s\"\n"
    );
    let err = Config::from_str(Path::new("r.toml"), &text).unwrap_err();
    let got: Vec<(usize, usize, &str)> = err
        .problems()
        .iter()
        .map(|p| (p.line, p.column, p.message.as_str()))
        .collect();
    let (av, lq, mm) = (lines + 4, lines + 5, lines + 8);
    let col = |s: &str| {
        "availability = { mainland = 1.5, rural = 2.0 }"
            .find(s)
            .unwrap()
            + 1
    };
    let want = [
        (
            av,
            col("mainland"),
            "availability.mainland must be in (0, 1]",
        ),
        (av, col("rural"), "unknown link class `rural`"),
        (av, col("rural"), "availability.rural must be in (0, 1]"),
        (lq, 1, "latency_quantile must be in [0.5, 1)"),
        (mm, 1, "[api] max_maintenance must be at least 1m"),
    ];
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!((g.0, g.1), (w.0, w.1), "{g:?}");
        assert!(g.2.contains(w.2), "{g:?} lacks {}", w.2);
    }
}

#[test]
fn certificate_thresholds_are_checked_at_their_key() {
    let valid = std::fs::read_to_string("tests/fixtures/valid.toml").unwrap();
    let lines = valid.lines().count();
    let text =
        format!("{valid}\n[incidents]\ncert_warning = \"7days\"\ncert_critical = \"10days\"\n");
    let err = Config::from_str(Path::new("c.toml"), &text).unwrap_err();
    let p = &err.problems()[0];
    assert_eq!(err.problems().len(), 1, "{:?}", err.problems());
    assert_eq!((p.line, p.column), (lines + 4, 1), "{p:?}");
    assert!(
        p.message
            .contains("cert_critical (10days) must be above zero and below cert_warning (7days)"),
        "{p:?}"
    );
    let ok =
        format!("{valid}\n[incidents]\ncert_warning = \"45days\"\ncert_critical = \"30days\"\n");
    let cfg = Config::from_str(Path::new("c.toml"), &ok).unwrap();
    assert_eq!(
        cfg.inventory.incidents.cert_critical.0.as_secs(),
        30 * 86_400
    );
}

/// A shared-service HTTP check that only looks at the status is a warning (it loads): the
/// document-management system answering 200 with a wrong body went unseen that way. The
/// shipped config asserts content on every shared-service check, so it has none.
#[test]
fn status_only_shared_service_check_is_a_warning() {
    let bin = env!("CARGO_BIN_EXE_lienthong");
    let out = std::process::Command::new(bin)
        .args(["check-config", "tests/fixtures/valid.toml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "a warning does not fail: {stderr}");
    assert!(
        stderr.contains("tests/fixtures/valid.toml:28:1: warning: shared-service check `service/lgsp/api` asserts no content"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: add `body_regex`"), "{stderr}");

    let valid = std::fs::read_to_string("tests/fixtures/valid.toml").unwrap();
    let asserted = valid.replace(
        r#"probe.http = { url = "http://127.0.0.1:1/status" }"#,
        r#"probe.http = { url = "http://127.0.0.1:1/status", body_regex = '"status":\s*"ok"' }"#,
    );
    assert_ne!(asserted, valid);
    let cfg = Config::from_str(Path::new("v.toml"), &asserted).unwrap();
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);

    let shipped = Config::load(Path::new("probes.toml")).unwrap();
    assert!(shipped.warnings.is_empty(), "{:?}", shipped.warnings);
}

#[test]
fn runbook_base_url_must_be_an_http_url() {
    let valid = std::fs::read_to_string("tests/fixtures/valid.toml").unwrap();
    let lines = valid.lines().count();
    let text = format!("{valid}\n[incidents]\nrunbook_base_url = \"docs/runbooks\"\n");
    let err = Config::from_str(Path::new("r.toml"), &text).unwrap_err();
    let p = &err.problems()[0];
    assert_eq!((p.line, p.column), (lines + 3, 1), "{p:?}");
    assert!(p.message.contains("is not an http(s) URL"), "{p:?}");
    let ok = format!(
        "{valid}\n[incidents]\nrunbook_base_url = \"https://git.example.org/lienthong/blob/main/docs/runbooks/\"\n"
    );
    let cfg = Config::from_str(Path::new("r.toml"), &ok).unwrap();
    let base = cfg.inventory.incidents.runbook_base_url.as_deref();
    assert_eq!(
        lienthong::incidents::open_series::runbook_url(base, "site/phuong-a/link"),
        "https://git.example.org/lienthong/blob/main/docs/runbooks/sitedown.md"
    );
    assert_eq!(
        lienthong::incidents::open_series::runbook_url(None, "prober"),
        "/runbooks/proberisolation"
    );
}

#[test]
fn report_tokens_are_named_not_written() {
    let base = std::fs::read_to_string("tests/fixtures/valid.toml").unwrap();
    let team = "[[team]]\nname = \"to-a\"\ntitle = \"Tổ A\"\nsites = [\"a\"]\n\n";
    let ok = format!(
        "{team}[reports]\ntokens_file = \"/etc/lienthong/report-tokens\"\nteam_token_env = {{ to-a = \"LT_TEAM_A\" }}\n\n{base}"
    );
    let inv = Config::from_str(Path::new("r.toml"), &ok)
        .unwrap()
        .inventory;
    assert_eq!(inv.reports.team_token_env["to-a"], "LT_TEAM_A");
    // A token written inline is not a field; an unknown team is named with its position.
    let inline = format!("{team}[reports]\ntoken = \"s3cret-s3cret-s3cret\"\n\n{base}");
    let err = Config::from_str(Path::new("r.toml"), &inline)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `token`"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
    let unknown = format!("{team}[reports]\nteam_token_env = {{ to-b = \"LT_TEAM_B\" }}\n\n{base}");
    let err = Config::from_str(Path::new("r.toml"), &unknown).unwrap_err();
    let p = &err.problems()[0];
    assert_eq!((p.line, p.column), (7, 20), "{err}");
    assert!(p.message.contains("unknown team `to-b`"), "{err}");
}

/// `[store] url`: a bad scheme or a password in the URL is refused at its line and column, with
/// the hint, and the password is not repeated; a good one loads.
#[test]
fn store_url_is_checked_at_its_line() {
    let valid = std::fs::read_to_string("tests/fixtures/valid.toml").unwrap();
    let lines = valid.lines().count();
    let dir = tempfile::tempdir().unwrap();
    let load = |store: &str| {
        let path = dir.path().join("probes.toml");
        std::fs::write(&path, format!("{valid}\n[store]\n{store}\n")).unwrap();
        Config::load(&path)
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
    };
    let at = format!("probes.toml:{}:7:", lines + 3);
    let e = load("url = \"postgres://lt:hunter2@127.0.0.1:5432/x\"").unwrap_err();
    assert!(e.contains(&at), "{e}");
    assert!(e.contains("password_file"), "hint: {e}");
    assert!(!e.contains("hunter2"), "the password is repeated: {e}");
    let e = load("url = \"mysql://127.0.0.1/x\"").unwrap_err();
    assert!(e.contains(&at) && e.contains("sqlite:PATH"), "{e}");
    load("url = \"postgres://lt@127.0.0.1:5432/lienthong\"\npassword_file = \"/nonexistent\"")
        .unwrap();
    load("url = \"sqlite:/var/lib/lienthong/lienthong.db\"").unwrap();
    // `ca_file` (TLS to PostgreSQL) is read when the store is opened, and named if unreadable.
    load("url = \"postgres://lt@127.0.0.1:5432/lienthong\"\nca_file = \"/nonexistent/ca.pem\"")
        .unwrap();
    let cfg = Config::load(&dir.path().join("probes.toml")).unwrap();
    let e = cfg.inventory.store.location("unused.db").unwrap_err();
    assert!(e.contains("store ca_file /nonexistent/ca.pem"), "{e}");
}
