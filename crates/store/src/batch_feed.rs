//! Running batches: feeding their items into the job queue as room frees
//! (any worker may feed; items are taken with `SKIP LOCKED`), ending a batch
//! when its last item has ended, and the state of its one webhook.

use std::time::Duration;

use facerec_core::{BatchView, JobId, JobKind, JobRef};
use sqlx::postgres::PgListener;
use uuid::Uuid;

use crate::batches::end_batch;
use crate::error::QueryContext;
use crate::{Store, StoreError, WebhookAttempt};

/// Running batches with items to feed looked at per round, oldest first.
const BATCHES_PER_ROUND: i32 = 8;

/// The most jobs one feeding round makes (5,120/s at the default 200 ms
/// tick): the round is handed their ids. A larger window fills over rounds.
const MAX_FED_PER_ROUND: i64 = 1024;

/// The channel migration 17's trigger notifies when a batch is recorded.
const BATCHES_CHANNEL: &str = "facerec_batches";

/// What a round of [`Store::feed_batches`] did.
#[derive(Debug, Default)]
pub struct FeedRound {
    /// The new queued register jobs, to be enqueued, each with its batch's trace context.
    pub fed: Vec<JobRef>,
    /// Batches running after the round.
    pub running: usize,
    /// Running batches with no item left to feed: only these may have ended.
    pub drained: usize,
}

/// What a round of [`Store::finish_batches`] found.
#[derive(Debug, Default)]
pub struct BatchesEnded {
    /// Batches whose last item had ended, now completed.
    pub ended: Vec<Uuid>,
    /// Batches still running.
    pub still_running: usize,
}

/// Announced new batches, on a dedicated connection.
pub struct BatchListener {
    listener: PgListener,
}

impl BatchListener {
    /// Waits for a new batch. False when the connection was lost: batches
    /// announced meanwhile are missed (look anyway), and the next call reconnects.
    pub async fn next(&mut self) -> Result<bool, StoreError> {
        let announced = self
            .listener
            .try_recv()
            .await
            .map_err(|source| StoreError::Query { context: "waiting for new batches", source })?;
        Ok(announced.is_some())
    }
}

/// A batch webhook to send now.
#[derive(Debug, Clone)]
pub struct DueBatchWebhook {
    pub batch: BatchView,
    pub url: String,
    pub attempt: i32,
}

impl Store {
    /// Turns pending items into queued register jobs until `window` jobs of
    /// batches are queued, in one round trip (`facerec_feed_batches`, latest
    /// definition in migration 20: each job reads its image from its item,
    /// where it stays until the job ends, and carries its batch's trace
    /// context). The new jobs are to be enqueued (a message lost here is
    /// re-sent by the reconciler, as for any queued job).
    pub async fn feed_batches(&self, window: i64) -> Result<FeedRound, StoreError> {
        let ids: Vec<Uuid> = (0..window.clamp(0, MAX_FED_PER_ROUND)).map(|_| JobId::new().0).collect();
        let (fed, traceparents, running, drained): (Vec<Uuid>, Vec<Option<String>>, i32, i32) =
            sqlx::query_as("SELECT fed, traceparents, running, drained FROM facerec_feed_batches($1, $2, $3)")
                .bind(window)
                .bind(BATCHES_PER_ROUND)
                .bind(&ids)
                .fetch_one(&self.pool)
                .await
                .context("feed batches")?;
        // traceparents[i] is fed[i]'s; should they ever differ in length, a
        // job loses its trace context, never its message.
        let traceparents = traceparents.into_iter().chain(std::iter::repeat(None));
        let fed = fed
            .into_iter()
            .zip(traceparents)
            .map(|(id, traceparent)| JobRef { job_id: JobId(id), kind: JobKind::Register, traceparent })
            .collect();
        Ok(FeedRound {
            fed,
            running: usize::try_from(running).unwrap_or_default(),
            drained: usize::try_from(drained).unwrap_or_default(),
        })
    }

    /// Ends every running batch with nothing left to run; returns their ids.
    pub async fn finish_batches(&self) -> Result<BatchesEnded, StoreError> {
        let running: Vec<(Uuid, bool)> = sqlx::query_as(
            "SELECT b.id, NOT EXISTS (SELECT 1 FROM batch_items i WHERE i.batch_id = b.id AND i.state = 'pending') \
                 AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.batch_id = b.id \
                     AND j.status IN ('queued', 'processing')) \
             FROM batches b WHERE b.status = 'running'",
        )
        .fetch_all(&self.pool)
        .await
        .context("find finished batches")?;
        let mut round = BatchesEnded::default();
        for (id, done) in running {
            if !done {
                round.still_running += 1;
                continue;
            }
            let mut tx = self.pool.begin().await.context("begin finish batch")?;
            if end_batch(&mut tx, id, facerec_core::BatchStatus::Completed).await? {
                round.ended.push(id);
            }
            tx.commit().await.context("commit finish batch")?;
        }
        Ok(round)
    }

    /// Announcements of new batches (migration 17's trigger), on a connection of its own.
    pub async fn listen_for_batches(&self) -> Result<BatchListener, StoreError> {
        Ok(BatchListener { listener: self.listen_on(BATCHES_CHANNEL).await? })
    }

    /// Deletes batches (with their items) that ended more than `age` ago, as
    /// job retention does for their jobs. A canceled batch whose jobs still
    /// run (or wait for a retry) stays until they end: they read their images
    /// from its items.
    pub async fn delete_finished_batches(&self, age: Duration) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM batches b WHERE finished_at < now() - make_interval(secs => $1) \
             AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.batch_id = b.id AND j.status IN ('queued', 'processing'))",
        )
        .bind(age.as_secs_f64())
        .execute(&self.pool)
        .await
        .context("delete old batches")?;
        Ok(done.rows_affected())
    }

    /// Up to `limit` batch webhooks that are due, each held for `hold` (as job webhooks are).
    pub async fn due_batch_webhooks(&self, limit: i64, hold: Duration) -> Result<Vec<DueBatchWebhook>, StoreError> {
        let taken: Vec<(Uuid, String, i32)> = sqlx::query_as(
            "UPDATE batches SET webhook_next_at = now() + make_interval(secs => $2), \
                 webhook_attempts = webhook_attempts + 1 WHERE id IN ( \
                 SELECT id FROM batches WHERE webhook_status = 'pending' AND webhook_next_at <= now() \
                 ORDER BY webhook_next_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
             RETURNING id, callback_url, webhook_attempts",
        )
        .bind(limit)
        .bind(hold.as_secs_f64())
        .fetch_all(&self.pool)
        .await
        .context("take due batch webhooks")?;
        let mut due = Vec::with_capacity(taken.len());
        for (id, url, attempt) in taken {
            if let Some(batch) = self.get_batch(id).await? {
                due.push(DueBatchWebhook { batch, url, attempt });
            }
        }
        Ok(due)
    }

    /// Records a batch webhook attempt: delivered, failed for good, or due again later.
    pub async fn record_batch_webhook_attempt(
        &self,
        id: Uuid,
        attempt: i32,
        outcome: &WebhookAttempt,
    ) -> Result<(), StoreError> {
        let status = outcome.state().as_str();
        sqlx::query(
            "UPDATE batches SET webhook_status = $2, webhook_last_status = $4, webhook_last_error = $5, \
                 webhook_next_at = CASE WHEN $2 = 'pending' THEN now() + make_interval(secs => $6) END \
             WHERE id = $1 AND webhook_attempts = $3 AND webhook_status = 'pending'",
        )
        .bind(id)
        .bind(status)
        .bind(attempt)
        .bind(outcome.http_status)
        .bind(&outcome.error)
        .bind(outcome.retry_after.unwrap_or_default().as_secs_f64())
        .execute(&self.pool)
        .await
        .context("record batch webhook attempt")?;
        Ok(())
    }
}
