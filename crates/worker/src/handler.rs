//! One job message, start to end: claim the job in PostgreSQL (keeping its
//! lease while it runs), run its kind ([`crate::jobs`], [`crate::verify`]), and
//! write the outcome, retrying transient failures with a backoff.

use std::time::{Duration, Instant};

use facerec_core::{JobErrorCode, JobParams};
use facerec_queue::{JobMessage, MESSAGE_VERSION};
use facerec_store::{ClaimOutcome, Store};
use facerec_telemetry::Stage;
use facerec_telemetry::metrics::names;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::context::JobContext;
use crate::failure::{BoxError, Failure};
use crate::jobs::{embed, recognize, register};
use crate::verify::verify;

/// The queue's handler: one call per job message. An `Err` has the message
/// delivered again later.
///
/// The job's span joins the trace of the request that created the job. Every
/// message is built from the job's row ([`facerec_core::JobRef`]), so its
/// `traceparent` is the row's: the claim could add none that the message lacks.
pub(crate) async fn handle_job(message: JobMessage, ctx: JobContext) -> Result<(), BoxError> {
    let span = info_span!("job", job_id = %message.job_id(), kind = %message.kind(), trace_id = tracing::field::Empty);
    if let Some(traceparent) = message.traceparent() {
        facerec_telemetry::continue_trace(&span, traceparent);
    }
    span.record("trace_id", facerec_telemetry::trace_id(&span));
    process(message, &ctx).instrument(span).await
}

async fn process(message: JobMessage, ctx: &JobContext) -> Result<(), BoxError> {
    if message.version() != MESSAGE_VERSION {
        // Not acknowledged: redelivered until a worker that understands it takes it.
        error!(version = message.version(), "unsupported job message version");
        return Err(format!("unsupported job message version {}", message.version()).into());
    }
    let lease = Duration::from_secs(ctx.settings.lease_secs);
    let mut claim = match ctx.store.claim_job(message.job_id(), lease).await? {
        ClaimOutcome::Claimed(claim) => claim,
        ClaimOutcome::Done => {
            debug!("job already finished or gone");
            return Ok(());
        }
        // Its holder may have died: have the message redelivered after a delay
        // (the queue waits longer each time), by which time the lease may have run out.
        ClaimOutcome::Held => return Err("job is held by another worker's lease".into()),
        // Early: a duplicate message, or worker and database clocks apart.
        // Redelivered likewise; the message scheduled for its retry time is on its way too.
        ClaimOutcome::NotYet => return Err("job waits for its retry time".into()),
    };
    let started = Instant::now();
    let kind = claim.job.kind.as_str();
    record_claim(&claim);
    let input = std::mem::take(&mut claim.input);
    let second_input = claim.second_input.take();
    // Keep the lease while inference runs, however long it takes; a worker that
    // dies stops renewing, and the job is taken over once the lease runs out.
    let renewal = AbortOnDrop(tokio::spawn(keep_lease(ctx.store.clone(), (*claim).clone(), lease)));
    let outcome = match claim.job.params.clone() {
        JobParams::Register(p) => register(ctx, &claim, p, input).await,
        JobParams::Recognize(p) => recognize(ctx, &claim, p, input).await,
        JobParams::Embed(p) => embed(ctx, &claim, p, input).await,
        JobParams::Verify(p) => verify(ctx, &claim, p, input, second_input).await,
    };
    drop(renewal);
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let outcome = match outcome {
        Ok(true) => {
            info!(elapsed_ms, attempt = claim.job.attempts, "job succeeded");
            "succeeded"
        }
        Ok(false) => {
            warn!(elapsed_ms, "lost the job's lease before finishing; result dropped");
            "lease_lost"
        }
        Err(Failure::Permanent(code, message)) => {
            match Stage::Store.time(ctx.store.fail_job(&claim, code, &message)).await {
                Ok(true) => {
                    info!(elapsed_ms, %code, %message, "job failed");
                    "failed"
                }
                Ok(false) => "lease_lost",
                Err(e) => return Err(ended(kind, "error", started, e)),
            }
        }
        Err(Failure::Transient(e)) if claim.job.attempts >= ctx.settings.max_attempts => {
            error!(elapsed_ms, error = %e, attempts = claim.job.attempts, "job failed on every attempt; giving up");
            // The last error's own text (no source chain): what failed, not our internals.
            let message = format!("processing failed after {} attempts; last error: {e}", claim.job.attempts);
            match Stage::Store.time(ctx.store.fail_job(&claim, JobErrorCode::Internal, &message)).await {
                Ok(true) => "failed",
                Ok(false) => "lease_lost",
                Err(e) => return Err(ended(kind, "error", started, e)),
            }
        }
        Err(Failure::Transient(e)) => {
            let delay = ctx.settings.retry_backoff().delay(claim.job.attempts);
            warn!(elapsed_ms, error = %e, attempt = claim.job.attempts, retry_in_ms = delay.as_millis() as u64, "job failed; will retry");
            // Released first, so the job is never scheduled while still ours. If
            // this fails (database down), the queue redelivers this message and the
            // claim waits for the lease; nothing is lost either way. Clients see
            // the error's own text, not its sources (our internals; logged above).
            match ctx.store.release_job(&claim, delay, &e.to_string()).await {
                Ok(true) => {
                    // Redis compares due times with the workers' clocks, so the
                    // message is timed by ours; the claim checks the database's.
                    schedule_retry(ctx, &claim, std::time::SystemTime::now() + delay).await;
                    "retried"
                }
                Ok(false) => "lease_lost",
                Err(e) => return Err(ended(kind, "error", started, e)),
            }
        }
    };
    record_end(kind, outcome, started);
    Ok(())
}

/// Counts and times a job attempt by its outcome.
fn record_end(kind: &'static str, outcome: &'static str, started: Instant) {
    metrics::counter!(names::JOBS, "kind" => kind, "outcome" => outcome).increment(1);
    metrics::histogram!(names::JOB_DURATION, "kind" => kind, "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
}

/// An attempt whose outcome could not be written (the database failed): counted
/// as `error`, and handed back to the queue for redelivery.
fn ended(kind: &'static str, outcome: &'static str, started: Instant, e: facerec_store::StoreError) -> BoxError {
    record_end(kind, outcome, started);
    Box::new(e)
}

/// Counts a takeover, or how long the job waited for a worker since it
/// became due (submitted, or its retry time), by the database's clock.
fn record_claim(claim: &facerec_store::Claim) {
    if claim.taken_over {
        metrics::counter!(names::LEASE_TAKEOVERS).increment(1);
        return;
    }
    let due = if claim.job.attempts > 1 { claim.job.retry_at } else { Some(claim.job.created_at) };
    if let Some(due) = due {
        let waited = (claim.claimed_at - due).to_std().unwrap_or_default();
        metrics::histogram!(names::QUEUE_WAIT, "kind" => claim.job.kind.as_str()).record(waited.as_secs_f64());
    }
}

/// Sends the job's next message, due at its retry time, with the job's own
/// trace (from its row). Should Redis refuse it, the reconciler sends one once
/// the job has waited past that time.
async fn schedule_retry(ctx: &JobContext, claim: &facerec_store::Claim, at: std::time::SystemTime) {
    if let Err(e) = ctx.queue.enqueue_at(&claim.job_ref(), at).await {
        warn!(job_id = %claim.job.id, error = %e, "could not schedule the retry; the reconciler will re-send it");
    }
}

/// Stops the lease renewal however the job's future ends, also when it is
/// dropped (a shutdown deadline): a lease must never outlive its job.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Renews the job's lease every third of its length until aborted or lost.
async fn keep_lease(store: Store, claim: facerec_store::Claim, lease: Duration) {
    let mut tick = tokio::time::interval(lease / 3);
    tick.tick().await; // the claim itself just set the lease
    loop {
        tick.tick().await;
        match store.renew_lease(&claim, lease).await {
            Ok(true) => debug!("lease renewed"),
            Ok(false) => {
                warn!("lost the job's lease; its result will be dropped");
                return;
            }
            Err(e) => warn!(error = %e, "could not renew the lease; retrying"),
        }
    }
}
