//! The agent process (`lienthong agent --config agent.toml`): runs the central's service
//! checks (fetched with its token) and its local checks with the ordinary scheduler and probe
//! code, numbers every result, spools batches on disk and pushes them in order; a heartbeat
//! every [`super::HEARTBEAT_EVERY`] carries its version, spool size and clock offset.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::config::AgentConfig;
use super::spool::{Spool, SpoolError};
use super::wire::*;
use crate::config::{CheckDef, CheckId, CheckRole, Degraded, Inventory};
use crate::probe::RoundShape;
use crate::result_writer::FinishedRun;
use crate::scheduler::Scheduler;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("cannot read the token file {path}: {source}")]
    Token {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build the HTTPS client: {0}")]
    Client(String),
    #[error("a check cannot be built: {0}")]
    Build(#[from] crate::probe::BuildError),
}

/// Why a request to the central did not succeed.
#[derive(Debug)]
enum PushError {
    /// Not reachable or 5xx: keep the data, retry later.
    Unreachable(String),
    /// The central refused the request itself (4xx), with its reason.
    Refused(u16, String),
}

impl std::fmt::Display for PushError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PushError::Unreachable(e) => write!(f, "central unreachable: {e}"),
            PushError::Refused(s, r) => write!(f, "central refused ({s}): {r}"),
        }
    }
}

struct Central {
    http: reqwest::Client,
    base: url::Url,
    site: String,
    token: String,
}

impl Central {
    fn url(&self, tail: &str) -> String {
        format!(
            "{}/api/v1/agents/{}/{tail}",
            self.base.as_str().trim_end_matches('/'),
            self.site
        )
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, PushError> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| PushError::Unreachable(without_url(&e)))?;
        let status = resp.status();
        if status.is_success() {
            return resp
                .json::<T>()
                .await
                .map_err(|e| PushError::Unreachable(without_url(&e)));
        }
        let reason = resp
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from))
            .unwrap_or_default();
        if status.is_server_error() || status.as_u16() == 429 {
            Err(PushError::Unreachable(format!("{status}: {reason}")))
        } else {
            Err(PushError::Refused(status.as_u16(), reason))
        }
    }

    async fn checks(&self) -> Result<CheckList, PushError> {
        self.send(self.http.get(self.url("checks"))).await
    }

    async fn heartbeat(&self, hb: &Heartbeat) -> Result<HeartbeatReply, PushError> {
        self.send(self.http.post(self.url("heartbeat")).json(hb))
            .await
    }

    async fn push(&self, batch: &ResultBatch) -> Result<BatchReply, PushError> {
        self.send(self.http.post(self.url("results")).json(batch))
            .await
    }
}

/// reqwest errors quote the URL; ours carries no secret, but keep messages short.
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "central");
    }
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The central key a result is reported under.
fn wire_key(id: &CheckId) -> String {
    if id.service.is_some() {
        id.key()
    } else {
        format!("local/{}", id.name)
    }
}

fn def(
    id: CheckId,
    title: String,
    interval: Duration,
    timeout: Duration,
    probe: crate::probe::ProbeSpec,
) -> CheckDef {
    CheckDef {
        role: if id.service.is_some() {
            CheckRole::Service
        } else {
            CheckRole::Other
        },
        id,
        title,
        title_en: None,
        link_class: "agent".into(),
        interval,
        timeout,
        round: RoundShape::default(),
        degraded: Degraded {
            loss: 0.0,
            rtt: Duration::ZERO,
            jitter: Duration::ZERO,
            latency: Duration::ZERO,
        },
        probe,
    }
}

/// The checks to run: the central's list (when enabled) plus agent.toml's own.
fn inventory(cfg: &AgentConfig, central: Option<&CheckList>) -> Inventory {
    let mut inv = Inventory::default();
    for c in central.map(|l| l.checks.as_slice()).unwrap_or_default() {
        let mut parts = c.key.splitn(3, '/');
        let (Some("service"), Some(svc), Some(name)) = (parts.next(), parts.next(), parts.next())
        else {
            tracing::warn!(key = %c.key, "ignoring a check of the central with an unexpected key");
            continue;
        };
        let secs = |s: f64| Duration::try_from_secs_f64(s).unwrap_or(Duration::from_secs(15));
        inv.checks.push(std::sync::Arc::new(def(
            CheckId::service(svc, name),
            c.title.clone(),
            secs(c.interval_seconds).max(Duration::from_secs(1)),
            secs(c.timeout_seconds),
            c.probe.clone(),
        )));
    }
    for c in &cfg.checks {
        inv.checks.push(std::sync::Arc::new(def(
            CheckId::site(&cfg.site, &c.name),
            c.title.clone().unwrap_or_else(|| c.name.clone()),
            c.interval.0,
            c.timeout.0,
            c.probe.clone(),
        )));
    }
    inv
}

fn same_checks(a: &CheckList, b: &CheckList) -> bool {
    serde_json::to_value(&a.checks).ok() == serde_json::to_value(&b.checks).ok()
}

/// Runs until `shutdown`; results not yet pushed stay in the spool for the next start.
pub async fn run(cfg: AgentConfig, shutdown: CancellationToken) -> Result<(), AgentError> {
    let token = std::fs::read_to_string(&cfg.token_file)
        .map_err(|source| AgentError::Token {
            path: cfg.token_file.display().to_string(),
            source,
        })?
        .trim()
        .to_string();
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("lienthong-agent/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(20));
    if let Some(ca) = &cfg.ca_file {
        let pem =
            std::fs::read(ca).map_err(|e| AgentError::Client(format!("{}: {e}", ca.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| AgentError::Client(e.to_string()))?;
        builder = builder.tls_certs_only(certs);
    }
    let central = Arc::new(Central {
        http: builder
            .build()
            .map_err(|e| AgentError::Client(e.to_string()))?,
        base: cfg.central.clone(),
        site: cfg.site.clone(),
        token,
    });
    let spool = Arc::new(Mutex::new(Spool::open(
        &cfg.spool_dir,
        cfg.max_age,
        cfg.max_bytes,
    )?));
    {
        let s = spool.lock().unwrap_or_else(|e| e.into_inner());
        tracing::info!(
            site = %cfg.site,
            central = %crate::config::redact_urls(cfg.central.as_str()),
            spooled = s.spooled(),
            next_seq = s.next_seq(),
            "lienthong agent starting"
        );
    }
    let cache = cfg.spool_dir.join("checks.json");
    let mut list: Option<CheckList> = None;
    if cfg.service_checks {
        list = fetch_checks(&central, &cache, &shutdown).await;
    }
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let (tx, rx) = mpsc::channel::<FinishedRun>(4096);
    let mut scheduler = Scheduler::start(
        &inventory(&cfg, list.as_ref()),
        tx.clone(),
        metrics.clone(),
        &shutdown,
    )?;
    let pushed = Arc::new(Notify::new());
    let offset: Arc<Mutex<Option<i64>>> = Arc::default();
    let collector = tokio::spawn(collect(rx, spool.clone(), cfg.push_every, pushed.clone()));
    // Declared with every batch, so the central records their results too.
    let locals: Vec<LocalCheckDecl> = cfg
        .checks
        .iter()
        .map(|c| LocalCheckDecl {
            name: c.name.clone(),
            title: c.title.clone().unwrap_or_else(|| c.name.clone()),
            interval_seconds: c.interval.0.as_secs_f64(),
            timeout_seconds: c.timeout.0.as_secs_f64(),
            probe: c.probe.clone(),
        })
        .collect();
    let pusher = tokio::spawn(push_loop(
        central.clone(),
        spool.clone(),
        pushed.clone(),
        locals,
        shutdown.clone(),
    ));
    let beat = tokio::spawn(heartbeat_loop(
        central.clone(),
        spool.clone(),
        offset,
        shutdown.clone(),
    ));
    // The central's check list can change (a reload): look again every few minutes.
    let mut refresh = tokio::time::interval(Duration::from_secs(300));
    refresh.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = refresh.tick(), if cfg.service_checks => {
                if let Ok(new) = central.checks().await {
                    if list.as_ref().is_none_or(|old| !same_checks(old, &new)) {
                        tracing::info!(checks = new.checks.len(), "the central's check list changed");
                        save_cache(&cache, &new);
                        match Scheduler::start(&inventory(&cfg, Some(&new)), tx.clone(), metrics.clone(), &shutdown) {
                            Ok(next) => {
                                std::mem::replace(&mut scheduler, next).stop().await;
                                list = Some(new);
                            }
                            Err(e) => tracing::error!(error = %e, "new check list not applied"),
                        }
                    }
                }
            }
        }
    }
    scheduler.stop().await;
    drop(tx);
    let _ = collector.await;
    let _ = pusher.await;
    let _ = beat.await;
    tracing::info!("lienthong agent stopped");
    Ok(())
}

fn save_cache(path: &std::path::Path, list: &CheckList) {
    if let Ok(body) = serde_json::to_vec(list) {
        let tmp = path.with_extension("json.tmp");
        if std::fs::write(&tmp, body).is_ok() {
            let _ = std::fs::rename(&tmp, path);
        }
    }
}

/// The central's checks: fetched (and cached), or the cached copy when the central cannot be
/// reached (a ward starting during an outage still measures), retried until one of them works.
async fn fetch_checks(
    central: &Central,
    cache: &std::path::Path,
    shutdown: &CancellationToken,
) -> Option<CheckList> {
    let mut wait = Duration::from_millis(500);
    loop {
        match central.checks().await {
            Ok(list) => {
                tracing::info!(checks = list.checks.len(), "fetched the central's checks");
                save_cache(cache, &list);
                return Some(list);
            }
            Err(e) => {
                if let Some(list) = std::fs::read(cache)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<CheckList>(&b).ok())
                {
                    tracing::warn!(error = %e, checks = list.checks.len(), "using the cached check list");
                    return Some(list);
                }
                tracing::warn!(error = %e, "cannot fetch the central's checks yet; retrying");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return None,
        }
        wait = (wait * 2).min(Duration::from_secs(30));
    }
}

/// One finished run as the central wants it (numbered when spooled).
fn to_wire(run: &FinishedRun) -> WireResult {
    WireResult {
        seq: 0,
        check: wire_key(&run.check.id),
        finished_ms: run
            .finished
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
        success: run.outcome.success,
        duration_seconds: run.outcome.duration.as_secs_f64(),
        reason: run.outcome.reason(),
        message: run
            .outcome
            .failure
            .as_ref()
            .map(|f| f.message.chars().take(512).collect()),
    }
}

/// Finished runs → numbered batches in the spool, every `every`. Ends when the scheduler is
/// stopped and every sender is gone, after spooling the last runs.
async fn collect(
    mut rx: mpsc::Receiver<FinishedRun>,
    spool: Arc<Mutex<Spool>>,
    every: Duration,
    pushed: Arc<Notify>,
) {
    let mut buf: Vec<WireResult> = Vec::new();
    let mut tick = tokio::time::interval(every);
    let flush = |buf: &mut Vec<WireResult>| {
        if buf.is_empty() {
            return;
        }
        let batch = std::mem::take(buf);
        let mut s = spool.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = s.append(batch) {
            tracing::error!(error = %e, "cannot write the spool: results lost");
        }
        drop(s);
        pushed.notify_one();
    };
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Some(run) => {
                    buf.push(to_wire(&run));
                    if buf.len() >= 1000 {
                        flush(&mut buf);
                    }
                }
                None => break,
            },
            _ = tick.tick() => flush(&mut buf),
        }
    }
    flush(&mut buf);
}

/// Pushes the spool's batches oldest first; an unreachable central is retried with backoff.
async fn push_loop(
    central: Arc<Central>,
    spool: Arc<Mutex<Spool>>,
    pushed: Arc<Notify>,
    locals: Vec<LocalCheckDecl>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let next = spool.lock().unwrap_or_else(|e| e.into_inner()).oldest();
        let (entry, results) = match next {
            Ok(Some(x)) => x,
            Ok(None) => {
                tokio::select! {
                    _ = pushed.notified() => continue,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = shutdown.cancelled() => return,
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the spool");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                    _ = shutdown.cancelled() => return,
                }
            }
        };
        let (spooled, dropped) = {
            let s = spool.lock().unwrap_or_else(|e| e.into_inner());
            (s.spooled() - (entry.last + 1 - entry.first), s.dropped())
        };
        let batch = ResultBatch {
            results,
            spooled,
            dropped,
            local_checks: locals.clone(),
        };
        let outcome = tokio::select! {
            r = central.push(&batch) => r,
            _ = shutdown.cancelled() => return,
        };
        let wait = match outcome {
            Ok(reply) => {
                tracing::debug!(
                    first = entry.first,
                    last = entry.last,
                    applied = reply.applied,
                    duplicates = reply.duplicates,
                    "batch acknowledged"
                );
                let mut s = spool.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = s.acknowledge(entry.last.max(reply.last_seq)) {
                    tracing::error!(error = %e, "cannot remove an acknowledged batch");
                }
                backoff = Duration::from_millis(500);
                continue;
            }
            Err(PushError::Refused(status @ (400 | 413), reason)) => {
                tracing::error!(
                    status,
                    reason,
                    first = entry.first,
                    last = entry.last,
                    "the central refused a batch as malformed: set aside"
                );
                let mut s = spool.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = s.reject(entry) {
                    tracing::error!(error = %e, "spool");
                }
                continue;
            }
            Err(e @ PushError::Refused(..)) => {
                // 401/403: the token or site is wrong centrally; keep the data, retry slowly.
                tracing::error!(error = %e, "pushing results");
                Duration::from_secs(30)
            }
            Err(e) => {
                tracing::warn!(error = %e, spooled = spooled + entry.last + 1 - entry.first, "pushing results; they stay in the spool");
                let w = backoff;
                backoff = (backoff * 2).min(Duration::from_secs(15));
                w
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Every [`super::HEARTBEAT_EVERY`]: version, spool, the clock offset measured by the last
/// round trip (central clock − the midpoint of ours around it).
async fn heartbeat_loop(
    central: Arc<Central>,
    spool: Arc<Mutex<Spool>>,
    offset: Arc<Mutex<Option<i64>>>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(super::HEARTBEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported_skew = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let (spooled, dropped) = {
            let s = spool.lock().unwrap_or_else(|e| e.into_inner());
            (s.spooled(), s.dropped())
        };
        let sent = now_ms();
        let hb = Heartbeat {
            version: env!("CARGO_PKG_VERSION").into(),
            sent_ms: sent,
            clock_offset_ms: *offset.lock().unwrap_or_else(|e| e.into_inner()),
            spooled,
            dropped,
        };
        match central.heartbeat(&hb).await {
            Ok(reply) => {
                let back = now_ms();
                let off = reply.received_ms - (sent + back) / 2;
                *offset.lock().unwrap_or_else(|e| e.into_inner()) = Some(off);
                let skew = off.abs() > super::SKEW_REPORT_MS;
                if skew && !reported_skew {
                    tracing::warn!(offset_ms = off, "this machine's clock differs from the central's by more than 5 s; the central shifts our timestamps");
                }
                reported_skew = skew;
                let mut s = spool.lock().unwrap_or_else(|e| e.into_inner());
                let _ = s.acknowledge(reply.last_seq);
                if let Err(e) = s.continue_after(reply.last_seq) {
                    tracing::error!(error = %e, "spool");
                }
            }
            Err(e) => tracing::debug!(error = %e, "heartbeat"),
        }
    }
}
