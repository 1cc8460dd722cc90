//! The single writer of run results. The scheduler's check tasks hand every finished run to a
//! bounded queue ([`ResultQueue`]) and go straight back to their timers; one dedicated OS
//! thread ([`Engine::spawn_writer`]) drains it and updates metrics, the live state, the
//! availability recorder, health and the incident engine (SQLite writes included). Nothing
//! CPU-heavy or blocking runs on the probes' runtime threads, and the probes' timing never waits
//! for the writer: a confirm-fast re-run request travels back on a oneshot channel the check
//! task listens to while it sleeps.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};

use crate::config::CheckDef;
use crate::config::Inventory;
use crate::incidents::correlation::IncidentEngine;
use crate::metrics::Metrics;
use crate::probe::Outcome;
use crate::state::LiveState;

/// One finished run, on its way to the writer.
pub struct FinishedRun {
    pub check: Arc<CheckDef>,
    pub outcome: Outcome,
    pub finished: SystemTime,
    /// Where to send an early re-run request (confirm-fast); dropped when none is wanted.
    pub rerun: Option<oneshot::Sender<Duration>>,
}

/// The sending side of the result queue (cheap to clone; one per scheduler generation).
pub type ResultQueue = mpsc::Sender<FinishedRun>;

/// Results waiting for the writer at most; a full queue makes check tasks wait (backpressure)
/// rather than drop results. At 1,000 results/s this is seconds of slack.
pub const QUEUE_CAPACITY: usize = 16_384;

/// Results the writer takes per lock of the incident engine.
const BATCH: usize = 256;

/// Pause of the writer after a batch that did not fill up.
const GATHER: Duration = Duration::from_millis(10);

pub struct Engine {
    pub metrics: Arc<Metrics>,
    pub state: Arc<LiveState>,
    pub incidents: Mutex<IncidentEngine>,
    /// Poked whenever incident events were written (the notifier delivers them).
    pub outbox_poke: Arc<tokio::sync::Notify>,
    /// Per-minute availability rollups, flushed to the store by the service.
    pub history: Arc<crate::availability::Recorder>,
    /// The open-incident generation last published to the gauges.
    published: std::sync::atomic::AtomicU64,
    /// `lienthong_incident_open`, refreshed whenever the open set changes.
    pub open_series: Arc<crate::incidents::open_series::OpenIncidentSeries>,
    /// Set by a config load (the metrics reload reset the site gauges): the next tick
    /// publishes every site's status, not only the changed ones.
    republish_sites: std::sync::atomic::AtomicBool,
    /// This instance runs the incident engine (always on SQLite; the lease holder on a shared
    /// store, set by [`Engine::set_leading`] once the engine is restored).
    leading: std::sync::atomic::AtomicBool,
    queue_metrics: QueueMetrics,
}

/// `lienthong_store_queued_writes` and `lienthong_store_queued_writes_dropped_total{reason}`.
struct QueueMetrics {
    queued: prometheus::IntGauge,
    dropped: prometheus::IntCounterVec,
}

impl QueueMetrics {
    fn new(registry: &prometheus::Registry) -> QueueMetrics {
        let queued = prometheus::IntGauge::new(
            "lienthong_store_queued_writes",
            "Incident writes queued in memory while the store fails, waiting for replay.",
        )
        .expect("valid metric definition");
        let dropped = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "lienthong_store_queued_writes_dropped_total",
                "Queued incident writes dropped: overflow (the bounded queue was full) or superseded (another instance led meanwhile).",
            ),
            &["reason"],
        )
        .expect("valid metric definition");
        for r in ["overflow", "superseded"] {
            dropped.with_label_values(&[r]);
        }
        for c in [
            Box::new(queued.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(dropped.clone()),
        ] {
            if let Err(e) = registry.register(c) {
                tracing::error!(error = %e, "cannot register the store queue metrics");
            }
        }
        QueueMetrics { queued, dropped }
    }
}

impl Engine {
    pub fn new(
        metrics: Arc<Metrics>,
        state: Arc<LiveState>,
        incidents: IncidentEngine,
        outbox_poke: Arc<tokio::sync::Notify>,
        history: Arc<crate::availability::Recorder>,
    ) -> Engine {
        let open_series = Arc::new(crate::incidents::open_series::OpenIncidentSeries::new());
        if let Err(e) = metrics
            .registry()
            .register(Box::new(SharedCollector(open_series.clone())))
        {
            tracing::error!(error = %e, "cannot register lienthong_incident_open");
        }
        open_series.set_runbook_base(incidents.runbook_base());
        let queue_metrics = QueueMetrics::new(metrics.registry());
        Engine {
            queue_metrics,
            open_series,
            metrics,
            state,
            incidents: Mutex::new(incidents),
            outbox_poke,
            history,
            published: std::sync::atomic::AtomicU64::new(0),
            republish_sites: std::sync::atomic::AtomicBool::new(true),
            leading: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Whether results go through the incident engine (leader) or only to metrics and the
    /// live state (standby). A leader cut off from the store keeps leading in memory (its
    /// writes queue, the fence refuses them) until a lease round says otherwise.
    pub fn is_leading(&self) -> bool {
        self.leading.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Standby → leader: restores the engine from the store first. Leader → standby: stops
    /// at once (the fence already refuses its writes); queued writes are dropped (counted as
    /// superseded).
    pub fn set_leading(
        &self,
        leading: bool,
        now: SystemTime,
    ) -> Result<(), crate::incidents::StoreError> {
        if !leading {
            self.step_down();
            return Ok(());
        }
        if self.is_leading() {
            return Ok(());
        }
        self.lead(now)
    }

    /// Leads from the stored state: a new engine restored from the store, as at a restart.
    /// Writes the old engine still had queued are superseded (another instance led in between
    /// and re-derived the state from its own probes): logged and counted.
    pub fn lead(&self, now: SystemTime) -> Result<(), crate::incidents::StoreError> {
        use std::sync::atomic::Ordering;
        let mut inc = self.lock();
        let restored = inc.takeover(now)?;
        let old = std::mem::replace(&mut *inc, restored);
        self.superseded(old.deferred_len());
        self.publish_counts(&mut inc);
        self.leading.store(true, Ordering::Release);
        drop(inc);
        self.published.store(0, Ordering::Relaxed);
        self.republish_sites.store(true, Ordering::Relaxed);
        self.outbox_poke.notify_one();
        Ok(())
    }

    /// Leader → standby; returns the queued writes dropped.
    pub fn step_down(&self) -> usize {
        self.leading
            .store(false, std::sync::atomic::Ordering::Release);
        let mut inc = self.lock();
        let n = inc.drop_deferred();
        self.superseded(n);
        self.publish_counts(&mut inc);
        n
    }

    /// Stops leader work at shutdown; returns the queued writes left unwritten.
    pub fn stop(&self) -> usize {
        self.leading
            .store(false, std::sync::atomic::Ordering::Release);
        self.lock().deferred_len()
    }

    fn superseded(&self, n: usize) {
        if n > 0 {
            tracing::warn!(
                writes = n,
                "queued incident writes superseded: another instance led meanwhile and re-derived the incidents from its own probes"
            );
            self.queue_metrics
                .dropped
                .with_label_values(&["superseded"])
                .inc_by(n as u64);
        }
    }

    /// The other vantage points' votes per check (leader on a shared store).
    pub fn set_remote_votes(
        &self,
        votes: &std::collections::HashMap<String, crate::incidents::vantage::Votes>,
        now: SystemTime,
    ) {
        if !self.is_leading() {
            return;
        }
        let mut inc = self.lock();
        inc.set_remote_votes(votes, now);
        self.publish_counts(&mut inc);
    }

    /// Incident writes queued while the store fails (waiting for replay).
    pub fn queued_writes(&self) -> usize {
        self.lock().deferred_len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IncidentEngine> {
        self.incidents.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the writer thread; it ends when every [`ResultQueue`] sender is dropped and the
    /// queue is drained.
    pub fn spawn_writer(
        self: &Arc<Self>,
    ) -> std::io::Result<(ResultQueue, std::thread::JoinHandle<()>)> {
        let (tx, mut rx) = mpsc::channel::<FinishedRun>(QUEUE_CAPACITY);
        let engine = self.clone();
        let handle = std::thread::Builder::new()
            .name("lienthong-writer".into())
            .spawn(move || {
                let mut batch = Vec::with_capacity(BATCH);
                while let Some(first) = rx.blocking_recv() {
                    batch.push(first);
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(r) => batch.push(r),
                            Err(_) => break,
                        }
                    }
                    let full = batch.len() == BATCH;
                    engine.record_batch(&mut batch);
                    // Let results gather instead of waking per result (~1,000/s at national
                    // scale): every wake-up costs a futex round trip on both sides. Confirm-fast
                    // re-runs wait this much longer at most; a full batch goes on at once.
                    if !full {
                        std::thread::sleep(GATHER);
                    }
                }
            })?;
        Ok((tx, handle))
    }

    /// Writes a batch of runs (drains `batch`).
    pub fn record_batch(&self, batch: &mut Vec<FinishedRun>) {
        let mut inc = self.lock();
        for run in batch.drain(..) {
            let next = self.record_one(&mut inc, &run.check, &run.outcome, run.finished);
            if let (Some(d), Some(tx)) = (next, run.rerun) {
                let _ = tx.send(d);
            }
        }
        self.publish_counts(&mut inc);
    }

    fn record_one(
        &self,
        inc: &mut IncidentEngine,
        check: &CheckDef,
        outcome: &Outcome,
        finished: SystemTime,
    ) -> Option<Duration> {
        // A result queued before a reload removed its check must not bring its series back.
        if !inc.is_current(check) {
            return None;
        }
        self.metrics.record(check, outcome, finished);
        if !self.is_leading() {
            // Standby: probes and metrics go on; the leader owns health and incidents.
            self.state.record(&check.id, outcome, finished);
            return None;
        }
        if let Some(f) = &outcome.failure {
            tracing::debug!(check = %check.id, reason = %f.reason, error = %f.message, "check failed");
        }
        self.state.record(&check.id, outcome, finished);
        let in_maintenance = inc.in_maintenance(
            check.id.site.as_deref(),
            check.id.service.as_deref(),
            finished,
        );
        let blind = inc.monitor_blind();
        self.history
            .record(&check.id, outcome, finished, in_maintenance, blind);
        let before = inc.state_of(&check.id);
        let next = inc.observe(check, outcome, finished);
        if check.role == crate::config::CheckRole::Link {
            if let Some(site) = check.id.site.as_deref() {
                self.metrics
                    .set_link_baseline(site, inc.rtt_baseline(&check.id));
            }
        }
        let health = inc.state_of(&check.id);
        if health != before || before == crate::health::State::Unknown {
            self.state.set_health(&check.id, health);
            self.metrics.set_check_state(check, health);
            if let Some(site) = check.id.site.as_deref() {
                let st = inc.site_status_of(site, finished);
                self.state.set_site_status(site, st);
                self.metrics.set_site_status(site, st);
            }
        }
        next
    }

    /// Periodic work: holds expire, maintenance windows begin and end; refresh every site.
    pub fn tick(&self, now: SystemTime) {
        if !self.is_leading() {
            return;
        }
        let mut inc = self.lock();
        inc.tick(now);
        let all = self
            .republish_sites
            .swap(false, std::sync::atomic::Ordering::Relaxed);
        for (site, st) in inc.site_statuses(now) {
            if all || self.state.site_status(&site) != st {
                self.state.set_site_status(&site, st);
                self.metrics.set_site_status(&site, st);
            }
        }
        self.publish_counts(&mut inc);
    }

    /// A ward report (see [`IncidentEngine::report`]); `None`: unknown site.
    pub fn report(
        &self,
        r: &crate::incidents::correlation::WardReport,
        now: SystemTime,
    ) -> Result<Option<crate::incidents::correlation::ReportOutcome>, crate::incidents::StoreError>
    {
        let mut inc = self.lock();
        let out = inc.report(r, now);
        self.publish_counts(&mut inc);
        // The report's timeline line is notified like any other event.
        self.outbox_poke.notify_one();
        out
    }

    /// Closes an open `reported` incident.
    pub fn close_report(
        &self,
        id: i64,
        by: &str,
        now: SystemTime,
    ) -> Result<crate::incidents::correlation::CloseReport, crate::incidents::StoreError> {
        let mut inc = self.lock();
        let out = inc.close_report(id, by, now);
        self.publish_counts(&mut inc);
        self.outbox_poke.notify_one();
        out
    }

    pub fn refresh_maintenance(&self, now: SystemTime) {
        self.lock().refresh_maintenance(now);
        self.tick(now);
    }

    pub fn set_inventory(&self, inv: Arc<Inventory>) {
        let mut inc = self.lock();
        inc.set_inventory(inv);
        self.open_series.set_runbook_base(inc.runbook_base());
        // Incidents of removed checks ended: publish now, not at the next result.
        self.publish_counts(&mut inc);
        drop(inc);
        // Gauges of removed sites were reset by the metrics reload: publish everything again.
        self.published
            .store(0, std::sync::atomic::Ordering::Relaxed);
        self.republish_sites
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn publish_counts(&self, inc: &mut IncidentEngine) {
        let opened = std::mem::take(&mut inc.opened);
        if !opened.is_empty() || std::mem::take(&mut inc.escalated) > 0 {
            self.outbox_poke.notify_one();
        }
        for (sev, scope) in opened {
            self.metrics.incident_opened(sev, scope);
        }
        self.metrics
            .monitor_blind
            .set(i64::from(inc.monitor_blind()));
        let overflow = std::mem::take(&mut inc.deferred_dropped);
        if overflow > 0 {
            self.queue_metrics
                .dropped
                .with_label_values(&["overflow"])
                .inc_by(overflow);
        }
        self.queue_metrics.queued.set(inc.deferred_len() as i64);
        let generation = inc.open_generation();
        if self
            .published
            .swap(generation, std::sync::atomic::Ordering::Relaxed)
            != generation
        {
            self.metrics.set_open_incidents(&inc.open_counts());
            self.open_series.set(inc.open_rows());
        }
    }
}

/// Registers an `Arc`-shared collector (the registry takes ownership of a box).
struct SharedCollector(Arc<crate::incidents::open_series::OpenIncidentSeries>);

impl prometheus::core::Collector for SharedCollector {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.0.desc()
    }
    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.0.collect()
    }
}
