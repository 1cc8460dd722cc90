//! JSON read API over the live state.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
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
}

#[derive(Serialize)]
struct CheckView {
    key: String,
    site: Option<String>,
    service: Option<String>,
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
            name: c.id.name.to_string(),
            kind: c.probe.kind().as_str(),
            role: c.role.as_str(),
            title: c.title,
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
