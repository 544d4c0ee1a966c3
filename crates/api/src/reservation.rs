//! A submission's reservation that grows with its body: a body declared
//! larger than [`FIRST_RESERVATION`] starts with that much of its caller's
//! share and of the upload budget, and takes more as its bytes arrive (in
//! steps of [`STEP`]), waiting for room at most `FACEREC_UPLOAD_WAIT_MS` each
//! time. So a client that declares 20 MiB and trickles holds what it has
//! sent, not what it declared, and cannot sit on the budget every tenant
//! shares. A body that finds no room is cut off: the request is answered
//! `429 rate_limited` (over its caller's share) or `503 server_busy` (the
//! budget is full), and the connection is closed. What was taken is held
//! until the answer is ready, as the bytes are.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::CONNECTION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tokio::sync::Semaphore;

use crate::ApiError;
use crate::admission::{BUSY_RETRY_AFTER_SECS, FIRST_RESERVATION, Held, UNIT};

/// How much more is taken at once as a body grows, in units (256 KiB).
const STEP: u32 = 256;

/// Why a growing body was cut off.
#[derive(Debug, thiserror::Error)]
enum GrowError {
    #[error("no room for the rest of the upload")]
    NoRoom,
    #[error("reading the request body failed")]
    Read(#[source] axum::Error),
}

/// Runs the request with its body taking room as it arrives (see the module comment).
pub(crate) async fn growing(
    request: Request,
    next: Next,
    held: Held,
    budget: Arc<Semaphore>,
    declared: u32,
    wait: Duration,
) -> Response {
    let held = Arc::new(tokio::sync::Mutex::new(held));
    let refused: Arc<Mutex<Option<ApiError>>> = Arc::default();
    let (parts, body) = request.into_parts();
    let grower = Grower { held: held.clone(), budget, declared, wait, refused: refused.clone() };
    let response = next.run(Request::from_parts(parts, grower.body(body))).await;
    let refusal = refused.lock().unwrap_or_else(|e| e.into_inner()).take();
    let response = match refusal {
        None => response,
        Some(error) => {
            metrics::counter!(facerec_telemetry::metrics::names::UPLOADS_REFUSED).increment(1);
            let mut response = error.into_response();
            // The rest of the body will not be read: the connection cannot carry another request.
            response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
            response
        }
    };
    // Held until the answer is ready: the handler kept the bytes until then.
    drop(held);
    response
}

struct Grower {
    held: Arc<tokio::sync::Mutex<Held>>,
    budget: Arc<Semaphore>,
    declared: u32,
    wait: Duration,
    refused: Arc<Mutex<Option<ApiError>>>,
}

impl Grower {
    fn body(self, body: Body) -> Body {
        let state = Some((self, body.into_data_stream(), 0usize));
        let stream = futures::stream::unfold(state, |state| async move {
            let (grower, mut inner, received) = state?;
            match inner.next().await {
                None => None,
                Some(Err(e)) => Some((Err(GrowError::Read(e)), None)),
                Some(Ok(chunk)) => {
                    let received = received + chunk.len();
                    match grower.cover(received).await {
                        Ok(()) => Some((Ok::<Bytes, GrowError>(chunk), Some((grower, inner, received)))),
                        Err(refusal) => {
                            tracing::warn!(received, code = refusal.code.as_str(), "upload cut off: no room to grow");
                            *grower.refused.lock().unwrap_or_else(|e| e.into_inner()) = Some(refusal);
                            Some((Err(GrowError::NoRoom), None))
                        }
                    }
                }
            }
        });
        Body::from_stream(stream)
    }

    /// Makes the reservation cover `received` bytes, a step at a time.
    async fn cover(&self, received: usize) -> Result<(), ApiError> {
        let needed = u32::try_from(received.div_ceil(UNIT)).unwrap_or(u32::MAX);
        let mut held = self.held.lock().await;
        if needed <= held.units {
            return Ok(());
        }
        let target = needed.div_ceil(STEP).saturating_mul(STEP).clamp(FIRST_RESERVATION, self.declared.max(needed));
        let more = target - held.units;
        let deadline = tokio::time::Instant::now() + self.wait;
        if !held.share.grow(more, deadline).await {
            let message = "this caller already has its share of the api's uploads in flight; try again shortly";
            return Err(ApiError::over_share(message, BUSY_RETRY_AFTER_SECS));
        }
        match tokio::time::timeout_at(deadline, self.budget.clone().acquire_many_owned(more)).await {
            Ok(Ok(permit)) => {
                held.permit.merge(permit);
                held.units = target;
                Ok(())
            }
            _ => {
                // The share taken for it goes back with the request; the answer is a refusal anyway.
                Err(ApiError::busy("the api holds as many uploads as it may; try again shortly", BUSY_RETRY_AFTER_SECS))
            }
        }
    }
}
