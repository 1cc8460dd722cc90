//! The config (re)load families, written under one lock so a scrape never sees a reload half
//! counted (the counter moved but the "last successful" gauge or the restart count not yet).

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Gauge, IntCounterVec, IntGauge, Opts};

struct Families {
    ok: IntGauge,
    success_ts: Gauge,
    attempts: IntCounterVec,
    needs_restart: IntGauge,
}

struct Inner {
    families: Mutex<Families>,
    descs: Vec<Desc>,
}

/// Cheap to clone: the registry holds one handle, `Metrics` another.
#[derive(Clone)]
pub struct ReloadSeries(Arc<Inner>);

impl ReloadSeries {
    pub fn new() -> Self {
        let f = Families {
            ok: IntGauge::new(
                "lienthong_config_last_reload_successful",
                "Whether the last config (re)load succeeded",
            )
            .expect("valid metric"),
            success_ts: Gauge::new(
                "lienthong_config_last_reload_success_timestamp_seconds",
                "When the config was last loaded successfully, Unix seconds",
            )
            .expect("valid metric"),
            attempts: IntCounterVec::new(
                Opts::new(
                    "lienthong_config_reloads_total",
                    "Config reload attempts by result",
                ),
                &["result"],
            )
            .expect("valid metric"),
            needs_restart: IntGauge::new(
                "lienthong_config_reload_needs_restart",
                "Settings of the config file that differ from the running ones and apply only after a restart ([server] listen, max_connections); 0 = the file is fully applied.",
            )
            .expect("valid metric"),
        };
        let descs = [
            f.ok.desc(),
            f.success_ts.desc(),
            f.attempts.desc(),
            f.needs_restart.desc(),
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        ReloadSeries(Arc::new(Inner {
            families: Mutex::new(f),
            descs,
        }))
    }

    /// Marks a config (re)load; `ok` false keeps the old config running (and its restart
    /// count). `needs_restart` is the number of file settings waiting for a restart.
    pub fn loaded(&self, ok: bool, needs_restart: Option<usize>) {
        let f = self.0.families.lock().unwrap_or_else(|e| e.into_inner());
        f.ok.set(ok as i64);
        if ok {
            f.success_ts.set(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64(),
            );
        }
        if let Some(n) = needs_restart {
            f.needs_restart.set(n as i64);
        }
        f.attempts
            .with_label_values(&[if ok { "success" } else { "failure" }])
            .inc();
    }
}

impl Collector for ReloadSeries {
    fn desc(&self) -> Vec<&Desc> {
        self.0.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let f = self.0.families.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = f.ok.collect();
        out.extend(f.success_ts.collect());
        out.extend(f.attempts.collect());
        out.extend(f.needs_restart.collect());
        out
    }
}
