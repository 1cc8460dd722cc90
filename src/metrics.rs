//! Every metric name lives here, on an owned registry (never the global one).
//!
//! Per-check series carry `site`, `service`, `check`, `kind` (exactly one of site/service is
//! non-empty). Site attributes come once per site in `lienthong_site_info` for joins. No URL,
//! IP or error text ever becomes a label value.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::config::{CheckDef, Inventory};
use crate::probe::{Details, Outcome, Phases, Reason};

const CHECK_LABELS: [&str; 4] = ["site", "service", "check", "kind"];

/// Handles to every metric the service exports.
pub struct Metrics {
    registry: Registry,
    success: GaugeVec,
    duration: GaugeVec,
    http_phase: GaugeVec,
    http_status: GaugeVec,
    http_content_length: GaugeVec,
    ssl_expiry: GaugeVec,
    icmp_phase: GaugeVec,
    icmp_rtt_min: GaugeVec,
    icmp_rtt_max: GaugeVec,
    icmp_rtt_stddev: GaugeVec,
    icmp_loss: GaugeVec,
    icmp_sent: GaugeVec,
    icmp_received: GaugeVec,
    icmp_rtt_hist: HistogramVec,
    dns_phase: GaugeVec,
    dns_answer_rrs: GaugeVec,
    dns_authority_rrs: GaugeVec,
    dns_additional_rrs: GaugeVec,
    dns_query_succeeded: GaugeVec,
    duration_hist: HistogramVec,
    attempts: IntCounterVec,
    failures: IntCounterVec,
    last_run: GaugeVec,
    site_info: IntGaugeVec,
    service_info: IntGaugeVec,
    check_info: IntGaugeVec,
    pub build_info: IntGaugeVec,
    pub reload_ok: IntGauge,
    pub reload_ts: Gauge,
    pub reloads: IntCounterVec,
    pub lag: Histogram,
    pub in_flight: IntGauge,
    pub checks_configured: IntGauge,
    check_state: GaugeVec,
    site_status: IntGaugeVec,
    incidents_open: IntGaugeVec,
    incidents_total: IntCounterVec,
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

fn gauge(r: &Registry, name: &str, help: &str, extra: &[&str]) -> GaugeVec {
    let labels: Vec<&str> = CHECK_LABELS.iter().chain(extra).copied().collect();
    let g = GaugeVec::new(Opts::new(name, help), &labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn hist(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets),
        &CHECK_LABELS,
    )
    .expect("valid metric");
    r.register(Box::new(h.clone())).expect("unique metric");
    h
}

/// Latency buckets from 1 ms to 30 s: loopback to island satellite links.
fn latency_buckets() -> Vec<f64> {
    vec![
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ]
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
        let m = Metrics {
            success: gauge(
                &r,
                "probe_success",
                "Whether the last run of the check succeeded (1) or not (0)",
                &[],
            ),
            duration: gauge(
                &r,
                "probe_duration_seconds",
                "How long the last run of the check took",
                &[],
            ),
            http_phase: gauge(
                &r,
                "probe_http_duration_seconds",
                "Duration of the last HTTP request by phase, summed over redirects",
                &["phase"],
            ),
            http_status: gauge(
                &r,
                "probe_http_status_code",
                "Response HTTP status code of the last run (0 when none)",
                &[],
            ),
            http_content_length: gauge(
                &r,
                "probe_http_uncompressed_body_length",
                "Length of the last response body in bytes",
                &[],
            ),
            ssl_expiry: gauge(
                &r,
                "probe_ssl_earliest_cert_expiry",
                "Earliest notAfter over the presented certificate chain, Unix seconds",
                &[],
            ),
            icmp_phase: gauge(
                &r,
                "probe_icmp_duration_seconds",
                "Duration of the last ICMP round by phase (rtt = mean RTT)",
                &["phase"],
            ),
            icmp_rtt_min: gauge(
                &r,
                "probe_icmp_duration_rtt_min_seconds",
                "Minimum RTT of the last echo round",
                &[],
            ),
            icmp_rtt_max: gauge(
                &r,
                "probe_icmp_duration_rtt_max_seconds",
                "Maximum RTT of the last echo round",
                &[],
            ),
            icmp_rtt_stddev: gauge(
                &r,
                "probe_icmp_duration_rtt_stddev_seconds",
                "Jitter: population standard deviation of the RTTs of the last echo round",
                &[],
            ),
            icmp_loss: gauge(
                &r,
                "probe_icmp_loss_ratio",
                "Share of echo requests of the last round that got no reply (0..1)",
                &[],
            ),
            icmp_sent: gauge(
                &r,
                "probe_icmp_packets_sent",
                "Echo requests sent in the last round",
                &[],
            ),
            icmp_received: gauge(
                &r,
                "probe_icmp_packets_received",
                "Echo replies received in the last round",
                &[],
            ),
            icmp_rtt_hist: hist(
                &r,
                "lienthong_icmp_rtt_seconds",
                "Distribution of every echo RTT (Smokeping-style spread)",
                latency_buckets(),
            ),
            dns_phase: gauge(
                &r,
                "probe_dns_duration_seconds",
                "Duration of the last DNS request by phase",
                &["phase"],
            ),
            dns_answer_rrs: gauge(
                &r,
                "probe_dns_answer_rrs",
                "Number of answer records in the last response",
                &[],
            ),
            dns_authority_rrs: gauge(
                &r,
                "probe_dns_authority_rrs",
                "Number of authority records in the last response",
                &[],
            ),
            dns_additional_rrs: gauge(
                &r,
                "probe_dns_additional_rrs",
                "Number of additional records in the last response",
                &[],
            ),
            dns_query_succeeded: gauge(
                &r,
                "probe_dns_query_succeeded",
                "Whether the last DNS query got a response (1) or not (0)",
                &[],
            ),
            duration_hist: {
                // Per kind, role and class rather than per check: 16 samples × 10,000 checks
                // would dominate the scrape; per-check latency is in probe_duration_seconds.
                let h = HistogramVec::new(
                    HistogramOpts::new(
                        "lienthong_probe_duration_seconds",
                        "Distribution of run durations by probe kind, check role and link class",
                    )
                    .buckets(latency_buckets()),
                    &["kind", "role", "link_class"],
                )
                .expect("valid metric");
                r.register(Box::new(h.clone())).expect("unique metric");
                h
            },
            attempts: {
                let c = IntCounterVec::new(
                    Opts::new("lienthong_probe_attempts_total", "Runs of the check"),
                    &CHECK_LABELS,
                )
                .expect("valid metric");
                r.register(Box::new(c.clone())).expect("unique metric");
                c
            },
            failures: {
                let labels: Vec<&str> = CHECK_LABELS.iter().chain(&["reason"]).copied().collect();
                let c = IntCounterVec::new(
                    Opts::new(
                        "lienthong_probe_failures_total",
                        "Failed runs of the check by reason",
                    ),
                    &labels,
                )
                .expect("valid metric");
                r.register(Box::new(c.clone())).expect("unique metric");
                c
            },
            last_run: gauge(
                &r,
                "lienthong_probe_last_run_timestamp_seconds",
                "When the check last finished, Unix seconds",
                &[],
            ),
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
            check_info: int_gauge_vec(
                "lienthong_check_info",
                "A configured check (value 1): its role and link class",
                &["site", "service", "check", "kind", "role", "link_class"],
            ),
            build_info: int_gauge_vec(
                "lienthong_build_info",
                "Build information (value 1)",
                &["version", "revision"],
            ),
            reload_ok: {
                let g = IntGauge::new(
                    "lienthong_config_last_reload_successful",
                    "Whether the last config (re)load succeeded",
                )
                .expect("valid metric");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            reload_ts: {
                let g = Gauge::new(
                    "lienthong_config_last_reload_success_timestamp_seconds",
                    "When the config was last loaded successfully, Unix seconds",
                )
                .expect("valid metric");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            reloads: int_counter_vec(
                &r,
                "lienthong_config_reloads_total",
                "Config reload attempts by result",
                &["result"],
            ),
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
            check_state: gauge(
                &r,
                "lienthong_check_state",
                "Health of the check: 0 unknown, 1 up, 2 degraded, 3 failing (unconfirmed), 4 down",
                &[],
            ),
            site_status: int_gauge_vec(
                "lienthong_site_status",
                "Rolled-up status of a site: 0 unknown, 1 up, 2 degraded, 4 down, 5 maintenance",
                &["site"],
            ),
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

    /// Publishes the inventory: info series, and drops series of checks no longer configured.
    pub fn set_inventory(&self, inv: &Inventory, previous: Option<&Inventory>) {
        if let Some(prev) = previous {
            for c in &prev.checks {
                if !inv
                    .checks
                    .iter()
                    .any(|n| n.id == c.id && n.probe.kind() == c.probe.kind())
                {
                    self.forget(c);
                }
            }
            self.site_info.reset();
            // Removed sites vanish; the engine's next tick (≤ 1 s) re-sets the others.
            self.site_status.reset();
            self.service_info.reset();
            self.check_info.reset();
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
        for c in &inv.checks {
            let [site, service, check, kind] = labels(c);
            self.check_info
                .with_label_values(&[site, service, check, kind, c.role.as_str(), &c.link_class])
                .set(1);
        }
        self.checks_configured.set(inv.checks.len() as i64);
    }

    /// Removes every series of a check (after a reload removed it).
    fn forget(&self, c: &CheckDef) {
        let l = labels(c);
        for g in [
            &self.success,
            &self.duration,
            &self.http_status,
            &self.http_content_length,
            &self.ssl_expiry,
            &self.icmp_rtt_min,
            &self.icmp_rtt_max,
            &self.icmp_rtt_stddev,
            &self.icmp_loss,
            &self.icmp_sent,
            &self.icmp_received,
            &self.dns_answer_rrs,
            &self.dns_authority_rrs,
            &self.dns_additional_rrs,
            &self.dns_query_succeeded,
            &self.last_run,
            &self.check_state,
        ] {
            let _ = g.remove_label_values(&l);
        }
        let _ = self.icmp_rtt_hist.remove_label_values(&l);
        let _ = self.attempts.remove_label_values(&l);
        for (g, phases) in [
            (
                &self.http_phase,
                &["resolve", "connect", "tls", "processing", "transfer"][..],
            ),
            (&self.icmp_phase, &["resolve", "setup", "rtt"][..]),
            (&self.dns_phase, &["resolve", "connect", "request"][..]),
        ] {
            for p in phases {
                let _ = g.remove_label_values(&[l[0], l[1], l[2], l[3], p]);
            }
        }
        for r in Reason::ALL {
            let _ = self
                .failures
                .remove_label_values(&[l[0], l[1], l[2], l[3], r.as_str()]);
        }
    }

    /// Records one run of a check.
    pub fn record(&self, c: &CheckDef, o: &Outcome, finished: SystemTime) {
        let l = labels(c);
        self.success
            .with_label_values(&l)
            .set(if o.success { 1.0 } else { 0.0 });
        let secs = o.duration.as_secs_f64();
        self.duration.with_label_values(&l).set(secs);
        self.duration_hist
            .with_label_values(&[l[3], c.role.as_str(), &c.link_class])
            .observe(secs);
        self.attempts.with_label_values(&l).inc();
        if let Some(r) = o.reason() {
            self.failures
                .with_label_values(&[l[0], l[1], l[2], l[3], r.as_str()])
                .inc();
        }
        self.last_run.with_label_values(&l).set(
            finished
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64(),
        );
        match &o.details {
            Details::Http(d) => {
                self.phases(&self.http_phase, &l, &d.phases);
                self.http_status
                    .with_label_values(&l)
                    .set(d.status.unwrap_or(0) as f64);
                self.http_content_length
                    .with_label_values(&l)
                    .set(d.body_bytes as f64);
                if let Some(e) = d.cert_earliest_expiry {
                    self.ssl_expiry.with_label_values(&l).set(e as f64);
                }
            }
            Details::Tcp(d) => {
                if let Some(e) = d.cert_earliest_expiry {
                    self.ssl_expiry.with_label_values(&l).set(e as f64);
                }
            }
            Details::Icmp(d) => {
                let set = |g: &GaugeVec, phase: &str, v: Option<f64>| {
                    g.with_label_values(&[l[0], l[1], l[2], l[3], phase])
                        .set(v.unwrap_or(0.0));
                };
                set(&self.icmp_phase, "resolve", d.resolve);
                set(&self.icmp_phase, "setup", d.setup);
                set(&self.icmp_phase, "rtt", d.rtt_avg);
                self.icmp_rtt_min
                    .with_label_values(&l)
                    .set(d.rtt_min.unwrap_or(0.0));
                self.icmp_rtt_max
                    .with_label_values(&l)
                    .set(d.rtt_max.unwrap_or(0.0));
                self.icmp_rtt_stddev
                    .with_label_values(&l)
                    .set(d.jitter.unwrap_or(0.0));
                self.icmp_loss.with_label_values(&l).set(d.loss_ratio);
                self.icmp_sent.with_label_values(&l).set(d.sent as f64);
                self.icmp_received
                    .with_label_values(&l)
                    .set(d.received as f64);
                let h = self.icmp_rtt_hist.with_label_values(&l);
                d.rtts.iter().for_each(|r| h.observe(*r));
            }
            Details::Dns(d) => {
                let set = |phase: &str, v: Option<f64>| {
                    self.dns_phase
                        .with_label_values(&[l[0], l[1], l[2], l[3], phase])
                        .set(v.unwrap_or(0.0));
                };
                set("resolve", Some(0.0));
                set("connect", d.connect);
                set("request", d.request);
                self.dns_answer_rrs
                    .with_label_values(&l)
                    .set(d.answer_rrs as f64);
                self.dns_authority_rrs
                    .with_label_values(&l)
                    .set(d.authority_rrs as f64);
                self.dns_additional_rrs
                    .with_label_values(&l)
                    .set(d.additional_rrs as f64);
                self.dns_query_succeeded
                    .with_label_values(&l)
                    .set(if d.rcode.is_some() { 1.0 } else { 0.0 });
            }
            Details::None => {}
        }
    }

    fn phases(&self, g: &GaugeVec, l: &[&str; 4], p: &Phases) {
        for (name, v) in [
            ("resolve", p.resolve),
            ("connect", p.connect),
            ("tls", p.tls),
            ("processing", p.processing),
            ("transfer", p.transfer),
        ] {
            g.with_label_values(&[l[0], l[1], l[2], l[3], name])
                .set(v.map(|d: Duration| d.as_secs_f64()).unwrap_or(0.0));
        }
    }

    pub fn set_check_state(&self, c: &CheckDef, s: crate::health::State) {
        self.check_state
            .with_label_values(&labels(c))
            .set(state_code(s));
    }

    pub fn set_site_status(&self, site: &str, s: crate::health::SiteStatus) {
        self.site_status
            .with_label_values(&[site])
            .set(site_status_code(s));
    }

    /// Replaces the open-incident gauges with `counts`.
    pub fn set_open_incidents(&self, counts: &crate::incidents::engine::OpenCounts) {
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

    /// Marks a config (re)load; `ok` false keeps the old config running.
    pub fn config_loaded(&self, ok: bool) {
        self.reload_ok.set(ok as i64);
        self.reloads
            .with_label_values(&[if ok { "success" } else { "failure" }])
            .inc();
        if ok {
            self.reload_ts.set(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64(),
            );
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
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
