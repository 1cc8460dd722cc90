//! The HTTP layer: a function of read handles. Its writes are token-protected: acknowledgements,
//! notes and maintenance windows through the incident store; the pre-conference sweep through
//! the scheduler's [`crate::scheduler::OnDemand`] handle (results go to the writer queue like
//! any run); ward reports through the incident engine ([`Actions`]).

pub mod agents;
mod api;
pub mod auth;
mod cluster;
pub mod feed;
pub mod incidents;
pub mod openapi;
pub mod reports;
pub mod runbooks;
pub mod server;
pub mod status;
pub mod sweep;
pub mod teams;

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
    /// What the sweep and ward reports act through (empty: they answer 503).
    pub actions: Arc<Actions>,
}

/// Handles of the running service for the sweep and ward reports; the service fills them at
/// start and replaces them on reload. Empty by default (a read-only router, as in tests).
#[derive(Default)]
pub struct Actions {
    on_demand: std::sync::RwLock<Option<Arc<crate::scheduler::OnDemand>>>,
    engine: std::sync::RwLock<Option<Arc<crate::result_writer::Engine>>>,
    report_tokens: std::sync::RwLock<Arc<crate::reports::Tokens>>,
}

impl Actions {
    pub fn set_on_demand(&self, h: Option<Arc<crate::scheduler::OnDemand>>) {
        *self.on_demand.write().unwrap_or_else(|e| e.into_inner()) = h;
    }

    pub fn on_demand(&self) -> Option<Arc<crate::scheduler::OnDemand>> {
        self.on_demand
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_engine(&self, e: Arc<crate::result_writer::Engine>) {
        *self.engine.write().unwrap_or_else(|e| e.into_inner()) = Some(e);
    }

    pub fn engine(&self) -> Option<Arc<crate::result_writer::Engine>> {
        self.engine
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_report_tokens(&self, t: crate::reports::Tokens) {
        *self
            .report_tokens
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(t);
    }

    pub fn report_tokens(&self) -> Arc<crate::reports::Tokens> {
        self.report_tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(api::routes())
        .merge(agents::routes())
        .merge(incidents::routes())
        // Readers of the incident store that build on `incidents`' helpers; routed here so
        // `incidents` does not depend on them.
        .route("/api/v1/teams", get(teams::teams))
        .route("/api/v1/cluster", get(cluster::cluster))
        .route("/incidents.atom", get(feed::atom))
        .route("/api/v1/openapi.json", get(openapi::document))
        .merge(sweep::routes())
        .merge(reports::routes())
        .merge(status::routes())
        .merge(runbooks::routes())
        .fallback(not_found)
        .layer(tower::limit::ConcurrencyLimitLayer::new(256))
        .with_state(app)
}

/// Text handed to the body per piece, and compressed bytes gathered before one is sent.
const METRICS_CHUNK: usize = 64 * 1024;

async fn metrics(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let gzip = accepts_gzip(&headers);
    // Rendering (and compressing) thousands of series takes milliseconds: keep it off the
    // probing workers. The page is streamed in pieces from one snapshot, so the whole text
    // (13 MB at 10,000 checks) never sits in memory at once.
    // One render at a time: a scrape storm queues here and takes one core at most, so the
    // prober keeps the others. The turn is held until the last piece is handed over.
    let turn = app.metrics.scrape_turn.clone().acquire_owned().await.ok();
    let metrics = app.metrics.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        let mut out = String::with_capacity(METRICS_CHUNK + 4096);
        if gzip {
            // Level 1: on metrics text it already shrinks ~10×, at a fraction of level 6's CPU.
            let mut zip = flate2::write::GzEncoder::new(
                ChunkSender::new(tx.clone()),
                flate2::Compression::fast(),
            );
            let mut failed = None;
            let mut feed = |zip: &mut flate2::write::GzEncoder<ChunkSender>, text: &mut String| {
                use std::io::Write;
                if failed.is_none() {
                    if let Err(e) = zip.write_all(text.as_bytes()) {
                        failed = Some(e);
                    }
                }
                text.clear();
            };
            metrics.render_chunked(&mut out, METRICS_CHUNK, &mut |text| feed(&mut zip, text));
            feed(&mut zip, &mut out);
            let done = match failed {
                Some(e) => Err(e),
                None => zip.finish().and_then(|mut sender| sender.send()),
            };
            if let Err(e) = done {
                // Mostly the scraper hanging up; the stream ends with the error.
                let _ = tx.blocking_send(Err(e));
            }
        } else {
            let mut send = |text: &mut String| {
                let piece = bytes::Bytes::copy_from_slice(text.as_bytes());
                text.clear();
                let _ = tx.blocking_send(Ok(piece));
            };
            metrics.render_chunked(&mut out, METRICS_CHUNK, &mut send);
            send(&mut out);
        }
    });
    let body = axum::body::Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|piece| (piece, rx))
    }));
    let content_type = (
        header::CONTENT_TYPE,
        "text/plain; version=0.0.4; charset=utf-8",
    );
    let vary = (header::VARY, "accept-encoding");
    if gzip {
        (
            [content_type, vary, (header::CONTENT_ENCODING, "gzip")],
            body,
        )
            .into_response()
    } else {
        ([content_type, vary], body).into_response()
    }
}

/// The gzip encoder's output: gathered to [`METRICS_CHUNK`] bytes, then sent to the body.
struct ChunkSender {
    buf: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
}

impl ChunkSender {
    fn new(tx: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>) -> Self {
        ChunkSender {
            buf: Vec::with_capacity(METRICS_CHUNK + 8192),
            tx,
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = bytes::Bytes::copy_from_slice(&self.buf);
        self.buf.clear();
        self.tx
            .blocking_send(Ok(piece))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "scraper gone"))
    }
}

impl std::io::Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= METRICS_CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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
        // A shared store: say who this instance is and whether it leads.
        let role = match app.store.instance() {
            Some(me) if app.store.is_leader() => format!("; role: leader (instance {me})"),
            Some(me) => format!("; role: standby (instance {me})"),
            None => String::new(),
        };
        (
            StatusCode::OK,
            format!("ready: {} checks scheduled{role}\n", inv.checks.len()),
        )
            .into_response()
    } else {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: config not loaded or scheduler stopped",
        )
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
