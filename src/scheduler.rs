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
    on_demand: Arc<OnDemand>,
}

/// Runs a check of the running schedule *now* (the pre-conference sweep): the scheduler's own
/// built probe, under the same global and per-site semaphores, and the result goes to the same
/// writer queue as a scheduled run (health, history and incidents see it). One per scheduler
/// generation: a reload replaces it.
pub struct OnDemand {
    global: Arc<Semaphore>,
    per_site: HashMap<String, Arc<Semaphore>>,
    checks: HashMap<String, (Arc<CheckDef>, Arc<Probe>)>,
    sink: ResultQueue,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
}

impl OnDemand {
    /// The check with this key (`site/<slug>/<name>`), if the schedule has it.
    pub fn check(&self, key: &str) -> Option<&Arc<CheckDef>> {
        self.checks.get(key).map(|(c, _)| c)
    }

    /// Runs the check now within the concurrency caps and records the result like a scheduled
    /// run. `None` when the check is not in this schedule or the scheduler is stopping.
    pub async fn run(&self, key: &str) -> Option<Outcome> {
        let (check, probe) = self.checks.get(key)?;
        let limits = Limits {
            global: self.global.clone(),
            site: self.per_site.get(check.id.owner())?.clone(),
        };
        let permits = tokio::select! {
            p = acquire(&limits) => p?,
            _ = self.cancel.cancelled() => return None,
        };
        self.metrics.in_flight.inc();
        let outcome = tokio::time::timeout(
            check.timeout + HARD_TIMEOUT_SLACK,
            Box::pin(probe.run(check.timeout)),
        )
        .await
        .unwrap_or_else(|_| {
            Outcome::fail(
                crate::probe::Reason::Timeout,
                format!(
                    "run abandoned after {:?}",
                    check.timeout + HARD_TIMEOUT_SLACK
                ),
                Default::default(),
            )
        });
        self.metrics.in_flight.dec();
        drop(permits);
        let finished = FinishedRun {
            check: check.clone(),
            outcome: outcome.clone(),
            finished: SystemTime::now(),
            rerun: None,
        };
        if let Err(tokio::sync::mpsc::error::TrySendError::Full(r)) = self.sink.try_send(finished) {
            let _ = self.sink.send(r).await;
        }
        Some(outcome)
    }
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
        for c in inv.checks.iter().filter(|c| !c.id.runs_at_ward()) {
            built.push((c.clone(), Arc::new(c.probe.build(&c.build_context())?)));
        }
        let mut tasks = JoinSet::new();
        let start = Instant::now();
        let mut on_demand = HashMap::with_capacity(built.len());
        for (check, probe) in built {
            on_demand.insert(check.id.key(), (check.clone(), probe.clone()));
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
        let on_demand = Arc::new(OnDemand {
            global,
            per_site,
            checks: on_demand,
            sink,
            metrics,
            cancel: cancel.clone(),
        });
        Ok(Scheduler {
            cancel,
            tasks,
            on_demand,
        })
    }

    /// The handle that runs this schedule's checks now (see [`OnDemand`]).
    pub fn on_demand(&self) -> Arc<OnDemand> {
        self.on_demand.clone()
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
        // Boxed: a run's state (permits, the probe's future, the result on its way to the
        // queue) is ~1–8 KiB and exists only while it runs; an idle task (most of them, most
        // of the time) holds just its timer.
        let run = Box::pin(run_once(
            &check, &probe, planned, &limits, &sink, &metrics, &cancel,
        ));
        match run.await {
            Some(rx) => rerun = Some(rx),
            None => return,
        }
        let now = Instant::now();
        let mut next = planned + check.interval;
        // After a long stall, skip missed runs instead of firing them back to back.
        while next <= now {
            next += check.interval;
        }
        planned = next;
    }
}

/// One run: permits, the probe, the hand-over to the writer. `None` when the scheduler is
/// stopping (cancelled, or the queue closed); else where an early re-run request will arrive.
async fn run_once(
    check: &Arc<CheckDef>,
    probe: &Probe,
    planned: Instant,
    limits: &Limits,
    sink: &ResultQueue,
    metrics: &Metrics,
    cancel: &CancellationToken,
) -> Option<tokio::sync::oneshot::Receiver<Duration>> {
    let permits = tokio::select! {
        p = acquire(limits) => p,
        _ = cancel.cancelled() => return None,
    };
    let _permits = permits?;
    let started = Instant::now();
    metrics
        .lag
        .observe(started.saturating_duration_since(planned).as_secs_f64());
    metrics.in_flight.inc();
    let run = tokio::time::timeout(check.timeout + HARD_TIMEOUT_SLACK, probe.run(check.timeout));
    let outcome = tokio::select! {
        r = run => r.unwrap_or_else(|_| Outcome::fail(
            crate::probe::Reason::Timeout,
            format!("run abandoned after {:?}", check.timeout + HARD_TIMEOUT_SLACK),
            Default::default(),
        )),
        _ = cancel.cancelled() => { metrics.in_flight.dec(); return None; }
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
            sink.send(r).await.ok()?;
        }
        Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => return None,
    }
    Some(rx)
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
