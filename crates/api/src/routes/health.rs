use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::{ApiError, AppState, ErrorCode};

/// A dependency slower than this to answer counts as down.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// `GET /readyz` when both dependencies answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// Always `ready`.
    pub status: String,
    /// `{"postgres": "ok", "redis": "ok"}`; on `503` the error body carries the same field.
    pub checks: std::collections::BTreeMap<String, String>,
}

/// Liveness: the process is up and serving.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

async fn within(check: impl Future<Output = bool>) -> bool {
    tokio::time::timeout(READY_TIMEOUT, check).await.unwrap_or(false)
}

/// Readiness: `200` only when both PostgreSQL and Redis answer.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "`not_ready`; `checks` says which dependency does not answer", body = crate::ErrorBody)
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let (postgres, redis) = tokio::join!(within(state.store.ping()), within(state.queue.ping()));
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let checks = json!({"postgres": word(postgres), "redis": word(redis)});
    if postgres && redis {
        (StatusCode::OK, Json(json!({"status": "ready", "checks": checks}))).into_response()
    } else {
        let error = ApiError::new(ErrorCode::NotReady, "a dependency does not answer");
        ApiError { extra: Some(("checks", checks)), ..error }.into_response()
    }
}
