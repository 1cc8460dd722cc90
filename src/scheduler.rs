//! Runs every check at its interval with its timeout.
//!
//! One task per check. First runs are spread over the interval by a hash of the check id, so
//! 168 × N checks never fire as one burst. A global semaphore and one per site cap concurrency;
//! a hung target only holds its own task (every run is bounded by its timeout). Finished runs go
//! to the engine's writer through a bounded queue; the task does not wait for the writer. The
//! writer may ask for an early re-run (confirm-fast) on a oneshot the task listens to while it
//! sleeps.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{CheckDef, Inventory};
use crate::metrics::Metrics;
use crate::probe::{Outcome, Probe};
use crate::result_writer::{FinishedRun, ResultQueue};

/// A running set of check tasks; dropping it does not stop them, [`Scheduler::stop`] does.
pub struct Scheduler {
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

/// Slack added to a probe's own timeout before the scheduler abandons it: a safety net only.
const HARD_TIMEOUT_SLACK: Duration = Duration::from_secs(1);

impl Scheduler {
    /// Builds every probe and starts one task per check. Fails only if a probe cannot be built
    /// (the config was validated, so this means the environment changed, e.g. a CA file vanished).
    pub fn start(
        inv: &Inventory,
        sink: ResultQueue,
        metrics: Arc<Metrics>,
        parent: &CancellationToken,
    ) -> Result<Scheduler, crate::probe::BuildError> {
        let cancel = parent.child_token();
        let global = Arc::new(Semaphore::new(inv.scheduler.max_concurrency));
        let mut per_site: HashMap<String, Arc<Semaphore>> = HashMap::new();
        let mut built = Vec::with_capacity(inv.checks.len());
        // Agent-run copies of service checks are run by the ward agents, not here.
        for c in inv.checks.iter().filter(|c| !c.id.is_agent()) {
            built.push((
                Arc::new(c.clone()),
                Arc::new(c.probe.build(&c.build_context())?),
            ));
        }
        let mut tasks = JoinSet::new();
        let start = Instant::now();
        for (check, probe) in built {
            let site_sem = per_site
                .entry(check.id.owner().to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(inv.scheduler.per_site_concurrency)))
                .clone();
            let first = start + stagger(&check);
            tasks.spawn(run_check(
                check,
                probe,
                first,
                Limits {
                    global: global.clone(),
                    site: site_sem,
                },
                sink.clone(),
                metrics.clone(),
                cancel.clone(),
            ));
        }
        Ok(Scheduler { cancel, tasks })
    }

    /// Stops every task and waits for in-flight probes to end (each is bounded by its timeout).
    pub async fn stop(mut self) {
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Deterministic offset in [0, interval) from a hash of the check id.
pub fn stagger(c: &CheckDef) -> Duration {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    c.id.key().hash(&mut h);
    let interval_ms = c.interval.as_millis().max(1) as u64;
    Duration::from_millis(h.finish() % interval_ms)
}

struct Limits {
    global: Arc<Semaphore>,
    site: Arc<Semaphore>,
}

async fn run_check(
    check: Arc<CheckDef>,
    probe: Arc<Probe>,
    first: Instant,
    limits: Limits,
    sink: ResultQueue,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    let mut planned = first;
    // An early re-run request from the writer for the run just handed over.
    let mut rerun: Option<tokio::sync::oneshot::Receiver<Duration>> = None;
    loop {
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(planned) => break,
                _ = cancel.cancelled() => return,
                d = async { rerun.as_mut().expect("guarded").await }, if rerun.is_some() => {
                    rerun = None;
                    if let Ok(d) = d {
                        planned = planned.min(Instant::now() + d);
                    }
                }
            }
        }
        let permits = tokio::select! {
            p = acquire(&limits) => p,
            _ = cancel.cancelled() => return,
        };
        let Some(_permits) = permits else { return };
        let started = Instant::now();
        metrics
            .lag
            .observe(started.saturating_duration_since(planned).as_secs_f64());
        metrics.in_flight.inc();
        // Boxed: the run future is ~7.5 KiB and would otherwise live in every idle task.
        let run = tokio::time::timeout(
            check.timeout + HARD_TIMEOUT_SLACK,
            Box::pin(probe.run(check.timeout)),
        );
        let outcome = tokio::select! {
            r = run => r.unwrap_or_else(|_| Outcome::fail(
                crate::probe::Reason::Timeout,
                format!("run abandoned after {:?}", check.timeout + HARD_TIMEOUT_SLACK),
                Default::default(),
            )),
            _ = cancel.cancelled() => { metrics.in_flight.dec(); return; }
        };
        metrics.in_flight.dec();
        drop(_permits);
        tracing::trace!(check = %check.id, success = outcome.success, reason = ?outcome.reason(), "probe finished");
        let (tx, rx) = tokio::sync::oneshot::channel();
        let finished = FinishedRun {
            check: check.clone(),
            outcome,
            finished: SystemTime::now(),
            rerun: Some(tx),
        };
        // Waits only when the writer is thousands of results behind (backpressure).
        match sink.try_send(finished) {
            Ok(()) => {}
            Err(tokio::sync::mpsc::error::TrySendError::Full(r)) => {
                tracing::warn!("result queue full: the writer is behind");
                if sink.send(r).await.is_err() {
                    return;
                }
            }
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => return,
        }
        rerun = Some(rx);
        let now = Instant::now();
        let mut next = planned + check.interval;
        // After a long stall, skip missed runs instead of firing them back to back.
        while next <= now {
            next += check.interval;
        }
        planned = next;
    }
}

async fn acquire(
    l: &Limits,
) -> Option<(
    tokio::sync::OwnedSemaphorePermit,
    tokio::sync::OwnedSemaphorePermit,
)> {
    // Site first: a slow site must not hold global permits while it waits for itself.
    let site = l.site.clone().acquire_owned().await.ok()?;
    let global = l.global.clone().acquire_owned().await.ok()?;
    Some((site, global))
}
