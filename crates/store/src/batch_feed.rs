//! Running batches: feeding their items into the job queue as room frees
//! (any worker may feed; items are taken with `SKIP LOCKED`), ending a batch
//! when its last item has ended, and the state of its one webhook.

use std::time::Duration;

use facerec_core::{BatchView, CollectionName, ConsentRef, JobId, JobKind, JobParams, RegisterParams, SubjectName};
use sqlx::postgres::PgListener;
use uuid::Uuid;

use crate::batches::end_batch;
use crate::error::QueryContext;
use crate::jobs::corrupt;
use crate::{Store, StoreError, WebhookAttempt};

/// The advisory lock that makes feeding one worker's job at a time ("feed" in ASCII).
const FEEDER_LOCK: i64 = 0x6665_6564;

/// Running batches with items to feed looked at per round, oldest first.
const BATCHES_PER_ROUND: i64 = 8;

/// The channel migration 17's trigger notifies when a batch is recorded.
const BATCHES_CHANNEL: &str = "facerec_batches";

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
    /// batches are queued. Returns the new jobs, to be enqueued (a message lost
    /// here is re-sent by the reconciler, as for any queued job).
    pub async fn feed_batches(&self, window: i64) -> Result<Vec<(JobId, JobKind)>, StoreError> {
        let mut tx = self.pool.begin().await.context("begin feed batches")?;
        // One feeder at a time (all workers run this loop): the room counted
        // below is then not filled twice.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(FEEDER_LOCK)
            .execute(&mut *tx)
            .await
            .context("take the feeder lock")?;
        let queued: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT 1 FROM jobs \
                 WHERE batch_id IS NOT NULL AND status = 'queued' LIMIT $1) q",
        )
        .bind(window.max(0))
        .fetch_one(&mut *tx)
        .await
        .context("count queued batch jobs")?;
        let mut room = window - queued;
        if room <= 0 {
            return Ok(Vec::new());
        }
        let batches: Vec<(Uuid, String, Option<String>)> = sqlx::query_as(
            "SELECT b.id, b.collection, b.consent_ref FROM batches b WHERE b.status = 'running' \
             AND EXISTS (SELECT 1 FROM batch_items i WHERE i.batch_id = b.id AND i.state = 'pending') \
             ORDER BY b.created_at LIMIT $1",
        )
        .bind(BATCHES_PER_ROUND)
        .fetch_all(&mut *tx)
        .await
        .context("read running batches")?;
        let mut fed = Vec::new();
        for (batch_id, collection, consent) in batches {
            if room <= 0 {
                break;
            }
            let items: Vec<(i32, String)> = sqlx::query_as(
                "SELECT seq, subject FROM batch_items WHERE batch_id = $1 AND state = 'pending' \
                 ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED",
            )
            .bind(batch_id)
            .bind(room)
            .fetch_all(&mut *tx)
            .await
            .context("take pending batch items")?;
            if items.is_empty() {
                continue;
            }
            room -= items.len() as i64;
            let collection = CollectionName::parse(&collection).map_err(corrupt("batch collection"))?;
            let consent = consent.as_deref().map(ConsentRef::parse).transpose().map_err(corrupt("batch consent"))?;
            let (mut ids, mut seqs, mut params) = (Vec::new(), Vec::new(), Vec::new());
            for (seq, subject) in items {
                let subject = SubjectName::parse(&subject).map_err(corrupt("batch item subject"))?;
                let job = JobParams::Register(RegisterParams {
                    subject,
                    collection: collection.clone(),
                    consent: consent.clone(),
                });
                let id = JobId::new();
                ids.push(id.0);
                seqs.push(seq);
                params.push(serde_json::to_string(&job).map_err(corrupt("job params"))?);
                fed.push((id, JobKind::Register));
            }
            insert_item_jobs(&mut tx, batch_id, &ids, &seqs, &params).await?;
        }
        tx.commit().await.context("commit feed batches")?;
        Ok(fed)
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
    /// job retention does for their jobs.
    pub async fn delete_finished_batches(&self, age: Duration) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM batches WHERE finished_at < now() - make_interval(secs => $1)")
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
        let status = outcome.state();
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

/// The items' jobs and inputs (moved within the database), and the items marked submitted.
async fn insert_item_jobs(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    batch_id: Uuid,
    ids: &[Uuid],
    seqs: &[i32],
    params: &[String],
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO jobs (id, kind, status, params, batch_id, api_key_id) \
         SELECT id, 'register', 'queued', params::jsonb, $3, (SELECT api_key_id FROM batches WHERE id = $3) \
         FROM unnest($1::uuid[], $2::text[]) AS t(id, params)",
    )
    .bind(ids)
    .bind(params)
    .bind(batch_id)
    .execute(&mut **tx)
    .await
    .context("insert batch jobs")?;
    sqlx::query(
        "INSERT INTO job_inputs (job_id, content_type, bytes) \
         SELECT t.id, x.content_type, x.bytes FROM unnest($1::uuid[], $2::int[]) AS t(id, seq) \
         JOIN batch_item_inputs x ON x.batch_id = $3 AND x.seq = t.seq",
    )
    .bind(ids)
    .bind(seqs)
    .bind(batch_id)
    .execute(&mut **tx)
    .await
    .context("move batch inputs")?;
    sqlx::query(
        "UPDATE batch_items i SET state = 'submitted', job_id = t.id \
         FROM unnest($1::uuid[], $2::int[]) AS t(id, seq) WHERE i.batch_id = $3 AND i.seq = t.seq",
    )
    .bind(ids)
    .bind(seqs)
    .bind(batch_id)
    .execute(&mut **tx)
    .await
    .context("mark batch items submitted")?;
    sqlx::query("DELETE FROM batch_item_inputs WHERE batch_id = $1 AND seq = ANY($2)")
        .bind(batch_id)
        .bind(seqs)
        .execute(&mut **tx)
        .await
        .context("drop fed batch inputs")?;
    Ok(())
}
