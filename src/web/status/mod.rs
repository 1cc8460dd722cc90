//! The status page (`GET /`), the per-site pages (`GET /sites/{slug}`), the readiness report
//! (`GET /readiness`, HTML) and its API (`GET /api/v1/readiness`).
//!
//! Server-rendered HTML (maud: every interpolation is escaped), one self-contained document per
//! page: inline CSS, inline SVG icons and map, a little inline JavaScript for search, filters and
//! the refresh (a short poll, hurried by the incident event stream). No CDN, no web fonts: it
//! works offline and on a wall screen. Vietnamese first; `?lang=en` for English. Status is shown
//! by an icon and a word as well as a colour.
//!
//! Read only: the live state, the store and the readiness arithmetic.

mod load;
mod render;
mod sweep;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::{ApiError, AppState};
use crate::config::{CheckDef, CheckRole, Inventory, SiteInfo};
use crate::health::{SiteStatus, State as Health};
use crate::incidents::rollups::SeriesPoint;
use crate::incidents::{Incident, IncidentFilter, Severity, Store};
use crate::localtime::parse_time;
use crate::localtime::{format_local, OFFSET_MS};
use crate::probe::{Details, ProbeKind};
use crate::readiness::{self, ms as fmt_ms, pct, Lang, Report, Verdict};
use crate::state::CheckStatus;

pub use load::*;
pub use render::*;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/sites/{slug}", get(site_page))
        .route("/readiness", get(report_page))
        .route("/api/v1/readiness", get(readiness_api))
}

/// Hours of minute data in a site page's latency charts.
const CHART_HOURS: i64 = 3;
/// The status page judges readiness up to this long ago, so the minutes it counts are written.
const SETTLE_MS: i64 = 10_000;

/// The last readiness report of the status page, reused while its window is the same (it moves
/// once a minute).
#[derive(Default)]
pub struct PageCache {
    readiness: Mutex<Option<CachedReport>>,
}

struct CachedReport {
    from: i64,
    to: i64,
    inventory: usize,
    report: Arc<Report>,
}

impl PageCache {
    /// The report over `[from, to)`, computed at most once per window and inventory.
    fn report(
        &self,
        store: &Store,
        inv: &Arc<Inventory>,
        from: i64,
        to: i64,
        now: i64,
    ) -> Result<Arc<Report>, crate::incidents::StoreError> {
        let mut g = self.readiness.lock().unwrap_or_else(|e| e.into_inner());
        let key = Arc::as_ptr(inv) as usize;
        if let Some(c) = g.as_ref() {
            if c.from == from && c.to == to && c.inventory == key {
                return Ok(c.report.clone());
            }
        }
        let report = Arc::new(readiness::load(store, inv, from, to, now)?);
        *g = Some(CachedReport {
            from,
            to,
            inventory: key,
            report: report.clone(),
        });
        Ok(report)
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn ms_of(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The status page's readiness window: the configured span up to the last settled minute.
pub fn page_window(inv: &Inventory, now: i64) -> (i64, i64) {
    let to = (now - SETTLE_MS).div_euclid(60_000) * 60_000;
    (to - inv.readiness.window.0.as_millis() as i64, to)
}

/// "HH:MM:SS" in Asia/Ho_Chi_Minh.
fn local_hms(ms: i64) -> String {
    let s = (ms + OFFSET_MS).rem_euclid(86_400_000) / 1000;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn lang_of(q: &[(String, String)]) -> Lang {
    Lang::parse(q.iter().find(|(k, _)| k == "lang").map(|(_, v)| v.as_str()))
}

/// `?lang=en` to append to links when the page is in English.
fn lang_suffix(lang: Lang, first: bool) -> &'static str {
    match (lang, first) {
        (Lang::Vi, _) => "",
        (Lang::En, true) => "?lang=en",
        (Lang::En, false) => "&lang=en",
    }
}

fn html_response(body: Markup) -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Html(body.into_string()),
    )
        .into_response()
}

async fn index(State(app): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let pairs = query_pairs(q.as_deref());
    let lang = lang_of(&pairs);
    let filters = Filters::from_pairs(&pairs);
    let (state, store, cache) = (app.state.clone(), app.store.clone(), app.pages.clone());
    let body = tokio::task::spawn_blocking(move || {
        let data = gather(&state, &store, &cache, now_ms());
        render_index_with(&data, lang, &filters).into_string()
    })
    .await
    .unwrap_or_default();
    ([(header::CACHE_CONTROL, "no-store")], Html(body)).into_response()
}

/// Districts of a former province and their sites, in inventory order.
type Districts<'a> = Vec<(&'a str, Vec<&'a SiteInfo>)>;

// ---------------------------------------------------------------------------------------------
// GET /sites/{slug}

async fn site_page(
    State(app): State<AppState>,
    Path(slug): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let lang = lang_of(&query_pairs(q.as_deref()));
    let (state, store, cache) = (app.state.clone(), app.store.clone(), app.pages.clone());
    let out = tokio::task::spawn_blocking(move || {
        let now = now_ms();
        let inv = state.inventory();
        let site = inv.site(&slug)?.clone();
        let all = state.snapshot();
        let has_agent = inv.agents.iter().any(|a| a.site == slug);
        let central: Vec<CheckStatus> = all
            .iter()
            .filter(|c| {
                has_agent && c.check.id.site.is_none() && c.check.role == CheckRole::Service
            })
            .cloned()
            .collect();
        let checks: Vec<CheckStatus> = all
            .into_iter()
            .filter(|c| c.check.id.site.as_deref() == Some(slug.as_str()))
            .collect();
        let status = state.site_status(&slug);
        let keys: Vec<String> = checks.iter().map(|c| c.check.id.key()).collect();
        let to_m = now.div_euclid(60_000);
        let series = store
            .history_series(&keys, to_m - CHART_HOURS * 60, to_m + 1)
            .unwrap_or_default();
        let filter = IncidentFilter {
            site: Some(slug.clone()),
            ..Default::default()
        };
        let incidents = store
            .list(&filter, None, 20)
            .map(|p| p.items)
            .unwrap_or_default();
        let (from, to) = page_window(&inv, now);
        let report = cache.report(&store, &inv, from, to, now).ok();
        let maintenance = active_windows(&inv, &store, &slug, now);
        Some(
            render_site(
                &SiteData {
                    inv: &inv,
                    site: &site,
                    status,
                    checks: &checks,
                    central: &central,
                    series: &series,
                    incidents: &incidents,
                    report: report.as_deref(),
                    maintenance: &maintenance,
                    now,
                },
                lang,
            )
            .into_string(),
        )
    })
    .await
    .ok()
    .flatten();
    match out {
        Some(body) => ([(header::CACHE_CONTROL, "no-store")], Html(body)).into_response(),
        None => {
            let body = page(
                lang,
                lang.pick("Không tìm thấy", "Not found"),
                now_ms(),
                "/",
                html! { main { div.panel { p { (lang.pick("Không có xã, phường, đặc khu này. ", "No such site. ")) a href={ "/" (lang_suffix(lang, true)) } { (lang.pick("Về trang tổng quan", "Back to the overview")) } } } } },
            );
            (StatusCode::NOT_FOUND, Html(body.into_string())).into_response()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Readiness: API and HTML report

fn window_of(
    pairs: &[(String, String)],
    inv: &Inventory,
    now: i64,
    allowed: &[&str],
) -> Result<(i64, i64), ApiError> {
    let mut from = None;
    let mut to = None;
    for (k, v) in pairs {
        let parse = |name: &str| {
            parse_time(v).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{name}: `{v}` is neither RFC 3339 (e.g. 2026-11-26T00:00:00Z) nor local \
                     Asia/Ho_Chi_Minh time \"YYYY-MM-DD HH:MM\""
                ))
            })
        };
        match k.as_str() {
            "from" => from = Some(parse("from")?),
            "to" => to = Some(parse("to")?),
            other if allowed.contains(&other) => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter `{other}` (use {})",
                    allowed.join(", ")
                )))
            }
        }
    }
    readiness::window(from, to, inv.readiness.window.0, now).map_err(ApiError::bad_request)
}

async fn readiness_api(
    State(app): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Report>, ApiError> {
    let pairs = query_pairs(q.as_deref());
    let now = now_ms();
    let inv = app.state.inventory();
    let (from, to) = window_of(&pairs, &inv, now, &["from", "to"])?;
    let report =
        super::incidents::db(&app, move |s| readiness::load(s, &inv, from, to, now)).await?;
    Ok(Json(report))
}

async fn report_page(State(app): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let pairs = query_pairs(q.as_deref());
    let lang = lang_of(&pairs);
    let now = now_ms();
    let inv = app.state.inventory();
    let (from, to) = match window_of(&pairs, &inv, now, &["from", "to", "lang"]) {
        Ok(w) => w,
        Err(e) => return e.into_response(),
    };
    match super::incidents::db(&app, move |s| readiness::load(s, &inv, from, to, now)).await {
        Ok(r) => html_response(report_html(&r, lang)),
        Err(e) => e.into_response(),
    }
}
