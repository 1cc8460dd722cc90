//! `lienthong demo`: the simulator of all 168 sites on loopback, then the service exactly as
//! `serve` runs it, with five simulated ward agents ([`DEMO_AGENT_SITES`]) running the real
//! agent code in-process against it (tokens generated at start-up; one ward's path to the
//! document-management system breaks in the default scenario).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError, Inventory};
use crate::service::{self, Handles, Loader};
use crate::simulator::{self, Scenario, Simulator};

/// The shipped config, built into the binary so `demo` works from any directory.
pub const BUILTIN_CONFIG: &str = include_str!("../probes.toml");

/// The demo password the built-in config's transaction reads (`secrets.password.file`): the
/// simulator's, not a secret.
const BUILTIN_SECRET: (&str, &str) = (
    "deploy/demo/motcua.pass",
    include_str!("../deploy/demo/motcua.pass"),
);

/// Writes `text` to `path` (creating its directory), readable by the owner only.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

/// Where the demo's config comes from.
#[derive(Clone)]
enum Source {
    File(PathBuf),
    Builtin,
}

impl Source {
    fn pick(config: Option<&Path>) -> Source {
        match config {
            Some(p) => Source::File(p.to_path_buf()),
            None if Path::new("probes.toml").exists() => Source::File("probes.toml".into()),
            None => Source::Builtin,
        }
    }

    /// The config with `extra` TOML (the demo's `[[agent]]` sections) appended.
    fn load(&self, extra: &str) -> Result<Inventory, ConfigError> {
        let cfg = match self {
            Source::File(p) if extra.is_empty() => Config::load(p)?,
            Source::File(p) => {
                let text = std::fs::read_to_string(p).map_err(|error| ConfigError::Read {
                    path: p.clone(),
                    error,
                })?;
                Config::from_str(p, &format!("{text}\n{extra}"))?
            }
            Source::Builtin => builtin_config_with(extra)?,
        };
        Ok((*cfg.inventory).clone())
    }
}

/// The wards whose agents the demo simulates (when the config declares no `[[agent]]`).
/// [`crate::simulator::scenario::DEMO_BROKEN_WARD`] is one of them.
pub const DEMO_AGENT_SITES: [&str; 5] = [
    "phuong-tan-dinh",
    "phuong-cau-ong-lanh",
    "phuong-an-phu-dong",
    "phuong-thoi-an",
    "phuong-tan-thoi-hiep",
];

/// The simulated ward agents: a token made up at start-up for each (only its SHA-256 goes into
/// the central's config; the agent reads it from a 0600 file), their spools under `dir`.
pub struct DemoAgents {
    pub dir: PathBuf,
    pub agents: Vec<(String, String)>,
}

impl DemoAgents {
    /// Where the demo agents' tokens and spools go, relative to the state directory.
    pub const DIR_NAME: &'static str = "lienthong-demo-agents";

    pub fn new(state_dir: &Path, inv: &Inventory) -> DemoAgents {
        let agents = DEMO_AGENT_SITES
            .iter()
            .filter(|s| inv.site(s).is_some())
            .map(|s| {
                let bytes: [u8; 24] = rand::random();
                let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                (s.to_string(), token)
            })
            .collect();
        DemoAgents {
            dir: state_dir.join(Self::DIR_NAME),
            agents,
        }
    }

    /// The `[[agent]]` sections for the central (hashes only).
    pub fn toml(&self) -> String {
        let mut out = String::from("\n# Added by `lienthong demo`: its simulated ward agents.\n");
        for (site, token) in &self.agents {
            let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
            let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
            out.push_str(&format!(
                "[[agent]]\nsite = \"{site}\"\ntoken_sha256 = \"{hex}\"\n"
            ));
        }
        out
    }

    /// Writes the token files and starts every agent (the real agent loop) against `central`.
    pub fn spawn(
        &self,
        central: std::net::SocketAddr,
        inv: &Inventory,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
        let mut out = Vec::new();
        for (site, token) in &self.agents {
            // A local check of agent.toml: the ward's video-conference device (the simulator
            // serves it), recorded centrally under the agent's vantage.
            let local: Vec<crate::agents::config::LocalCheck> = inv
                .checks
                .iter()
                .filter(|c| {
                    c.id.site.as_deref() == Some(site.as_str())
                        && &*c.id.name == "video"
                        && !c.id.runs_at_ward()
                })
                .map(|c| crate::agents::config::LocalCheck {
                    name: "thiet-bi-hoi-nghi".into(),
                    title: Some("Thiết bị hội nghị truyền hình của phường".into()),
                    interval: crate::config::HumanDuration(std::time::Duration::from_secs(15)),
                    timeout: crate::config::HumanDuration(std::time::Duration::from_secs(5)),
                    probe: c.probe.clone(),
                })
                .collect();
            let dir = self.dir.join(site);
            let token_file = dir.join("token");
            write_private(&token_file, token)
                .with_context(|| format!("cannot write {}", token_file.display()))?;
            let cfg = crate::agents::config::AgentConfig {
                path: dir.join("agent.toml (demo)"),
                central: url::Url::parse(&format!("http://{central}"))?,
                site: site.clone(),
                token_file,
                ca_file: None,
                spool_dir: dir.join("spool"),
                service_checks: true,
                push_every: std::time::Duration::from_secs(2),
                max_age: std::time::Duration::from_secs(86_400),
                max_bytes: 16 * 1024 * 1024,
                checks: local,
            };
            let stop = shutdown.child_token();
            let site = site.clone();
            out.push(tokio::spawn(async move {
                if let Err(e) = crate::agents::run::run(cfg, stop).await {
                    tracing::error!(site, error = %e, "demo ward agent stopped");
                }
            }));
        }
        Ok(out)
    }
}

/// The built-in config (the shipped probes.toml). Its relative secret file (the simulator's
/// demo password) is written next to a virtual config path in the temp directory, so it loads
/// from any directory.
pub fn builtin_config() -> Result<Config, ConfigError> {
    builtin_config_with("")
}

/// [`builtin_config`] with `extra` TOML appended.
fn builtin_config_with(extra: &str) -> Result<Config, ConfigError> {
    let dir = std::env::temp_dir().join(format!("lienthong-demo-{}", std::process::id()));
    let secret = dir.join(BUILTIN_SECRET.0);
    write_private(&secret, BUILTIN_SECRET.1).map_err(|error| ConfigError::Read {
        path: secret.clone(),
        error,
    })?;
    let path = dir.join("probes.toml (built in)");
    if extra.is_empty() {
        return Config::from_str(&path, BUILTIN_CONFIG);
    }
    Config::from_str(&path, &format!("{BUILTIN_CONFIG}\n{extra}"))
}

/// What the demo leaves on disk, relative to `dir` (the working directory).
pub struct DemoFiles {
    pub database: PathBuf,
    pub ca_file: PathBuf,
}

impl DemoFiles {
    pub fn new(dir: &Path, inv: &Inventory) -> DemoFiles {
        DemoFiles {
            database: dir.join(&inv.incidents.database),
            ca_file: dir.join(simulator::CA_FILE_NAME),
        }
    }

    /// Deletes the database with its WAL and shared-memory files; returns whether one existed.
    pub fn remove_database(&self) -> std::io::Result<bool> {
        let mut found = false;
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.database.clone().into_os_string();
            p.push(suffix);
            match std::fs::remove_file(&p) {
                Ok(()) => found = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(found)
    }

    /// The start-up notice: where the files go, and that history is kept.
    pub fn notice(&self, existed: bool, fresh: bool) -> String {
        let history = match (existed, fresh) {
            (true, true) => {
                "started fresh (--fresh deleted the previous demo database)".to_string()
            }
            (false, true) => "started fresh (there was no previous demo database)".to_string(),
            (true, false) => {
                "history of previous runs is kept and shown (incidents, availability); \
                              start with --fresh to begin from an empty database"
                    .to_string()
            }
            (false, false) => {
                "a new database; later runs keep its history (use --fresh to start over)"
                    .to_string()
            }
        };
        format!(
            "demo: writes the incident database {} and the demo CA certificate {}; {history}",
            self.database.display(),
            self.ca_file.display()
        )
    }
}

/// Runs the demo until a shutdown signal. `fresh` deletes the demo's database first.
pub async fn run<F>(
    listen: &str,
    scenario: Option<&Path>,
    config: Option<&Path>,
    fresh: bool,
    signals: F,
) -> anyhow::Result<()>
where
    F: FnOnce(CancellationToken) -> anyhow::Result<mpsc::Receiver<()>>,
{
    let source = Source::pick(config);
    let state_dir = std::env::current_dir()?;
    let mut inv = source.load("")?;
    // Simulated ward agents, unless the config has its own `[[agent]]`s.
    let agents = inv
        .agents
        .is_empty()
        .then(|| DemoAgents::new(&state_dir, &inv));
    let extra = agents.as_ref().map(DemoAgents::toml).unwrap_or_default();
    if !extra.is_empty() {
        inv = source.load(&extra)?;
    }
    let scenario = match scenario {
        Some(p) => {
            let sc = Scenario::load(p).with_context(|| format!("scenario {}", p.display()))?;
            let unknown = sc.unknown_targets(&inv);
            if !unknown.is_empty() {
                anyhow::bail!(
                    "scenario {}: unknown targets {:?} (use site or service slugs of the config)",
                    p.display(),
                    unknown
                );
            }
            sc
        }
        None => Scenario::default_demo(),
    };
    let files = DemoFiles::new(&state_dir, &inv);
    // With --fresh, `existed` = a previous database was deleted.
    let existed = if fresh {
        files
            .remove_database()
            .with_context(|| format!("--fresh: cannot delete {}", files.database.display()))?
    } else {
        files.database.exists()
    };
    if fresh {
        if let Some(a) = &agents {
            // Their spools belong to the deleted history.
            match std::fs::remove_dir_all(&a.dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("--fresh: cannot delete {}", a.dir.display()))
                }
            }
        }
    }
    tracing::info!("{}", files.notice(existed, fresh));
    let sim = Arc::new(
        Simulator::start(&inv, scenario, &state_dir)
            .await
            .context("cannot start the simulator")?,
    );
    // Only the demo's own agents go through simulated ward paths (agents of a user's config
    // may run elsewhere and keep the services' real addresses).
    let paths = match &agents {
        Some(_) => sim
            .start_ward_paths(&inv)
            .await
            .context("cannot start the simulated ward paths")?,
        None => simulator::WardPaths::default(),
    };
    let cap = crate::probe::icmp::icmp_capability();
    tracing::info!(
        "{}. The demo's link rounds use UDP echo to the simulator instead: loopback ICMP cannot be delayed or dropped here (no netem), so each link's latency, jitter and loss are emulated in the simulator's echo responder",
        cap.summary()
    );
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(
        "demo: open http://{}/ (metrics on /metrics)",
        listener.local_addr()?
    );
    let shutdown = CancellationToken::new();
    let reload = signals(shutdown.clone())?;
    let mut agent_tasks = Vec::new();
    if let Some(a) = &agents {
        agent_tasks = a.spawn(listener.local_addr()?, &inv, &shutdown)?;
        tracing::info!(
            "demo: {} simulated ward agents ({}) push their view of the shared services to this central (tokens made up at start, files in {}); the default scenario breaks {}'s path to the document-management system at 30 s",
            a.agents.len(),
            a.agents.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>().join(", "),
            a.dir.display(),
            simulator::scenario::DEMO_BROKEN_WARD,
        );
    }
    let sim_for_loader = sim.clone();
    let loader: Loader = Arc::new(move || {
        let mut inv = source.load(&extra)?;
        simulator::overlay(&mut inv, &sim_for_loader);
        paths.overlay(&mut inv);
        Ok(inv)
    });
    let result = service::run(loader, listener, reload, shutdown, Handles::new()).await;
    for t in agent_tasks {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), t).await;
    }
    if let Ok(sim) = Arc::try_unwrap(sim) {
        sim.stop().await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_removes_the_database_and_the_notice_says_where_files_go() {
        let dir = tempfile::tempdir().unwrap();
        let inv = Inventory::default();
        let files = DemoFiles::new(dir.path(), &inv);
        assert_eq!(files.database, dir.path().join("lienthong.db"));
        assert_eq!(files.ca_file, dir.path().join("lienthong-demo-ca.pem"));
        assert!(!files.remove_database().unwrap(), "nothing to delete");
        for suffix in ["", "-wal", "-shm"] {
            std::fs::write(dir.path().join(format!("lienthong.db{suffix}")), b"x").unwrap();
        }
        std::fs::write(&files.ca_file, b"ca").unwrap();
        assert!(files.remove_database().unwrap());
        for suffix in ["", "-wal", "-shm"] {
            assert!(!dir.path().join(format!("lienthong.db{suffix}")).exists());
        }
        assert!(files.ca_file.exists(), "the CA file is kept");

        let kept = files.notice(true, false);
        assert!(
            kept.contains(&files.database.display().to_string()),
            "{kept}"
        );
        assert!(
            kept.contains(&files.ca_file.display().to_string()),
            "{kept}"
        );
        assert!(
            kept.contains("history") && kept.contains("--fresh"),
            "{kept}"
        );
        assert!(files.notice(true, true).contains("deleted"));
        assert!(files.notice(false, true).contains("no previous"));
    }
}
