//! Delivery of incident events to webhooks and Alertmanager from the durable outbox.
//!
//! The engine writes one outbox row per (timeline event, target) in the same transaction as the
//! event (targets chosen by [`targets_for`]). The [`Notifier`] task takes due rows, renders the
//! payload from the stored incident at delivery time, POSTs it and records the outcome:
//! delivered at least once, retried with exponential backoff, surviving restarts.
//!
//! Secrets: bearer tokens are read from the environment once, at construction, and never logged;
//! error texts stored in the outbox never contain the target URL (webhook URLs often embed a
//! secret) nor request headers.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{GaugeVec, IntCounterVec, IntGauge, Opts, Registry};
use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{NotifyKind, NotifyTarget};
use crate::incidents::{
    Incident, IncidentEvent, IncidentState, OutboxItem, Scope, Severity, Store, StoreError,
    UnixMillis,
};
use crate::localtime::format_rfc3339;

/// How often due outbox rows are looked for, besides pokes.
pub const TICK: Duration = Duration::from_millis(500);
/// Rows taken per tick.
const BATCH: u32 = 100;
/// First retry delay; doubles per failed attempt.
const BACKOFF_BASE_MS: i64 = 1_000;
/// Retry delay cap.
const BACKOFF_MAX_MS: i64 = 5 * 60 * 1_000;
/// Rows that cannot be delivered by retrying (target not configured, incident gone) are looked
/// at again after this long. Not above the retry cap: no row is ever scheduled further ahead
/// than [`HORIZON_MS`], so one stored beyond it was scheduled by a clock that went back since.
const PARKED_MS: i64 = BACKOFF_MAX_MS;
/// Largest delay ever stored for a row: the retry cap, its jitter and a second of slack.
const HORIZON_MS: i64 = BACKOFF_MAX_MS + BACKOFF_MAX_MS / 10 + 1_000;
/// Wall clock and monotonic clock disagreeing by more than this between two rounds is a step.
const CLOCK_STEP_MS: i64 = 2_000;
/// Open incidents are re-sent to Alertmanager this often so they don't expire there.
pub const ALERTMANAGER_REFRESH: Duration = Duration::from_secs(60);
/// `endsAt` of a firing alert: now + this. Alertmanager resolves an alert that is not re-sent
/// before then (lienthong down), like Prometheus does.
const ALERT_TTL_MS: i64 = 5 * 60 * 1_000;
/// Names listed in the `sites` annotation before "… và N nơi khác".
const SITES_IN_SUMMARY: usize = 50;
/// Bytes of a failed response body kept in the error text.
const ERROR_BODY_BYTES: usize = 200;

/// Names of the targets whose filters match an incident: `severities` empty = all, `teams`
/// empty = all, otherwise the incident must have one of the listed teams.
pub fn targets_for(
    incident_teams: &[String],
    severity: Severity,
    targets: &[NotifyTarget],
) -> Vec<String> {
    let sev = severity_str(severity);
    targets
        .iter()
        .filter(|t| {
            t.severities.is_empty()
                || t.severities
                    .iter()
                    .any(|s| s.trim().eq_ignore_ascii_case(sev))
        })
        .filter(|t| t.teams.is_empty() || t.teams.iter().any(|team| incident_teams.contains(team)))
        .map(|t| t.name.clone())
        .collect()
}

/// The wall clock the notifier stamps rows with (injectable for tests of clock steps).
pub type WallClock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Pushes a new `[[notify]]` list to a running [`Notifier`] (on SIGHUP).
#[derive(Clone)]
pub struct TargetsHandle(watch::Sender<Vec<NotifyTarget>>);

impl TargetsHandle {
    /// Applied by the notifier before its next round: new deliveries use the new URLs, rows
    /// queued for removed targets are dropped (logged, counted as `result="dropped"`).
    pub fn set(&self, targets: Vec<NotifyTarget>) {
        self.0.send_replace(targets);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    #[error("notification metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("notification HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// A bearer token; `Debug` never shows it.
struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

struct Target {
    cfg: NotifyTarget,
    token: Option<Secret>,
    /// `quiet_hours` (validated with the config; an unparsable value means none).
    quiet: Option<crate::localtime::QuietHours>,
}

impl Target {
    fn endpoint(&self) -> String {
        match self.cfg.kind {
            NotifyKind::Webhook => self.cfg.url.clone(),
            NotifyKind::Alertmanager => alertmanager_url(&self.cfg.url),
        }
    }
}

struct NotifyMetrics {
    total: IntCounterVec,
    pending: IntGauge,
    last_success: GaugeVec,
}

impl NotifyMetrics {
    fn new(r: &Registry, targets: &[NotifyTarget]) -> Result<Self, prometheus::Error> {
        let total = IntCounterVec::new(
            Opts::new(
                "lienthong_notifications_total",
                "Notification deliveries by target and result (delivered, failed).",
            ),
            &["target", "result"],
        )?;
        let pending = IntGauge::new(
            "lienthong_notifications_pending",
            "Outbox rows not yet delivered.",
        )?;
        let last_success = GaugeVec::new(
            Opts::new(
                "lienthong_notification_last_success_timestamp_seconds",
                "Unix time of the last successful delivery to a target.",
            ),
            &["target"],
        )?;
        r.register(Box::new(total.clone()))?;
        r.register(Box::new(pending.clone()))?;
        r.register(Box::new(last_success.clone()))?;
        for t in targets {
            for result in ["delivered", "failed"] {
                total.with_label_values(&[t.name.as_str(), result]);
            }
        }
        Ok(NotifyMetrics {
            total,
            pending,
            last_success,
        })
    }

    fn delivered(&self, target: &str, at: UnixMillis) {
        self.total.with_label_values(&[target, "delivered"]).inc();
        self.success(target, at);
    }

    fn success(&self, target: &str, at: UnixMillis) {
        self.last_success
            .with_label_values(&[target])
            .set(at as f64 / 1000.0);
    }

    fn failed(&self, target: &str) {
        self.total.with_label_values(&[target, "failed"]).inc();
    }

    fn dropped(&self, target: &str, n: u64) {
        self.total.with_label_values(&[target, "dropped"]).inc_by(n);
    }
}

/// The delivery task. Build it, keep [`Notifier::poke_handle`] for the engine, then spawn
/// [`Notifier::run`].
/// Delivered rows remembered while their mark cannot be written (a store outage stops new
/// deliveries at the next due listing, so a handful in practice).
const MAX_UNMARKED: usize = 10_000;

pub struct Notifier {
    store: Arc<Store>,
    targets: HashMap<String, Target>,
    client: reqwest::Client,
    poke: Arc<Notify>,
    metrics: NotifyMetrics,
    tick: Duration,
    refresh: Duration,
    /// Targets whose last attempt failed: no attempts (deliveries or refreshes) before this.
    /// Monotonic, so a wall-clock step neither delays nor hurries a retry.
    backing_off: HashMap<String, Instant>,
    /// Rows this run scheduled for later (failed, deferred, parked): not before this.
    hold: HashMap<i64, Instant>,
    /// Rows delivered whose "delivered" mark could not be written (the store was down): marked
    /// again first, never sent again by this run.
    unmarked: HashMap<i64, UnixMillis>,
    /// Targets removed by a reload: late rows for them are dropped, not parked.
    removed: HashSet<String>,
    last_refresh: Option<Instant>,
    targets_rx: watch::Receiver<Vec<NotifyTarget>>,
    targets_tx: watch::Sender<Vec<NotifyTarget>>,
    wall: WallClock,
    /// (wall ms, monotonic) at the previous round, for the clock-step detector.
    last_seen: Option<(UnixMillis, Instant)>,
}

impl Notifier {
    /// Reads the bearer tokens from their environment variables (a missing variable is logged by
    /// name and the target is used without a token) and registers the metrics on `registry`.
    /// Installs the ring crypto provider as the process default if none is installed yet.
    pub fn new(
        store: Arc<Store>,
        targets: Vec<NotifyTarget>,
        registry: &Registry,
    ) -> Result<Notifier, NotifierError> {
        let metrics = NotifyMetrics::new(registry, &targets)?;
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("lienthong/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let (targets_tx, targets_rx) = watch::channel(targets.clone());
        Ok(Notifier {
            store,
            targets: build_targets(targets),
            client,
            poke: Arc::new(Notify::new()),
            metrics,
            tick: TICK,
            refresh: ALERTMANAGER_REFRESH,
            backing_off: HashMap::new(),
            hold: HashMap::new(),
            unmarked: HashMap::new(),
            removed: HashSet::new(),
            last_refresh: None,
            targets_rx,
            targets_tx,
            wall: Arc::new(SystemTime::now),
            last_seen: None,
        })
    }

    /// The handle the reload path pushes a new `[[notify]]` list through.
    pub fn targets_handle(&self) -> TargetsHandle {
        TargetsHandle(self.targets_tx.clone())
    }

    /// Replaces the wall clock rows are stamped with (tests step it).
    pub fn with_wall_clock(mut self, wall: WallClock) -> Self {
        self.wall = wall;
        self
    }

    fn now_ms(&self) -> UnixMillis {
        to_ms((self.wall)())
    }

    /// Wall-clock stamp (for the stored row, display and restarts) of a monotonic instant.
    fn wall_at(&self, at: Instant) -> UnixMillis {
        let ahead = at.saturating_duration_since(Instant::now());
        self.now_ms() + ahead.as_millis() as i64
    }

    /// Applies a new target list: changed URLs and tokens take effect for the next delivery
    /// (their backoff is cleared), removed targets' queued rows are dropped, new ones start.
    async fn apply_targets(&mut self, new: Vec<NotifyTarget>) {
        let names: HashSet<String> = new.iter().map(|t| t.name.clone()).collect();
        let gone: Vec<String> = self
            .targets
            .keys()
            .filter(|n| !names.contains(*n))
            .cloned()
            .collect();
        let changed: Vec<String> = new
            .iter()
            .filter(|t| {
                self.targets
                    .get(&t.name)
                    .is_some_and(|old| !same_target(&old.cfg, t))
            })
            .map(|t| t.name.clone())
            .collect();
        let added = new
            .iter()
            .filter(|t| !self.targets.contains_key(&t.name))
            .count();
        for t in &new {
            for result in ["delivered", "failed"] {
                self.metrics
                    .total
                    .with_label_values(&[t.name.as_str(), result]);
            }
            self.removed.remove(&t.name);
        }
        for name in changed.iter().chain(&gone) {
            self.backing_off.remove(name);
        }
        // Rows held for a changed target are retried at once, on the new URL.
        self.hold.clear();
        self.targets = build_targets(new);
        for name in &gone {
            let n = name.clone();
            match self.db(move |s| s.outbox_drop_target(&n)).await {
                Ok(n) => {
                    self.metrics.dropped(name, n);
                    tracing::info!(
                        target_name = %name,
                        dropped = n,
                        "notify target removed; its queued notifications are dropped"
                    );
                }
                Err(e) => tracing::warn!(target_name = %name, "notify: dropping rows: {e}"),
            }
            self.removed.insert(name.clone());
        }
        tracing::info!(
            targets = self.targets.len(),
            added,
            removed = gone.len(),
            changed = changed.len(),
            "notify targets reloaded"
        );
    }

    /// Compares how far the wall clock and the monotonic clock moved since the last round. A
    /// step is logged and the stored retry times are moved with it, so they keep meaning
    /// "in N seconds" (the in-memory schedule is monotonic and needs nothing).
    async fn detect_clock_step(&mut self) {
        let (wall, mono) = (self.now_ms(), Instant::now());
        if let Some((last_wall, last_mono)) = self.last_seen {
            let mono_ms = mono.duration_since(last_mono).as_millis() as i64;
            let step = (wall - last_wall) - mono_ms;
            if step.abs() > CLOCK_STEP_MS {
                tracing::warn!(
                    step_ms = step,
                    "wall clock stepped by {:+.1} s; re-basing notification retry times",
                    step as f64 / 1000.0
                );
                if let Err(e) = self.db(move |s| s.outbox_shift(step)).await {
                    tracing::warn!("notify: re-basing the outbox: {e}");
                }
            }
        }
        self.last_seen = Some((wall, mono));
    }

    /// Changes how often open incidents are re-sent to Alertmanager targets (default 60 s).
    pub fn with_alertmanager_refresh(mut self, every: Duration) -> Self {
        self.refresh = every;
        self
    }

    /// The engine calls `notify_one()` on it after writing outbox rows: the next delivery round
    /// starts at once (a poke during a round is kept and starts another round right after).
    pub fn poke_handle(&self) -> Arc<Notify> {
        self.poke.clone()
    }

    /// Delivers until `cancel` fires. An in-flight request is abandoned on cancel; its row stays
    /// due and is sent again after the restart (receivers dedup by `Idempotency-Key`).
    pub async fn run(mut self, cancel: CancellationToken) {
        tracing::info!(targets = self.targets.len(), "notifier started");
        self.targets_rx.mark_unchanged();
        let mut reloaded = false;
        loop {
            // `changed()` below marks the new list seen: `reloaded` remembers it.
            if std::mem::take(&mut reloaded) || self.targets_rx.has_changed().unwrap_or(false) {
                let new = self.targets_rx.borrow_and_update().clone();
                self.apply_targets(new).await;
            }
            self.detect_clock_step().await;
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.round() => {}
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.poke.notified() => {}
                r = self.targets_rx.changed() => reloaded = r.is_ok(),
                _ = tokio::time::sleep(self.tick) => {}
            }
        }
        tracing::info!("notifier stopped");
    }

    async fn db<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(r) => r,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// One delivery round: due rows in creation order, one at a time.
    async fn round(&mut self) {
        self.update_pending().await;
        // Shared store: only the lease holder delivers (its outbox writes are fenced too).
        if !self.store.is_leader() {
            // The new leader owns the outbox now.
            self.unmarked.clear();
            return;
        }
        if !self.mark_unmarked().await {
            return;
        }
        let now = self.now_ms();
        let mono = Instant::now();
        self.hold.retain(|_, until| *until > mono);
        let mut due = match self
            .db(move |s| s.due_outbox_within(now, HORIZON_MS, BATCH))
            .await
        {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!("notify: due_outbox: {e}");
                return;
            }
        };
        due.sort_by_key(|i| i.id);
        let mut incidents: HashMap<i64, Option<Incident>> = HashMap::new();
        for item in due {
            if let Err(e) = self.deliver_one(&item, &mut incidents).await {
                tracing::warn!(outbox_id = item.id, "notify: {e}");
            }
        }
        self.refresh_alertmanager().await;
        self.update_pending().await;
    }

    /// Writes the "delivered" marks that failed earlier; false while the store still fails.
    async fn mark_unmarked(&mut self) -> bool {
        let marks: Vec<(i64, UnixMillis)> = self.unmarked.iter().map(|(k, v)| (*k, *v)).collect();
        for (id, at) in marks {
            match self.db(move |s| s.outbox_delivered(id, at)).await {
                Ok(()) => {
                    self.unmarked.remove(&id);
                }
                Err(e) => {
                    tracing::warn!(outbox_id = id, "notify: delivered mark still failing: {e}");
                    return false;
                }
            }
        }
        true
    }

    async fn update_pending(&self) {
        match self.db(|s| s.outbox_pending()).await {
            Ok(n) => self
                .metrics
                .pending
                .set(i64::try_from(n).unwrap_or(i64::MAX)),
            Err(e) => tracing::warn!("notify: outbox_pending: {e}"),
        }
    }

    async fn deliver_one(
        &mut self,
        item: &OutboxItem,
        incidents: &mut HashMap<i64, Option<Incident>>,
    ) -> Result<(), StoreError> {
        let id = item.id;
        if self.unmarked.contains_key(&id) {
            return Ok(());
        }
        // Scheduled for later by this run (monotonic): whatever the stored wall time says.
        if self
            .hold
            .get(&id)
            .is_some_and(|&until| until > Instant::now())
        {
            return Ok(());
        }
        let Some(target) = self.targets.get(&item.target) else {
            if self.removed.contains(&item.target) {
                let name = item.target.clone();
                self.metrics.dropped(&name, 1);
                tracing::info!(target_name = %name, outbox_id = id, "notification for a removed target dropped");
                return self.db(move |s| s.outbox_drop(id)).await;
            }
            let err = format!(
                "notify target `{}` is not configured; kept in the outbox",
                item.target
            );
            return self.later(id, Instant::now() + ms(PARKED_MS), err).await;
        };
        // An earlier row of this target failed in this round or is still backing off: keep the
        // order and don't hammer a receiver that is down.
        if let Some(&until) = self.backing_off.get(&item.target) {
            if until > Instant::now() {
                let err = format!(
                    "deferred: an earlier delivery to `{}` failed; retrying in order",
                    item.target
                );
                return self.later(id, until, err).await;
            }
        }
        if !incidents.contains_key(&item.incident_id) {
            let iid = item.incident_id;
            let inc = self.db(move |s| s.get(iid)).await?;
            incidents.insert(iid, inc);
        }
        let incident = incidents.get(&item.incident_id).and_then(Option::as_ref);
        let Some(incident) = incident else {
            let err = format!("incident {} no longer exists", item.incident_id);
            return self.later(id, Instant::now() + ms(PARKED_MS), err).await;
        };
        let Some(event) = incident.events.iter().find(|e| e.id == item.event_id) else {
            let err = format!(
                "event {} is not in the timeline of incident {}",
                item.event_id, item.incident_id
            );
            return self.later(id, Instant::now() + ms(PARKED_MS), err).await;
        };
        // Quiet hours: a warning waits in the outbox (not an attempt, no backoff, later rows of
        // the target go on); critical incidents are sent at once.
        if incident.severity != Severity::Critical {
            let now = self.now_ms();
            if let Some(end) = target.quiet.and_then(|q| q.ends_after(now)) {
                // Looked at again at least every PARKED_MS (a reload may lift the quiet hours).
                let next = end.min(now + PARKED_MS);
                let note = format!(
                    "quiet hours of `{}` until {} (Asia/Ho_Chi_Minh)",
                    item.target,
                    crate::localtime::format_local(end)
                );
                return self.db(move |s| s.outbox_defer(id, next, &note)).await;
            }
        }
        let body = match target.cfg.kind {
            NotifyKind::Webhook => webhook_payload(item, incident, event),
            NotifyKind::Alertmanager => Value::Array(vec![alertmanager_alert(
                incident,
                &event.message,
                self.now_ms(),
            )]),
        };
        let name = target.cfg.name.clone();
        match self.post(target, Some(&item.idempotency_key), &body).await {
            Ok(()) => {
                let at = self.now_ms();
                self.backing_off.remove(&name);
                self.hold.remove(&id);
                self.metrics.delivered(&name, at);
                tracing::debug!(target_name = %name, key = %item.idempotency_key, "notification delivered");
                let marked = self.db(move |s| s.outbox_delivered(id, at)).await;
                if marked.is_err() && self.unmarked.len() < MAX_UNMARKED {
                    self.unmarked.insert(id, at);
                }
                marked
            }
            Err(err) => {
                let until = Instant::now() + ms(backoff_ms(item.attempts));
                self.backing_off.insert(name.clone(), until);
                self.metrics.failed(&name);
                tracing::warn!(
                    target_name = %name,
                    key = %item.idempotency_key,
                    attempt = item.attempts + 1,
                    "notification failed: {err}"
                );
                self.hold.remove(&id);
                self.later(id, until, err).await
            }
        }
    }

    /// Records an attempt that did not deliver and holds the row until `until` (monotonic);
    /// the stored time is its wall-clock equivalent. A row already held is not written again.
    async fn later(&mut self, id: i64, until: Instant, err: String) -> Result<(), StoreError> {
        if self.hold.contains_key(&id) {
            return Ok(());
        }
        self.hold.insert(id, until);
        let next = self.wall_at(until);
        self.db(move |s| s.outbox_failed(id, next, &err)).await
    }

    /// POSTs `body`; Err is a secret-free error text.
    async fn post(
        &self,
        target: &Target,
        idempotency_key: Option<&str>,
        body: &Value,
    ) -> Result<(), String> {
        let mut req = self
            .client
            .post(target.endpoint())
            .timeout(target.cfg.timeout.0)
            .json(body);
        if let Some(key) = idempotency_key {
            req = req.header("Idempotency-Key", header_safe(key));
        }
        if let Some(token) = &target.token {
            req = req.bearer_auth(&token.0);
        }
        let mut resp = req.send().await.map_err(error_text)?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let mut snippet = Vec::new();
        while snippet.len() < ERROR_BODY_BYTES {
            match resp.chunk().await {
                Ok(Some(c)) => snippet.extend_from_slice(&c),
                _ => break,
            }
        }
        snippet.truncate(ERROR_BODY_BYTES);
        let text: String = String::from_utf8_lossy(&snippet)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let text = text.trim();
        Err(if text.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {text}")
        })
    }

    /// Re-sends every open incident to each Alertmanager target so it does not expire there.
    async fn refresh_alertmanager(&mut self) {
        let due = self
            .last_refresh
            .is_none_or(|t| t.elapsed() >= self.refresh);
        let am: Vec<String> = self
            .targets
            .values()
            .filter(|t| t.cfg.kind == NotifyKind::Alertmanager)
            .map(|t| t.cfg.name.clone())
            .collect();
        if !due || am.is_empty() {
            return;
        }
        self.last_refresh = Some(Instant::now());
        let open = match self.db(|s| s.unresolved()).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("notify: unresolved incidents: {e}");
                return;
            }
        };
        let mut full = Vec::with_capacity(open.len());
        for inc in open {
            let id = inc.id;
            match self.db(move |s| s.get(id)).await {
                Ok(Some(i)) => full.push(i),
                Ok(None) => {}
                Err(e) => tracing::warn!("notify: incident {id}: {e}"),
            }
        }
        for name in am {
            if self
                .backing_off
                .get(&name)
                .is_some_and(|&u| u > Instant::now())
            {
                continue;
            }
            let target = &self.targets[&name];
            let now = self.now_ms();
            let alerts: Vec<Value> = full
                .iter()
                .filter(|i| i.state != IncidentState::Resolved)
                .filter(|i| {
                    i.severity == Severity::Critical
                        || target.quiet.is_none_or(|q| q.ends_after(now).is_none())
                })
                .filter(|i| {
                    !targets_for(&i.teams, i.severity, std::slice::from_ref(&target.cfg)).is_empty()
                })
                .map(|i| {
                    let msg = i.events.last().map(|e| e.message.as_str()).unwrap_or("");
                    alertmanager_alert(i, msg, now)
                })
                .collect();
            if alerts.is_empty() {
                continue;
            }
            match self.post(target, None, &Value::Array(alerts)).await {
                Ok(()) => self.metrics.success(&name, self.now_ms()),
                Err(e) => tracing::warn!(target_name = %name, "alertmanager refresh failed: {e}"),
            }
        }
    }
}

/// `{url}/api/v2/alerts`, without a doubled slash.
pub fn alertmanager_url(base: &str) -> String {
    format!("{}/api/v2/alerts", base.trim_end_matches('/'))
}

/// Retry delay after a row's `attempts`-th failure so far (0 = the first attempt failed):
/// 1 s, 2 s, 4 s … capped at 5 min, plus up to 10 % jitter.
pub fn backoff_ms(attempts: u32) -> i64 {
    let base = (BACKOFF_BASE_MS << attempts.min(20)).min(BACKOFF_MAX_MS);
    base + rand::rng().random_range(0..=base / 10)
}

/// The generic webhook body.
pub fn webhook_payload(item: &OutboxItem, incident: &Incident, event: &IncidentEvent) -> Value {
    json!({
        "idempotency_key": item.idempotency_key,
        "event": {
            "id": event.id,
            "kind": event.kind,
            "at": format_rfc3339(event.at),
            "check": event.check,
            "state": event.state,
            "message": event.message,
            "evidence": event.evidence,
        },
        "incident": {
            "id": incident.id,
            "key": incident.key,
            "title": incident.title,
            "title_en": incident.title_en,
            "severity": incident.severity,
            "scope": incident.scope,
            "state": incident.state,
            "sites": incident.sites,
            "service": incident.service,
            "teams": incident.teams,
            "started_at": format_rfc3339(incident.started_at),
            "acknowledged_at": incident.acknowledged_at.map(format_rfc3339),
            "acknowledged_by": incident.acknowledged_by,
            "assigned_to": incident.assigned_to,
            "resolved_at": incident.resolved_at.map(format_rfc3339),
        },
    })
}

/// One Alertmanager v2 alert for an incident. `endsAt` is the resolution time once resolved,
/// otherwise `now` + 5 min (the alert is re-sent before then while the incident is open).
pub fn alertmanager_alert(incident: &Incident, description: &str, now: UnixMillis) -> Value {
    // The same identity as the `lienthong_incident_open` series the shipped paging rule fires
    // on, so Alertmanager deduplicates when both paths are on. Only for site incidents does
    // `site` appear: the label set must not change while the incident lives.
    let row = crate::incidents::open_series::OpenRow {
        id: incident.id,
        title: incident.title.clone(),
        title_en: incident.title_en.clone(),
        key: incident.key.clone(),
        severity: incident.severity,
        scope: incident.scope,
        teams: incident.teams.clone(),
        site: match (incident.scope, incident.sites.as_slice()) {
            (Scope::Site, [site]) => Some(site.clone()),
            _ => None,
        },
        service: incident.service.clone(),
        former_province: None,
    };
    let labels: serde_json::Map<String, Value> = crate::incidents::open_series::alert_labels(&row)
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::String(v)))
        .collect();
    let ends_at = match incident.resolved_at {
        Some(r) => r,
        None => now + ALERT_TTL_MS,
    };
    json!({
        "labels": labels,
        "annotations": {
            "summary": incident.title,
            "summary_en": incident.title_en,
            "description": description,
            "sites": sites_summary(&incident.sites),
        },
        "startsAt": format_rfc3339(incident.started_at),
        "endsAt": format_rfc3339(ends_at),
    })
}

/// "a, b, c" — at most 50 names, then "… và N nơi khác".
pub fn sites_summary(sites: &[String]) -> String {
    let mut s = sites
        .iter()
        .take(SITES_IN_SUMMARY)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if sites.len() > SITES_IN_SUMMARY {
        s.push_str(&format!(
            ", … và {} nơi khác",
            sites.len() - SITES_IN_SUMMARY
        ));
    }
    s
}

fn severity_str(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::Warning => "warning",
    }
}

/// Header values must be visible ASCII: percent-encode anything else (non-ASCII target names).
fn header_safe(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if (0x21..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The error and its causes, without the URL.
fn error_text(e: reqwest::Error) -> String {
    let timeout = e.is_timeout();
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    if timeout && !text.contains("timed out") {
        text.push_str(" (timed out)");
    }
    text
}

fn to_ms(t: SystemTime) -> UnixMillis {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Whether a reload changed nothing of a target (Serialize gives every field).
fn same_target(a: &NotifyTarget, b: &NotifyTarget) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}

fn ms(n: i64) -> Duration {
    Duration::from_millis(u64::try_from(n).unwrap_or(0))
}

/// Targets by name, with their bearer tokens read from the environment (a missing variable is
/// logged by name and the target is used without a token).
fn build_targets(targets: Vec<NotifyTarget>) -> HashMap<String, Target> {
    targets
        .into_iter()
        .map(|cfg| {
            let token = cfg
                .bearer_token_env
                .as_deref()
                .and_then(|var| match std::env::var(var) {
                    Ok(v) if !v.trim().is_empty() => Some(Secret(v.trim().to_string())),
                    _ => {
                        tracing::warn!(
                            target_name = %cfg.name,
                            "notify: environment variable {var} is not set; sending without a bearer token"
                        );
                        None
                    }
                });
            let quiet = cfg
                .quiet_hours
                .as_deref()
                .and_then(|q| crate::localtime::QuietHours::parse(q).ok());
            (cfg.name.clone(), Target { cfg, token, quiet })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        for (attempts, base) in [
            (0, 1_000),
            (1, 2_000),
            (2, 4_000),
            (8, 256_000),
            (9, 300_000),
            (40, 300_000),
        ] {
            let b = backoff_ms(attempts);
            assert!(b >= base && b <= base + base / 10, "{attempts}: {b}");
        }
    }

    #[test]
    fn sites_summary_caps_at_fifty() {
        let sites: Vec<String> = (0..168).map(|i| format!("s{i}")).collect();
        let s = sites_summary(&sites);
        assert!(s.starts_with("s0, s1, "));
        assert!(s.ends_with("s49, … và 118 nơi khác"), "{s}");
        assert_eq!(sites_summary(&sites[..2]), "s0, s1");
    }

    #[test]
    fn header_safe_encodes_non_ascii() {
        assert_eq!(header_safe("12:hook"), "12:hook");
        assert_eq!(header_safe("1:tổ"), "1:t%E1%BB%95");
    }

    #[test]
    fn alertmanager_url_trims_slash() {
        assert_eq!(
            alertmanager_url("http://am:9093/"),
            "http://am:9093/api/v2/alerts"
        );
        assert_eq!(
            alertmanager_url("http://am:9093"),
            "http://am:9093/api/v2/alerts"
        );
    }
}
