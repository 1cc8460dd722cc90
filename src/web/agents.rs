//! `/api/v1/agents…`: ward agents push results and heartbeats, fetch the checks they run for
//! the central; `GET /api/v1/agents` lists them. Authentication (the agent's own token) is
//! decided before the body is read; a batch is validated whole before anything is applied.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};

use super::{ApiError, AppState};
use crate::agents::hub::Hub;
use crate::agents::wire::*;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/agents", get(list))
        .route("/api/v1/agents/{slug}/results", post(results))
        .route("/api/v1/agents/{slug}/heartbeat", post(heartbeat))
        .route("/api/v1/agents/{slug}/checks", get(checks))
}

type MaybeHub = Option<Extension<Arc<Hub>>>;

/// The hub; in a router without one (embedded tests), a request without credentials is still
/// answered 401 first, like with a hub.
fn hub(h: MaybeHub, headers: &HeaderMap) -> Result<Arc<Hub>, ApiError> {
    match h {
        Some(Extension(h)) => Ok(h),
        None if headers.get(header::AUTHORIZATION).is_none() => Err(ApiError {
            challenge: Some("Bearer realm=\"lienthong-agents\""),
            ..ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing Authorization header: send `Authorization: Bearer <agent token>`",
            )
        }),
        None => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "agents are not enabled in this process",
        )),
    }
}

/// Reads at most `limit` bytes of JSON: 413 above, 400 on anything that is not the shape.
async fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body larger than {limit} bytes: send smaller batches"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

async fn results(
    h: MaybeHub,
    Path(site): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BatchReply>, ApiError> {
    let hub = hub(h, &headers)?;
    hub.authenticate(&headers, &site)?;
    let batch: ResultBatch = json_body(&headers, body, MAX_BATCH_BYTES).await?;
    Ok(Json(hub.apply(&site, batch).await?))
}

async fn heartbeat(
    h: MaybeHub,
    Path(site): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<HeartbeatReply>, ApiError> {
    let hub = hub(h, &headers)?;
    hub.authenticate(&headers, &site)?;
    let hb: Heartbeat = json_body(&headers, body, MAX_HEARTBEAT_BYTES).await?;
    Ok(Json(hub.heartbeat(&site, hb).await?))
}

async fn checks(
    h: MaybeHub,
    Path(site): Path<String>,
    headers: HeaderMap,
) -> Result<Json<CheckList>, ApiError> {
    let hub = hub(h, &headers)?;
    hub.authenticate(&headers, &site)?;
    Ok(Json(hub.check_list(&site)))
}

async fn list(h: MaybeHub, State(_): State<AppState>) -> Result<Json<Vec<AgentView>>, ApiError> {
    match h {
        Some(Extension(hub)) => Ok(Json(hub.list().await?)),
        None => Ok(Json(Vec::new())),
    }
}
