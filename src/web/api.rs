//! JSON read API over the live state.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use super::{error, AppState};
use crate::config::SiteInfo;
use crate::state::CheckStatus;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/checks", get(checks))
        .route("/api/v1/sites", get(sites))
        .route("/api/v1/sites/{slug}", get(site))
        .route("/api/v1/checks/{owner}/{check}/run", post(run_check))
}

#[derive(Serialize)]
struct CheckView {
    key: String,
    site: Option<String>,
    service: Option<String>,
    /// `site:<slug>` for a shared-service check as run by that ward's agent and for the
    /// agent's own checks (agent.toml); null for the central's own runs.
    vantage: Option<String>,
    name: String,
    kind: &'static str,
    role: &'static str,
    title: String,
    interval_seconds: f64,
    timeout_seconds: f64,
    last: Option<crate::state::LastRun>,
    consecutive_failures: u32,
    runs: u64,
}

impl From<CheckStatus> for CheckView {
    fn from(s: CheckStatus) -> Self {
        let c = s.check;
        CheckView {
            key: c.id.key(),
            site: c.id.site.as_deref().map(str::to_string),
            service: c.id.service.as_deref().map(str::to_string),
            vantage: c.id.vantage(),
            name: c.id.name.to_string(),
            kind: c.probe.kind().as_str(),
            role: c.role.as_str(),
            title: c.title.clone(),
            interval_seconds: c.interval.as_secs_f64(),
            timeout_seconds: c.timeout.as_secs_f64(),
            last: s.last,
            consecutive_failures: s.consecutive_failures,
            runs: s.runs,
        }
    }
}

async fn checks(State(app): State<AppState>) -> Json<Vec<CheckView>> {
    Json(
        app.state
            .snapshot()
            .into_iter()
            .map(CheckView::from)
            .collect(),
    )
}

async fn sites(State(app): State<AppState>) -> Json<Vec<SiteInfo>> {
    Json(app.state.inventory().sites.clone())
}

#[derive(Serialize)]
struct SiteView {
    site: SiteInfo,
    checks: Vec<CheckView>,
}

async fn site(State(app): State<AppState>, Path(slug): Path<String>) -> Response {
    let inv = app.state.inventory();
    let Some(site) = inv.site(&slug).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            &format!("no site with slug `{slug}`"),
        );
    };
    let checks = app
        .state
        .snapshot()
        .into_iter()
        .filter(|s| s.check.id.site.as_deref() == Some(slug.as_str()))
        .map(CheckView::from)
        .collect();
    Json(SiteView { site, checks }).into_response()
}

// ---------------------------------------------------------------------------------------------
// POST /api/v1/checks/{owner}/{check}/run

/// On-demand runs at once: each holds a probe's sockets for up to its timeout.
const MAX_ON_DEMAND: usize = 4;
static ON_DEMAND: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_ON_DEMAND);

#[derive(Serialize)]
struct RunView {
    key: String,
    success: bool,
    duration_seconds: f64,
    reason: Option<&'static str>,
    message: Option<String>,
    details: crate::probe::Details,
    /// The text `lienthong probe` prints.
    breakdown: String,
}

/// Runs one check now with the service's effective config (the loaded inventory, with every
/// overlay the service applied), in this handler with the check's own timeout. Not through
/// the scheduler: the result is answered, not recorded.
async fn run_check(
    _: super::auth::Writer,
    State(app): State<AppState>,
    Path((owner, name)): Path<(String, String)>,
) -> Response {
    let inv = app.state.inventory();
    let Some(def) = inv
        .checks
        .iter()
        .find(|c| c.id.owner() == owner && *c.id.name == *name)
        .cloned()
    else {
        return error(
            StatusCode::NOT_FOUND,
            &crate::report::unknown_check(&inv, &owner, Some(&name)),
        );
    };
    let Ok(_permit) = ON_DEMAND.try_acquire() else {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("{MAX_ON_DEMAND} on-demand runs are already in progress; try again shortly"),
        );
    };
    let probe = match def.probe.build(&def.build_context()) {
        Ok(p) => p,
        Err(e) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &crate::config::redact_urls(&format!("check {}: {e}", def.id)),
            )
        }
    };
    // The probe bounds itself by the timeout; the outer bound is a safety net.
    let outer = def.timeout + std::time::Duration::from_secs(2);
    let outcome = match tokio::time::timeout(outer, probe.run(def.timeout)).await {
        Ok(o) => o,
        Err(_) => crate::probe::Outcome::fail(
            crate::probe::Reason::Timeout,
            format!("no result within {outer:?}"),
            crate::probe::Details::None,
        ),
    };
    Json(RunView {
        key: def.id.key(),
        success: outcome.success,
        duration_seconds: outcome.duration.as_secs_f64(),
        reason: outcome.reason().map(|r| r.as_str()),
        // What the probe saw may quote its URL: no userinfo or query values in the answer.
        message: outcome
            .failure
            .as_ref()
            .map(|f| crate::config::redact_urls(&f.message)),
        breakdown: crate::config::redact_urls(&crate::report::breakdown(&def, &outcome)),
        details: outcome.details,
    })
    .into_response()
}
