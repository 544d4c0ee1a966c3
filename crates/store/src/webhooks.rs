//! Webhook delivery state: which deliveries are due, and what each attempt did.

use std::time::Duration;

use facerec_core::{JobRecord, WebhookStatus};
use uuid::Uuid;

use crate::error::QueryContext;
use crate::jobs::{JOB_COLUMNS, JobRow};
use crate::{Store, StoreError};

/// A delivery to make now: the job (its body is what clients see of it,
/// `facerec_core::JobView`), where to send it, and which attempt this is.
#[derive(Debug, Clone)]
pub struct DueWebhook {
    pub job: JobRecord,
    pub url: String,
    pub attempt: i32,
}

/// What one attempt did.
#[derive(Debug, Clone)]
pub struct WebhookAttempt {
    pub http_status: Option<i32>,
    pub error: Option<String>,
    pub duration: Duration,
    /// `None`: delivered or given up; `Some(delay)`: try again after it.
    pub retry_after: Option<Duration>,
    pub delivered: bool,
}

impl WebhookAttempt {
    /// The delivery's state after this attempt: `delivered`, `pending` (due
    /// again after `retry_after`) or `failed` (given up).
    pub(crate) fn state(&self) -> WebhookStatus {
        match (self.delivered, self.retry_after) {
            (true, _) => WebhookStatus::Delivered,
            (false, Some(_)) => WebhookStatus::Pending,
            (false, None) => WebhookStatus::Failed,
        }
    }
}

impl Store {
    /// Up to `limit` pending deliveries that are due, each held for `hold`
    /// (so another worker does not send it meanwhile). The attempt is counted
    /// when taken, so a delivery resent after a worker died mid-send carries a
    /// higher attempt number: receivers can tell a redelivery.
    pub async fn due_webhooks(&self, limit: i64, hold: Duration) -> Result<Vec<DueWebhook>, StoreError> {
        let sql = format!(
            "UPDATE jobs SET webhook_next_at = now() + make_interval(secs => $2), \
                 webhook_attempts = webhook_attempts + 1 WHERE id IN ( \
                 SELECT id FROM jobs WHERE webhook_status = 'pending' AND webhook_next_at <= now() \
                 ORDER BY webhook_next_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
             RETURNING {JOB_COLUMNS}"
        );
        let rows: Vec<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .bind(hold.as_secs_f64())
            .fetch_all(&self.pool)
            .await
            .context("take due webhooks")?;
        let mut due = Vec::with_capacity(rows.len());
        for row in rows {
            let job = row.into_record()?;
            let (Some(url), Some(attempt)) = (job.callback_url.clone(), job.webhook.as_ref().map(|w| w.attempts))
            else {
                continue;
            };
            due.push(DueWebhook { attempt, url, job });
        }
        Ok(due)
    }

    /// Records an attempt and moves the delivery on: delivered, failed for good,
    /// or due again later; unless a later attempt was taken meanwhile (this one
    /// outlived its hold), whose outcome then decides.
    pub async fn record_webhook_attempt(
        &self,
        job_id: Uuid,
        attempt: i32,
        outcome: &WebhookAttempt,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.context("begin webhook attempt")?;
        sqlx::query(
            "INSERT INTO webhook_attempts (job_id, attempt, http_status, error, duration_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(job_id)
        .bind(attempt)
        .bind(outcome.http_status)
        .bind(&outcome.error)
        .bind(outcome.duration.as_millis().min(i32::MAX as u128) as i32)
        .execute(&mut *tx)
        .await
        .context("record webhook attempt")?;
        let status = outcome.state().as_str();
        sqlx::query(
            "UPDATE jobs SET webhook_status = $2, webhook_attempts = $3, webhook_last_status = $4, \
                 webhook_last_error = $5, \
                 webhook_next_at = CASE WHEN $2 = 'pending' THEN now() + make_interval(secs => $6) END \
             WHERE id = $1 AND webhook_attempts = $3 AND webhook_status = 'pending'",
        )
        .bind(job_id)
        .bind(status)
        .bind(attempt)
        .bind(outcome.http_status)
        .bind(&outcome.error)
        .bind(outcome.retry_after.unwrap_or_default().as_secs_f64())
        .execute(&mut *tx)
        .await
        .context("update webhook state")?;
        tx.commit().await.context("commit webhook attempt")
    }
}
