//! The HTTP layer: a function of read handles. It never runs probes or touches the scheduler;
//! its only writes are acknowledgements, notes and maintenance windows through the incident
//! store (token-protected).

mod api;
pub mod auth;
pub mod feed;
pub mod incidents;
pub mod openapi;
pub mod server;
pub mod status;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::metrics::Metrics;
use crate::state::LiveState;

/// What handlers may read (and the incident store they may write acks, notes and windows to).
#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub state: Arc<LiveState>,
    pub store: Arc<crate::incidents::Store>,
    /// Live timeline events (the engine publishes; the API publishes acks and notes).
    pub events: tokio::sync::broadcast::Sender<crate::incidents::IncidentEvent>,
    /// Bearer token of the write endpoints; None = write endpoints disabled (403).
    pub api_token: Option<Arc<str>>,
    /// Poked after `POST /api/v1/maintenance` so the engine reloads the windows.
    pub maintenance_changed: Arc<tokio::sync::Notify>,
    /// The status page's cached readiness report (recomputed once a minute).
    pub pages: Arc<status::PageCache>,
}

pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(api::routes())
        .merge(incidents::routes())
        .merge(status::routes())
        .fallback(not_found)
        .layer(tower::limit::ConcurrencyLimitLayer::new(256))
        .with_state(app)
}

async fn metrics(State(app): State<AppState>) -> Response {
    // Rendering thousands of series takes milliseconds: keep it off the probing workers.
    let metrics = app.metrics.clone();
    let body = tokio::task::spawn_blocking(move || metrics.render())
        .await
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(app): State<AppState>) -> Response {
    // Probing on without a working store loses incidents: not ready, and say why.
    if let Some(problem) = app.store.health().problem() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("degraded: {problem}"),
        );
    }
    let inv = app.state.inventory();
    if app.state.is_running() && !inv.checks.is_empty() {
        (
            StatusCode::OK,
            format!("ready: {} checks scheduled\n", inv.checks.len()),
        )
            .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: config not loaded or scheduler stopped\n",
        )
            .into_response()
    }
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such endpoint")
}

/// A JSON error body: `{"error": "..."}`.
pub fn error(status: StatusCode, reason: &str) -> Response {
    (status, Json(serde_json::json!({ "error": reason }))).into_response()
}

/// An error answer of the incident API, small enough for `Result`s: a status and a reason,
/// answered as [`error`] (plus a `WWW-Authenticate` challenge for 401s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub reason: String,
    pub challenge: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        ApiError {
            status,
            reason: reason.into(),
            challenge: None,
        }
    }

    pub fn bad_request(reason: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, reason)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = error(self.status, &self.reason);
        if let Some(c) = self.challenge {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static(c),
            );
        }
        r
    }
}
