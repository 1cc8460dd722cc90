//! The live read model: the last result of every check, published for the HTTP layer.
//! Written only by the engine; read by anyone.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use serde::Serialize;

use crate::config::{CheckDef, CheckId, Inventory};
use crate::probe::{Details, Outcome};

/// The last run of one check, as shown to people and the API.
#[derive(Debug, Clone, Serialize)]
pub struct LastRun {
    #[serde(with = "humantime_serde")]
    pub at: SystemTime,
    pub success: bool,
    pub duration_seconds: f64,
    pub reason: Option<&'static str>,
    pub message: Option<String>,
    pub details: Details,
}

/// Status of one check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckStatus {
    pub check: Arc<CheckDef>,
    pub last: Option<LastRun>,
    pub consecutive_failures: u32,
    pub runs: u64,
    /// Health from the incident engine's state machine.
    pub health: crate::health::State,
}

/// Shared, cheap-to-read view of every check.
#[derive(Default)]
pub struct LiveState {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    inventory: Arc<Inventory>,
    /// Boxed: a table of 20,000 entries has 32,768 buckets, and a ~300-byte status inline
    /// would make the empty ones cost as much as the full.
    checks: HashMap<CheckId, Box<CheckStatus>>,
    sites: HashMap<String, crate::health::SiteStatus>,
    running: bool,
}

impl LiveState {
    /// Installs a (new) inventory, keeping the history of checks that still exist.
    pub fn set_inventory(&self, inv: Arc<Inventory>) {
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let mut old = std::mem::take(&mut g.checks);
        g.checks = inv
            .checks
            .iter()
            .map(|c| {
                let prev = old
                    .remove(&c.id)
                    .filter(|p| p.check.probe.kind() == c.probe.kind());
                let status = Box::new(CheckStatus {
                    check: c.clone(),
                    last: prev.as_ref().and_then(|p| p.last.clone()),
                    consecutive_failures: prev.as_ref().map_or(0, |p| p.consecutive_failures),
                    runs: prev.as_ref().map_or(0, |p| p.runs),
                    health: prev.as_ref().map_or_else(Default::default, |p| p.health),
                });
                (c.id.clone(), status)
            })
            .collect();
        g.inventory = inv;
    }

    pub fn set_running(&self, running: bool) {
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .running = running;
    }

    pub fn is_running(&self) -> bool {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).running
    }

    pub fn record(&self, id: &CheckId, o: &Outcome, at: SystemTime) {
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = g.checks.get_mut(id) {
            s.runs += 1;
            s.consecutive_failures = if o.success {
                0
            } else {
                s.consecutive_failures + 1
            };
            s.last = Some(LastRun {
                at,
                success: o.success,
                duration_seconds: o.duration.as_secs_f64(),
                reason: o.reason().map(|r| r.as_str()),
                message: o.failure.as_ref().map(|f| f.message.clone()),
                details: o.details.clone(),
            });
        }
    }

    pub fn set_health(&self, id: &CheckId, h: crate::health::State) {
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = g.checks.get_mut(id) {
            s.health = h;
        }
    }

    pub fn set_site_status(&self, site: &str, st: crate::health::SiteStatus) {
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        g.sites.insert(site.to_string(), st);
    }

    /// A site's rolled-up status (Unknown before any result).
    pub fn site_status(&self, site: &str) -> crate::health::SiteStatus {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        g.sites
            .get(site)
            .copied()
            .unwrap_or(crate::health::SiteStatus::Unknown)
    }

    pub fn inventory(&self) -> Arc<Inventory> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .inventory
            .clone()
    }

    /// A copy of every check's status, in inventory order.
    pub fn snapshot(&self) -> Vec<CheckStatus> {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        g.inventory
            .checks
            .iter()
            .filter_map(|c| g.checks.get(&c.id).map(|s| CheckStatus::clone(s)))
            .collect()
    }

    pub fn check(&self, id: &CheckId) -> Option<CheckStatus> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .checks
            .get(id)
            .map(|s| CheckStatus::clone(s))
    }
}
