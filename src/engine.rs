//! The single writer of run results: every finished probe goes through [`Engine::record`], which
//! updates metrics and the live state, feeds the health state machines and the incident engine,
//! and returns the confirm-fast delay to the scheduler.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::config::{CheckDef, Inventory};
use crate::incidents::engine::IncidentEngine;
use crate::metrics::Metrics;
use crate::probe::Outcome;
use crate::scheduler::ResultSink;
use crate::state::LiveState;

pub struct Engine {
    pub metrics: Arc<Metrics>,
    pub state: Arc<LiveState>,
    pub incidents: Mutex<IncidentEngine>,
    /// Poked whenever incident events were written (the notifier delivers them).
    pub outbox_poke: Arc<tokio::sync::Notify>,
    /// Per-minute availability rollups, flushed to the store by the service.
    pub history: Arc<crate::history::Recorder>,
}

impl Engine {
    fn lock(&self) -> std::sync::MutexGuard<'_, IncidentEngine> {
        self.incidents.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Periodic work: holds expire, maintenance windows begin and end; refresh every site.
    pub fn tick(&self, now: SystemTime) {
        let mut inc = self.lock();
        inc.tick(now);
        for (site, st) in inc.site_statuses(now) {
            self.state.set_site_status(&site, st);
            self.metrics.set_site_status(&site, st);
        }
        self.publish_counts(&mut inc);
    }

    pub fn refresh_maintenance(&self, now: SystemTime) {
        self.lock().refresh_maintenance(now);
        self.tick(now);
    }

    pub fn set_inventory(&self, inv: Arc<Inventory>) {
        self.lock().set_inventory(inv);
    }

    fn publish_counts(&self, inc: &mut IncidentEngine) {
        let opened = std::mem::take(&mut inc.opened);
        if !opened.is_empty() {
            self.outbox_poke.notify_one();
        }
        for (sev, scope) in opened {
            self.metrics.incident_opened(sev, scope);
        }
        self.metrics.set_open_incidents(&inc.open_counts());
    }
}

impl ResultSink for Engine {
    fn record(&self, check: &CheckDef, outcome: Outcome, finished: SystemTime) -> Option<Duration> {
        self.metrics.record(check, &outcome, finished);
        if let Some(f) = &outcome.failure {
            tracing::debug!(check = %check.id, reason = %f.reason, error = %f.message, "check failed");
        }
        self.state.record(&check.id, &outcome, finished);
        let mut inc = self.lock();
        let in_maintenance = inc.in_maintenance(
            check.id.site.as_deref(),
            check.id.service.as_deref(),
            finished,
        );
        self.history
            .record(&check.id, &outcome, finished, in_maintenance);
        let next = inc.observe(check, &outcome, finished);
        let health = inc.state_of(&check.id);
        self.state.set_health(&check.id, health);
        self.metrics.set_check_state(check, health);
        if let Some(site) = check.id.site.as_deref() {
            let st = inc.site_status_of(site, finished);
            self.state.set_site_status(site, st);
            self.metrics.set_site_status(site, st);
        }
        self.publish_counts(&mut inc);
        next
    }
}
