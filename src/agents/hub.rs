//! The central side of the ward agents: who may push for which site, what was applied (by
//! sequence, durably in the store), when each agent was last heard from, and the
//! `lienthong_agent_*` series. Accepted results go into the writer's queue as [`FinishedRun`]s
//! of the agent-run check copies, so they take exactly the path of local runs.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderMap, StatusCode};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, IntGaugeVec, Opts};
use subtle::ConstantTimeEq;

use super::wire::*;
use crate::config::{AgentToken, CheckDef, Inventory};
use crate::incidents::agent_seq::AgentSeq;
use crate::incidents::correlation::AgentPresence;
use crate::incidents::Store;
use crate::probe::{Details, Failure, Outcome, Reason};
use crate::result_writer::{FinishedRun, ResultQueue};
use crate::web::ApiError;

/// What the central remembers of one agent between its messages (memory only; the applied
/// sequence is in the store).
#[derive(Debug, Clone, Default)]
struct Live {
    last_seen: Option<SystemTime>,
    version: Option<String>,
    offset_ms: Option<i64>,
    spooled: u64,
    dropped: u64,
    seq: Option<AgentSeq>,
}

#[derive(Default)]
struct Inner {
    /// Site → SHA-256 of its token (None: configured but its token file is unreadable).
    tokens: BTreeMap<String, Option<[u8; 32]>>,
    /// Site → its agent-run checks by the central key they mirror.
    checks: HashMap<String, HashMap<String, Arc<CheckDef>>>,
    names: HashMap<String, String>,
    live: BTreeMap<String, Live>,
    /// Site → the local checks its agent declared (agent.toml), capped.
    locals: BTreeMap<String, Vec<LocalCheckDecl>>,
}

pub struct Hub {
    store: Arc<Store>,
    /// Taken at shutdown, so the writer can drain and end.
    queue: Mutex<Option<ResultQueue>>,
    presence: AgentPresence,
    inner: Mutex<Inner>,
    /// Batches are applied one at a time (sequence check → store → queue stays ordered).
    apply: tokio::sync::Mutex<()>,
    up: IntGaugeVec,
    last_seen: GaugeVec,
    spooled: IntGaugeVec,
    /// Poked when an agent declares other local checks than before (see [`Hub::merge_locals`]).
    locals_changed: Arc<tokio::sync::Notify>,
}

/// How long a batch waits for newly declared local checks to be installed before the central
/// answers 503 (the agent keeps the batch and resends).
const LOCALS_INSTALL_WAIT: Duration = Duration::from_secs(5);

/// The central's definition of an agent's own check: recorded under `site/<slug>/<name>@site:<slug>`
/// (vantage `site:<slug>`), never scheduled centrally, not correlated.
fn local_def(site: &str, link_class: &str, d: &LocalCheckDecl) -> CheckDef {
    let secs = |s: f64, dflt: u64| {
        Duration::try_from_secs_f64(s)
            .unwrap_or(Duration::from_secs(dflt))
            .clamp(Duration::from_millis(100), Duration::from_secs(86_400))
    };
    CheckDef {
        id: crate::config::CheckId::agent_local(site, &d.name),
        role: crate::config::CheckRole::Other,
        title: format!("{} (máy đo tại phường)", d.title),
        title_en: Some(format!("{} (ward agent)", d.title)),
        link_class: link_class.to_string(),
        interval: secs(d.interval_seconds, 15),
        timeout: secs(d.timeout_seconds, 5),
        round: crate::probe::RoundShape::default(),
        degraded: crate::config::Degraded {
            loss: 0.0,
            rtt: Duration::ZERO,
            jitter: Duration::ZERO,
            latency: Duration::ZERO,
        },
        probe: d.probe.clone(),
    }
}

/// A declaration is refused (400) when a name is not a check name; more than
/// [`MAX_LOCAL_CHECKS`] are cut to that many.
fn valid_locals(decls: &[LocalCheckDecl]) -> Result<Vec<LocalCheckDecl>, String> {
    let mut out: Vec<LocalCheckDecl> = Vec::new();
    for (i, d) in decls.iter().enumerate() {
        if d.name.is_empty()
            || d.name.len() > 64
            || !d
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "local_checks[{i}]: `{}` is not a check name (letters, digits, - or _; at most 64)",
                d.name.chars().take(80).collect::<String>()
            ));
        }
        if out.iter().any(|o| o.name == d.name) {
            return Err(format!("local_checks[{i}]: duplicate check `{}`", d.name));
        }
        if out.len() < MAX_LOCAL_CHECKS {
            let mut d = d.clone();
            d.title = d.title.chars().take(200).collect();
            out.push(d);
        }
    }
    Ok(out)
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn ms_of(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Hub {
    pub fn new(store: Arc<Store>, queue: ResultQueue, presence: AgentPresence) -> Arc<Hub> {
        let up = IntGaugeVec::new(
            Opts::new(
                "lienthong_agent_up",
                "Whether the ward agent of the site was heard from in the last 45 s (heartbeat or batch)",
            ),
            &["site"],
        )
        .expect("valid metric");
        let last_seen = GaugeVec::new(
            Opts::new(
                "lienthong_agent_last_seen_timestamp_seconds",
                "When the ward agent of the site was last heard from, Unix seconds",
            ),
            &["site"],
        )
        .expect("valid metric");
        let spooled = IntGaugeVec::new(
            Opts::new(
                "lienthong_agent_spooled_results",
                "Results waiting in the ward agent's disk spool (as it last reported)",
            ),
            &["site"],
        )
        .expect("valid metric");
        Arc::new(Hub {
            store,
            queue: Mutex::new(Some(queue)),
            presence,
            inner: Mutex::default(),
            apply: tokio::sync::Mutex::new(()),
            up,
            last_seen,
            spooled,
            locals_changed: Arc::default(),
        })
    }

    /// Notified when an agent declares local checks different from before: the service then
    /// installs them with [`Hub::merge_locals`] into the running inventory.
    pub fn locals_changed(&self) -> Arc<tokio::sync::Notify> {
        self.locals_changed.clone()
    }

    /// Replaces the agent-local checks of `inv` by the ones declared by the agents of its
    /// `[[agent]]` sites.
    pub fn merge_locals(&self, inv: &mut Inventory) {
        inv.checks.retain(|c| !c.id.agent_local);
        let g = self.lock();
        let mut add = Vec::new();
        for a in &inv.agents {
            let class = inv.site(&a.site).map_or("", |s| s.link_class.as_str());
            for d in g.locals.get(&a.site).into_iter().flatten() {
                add.push(Arc::new(local_def(&a.site, class, d)));
            }
        }
        drop(g);
        inv.checks.extend(add);
    }

    /// Records the local checks an agent declares; true when they changed.
    fn declare_locals(&self, site: &str, decls: Vec<LocalCheckDecl>) -> bool {
        let mut g = self.lock();
        let before = g.locals.get(site).cloned().unwrap_or_default();
        if before == decls {
            return false;
        }
        tracing::info!(
            site,
            checks = decls.len(),
            "the ward agent declared its local checks: recording them"
        );
        if decls.is_empty() {
            g.locals.remove(site);
        } else {
            g.locals.insert(site.to_string(), decls);
        }
        true
    }

    /// Whether every declared local check of `site` is in the installed inventory.
    fn locals_installed(&self, site: &str) -> bool {
        let g = self.lock();
        let mine = g.checks.get(site);
        g.locals
            .get(site)
            .into_iter()
            .flatten()
            .all(|d| mine.is_some_and(|m| m.contains_key(&format!("local/{}", d.name))))
    }

    /// Stops accepting results (shutdown): the writer's queue loses this sender.
    pub fn close(&self) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Installs the `[[agent]]` list of a (re)loaded config; token files are read here, once.
    pub fn set_inventory(&self, inv: &Inventory) {
        let mut tokens = BTreeMap::new();
        let mut checks: HashMap<String, HashMap<String, Arc<CheckDef>>> = HashMap::new();
        for a in &inv.agents {
            let hash = match &a.token {
                AgentToken::Sha256(h) => Some(*h),
                AgentToken::File(path) => match std::fs::read_to_string(path) {
                    Ok(t) if !t.trim().is_empty() => Some(sha256(t.trim().as_bytes())),
                    Ok(_) => {
                        tracing::error!(site = %a.site, file = %path.display(), "agent token file is empty: the agent is refused");
                        None
                    }
                    Err(e) => {
                        tracing::error!(site = %a.site, file = %path.display(), error = %e, "cannot read the agent token file: the agent is refused");
                        None
                    }
                },
            };
            tokens.insert(a.site.clone(), hash);
            checks.entry(a.site.clone()).or_default();
        }
        for c in inv.checks.iter().filter(|c| c.id.is_agent()) {
            if let Some(site) = c.id.site.as_deref() {
                checks
                    .entry(site.to_string())
                    .or_default()
                    .insert(c.id.central().key(), c.clone());
            }
        }
        // The agents' own checks, under the key their results carry.
        for c in inv.checks.iter().filter(|c| c.id.agent_local) {
            if let Some(site) = c.id.site.as_deref() {
                checks
                    .entry(site.to_string())
                    .or_default()
                    .insert(format!("local/{}", c.id.name), c.clone());
            }
        }
        let names = inv
            .sites
            .iter()
            .map(|s| (s.slug.clone(), s.name.clone()))
            .collect();
        let mut g = self.lock();
        g.live.retain(|site, _| tokens.contains_key(site));
        for site in tokens.keys() {
            g.live.entry(site.clone()).or_default();
        }
        g.locals.retain(|site, _| tokens.contains_key(site));
        g.tokens = tokens;
        g.checks = checks;
        g.names = names;
    }

    /// Decides whether `headers` carry the token of `site`: none / malformed / unknown token →
    /// 401; another configured agent's token → 403. The presented token is compared with every
    /// configured hash in constant time.
    pub fn authenticate(&self, headers: &HeaderMap, site: &str) -> Result<(), ApiError> {
        let challenge = "Bearer realm=\"lienthong-agents\"";
        let unauthorized = |reason: &str| ApiError {
            challenge: Some(challenge),
            ..ApiError::new(StatusCode::UNAUTHORIZED, reason)
        };
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(unauthorized(
                "missing Authorization header: send `Authorization: Bearer <agent token>`",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|s| s.trim().split_once(' '))
            .filter(|(scheme, t)| scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty())
            .map(|(_, t)| t.trim().to_string());
        let Some(token) = token else {
            return Err(unauthorized(
                "malformed Authorization header: expected `Bearer <agent token>`",
            ));
        };
        let presented = sha256(token.as_bytes());
        let g = self.lock();
        let mut owner: Option<&str> = None;
        for (s, hash) in &g.tokens {
            if let Some(h) = hash {
                if bool::from(h.ct_eq(&presented)) {
                    owner = Some(s);
                }
            }
        }
        match owner {
            Some(s) if s == site => Ok(()),
            Some(other) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("this token belongs to the agent of `{other}`, not `{site}`"),
            )),
            None => Err(unauthorized("invalid agent token")),
        }
    }

    /// The checks `site`'s agent runs for the central.
    pub fn check_list(&self, site: &str) -> CheckList {
        let g = self.lock();
        let mut checks: Vec<WireCheck> = g
            .checks
            .get(site)
            .into_iter()
            .flatten()
            .map(|(key, c)| WireCheck {
                key: key.clone(),
                title: c.title.clone(),
                interval_seconds: c.interval.as_secs_f64(),
                timeout_seconds: c.timeout.as_secs_f64(),
                probe: c.probe.clone(),
            })
            .collect();
        checks.sort_by(|a, b| a.key.cmp(&b.key));
        CheckList {
            site: site.to_string(),
            checks,
        }
    }

    fn seen(&self, site: &str, now: SystemTime, f: impl FnOnce(&mut Live)) {
        let mut g = self.lock();
        let live = g.live.entry(site.to_string()).or_default();
        live.last_seen = Some(now);
        f(live);
        drop(g);
        self.presence
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(site.to_string(), now);
    }

    /// A heartbeat: liveness, version, spool size, clock offset.
    pub async fn heartbeat(&self, site: &str, hb: Heartbeat) -> Result<HeartbeatReply, ApiError> {
        let now = SystemTime::now();
        let seq = self.seq_of(site).await?;
        if let Some(off) = hb.clock_offset_ms {
            if off.abs() > super::SKEW_REPORT_MS {
                tracing::warn!(
                    site,
                    offset_ms = off,
                    "agent clock skew above 5 s: its timestamps are shifted to the central clock"
                );
            }
        }
        self.seen(site, now, |l| {
            l.version = Some(hb.version.chars().take(64).collect());
            if hb.clock_offset_ms.is_some() {
                l.offset_ms = hb.clock_offset_ms;
            }
            l.spooled = hb.spooled;
            l.dropped = hb.dropped;
            l.seq = Some(seq);
        });
        Ok(HeartbeatReply {
            received_ms: ms_of(now),
            last_seq: seq.last_seq,
        })
    }

    async fn seq_of(&self, site: &str) -> Result<AgentSeq, ApiError> {
        let store = self.store.clone();
        let site = site.to_string();
        blocking(move || store.agent_seq(&site)).await
    }

    /// Validates a whole batch, then applies the results not applied before, in order. Nothing
    /// is applied when any result is invalid.
    pub async fn apply(&self, site: &str, batch: ResultBatch) -> Result<BatchReply, ApiError> {
        if batch.results.len() > MAX_RESULTS {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "{} results in one batch; at most {MAX_RESULTS}",
                    batch.results.len()
                ),
            ));
        }
        let locals = valid_locals(&batch.local_checks).map_err(ApiError::bad_request)?;
        if self.declare_locals(site, locals) {
            self.locals_changed.notify_one();
        }
        // Newly declared local checks are installed by the service loop: wait for it, so
        // their results in this very batch are recorded, not skipped.
        let waited = std::time::Instant::now();
        while !self.locals_installed(site) {
            if waited.elapsed() > LOCALS_INSTALL_WAIT {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the agent's local checks are being registered: nothing applied, resend later",
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut runs: Vec<(u64, Option<Arc<CheckDef>>, &WireResult)> =
            Vec::with_capacity(batch.results.len());
        {
            let g = self.lock();
            let mine = g.checks.get(site);
            let mut prev = 0u64;
            for (i, r) in batch.results.iter().enumerate() {
                if r.seq == 0 || r.seq <= prev {
                    return Err(ApiError::bad_request(format!(
                        "results[{i}]: seq {} is not above the previous one ({prev}); sequences start at 1 and ascend",
                        r.seq
                    )));
                }
                prev = r.seq;
                if !r.duration_seconds.is_finite() || r.duration_seconds < 0.0 {
                    return Err(ApiError::bad_request(format!(
                        "results[{i}]: duration_seconds must be a finite number ≥ 0"
                    )));
                }
                if r.finished_ms <= 0 {
                    return Err(ApiError::bad_request(format!(
                        "results[{i}]: finished_ms must be a Unix time in milliseconds"
                    )));
                }
                if !r.success && r.reason.is_none() {
                    return Err(ApiError::bad_request(format!(
                        "results[{i}]: a failed run needs a reason"
                    )));
                }
                let def = if r.check.starts_with("local/") {
                    // Not declared (or over the cap): skipped, counted as ignored.
                    mine.and_then(|m| m.get(&r.check)).cloned()
                } else {
                    match mine.and_then(|m| m.get(&r.check)) {
                        Some(d) => Some(d.clone()),
                        None => {
                            return Err(ApiError::bad_request(format!(
                                "results[{i}]: `{}` is not a check the agent of `{site}` runs for the central (GET /api/v1/agents/{site}/checks lists them)",
                                r.check
                            )))
                        }
                    }
                };
                runs.push((r.seq, def, r));
            }
        }
        let _one = self.apply.lock().await;
        let Some(queue) = self.queue.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the central is shutting down: nothing applied, resend later",
            ));
        };
        let before = self.seq_of(site).await?;
        let fresh: Vec<_> = runs
            .into_iter()
            .filter(|(seq, _, _)| *seq > before.last_seq)
            .collect();
        let duplicates = batch.results.len() as u64 - fresh.len() as u64;
        let mut missing = 0;
        let mut expected = before.last_seq + 1;
        for (seq, _, _) in &fresh {
            missing += seq - expected;
            expected = seq + 1;
        }
        let now = SystemTime::now();
        let seq = match fresh.last() {
            Some((last, _, _)) => {
                // Durable first: a crash after this line loses what the writer had not yet
                // written (as for local runs), it never applies a result twice.
                let store = self.store.clone();
                let (site_s, last, n) = (site.to_string(), *last, fresh.len() as u64);
                blocking(move || store.agent_advance(&site_s, last, n, missing, ms_of(now))).await?
            }
            None => before,
        };
        let offset = self
            .lock()
            .live
            .get(site)
            .and_then(|l| l.offset_ms)
            .unwrap_or(0);
        let mut ignored = 0;
        for (_, def, r) in &fresh {
            let Some(def) = def else {
                ignored += 1;
                continue;
            };
            let at = (r.finished_ms + offset).max(0) as u64;
            let outcome = Outcome {
                success: r.success,
                duration: Duration::try_from_secs_f64(r.duration_seconds).unwrap_or_default(),
                failure: (!r.success).then(|| Failure {
                    reason: r.reason.unwrap_or(Reason::Protocol),
                    message: r
                        .message
                        .as_deref()
                        .unwrap_or("")
                        .chars()
                        .take(512)
                        .collect(),
                }),
                details: Details::None,
            };
            let run = FinishedRun {
                check: def.clone(),
                outcome,
                finished: UNIX_EPOCH + Duration::from_millis(at),
                rerun: None,
            };
            if queue.send(run).await.is_err() {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the central is shutting down",
                ));
            }
        }
        self.seen(site, now, |l| {
            l.spooled = batch.spooled;
            l.dropped = batch.dropped;
            l.seq = Some(seq);
        });
        Ok(BatchReply {
            applied: fresh.len() as u64 - ignored,
            duplicates,
            ignored,
            last_seq: seq.last_seq,
        })
    }

    /// Every configured agent, for `GET /api/v1/agents`.
    pub async fn list(&self) -> Result<Vec<AgentView>, ApiError> {
        let sites: Vec<String> = self.lock().tokens.keys().cloned().collect();
        let mut out = Vec::with_capacity(sites.len());
        let now = SystemTime::now();
        for site in sites {
            let seq = self.seq_of(&site).await?;
            let g = self.lock();
            let live = g.live.get(&site).cloned().unwrap_or_default();
            out.push(AgentView {
                name: g.names.get(&site).cloned().unwrap_or_default(),
                up: is_up(live.last_seen, now),
                last_seen: live
                    .last_seen
                    .map(|t| crate::localtime::format_rfc3339(ms_of(t))),
                version: live.version,
                clock_offset_ms: live.offset_ms,
                clock_skew: live
                    .offset_ms
                    .is_some_and(|o| o.abs() > super::SKEW_REPORT_MS),
                spooled: live.spooled,
                dropped: live.dropped,
                last_seq: seq.last_seq,
                applied: seq.applied,
                missing: seq.missing,
                site,
            });
        }
        Ok(out)
    }

    fn refresh_series(&self) {
        let now = SystemTime::now();
        self.up.reset();
        self.last_seen.reset();
        self.spooled.reset();
        let g = self.lock();
        for site in g.tokens.keys() {
            let live = g.live.get(site).cloned().unwrap_or_default();
            self.up
                .with_label_values(&[site])
                .set(i64::from(is_up(live.last_seen, now)));
            if let Some(t) = live.last_seen {
                self.last_seen
                    .with_label_values(&[site])
                    .set(ms_of(t) as f64 / 1000.0);
            }
            self.spooled
                .with_label_values(&[site])
                .set(live.spooled as i64);
        }
    }

    /// Registers the `lienthong_agent_*` series (they appear once an agent is configured).
    pub fn register(self: &Arc<Self>, registry: &prometheus::Registry) {
        if let Err(e) = registry.register(Box::new(HubSeries(self.clone()))) {
            tracing::error!(error = %e, "cannot register the lienthong_agent_* series");
        }
    }
}

fn is_up(last_seen: Option<SystemTime>, now: SystemTime) -> bool {
    last_seen.is_some_and(|t| {
        now.duration_since(t)
            .map_or(true, |d| d < super::AGENT_LOST_AFTER)
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::incidents::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "incident store (agents)");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "incident store error: nothing applied, resend later",
            ))
        }
        Err(_) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error",
        )),
    }
}

struct HubSeries(Arc<Hub>);

impl Collector for HubSeries {
    fn desc(&self) -> Vec<&Desc> {
        let h = &self.0;
        let mut d = h.up.desc();
        d.extend(h.last_seen.desc());
        d.extend(h.spooled.desc());
        d
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let h = &self.0;
        if h.lock().tokens.is_empty() {
            return Vec::new();
        }
        h.refresh_series();
        let mut out = h.up.collect();
        out.extend(h.last_seen.collect());
        out.extend(h.spooled.collect());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(name: &str) -> LocalCheckDecl {
        LocalCheckDecl {
            name: name.into(),
            title: "t".repeat(300),
            interval_seconds: 15.0,
            timeout_seconds: 5.0,
            probe: serde_json::from_value(serde_json::json!({"tcp": {"address": "127.0.0.1:1"}}))
                .unwrap(),
        }
    }

    #[test]
    fn local_declarations_are_validated_and_capped() {
        let many: Vec<LocalCheckDecl> = (0..40).map(|i| decl(&format!("c{i}"))).collect();
        let kept = valid_locals(&many).unwrap();
        assert_eq!(
            kept.len(),
            MAX_LOCAL_CHECKS,
            "capped: bounded label cardinality"
        );
        assert_eq!(kept[0].title.chars().count(), 200);
        assert!(valid_locals(&[decl("a b")])
            .unwrap_err()
            .contains("local_checks[0]"));
        assert!(valid_locals(&[decl("")]).is_err());
        assert!(valid_locals(&[decl("gw"), decl("gw")])
            .unwrap_err()
            .contains("duplicate"));
        let d = local_def("phuong-a", "mainland", &decl("gw"));
        assert_eq!(d.id.key(), "site/phuong-a/gw@site:phuong-a");
        assert_eq!(d.id.vantage().as_deref(), Some("site:phuong-a"));
        assert!(d.id.runs_at_ward() && !d.id.is_agent());
    }
}
