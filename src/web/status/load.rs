//! What the pages show, read from the live state and the store.

use super::*;

// ---------------------------------------------------------------------------------------------
// GET /

/// What the status page shows, gathered in one place (so the benchmark can time its parts).
pub struct StatusData {
    pub inv: Arc<Inventory>,
    pub checks: Vec<CheckStatus>,
    pub sites: Vec<SiteStatus>,
    pub open: Vec<Incident>,
    pub readiness: Option<Arc<Report>>,
    pub now: i64,
}

/// Reads the live state and the store for the status page.
pub fn gather(
    state: &crate::state::LiveState,
    store: &Store,
    cache: &PageCache,
    now: i64,
) -> StatusData {
    let inv = state.inventory();
    let checks = state.snapshot();
    let sites = inv
        .sites
        .iter()
        .map(|s| state.site_status(&s.slug))
        .collect();
    let open = store.unresolved().unwrap_or_else(|e| {
        tracing::error!(error = %e, "incident store");
        Vec::new()
    });
    let (from, to) = page_window(&inv, now);
    let readiness = match cache.report(store, &inv, from, to, now) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(error = %e, "readiness");
            None
        }
    };
    StatusData {
        inv,
        checks,
        sites,
        open,
        readiness,
        now,
    }
}

/// Initial search and filters of the status page, from its URL (`?q=&prov=&island=1&status=`),
/// so a filtered view can be bookmarked or put on a wall screen.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub q: String,
    pub prov: String,
    pub island: bool,
    /// `?wall=1`: the wall-screen layout (one 1920×1080 screen, no scrolling).
    pub wall: bool,
}

impl Filters {
    pub(super) fn from_pairs(pairs: &[(String, String)]) -> Filters {
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        Filters {
            q: get("q"),
            prov: get("prov"),
            island: matches!(get("island").as_str(), "1" | "true" | "on"),
            wall: matches!(get("wall").as_str(), "1" | "true" | "on"),
        }
    }
}

/// A maintenance window in force for a site, as its page tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveWindow {
    pub reason: String,
    /// None for a recurring window of the config (it ends with its slot).
    pub ends_at: Option<i64>,
    /// Who created it: the API's `created_by`, or "probes.toml".
    pub by: String,
    pub city_wide: bool,
}

/// Windows (config and API) in force at `now` that cover the site.
pub(super) fn active_windows(
    inv: &Inventory,
    store: &crate::incidents::Store,
    slug: &str,
    now: i64,
) -> Vec<ActiveWindow> {
    let mut out: Vec<ActiveWindow> = inv
        .maintenance
        .iter()
        .filter(|w| w.active_at(now) && w.covers(Some(slug), None))
        .map(|w| ActiveWindow {
            reason: w.reason.clone(),
            ends_at: match w.when {
                crate::config::maintenance::When::Once { end, .. } => Some(end),
                crate::config::maintenance::When::Recurring { .. } => None,
            },
            by: "probes.toml".into(),
            city_wide: w.site.is_none() && w.service.is_none(),
        })
        .collect();
    let api = store.maintenance_windows(now).unwrap_or_default();
    out.extend(
        api.into_iter()
            .filter(|w| w.starts_at <= now && w.service.is_none())
            .filter(|w| w.site.as_deref().is_none_or(|s| s == slug))
            .map(|w| ActiveWindow {
                city_wide: w.site.is_none(),
                reason: w.reason,
                ends_at: Some(w.ends_at),
                by: w.created_by,
            }),
    );
    out
}

/// What a site page shows.
pub struct SiteData<'a> {
    pub inv: &'a Inventory,
    pub site: &'a SiteInfo,
    pub status: SiteStatus,
    pub checks: &'a [CheckStatus],
    /// The data centre's own runs of the shared-service checks (beside the ward agent's view;
    /// empty when the site has no agent).
    pub central: &'a [CheckStatus],
    pub series: &'a HashMap<String, Vec<SeriesPoint>>,
    pub incidents: &'a [Incident],
    pub report: Option<&'a Report>,
    /// Maintenance windows in force now.
    pub maintenance: &'a [ActiveWindow],
    pub now: i64,
}
