use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::AppState;

/// A dependency slower than this to answer counts as down.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Liveness: the process is up and serving.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

async fn within(check: impl Future<Output = bool>) -> bool {
    tokio::time::timeout(READY_TIMEOUT, check).await.unwrap_or(false)
}

/// Readiness: `200` only when both PostgreSQL and Redis answer.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let (postgres, redis) = tokio::join!(within(state.store.ping()), within(state.queue.ping()));
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let checks = json!({"postgres": word(postgres), "redis": word(redis)});
    if postgres && redis {
        (StatusCode::OK, Json(json!({"status": "ready", "checks": checks}))).into_response()
    } else {
        let error = json!({"code": "not_ready", "message": "a dependency does not answer"});
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": error, "checks": checks}))).into_response()
    }
}
