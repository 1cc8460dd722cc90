//! Every metric name lives here, on an owned registry (never the global one).
//!
//! Per-check series carry `site`, `service`, `check`, `kind` (exactly one of site/service is
//! non-empty). Site attributes come once per site in `lienthong_site_info` for joins. No URL,
//! IP or error text ever becomes a label value.
//!
//! The per-check families are kept as compact per-check state and rendered by a custom
//! collector ([`check_series`]); the few process-wide ones are ordinary prometheus metrics.
//! Both go through the same registry and `TextEncoder`.

mod check_series;
mod reload_series;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::config::{CheckDef, Inventory};
use crate::probe::Outcome;

use check_series::{CheckSeries, LATENCY_BUCKETS};

/// Handles to every metric the service exports.
pub struct Metrics {
    registry: Registry,
    checks: CheckSeries,
    site_info: IntGaugeVec,
    service_info: IntGaugeVec,
    pub build_info: IntGaugeVec,
    /// `lienthong_config_*` reload families, updated and scraped under one lock.
    reload: reload_series::ReloadSeries,
    pub lag: Histogram,
    pub in_flight: IntGauge,
    pub checks_configured: IntGauge,
    /// 1 while the prober itself is isolated: its measurements say nothing about the sites.
    pub monitor_blind: IntGauge,
    site_status: IntGaugeVec,
    link_rtt_baseline: prometheus::GaugeVec,
    incidents_open: IntGaugeVec,
    incidents_total: IntCounterVec,
    /// Size of the last exposition, to allocate the next one at once.
    last_len: AtomicUsize,
    /// `/metrics`: one render at a time (a scrape storm costs one core at most).
    pub scrape_turn: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Numeric codes of `lienthong_check_state` and `lienthong_site_status` (documented in the
/// README; Grafana value mappings use them).
pub fn state_code(s: crate::health::State) -> f64 {
    use crate::health::State::*;
    match s {
        Unknown => 0.0,
        Up => 1.0,
        Degraded => 2.0,
        Failing => 3.0,
        Down => 4.0,
    }
}

pub fn site_status_code(s: crate::health::SiteStatus) -> i64 {
    use crate::health::SiteStatus::*;
    match s {
        Unknown => 0,
        Up => 1,
        Degraded => 2,
        Down => 4,
        Maintenance => 5,
    }
}

impl Metrics {
    /// Registers everything. Panics only on a programming error (duplicate name), at start-up.
    pub fn new() -> Metrics {
        let r = Registry::new();
        let int_gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            r.register(Box::new(g.clone())).expect("unique metric");
            g
        };
        // Per kind, role and class rather than per check: 16 samples × 10,000 checks would
        // dominate the scrape; per-check latency is in probe_duration_seconds.
        let duration_hist = HistogramVec::new(
            HistogramOpts::new(
                "lienthong_probe_duration_seconds",
                "Distribution of run durations by probe kind, check role and link class",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["kind", "role", "link_class"],
        )
        .expect("valid metric");
        r.register(Box::new(duration_hist.clone()))
            .expect("unique metric");
        let checks = CheckSeries::new(duration_hist);
        // Reserves the per-check names (a clash is caught here); `render` writes those
        // families itself, `gather` collects them.
        r.register(Box::new(checks.names())).expect("unique metric");
        let m = Metrics {
            checks,
            site_info: int_gauge_vec(
                "lienthong_site_info",
                "Reference data of a site (value 1), for joins",
                &[
                    "site",
                    "code",
                    "name",
                    "kind",
                    "former_province",
                    "former_district",
                    "island",
                    "link_class",
                ],
            ),
            service_info: int_gauge_vec(
                "lienthong_service_info",
                "A shared service of the city (value 1), for joins",
                &["service", "name"],
            ),
            build_info: int_gauge_vec(
                "lienthong_build_info",
                "Build information (value 1)",
                &["version", "revision"],
            ),
            reload: {
                let c = reload_series::ReloadSeries::new();
                r.register(Box::new(c.clone())).expect("unique metric");
                c
            },
            lag: {
                let h = Histogram::with_opts(HistogramOpts::new("lienthong_scheduler_lag_seconds", "Delay between a run's planned start and its real start (queueing included)").buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0])).expect("valid metric");
                r.register(Box::new(h.clone())).expect("unique metric");
                h
            },
            in_flight: {
                let g = IntGauge::new("lienthong_probes_in_flight", "Probes running now")
                    .expect("valid metric");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            checks_configured: {
                let g = IntGauge::new(
                    "lienthong_checks_configured",
                    "Checks in the running config",
                )
                .expect("valid metric");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            monitor_blind: {
                let g = IntGauge::new(
                    "lienthong_monitor_blind",
                    "1 while the prober itself is isolated (its prober incident open): runs then are kept out of baselines, availability and readiness",
                )
                .expect("valid metric");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            site_status: int_gauge_vec(
                "lienthong_site_status",
                "Rolled-up status of a site: 0 unknown, 1 up, 2 degraded, 4 down, 5 maintenance",
                &["site"],
            ),
            link_rtt_baseline: {
                let g = prometheus::GaugeVec::new(
                    Opts::new(
                        "lienthong_link_rtt_baseline_seconds",
                        "The link's normal RTT: weighted mean of its passing rounds' median RTT (rounds far above it are a latency rise)",
                    ),
                    &["site"],
                )
                .expect("valid metric");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            incidents_open: int_gauge_vec(
                "lienthong_incidents_open",
                "Unresolved incidents",
                &["severity", "scope", "team"],
            ),
            incidents_total: int_counter_vec(
                &r,
                "lienthong_incidents_total",
                "Incidents opened since the process started",
                &["severity", "scope"],
            ),
            registry: r,
            last_len: AtomicUsize::new(0),
            scrape_turn: std::sync::Arc::new(tokio::sync::Semaphore::new(1)),
        };
        m.build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                option_env!("LIENTHONG_REVISION").unwrap_or("unknown"),
            ])
            .set(1);
        m
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Publishes the inventory: info series, and drops series of checks no longer configured
    /// (or whose kind changed).
    /// `vantage` on this instance's own per-check series (its instance name on a shared
    /// store; None: no label, one vantage point). Set before the first inventory.
    pub fn set_vantage(&self, vantage: Option<&str>) {
        self.checks.set_own_vantage(vantage);
    }

    pub fn set_inventory(&self, inv: &Inventory, previous: Option<&Inventory>) {
        self.checks.set_inventory(inv);
        if previous.is_some() {
            self.site_info.reset();
            // Removed sites vanish; the engine's next tick (≤ 1 s) re-sets the others.
            self.site_status.reset();
            self.link_rtt_baseline.reset();
            self.service_info.reset();
        }
        for s in &inv.sites {
            self.site_info
                .with_label_values(&[
                    s.slug.as_str(),
                    &s.code,
                    &s.name,
                    s.kind.as_str(),
                    &s.former_province,
                    &s.former_district,
                    if s.island { "true" } else { "false" },
                    &s.link_class,
                ])
                .set(1);
        }
        for s in &inv.services {
            self.service_info
                .with_label_values(&[s.slug.as_str(), &s.name])
                .set(1);
        }
        self.checks_configured.set(inv.checks.len() as i64);
    }

    /// Records one run of a check: one slot lookup, then plain stores.
    pub fn record(&self, c: &CheckDef, o: &Outcome, finished: SystemTime) {
        let finished = finished
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        self.checks.record(c, o, finished);
    }

    pub fn set_check_state(&self, c: &CheckDef, s: crate::health::State) {
        self.checks.set_state(c, state_code(s));
    }

    pub fn set_site_status(&self, site: &str, s: crate::health::SiteStatus) {
        self.site_status
            .with_label_values(&[site])
            .set(site_status_code(s));
    }

    /// The RTT baseline of a site's link, once it has one.
    pub fn set_link_baseline(&self, site: &str, baseline: Option<Duration>) {
        if let Some(b) = baseline {
            self.link_rtt_baseline
                .with_label_values(&[site])
                .set(b.as_secs_f64());
        }
    }

    /// Replaces the open-incident gauges with `counts`.
    pub fn set_open_incidents(&self, counts: &crate::incidents::correlation::OpenCounts) {
        self.incidents_open.reset();
        for ((sev, scope, team), n) in counts {
            let sev = serde_json::to_value(sev).ok();
            let scope = serde_json::to_value(scope).ok();
            let (Some(sev), Some(scope)) = (sev, scope) else {
                continue;
            };
            self.incidents_open
                .with_label_values(&[
                    sev.as_str().unwrap_or(""),
                    scope.as_str().unwrap_or(""),
                    team,
                ])
                .set(*n);
        }
    }

    pub fn incident_opened(&self, sev: crate::incidents::Severity, scope: crate::incidents::Scope) {
        let sev = serde_json::to_value(sev).unwrap_or_default();
        let scope = serde_json::to_value(scope).unwrap_or_default();
        self.incidents_total
            .with_label_values(&[sev.as_str().unwrap_or(""), scope.as_str().unwrap_or("")])
            .inc();
    }

    /// Marks a config (re)load; `ok` false keeps the old config running. `needs_restart`:
    /// how many file settings wait for a restart (None: unchanged).
    pub fn config_loaded(&self, ok: bool, needs_restart: Option<usize>) {
        self.reload.loaded(ok, needs_restart);
    }

    /// The text exposition format: the registry's families through `TextEncoder`, the
    /// per-check ones written straight from a snapshot of the check slots (the same bytes
    /// `TextEncoder` makes of [`Metrics::gather`], at a fraction of the allocations), merged in
    /// name order as `Registry::gather` sorts them.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(self.last_len.load(Ordering::Relaxed) + 4096);
        self.render_chunked(&mut out, usize::MAX, &mut |_| {});
        self.last_len.store(out.len(), Ordering::Relaxed);
        out
    }

    /// [`Metrics::render`] in pieces: `flush` gets `out` whenever it holds about `chunk` bytes
    /// (and may empty it); what is left at the end is the last piece. One snapshot, so the
    /// pieces make the same exposition; memory stays at a chunk instead of the whole page
    /// (13 MB at 10,000 checks).
    pub fn render_chunked(
        &self,
        out: &mut String,
        chunk: usize,
        flush: &mut dyn FnMut(&mut String),
    ) {
        let snapshot = self.checks.snapshot();
        let others = self.registry.gather();
        let mut parts: Vec<(&str, Option<usize>)> = others
            .iter()
            .enumerate()
            .map(|(i, mf)| (mf.name(), Some(i)))
            .collect();
        let mut own: Vec<(&str, usize)> = check_series::Snapshot::families()
            .map(|(f, name)| (name, f))
            .collect();
        parts.extend(own.iter().map(|(name, _)| (*name, None)));
        parts.sort_by(|a, b| a.0.cmp(b.0));
        own.sort_by(|a, b| a.0.cmp(b.0));
        let encoder = TextEncoder::new();
        let mut own = own.into_iter();
        for (_, other) in parts {
            match other {
                Some(i) => {
                    if let Err(e) = encoder.encode_utf8(&others[i..=i], out) {
                        tracing::error!(error = %e, "metrics exposition failed");
                    }
                    if out.len() >= chunk {
                        flush(out);
                    }
                }
                None => {
                    if let Some((_, f)) = own.next() {
                        snapshot.write_chunked(f, out, chunk, flush);
                    }
                }
            }
        }
    }

    /// Every family as prometheus protos (per-check ones through the collector): what
    /// `render` writes, for tools that want protos.
    pub fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        use prometheus::core::Collector;
        let mut all = self.registry.gather();
        all.extend(
            self.checks
                .collect()
                .into_iter()
                .filter(|mf| !mf.get_metric().is_empty())
                .map(|mut mf| {
                    // As Registry::gather: samples sorted by label values.
                    mf.mut_metric().sort_by(|a, b| {
                        let values = |m: &prometheus::proto::Metric| {
                            m.get_label()
                                .iter()
                                .map(|l| l.value().to_owned())
                                .collect::<Vec<_>>()
                        };
                        values(a).cmp(&values(b))
                    });
                    mf
                }),
        );
        all.sort_by(|a, b| a.name().cmp(b.name()));
        all
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn int_counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

/// The per-check label values: site, service, check, kind.
pub fn labels(c: &CheckDef) -> [&str; 4] {
    [
        c.id.site.as_deref().unwrap_or(""),
        c.id.service.as_deref().unwrap_or(""),
        &c.id.name,
        c.probe.kind().as_str(),
    ]
}
