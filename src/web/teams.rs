//! `GET /api/v1/teams`: team figures (time to acknowledge / resolve, open-incident age,
//! incidents per site) over a window. See `incidents/figures.rs` for the definitions.

use axum::extract::{RawQuery, State};
use axum::Json;

use super::incidents::{db, now_ms};
use super::{ApiError, AppState};
use crate::incidents::figures::{compute, Figures};
use crate::localtime::parse_time;

/// Longest window accepted.
const MAX_WINDOW_MS: i64 = 366 * 86_400_000;

/// `?window=7d` (default: `[readiness] window`) ending now, or `from`/`to` (RFC 3339 or local
/// "YYYY-MM-DD HH:MM"). Unknown parameters and bad values → 400 with the reason.
pub(crate) fn window(q: Option<&str>, default_ms: i64, now: i64) -> Result<(i64, i64), ApiError> {
    let mut from = None;
    let mut to = None;
    let mut span = None;
    for (k, v) in url::form_urlencoded::parse(q.unwrap_or("").as_bytes()) {
        let time = |name: &str| {
            parse_time(&v).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{name}: `{v}` is neither RFC 3339 (e.g. 2026-11-26T00:00:00Z) nor local \
                     Asia/Ho_Chi_Minh time \"YYYY-MM-DD HH:MM\""
                ))
            })
        };
        match k.as_ref() {
            "from" => from = Some(time("from")?),
            "to" => to = Some(time("to")?),
            "window" => {
                let d = humantime::parse_duration(v.trim()).map_err(|e| {
                    ApiError::bad_request(format!(
                        "window: `{v}` is not a duration ({e}); e.g. \"7d\" or \"24h\""
                    ))
                })?;
                span = Some(d.as_millis() as i64);
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter `{other}` (use window, or from and to)"
                )))
            }
        }
    }
    if span.is_some() && from.is_some() {
        return Err(ApiError::bad_request(
            "window and from cannot be combined: give window (ending at `to` or now), or from and to",
        ));
    }
    let span = span.unwrap_or(default_ms);
    let to = to.unwrap_or(now);
    let from = from.unwrap_or(to - span);
    if from >= to {
        return Err(ApiError::bad_request("`from` must be before `to`"));
    }
    if to - from > MAX_WINDOW_MS {
        return Err(ApiError::bad_request("the window is longer than 366 days"));
    }
    Ok((from, to))
}

pub(crate) async fn teams(
    State(app): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Figures>, ApiError> {
    let inv = app.state.inventory();
    let now = now_ms();
    let (from, to) = window(q.as_deref(), inv.readiness.window.0.as_millis() as i64, now)?;
    let teams: Vec<(String, String)> = inv
        .teams
        .iter()
        .map(|t| (t.name.clone(), t.title.clone()))
        .collect();
    let rows = db(&app, move |s| s.figure_rows(from)).await?;
    Ok(Json(compute(&rows, &teams, from, to, now)))
}
