//! The HTTP layer: a function of read handles. It never runs probes or touches the scheduler;
//! its only writes are acknowledgements, notes and maintenance windows through the incident
//! store (token-protected).

pub mod agents;
mod api;
pub mod auth;
pub mod feed;
pub mod incidents;
pub mod openapi;
pub mod runbooks;
pub mod server;
pub mod status;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
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
        .merge(agents::routes())
        .merge(incidents::routes())
        .merge(status::routes())
        .merge(runbooks::routes())
        .fallback(not_found)
        .layer(tower::limit::ConcurrencyLimitLayer::new(256))
        .with_state(app)
}

async fn metrics(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let gzip = accepts_gzip(&headers);
    // Rendering (and compressing) thousands of series takes milliseconds: keep it off the
    // probing workers.
    let metrics = app.metrics.clone();
    let body = tokio::task::spawn_blocking(move || {
        let text = metrics.render();
        if gzip {
            gzip_bytes(text.as_bytes()).map_err(|e| {
                tracing::warn!(error = %e, "gzip of /metrics failed; sending it plain");
                text
            })
        } else {
            Err(text)
        }
    })
    .await
    .unwrap_or_else(|_| Err(String::new()));
    let content_type = (
        header::CONTENT_TYPE,
        "text/plain; version=0.0.4; charset=utf-8",
    );
    let vary = (header::VARY, "accept-encoding");
    match body {
        Ok(zipped) => (
            [content_type, vary, (header::CONTENT_ENCODING, "gzip")],
            zipped,
        )
            .into_response(),
        Err(text) => ([content_type, vary], text).into_response(),
    }
}

/// Whether `Accept-Encoding` allows gzip (Prometheus sends `gzip`); `q=0` refuses it, and a
/// `*` counts unless gzip itself is refused.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut star = false;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                return q > 0.0;
            }
            if coding == "*" {
                star = q > 0.0;
            }
        }
    }
    star
}

/// Level 1: on metrics text it already shrinks ~10×, at a fraction of the CPU of level 6.
fn gzip_bytes(data: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 8),
        flate2::Compression::fast(),
    );
    e.write_all(data)?;
    e.finish()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(values: &[&str]) -> bool {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::ACCEPT_ENCODING, v.parse().unwrap());
        }
        accepts_gzip(&h)
    }

    #[test]
    fn accept_encoding_gzip() {
        assert!(accept(&["gzip"]));
        assert!(accept(&["deflate, GZIP;q=0.5"]));
        assert!(accept(&["br", "gzip"]));
        assert!(accept(&["*"]));
        assert!(!accept(&[]));
        assert!(!accept(&["identity"]));
        assert!(!accept(&["gzip;q=0"]));
        assert!(!accept(&["*, gzip;q=0"]));
        assert!(!accept(&["*;q=0"]));
    }
}
