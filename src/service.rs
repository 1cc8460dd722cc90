//! Wiring: config → scheduler → engine → state/metrics → HTTP. `run` is the single entry point
//! used by `serve`, `demo` and the integration tests.

use std::sync::Arc;

use std::time::SystemTime;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, Inventory};
use crate::incidents::correlation::IncidentEngine;
use crate::incidents::{IncidentEvent, Store};
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::result_writer::Engine;
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
    /// Live incident timeline events (SSE subscribers and tests listen here).
    pub events: broadcast::Sender<IncidentEvent>,
}

impl Handles {
    pub fn new() -> Self {
        Handles {
            metrics: Arc::new(Metrics::new()),
            state: Arc::new(LiveState::default()),
            events: broadcast::channel(1024).0,
        }
    }
}

/// `[store] instance`, else `HOSTNAME:PORT` of the listen address.
fn instance_name(inv: &crate::config::Inventory) -> String {
    if let Some(i) = inv.store.instance.as_ref().filter(|i| !i.trim().is_empty()) {
        return i.trim().to_string();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "lienthong".into());
    let port = inv.server.listen.rsplit(':').next().unwrap_or("");
    format!("{host}:{port}")
}

/// Shared store: renews (or takes) the leader lease every few seconds and switches the
/// engine between leader and standby; on shutdown gives the lease up for a fast takeover.
///
/// A leader that cannot reach the database keeps its engine running in memory: its writes
/// queue (bounded) and the fence refuses them. At the next round that reaches the database:
/// the same lease epoch (nobody led meanwhile) → the queue is replayed on the tick; another
/// epoch or another holder → the queue is superseded (counted) and the engine rebuilt from
/// the store or stopped.
async fn lease_loop(
    store: Arc<Store>,
    engine: Arc<Engine>,
    gauge: prometheus::IntGauge,
    api: String,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(crate::incidents::cluster::RENEW_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cut_off = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = every.tick() => {}
        }
        let s = store.clone();
        let a = api.clone();
        // Bounded: a stalled database never blocks the loop longer than the client timeout.
        let round = match tokio::task::spawn_blocking(move || s.lease_round_detail(Some(&a))).await
        {
            Ok(r) => r,
            Err(_) => continue,
        };
        match round {
            Err(e) => {
                if engine.is_leading() && !store.is_leader() && !cut_off {
                    cut_off = true;
                    let e2 = engine.clone();
                    let queued = tokio::task::spawn_blocking(move || e2.queued_writes())
                        .await
                        .unwrap_or(0);
                    tracing::error!(
                        error = %e,
                        queued,
                        "database unreachable past the leader lease: incident work goes on in memory, its writes queue until the lease is renewed"
                    );
                } else {
                    tracing::warn!(error = %e, "leader lease not renewed");
                }
            }
            Ok(r) if r.leader && r.continued && engine.is_leading() => {
                if std::mem::take(&mut cut_off) {
                    tracing::warn!(
                        "leader lease renewed after a database outage (nobody led meanwhile): queued incident writes are replayed"
                    );
                }
            }
            Ok(r) if r.leader => {
                cut_off = false;
                let e = engine.clone();
                match tokio::task::spawn_blocking(move || e.lead(SystemTime::now())).await {
                    Ok(Ok(())) => tracing::warn!(
                        "leader lease taken: this instance now runs the incident engine and notifications"
                    ),
                    Ok(Err(e)) => {
                        // Still standby: the next round (a continued lease) retries.
                        let en = engine.clone();
                        let _ = tokio::task::spawn_blocking(move || en.step_down()).await;
                        tracing::error!(error = %e, "leader lease taken but the engine cannot be restored; retrying");
                    }
                    Err(_) => {}
                }
            }
            Ok(_) => {
                cut_off = false;
                if engine.is_leading() {
                    let e = engine.clone();
                    let _ = tokio::task::spawn_blocking(move || e.step_down()).await;
                    tracing::warn!("leader lease lost: standby (probing and API only)");
                }
            }
        }
        gauge.set(i64::from(store.is_leader()));
    }
    if engine.is_leading() {
        let e = engine.clone();
        let lost = tokio::task::spawn_blocking(move || e.stop())
            .await
            .unwrap_or(0);
        if lost > 0 {
            tracing::error!(
                writes = lost,
                "stopping with incident writes still queued (database unreachable): they are lost"
            );
        }
        let s = store.clone();
        let _ = tokio::task::spawn_blocking(move || s.lease_release()).await;
        tracing::info!("leader lease released");
    }
    gauge.set(0);
}

/// Shared store, every few seconds: this instance's latest results into `check_states`; on
/// the leader, the other instances' fresh rows into the engine's multi-vantage quorum and its
/// site statuses into `site_states`; on a standby, the leader's site statuses into the live
/// state (status page).
async fn vantage_loop(
    store: Arc<Store>,
    engine: Arc<Engine>,
    state: Arc<LiveState>,
    instance: String,
    shutdown: CancellationToken,
) {
    use crate::incidents::vantage::{tally, CheckView, FRESH_FOR_MS, ROW_FRESH_FOR_MS};
    let mut every = tokio::time::interval(crate::incidents::cluster::RENEW_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    let mut last_ok = tokio::time::Instant::now();
    let mut pushed: std::collections::HashMap<String, i64> = Default::default();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let rows: Vec<CheckView> = state
            .snapshot()
            .into_iter()
            .filter_map(|c| {
                let last = c.last?;
                Some(CheckView {
                    check: c.check.id.key(),
                    up: last.success,
                    at: last
                        .at
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as i64),
                })
            })
            .collect();
        // Only the checks that ran since the last push (most run every 30–60 s).
        let rows: Vec<CheckView> = rows
            .into_iter()
            .filter(|r| pushed.get(&r.check) != Some(&r.at))
            .collect();
        let sent: Vec<(String, i64)> = rows.iter().map(|r| (r.check.clone(), r.at)).collect();
        let (s, e, me, st) = (
            store.clone(),
            engine.clone(),
            instance.clone(),
            state.clone(),
        );
        let r = tokio::task::spawn_blocking(move || {
            s.publish_check_views(&me, &rows)?;
            let now_ms = crate::web::incidents::now_ms();
            if e.is_leading() {
                let views = s.check_views(&me, now_ms - ROW_FRESH_FOR_MS, FRESH_FOR_MS)?;
                e.set_remote_votes(&tally(&views), SystemTime::now());
                let sites: Vec<_> = st
                    .inventory()
                    .sites
                    .iter()
                    .map(|x| (x.slug.clone(), st.site_status(&x.slug)))
                    .collect();
                s.publish_site_states(&me, &sites, now_ms)?;
            } else {
                // A standby's status page shows the leader's site statuses (its own engine
                // does not run); its /metrics keep its own vantage's series.
                for (site, status) in s.leader_site_states(&me, now_ms - FRESH_FOR_MS)? {
                    st.set_site_status(&site, status);
                }
            }
            Ok::<_, crate::incidents::StoreError>(())
        })
        .await;
        match r {
            Ok(Ok(())) => {
                failing = false;
                last_ok = tokio::time::Instant::now();
                pushed.extend(sent);
            }
            Ok(Err(e)) => {
                if !failing {
                    failing = true;
                    tracing::warn!(error = %e, "check states not shared (the quorum keeps the last ones read for 30 s)");
                }
                // Old votes must not hold an incident back for ever: alone, this vantage decides.
                if last_ok.elapsed() > std::time::Duration::from_millis(FRESH_FOR_MS as u64) {
                    let e = engine.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        e.set_remote_votes(&Default::default(), SystemTime::now())
                    })
                    .await;
                }
            }
            Err(_) => {}
        }
    }
}

/// Every second: correlation holds, maintenance windows; every hour: retention.
async fn tick_loop(
    engine: Arc<Engine>,
    store: Arc<Store>,
    retention: std::time::Duration,
    maintenance_changed: Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
) {
    let mut every_second = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut last_prune: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every_second.tick() => {}
            _ = maintenance_changed.notified() => {
                let e = engine.clone();
                let _ = tokio::task::spawn_blocking(move || e.refresh_maintenance(SystemTime::now())).await;
            }
        }
        let e = engine.clone();
        let _ = tokio::task::spawn_blocking(move || e.tick(SystemTime::now())).await;
        if last_prune.is_none_or(|t| t.elapsed() > std::time::Duration::from_secs(3600)) {
            last_prune = Some(tokio::time::Instant::now());
            let cutoff = SystemTime::now()
                .checked_sub(retention)
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            let s = store.clone();
            if !s.is_leader() {
                continue;
            }
            match tokio::task::spawn_blocking(move || s.prune_resolved(cutoff)).await {
                Ok(Ok(n)) if n > 0 => tracing::info!(removed = n, "old resolved incidents pruned"),
                Ok(Err(e)) => tracing::error!(error = %e, "retention"),
                _ => {}
            }
        }
    }
}

/// Every 10 s: team figures into their Prometheus series.
async fn figures_loop(
    metrics: crate::incidents::figures::TeamMetrics,
    store: Arc<Store>,
    state: Arc<LiveState>,
    shutdown: CancellationToken,
) {
    let metrics = Arc::new(std::sync::Mutex::new(metrics));
    let mut every = tokio::time::interval(std::time::Duration::from_secs(10));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let (m, s) = (metrics.clone(), store.clone());
        let teams: Vec<String> = state
            .inventory()
            .teams
            .iter()
            .map(|t| t.name.clone())
            .collect();
        let _ = tokio::task::spawn_blocking(move || {
            let mut m = m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Err(e) = m.poll(&s, &teams, crate::web::incidents::now_ms()) {
                tracing::warn!(error = %e, "team figures");
            }
        })
        .await;
    }
}

/// Every few seconds: writes the minutes that ended to the store; every minute: hourly
/// rollups; every hour: history retention. On shutdown: writes everything left.
async fn history_loop(
    engine: Arc<Engine>,
    recorder: Arc<crate::availability::Recorder>,
    store: Arc<Store>,
    state: Arc<LiveState>,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_rollup = i64::MIN;
    let mut last_prune: Option<tokio::time::Instant> = None;
    loop {
        let stopping = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = every.tick() => false,
        };
        let now = SystemTime::now();
        let rows = recorder.take(now, stopping);
        let minute = crate::availability::minute_of(now);
        let prune = !stopping
            && last_prune.is_none_or(|t| t.elapsed() > std::time::Duration::from_secs(3600));
        let rollup = !stopping && minute != last_rollup;
        if rows.is_empty() && !rollup && !prune {
            if stopping {
                return;
            }
            continue;
        }
        let s = store.clone();
        let keep = state.inventory().history.clone();
        let lead = engine.clone();
        let work = tokio::task::spawn_blocking(move || {
            // Shared store: the leader's vantage writes the history (two writers would sum
            // their minutes); a standby's rows are dropped. A leader cut off from the
            // database keeps its rows (put back below) until it leads again or steps down.
            if !lead.is_leading() {
                return Ok(0);
            }
            let written = s.history_write(&rows).map_err(|e| (e, rows));
            if rollup {
                if let Err(e) = s.history_rollup(minute) {
                    tracing::error!(error = %e, "history rollup");
                }
            }
            if prune {
                let m = minute - (keep.keep_minutes.0.as_secs() / 60) as i64;
                let h = minute.div_euclid(60) - (keep.keep_hours.0.as_secs() / 3600) as i64;
                match s.history_prune(m, h) {
                    Ok((m, h)) if m + h > 0 => {
                        tracing::info!(minutes = m, hours = h, "old availability history pruned")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "history retention"),
                }
            }
            written
        })
        .await;
        match work {
            Ok(Ok(_)) => {}
            Ok(Err((e, rows))) => {
                tracing::error!(error = %e, "availability history not written; retrying");
                recorder.put_back(rows, &state.inventory());
            }
            Err(e) => tracing::error!(error = %e, "availability history task"),
        }
        if rollup {
            last_rollup = minute;
        }
        if prune {
            last_prune = Some(tokio::time::Instant::now());
        }
        if stopping {
            return;
        }
    }
}

/// The ward-report tokens of `[reports]`; a team without its variable set is a warning.
fn load_report_tokens(
    inv: &Inventory,
) -> Result<crate::reports::Tokens, crate::reports::TokensError> {
    let (tokens, warnings) = crate::reports::Tokens::load(inv)?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    Ok(tokens)
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
    let Handles {
        metrics,
        state,
        events,
    } = handles;
    let instance = instance_name(&inv);
    // A shared store: every instance is a vantage point, named by its instance.
    let shared = matches!(
        inv.store.location(&inv.incidents.database),
        Ok(crate::incidents::location::StoreLocation::Postgres(_))
    );
    metrics.set_vantage(shared.then_some(instance.as_str()));
    metrics.set_inventory(&inv, None);
    metrics.config_loaded(true, Some(0));
    state.set_inventory(inv.clone());
    let db = inv
        .store
        .location(&inv.incidents.database)
        .map_err(anyhow::Error::msg)?;
    // SQLite: exclusive, a second instance on the same file refuses to start (naming our PID).
    // PostgreSQL: shared by the instances.
    let store = Store::open_service(&db, metrics.registry())
        .with_context(|| format!("cannot open the incident database {db}"))?;
    // A shared store: join the election and know our role before the engine loads state.
    let leader_gauge = prometheus::IntGaugeVec::new(
        prometheus::Opts::new(
            "lienthong_leader",
            "1 while this instance holds the leader lease of the shared store (runs the incident engine and notifications); SQLite: always 1.",
        ),
        &["instance"],
    )?;
    metrics
        .registry()
        .register(Box::new(leader_gauge.clone()))?;
    if store.is_shared() {
        store.join_cluster(&instance);
        let s = store.clone();
        let api = inv.server.listen.clone();
        match tokio::task::spawn_blocking(move || s.lease_round(Some(&api))).await? {
            Ok(lead) => tracing::info!(
                instance,
                role = if lead { "leader" } else { "standby" },
                "joined the cluster of the shared store"
            ),
            Err(e) => {
                tracing::error!(instance, error = %e, "leader lease: first round failed; standby")
            }
        }
    }
    leader_gauge
        .with_label_values(&[&instance])
        .set(i64::from(store.is_leader()));
    let mut incidents = IncidentEngine::new(
        inv.clone(),
        store.clone(),
        events.clone(),
        SystemTime::now(),
    )?;
    // Ward agents: their hub records last contact here; the engine's tick reads it.
    let presence = crate::incidents::correlation::AgentPresence::default();
    incidents.set_agent_presence(presence.clone());
    // [[notify]] targets: a reload pushes the new list through `notify_targets`.
    let notifier = Notifier::new(store.clone(), inv.notify.clone(), metrics.registry())?;
    let notify_targets = notifier.targets_handle();
    let history = Arc::new(crate::availability::Recorder::new());
    let engine = Arc::new(Engine::new(
        metrics.clone(),
        state.clone(),
        incidents,
        notifier.poke_handle(),
        history.clone(),
    ));
    // Every result goes through this queue to one writer thread (see result_writer.rs).
    let (results, writer) = engine
        .spawn_writer()
        .context("cannot start the result writer thread")?;
    // Agent results enter the same queue as the scheduler's runs.
    let agents = crate::agents::hub::Hub::new(store.clone(), results.clone(), presence);
    agents.set_inventory(&inv);
    agents.register(metrics.registry());
    if !store.is_leader() {
        engine.set_leading(false, SystemTime::now())?;
    }
    let lease_task = store.is_shared().then(|| {
        tokio::spawn(lease_loop(
            store.clone(),
            engine.clone(),
            leader_gauge.with_label_values(&[&instance]),
            inv.server.listen.clone(),
            shutdown.clone(),
        ))
    });
    let vantage_task = store.is_shared().then(|| {
        tokio::spawn(vantage_loop(
            store.clone(),
            engine.clone(),
            state.clone(),
            instance.clone(),
            shutdown.clone(),
        ))
    });
    let notifier = tokio::spawn(notifier.run(shutdown.clone()));
    let maintenance_changed = Arc::new(tokio::sync::Notify::new());
    let ticker = tokio::spawn(tick_loop(
        engine.clone(),
        store.clone(),
        inv.incidents.retention.0,
        maintenance_changed.clone(),
        shutdown.clone(),
    ));
    // Team figures for Prometheus (ack / resolve histograms, open-incident age).
    let team_metrics = crate::incidents::figures::TeamMetrics::new(
        metrics.registry(),
        crate::web::incidents::now_ms(),
    )?;
    let figures_task = tokio::spawn(figures_loop(
        team_metrics,
        store.clone(),
        state.clone(),
        shutdown.clone(),
    ));
    // Stopped after the scheduler, so the last runs are written.
    let history_stop = CancellationToken::new();
    let history_task = tokio::spawn(history_loop(
        engine.clone(),
        history.clone(),
        store.clone(),
        state.clone(),
        history_stop.clone(),
    ));
    let mut scheduler = Scheduler::start(&inv, results.clone(), metrics.clone(), &shutdown)?;
    state.set_running(true);
    tracing::info!(
        listen = %listener.local_addr()?,
        sites = inv.sites.len(),
        services = inv.services.len(),
        checks = inv.checks.len(),
        "lienthong running"
    );

    // The token is read once; it is never logged or served.
    let api_token = std::env::var(&inv.api.token_env)
        .ok()
        .filter(|t| !t.trim().is_empty())
        .map(|t| Arc::<str>::from(t.trim()));
    if api_token.is_none() {
        tracing::warn!(
            "write API disabled: set the environment variable {} to a bearer token to enable ack, notes and maintenance",
            inv.api.token_env
        );
    }
    // The sweep runs the schedule's checks now; ward reports go to the incident engine.
    let actions = Arc::new(crate::web::Actions::default());
    actions.set_on_demand(Some(scheduler.on_demand()));
    actions.set_engine(engine.clone());
    actions.set_report_tokens(load_report_tokens(&inv).unwrap_or_else(|e| {
        tracing::error!("ward reports disabled: {e}");
        Default::default()
    }));
    let app = router(AppState {
        metrics: metrics.clone(),
        state: state.clone(),
        store: store.clone(),
        events: events.clone(),
        api_token,
        maintenance_changed: maintenance_changed.clone(),
        pages: Default::default(),
        actions: actions.clone(),
    })
    .layer(axum::Extension(agents.clone()));
    // Connection cap, header-read and idle timeouts ([server]); the cap stays well below the
    // descriptor limit so API clients can never starve the probes' sockets.
    let nofile = crate::web::server::raise_nofile_limit();
    let limits = crate::web::server::ServerLimits::new(&inv.server, nofile);
    // A reload applies the timeouts to new connections; listen and max_connections need a
    // restart (counted in `lienthong_config_reload_needs_restart`).
    let (limits_tx, limits_rx) = tokio::sync::watch::channel(limits);
    let started_server = inv.server.clone();
    let server = tokio::spawn(crate::web::server::serve(
        listener,
        app,
        limits_rx,
        shutdown.clone(),
    ));

    let mut current = inv;
    let locals_changed = agents.locals_changed();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            // An agent declared other local checks: the running inventory with them (no reload
            // of the config, no scheduler restart: the central never runs them).
            _ = locals_changed.notified() => {
                let mut new = (*current).clone();
                agents.merge_locals(&mut new);
                let new = Arc::new(new);
                engine.set_inventory(new.clone());
                agents.set_inventory(&new);
                metrics.set_inventory(&new, None);
                state.set_inventory(new.clone());
                current = new;
            }
            msg = reload.recv() => {
                if msg.is_none() {
                    // No one can ask for reloads any more; keep running until shutdown.
                    shutdown.cancelled().await;
                    break;
                }
                match load() {
                    Ok(mut new) => {
                        agents.merge_locals(&mut new);
                        let new = Arc::new(new);
                        match Scheduler::start(&new, results.clone(), metrics.clone(), &shutdown) {
                            Ok(next) => {
                                actions.set_on_demand(Some(next.on_demand()));
                                std::mem::replace(&mut scheduler, next).stop().await;
                                match load_report_tokens(&new) {
                                    Ok(t) => actions.set_report_tokens(t),
                                    Err(e) => tracing::error!("report tokens not reloaded (the old ones stay): {e}"),
                                }
                                engine.set_inventory(new.clone());
                                agents.set_inventory(&new);
                                notify_targets.set(new.notify.clone());
                                metrics.set_inventory(&new, Some(&current));
                                state.set_inventory(new.clone());
                                let restart = crate::web::server::needs_restart(&started_server, &new.server);
                                if !restart.is_empty() {
                                    tracing::warn!(settings = ?restart, "[server] settings changed: they need a restart to apply (the running values are kept)");
                                }
                                let live = crate::web::server::ServerLimits {
                                    header_read_timeout: new.server.header_read_timeout.0,
                                    idle_timeout: new.server.idle_timeout.0,
                                    max_connections: limits.max_connections,
                                };
                                if limits_tx.send_if_modified(|l| std::mem::replace(l, live) != live) {
                                    tracing::info!(
                                        header_read_timeout = ?live.header_read_timeout,
                                        idle_timeout = ?live.idle_timeout,
                                        "[server] timeouts reloaded (new connections)"
                                    );
                                }
                                // Counted last, with the restart count under the same lock: a
                                // scrape that sees the reload sees all of it.
                                metrics.config_loaded(true, Some(restart.len()));
                                tracing::info!(checks = new.checks.len(), "config reloaded");
                                current = new;
                            }
                            Err(e) => {
                                metrics.config_loaded(false, None);
                                tracing::error!(error = %e, "reload rejected; the old config keeps running");
                            }
                        }
                    }
                    Err(e) => {
                        metrics.config_loaded(false, None);
                        tracing::error!("reload rejected; the old config keeps running:\n{e}");
                    }
                }
            }
        }
    }
    state.set_running(false);
    actions.set_on_demand(None);
    scheduler.stop().await;
    // The last results reach the writer, then it ends (every sender is gone).
    agents.close();
    drop(results);
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    history_stop.cancel();
    let _ = history_task.await;
    let _ = ticker.await;
    let _ = figures_task.await;
    let _ = notifier.await;
    if let Some(t) = lease_task {
        let _ = t.await;
    }
    if let Some(t) = vantage_task {
        let _ = t.await;
    }
    // Open event streams never end on their own: give connections a moment, then close.
    match tokio::time::timeout(std::time::Duration::from_secs(3), server).await {
        Ok(r) => r??,
        Err(_) => tracing::info!("closing remaining HTTP connections (event streams)"),
    }
    tracing::info!("lienthong stopped");
    Ok(())
}
