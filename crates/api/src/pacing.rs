//! Read deadlines for request bodies, so that a slow client cannot hold what
//! a request holds (its share of the upload budget, a spool slot) for long:
//! a body must send something at least every `FACEREC_BODY_IDLE_TIMEOUT_SECS`,
//! and after that same time as a grace period it must average at least
//! `FACEREC_MIN_UPLOAD_BYTES_PER_SEC` since it began. A body that falls behind
//! ends with an error where the handler reads it, the request is answered
//! `408 request_timeout` (whatever the handler made of the error) and the
//! connection is closed. The clock starts when the body is first read, so
//! time spent waiting for room in the upload budget does not count.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::http::header::CONNECTION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tokio::time::Instant;

use crate::{ApiError, AppState, ErrorCode, Settings};

/// How fast a body must come in.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Longest wait for the next chunk; also the grace before the rate counts. `None`: no limit.
    idle: Option<Duration>,
    /// Bytes per second the body must average once the grace is over; 0: no minimum.
    min_rate: u64,
}

impl Pace {
    pub fn new(settings: &Settings) -> Self {
        let idle = (settings.body_idle_timeout_secs > 0).then(|| Duration::from_secs(settings.body_idle_timeout_secs));
        Self { idle, min_rate: settings.min_upload_bytes_per_sec }
    }

    /// When the next chunk must have arrived, for a body that began at
    /// `started` and has delivered `received` bytes, read again at `now`.
    fn deadline(&self, started: Instant, received: u64, now: Instant) -> Option<Instant> {
        let idle = self.idle?;
        let next_chunk = now + idle;
        if self.min_rate == 0 {
            return Some(next_chunk);
        }
        // The bytes received so far pay for this long past the grace.
        let paid_for = Duration::from_secs_f64(received as f64 / self.min_rate as f64);
        Some(next_chunk.min(started + idle + paid_for))
    }
}

/// Why a paced body ended early.
#[derive(Debug, thiserror::Error)]
enum PacedError {
    #[error("the request body came in too slowly")]
    TooSlow,
    #[error("reading the request body failed")]
    Read(#[source] axum::Error),
}

/// Middleware on every route: paces the request's body (see the module
/// comment) and answers `408 request_timeout` when it fell behind.
pub async fn pace_bodies(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let pace = Pace::new(&state.settings);
    if pace.idle.is_none() {
        return next.run(request).await;
    }
    let too_slow = Arc::new(AtomicBool::new(false));
    let (parts, body) = request.into_parts();
    let request = Request::from_parts(parts, paced(body, pace, too_slow.clone()));
    let response = next.run(request).await;
    if !too_slow.load(Ordering::Acquire) {
        return response;
    }
    tracing::warn!(min_bytes_per_sec = pace.min_rate, "request body too slow: cut off");
    let message = format!(
        "the request body came in too slowly (it must send something every {} s and average at least {} bytes/s); \
         nothing was kept",
        pace.idle.unwrap_or_default().as_secs(),
        pace.min_rate
    );
    let mut response = ApiError::new(ErrorCode::RequestTimeout, message).into_response();
    // The rest of the body will not be read: the connection cannot carry another request.
    response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The body, failing with [`PacedError::TooSlow`] (and setting `too_slow`)
/// once it misses its deadline.
fn paced(body: Body, pace: Pace, too_slow: Arc<AtomicBool>) -> Body {
    struct Reading {
        inner: axum::body::BodyDataStream,
        started: Option<Instant>,
        received: u64,
    }
    let reading = Reading { inner: body.into_data_stream(), started: None, received: 0 };
    let stream = futures::stream::unfold(Some(reading), move |state| {
        let too_slow = too_slow.clone();
        async move {
            let mut reading = state?;
            let now = Instant::now();
            let started = *reading.started.get_or_insert(now);
            let next = match pace.deadline(started, reading.received, now) {
                Some(deadline) => tokio::time::timeout_at(deadline, reading.inner.next()).await,
                None => Ok(reading.inner.next().await),
            };
            match next {
                Ok(Some(Ok(chunk))) => {
                    reading.received += chunk.len() as u64;
                    Some((Ok::<Bytes, PacedError>(chunk), Some(reading)))
                }
                Ok(Some(Err(e))) => Some((Err(PacedError::Read(e)), None)),
                Ok(None) => None,
                Err(_elapsed) => {
                    too_slow.store(true, Ordering::Release);
                    Some((Err(PacedError::TooSlow), None))
                }
            }
        }
    });
    Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pace(idle_secs: u64, min_rate: u64) -> Pace {
        Pace { idle: Some(Duration::from_secs(idle_secs)), min_rate }
    }

    #[test]
    fn a_body_gets_the_idle_time_per_chunk_and_then_must_keep_its_average() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        // At the start: the grace.
        assert_eq!(pace(10, 1000).deadline(start, 0, start), Some(at(10)));
        // 5,000 bytes pay for 5 s past the grace; read at 3 s the idle limit comes first.
        assert_eq!(pace(10, 1000).deadline(start, 5000, at(3)), Some(at(13)));
        // Read at 12 s with 3,000 bytes: the average runs out at 13 s.
        assert_eq!(pace(10, 1000).deadline(start, 3000, at(12)), Some(at(13)));
        // One byte every few seconds never pays for more than a millisecond.
        assert!(pace(10, 1000).deadline(start, 4, at(9)).unwrap() < at(11));
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let start = Instant::now();
        assert_eq!(
            pace(10, 0).deadline(start, 0, start + Duration::from_secs(100)),
            Some(start + Duration::from_secs(110))
        );
        assert_eq!(Pace { idle: None, min_rate: 1000 }.deadline(start, 0, start), None);
    }
}
