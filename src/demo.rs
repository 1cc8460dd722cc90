//! `lienthong demo`: the simulator of all 168 sites on loopback, then the service exactly as
//! `serve` runs it.

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

    fn load(&self) -> Result<Inventory, ConfigError> {
        let cfg = match self {
            Source::File(p) => Config::load(p)?,
            Source::Builtin => {
                Config::from_str(Path::new("probes.toml (built in)"), BUILTIN_CONFIG)?
            }
        };
        Ok((*cfg.inventory).clone())
    }
}

/// Runs the demo until a shutdown signal.
pub async fn run<F>(
    listen: &str,
    scenario: Option<&Path>,
    config: Option<&Path>,
    signals: F,
) -> anyhow::Result<()>
where
    F: FnOnce(CancellationToken) -> anyhow::Result<mpsc::Receiver<()>>,
{
    let source = Source::pick(config);
    let inv = source.load()?;
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
    let state_dir = std::env::current_dir()?;
    let sim = Arc::new(
        Simulator::start(&inv, scenario, &state_dir)
            .await
            .context("cannot start the simulator")?,
    );
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
    let sim_for_loader = sim.clone();
    let loader: Loader = Arc::new(move || {
        let mut inv = source.load()?;
        simulator::overlay(&mut inv, &sim_for_loader);
        Ok(inv)
    });
    let result = service::run(loader, listener, reload, shutdown, Handles::new()).await;
    if let Ok(sim) = Arc::try_unwrap(sim) {
        sim.stop().await;
    }
    result
}
