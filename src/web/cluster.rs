//! `GET /api/v1/cluster`: the instances sharing the store, their role and last heartbeat
//! (empty on a single-instance SQLite store).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::AppState;

pub async fn cluster(State(app): State<AppState>) -> Response {
    let store = app.store.clone();
    let shared = store.is_shared();
    let me = store.instance().map(str::to_string);
    let leader = store.is_leader();
    match tokio::task::spawn_blocking(move || store.cluster()).await {
        Ok(Ok(members)) => Json(serde_json::json!({
            "shared": shared,
            "instance": me,
            "role": if leader { "leader" } else { "standby" },
            "members": members,
        }))
        .into_response(),
        Ok(Err(e)) => super::error(StatusCode::SERVICE_UNAVAILABLE, &format!("store: {e}")),
        Err(_) => super::error(StatusCode::INTERNAL_SERVER_ERROR, "cluster task failed"),
    }
}
