//! The single writer of run results: every finished probe goes through [`Engine::record`], which
//! updates metrics and the live state and logs state changes.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::CheckDef;
use crate::metrics::Metrics;
use crate::probe::Outcome;
use crate::scheduler::ResultSink;
use crate::state::LiveState;

pub struct Engine {
    pub metrics: Arc<Metrics>,
    pub state: Arc<LiveState>,
}

impl ResultSink for Engine {
    fn record(&self, check: &CheckDef, outcome: Outcome, finished: SystemTime) -> Option<Duration> {
        self.metrics.record(check, &outcome, finished);
        let was_failing = self
            .state
            .check(&check.id)
            .and_then(|s| s.last)
            .map(|l| !l.success);
        if let Some(f) = &outcome.failure {
            if was_failing != Some(true) {
                tracing::info!(check = %check.id, reason = %f.reason, error = %f.message, "check failing");
            } else {
                tracing::debug!(check = %check.id, reason = %f.reason, error = %f.message, "check still failing");
            }
        } else if was_failing == Some(true) {
            tracing::info!(check = %check.id, "check recovered");
        }
        self.state.record(&check.id, &outcome, finished);
        None
    }
}
