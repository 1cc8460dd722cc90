//! Ward reports: `POST /api/v1/reports` (a ward officer reports a problem, with the site's token
//! or a team token, see [`crate::reports`]) and `POST /api/v1/reports/{id}/close` (the site or
//! its team says a reported problem is fixed). A report attaches to the site's open automatic
//! incident when there is one (no second page); otherwise it opens `site/<slug>/reported`.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use super::incidents::{IncidentId, JsonBody, OptionalJsonBody, MAX_NAME_CHARS, MAX_NOTE_CHARS};
use super::{ApiError, AppState};
use crate::incidents::correlation::{CloseReport, WardReport};
use crate::reports::{Holder, Tokens};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/reports", post(report))
        .route("/api/v1/reports/{id}/close", post(close))
        .layer(axum::extract::DefaultBodyLimit::max(
            super::incidents::BODY_LIMIT,
        ))
}

pub const DISABLED: &str =
    "ward reports disabled: set [reports] tokens_file or team_token_env in the config";

/// Whose report token the request carries: 401 without one, 403 for an unknown one.
fn holder(headers: &HeaderMap, tokens: &Tokens) -> Result<Holder, ApiError> {
    let unauthorized = |challenge: &'static str, reason: &str| ApiError {
        challenge: Some(challenge),
        ..ApiError::new(StatusCode::UNAUTHORIZED, reason)
    };
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            "Bearer realm=\"lienthong-reports\"",
            "missing Authorization header: send `Authorization: Bearer <site or team token>`",
        ));
    };
    let presented = value
        .to_str()
        .ok()
        .and_then(|s| s.trim().split_once(' '))
        .filter(|(scheme, rest)| scheme.eq_ignore_ascii_case("bearer") && !rest.trim().is_empty())
        .map(|(_, rest)| rest.trim())
        .ok_or_else(|| {
            unauthorized(
                "Bearer realm=\"lienthong-reports\", error=\"invalid_request\"",
                "malformed Authorization header: expected `Bearer <token>`",
            )
        })?;
    if tokens.is_empty() {
        return Err(ApiError::new(StatusCode::FORBIDDEN, DISABLED));
    }
    tokens
        .holder(presented)
        .cloned()
        .ok_or_else(|| ApiError::new(StatusCode::FORBIDDEN, "invalid report token"))
}

/// The report token's holder, decided before the body is read.
struct Reporter(Holder);

impl axum::extract::FromRequestParts<AppState> for Reporter {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &AppState,
    ) -> Result<Self, ApiError> {
        holder(&parts.headers, &app.actions.report_tokens()).map(Reporter)
    }
}

fn text(name: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let n = value.chars().count();
    if value.trim().is_empty() || n > max {
        return Err(ApiError::bad_request(format!(
            "{name}: must be 1 to {max} characters, not blank (got {n})"
        )));
    }
    Ok(value.trim().to_string())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportBody {
    site: String,
    what: String,
    contact: String,
}

async fn report(
    Reporter(who): Reporter,
    State(app): State<AppState>,
    JsonBody(body): JsonBody<ReportBody>,
) -> Result<Response, ApiError> {
    let inv = app.state.inventory();
    let Some(site) = inv.site(&body.site) else {
        let s = crate::report::suggestions(&body.site, inv.sites.iter().map(|s| s.slug.as_str()));
        return Err(ApiError::bad_request(format!(
            "site: unknown site `{}`{}",
            body.site,
            crate::report::did_you_mean(&s)
        )));
    };
    if !Tokens::may_report(&who, site, &inv) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("the token of {who} does not cover site `{}`", site.slug),
        ));
    }
    let r = WardReport {
        site: site.slug.clone(),
        what: text("what", &body.what, MAX_NOTE_CHARS)?,
        contact: text("contact", &body.contact, MAX_NAME_CHARS)?,
        via: who.to_string(),
    };
    let Some(engine) = app.actions.engine() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ward reports unavailable: the incident engine is not running",
        ));
    };
    let out = tokio::task::spawn_blocking(move || engine.report(&r, std::time::SystemTime::now()))
        .await
        .map_err(|_| internal())?
        .map_err(|e| {
            tracing::error!(error = %e, "incident store");
            internal()
        })?
        .ok_or_else(|| ApiError::bad_request("site: not in the running config"))?;
    let status = if out.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(out)).into_response())
}

fn internal() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "incident store error (see the server log)",
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseBody {
    by: Option<String>,
}

async fn close(
    Reporter(who): Reporter,
    State(app): State<AppState>,
    IncidentId(id): IncidentId,
    OptionalJsonBody(body): OptionalJsonBody<CloseBody>,
) -> Result<Response, ApiError> {
    let by = match &body.by {
        Some(b) => format!("{} ({who})", text("by", b, MAX_NAME_CHARS)?),
        None => who.to_string(),
    };
    let incident = super::incidents::db(&app, move |s| s.get(id))
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no incident {id}")))?;
    let inv = app.state.inventory();
    let covered = incident
        .sites
        .iter()
        .filter_map(|s| inv.site(s))
        .any(|s| Tokens::may_report(&who, s, &inv));
    if !covered {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("the token of {who} does not cover the site of incident {id}"),
        ));
    }
    let Some(engine) = app.actions.engine() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ward reports unavailable: the incident engine is not running",
        ));
    };
    let out = tokio::task::spawn_blocking(move || {
        engine.close_report(id, &by, std::time::SystemTime::now())
    })
    .await
    .map_err(|_| internal())?
    .map_err(|e| {
        tracing::error!(error = %e, "incident store");
        internal()
    })?;
    match out {
        CloseReport::Closed => {
            Ok(Json(serde_json::json!({ "id": id, "closed": true })).into_response())
        }
        CloseReport::NotReported => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("incident {id} is an automatic incident: it ends when its cause recovers"),
        )),
        CloseReport::NotOpen => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("incident {id} is not open"),
        )),
    }
}
