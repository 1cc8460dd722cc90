//! Health of one check over time: a pure state machine fed one [`Outcome`] at a time.
//!
//! No IO and no clock: the caller passes `now` (stamped on transitions only) and applies the
//! returned `next_run_in`. Two small machines are composed:
//!
//! - **availability** (did the run pass?): a failure makes the check `Failing` and asks for a
//!   re-probe after `confirm_interval`; `fail_after` consecutive failures, or `fail_in_window` of
//!   the last `window` runs (a flapping target), make it `Down`. It leaves `Down` only after
//!   `recover_after` consecutive passes — hysteresis, so a flapping link is not "recovered" on
//!   its first good run;
//! - **quality** (passing runs only): RTT, jitter or response time over the link class's
//!   thresholds for `degraded_after` consecutive runs, or packet loss judged by a sequential
//!   test (see [`CheckHealth`]), make it `Degraded`; `recover_after` clean runs undo it.
//!
//! The state shown is `Down` or `Failing` when availability says so, else `Degraded` or `Up`.
//!
//! Link rounds also keep an RTT **baseline** (see [`RttBaseline`]): a round whose median RTT
//! rises well above the link's own normal is a breach even under the class's absolute
//! `degraded_rtt` — on island links a latency rise is the first sign of a fallback path.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::config::{CheckDef, CheckRole};
use crate::probe::{Details, Outcome, Reason};

/// Default re-probe delay while a change is being confirmed.
pub const CONFIRM_INTERVAL: Duration = Duration::from_secs(2);
/// Failure texts are cut to this many characters in [`Evidence`].
pub const MESSAGE_MAX: usize = 300;
/// Rounds kept for the human-readable recent loss in [`Evidence::loss_recent`].
const RECENT_ROUNDS: usize = 6;
/// The loss test's "normal" and "degraded" hypotheses, as multiples of the class threshold.
const LOSS_NORMAL: f64 = 0.3;
const LOSS_BAD: f64 = 1.5;
/// Loss evidence (share of `loss_evidence`) at which rounds are re-probed at the confirm interval.
const LOSS_SUSPECT: f64 = 0.2;
/// Passing rounds before the RTT baseline is trusted.
const BASELINE_WARMUP: u32 = 12;
/// Weight of a normal round in the baseline (≈ 100 rounds, a quarter of an hour at 10 s).
const BASELINE_ALPHA: f64 = 0.01;
/// A round over the limit still moves the baseline, 20× slower: a lasting route change becomes
/// the new normal within hours, a fault does not within minutes.
const BASELINE_ALPHA_HIGH: f64 = BASELINE_ALPHA / 20.0;
/// A round's median RTT is a rise when it exceeds baseline + max(K × deviation, the baseline
/// itself, the floor): doubling at least, and never for a few ms on a fast link.
const RISE_DEVIATIONS: f64 = 6.0;
const RISE_FLOOR: Duration = Duration::from_millis(40);
/// Consecutive rising rounds → Degraded. Fewer than `degraded_after` on islands: a round's
/// median is already robust to single late replies.
const RISE_AFTER: u32 = 2;

/// Health of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// No run observed yet.
    #[default]
    Unknown,
    Up,
    /// Passing, but over a latency / RTT / jitter / loss threshold of its class.
    Degraded,
    /// Failed, not confirmed yet: the scheduler re-probes at the confirm interval.
    Failing,
    /// Confirmed failure; stays Down until `recover_after` consecutive passes.
    Down,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Up => "up",
            State::Degraded => "degraded",
            State::Failing => "failing",
            State::Down => "down",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What makes a passing run degraded (the class's `degraded_*`). A zero disables that test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    /// Loss ratio (ICMP / UDP echo rounds).
    pub loss: f64,
    /// Average RTT of a round.
    pub rtt: Duration,
    /// RTT standard deviation of a round.
    pub jitter: Duration,
    /// Whole-run time of HTTP / TCP / DNS checks.
    pub latency: Duration,
}

/// How much evidence moves a check between states.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthPolicy {
    /// Consecutive failed runs → Down.
    pub fail_after: u32,
    /// N of M: Down when at least `fail_in_window` of the last `window` runs failed, which
    /// catches a target that fails every other run and so never `fail_after` in a row.
    /// `window` is capped at 64; 0 in either disables the rule. The window is not cleared on
    /// recovery: a failure while the outage is still in it is Down at once (most likely the
    /// same fault coming back).
    pub window: u32,
    pub fail_in_window: u32,
    /// Consecutive passes to leave Down, and consecutive clean passes to leave Degraded.
    pub recover_after: u32,
    /// Re-probe delay while a change is being confirmed (either way).
    pub confirm_interval: Duration,
    /// Consecutive runs over the RTT / jitter / latency thresholds → Degraded.
    pub degraded_after: u32,
    /// Evidence (log-likelihood ratio, nats) the loss test needs to call loss degraded.
    pub loss_evidence: f64,
    pub degraded: Thresholds,
}

impl HealthPolicy {
    /// Defaults for the check's link class, thresholds from the class (or the check's override).
    ///
    /// Island links (microwave / satellite) have short fades and ~3 % loss as a matter of course,
    /// so they need one more failed run to go Down and much more loss evidence: 10 nats, which
    /// a sustained 15 % loss gathers in ~80 packets (2–3 island rounds of 40 packets) while the
    /// normal 3 % stays quiet (see the 1,000-round tests). Every other class: 2 failures, so an
    /// outage is confirmed one confirm interval after the first failed run.
    pub fn for_check(def: &CheckDef) -> HealthPolicy {
        let d = &def.degraded;
        let degraded = Thresholds {
            loss: d.loss,
            rtt: d.rtt,
            jitter: d.jitter,
            latency: d.latency,
        };
        let confirm_interval = CONFIRM_INTERVAL.min(def.interval);
        let island = def.link_class == "island";
        HealthPolicy {
            fail_after: if island { 3 } else { 2 },
            window: if island { 8 } else { 6 },
            fail_in_window: if island { 4 } else { 3 },
            recover_after: if island { 4 } else { 3 },
            confirm_interval,
            degraded_after: if island { 3 } else { 2 },
            loss_evidence: if island { 10.0 } else { 5.0 },
            degraded,
        }
    }
}

/// A threshold a passing run breached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Breach {
    Loss,
    Rtt,
    /// Median RTT well above the link's own baseline.
    RttRise,
    Jitter,
    Latency,
}

/// What a technician needs to see about the run that caused a transition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// Failure reason (a metric label); `None` for a passing run.
    pub reason: Option<Reason>,
    /// Failure text, at most [`MESSAGE_MAX`] characters.
    pub message: Option<String>,
    /// HTTP status, when one was received.
    pub status: Option<u16>,
    /// Whole-run time.
    pub duration: Duration,
    pub rtt_avg: Option<Duration>,
    /// Median RTT of the round and the link's baseline (what "normal" is for this link).
    pub rtt_median: Option<Duration>,
    pub rtt_baseline: Option<Duration>,
    pub jitter: Option<Duration>,
    /// Loss ratio of this round.
    pub loss: Option<f64>,
    /// Loss ratio over the last few rounds (what to compare with the class threshold).
    pub loss_recent: Option<f64>,
    /// Thresholds this run breached (loss: the loss test is over its evidence bar).
    pub breaches: Vec<Breach>,
    pub consecutive_failures: u32,
    pub failures_in_window: u32,
}

/// A change of state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    pub from: State,
    pub to: State,
    pub at: SystemTime,
    pub evidence: Evidence,
}

/// The result of observing one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observation {
    pub transition: Option<Transition>,
    /// `Some(confirm_interval)` while a change is being confirmed (failing, recovering, degraded
    /// evidence accumulating); `None` = the check's normal interval.
    pub next_run_in: Option<Duration>,
}

/// Health memory of one check.
///
/// Packet loss is judged by a one-sided CUSUM, not by a plain average of the last rounds: a
/// round is only 5–10 packets, and at an island's normal 3 % the average of 4 rounds (40
/// packets) still reaches 10 % in ~3 % of rounds — a false page every few hours — while a window
/// long enough to stay quiet (~150 packets) needs ~15 rounds to notice a rise to 15 %. The CUSUM
/// adds, per packet, the log-likelihood ratio of "loss = 1.5 × threshold" against "loss = 0.3 ×
/// threshold" (floored at 0), so evidence piles up over lossy rounds and drains over clean
/// ones; it is the quickest detector for a given false-alarm rate. Loss counts as degraded once
/// the sum reaches `loss_evidence`, and stops once it has drained to half of that.
#[derive(Debug, Clone, Default)]
pub struct CheckHealth {
    state: State,
    since: Option<SystemTime>,
    /// Bit i set = the run i runs ago failed (bit 0 = latest).
    history: u64,
    fails: u32,
    passes: u32,
    down: bool,
    degraded: bool,
    /// Consecutive passing runs over a threshold / within all thresholds.
    over: u32,
    clean: u32,
    loss_sum: f64,
    loss_degraded: bool,
    /// (sent, lost) of the last rounds.
    recent: VecDeque<(u32, u32)>,
    rtt: RttBaseline,
    /// Consecutive rounds over the RTT baseline's limit.
    rises: u32,
}

/// The normal RTT of one link: an exponentially weighted mean of passing rounds' median RTT and
/// of their absolute deviation. The round median, not the mean, so one late reply does not
/// count; rounds over the limit barely move it, so a sustained rise keeps breaching.
#[derive(Debug, Clone, Default)]
pub struct RttBaseline {
    mean: f64,
    deviation: f64,
    samples: u32,
}

impl RttBaseline {
    /// The baseline, once warmed up.
    pub fn value(&self) -> Option<Duration> {
        (self.samples >= BASELINE_WARMUP).then(|| Duration::from_secs_f64(self.mean.max(0.0)))
    }

    /// The RTT above which a round is a rise, once warmed up.
    pub fn limit(&self) -> Option<f64> {
        (self.samples >= BASELINE_WARMUP).then(|| {
            self.mean
                + (RISE_DEVIATIONS * self.deviation)
                    .max(self.mean)
                    .max(RISE_FLOOR.as_secs_f64())
        })
    }

    /// Takes one round's median RTT; returns whether it was a rise.
    fn observe(&mut self, median: f64) -> bool {
        let rise = self.limit().is_some_and(|l| median > l);
        let alpha = if self.samples < BASELINE_WARMUP {
            1.0 / f64::from(self.samples + 1)
        } else if rise {
            BASELINE_ALPHA_HIGH
        } else {
            BASELINE_ALPHA
        };
        if self.samples == 0 {
            self.mean = median;
        } else {
            let dev = (median - self.mean).abs();
            self.mean += alpha * (median - self.mean);
            self.deviation += alpha * (dev - self.deviation);
        }
        self.samples = self.samples.saturating_add(1);
        rise
    }
}

/// Measurements read from a run's details.
#[derive(Default)]
struct Measured {
    round: Option<(u32, u32)>,
    loss: Option<f64>,
    rtt_avg: Option<Duration>,
    rtt_median: Option<Duration>,
    jitter: Option<Duration>,
    status: Option<u16>,
}

/// Median of a round's RTTs (seconds).
fn median(rtts: &[f64]) -> Option<f64> {
    if rtts.is_empty() {
        return None;
    }
    let mut v = rtts.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn measure(outcome: &Outcome) -> Measured {
    let secs = |s: Option<f64>| s.and_then(|s| Duration::try_from_secs_f64(s).ok());
    match &outcome.details {
        Details::Icmp(d) => Measured {
            round: Some((d.sent, d.sent - d.received.min(d.sent))),
            loss: Some(d.loss_ratio),
            rtt_avg: secs(d.rtt_avg),
            rtt_median: secs(median(&d.rtts)),
            jitter: secs(d.jitter),
            status: None,
        },
        Details::Http(h) => Measured {
            status: h.status,
            ..Measured::default()
        },
        _ => Measured::default(),
    }
}

/// `value` is over `limit`; a zero limit is no limit.
fn over(value: Duration, limit: Duration) -> bool {
    !limit.is_zero() && value > limit
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

impl CheckHealth {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// When the current state began (`None` before the first run).
    pub fn since(&self) -> Option<SystemTime> {
        self.since
    }

    /// The link's RTT baseline, once enough rounds passed.
    pub fn rtt_baseline(&self) -> Option<Duration> {
        self.rtt.value()
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.fails
    }

    /// Failed runs among the last `policy.window`.
    pub fn failures_in_window(&self, policy: &HealthPolicy) -> u32 {
        let mask = match policy.window {
            0 => 0,
            w if w >= 64 => u64::MAX,
            w => (1u64 << w) - 1,
        };
        (self.history & mask).count_ones()
    }

    /// Takes one finished run into account.
    pub fn observe(
        &mut self,
        outcome: &Outcome,
        now: SystemTime,
        policy: &HealthPolicy,
    ) -> Observation {
        self.observe_with(outcome, now, policy, false)
    }

    /// Like [`CheckHealth::observe`]; `blind` while the prober itself is isolated: up and down
    /// are still followed, but the round teaches the RTT baseline and the loss judgement
    /// nothing (what a cut-off prober measures is not the link's normal).
    pub fn observe_with(
        &mut self,
        outcome: &Outcome,
        now: SystemTime,
        policy: &HealthPolicy,
        blind: bool,
    ) -> Observation {
        let m = measure(outcome);
        self.history = (self.history << 1) | u64::from(!outcome.success);
        let mut breaches = Vec::new();
        let mut round_clean = false;
        if outcome.success {
            self.fails = 0;
            self.passes = self.passes.saturating_add(1);
            if self.down && self.passes >= policy.recover_after.max(1) {
                self.down = false;
            }
            if blind {
                round_clean = true;
            } else {
                (breaches, round_clean) = self.judge_quality(outcome, &m, policy);
            }
        } else {
            self.passes = 0;
            self.fails = self.fails.saturating_add(1);
            let n_of_m = policy.window > 0
                && policy.fail_in_window > 0
                && self.failures_in_window(policy) >= policy.fail_in_window;
            if !self.down && (self.fails >= policy.fail_after.max(1) || n_of_m) {
                self.down = true;
                // After an outage, quality is judged afresh.
                self.reset_quality();
            }
        }

        let to = if self.down {
            State::Down
        } else if self.fails > 0 {
            State::Failing
        } else if self.degraded {
            State::Degraded
        } else {
            State::Up
        };
        let loss_suspect =
            self.loss_sum >= LOSS_SUSPECT * policy.loss_evidence && self.loss_sum > 0.0;
        let confirming = match to {
            State::Failing => true,
            State::Down => outcome.success,
            State::Degraded => round_clean,
            State::Up | State::Unknown => self.over > 0 || loss_suspect,
        };

        let transition = (to != self.state).then(|| {
            let loss_recent = {
                let (sent, lost) = self
                    .recent
                    .iter()
                    .fold((0u32, 0u32), |(s, l), (rs, rl)| (s + rs, l + rl));
                (sent > 0).then(|| f64::from(lost) / f64::from(sent))
            };
            Transition {
                from: self.state,
                to,
                at: now,
                evidence: Evidence {
                    reason: outcome.reason(),
                    message: outcome
                        .failure
                        .as_ref()
                        .map(|f| truncate(&f.message, MESSAGE_MAX)),
                    status: m.status,
                    duration: outcome.duration,
                    rtt_avg: m.rtt_avg,
                    rtt_median: m.rtt_median,
                    rtt_baseline: self.rtt.value(),
                    jitter: m.jitter,
                    loss: m.loss,
                    loss_recent,
                    breaches,
                    consecutive_failures: self.fails,
                    failures_in_window: self.failures_in_window(policy),
                },
            }
        });
        if transition.is_some() || self.since.is_none() {
            self.since = Some(now);
        }
        self.state = to;
        Observation {
            transition,
            next_run_in: confirming.then_some(policy.confirm_interval),
        }
    }

    /// Updates the quality machine with a passing run; returns the breaches and whether this
    /// run on its own was within every threshold.
    fn judge_quality(
        &mut self,
        outcome: &Outcome,
        m: &Measured,
        policy: &HealthPolicy,
    ) -> (Vec<Breach>, bool) {
        let t = &policy.degraded;
        let mut breaches = Vec::new();
        if m.rtt_avg.is_some_and(|r| over(r, t.rtt)) {
            breaches.push(Breach::Rtt);
        }
        if let Some(med) = m.rtt_median {
            if self.rtt.observe(med.as_secs_f64()) {
                breaches.push(Breach::RttRise);
                self.rises = self.rises.saturating_add(1);
            } else {
                self.rises = 0;
            }
        }
        if m.jitter.is_some_and(|j| over(j, t.jitter)) {
            breaches.push(Breach::Jitter);
        }
        // A round's wall time is its pacing, not the target's speed: latency is for the others.
        if m.round.is_none() && over(outcome.duration, t.latency) {
            breaches.push(Breach::Latency);
        }
        let mut round_clean = breaches.is_empty();
        if let Some((sent, lost)) = m.round.filter(|(sent, _)| *sent > 0) {
            self.judge_loss(sent, lost, policy);
            round_clean &= !(t.loss > 0.0 && f64::from(lost) / f64::from(sent) >= t.loss);
        }
        if self.loss_degraded {
            breaches.insert(0, Breach::Loss);
        }
        if breaches.is_empty() {
            self.clean = self.clean.saturating_add(1);
            self.over = 0;
        } else {
            self.over = self.over.saturating_add(1);
            self.clean = 0;
        }
        if !self.degraded
            && (self.loss_degraded
                || self.over >= policy.degraded_after.max(1)
                || self.rises >= RISE_AFTER)
        {
            self.degraded = true;
        } else if self.degraded && self.clean >= policy.recover_after.max(1) {
            self.degraded = false;
        }
        (breaches, round_clean)
    }

    /// One round into the loss CUSUM (see [`CheckHealth`]).
    fn judge_loss(&mut self, sent: u32, lost: u32, policy: &HealthPolicy) {
        self.recent.push_back((sent, lost));
        if self.recent.len() > RECENT_ROUNDS {
            self.recent.pop_front();
        }
        let (thr, bar) = (policy.degraded.loss, policy.loss_evidence);
        if !(thr > 0.0 && thr < 1.0 && bar > 0.0) {
            self.loss_degraded = false;
            return;
        }
        let (normal, bad) = (thr * LOSS_NORMAL, (thr * LOSS_BAD).min(0.99));
        let per_lost = (bad / normal).ln();
        let per_received = ((1.0 - bad) / (1.0 - normal)).ln();
        let step = f64::from(lost) * per_lost + f64::from(sent - lost) * per_received;
        // Capped at the bar so that, once over, recovery takes a bounded number of clean rounds.
        self.loss_sum = (self.loss_sum + step).clamp(0.0, bar);
        if self.loss_sum >= bar {
            self.loss_degraded = true;
        } else if self.loss_sum <= bar / 2.0 {
            self.loss_degraded = false;
        }
    }

    fn reset_quality(&mut self) {
        self.degraded = false;
        self.rises = 0;
        self.over = 0;
        self.clean = 0;
        self.loss_sum = 0.0;
        self.loss_degraded = false;
        self.recent.clear();
    }
}

/// A site's status, rolled up from its checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteStatus {
    Up,
    Degraded,
    Down,
    Maintenance,
    Unknown,
}

impl SiteStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SiteStatus::Up => "up",
            SiteStatus::Degraded => "degraded",
            SiteStatus::Down => "down",
            SiteStatus::Maintenance => "maintenance",
            SiteStatus::Unknown => "unknown",
        }
    }
}

/// Rolls a site's status up from its link check and its other checks (with their roles).
///
/// - **Maintenance** wins: checks still run, but nothing at the site is news for the teams.
/// - **Down** when the link or the public-service centre (endpoint) is Down: either way the
///   site cannot serve citizens.
/// - **Degraded** when a video point or another check is Down, or any check is Degraded: the
///   site serves, but not fully.
/// - `Failing` is unconfirmed (it lasts a few confirm intervals) and counts as Up, so the
///   status does not flicker on a blip.
/// - **Unknown** while no check has reported; otherwise checks still Unknown are ignored.
pub fn site_status(
    link: Option<State>,
    others: &[(CheckRole, State)],
    in_maintenance: bool,
) -> SiteStatus {
    if in_maintenance {
        return SiteStatus::Maintenance;
    }
    let all = link
        .map(|s| (CheckRole::Link, s))
        .into_iter()
        .chain(others.iter().copied());
    let mut status = SiteStatus::Unknown;
    for (role, state) in all {
        let this = match (role, state) {
            (_, State::Unknown) => continue,
            (CheckRole::Link | CheckRole::Endpoint, State::Down) => return SiteStatus::Down,
            (_, State::Down | State::Degraded) => SiteStatus::Degraded,
            (_, State::Up | State::Failing) => SiteStatus::Up,
        };
        if status != SiteStatus::Degraded {
            status = this;
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{HttpDetails, IcmpDetails};

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
    }

    fn thresholds(loss: f64, rtt: u64, jitter: u64, latency: u64) -> Thresholds {
        Thresholds {
            loss,
            rtt: MS(rtt),
            jitter: MS(jitter),
            latency: MS(latency),
        }
    }

    /// What `for_check` gives a mainland check of the shipped probes.toml.
    fn mainland() -> HealthPolicy {
        HealthPolicy {
            fail_after: 2,
            window: 6,
            fail_in_window: 3,
            recover_after: 3,
            confirm_interval: CONFIRM_INTERVAL,
            degraded_after: 2,
            loss_evidence: 5.0,
            degraded: thresholds(0.05, 60, 20, 2000),
        }
    }

    /// What `for_check` gives an island check of the shipped probes.toml.
    fn island() -> HealthPolicy {
        HealthPolicy {
            fail_after: 3,
            window: 8,
            fail_in_window: 4,
            recover_after: 4,
            confirm_interval: CONFIRM_INTERVAL,
            degraded_after: 3,
            loss_evidence: 10.0,
            degraded: thresholds(0.10, 400, 120, 5000),
        }
    }

    fn http(success: bool, status: u16, duration: Duration) -> Outcome {
        let details = Details::Http(HttpDetails {
            status: Some(status),
            ..HttpDetails::default()
        });
        let mut o = if success {
            Outcome::ok(details)
        } else {
            Outcome::fail(
                Reason::HttpStatus,
                format!("status {status}, expected 200"),
                details,
            )
        };
        o.duration = duration;
        o
    }

    /// An echo round of `sent` packets, `lost` of them lost; fails above `max_loss` like the probe.
    fn round(sent: u32, lost: u32, rtt_ms: f64, jitter_ms: f64, max_loss: f64) -> Outcome {
        let received = sent - lost;
        let loss_ratio = f64::from(lost) / f64::from(sent);
        let details = Details::Icmp(IcmpDetails {
            sent,
            received,
            rtts: vec![rtt_ms / 1000.0; received as usize],
            rtt_avg: (received > 0).then_some(rtt_ms / 1000.0),
            jitter: (received > 0).then_some(jitter_ms / 1000.0),
            loss_ratio,
            socket: "udp_echo",
            ..IcmpDetails::default()
        });
        let mut o = if loss_ratio > max_loss {
            Outcome::fail(
                Reason::PacketLoss,
                format!("{lost} of {sent} lost"),
                details,
            )
        } else {
            Outcome::ok(details)
        };
        o.duration = MS(3000);
        o
    }

    fn island_round(lost: u32) -> Outcome {
        round(10, lost, 55.0, 10.0, 0.6)
    }

    /// `o` pass, `x` fail (HTTP 503), `s` pass in 4 s (over a 2 s / 5 s latency threshold).
    fn step(c: char) -> Outcome {
        match c {
            'o' => http(true, 200, MS(100)),
            'x' => http(false, 503, MS(100)),
            's' => http(true, 200, MS(4000)),
            _ => panic!("unknown step {c}"),
        }
    }

    fn letter(s: State) -> char {
        match s {
            State::Unknown => '?',
            State::Up => 'U',
            State::Degraded => 'G',
            State::Failing => 'F',
            State::Down => 'D',
        }
    }

    /// Runs `steps` from a fresh check; returns the states (`U` up, `G` degraded, `F` failing,
    /// `D` down) and the re-probe requests (`c` confirm interval, `.` normal interval).
    fn trace(policy: &HealthPolicy, steps: &str) -> (String, String) {
        let mut h = CheckHealth::new();
        let (mut states, mut next) = (String::new(), String::new());
        for (i, c) in steps.chars().enumerate() {
            let now = t0() + Duration::from_secs(15 * i as u64);
            let before = h.state();
            let obs = h.observe(&step(c), now, policy);
            assert_eq!(
                obs.transition.is_some(),
                before != h.state(),
                "transition iff change at {i}"
            );
            if let Some(t) = &obs.transition {
                assert_eq!((t.from, t.to, t.at), (before, h.state(), now));
                assert_eq!(h.since(), Some(now));
            }
            match obs.next_run_in {
                Some(d) => {
                    assert_eq!(d, policy.confirm_interval);
                    next.push('c');
                }
                None => next.push('.'),
            }
            states.push(letter(h.state()));
        }
        (states, next)
    }

    #[test]
    fn state_machine_table() {
        let mut no_window = mainland();
        no_window.window = 0;
        let mut immediate = mainland();
        immediate.fail_after = 1;
        let cases: &[(&str, &HealthPolicy, &str, &str, &str)] = &[
            // name, policy, steps, states, next runs
            (
                "single failure then success: never Down",
                &mainland(),
                "oxooo",
                "UFUUU",
                ".c...",
            ),
            (
                "two consecutive failures: Down at the second",
                &mainland(),
                "oxx",
                "UFD",
                ".c.",
            ),
            ("first run fails", &mainland(), "x", "F", "c"),
            ("fail_after 1: Down at once", &immediate, "ox", "UD", ".."),
            (
                "flapping, 3 of the last 6 failed: Down",
                &mainland(),
                "xoxox",
                "FUFUD",
                "c.c..",
            ),
            (
                "flapping slower than the window: never Down",
                &mainland(),
                "xoooooxoooooxo",
                "FUUUUUFUUUUUFU",
                "c.....c.....c.",
            ),
            (
                "2 of the last 6 is not enough",
                &mainland(),
                "xoxoooox",
                "FUFUUUUF",
                "c.c....c",
            ),
            (
                "window 0 disables N-of-M",
                &no_window,
                "xoxoxoxo",
                "FUFUFUFU",
                "c.c.c.c.",
            ),
            (
                "Down stays Down at the normal interval",
                &mainland(),
                "xxxxx",
                "FDDDD",
                "c....",
            ),
            (
                "recovery needs recover_after passes",
                &mainland(),
                "xxooo",
                "FDDDU",
                "c.cc.",
            ),
            (
                "a failure restarts the recovery count",
                &mainland(),
                "xxooxooo",
                "FDDDDDDU",
                "c.cc.cc.",
            ),
            (
                "fails right after recovery, outage still in the window: Down at once",
                &mainland(),
                "xxoooxox",
                "FDDDUDDD",
                "c.cc..c.",
            ),
            (
                "fails once the outage left the window: Failing",
                &mainland(),
                "xxooooox",
                "FDDDUUUF",
                "c.cc...c",
            ),
            (
                "one slow run is not degraded",
                &mainland(),
                "osoo",
                "UUUU",
                ".c..",
            ),
            (
                "slow twice: Degraded, back Up after 3 clean runs",
                &mainland(),
                "ossooo",
                "UUGGGU",
                ".c.cc.",
            ),
            (
                "slow, fast, slow: counter restarts",
                &mainland(),
                "osos",
                "UUUU",
                ".c.c",
            ),
            (
                "a clean run inside the recovery restarts it",
                &mainland(),
                "ssoosooo",
                "UGGGGGGU",
                "c.cc.cc.",
            ),
            (
                "unconfirmed failure keeps Degraded",
                &mainland(),
                "ssxo",
                "UGFG",
                "c.cc",
            ),
            (
                "an outage clears Degraded",
                &mainland(),
                "ssxxooo",
                "UGFDDDU",
                "c.c.cc.",
            ),
            (
                "island: 3 failures to go Down",
                &island(),
                "xxxoooo",
                "FFDDDDU",
                "cc.ccc.",
            ),
            (
                "island: slow (4 s) is under its 5 s threshold",
                &island(),
                "ssss",
                "UUUU",
                "....",
            ),
        ];
        for (name, policy, steps, states, next) in cases {
            let (got_states, got_next) = trace(policy, steps);
            assert_eq!(
                (got_states.as_str(), got_next.as_str()),
                (*states, *next),
                "{name}: {steps}"
            );
        }
    }

    #[test]
    fn first_run_leaves_unknown() {
        let mut h = CheckHealth::new();
        assert_eq!(h.state(), State::Unknown);
        assert_eq!(h.since(), None);
        let obs = h.observe(&step('o'), t0(), &mainland());
        let t = obs.transition.expect("unknown → up");
        assert_eq!((t.from, t.to, t.at), (State::Unknown, State::Up, t0()));
        assert!(h
            .observe(&step('o'), t0() + MS(15_000), &mainland())
            .transition
            .is_none());
        assert_eq!(h.since(), Some(t0()), "since only moves on a transition");
    }

    #[test]
    fn down_evidence_is_what_a_technician_needs() {
        let p = mainland();
        let mut h = CheckHealth::new();
        h.observe(&step('o'), t0(), &p);
        let long = "kết nối bị từ chối ".repeat(40);
        let mut fail = http(false, 503, MS(1234));
        fail.failure.as_mut().unwrap().message = long.clone();
        let first = h.observe(&fail, t0() + MS(15_000), &p);
        assert_eq!(first.next_run_in, Some(CONFIRM_INTERVAL));
        let at = t0() + MS(18_234);
        let t = h.observe(&fail, at, &p).transition.expect("failing → down");
        assert_eq!((t.from, t.to, t.at), (State::Failing, State::Down, at));
        let e = t.evidence;
        assert_eq!(e.reason, Some(Reason::HttpStatus));
        assert_eq!(e.status, Some(503));
        assert_eq!(e.duration, MS(1234));
        assert_eq!((e.consecutive_failures, e.failures_in_window), (2, 2));
        let msg = e.message.unwrap();
        assert_eq!(msg.chars().count(), MESSAGE_MAX);
        assert!(msg.ends_with('…') && long.starts_with(msg.trim_end_matches('…')));
        assert!(e.breaches.is_empty() && e.loss.is_none());
        let json = serde_json::to_value(t.to).unwrap();
        assert_eq!(json, "down");
    }

    #[test]
    fn slow_http_evidence_names_latency() {
        let p = mainland();
        let mut h = CheckHealth::new();
        h.observe(&step('s'), t0(), &p);
        let t = h
            .observe(&step('s'), t0() + CONFIRM_INTERVAL, &p)
            .transition
            .unwrap();
        assert_eq!(t.to, State::Degraded);
        assert_eq!(t.evidence.breaches, vec![Breach::Latency]);
        assert_eq!(t.evidence.duration, MS(4000));
        assert_eq!(t.evidence.reason, None);
    }

    /// Feeds island rounds; returns the index of the first round that ended Degraded.
    fn feed(
        h: &mut CheckHealth,
        p: &HealthPolicy,
        lost: impl IntoIterator<Item = u32>,
    ) -> Vec<(State, Option<Duration>)> {
        lost.into_iter()
            .enumerate()
            .map(|(i, l)| {
                let o = h.observe(
                    &island_round(l),
                    t0() + Duration::from_secs(20 * i as u64),
                    p,
                );
                (h.state(), o.next_run_in)
            })
            .collect()
    }

    /// Deterministic 3 %: one packet lost in rounds 1, 4 and 7 of every ten.
    fn normal(i: usize) -> u32 {
        u32::from(matches!(i % 10, 1 | 4 | 7))
    }

    /// Bernoulli(p) losses of 10 packets per round (xorshift, fixed seed).
    fn random_rounds(seed: u64, p: f64, n: usize) -> Vec<u32> {
        let mut x = seed.max(1);
        let mut uniform = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| (0..10).map(|_| u32::from(uniform() < p)).sum())
            .collect()
    }

    #[test]
    fn island_normal_loss_never_degrades() {
        let p = island();
        let mut h = CheckHealth::new();
        let states = feed(&mut h, &p, (0..1000).map(normal));
        assert!(
            states.iter().all(|(s, _)| *s == State::Up),
            "deterministic 3 %"
        );
        assert!(
            states.iter().all(|(_, n)| n.is_none()),
            "no extra rounds either"
        );

        for seed in [1, 7, 42, 2025, 0xC0DA0] {
            let mut h = CheckHealth::new();
            let states = feed(&mut h, &p, random_rounds(seed, 0.03, 1000));
            let bad = states.iter().filter(|(s, _)| *s != State::Up).count();
            assert_eq!(bad, 0, "random 3 %, seed {seed}");
            let fast = states.iter().filter(|(_, n)| n.is_some()).count();
            assert!(fast < 150, "seed {seed}: {fast} confirm rounds of 1000");
        }
    }

    #[test]
    fn island_loss_rise_degrades_and_recovers() {
        let p = island();
        let mut h = CheckHealth::new();
        feed(&mut h, &p, (0..100).map(normal));
        // 15 %: 1 and 2 lost of 10, alternately.
        let rise = feed(&mut h, &p, (0..20).map(|i| 1 + (i % 2) as u32));
        let at = rise
            .iter()
            .position(|(s, _)| *s == State::Degraded)
            .expect("15 % degrades");
        assert!(at < 8, "degraded after {} rounds", at + 1);
        assert!(
            rise[1..at]
                .iter()
                .all(|(_, n)| *n == Some(CONFIRM_INTERVAL)),
            "rounds confirm fast: {rise:?}"
        );
        assert!(rise[at..].iter().all(|(s, _)| *s == State::Degraded));

        // Back to normal: Up again, not before recover_after clean rounds, at the confirm pace.
        let back = feed(&mut h, &p, (0..30).map(normal));
        let up = back
            .iter()
            .position(|(s, _)| *s == State::Up)
            .expect("recovers");
        assert!(
            (p.recover_after as usize..12).contains(&up),
            "recovered after {} rounds",
            up + 1
        );
        assert!(back[up..].iter().all(|(s, _)| *s == State::Up));

        // A strong rise (30 %) is seen within 3 rounds.
        let mut h = CheckHealth::new();
        feed(&mut h, &p, (0..50).map(normal));
        let strong = feed(&mut h, &p, [3, 3, 3]);
        assert_eq!(strong[2].0, State::Degraded, "{strong:?}");
    }

    #[test]
    fn island_random_15_percent_is_caught() {
        let p = island();
        let mut rounds = Vec::new();
        for seed in 1..=40u64 {
            let mut h = CheckHealth::new();
            feed(&mut h, &p, random_rounds(seed * 7919, 0.03, 100));
            let rise = feed(&mut h, &p, random_rounds(seed, 0.15, 40));
            let at = rise
                .iter()
                .position(|(s, _)| *s == State::Degraded)
                .expect("15 % degrades");
            rounds.push(at + 1);
        }
        rounds.sort_unstable();
        assert!(
            rounds[20] <= 9 && rounds[39] <= 25,
            "rounds to Degraded: {rounds:?}"
        );
    }

    #[test]
    fn island_single_bad_round_and_round_failure() {
        let p = island();
        let mut h = CheckHealth::new();
        feed(&mut h, &p, (0..20).map(normal));
        let states = feed(&mut h, &p, [5, 0, 0, 0, 1, 0]);
        assert!(
            states.iter().all(|(s, _)| *s == State::Up),
            "one 50 % round: {states:?}"
        );
        let o = h.observe(&island_round(7), t0(), &p);
        assert_eq!(
            (h.state(), o.next_run_in),
            (State::Failing, Some(CONFIRM_INTERVAL))
        );
        let t = o.transition.unwrap();
        assert_eq!(
            (t.evidence.reason, t.evidence.loss),
            (Some(Reason::PacketLoss), Some(0.7))
        );
    }

    #[test]
    fn mainland_icmp_quality() {
        let p = mainland();
        let ok = || round(5, 0, 2.0, 0.5, 0.4);
        let cases: &[(&str, &[Outcome], &str)] = &[
            (
                "rtt over 60 ms twice",
                &[
                    ok(),
                    round(5, 0, 80.0, 1.0, 0.4),
                    round(5, 0, 80.0, 1.0, 0.4),
                ],
                "UUG",
            ),
            (
                "jitter over 20 ms twice",
                &[round(5, 0, 30.0, 30.0, 0.4), round(5, 0, 30.0, 30.0, 0.4)],
                "UG",
            ),
            (
                "2 of 5 lost, twice",
                &[ok(), round(5, 2, 2.0, 0.5, 0.4), round(5, 2, 2.0, 0.5, 0.4)],
                "UUG",
            ),
            (
                "3 of 5 lost fails the round",
                &[ok(), round(5, 3, 2.0, 0.5, 0.4)],
                "UF",
            ),
            (
                "slow round is not latency",
                &[round(5, 0, 2.0, 0.5, 0.4), round(5, 0, 2.0, 0.5, 0.4)],
                "UU",
            ),
        ];
        for (name, runs, want) in cases {
            let mut h = CheckHealth::new();
            let got: String = runs
                .iter()
                .map(|o| {
                    letter({
                        h.observe(o, t0(), &p);
                        h.state()
                    })
                })
                .collect();
            assert_eq!(&got, want, "{name}");
        }
        // One lost packet now and then on fibre never degrades.
        let mut h = CheckHealth::new();
        for i in 0..1000 {
            h.observe(&round(5, u32::from(i % 20 == 0), 2.0, 0.5, 0.4), t0(), &p);
            assert_eq!(h.state(), State::Up, "round {i}");
        }
        let mut h = CheckHealth::new();
        h.observe(&round(5, 2, 2.0, 0.5, 0.4), t0(), &p);
        let t = h
            .observe(&round(5, 2, 2.0, 0.5, 0.4), t0(), &p)
            .transition
            .unwrap();
        assert_eq!(t.evidence.breaches, vec![Breach::Loss]);
        assert_eq!(t.evidence.loss_recent, Some(0.4));
        assert_eq!(t.evidence.rtt_avg, Some(MS(2)));
    }

    #[test]
    fn policy_from_shipped_config() {
        let text = include_str!("../probes.toml");
        let cfg =
            crate::config::Config::from_str(std::path::Path::new("probes.toml"), text).unwrap();
        let check = |site: &str, name: &str| {
            let c = cfg
                .inventory
                .checks
                .iter()
                .find(|c| c.id.site.as_deref() == Some(site) && &*c.id.name == name);
            HealthPolicy::for_check(c.expect("check in probes.toml"))
        };
        assert_eq!(check("phuong-ben-thanh", "link"), mainland());
        assert_eq!(check("dac-khu-con-dao", "link"), island());
        let endpoint = check("dac-khu-con-dao", "endpoint");
        assert_eq!(
            (endpoint.fail_after, endpoint.degraded.latency),
            (3, MS(5000))
        );
        let svc = cfg
            .inventory
            .checks
            .iter()
            .find(|c| c.role == CheckRole::Service)
            .unwrap();
        let svc = HealthPolicy::for_check(svc);
        assert_eq!(
            (svc.fail_after, svc.degraded.loss, svc.confirm_interval),
            (2, 0.02, CONFIRM_INTERVAL)
        );
    }

    #[test]
    fn site_rollup() {
        use CheckRole::{Endpoint, Other, Video};
        use State::{Degraded as G, Down as D, Failing as F, Unknown as Q, Up as U};
        type Case<'a> = (
            &'a str,
            Option<State>,
            &'a [(CheckRole, State)],
            bool,
            SiteStatus,
        );
        let cases: &[Case] = &[
            (
                "all up",
                Some(U),
                &[(Endpoint, U), (Video, U)],
                false,
                SiteStatus::Up,
            ),
            (
                "link down",
                Some(D),
                &[(Endpoint, D), (Video, D)],
                false,
                SiteStatus::Down,
            ),
            (
                "link down, children not yet",
                Some(D),
                &[(Endpoint, U), (Video, U)],
                false,
                SiteStatus::Down,
            ),
            (
                "endpoint down, link up",
                Some(U),
                &[(Endpoint, D), (Video, U)],
                false,
                SiteStatus::Down,
            ),
            (
                "only video down",
                Some(U),
                &[(Endpoint, U), (Video, D)],
                false,
                SiteStatus::Degraded,
            ),
            (
                "other check down",
                Some(U),
                &[(Endpoint, U), (Other, D)],
                false,
                SiteStatus::Degraded,
            ),
            (
                "link degraded",
                Some(G),
                &[(Endpoint, U), (Video, U)],
                false,
                SiteStatus::Degraded,
            ),
            (
                "endpoint slow",
                Some(U),
                &[(Endpoint, G)],
                false,
                SiteStatus::Degraded,
            ),
            (
                "degraded, then endpoint down",
                Some(G),
                &[(Video, G), (Endpoint, D)],
                false,
                SiteStatus::Down,
            ),
            (
                "failing is not confirmed",
                Some(F),
                &[(Endpoint, F)],
                false,
                SiteStatus::Up,
            ),
            (
                "maintenance wins",
                Some(D),
                &[(Endpoint, D)],
                true,
                SiteStatus::Maintenance,
            ),
            (
                "nothing yet",
                Some(Q),
                &[(Endpoint, Q), (Video, Q)],
                false,
                SiteStatus::Unknown,
            ),
            ("no checks", None, &[], false, SiteStatus::Unknown),
            (
                "no link check",
                None,
                &[(Endpoint, U)],
                false,
                SiteStatus::Up,
            ),
            (
                "partly known",
                Some(Q),
                &[(Endpoint, U), (Video, Q)],
                false,
                SiteStatus::Up,
            ),
        ];
        for (name, link, others, maint, want) in cases {
            assert_eq!(site_status(*link, others, *maint), *want, "{name}");
        }
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("ngắn", 300), "ngắn");
        assert_eq!(truncate("đường truyền", 5), "đườn…");
    }
}
