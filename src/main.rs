//! Command line: serve, demo, check-config, probe, sweep, readiness.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use lienthong::config::Config;
use lienthong::service::{self, Handles, Loader};

/// jemalloc returns freed pages to the system after a few seconds; glibc's per-thread arenas keep
/// what start-up and outages used (BENCHMARKS.md, "Memory").
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "lienthong",
    version,
    about = "Async prober for the 168 commune-level sites of Ho Chi Minh City",
    after_help = "Logging: LIENTHONG_LOG (or RUST_LOG) takes a tracing filter, e.g. \
                  LIENTHONG_LOG=debug or LIENTHONG_LOG=info,lienthong::incidents=debug. \
                  The default is info: start-up, reloads, health changes, incidents, errors \
                  (a check's first unknown → up is debug)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Probe everything in the config and serve /metrics, the API and the status page.
    Serve {
        #[arg(long, default_value = "probes.toml")]
        config: PathBuf,
        /// Overrides [server] listen.
        #[arg(long)]
        listen: Option<String>,
        /// Probe only shard I of N (1-based): the sites and services whose slug hashes
        /// (FNV-1a) to it. Run N instances with 1/N … N/N to split a large config.
        #[arg(long, value_name = "I/N")]
        shard: Option<lienthong::shard::Shard>,
    },
    /// Start the built-in simulator of all 168 sites on loopback and serve as `serve` would.
    Demo {
        #[arg(long, default_value = "127.0.0.1:9168")]
        listen: String,
        /// Fault scenario (TOML); default: the built-in one (see examples/scenario.toml).
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Config to simulate; default: ./probes.toml, or the copy built into the binary.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Delete the demo's database (./lienthong.db) first: no history of earlier runs.
        #[arg(long)]
        fresh: bool,
    },
    /// Run as a ward agent: the central's shared-service checks (and local ones) from inside
    /// the ward, pushed to the central with a disk spool while it is unreachable.
    Agent {
        #[arg(long, default_value = "agent.toml")]
        config: PathBuf,
        /// Only validate agent.toml (file:line:column errors, like check-config).
        #[arg(long)]
        check: bool,
    },
    /// Validate a config: exit 0 with a summary, or list every problem with file:line:column.
    CheckConfig {
        #[arg(default_value = "probes.toml")]
        config: PathBuf,
    },
    /// Run the checks of one site (or shared service) once and print a readable breakdown.
    Probe {
        #[arg(long, default_value = "probes.toml")]
        config: PathBuf,
        /// Ask the running service at this address to run the checks now, with its effective
        /// config (in the demo: UDP echo links, the demo CA), e.g. http://127.0.0.1:9168.
        #[arg(long)]
        url: Option<String>,
        /// Environment variable holding the service's API token (with --url).
        #[arg(long, default_value = "LIENTHONG_API_TOKEN")]
        token_env: String,
        /// Site or service slug.
        target: String,
        /// Check name (default: all checks of the target).
        check: Option<String>,
    },
    /// Pre-conference sweep: ask the running service to probe every site's conference point
    /// and link now, and print a table (site, ready or not, reason, last incident). Exit 2 when
    /// a site is not ready.
    Sweep {
        /// The running service, e.g. http://127.0.0.1:9168.
        #[arg(long)]
        url: String,
        /// Environment variable holding the service's API token.
        #[arg(long, default_value = "LIENTHONG_API_TOKEN")]
        token_env: String,
        /// Only this site (slug); repeat for several.
        #[arg(long = "site", value_name = "SLUG")]
        sites: Vec<String>,
        /// Only the sites of this former province (tphcm, binh-duong, ba-ria-vung-tau).
        #[arg(long)]
        former_province: Option<String>,
        /// Only the sites of this team (`[[team]] name`).
        #[arg(long)]
        team: Option<String>,
        /// Print the service's JSON answer instead of the table.
        #[arg(long)]
        json: bool,
        /// Language of the table: vi or en.
        #[arg(long, default_value = "vi")]
        lang: String,
    },
    /// Copies a whole incident store into an empty one (ids included), e.g. from SQLite to
    /// PostgreSQL: `--from sqlite:lienthong.db --to postgres://lienthong@db:5432/lienthong`.
    /// Stop the service first. The PostgreSQL password: --password-file, else PGPASSWORD.
    Migrate {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// File whose first line is the PostgreSQL password (for both ends).
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// PEM file of the CA of the PostgreSQL server's certificate: TLS, verified.
        #[arg(long)]
        ca_file: Option<PathBuf>,
    },
    /// Readiness report of all sites over a window, read from the database (the service may be
    /// running or stopped). Times are Asia/Ho_Chi_Minh.
    Readiness {
        /// The config naming the sites and checks [default: probes.toml; without one here, the
        /// built-in config `lienthong demo` runs, so the report works on the demo's database].
        #[arg(long)]
        config: Option<PathBuf>,
        /// Start: local "YYYY-MM-DD HH:MM" (Asia/Ho_Chi_Minh) or RFC 3339; default: `to` minus
        /// [readiness] window (24 h).
        #[arg(long)]
        from: Option<String>,
        /// End (exclusive), same forms; default: now.
        #[arg(long)]
        to: Option<String>,
        #[arg(long, value_enum, default_value = "md")]
        format: ReportFormat,
        /// Language of the report: vi or en.
        #[arg(long, default_value = "vi")]
        lang: String,
        /// A SQLite database file; default: the config's store ([store] url or
        /// LIENTHONG_STORE_URL, PostgreSQL included; else [incidents] database).
        #[arg(long)]
        database: Option<PathBuf>,
        /// Write the report to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    Md,
    Csv,
    Json,
    Html,
}

fn main() -> ExitCode {
    init_tracing();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::CheckConfig { config } => check_config(&config),
            Command::Agent { config, check } => agent(&config, check).await,
            Command::Serve {
                config,
                listen,
                shard,
            } => serve(config, listen, shard).await,
            Command::Demo {
                listen,
                scenario,
                config,
                fresh,
            } => demo(listen, scenario, config, fresh).await,
            Command::Probe {
                url: Some(url),
                token_env,
                target,
                check,
                ..
            } => probe_remote(&url, &token_env, &target, check.as_deref()).await,
            Command::Probe {
                config,
                target,
                check,
                ..
            } => probe_once(&config, &target, check.as_deref()).await,
            Command::Sweep {
                url,
                token_env,
                sites,
                former_province,
                team,
                json,
                lang,
            } => {
                let filter = serde_json::json!({
                    "sites": sites,
                    "former_province": former_province,
                    "team": team,
                });
                sweep_remote(&url, &token_env, filter, json, &lang).await
            }
            Command::Migrate {
                from,
                to,
                password_file,
                ca_file,
            } => migrate(&from, &to, password_file.as_deref(), ca_file.as_deref()),
            Command::Readiness {
                config,
                from,
                to,
                format,
                lang,
                database,
                output,
            } => readiness(ReadinessArgs {
                config,
                from,
                to,
                format,
                lang,
                database,
                output,
            }),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    // LIENTHONG_LOG first, then the usual RUST_LOG.
    let filter = tracing_subscriber::EnvFilter::try_from_env("LIENTHONG_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| {
            // rustls-platform-verifier logs an ERROR on every failed verification: that is probe data.
            tracing_subscriber::EnvFilter::new("info,rustls=off,rustls_platform_verifier=off")
        });
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

async fn agent(path: &Path, check_only: bool) -> anyhow::Result<ExitCode> {
    let cfg = match lienthong::agents::config::AgentConfig::load(path) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("{} problem(s) found", e.problems().len().max(1));
            return Ok(ExitCode::from(1));
        }
    };
    if check_only {
        println!(
            "{}: ok — agent of {}, {} local check(s), central's service checks {}",
            path.display(),
            cfg.site,
            cfg.checks.len(),
            if cfg.service_checks { "on" } else { "off" }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let shutdown = CancellationToken::new();
    // SIGHUP has nothing to reload yet: the agent re-reads the central's list on its own.
    let _reload = signals(shutdown.clone())?;
    lienthong::agents::run::run(cfg, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

fn check_config(path: &Path) -> anyhow::Result<ExitCode> {
    match Config::load(path) {
        Ok(cfg) => {
            if let Some(w) = cfg.render_warnings() {
                eprintln!("{w}");
            }
            println!("{}", cfg.summary());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            const SHOWN: usize = 25;
            let text = e.to_string();
            let n = e.problems().len().max(1);
            // Each problem is one line plus an optional indented hint.
            let mut shown = 0;
            for line in text.lines() {
                if !line.starts_with(' ') {
                    shown += 1;
                }
                if shown > SHOWN {
                    eprintln!("… and {} more", n - SHOWN);
                    break;
                }
                eprintln!("{line}");
            }
            eprintln!("{n} problem(s) found");
            Ok(ExitCode::from(1))
        }
    }
}

/// SIGINT/SIGTERM cancel `shutdown`; SIGHUP asks for a reload.
fn signals(shutdown: CancellationToken) -> anyhow::Result<tokio::sync::mpsc::Receiver<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); shutdown.cancel(); return; }
                _ = int.recv() => { tracing::info!("SIGINT: shutting down"); shutdown.cancel(); return; }
                _ = hup.recv() => { tracing::info!("SIGHUP: reloading config"); let _ = tx.try_send(()); }
            }
        }
    });
    Ok(rx)
}

async fn serve(
    config: PathBuf,
    listen: Option<String>,
    shard: Option<lienthong::shard::Shard>,
) -> anyhow::Result<ExitCode> {
    // The service loads the file again through `loader`: nothing of this first load (the
    // parsed file, the inventory) is kept while it runs.
    let listen = {
        let cfg = Config::load(&config)?;
        for w in cfg.render_warnings().iter().flat_map(|w| w.lines()) {
            tracing::warn!("{w}");
        }
        let all = cfg.inventory.checks.len();
        let mut first = Arc::unwrap_or_clone(cfg.inventory);
        if let Some(s) = shard {
            s.apply(&mut first);
            tracing::info!("shard {s}: probing {} of {all} checks", first.checks.len());
        }
        lienthong::icmp_startup_notice(&first);
        listen.unwrap_or(cfg.file.server.listen)
    };
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let shutdown = CancellationToken::new();
    let reload = signals(shutdown.clone())?;
    let path = config.clone();
    let loader: Loader = Arc::new(move || {
        Config::load(&path).map(|c| {
            let mut inv = Arc::unwrap_or_clone(c.inventory);
            if let Some(s) = shard {
                s.apply(&mut inv);
            }
            inv
        })
    });
    service::run(loader, listener, reload, shutdown, Handles::new()).await?;
    Ok(ExitCode::SUCCESS)
}

async fn demo(
    listen: String,
    scenario: Option<PathBuf>,
    config: Option<PathBuf>,
    fresh: bool,
) -> anyhow::Result<ExitCode> {
    lienthong::demo::run(
        &listen,
        scenario.as_deref(),
        config.as_deref(),
        fresh,
        signals,
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

async fn probe_once(config: &Path, target: &str, check: Option<&str>) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(config)?;
    let checks: Vec<_> = cfg
        .inventory
        .checks
        .iter()
        .filter(|c| c.id.owner() == target && check.is_none_or(|n| &*c.id.name == n))
        .collect();
    if checks.is_empty() {
        anyhow::bail!(
            "{} in {}",
            lienthong::report::unknown_check(&cfg.inventory, target, check),
            config.display()
        );
    }
    let mut all_ok = true;
    for c in checks {
        let probe = c.probe.build(&c.build_context())?;
        let outcome = probe.run(c.timeout).await;
        all_ok &= outcome.success;
        print!("{}", lienthong::report::breakdown(c, &outcome));
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// `probe --url`: the service runs the checks (`POST /api/v1/checks/{owner}/{check}/run`).
async fn probe_remote(
    url: &str,
    token_env: &str,
    target: &str,
    check: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let base = url.trim_end_matches('/');
    let token = std::env::var(token_env).unwrap_or_default();
    if token.is_empty() {
        anyhow::bail!(
            "--url needs the service's API token in the environment variable {token_env} \
             (the one named by [api] token_env of the service)"
        );
    }
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()?;
    let names: Vec<String> = match check {
        Some(c) => vec![c.to_string()],
        None => {
            let checks: Vec<serde_json::Value> = http
                .get(format!("{base}/api/v1/checks"))
                .send()
                .await
                .with_context(|| format!("cannot reach {base}"))?
                .error_for_status()?
                .json()
                .await?;
            let owner = |c: &serde_json::Value| {
                c["site"]
                    .as_str()
                    .or(c["service"].as_str())
                    .unwrap_or("")
                    .to_string()
            };
            let names: Vec<String> = checks
                .iter()
                .filter(|c| owner(c) == target)
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect();
            if names.is_empty() {
                let mut owners: Vec<String> = checks.iter().map(owner).collect();
                owners.sort();
                owners.dedup();
                let s = lienthong::report::suggestions(target, owners.iter().map(String::as_str));
                anyhow::bail!(
                    "the service at {base} has no site or shared service `{target}`{}",
                    lienthong::report::did_you_mean(&s)
                );
            }
            names
        }
    };
    let mut all_ok = true;
    for name in names {
        let run = http
            .post(format!("{base}/api/v1/checks/{target}/{name}/run"))
            .bearer_auth(&token);
        let body = post_api(run, base).await?;
        all_ok &= body["success"].as_bool().unwrap_or(false);
        print!("{}", body["breakdown"].as_str().unwrap_or_default());
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// Sends a write request to the running service; its JSON answer, or its JSON reason as the
/// error.
async fn post_api(req: reqwest::RequestBuilder, base: &str) -> anyhow::Result<serde_json::Value> {
    let r = req
        .send()
        .await
        .with_context(|| format!("cannot reach {base}"))?;
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!(
            "{base}: {status}: {}",
            body["error"].as_str().unwrap_or("no reason given")
        );
    }
    Ok(body)
}

/// `sweep --url`: `POST /api/v1/sweep`, printed as a table.
async fn sweep_remote(
    url: &str,
    token_env: &str,
    filter: serde_json::Value,
    json: bool,
    lang: &str,
) -> anyhow::Result<ExitCode> {
    let base = url.trim_end_matches('/');
    let token = std::env::var(token_env).unwrap_or_default();
    if token.trim().is_empty() {
        anyhow::bail!(
            "sweep needs the service's API token in the environment variable {token_env} \
             (the one named by [api] token_env of the service)"
        );
    }
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()?;
    let sweep = http
        .post(format!("{base}/api/v1/sweep"))
        .bearer_auth(token.trim())
        .json(&filter);
    let body = post_api(sweep, base).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        print!("{}", sweep_table(&body, lang == "en"));
    }
    Ok(if body["not_ready"].as_u64() == Some(0) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// The sweep's answer as a plain-text table (Vietnamese, or English with `en`).
fn sweep_table(body: &serde_json::Value, en: bool) -> String {
    use std::fmt::Write as _;
    let pick = |vi: &'static str, e: &'static str| if en { e } else { vi };
    let rows = body["sites"].as_array().cloned().unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} — {} {}: {} {}, {} {} ({:.1} s)",
        pick("Kiểm tra trước hội nghị", "Pre-conference sweep"),
        body["total"].as_u64().unwrap_or(0),
        pick("đơn vị", "sites"),
        body["ready"].as_u64().unwrap_or(0),
        pick("sẵn sàng", "ready"),
        body["not_ready"].as_u64().unwrap_or(0),
        pick("chưa sẵn sàng", "not ready"),
        body["duration_seconds"].as_f64().unwrap_or(0.0),
    );
    let table: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            let ready = if r["ready"].as_bool() == Some(true) {
                pick("sẵn sàng", "ready")
            } else {
                pick("CHƯA", "NOT READY")
            };
            let reason = r[if en { "reason_en" } else { "reason" }]
                .as_str()
                .unwrap_or("")
                .to_string();
            let last = match r["last_incident"].as_object() {
                Some(i) => format!(
                    "#{} {} ({}, {})",
                    i.get("id").and_then(|v| v.as_i64()).unwrap_or(0),
                    i.get(if en { "title_en" } else { "title" })
                        .and_then(|v| v.as_str())
                        .unwrap_or(""),
                    i.get("state").and_then(|v| v.as_str()).unwrap_or(""),
                    i.get("started_at").and_then(|v| v.as_str()).unwrap_or(""),
                ),
                None => "—".into(),
            };
            [
                r["name"].as_str().unwrap_or("").to_string(),
                ready.to_string(),
                reason,
                last,
            ]
        })
        .collect();
    let head = [
        pick("Đơn vị", "Site"),
        pick("Sẵn sàng", "Ready"),
        pick("Lý do", "Reason"),
        pick("Sự cố gần nhất", "Last incident"),
    ];
    let width = |i: usize| {
        table
            .iter()
            .map(|r| r[i].chars().count())
            .chain([head[i].chars().count()])
            .max()
            .unwrap_or(0)
    };
    let w = [width(0), width(1), width(2)];
    let line = |cells: [&str; 4]| {
        let pad = |s: &str, n: usize| format!("{s}{}", " ".repeat(n - s.chars().count()));
        format!(
            "{}  {}  {}  {}\n",
            pad(cells[0], w[0]),
            pad(cells[1], w[1]),
            pad(cells[2], w[2]),
            cells[3]
        )
    };
    out.push_str(&line(head));
    for r in &table {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3]]));
    }
    out
}

struct ReadinessArgs {
    config: Option<PathBuf>,
    from: Option<String>,
    to: Option<String>,
    format: ReportFormat,
    lang: String,
    database: Option<PathBuf>,
    output: Option<PathBuf>,
}

fn readiness(a: ReadinessArgs) -> anyhow::Result<ExitCode> {
    use lienthong::localtime::parse_time;
    use lienthong::readiness::{self, Lang};
    let cfg = match &a.config {
        Some(path) => Config::load(path)?,
        None if Path::new("probes.toml").exists() => Config::load(Path::new("probes.toml"))?,
        None => {
            eprintln!(
                "no probes.toml here: using the built-in config (the one `lienthong demo` runs); \
                 pass --config PATH for yours"
            );
            lienthong::demo::builtin_config()?
        }
    };
    let inv = &cfg.inventory;
    use lienthong::incidents::StoreLocation;
    // `--database` names a SQLite file; else the config's store ([store] url, or
    // LIENTHONG_STORE_URL: the shared PostgreSQL of an HA pair; default [incidents] database).
    let db = match a.database {
        Some(path) => StoreLocation::Sqlite(path),
        None => inv
            .store
            .location(&inv.incidents.database)
            .map_err(anyhow::Error::msg)?,
    };
    if let StoreLocation::Sqlite(path) = &db {
        if !path.exists() {
            anyhow::bail!(
                "no database at {}: it is written by `lienthong serve` or `lienthong demo` \
                 started in that directory; pass --database PATH, or --config PATH whose \
                 [incidents] database (or [store] url) names it",
                path.display()
            );
        }
    }
    let time = |name: &str, v: Option<String>| -> anyhow::Result<Option<i64>> {
        v.map(|v| {
            parse_time(&v).ok_or_else(|| {
                anyhow::anyhow!(
                    "--{name} `{v}`: use local time \"YYYY-MM-DD HH:MM\" (Asia/Ho_Chi_Minh) or RFC 3339"
                )
            })
        })
        .transpose()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let (from, to) = readiness::window(
        time("from", a.from)?,
        time("to", a.to)?,
        inv.readiness.window.0,
        now,
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let store = lienthong::incidents::Store::open_location(&db)
        .with_context(|| format!("cannot open the database {db}"))?;
    let report = readiness::load(&store, inv, from, to, now)?;
    let lang = match a.lang.as_str() {
        "vi" => Lang::Vi,
        "en" => Lang::En,
        other => anyhow::bail!("--lang `{other}`: use vi or en"),
    };
    let text = match a.format {
        ReportFormat::Md => readiness::markdown(&report, lang),
        ReportFormat::Csv => readiness::csv(&report, lang),
        ReportFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
        ReportFormat::Html => lienthong::web::status::report_html(&report, lang).into_string(),
    };
    match a.output {
        Some(p) => {
            std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => {
            use std::io::Write;
            std::io::stdout().write_all(text.as_bytes())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `lienthong migrate`: opens both stores (migrating their schema) and copies.
fn migrate(
    from: &str,
    to: &str,
    password_file: Option<&std::path::Path>,
    ca_file: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    use lienthong::incidents::StoreLocation;
    let password = match password_file {
        Some(f) => Some(
            lienthong::incidents::location::read_password_file(f).map_err(anyhow::Error::msg)?,
        ),
        None => std::env::var("PGPASSWORD").ok(),
    };
    let open = |url: &str| -> anyhow::Result<lienthong::incidents::Store> {
        let loc = match StoreLocation::parse(url).map_err(anyhow::Error::msg)? {
            StoreLocation::Postgres(t) => StoreLocation::Postgres(
                t.with_password(password.clone())
                    .with_ca_file(ca_file)
                    .map_err(anyhow::Error::msg)?,
            ),
            s => s,
        };
        lienthong::incidents::Store::open_location(&loc)
            .with_context(|| format!("cannot open {loc}"))
    };
    let (src, dst) = (open(from)?, open(to)?);
    let report = lienthong::incidents::copy::copy_store(&src, &dst)?;
    for (table, n) in &report {
        println!("{table}: {n} rows");
    }
    println!("copied {from} → {to}");
    Ok(ExitCode::SUCCESS)
}
