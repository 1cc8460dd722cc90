//! Incident API: listing and detail, acknowledgements and notes (bearer token), maintenance
//! windows, and the live Server-Sent Events stream.
//!
//! Times are served as RFC 3339 strings in UTC (`2026-11-26T06:05:00Z`); inputs accept RFC 3339
//! with any offset, or local Asia/Ho_Chi_Minh time as `"YYYY-MM-DD HH:MM"`.
//!
//! The store is synchronous (SQLite): every call runs on the blocking pool.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{
    DefaultBodyLimit, FromRequest, FromRequestParts, Path, RawQuery, Request, State,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::auth::Writer;
use super::{ApiError, AppState};
use crate::incidents::{
    EventKind, Incident, IncidentEvent, IncidentFilter, IncidentState, MaintenanceWindow, Note,
    Severity, Store, StoreError, UnixMillis,
};
use crate::localtime::{format_rfc3339, parse_time};

/// Largest request body accepted by the write endpoints; larger → 413.
pub const BODY_LIMIT: usize = 16 * 1024;
/// Default and largest `limit` of a listing page.
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;
pub const MAX_NOTE_CHARS: usize = 4000;
pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_REASON_CHARS: usize = 500;
/// Events read from the store per query when an SSE client catches up.
const REPLAY_BATCH: u32 = 1000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/incidents", get(list))
        .route("/api/v1/incidents/stream", get(stream))
        .route("/api/v1/incidents/{id}", get(one))
        .route("/api/v1/incidents/{id}/ack", post(ack))
        .route("/api/v1/incidents/{id}/unack", post(unack))
        .route("/api/v1/incidents/{id}/assign", post(assign))
        .route("/api/v1/incidents/{id}/notes", post(add_note))
        .route(
            "/api/v1/maintenance",
            get(list_maintenance).post(add_maintenance),
        )
        .route("/api/v1/maintenance/{id}", delete(delete_maintenance))
        .route("/api/v1/maintenance/{id}/end", post(end_maintenance))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

// ---------------------------------------------------------------------------------------------
// Time

pub(crate) fn now_ms() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn time_error(name: &str, value: &str) -> String {
    format!(
        "{name}: `{value}` is neither RFC 3339 (e.g. 2026-11-26T00:00:00Z) nor local \
         Asia/Ho_Chi_Minh time \"YYYY-MM-DD HH:MM\" (e.g. 2026-11-26 07:00)"
    )
}

// ---------------------------------------------------------------------------------------------
// Views: the model with times as RFC 3339.

pub(crate) fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::Warning => "warning",
    }
}

pub(crate) fn kind_name(k: EventKind) -> &'static str {
    match k {
        EventKind::Opened => "opened",
        EventKind::StateChange => "state_change",
        EventKind::Attached => "attached",
        EventKind::SitesChanged => "sites_changed",
        EventKind::Acknowledged => "acknowledged",
        EventKind::Note => "note",
        EventKind::Resolved => "resolved",
        EventKind::Resumed => "resumed",
        EventKind::Unacknowledged => "unacknowledged",
        EventKind::Assigned => "assigned",
        EventKind::Escalated => "escalated",
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct IncidentView {
    id: i64,
    key: String,
    title: String,
    title_en: String,
    severity: Severity,
    scope: crate::incidents::Scope,
    state: IncidentState,
    sites: Vec<String>,
    service: Option<String>,
    teams: Vec<String>,
    started_at: String,
    acknowledged_at: Option<String>,
    acknowledged_by: Option<String>,
    /// When the current acknowledgement lapses (escalation then resumes).
    ack_expires_at: Option<String>,
    assigned_to: Option<String>,
    resolved_at: Option<String>,
    /// Only in the detail view.
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<Vec<EventView>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notes: Option<Vec<NoteView>>,
}

impl IncidentView {
    fn new(i: Incident, detail: bool) -> Self {
        IncidentView {
            id: i.id,
            key: i.key,
            title: i.title,
            title_en: i.title_en,
            severity: i.severity,
            scope: i.scope,
            state: i.state,
            sites: i.sites,
            service: i.service,
            teams: i.teams,
            started_at: format_rfc3339(i.started_at),
            acknowledged_at: i.acknowledged_at.map(format_rfc3339),
            acknowledged_by: i.acknowledged_by,
            ack_expires_at: i.ack_expires_at.map(format_rfc3339),
            assigned_to: i.assigned_to,
            resolved_at: i.resolved_at.map(format_rfc3339),
            events: detail.then(|| i.events.into_iter().map(EventView::from).collect()),
            notes: detail.then(|| i.notes.into_iter().map(NoteView::from).collect()),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct EventView {
    id: i64,
    incident_id: i64,
    at: String,
    kind: EventKind,
    check: Option<String>,
    state: Option<String>,
    message: String,
    evidence: Option<serde_json::Value>,
}

impl From<IncidentEvent> for EventView {
    fn from(e: IncidentEvent) -> Self {
        EventView {
            id: e.id,
            incident_id: e.incident_id,
            at: format_rfc3339(e.at),
            kind: e.kind,
            check: e.check,
            state: e.state,
            message: e.message,
            evidence: e.evidence,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct NoteView {
    id: i64,
    at: String,
    author: String,
    text: String,
}

impl From<Note> for NoteView {
    fn from(n: Note) -> Self {
        NoteView {
            id: n.id,
            at: format_rfc3339(n.at),
            author: n.author,
            text: n.text,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct WindowView {
    id: i64,
    scope: &'static str,
    site: Option<String>,
    service: Option<String>,
    starts_at: String,
    ends_at: String,
    reason: String,
    created_by: String,
}

impl From<MaintenanceWindow> for WindowView {
    fn from(w: MaintenanceWindow) -> Self {
        WindowView {
            id: w.id,
            scope: match (&w.site, &w.service) {
                (Some(_), _) => "site",
                (None, Some(_)) => "service",
                (None, None) => "city",
            },
            site: w.site,
            service: w.service,
            starts_at: format_rfc3339(w.starts_at),
            ends_at: format_rfc3339(w.ends_at),
            reason: w.reason,
            created_by: w.created_by,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Plumbing: store calls, ids, JSON bodies.

/// Runs a store call on the blocking pool; a store failure becomes a 500 JSON error.
pub(crate) async fn db<T, F>(app: &AppState, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
{
    let store = app.store.clone();
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "incident store");
            // A shared store that cannot be reached: unavailable for now, with the reason.
            if app.store.is_shared() {
                if let Some(problem) = app.store.health().problem() {
                    return Err(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("incident store unavailable: {problem}"),
                    ));
                }
            }
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "incident store error (see the server log)",
            ))
        }
        Err(e) => {
            tracing::error!(error = %e, "incident store task");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
            ))
        }
    }
}

/// `{id}` of an incident path: a positive integer, else 400.
pub struct IncidentId(pub i64);

/// `{id}` of a maintenance window path: a positive integer, else 400.
pub struct WindowId(pub i64);

async fn path_id(parts: &mut Parts, what: &str) -> Result<i64, ApiError> {
    let Path(raw) = Path::<String>::from_request_parts(parts, &())
        .await
        .map_err(|e| ApiError::bad_request(format!("id: {}", e.body_text())))?;
    match raw.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::bad_request(format!(
            "id: `{raw}` is not {what} id (a positive integer)"
        ))),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IncidentId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        path_id(parts, "an incident").await.map(IncidentId)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WindowId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        path_id(parts, "a maintenance window").await.map(WindowId)
    }
}

/// A JSON request body whatever its Content-Type (so `curl -d` works). Unreadable, oversized
/// (→ 413) or invalid bodies are answered with a JSON reason.
pub struct JsonBody<T>(pub T);

/// Like [`JsonBody`], but an empty body means `T::default()`.
pub struct OptionalJsonBody<T>(pub T);

async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                format!("request body larger than {} KiB", BODY_LIMIT / 1024),
            )
        } else {
            ApiError::new(status, format!("request body: {}", e.body_text()))
        }
    })
}

fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "request body: expected a JSON object, got an empty body",
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("request body: invalid JSON: {e}")))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body_bytes(req, state).await?;
        parse_body(&bytes).map(JsonBody)
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default()));
        }
        parse_body(&bytes).map(OptionalJsonBody)
    }
}

/// Checks a free-text field: not blank, at most `max` characters.
fn text_field(name: &str, value: &str, max: usize) -> Result<(), String> {
    let n = value.chars().count();
    if value.trim().is_empty() || n > max {
        return Err(format!(
            "{name}: must be 1 to {max} characters, not blank (got {n})"
        ));
    }
    Ok(())
}

fn publish(app: &AppState, ev: IncidentEvent) {
    // No subscriber is not an error.
    let _ = app.events.send(ev);
}

// ---------------------------------------------------------------------------------------------
// GET /api/v1/incidents

pub const LIST_PARAMS: &str = "state, acknowledged, site, team, severity, since, cursor, limit";

/// A parsed listing query.
#[derive(Debug, PartialEq)]
pub struct ListQuery {
    /// `state` of the filter is the store's (open = unresolved and not acknowledged).
    pub filter: IncidentFilter,
    /// `state=open` without `acknowledged`: every unresolved incident, so the store's open
    /// and acknowledged listings are merged.
    pub unresolved: bool,
    pub cursor: Option<i64>,
    pub limit: u32,
}

/// Parses the query string of `GET /api/v1/incidents`; the error names the parameter and what
/// it accepts. Empty values count as absent.
pub fn parse_list_query(query: Option<&str>) -> Result<ListQuery, String> {
    let mut q = ListQuery {
        filter: IncidentFilter::default(),
        unresolved: false,
        cursor: None,
        limit: DEFAULT_LIMIT,
    };
    let mut acknowledged = None;
    let mut seen = Vec::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if seen.contains(&k) {
            return Err(format!("{k}: given more than once"));
        }
        seen.push(k.clone());
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        match k.as_ref() {
            "state" => {
                q.filter.state = Some(match v {
                    "open" => IncidentState::Open,
                    "acknowledged" => IncidentState::Acknowledged,
                    "resolved" => IncidentState::Resolved,
                    _ => {
                        return Err(format!(
                            "state: `{v}` is not one of open, acknowledged, resolved"
                        ))
                    }
                })
            }
            "acknowledged" => {
                acknowledged = Some(match v {
                    "true" => true,
                    "false" => false,
                    _ => return Err(format!("acknowledged: `{v}` is not one of true, false")),
                })
            }
            "severity" => {
                q.filter.severity = Some(match v {
                    "critical" => Severity::Critical,
                    "warning" => Severity::Warning,
                    _ => return Err(format!("severity: `{v}` is not one of critical, warning")),
                })
            }
            "site" => q.filter.site = Some(v.to_string()),
            "team" => q.filter.team = Some(v.to_string()),
            "since" => q.filter.since = Some(parse_time(v).ok_or_else(|| time_error("since", v))?),
            "cursor" => {
                q.cursor = Some(v.parse::<i64>().ok().filter(|c| *c >= 0).ok_or_else(|| {
                    format!(
                        "cursor: `{v}` is not an integer (pass the next_cursor of the \
                                 previous page)"
                    )
                })?)
            }
            "limit" => {
                q.limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|l| (1..=MAX_LIMIT).contains(l))
                    .ok_or_else(|| {
                        format!("limit: `{v}` is not an integer from 1 to {MAX_LIMIT}")
                    })?
            }
            other => return Err(format!("unknown parameter `{other}`: use {LIST_PARAMS}")),
        }
    }
    // "open" means unresolved (acknowledged or not); `acknowledged` narrows the unresolved ones.
    q.filter.state = match (q.filter.state, acknowledged) {
        (Some(IncidentState::Open), None) => {
            q.unresolved = true;
            Some(IncidentState::Open)
        }
        (Some(IncidentState::Open) | None, Some(false)) => Some(IncidentState::Open),
        (Some(IncidentState::Open | IncidentState::Acknowledged) | None, Some(true)) => {
            Some(IncidentState::Acknowledged)
        }
        (Some(IncidentState::Acknowledged), Some(false)) => {
            return Err("acknowledged=false contradicts state=acknowledged".to_string())
        }
        (Some(IncidentState::Resolved), Some(_)) => {
            return Err(
                "acknowledged: filters unresolved incidents; it cannot be combined with \
                 state=resolved"
                    .to_string(),
            )
        }
        (state, None) => state,
    };
    Ok(q)
}

#[derive(Serialize)]
struct PageView {
    items: Vec<IncidentView>,
    next_cursor: Option<i64>,
}

async fn list(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<PageView>, ApiError> {
    let q = parse_list_query(query.as_deref()).map_err(ApiError::bad_request)?;
    let page = db(&app, move |s| {
        let page = s.list(&q.filter, q.cursor, q.limit)?;
        if !q.unresolved {
            return Ok(page);
        }
        let acked = IncidentFilter {
            state: Some(IncidentState::Acknowledged),
            ..q.filter.clone()
        };
        Ok(merge_pages(
            page,
            s.list(&acked, q.cursor, q.limit)?,
            q.limit,
        ))
    })
    .await?;
    Ok(Json(PageView {
        items: page
            .items
            .into_iter()
            .map(|i| IncidentView::new(i, false))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Two newest-first pages taken below the same cursor over disjoint sets → the page of their
/// union (keyset pagination stays exact: the union's first `limit` ids are among the two).
fn merge_pages(
    a: crate::incidents::Page,
    b: crate::incidents::Page,
    limit: u32,
) -> crate::incidents::Page {
    let more = a.next_cursor.is_some() || b.next_cursor.is_some();
    let mut items = a.items;
    items.extend(b.items);
    items.sort_by_key(|i| std::cmp::Reverse(i.id));
    let more = more || items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = if more {
        items.last().map(|i| i.id)
    } else {
        None
    };
    crate::incidents::Page { items, next_cursor }
}

// ---------------------------------------------------------------------------------------------
// GET /api/v1/incidents/{id}

fn no_incident(id: i64) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no incident with id {id}"))
}

async fn one(
    IncidentId(id): IncidentId,
    State(app): State<AppState>,
) -> Result<Json<IncidentView>, ApiError> {
    let i = db(&app, move |s| s.get(id))
        .await?
        .ok_or_else(|| no_incident(id))?;
    Ok(Json(IncidentView::new(i, true)))
}

// ---------------------------------------------------------------------------------------------
// POST /api/v1/incidents/{id}/ack and /notes

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    by: Option<String>,
    /// `"30m"`, `"2h"`: the acknowledgement lapses then and escalation resumes if the incident
    /// is still open.
    expires_in: Option<String>,
}

/// Longest `expires_in` of an acknowledgement.
pub const MAX_ACK_EXPIRY: Duration = Duration::from_secs(7 * 86400);

fn ack_expiry(raw: Option<&str>) -> Result<Option<Duration>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    let d = humantime::parse_duration(raw.trim()).map_err(|e| {
        ApiError::bad_request(format!(
            "expires_in: `{raw}` is not a duration ({e}); e.g. \"30m\" or \"2h\""
        ))
    })?;
    if d.is_zero() || d > MAX_ACK_EXPIRY {
        return Err(ApiError::bad_request(format!(
            "expires_in: must be above zero and at most 7 days (got {})",
            humantime::format_duration(d)
        )));
    }
    Ok(Some(d))
}

async fn ack(
    _: Writer,
    IncidentId(id): IncidentId,
    State(app): State<AppState>,
    OptionalJsonBody(body): OptionalJsonBody<AckBody>,
) -> Result<Response, ApiError> {
    let by = body.by.unwrap_or_else(|| "api".to_string());
    text_field("by", &by, MAX_NAME_CHARS).map_err(ApiError::bad_request)?;
    let by = by.trim().to_string();
    let at = now_ms();
    let expires_at = ack_expiry(body.expires_in.as_deref())?.map(|d| at + d.as_millis() as i64);
    let me = by.clone();
    let (incident, ev) = db(&app, move |s| s.acknowledge_until(id, at, &me, expires_at))
        .await?
        .ok_or_else(|| no_incident(id))?;
    // The store keeps the first acknowledgement. The same person again is idempotent; someone
    // else is told who holds it rather than silently ignored.
    if incident.acknowledged_by.as_deref() != Some(by.as_str()) {
        let holder = incident.acknowledged_by.clone().unwrap_or_default();
        let since = incident.acknowledged_at.map(format_rfc3339);
        return Ok((
            StatusCode::CONFLICT,
            Json(serde_json::json!({
                "error": format!(
                    "incident {id} is already acknowledged by {holder}; add a note instead"
                ),
                "acknowledged_by": holder,
                "acknowledged_at": since,
            })),
        )
            .into_response());
    }
    if ev.at == at {
        publish(&app, ev);
    }
    Ok(Json(IncidentView::new(incident, true)).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnackBody {
    by: Option<String>,
}

/// POST /api/v1/incidents/{id}/unack: withdraws the acknowledgement; escalation resumes.
async fn unack(
    _: Writer,
    IncidentId(id): IncidentId,
    State(app): State<AppState>,
    OptionalJsonBody(body): OptionalJsonBody<UnackBody>,
) -> Result<Response, ApiError> {
    let by = body.by.unwrap_or_else(|| "api".to_string());
    text_field("by", &by, MAX_NAME_CHARS).map_err(ApiError::bad_request)?;
    let by = by.trim().to_string();
    let at = now_ms();
    let (incident, ev) = db(&app, move |s| {
        s.unacknowledge(
            id,
            at,
            &by,
            crate::incidents::escalation::UnackReason::Withdrawn,
        )
    })
    .await?
    .ok_or_else(|| no_incident(id))?;
    let Some(ev) = ev else {
        let why = if incident.resolved_at.is_some() {
            "is resolved"
        } else {
            "is not acknowledged"
        };
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("incident {id} {why}: nothing to withdraw"),
        ));
    };
    publish(&app, ev);
    Ok(Json(IncidentView::new(incident, true)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    by: Option<String>,
    /// The person (free text); `null` unassigns. Required.
    assignee: Option<String>,
}

/// POST /api/v1/incidents/{id}/assign: assigns (or with `"assignee": null` unassigns).
async fn assign(
    _: Writer,
    IncidentId(id): IncidentId,
    State(app): State<AppState>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Response, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "request body: expected a JSON object, e.g. {\"by\": \"…\", \"assignee\": \"…\"}",
        ));
    }
    if body.get("assignee").is_none() {
        return Err(ApiError::bad_request(
            "assignee: required (a person's name, or null to unassign)",
        ));
    }
    let body: AssignBody = serde_json::from_value(body)
        .map_err(|e| ApiError::bad_request(format!("request body: {e}")))?;
    let by = body.by.unwrap_or_else(|| "api".to_string());
    text_field("by", &by, MAX_NAME_CHARS).map_err(ApiError::bad_request)?;
    if let Some(a) = &body.assignee {
        text_field("assignee", a, MAX_NAME_CHARS).map_err(ApiError::bad_request)?;
    }
    let by = by.trim().to_string();
    let assignee = body.assignee.map(|a| a.trim().to_string());
    let at = now_ms();
    let (incident, ev) = db(&app, move |s| s.assign(id, at, &by, assignee.as_deref()))
        .await?
        .ok_or_else(|| no_incident(id))?;
    if let Some(ev) = ev {
        publish(&app, ev);
    }
    Ok(Json(IncidentView::new(incident, true)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    author: String,
    text: String,
}

async fn add_note(
    _: Writer,
    IncidentId(id): IncidentId,
    State(app): State<AppState>,
    JsonBody(body): JsonBody<NoteBody>,
) -> Result<(StatusCode, Json<NoteView>), ApiError> {
    text_field("author", &body.author, MAX_NAME_CHARS)
        .and_then(|_| text_field("text", &body.text, MAX_NOTE_CHARS))
        .map_err(ApiError::bad_request)?;
    let at = now_ms();
    let author = body.author.trim().to_string();
    let (note, ev) = db(&app, move |s| s.add_note(id, at, &author, &body.text))
        .await?
        .ok_or_else(|| no_incident(id))?;
    publish(&app, ev);
    Ok((StatusCode::CREATED, Json(NoteView::from(note))))
}

// ---------------------------------------------------------------------------------------------
// /api/v1/maintenance

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowBody {
    /// "site", "service" or "city"; a city-wide window must say so.
    scope: Option<String>,
    site: Option<String>,
    service: Option<String>,
    starts_at: String,
    ends_at: String,
    reason: String,
    created_by: Option<String>,
}

fn valid_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
}

/// Checks a window request against the clock and the loaded inventory.
fn window_from(
    body: WindowBody,
    now: UnixMillis,
    inv: &crate::config::Inventory,
) -> Result<MaintenanceWindow, String> {
    let WindowBody {
        scope,
        site,
        service,
        starts_at,
        ends_at,
        reason,
        created_by,
    } = body;
    let site = site.filter(|s| !s.is_empty());
    let service = service.filter(|s| !s.is_empty());
    match (scope.as_deref().map(str::trim), &site, &service) {
        (_, Some(_), Some(_)) => return Err("give site or service, not both".into()),
        (None | Some("site"), Some(_), None) | (None | Some("service"), None, Some(_)) => {}
        (Some("city"), None, None) => {}
        (Some("city"), _, _) => {
            return Err("scope: \"city\" covers every site: give no site and no service".into())
        }
        (None, None, None) => {
            return Err(
                "a window with no site and no service covers the whole city: say so \
                        with \"scope\": \"city\", or give site or service"
                    .into(),
            )
        }
        (Some(s @ ("site" | "service")), _, _) => {
            return Err(format!("scope: \"{s}\" needs the {s} field"))
        }
        (Some(other), _, _) => {
            return Err(format!(
                "scope: `{other}` is not one of site, service, city"
            ))
        }
    }
    if let Some(s) = &site {
        if !valid_slug(s) || (!inv.sites.is_empty() && inv.site(s).is_none()) {
            return Err(format!("site: no site with slug `{s}`"));
        }
    }
    if let Some(s) = &service {
        if !valid_slug(s)
            || (!inv.services.is_empty() && !inv.services.iter().any(|x| x.slug == *s))
        {
            return Err(format!("service: no shared service with slug `{s}`"));
        }
    }
    let start = parse_time(&starts_at).ok_or_else(|| time_error("starts_at", &starts_at))?;
    let end = parse_time(&ends_at).ok_or_else(|| time_error("ends_at", &ends_at))?;
    if end <= start {
        return Err("ends_at must be after starts_at".to_string());
    }
    let max = inv.api.max_maintenance.0;
    if (end - start) as u128 > max.as_millis() {
        return Err(format!(
            "the window lasts {}, longer than the maximum {} ([api] max_maintenance): split \
             it, or end it early with POST /api/v1/maintenance/{{id}}/end",
            humantime::format_duration(std::time::Duration::from_secs(
                ((end - start) / 1000) as u64
            )),
            humantime::format_duration(max)
        ));
    }
    if end <= now {
        return Err(format!(
            "ends_at {} is in the past: the window would never apply",
            format_rfc3339(end)
        ));
    }
    let n = reason.chars().count();
    if reason.trim().is_empty() || n > MAX_REASON_CHARS {
        return Err(format!(
            "reason: must be 1 to {MAX_REASON_CHARS} characters, not blank (got {n})"
        ));
    }
    let created_by = created_by.unwrap_or_else(|| "api".to_string());
    let m = created_by.chars().count();
    if created_by.trim().is_empty() || m > MAX_NAME_CHARS {
        return Err(format!(
            "created_by: must be 1 to {MAX_NAME_CHARS} characters, not blank (got {m})"
        ));
    }
    Ok(MaintenanceWindow {
        id: 0,
        site,
        service,
        starts_at: start,
        ends_at: end,
        reason: reason.trim().to_string(),
        created_by: created_by.trim().to_string(),
    })
}

async fn add_maintenance(
    _: Writer,
    State(app): State<AppState>,
    JsonBody(body): JsonBody<WindowBody>,
) -> Result<(StatusCode, Json<WindowView>), ApiError> {
    let inv = app.state.inventory();
    let mut w = window_from(body, now_ms(), &inv).map_err(ApiError::bad_request)?;
    let stored = w.clone();
    w.id = db(&app, move |s| s.add_maintenance(&stored)).await?;
    app.maintenance_changed.notify_one();
    Ok((StatusCode::CREATED, Json(WindowView::from(w))))
}

fn no_window(id: i64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no maintenance window with id {id} (windows from probes.toml have no id)"),
    )
}

async fn delete_maintenance(
    _: Writer,
    WindowId(id): WindowId,
    State(app): State<AppState>,
) -> Result<StatusCode, ApiError> {
    if !db(&app, move |s| s.delete_maintenance(id)).await? {
        return Err(no_window(id));
    }
    app.maintenance_changed.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

async fn end_maintenance(
    _: Writer,
    WindowId(id): WindowId,
    State(app): State<AppState>,
) -> Result<Json<WindowView>, ApiError> {
    let now = now_ms();
    let before = db(&app, move |s| s.maintenance_window(id))
        .await?
        .ok_or_else(|| no_window(id))?;
    if before.ends_at <= now {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "maintenance window {id} already ended at {}",
                format_rfc3339(before.ends_at)
            ),
        ));
    }
    let w = db(&app, move |s| s.end_maintenance(id, now))
        .await?
        .ok_or_else(|| no_window(id))?;
    app.maintenance_changed.notify_one();
    Ok(Json(WindowView::from(w)))
}

#[derive(Serialize)]
struct WindowsView {
    items: Vec<WindowView>,
}

async fn list_maintenance(State(app): State<AppState>) -> Result<Json<WindowsView>, ApiError> {
    let now = now_ms();
    let ws = db(&app, move |s| s.maintenance_windows(now)).await?;
    Ok(Json(WindowsView {
        items: ws.into_iter().map(WindowView::from).collect(),
    }))
}

// ---------------------------------------------------------------------------------------------
// GET /api/v1/incidents/stream

/// One SSE client: replays from the store, then follows the live channel.
///
/// The store is the authority: a live event whose id is the next one is sent as is; otherwise
/// (a gap, events published out of order, or a lagged receiver) the missing events are read
/// from the store. So a lagged client is told (`event: lagged`) and then loses nothing.
struct Tail {
    app: AppState,
    rx: broadcast::Receiver<IncidentEvent>,
    /// Highest event id sent (or the starting point).
    last_id: i64,
    pending: VecDeque<IncidentEvent>,
    /// Read the store after `last_id` before waiting on the channel.
    catch_up: bool,
}

impl Tail {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                if ev.id <= self.last_id {
                    continue;
                }
                self.last_id = ev.id;
                return Some(sse_event(ev));
            }
            if self.catch_up {
                let after = self.last_id;
                let evs = db(&self.app, move |s| s.events_after(after, REPLAY_BATCH))
                    .await
                    .ok()?;
                self.catch_up = evs.len() as u32 >= REPLAY_BATCH;
                self.pending.extend(evs);
                continue;
            }
            match self.rx.recv().await {
                Ok(ev) if ev.id <= self.last_id => {}
                Ok(ev) if ev.id == self.last_id + 1 => self.pending.push_back(ev),
                Ok(ev) => {
                    let after = self.last_id;
                    let mut evs = db(&self.app, move |s| s.events_after(after, REPLAY_BATCH))
                        .await
                        .ok()?;
                    self.catch_up = evs.len() as u32 >= REPLAY_BATCH;
                    if !evs.iter().any(|e| e.id == ev.id) && !self.catch_up {
                        // Published but not (yet) readable: send what we were given.
                        evs.push(ev);
                        evs.sort_by_key(|e| e.id);
                    }
                    self.pending.extend(evs);
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    self.catch_up = true;
                    return Some(
                        Event::default()
                            .event("lagged")
                            .data(serde_json::json!({ "skipped": n }).to_string()),
                    );
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

fn sse_event(ev: IncidentEvent) -> Event {
    let kind = kind_name(ev.kind);
    let id = ev.id.to_string();
    let data = serde_json::to_string(&EventView::from(ev)).unwrap_or_else(|_| "{}".into());
    Event::default().id(id).event(kind).data(data)
}

async fn stream(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let last = match headers.get("last-event-id") {
        None => None,
        Some(v) => match v.to_str().ok().and_then(|s| s.trim().parse::<i64>().ok()) {
            Some(n) if n >= 0 => Some(n),
            _ => {
                return Err(ApiError::bad_request(
                    "Last-Event-ID: must be the integer id of an event",
                ))
            }
        },
    };
    // Subscribe before reading the store, so nothing falls between the two.
    let rx = app.events.subscribe();
    let (last_id, catch_up) = match last {
        Some(n) => (n, true),
        None => {
            let newest = db(&app, |s| s.recent_events(1)).await?;
            (newest.first().map_or(0, |e| e.id), false)
        }
    };
    let tail = Tail {
        app,
        rx,
        last_id,
        pending: VecDeque::new(),
        catch_up,
    };
    let events = futures::stream::unfold(tail, |mut t| async move {
        let ev = t.next().await?;
        Some((Ok::<_, Infallible>(ev), t))
    });
    let mut r = Sse::new(events)
        .keep_alive(
            KeepAlive::new()
                .interval(Duration::from_secs(15))
                .text("keep-alive"),
        )
        .into_response();
    // Tell buffering reverse proxies (nginx) to pass events through at once.
    r.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::localtime::parse_rfc3339;

    #[test]
    fn list_query() {
        let q = parse_list_query(Some(
            "state=open&severity=critical&site=phuong-a&limit=10&cursor=5",
        ))
        .unwrap();
        assert_eq!(q.filter.state, Some(IncidentState::Open));
        assert_eq!(q.filter.severity, Some(Severity::Critical));
        assert_eq!(q.filter.site.as_deref(), Some("phuong-a"));
        assert_eq!((q.cursor, q.limit), (Some(5), 10));
        let q = parse_list_query(None).unwrap();
        assert_eq!(q.limit, DEFAULT_LIMIT);
        let q = parse_list_query(Some("since=2026-11-26+07%3A00&state=")).unwrap();
        assert_eq!(q.filter.since, parse_rfc3339("2026-11-26T00:00:00Z"));
        assert_eq!(q.filter.state, None);
        for (bad, names) in [
            ("state=closed", "state"),
            ("severity=info", "severity"),
            ("limit=0", "limit"),
            ("limit=501", "limit"),
            ("cursor=x", "cursor"),
            ("since=tomorrow", "since"),
            ("status=open", "status"),
            ("state=open&state=resolved", "state"),
        ] {
            let e = parse_list_query(Some(bad)).unwrap_err();
            assert!(e.contains(names), "{bad}: {e}");
        }
        // open = unresolved (acknowledged or not); acknowledged narrows it.
        let q = parse_list_query(Some("state=open")).unwrap();
        assert!(q.unresolved);
        assert_eq!(q.filter.state, Some(IncidentState::Open));
        for (query, state) in [
            ("state=open&acknowledged=false", IncidentState::Open),
            ("acknowledged=false", IncidentState::Open),
            ("state=open&acknowledged=true", IncidentState::Acknowledged),
            ("acknowledged=true", IncidentState::Acknowledged),
            ("state=acknowledged", IncidentState::Acknowledged),
        ] {
            let q = parse_list_query(Some(query)).unwrap();
            assert!(!q.unresolved, "{query}");
            assert_eq!(q.filter.state, Some(state), "{query}");
        }
        for bad in [
            "acknowledged=yes",
            "state=resolved&acknowledged=true",
            "state=acknowledged&acknowledged=false",
        ] {
            let e = parse_list_query(Some(bad)).unwrap_err();
            assert!(e.contains("acknowledged"), "{bad}: {e}");
        }
        assert!(parse_list_query(Some("state=closed"))
            .unwrap_err()
            .contains("open, acknowledged, resolved"));
    }

    #[test]
    fn windows_are_checked_against_the_inventory() {
        use crate::config::{Inventory, ServiceInfo, SiteInfo, SiteKind};
        let inv = Inventory {
            sites: vec![SiteInfo {
                code: "1".into(),
                slug: "phuong-a".into(),
                name: "Phường A".into(),
                kind: SiteKind::Phuong,
                former_province: "tphcm".into(),
                former_district: "Quận 1".into(),
                island: false,
                lat: 10.7,
                lon: 106.7,
                link_class: "mainland".into(),
            }],
            services: vec![ServiceInfo {
                slug: "lgsp".into(),
                name: "LGSP".into(),
                name_en: None,
            }],
            ..Inventory::default()
        };
        let body = |site: Option<&str>, service: Option<&str>| WindowBody {
            scope: (site.is_none() && service.is_none()).then(|| "city".to_string()),
            site: site.map(str::to_string),
            service: service.map(str::to_string),
            starts_at: "2026-11-28 22:00".into(),
            ends_at: "2026-11-29 02:00".into(),
            reason: " Nâng cấp ".into(),
            created_by: None,
        };
        let now = parse_rfc3339("2026-11-01T00:00:00Z").unwrap();
        let w = window_from(body(Some("phuong-a"), None), now, &inv).unwrap();
        assert_eq!(format_rfc3339(w.starts_at), "2026-11-28T15:00:00Z");
        assert_eq!(format_rfc3339(w.ends_at), "2026-11-28T19:00:00Z");
        assert_eq!(
            (w.reason.as_str(), w.created_by.as_str()),
            ("Nâng cấp", "api")
        );
        assert!(window_from(body(None, Some("lgsp")), now, &inv).is_ok());
        // An empty site is no site: without scope = "city" that is refused.
        let mut empty = body(Some(""), None);
        let e = window_from(empty, now, &inv).unwrap_err();
        assert!(e.contains("scope"), "{e}");
        empty = body(Some(""), None);
        empty.scope = Some("city".into());
        assert!(window_from(empty, now, &inv).unwrap().site.is_none());
        let mut city = body(Some("phuong-a"), None);
        city.scope = Some("city".into());
        assert!(window_from(city, now, &inv).unwrap_err().contains("city"));
        let mut wrong = body(None, Some("lgsp"));
        wrong.scope = Some("site".into());
        assert!(window_from(wrong, now, &inv).unwrap_err().contains("site"));
        // Longer than [api] max_maintenance (7 days by default).
        let mut long = body(None, None);
        long.ends_at = "2026-12-06 22:00".into();
        let e = window_from(long, now, &inv).unwrap_err();
        assert!(e.contains("max_maintenance") && e.contains("7days"), "{e}");
        let mut week = body(None, None);
        week.ends_at = "2026-12-05 22:00".into();
        assert!(window_from(week, now, &inv).is_ok());
        let e = window_from(body(Some("phuong-z"), None), now, &inv).unwrap_err();
        assert!(e.contains("phuong-z"), "{e}");
        let e = window_from(body(None, Some("vneid")), now, &inv).unwrap_err();
        assert!(e.contains("vneid"), "{e}");
        let late = parse_rfc3339("2026-12-01T00:00:00Z").unwrap();
        assert!(window_from(body(None, None), late, &inv)
            .unwrap_err()
            .contains("in the past"));
    }
}
