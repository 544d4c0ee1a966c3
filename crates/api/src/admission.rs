//! Admission control for submissions: a budget of upload bytes held in memory
//! at once (so a crowd of large uploads cannot take the api's memory), of
//! which each caller may hold only its fair share (`shares`), the room for
//! archives on disk (`spooling`), and a cheap view of the queue depth for
//! back-pressure (so the check costs the same at any depth).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use facerec_store::{Store, StoreError};
use tokio::sync::{Mutex, Semaphore};

use crate::bodies::{discard_refused_body, submission_body_limit};
use crate::shares::{CallerId, Shares, share_of};
use crate::spooling::Spool;
use crate::{ApiError, Settings};

/// The budget is counted in KiB (a semaphore's permits are `u32`).
const UNIT: usize = 1024;

/// How stale the queue depth may be. Submissions admitted meanwhile are
/// counted in, so a burst cannot overrun the limit by more than what workers
/// took in the same interval.
const QUEUE_DEPTH_MAX_AGE: Duration = Duration::from_millis(200);

/// Archives read into the database at once.
const BATCH_READERS: usize = 2;

/// `Retry-After` seconds for a submission that found no room.
const BUSY_RETRY_AFTER_SECS: u64 = 1;

/// Shared by every request of one api.
pub struct Admission {
    /// Batches whose archive is being read into the database (each holds a
    /// chunk of entries in memory: 4 MiB, or one larger image); the rest wait their turn.
    batch_readers: Semaphore,
    upload_budget: Arc<Semaphore>,
    budget_units: u32,
    /// What each caller may hold of the upload budget.
    shares: Arc<Shares>,
    wait: Duration,
    /// The largest submission body: what a request that does not declare its size reserves.
    submission_limit: usize,
    queued: QueueDepth,
    /// Archives on disk.
    pub spool: Arc<Spool>,
}

/// The last count of queued jobs, and when it was read. One request at a time
/// reads it again; the others go on with the last count meanwhile instead of
/// queueing behind that query.
struct QueueDepth {
    value: AtomicI64,
    read_at: std::sync::Mutex<Option<Instant>>,
    /// Set once a count was ever read (before that, requests wait for the first).
    known: AtomicBool,
    refresh: Mutex<()>,
}

impl QueueDepth {
    fn fresh(&self) -> bool {
        self.read_at.lock().unwrap_or_else(|e| e.into_inner()).is_some_and(|at| at.elapsed() < QUEUE_DEPTH_MAX_AGE)
    }
}

impl Admission {
    pub fn new(settings: &Settings) -> Self {
        let budget_units = units(settings.max_upload_bytes_in_flight, u32::MAX >> 4);
        let submission_limit = submission_body_limit(settings);
        let largest = units(submission_limit, u32::MAX).min(budget_units);
        let share = share_of(budget_units.into(), settings.max_share_percent, largest.into());
        Self {
            batch_readers: Semaphore::new(BATCH_READERS),
            upload_budget: Arc::new(Semaphore::new(budget_units as usize)),
            budget_units,
            shares: Shares::new(u32::try_from(share).unwrap_or(budget_units)),
            wait: Duration::from_millis(settings.upload_wait_ms),
            submission_limit,
            spool: Spool::new(settings),
            queued: QueueDepth {
                value: AtomicI64::new(0),
                read_at: std::sync::Mutex::new(None),
                known: AtomicBool::new(false),
                refresh: Mutex::new(()),
            },
        }
    }

    /// Jobs waiting for a worker, up to `cap`; read from the database at most
    /// every [`QUEUE_DEPTH_MAX_AGE`], by one request while the others use the
    /// last count (submissions admitted since are counted in).
    pub async fn queued_jobs(&self, store: &Store, cap: i64) -> Result<i64, StoreError> {
        let depth = &self.queued;
        if depth.fresh() {
            return Ok(depth.value.load(Ordering::Relaxed));
        }
        let _refreshing = if depth.known.load(Ordering::Acquire) {
            match depth.refresh.try_lock() {
                Ok(guard) => guard,
                Err(_) => return Ok(depth.value.load(Ordering::Relaxed)),
            }
        } else {
            depth.refresh.lock().await
        };
        if depth.fresh() {
            // Read by the request we waited for.
            return Ok(depth.value.load(Ordering::Relaxed));
        }
        let counted = store.queued_jobs(cap).await?;
        depth.value.store(counted, Ordering::Relaxed);
        *depth.read_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        depth.known.store(true, Ordering::Release);
        Ok(counted)
    }

    /// Waits for a turn to read a spooled archive into the database.
    pub async fn batch_reading(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.batch_readers.acquire().await.expect("the semaphore is never closed")
    }

    /// Drops the cached depth (a job left the queue through this api): the
    /// next check reads it again.
    pub fn forget_queued(&self) {
        *self.queued.read_at.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Counts a job just queued into the cached depth.
    pub fn note_queued(&self) {
        self.queued.value.fetch_add(1, Ordering::Relaxed);
    }
}

/// Budget units (KiB) for `bytes`, at least 1 and at most `most`.
fn units(bytes: usize, most: u32) -> u32 {
    u32::try_from(bytes.div_ceil(UNIT).max(1)).unwrap_or(most).min(most)
}

/// Middleware for the submission routes: reserves the request's declared size
/// (`Content-Length`, else the largest body allowed) from the caller's share
/// and from the upload budget until the answer is ready; waits for room at
/// most the configured time, then answers `503 server_busy` (`429
/// rate_limited` when the caller's own share is what is full) without reading
/// the body.
pub async fn limit_uploads(State(admission): State<Arc<Admission>>, request: Request, next: Next) -> Response {
    let most = admission.submission_limit;
    let declared = request.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    reserved(&admission, declared.unwrap_or(most).min(most), request, next).await
}

async fn reserved(admission: &Admission, bytes: usize, request: Request, next: Next) -> Response {
    let units = units(bytes, u32::MAX).min(admission.budget_units);
    let who = CallerId::of(&request);
    let deadline = tokio::time::Instant::now() + admission.wait;
    // The caller's own share first: a caller over it waits for its own uploads, not for everyone's.
    let Ok(share) = tokio::time::timeout_at(deadline, admission.shares.take(who, units)).await else {
        let message = "this caller already has its share of the api's uploads in flight; try again shortly";
        let error = ApiError::over_share(message, BUSY_RETRY_AFTER_SECS);
        return refuse(request, bytes, "over the caller's share of upload bytes in flight", error).await;
    };
    let budget = tokio::time::timeout_at(deadline, admission.upload_budget.clone().acquire_many_owned(units));
    let Ok(Ok(permit)) = budget.await else {
        drop(share);
        let error = ApiError::busy("the api holds as many uploads as it may; try again shortly", BUSY_RETRY_AFTER_SECS);
        return refuse(request, bytes, "too many upload bytes in flight", error).await;
    };
    let response = next.run(request).await;
    drop((permit, share));
    response
}

/// Refuses an upload that found no room (`503 server_busy`, or `429
/// rate_limited` over the caller's own share), after reading what the client still sends.
async fn refuse(request: Request, bytes: usize, reason: &'static str, error: ApiError) -> Response {
    tracing::warn!(bytes, reason, "upload refused");
    metrics::counter!(facerec_telemetry::metrics::names::UPLOADS_REFUSED).increment(1);
    discard_refused_body(request, bytes).await;
    error.into_response()
}
