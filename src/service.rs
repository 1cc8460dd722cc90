//! Wiring: config → scheduler → engine → state/metrics → HTTP. `run` is the single entry point
//! used by `serve`, `demo` and the integration tests.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, Inventory};
use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::scheduler::Scheduler;
use crate::state::LiveState;
use crate::web::{router, AppState};

/// Produces a fresh inventory (called at start and on every reload request).
pub type Loader = Arc<dyn Fn() -> Result<Inventory, ConfigError> + Send + Sync>;

/// Handles a running service exposes to its caller (tests read them directly).
#[derive(Clone)]
pub struct Handles {
    pub metrics: Arc<Metrics>,
    pub state: Arc<LiveState>,
}

impl Handles {
    pub fn new() -> Self {
        Handles {
            metrics: Arc::new(Metrics::new()),
            state: Arc::new(LiveState::default()),
        }
    }
}

impl Default for Handles {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs until `shutdown` is cancelled. Each message on `reload` re-runs `load`: a bad new config
/// is logged and counted, and the old one keeps running.
pub async fn run(
    load: Loader,
    listener: TcpListener,
    mut reload: mpsc::Receiver<()>,
    shutdown: CancellationToken,
    handles: Handles,
) -> anyhow::Result<()> {
    let inv = Arc::new(load()?);
    let Handles { metrics, state } = handles;
    metrics.set_inventory(&inv, None);
    metrics.config_loaded(true);
    state.set_inventory(inv.clone());
    let engine = Arc::new(Engine {
        metrics: metrics.clone(),
        state: state.clone(),
    });
    let mut scheduler = Scheduler::start(&inv, engine.clone(), metrics.clone(), &shutdown)?;
    state.set_running(true);
    tracing::info!(
        listen = %listener.local_addr()?,
        sites = inv.sites.len(),
        services = inv.services.len(),
        checks = inv.checks.len(),
        "lienthong running"
    );

    let app = router(AppState {
        metrics: metrics.clone(),
        state: state.clone(),
    });
    let web_shutdown = shutdown.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { web_shutdown.cancelled().await })
            .await
    });

    let mut current = inv;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            msg = reload.recv() => {
                if msg.is_none() {
                    // No one can ask for reloads any more; keep running until shutdown.
                    shutdown.cancelled().await;
                    break;
                }
                match load() {
                    Ok(new) => {
                        let new = Arc::new(new);
                        match Scheduler::start(&new, engine.clone(), metrics.clone(), &shutdown) {
                            Ok(next) => {
                                std::mem::replace(&mut scheduler, next).stop().await;
                                metrics.set_inventory(&new, Some(&current));
                                state.set_inventory(new.clone());
                                metrics.config_loaded(true);
                                tracing::info!(checks = new.checks.len(), "config reloaded");
                                current = new;
                            }
                            Err(e) => {
                                metrics.config_loaded(false);
                                tracing::error!(error = %e, "reload rejected; the old config keeps running");
                            }
                        }
                    }
                    Err(e) => {
                        metrics.config_loaded(false);
                        tracing::error!("reload rejected; the old config keeps running:\n{e}");
                    }
                }
            }
        }
    }
    state.set_running(false);
    scheduler.stop().await;
    server.await??;
    tracing::info!("lienthong stopped");
    Ok(())
}
