//! Per-check series, kept as compact per-check state.
//!
//! A `GaugeVec` child per series costs about a kilobyte (label strings, hash entry, atomics)
//! and every update hashes 4–5 label values; at 20,000 checks that is ~85k children. Here a
//! check is one slot of plain numbers (~600 B with its index entry), found once per run by its
//! id. Two ways out, from a copy of the slots taken under a short lock (a scrape never holds up
//! the writer for longer than a memcpy):
//! - [`Snapshot::write`]: the text format directly (what `/metrics` serves), escaped label text
//!   built once per check and render;
//! - `impl Collector`: the same families as prometheus protos (`Metrics::gather`); a test
//!   checks that `TextEncoder` makes of them exactly the bytes `write` makes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Histogram, HistogramVec};

use crate::config::{CheckDef, CheckId, CheckRole, Inventory};
use crate::probe::{Details, Outcome, ProbeKind, Reason};

/// Latency buckets from 1 ms to 30 s: loopback to island satellite links.
pub(super) const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Phase label → index into the slot's phase array, in label order (the exposition's order).
type PhaseNames = [(&'static str, usize)];

const HTTP_PHASES: [(&str, usize); 5] = [
    ("connect", 1),
    ("processing", 3),
    ("resolve", 0),
    ("tls", 2),
    ("transfer", 4),
];
const ICMP_PHASES: [(&str, usize); 3] = [("resolve", 0), ("rtt", 2), ("setup", 1)];
const DNS_PHASES: [(&str, usize); 3] = [("connect", 1), ("request", 2), ("resolve", 0)];
const REASONS: usize = Reason::ALL.len();

/// How a family's samples come out of a slot (and which labels it adds to site, service,
/// check and kind).
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// One sample: [`Slot::value`].
    Value,
    /// One sample per `phase`.
    Phases,
    /// The RTT histogram.
    Rtt,
    Attempts,
    /// One counter per `reason` seen.
    Failures,
    /// `lienthong_check_info`: `role` and `link_class`, value 1.
    Info,
    /// One sample per transaction `step` (the label sorts after `site`).
    Steps,
}

struct Family {
    name: &'static str,
    help: &'static str,
    ty: MetricType,
    shape: Shape,
}

const fn gauge(name: &'static str, help: &'static str, shape: Shape) -> Family {
    Family {
        name,
        help,
        ty: MetricType::GAUGE,
        shape,
    }
}

// Family indexes into FAMILIES.
const SUCCESS: usize = 0;
const DURATION: usize = 1;
const HTTP_PHASE: usize = 2;
const HTTP_STATUS: usize = 3;
const HTTP_BODY: usize = 4;
const SSL_EXPIRY: usize = 5;
const ICMP_PHASE: usize = 6;
const ICMP_MIN: usize = 7;
const ICMP_MAX: usize = 8;
const ICMP_STDDEV: usize = 9;
const ICMP_LOSS: usize = 10;
const ICMP_SENT: usize = 11;
const ICMP_RECEIVED: usize = 12;
const DNS_PHASE: usize = 14;
const DNS_ANSWER: usize = 15;
const DNS_AUTHORITY: usize = 16;
const DNS_ADDITIONAL: usize = 17;
const DNS_SUCCEEDED: usize = 18;
const LAST_RUN: usize = 21;
const CHECK_STATE: usize = 22;
#[allow(dead_code)] // the index of the duration family, for symmetry with STEP_SUCCESS
const STEP_DURATION: usize = 24;
const STEP_SUCCESS: usize = 25;

/// Every per-check family: names, HELP texts and labels are a public interface (dashboards,
/// rules); `tests/golden/metrics.txt` pins them.
const FAMILIES: [Family; 26] = [
    gauge(
        "probe_success",
        "Whether the last run of the check succeeded (1) or not (0)",
        Shape::Value,
    ),
    gauge(
        "probe_duration_seconds",
        "How long the last run of the check took",
        Shape::Value,
    ),
    gauge(
        "probe_http_duration_seconds",
        "Duration of the last HTTP request by phase, summed over redirects",
        Shape::Phases,
    ),
    gauge(
        "probe_http_status_code",
        "Response HTTP status code of the last run (0 when none)",
        Shape::Value,
    ),
    gauge(
        "probe_http_uncompressed_body_length",
        "Length of the last response body in bytes",
        Shape::Value,
    ),
    gauge(
        "probe_ssl_earliest_cert_expiry",
        "Earliest notAfter over the presented certificate chain, Unix seconds",
        Shape::Value,
    ),
    gauge(
        "probe_icmp_duration_seconds",
        "Duration of the last ICMP round by phase (rtt = mean RTT)",
        Shape::Phases,
    ),
    gauge(
        "probe_icmp_duration_rtt_min_seconds",
        "Minimum RTT of the last echo round",
        Shape::Value,
    ),
    gauge(
        "probe_icmp_duration_rtt_max_seconds",
        "Maximum RTT of the last echo round",
        Shape::Value,
    ),
    gauge(
        "probe_icmp_duration_rtt_stddev_seconds",
        "Jitter: population standard deviation of the RTTs of the last echo round",
        Shape::Value,
    ),
    gauge(
        "probe_icmp_loss_ratio",
        "Share of echo requests of the last round that got no reply (0..1)",
        Shape::Value,
    ),
    gauge(
        "probe_icmp_packets_sent",
        "Echo requests sent in the last round",
        Shape::Value,
    ),
    gauge(
        "probe_icmp_packets_received",
        "Echo replies received in the last round",
        Shape::Value,
    ),
    Family {
        name: "lienthong_icmp_rtt_seconds",
        help: "Distribution of every echo RTT (Smokeping-style spread)",
        ty: MetricType::HISTOGRAM,
        shape: Shape::Rtt,
    },
    gauge(
        "probe_dns_duration_seconds",
        "Duration of the last DNS request by phase",
        Shape::Phases,
    ),
    gauge(
        "probe_dns_answer_rrs",
        "Number of answer records in the last response",
        Shape::Value,
    ),
    gauge(
        "probe_dns_authority_rrs",
        "Number of authority records in the last response",
        Shape::Value,
    ),
    gauge(
        "probe_dns_additional_rrs",
        "Number of additional records in the last response",
        Shape::Value,
    ),
    gauge(
        "probe_dns_query_succeeded",
        "Whether the last DNS query got a response (1) or not (0)",
        Shape::Value,
    ),
    Family {
        name: "lienthong_probe_attempts_total",
        help: "Runs of the check",
        ty: MetricType::COUNTER,
        shape: Shape::Attempts,
    },
    Family {
        name: "lienthong_probe_failures_total",
        help: "Failed runs of the check by reason",
        ty: MetricType::COUNTER,
        shape: Shape::Failures,
    },
    gauge(
        "lienthong_probe_last_run_timestamp_seconds",
        "When the check last finished, Unix seconds",
        Shape::Value,
    ),
    gauge(
        "lienthong_check_state",
        "Health of the check: 0 unknown, 1 up, 2 degraded, 3 failing (unconfirmed), 4 down",
        Shape::Value,
    ),
    gauge(
        "lienthong_check_info",
        "A configured check (value 1): its role and link class",
        Shape::Info,
    ),
    gauge(
        "lienthong_transaction_step_duration_seconds",
        "Duration of each step of the last transaction run (0 for a step not reached)",
        Shape::Steps,
    ),
    gauge(
        "lienthong_transaction_step_success",
        "Whether each step of the last transaction run succeeded (1) or not (0, also when not reached)",
        Shape::Steps,
    ),
];

/// Per-check echo RTT distribution: counts per bucket (not cumulative) and the sum.
#[derive(Clone, Default)]
struct RttHistogram {
    /// `counts[i]`: RTTs in (LATENCY_BUCKETS[i-1], LATENCY_BUCKETS[i]]; the last: above 30 s.
    counts: [u64; LATENCY_BUCKETS.len() + 1],
    sum: f64,
}

impl RttHistogram {
    fn observe(&mut self, v: f64) {
        // Same rule as prometheus::Histogram: the first bound >= v (NaN counts only in +Inf).
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.counts[i] += 1;
        self.sum += v;
    }

    fn proto(&self) -> proto::Histogram {
        let mut cumulative = 0;
        let buckets = LATENCY_BUCKETS
            .iter()
            .zip(self.counts)
            .map(|(bound, n)| {
                cumulative += n;
                let mut b = proto::Bucket::default();
                b.set_upper_bound(*bound);
                b.set_cumulative_count(cumulative);
                b
            })
            .collect();
        let mut h = proto::Histogram::default();
        h.set_bucket(buckets);
        // The encoder writes the +Inf bucket from the count.
        h.set_sample_count(self.counts.iter().sum());
        h.set_sample_sum(self.sum);
        h
    }
}

#[derive(Clone, Default)]
struct IcmpSeries {
    phases: [f64; 3],
    min: f64,
    max: f64,
    stddev: f64,
    loss: f64,
    sent: f64,
    received: f64,
    rtt: RttHistogram,
}

/// The kind-specific series of a check: present once a run with such details was recorded.
#[derive(Clone, Default)]
enum KindSeries {
    #[default]
    None,
    Http {
        phases: [f64; 5],
        status: f64,
        body: f64,
    },
    /// Behind an Arc: the histogram would triple every other check's slot, and a snapshot
    /// for rendering then copies a pointer (the writer copies on write while one is alive).
    Icmp(Arc<IcmpSeries>),
    Dns {
        phases: [f64; 3],
        rrs: [f64; 3],
        succeeded: f64,
    },
    /// Per step, sorted by step name (the exposition's order): (name, duration, success).
    Transaction(Arc<[(Arc<str>, f64, f64)]>),
}

/// Everything exported about one check.
#[derive(Clone)]
struct Slot {
    id: CheckId,
    kind: ProbeKind,
    role: CheckRole,
    link_class: Arc<str>,
    /// In the running config (has `lienthong_check_info`); false for a check recorded without
    /// a published inventory.
    configured: bool,
    /// The `lienthong_probe_duration_seconds{kind,role,link_class}` child, looked up once.
    duration_hist: Histogram,
    /// Runs recorded; the run series exist once it is above 0.
    runs: u64,
    success: bool,
    duration: f64,
    last_run: f64,
    /// Failed runs by `Reason as usize`; allocated on the first failure.
    failures: Option<Arc<[u64; REASONS]>>,
    state: Option<f64>,
    ssl_expiry: Option<f64>,
    series: KindSeries,
}

impl Slot {
    fn new(c: &CheckDef, configured: bool, hist: &HistogramVec) -> Slot {
        let kind = c.probe.kind();
        Slot {
            id: c.id.clone(),
            kind,
            role: c.role,
            link_class: c.link_class.as_str().into(),
            configured,
            duration_hist: hist.with_label_values(&[kind.as_str(), c.role.as_str(), &c.link_class]),
            runs: 0,
            success: false,
            duration: 0.0,
            last_run: 0.0,
            failures: None,
            state: None,
            ssl_expiry: None,
            series: KindSeries::None,
        }
    }

    /// Follows a reload that kept the check but changed its role or link class.
    fn refresh(&mut self, c: &CheckDef, hist: &HistogramVec) {
        if self.role != c.role || *self.link_class != *c.link_class {
            self.role = c.role;
            self.link_class = c.link_class.as_str().into();
            self.duration_hist =
                hist.with_label_values(&[self.kind.as_str(), c.role.as_str(), &c.link_class]);
        }
    }

    fn record(&mut self, o: &Outcome, finished: f64) {
        let secs = o.duration.as_secs_f64();
        self.runs += 1;
        self.success = o.success;
        self.duration = secs;
        self.last_run = finished;
        self.duration_hist.observe(secs);
        if let Some(r) = o.reason() {
            Arc::make_mut(self.failures.get_or_insert_with(Default::default))[r as usize] += 1;
        }
        match &o.details {
            Details::Http(d) => {
                let secs = |v: Option<std::time::Duration>| v.map_or(0.0, |d| d.as_secs_f64());
                let p = &d.phases;
                self.series = KindSeries::Http {
                    phases: [
                        secs(p.resolve),
                        secs(p.connect),
                        secs(p.tls),
                        secs(p.processing),
                        secs(p.transfer),
                    ],
                    status: d.status.unwrap_or(0) as f64,
                    body: d.body_bytes as f64,
                };
                if let Some(e) = d.cert_earliest_expiry {
                    self.ssl_expiry = Some(e as f64);
                }
            }
            Details::Tcp(d) => {
                if let Some(e) = d.cert_earliest_expiry {
                    self.ssl_expiry = Some(e as f64);
                }
            }
            Details::Icmp(d) => {
                if !matches!(self.series, KindSeries::Icmp(_)) {
                    self.series = KindSeries::Icmp(Arc::default());
                }
                let KindSeries::Icmp(s) = &mut self.series else {
                    unreachable!("set just above")
                };
                let s = Arc::make_mut(s);
                s.phases = [
                    d.resolve.unwrap_or(0.0),
                    d.setup.unwrap_or(0.0),
                    d.rtt_avg.unwrap_or(0.0),
                ];
                s.min = d.rtt_min.unwrap_or(0.0);
                s.max = d.rtt_max.unwrap_or(0.0);
                s.stddev = d.jitter.unwrap_or(0.0);
                s.loss = d.loss_ratio;
                s.sent = d.sent as f64;
                s.received = d.received as f64;
                d.rtts.iter().for_each(|r| s.rtt.observe(*r));
            }
            Details::Dns(d) => {
                self.series = KindSeries::Dns {
                    phases: [0.0, d.connect.unwrap_or(0.0), d.request.unwrap_or(0.0)],
                    rrs: [
                        d.answer_rrs as f64,
                        d.authority_rrs as f64,
                        d.additional_rrs as f64,
                    ],
                    succeeded: if d.rcode.is_some() { 1.0 } else { 0.0 },
                };
            }
            Details::Transaction(d) => {
                let mut steps: Vec<(Arc<str>, f64, f64)> = d
                    .steps
                    .iter()
                    .map(|s| {
                        let ok = if s.success { 1.0 } else { 0.0 };
                        (s.name.as_str().into(), s.duration.as_secs_f64(), ok)
                    })
                    .collect();
                steps.sort_by(|a, b| a.0.cmp(&b.0));
                self.series = KindSeries::Transaction(steps.into());
                if let Some(e) = d.cert_earliest_expiry {
                    self.ssl_expiry = Some(e as f64);
                }
            }
            Details::None => {}
        }
    }

    /// The per-step values of family `f` (duration or success), sorted by step name.
    fn steps(&self, f: usize) -> Option<impl Iterator<Item = (&str, f64)> + '_> {
        let KindSeries::Transaction(steps) = &self.series else {
            return None;
        };
        if self.runs == 0 {
            return None;
        }
        Some(steps.iter().map(move |(name, duration, success)| {
            let v = if f == STEP_SUCCESS {
                *success
            } else {
                *duration
            };
            (&**name, v)
        }))
    }

    /// Label values in the order the exposition sorts by (check, kind, service, site).
    fn sort_key(&self) -> (&str, &str, &str, &str) {
        (
            &self.id.name,
            self.kind.as_str(),
            self.id.service.as_deref().unwrap_or(""),
            self.id.site.as_deref().unwrap_or(""),
        )
    }

    /// The value of a one-sample family (`Shape::Value`), if the check has that series.
    fn value(&self, f: usize) -> Option<f64> {
        if f == CHECK_STATE {
            return self.state;
        }
        if self.runs == 0 {
            return None;
        }
        match (f, &self.series) {
            (SUCCESS, _) => Some(if self.success { 1.0 } else { 0.0 }),
            (DURATION, _) => Some(self.duration),
            (LAST_RUN, _) => Some(self.last_run),
            (SSL_EXPIRY, _) => self.ssl_expiry,
            (HTTP_STATUS, KindSeries::Http { status, .. }) => Some(*status),
            (HTTP_BODY, KindSeries::Http { body, .. }) => Some(*body),
            (ICMP_MIN, KindSeries::Icmp(s)) => Some(s.min),
            (ICMP_MAX, KindSeries::Icmp(s)) => Some(s.max),
            (ICMP_STDDEV, KindSeries::Icmp(s)) => Some(s.stddev),
            (ICMP_LOSS, KindSeries::Icmp(s)) => Some(s.loss),
            (ICMP_SENT, KindSeries::Icmp(s)) => Some(s.sent),
            (ICMP_RECEIVED, KindSeries::Icmp(s)) => Some(s.received),
            (DNS_ANSWER, KindSeries::Dns { rrs, .. }) => Some(rrs[0]),
            (DNS_AUTHORITY, KindSeries::Dns { rrs, .. }) => Some(rrs[1]),
            (DNS_ADDITIONAL, KindSeries::Dns { rrs, .. }) => Some(rrs[2]),
            (DNS_SUCCEEDED, KindSeries::Dns { succeeded, .. }) => Some(*succeeded),
            _ => None,
        }
    }

    /// The phase values of family `f` with their names, in label order.
    fn phases(&self, f: usize) -> Option<(&'static PhaseNames, &[f64])> {
        match (f, &self.series) {
            (HTTP_PHASE, KindSeries::Http { phases, .. }) => Some((&HTTP_PHASES, phases)),
            (ICMP_PHASE, KindSeries::Icmp(s)) => Some((&ICMP_PHASES, &s.phases)),
            (DNS_PHASE, KindSeries::Dns { phases, .. }) => Some((&DNS_PHASES, phases)),
            _ => None,
        }
    }

    fn rtt(&self) -> Option<&RttHistogram> {
        match &self.series {
            KindSeries::Icmp(s) => Some(&s.rtt),
            _ => None,
        }
    }

    /// Appends this check's samples to `out` (one vector per family of FAMILIES), as
    /// prometheus protos.
    fn emit(&self, out: &mut [Vec<Metric>], own_vantage: Option<&str>) {
        let mut base = vec![
            pair("check", &self.id.name),
            pair("kind", self.kind.as_str()),
            pair("service", self.id.service.as_deref().unwrap_or("")),
            pair("site", self.id.site.as_deref().unwrap_or("")),
        ];
        // Agent-run copies of service checks carry where they were seen from (sorts last).
        if let Some(v) = self.id.vantage() {
            base.push(pair("vantage", &v));
        } else if let Some(v) = own_vantage {
            base.push(pair("vantage", v));
        }
        // Label pairs in name order, as the prometheus crate's vectors keep them.
        let labels = |extra: &[LabelPair]| -> Vec<LabelPair> {
            let mut v = Vec::with_capacity(5 + extra.len());
            v.extend_from_slice(&base[..2]);
            v.extend_from_slice(extra);
            v.extend_from_slice(&base[2..]);
            v
        };
        for (f, family) in FAMILIES.iter().enumerate() {
            match family.shape {
                Shape::Value => {
                    if let Some(v) = self.value(f) {
                        out[f].push(gauge_metric(labels(&[]), v));
                    }
                }
                Shape::Phases => {
                    if let Some((names, values)) = self.phases(f) {
                        for (name, i) in names {
                            let l = labels(&[pair("phase", name)]);
                            out[f].push(gauge_metric(l, values[*i]));
                        }
                    }
                }
                Shape::Rtt => {
                    if let (true, Some(h)) = (self.runs > 0, self.rtt()) {
                        let mut m = Metric::from_label(labels(&[]));
                        m.set_histogram(h.proto());
                        out[f].push(m);
                    }
                }
                Shape::Attempts => {
                    if self.runs > 0 {
                        out[f].push(counter_metric(labels(&[]), self.runs));
                    }
                }
                Shape::Failures => {
                    for (r, n) in self
                        .failures
                        .iter()
                        .flat_map(|f| Reason::ALL.iter().zip(f.iter()))
                    {
                        if *n > 0 {
                            out[f].push(counter_metric(labels(&[pair("reason", r.as_str())]), *n));
                        }
                    }
                }
                Shape::Steps => {
                    for (step, v) in self.steps(f).into_iter().flatten() {
                        let mut l = labels(&[]);
                        l.push(pair("step", step));
                        out[f].push(gauge_metric(l, v));
                    }
                }
                Shape::Info => {
                    if self.configured {
                        out[f].push(gauge_metric(
                            labels(&[
                                pair("link_class", &self.link_class),
                                pair("role", self.role.as_str()),
                            ]),
                            1.0,
                        ));
                    }
                }
            }
        }
    }
}

fn pair(name: &str, value: &str) -> LabelPair {
    let mut p = LabelPair::default();
    p.set_name(name.to_owned());
    p.set_value(value.to_owned());
    p
}

fn gauge_metric(labels: Vec<LabelPair>, value: f64) -> Metric {
    let mut g = proto::Gauge::default();
    g.set_value(value);
    let mut m = Metric::from_label(labels);
    m.set_gauge(g);
    m
}

fn counter_metric(labels: Vec<LabelPair>, value: u64) -> Metric {
    let mut c = proto::Counter::default();
    c.set_value(value as f64);
    let mut m = Metric::from_label(labels);
    m.set_counter(c);
    m
}

#[derive(Default)]
struct Table {
    index: HashMap<CheckId, usize>,
    slots: Vec<Slot>,
}

impl Table {
    /// The slot of `c`, created on first sight; a changed kind starts it afresh.
    fn slot(&mut self, c: &CheckDef, hist: &HistogramVec) -> &mut Slot {
        let i = match self.index.get(&c.id) {
            Some(&i) => i,
            None => {
                self.slots.push(Slot::new(c, false, hist));
                self.index.insert(c.id.clone(), self.slots.len() - 1);
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[i];
        if slot.kind != c.probe.kind() {
            *slot = Slot::new(c, slot.configured, hist);
        } else {
            slot.refresh(c, hist);
        }
        slot
    }
}

/// Every per-check family: the slots, their descriptors and the per-kind duration histogram
/// each run also feeds.
#[derive(Clone)]
pub(super) struct CheckSeries {
    table: Arc<Mutex<Table>>,
    descs: Arc<Vec<Desc>>,
    duration_hist: HistogramVec,
    /// `vantage` of this instance's own runs (its name on a shared store); agent-run copies
    /// keep their `site:<slug>`.
    own_vantage: Arc<Mutex<Option<Arc<str>>>>,
}

impl CheckSeries {
    pub(super) fn new(duration_hist: HistogramVec) -> CheckSeries {
        let descs = FAMILIES
            .iter()
            .map(|f| {
                let mut labels: Vec<String> = ["site", "service", "check", "kind"]
                    .map(String::from)
                    .into();
                match f.shape {
                    Shape::Value | Shape::Rtt | Shape::Attempts => {}
                    Shape::Phases => labels.push("phase".into()),
                    Shape::Failures => labels.push("reason".into()),
                    Shape::Info => labels.extend(["role".into(), "link_class".into()]),
                    Shape::Steps => labels.push("step".into()),
                }
                Desc::new(f.name.into(), f.help.into(), labels, HashMap::new())
                    .expect("valid metric")
            })
            .collect();
        CheckSeries {
            table: Arc::default(),
            descs: Arc::new(descs),
            duration_hist,
            own_vantage: Arc::default(),
        }
    }

    pub(super) fn set_own_vantage(&self, v: Option<&str>) {
        *self.own_vantage.lock().unwrap_or_else(|e| e.into_inner()) = v.map(Arc::from);
    }

    fn own_vantage(&self) -> Option<Arc<str>> {
        self.own_vantage
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic elsewhere while holding the lock leaves plain numbers: still fine to read.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps the slots of checks still configured with the same kind, drops the others (their
    /// series vanish) and creates empty slots for new checks.
    pub(super) fn set_inventory(&self, inv: &Inventory) {
        let mut t = self.lock();
        let old = std::mem::take(&mut *t);
        let mut old_slots: Vec<Option<Slot>> = old.slots.into_iter().map(Some).collect();
        let mut next = Table {
            index: HashMap::with_capacity(inv.checks.len()),
            slots: Vec::with_capacity(inv.checks.len()),
        };
        for c in &inv.checks {
            if next.index.contains_key(&c.id) {
                continue;
            }
            let kept = old
                .index
                .get(&c.id)
                .and_then(|&i| old_slots[i].take())
                .filter(|s| s.kind == c.probe.kind());
            let mut slot = kept.unwrap_or_else(|| Slot::new(c, true, &self.duration_hist));
            slot.configured = true;
            slot.refresh(c, &self.duration_hist);
            next.index.insert(c.id.clone(), next.slots.len());
            next.slots.push(slot);
        }
        *t = next;
    }

    pub(super) fn record(&self, c: &CheckDef, o: &Outcome, finished: f64) {
        self.lock().slot(c, &self.duration_hist).record(o, finished);
    }

    pub(super) fn set_state(&self, c: &CheckDef, code: f64) {
        self.lock().slot(c, &self.duration_hist).state = Some(code);
    }
}

/// A copy of every slot, sorted as the exposition lists them, with each check's label text
/// escaped once: the input of the text writer, which needs no lock.
pub(super) struct Snapshot {
    slots: Vec<Slot>,
    /// Slot indexes sorted by (check, kind, service, site).
    order: Vec<u32>,
    /// Runs of `order` with equal (check, kind): labels that sort between kind and service
    /// (phase, reason, role/link_class) order the samples within such a run.
    groups: Vec<std::ops::Range<usize>>,
    /// Per slot: `check="…",kind="…"` and `service="…",site="…"` in `text`.
    spans: Vec<[u32; 3]>,
    text: String,
    le: Vec<String>,
}

impl CheckSeries {
    pub(super) fn snapshot(&self) -> Snapshot {
        // Plain numbers and Arc'd names: the lock is held for a memcpy, not for the render.
        let slots = self.lock().slots.clone();
        let own = self.own_vantage();
        let mut order: Vec<u32> = (0..slots.len() as u32).collect();
        order.sort_unstable_by(|a, b| {
            slots[*a as usize]
                .sort_key()
                .cmp(&slots[*b as usize].sort_key())
        });
        let mut groups = Vec::new();
        let mut start = 0;
        for i in 1..=order.len() {
            let same = |a: u32, b: u32| {
                let (a, b) = (&slots[a as usize], &slots[b as usize]);
                a.id.name == b.id.name && a.kind == b.kind
            };
            if i == order.len() || !same(order[i - 1], order[i]) {
                groups.push(start..i);
                start = i;
            }
        }
        let mut text = String::with_capacity(slots.len() * 64);
        let spans = slots
            .iter()
            .map(|s| {
                let at = text.len() as u32;
                text.push_str("check=\"");
                push_escaped(&mut text, &s.id.name);
                text.push_str("\",kind=\"");
                text.push_str(s.kind.as_str());
                text.push('"');
                let mid = text.len() as u32;
                text.push_str("service=\"");
                push_escaped(&mut text, s.id.service.as_deref().unwrap_or(""));
                text.push_str("\",site=\"");
                push_escaped(&mut text, s.id.site.as_deref().unwrap_or(""));
                text.push('"');
                if let Some(v) = s.id.vantage() {
                    text.push_str(",vantage=\"");
                    push_escaped(&mut text, &v);
                    text.push('"');
                } else if let Some(v) = own.as_deref() {
                    text.push_str(",vantage=\"");
                    push_escaped(&mut text, v);
                    text.push('"');
                }
                [at, mid, text.len() as u32]
            })
            .collect();
        Snapshot {
            slots,
            order,
            groups,
            spans,
            text,
            le: LATENCY_BUCKETS.iter().map(|b| b.to_string()).collect(),
        }
    }
}

/// Escapes a label value as the text format (and `TextEncoder`) does.
fn push_escaped(out: &mut String, v: &str) {
    if !v.contains(['\\', '"', '\n']) {
        out.push_str(v);
        return;
    }
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

impl Snapshot {
    /// Names of the per-check families, with the index `write` takes.
    pub(super) fn families() -> impl Iterator<Item = (usize, &'static str)> {
        FAMILIES.iter().map(|f| f.name).enumerate()
    }

    fn labels(&self, slot: u32) -> (&str, &str) {
        let [a, m, e] = self.spans[slot as usize];
        (
            &self.text[a as usize..m as usize],
            &self.text[m as usize..e as usize],
        )
    }

    /// Writes family `f` in the text format, byte for byte what `TextEncoder` writes for
    /// [`CheckSeries::collect`]'s family (HELP, TYPE, samples sorted by label values), or
    /// nothing when no check has that series. Hands `out` to `flush` whenever it holds `chunk`
    /// bytes or more after a sample (a family of 20,000 checks is megabytes; the caller streams
    /// it); `flush` takes the text and may leave `out` empty.
    pub(super) fn write_chunked(
        &self,
        f: usize,
        out: &mut String,
        chunk: usize,
        flush: &mut dyn FnMut(&mut String),
    ) {
        let family = &FAMILIES[f];
        let start = out.len();
        out.push_str("# HELP ");
        out.push_str(family.name);
        out.push(' ');
        // HELP escapes backslash and newline only.
        for c in family.help.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push_str("\n# TYPE ");
        out.push_str(family.name);
        out.push_str(match family.ty {
            MetricType::COUNTER => " counter\n",
            MetricType::HISTOGRAM => " histogram\n",
            _ => " gauge\n",
        });
        // Set once a sample is written: a family without one is taken back out.
        let mut wrote = false;
        let mut after_sample = |out: &mut String| {
            wrote = true;
            if out.len() >= chunk {
                flush(out);
            }
        };
        let name = family.name;
        let slot = |i: &u32| &self.slots[*i as usize];
        match family.shape {
            Shape::Value => {
                for i in &self.order {
                    if let Some(v) = slot(i).value(f) {
                        let (head, tail) = self.labels(*i);
                        sample(out, name, "", head, &[], tail, v);
                        after_sample(out);
                    }
                }
            }
            Shape::Attempts => {
                for i in &self.order {
                    let s = slot(i);
                    if s.runs > 0 {
                        let (head, tail) = self.labels(*i);
                        sample(out, name, "", head, &[], tail, s.runs as f64);
                        after_sample(out);
                    }
                }
            }
            Shape::Rtt => {
                for i in &self.order {
                    let s = slot(i);
                    let Some(h) = s.rtt().filter(|_| s.runs > 0) else {
                        continue;
                    };
                    let (head, tail) = self.labels(*i);
                    let mut cumulative = 0;
                    for (le, n) in self.le.iter().zip(h.counts) {
                        cumulative += n;
                        let le = [("le", le.as_str())];
                        sample_le(out, name, head, tail, &le, cumulative as f64);
                    }
                    let count: u64 = h.counts.iter().sum();
                    sample_le(out, name, head, tail, &[("le", "+Inf")], count as f64);
                    sample(out, name, "_sum", head, &[], tail, h.sum);
                    sample(out, name, "_count", head, &[], tail, count as f64);
                    after_sample(out);
                }
            }
            Shape::Phases => {
                let names: &PhaseNames = match f {
                    HTTP_PHASE => &HTTP_PHASES,
                    ICMP_PHASE => &ICMP_PHASES,
                    _ => &DNS_PHASES,
                };
                for g in &self.groups {
                    let group = &self.order[g.clone()];
                    if group.iter().all(|i| slot(i).phases(f).is_none()) {
                        continue;
                    }
                    for (phase, k) in names {
                        for i in group {
                            if let Some((_, values)) = slot(i).phases(f) {
                                let (head, tail) = self.labels(*i);
                                sample(out, name, "", head, &[("phase", phase)], tail, values[*k]);
                                after_sample(out);
                            }
                        }
                    }
                }
            }
            Shape::Failures => {
                let mut reasons = Reason::ALL;
                reasons.sort_by_key(|r| r.as_str());
                for g in &self.groups {
                    let group = &self.order[g.clone()];
                    if group.iter().all(|i| slot(i).failures.is_none()) {
                        continue;
                    }
                    for r in reasons {
                        for i in group {
                            let n = slot(i).failures.as_ref().map_or(0, |f| f[r as usize]);
                            if n > 0 {
                                let (head, tail) = self.labels(*i);
                                let reason = [("reason", r.as_str())];
                                sample(out, name, "", head, &reason, tail, n as f64);
                                after_sample(out);
                            }
                        }
                    }
                }
            }
            Shape::Steps => {
                for i in &self.order {
                    let (head, tail) = self.labels(*i);
                    for (step, v) in slot(i).steps(f).into_iter().flatten() {
                        sample_after(out, name, head, tail, ("step", step), v);
                        after_sample(out);
                    }
                }
            }
            Shape::Info => {
                for g in &self.groups {
                    let mut group: Vec<u32> = self.order[g.clone()]
                        .iter()
                        .copied()
                        .filter(|i| slot(i).configured)
                        .collect();
                    // Stable: (service, site) order stays within equal (link_class, role).
                    group.sort_by(|a, b| {
                        let (a, b) = (slot(a), slot(b));
                        (&*a.link_class, a.role.as_str()).cmp(&(&*b.link_class, b.role.as_str()))
                    });
                    for i in &group {
                        let s = slot(i);
                        let (head, tail) = self.labels(*i);
                        let extra = [("link_class", &*s.link_class), ("role", s.role.as_str())];
                        sample(out, name, "", head, &extra, tail, 1.0);
                        after_sample(out);
                    }
                }
            }
        }
        if !wrote {
            out.truncate(start);
        }
    }
}

/// One line: `name{head,extra…,tail} value`.
fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    head: &str,
    extra: &[(&str, &str)],
    tail: &str,
    v: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    out.push('{');
    out.push_str(head);
    for (k, val) in extra {
        out.push(',');
        out.push_str(k);
        out.push_str("=\"");
        push_escaped(out, val);
        out.push('"');
    }
    out.push(',');
    out.push_str(tail);
    out.push_str("} ");
    push_value(out, v);
}

/// `v` as f64's Display writes it (what TextEncoder uses), with a shortcut for whole numbers
/// (counts, timestamps, status codes: most samples), then a newline.
fn push_value(out: &mut String, v: f64) {
    use std::fmt::Write;
    if v.fract() == 0.0 && v.abs() < 1e15 && !(v == 0.0 && v.is_sign_negative()) {
        let _ = writeln!(out, "{}", v as i64);
    } else {
        let _ = writeln!(out, "{v}");
    }
}

/// A line whose extra label sorts after `site` (`step`): `name{head,tail,k="v"} value`.
fn sample_after(out: &mut String, name: &str, head: &str, tail: &str, kv: (&str, &str), v: f64) {
    out.push_str(name);
    out.push('{');
    out.push_str(head);
    out.push(',');
    out.push_str(tail);
    out.push(',');
    out.push_str(kv.0);
    out.push_str("=\"");
    push_escaped(out, kv.1);
    out.push_str("\"} ");
    push_value(out, v);
}

/// A histogram bucket line: the `le` label comes after the others.
fn sample_le(out: &mut String, name: &str, head: &str, tail: &str, le: &[(&str, &str)], v: f64) {
    out.push_str(name);
    out.push_str("_bucket{");
    out.push_str(head);
    out.push(',');
    out.push_str(tail);
    out.push_str(",le=\"");
    out.push_str(le[0].1);
    out.push_str("\"} ");
    push_value(out, v);
}

/// Only the descriptors of [`CheckSeries`]: registered so the registry refuses a clash with a
/// per-check name, while collecting nothing (the render path writes those families itself).
pub(super) struct Names(Arc<Vec<Desc>>);

impl Collector for Names {
    fn desc(&self) -> Vec<&Desc> {
        self.0.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        Vec::new()
    }
}

impl CheckSeries {
    pub(super) fn names(&self) -> Names {
        Names(self.descs.clone())
    }
}

impl Collector for CheckSeries {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        // Copy out under the lock (plain numbers and Arc'd names), build the label pairs
        // outside it.
        let slots = self.lock().slots.clone();
        let mut out: Vec<Vec<Metric>> = FAMILIES
            .iter()
            .map(|_| Vec::with_capacity(slots.len()))
            .collect();
        let own = self.own_vantage();
        for s in &slots {
            s.emit(&mut out, own.as_deref());
        }
        FAMILIES
            .iter()
            .zip(out)
            .map(|(f, metrics)| {
                let mut mf = MetricFamily::default();
                mf.set_name(f.name.into());
                mf.set_help(f.help.into());
                mf.set_field_type(f.ty);
                mf.set_metric(metrics);
                mf
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_index_is_its_position_in_all() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?}");
        }
    }

    #[test]
    fn rtt_histogram_follows_prometheus_bucket_rule() {
        let mut h = RttHistogram::default();
        for v in [0.001, 0.0011, 30.0, 31.0] {
            h.observe(v);
        }
        let p = h.proto();
        let cum: Vec<u64> = p
            .get_bucket()
            .iter()
            .map(|b| b.cumulative_count())
            .collect();
        assert_eq!(cum[0], 1, "a value on a bound goes into that bucket");
        assert_eq!(cum[1], 2);
        assert_eq!(cum[13], 3);
        assert_eq!(p.get_sample_count(), 4);
        assert!((p.get_sample_sum() - 61.0021).abs() < 1e-9);
    }

    #[test]
    fn values_print_as_f64_display() {
        for v in [
            0.0,
            -0.0,
            1.0,
            -3.0,
            0.5,
            1e15,
            1e16,
            123456789.0,
            1_800_000_000.0,
            2.5e-7,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.1 + 0.2,
            9007199254740993.0,
        ] {
            let mut out = String::new();
            push_value(&mut out, v);
            assert_eq!(out, format!("{v}\n"), "{v:?}");
        }
    }

    #[test]
    fn slot_stays_small() {
        // The point of the design: a check costs bytes, not kilobytes.
        assert!(
            std::mem::size_of::<Slot>() <= 256,
            "{}",
            std::mem::size_of::<Slot>()
        );
    }
}
