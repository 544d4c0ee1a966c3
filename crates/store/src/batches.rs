//! Archive batches: reading their counts and items, listing them, and
//! canceling one (recording one is `batch_record`).

use chrono::{DateTime, Utc};
use facerec_core::{BatchCounts, BatchItemError, BatchItemStatus, BatchItemView, BatchStatus, BatchView, WebhookView};
use sqlx::{FromRow, Postgres, QueryBuilder, Transaction};
use uuid::Uuid;

use crate::error::{QueryContext, corrupt};
use crate::{Store, StoreError, Visibility};

/// What a cancel request found.
#[derive(Debug)]
pub enum BatchCancel {
    Canceled(BatchView),
    NotRunning(BatchView),
    NotFound,
}

#[derive(FromRow)]
struct BatchRow {
    id: Uuid,
    collection: String,
    status: String,
    total: i32,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    queued: i64,
    processing: i64,
    succeeded: i64,
    failed: i64,
    canceled: i64,
    skipped: i64,
    expired: i64,
    webhook_status: Option<String>,
    webhook_attempts: i32,
    webhook_last_status: Option<i32>,
    webhook_last_error: Option<String>,
}

/// Which batches to list; every field narrows the set. Newest first.
#[derive(Debug, Clone, Default)]
pub struct BatchFilter {
    pub status: Option<BatchStatus>,
    /// Only batches older than this one (the cursor of the previous page).
    pub before: Option<Uuid>,
    /// Only batches on collections the caller reaches.
    pub visible: Visibility,
}

/// Batch rows with their item counts (an item's state, else its job's); the
/// caller adds which batches (`WHERE`) and `GROUP BY b.id`.
const BATCH_VIEW_SELECT: &str = "SELECT b.id, b.collection, b.status, b.total, b.created_at, b.finished_at, \
         b.webhook_status, b.webhook_attempts, b.webhook_last_status, b.webhook_last_error, \
         count(*) FILTER (WHERE i.state = 'pending' OR j.status = 'queued') AS queued, \
         count(*) FILTER (WHERE j.status = 'processing') AS processing, \
         count(*) FILTER (WHERE j.status = 'succeeded') AS succeeded, \
         count(*) FILTER (WHERE i.state = 'failed' OR j.status = 'failed') AS failed, \
         count(*) FILTER (WHERE i.state = 'canceled' OR j.status = 'canceled') AS canceled, \
         count(*) FILTER (WHERE i.state = 'skipped') AS skipped, \
         count(*) FILTER (WHERE i.state = 'submitted' AND j.id IS NULL) AS expired \
     FROM batches b LEFT JOIN batch_items i ON i.batch_id = b.id LEFT JOIN jobs j ON j.id = i.job_id";

impl TryFrom<BatchRow> for BatchView {
    type Error = StoreError;

    fn try_from(r: BatchRow) -> Result<Self, StoreError> {
        let status = BatchStatus::parse(&r.status).ok_or_else(|| StoreError::Corrupt {
            what: "batch status",
            source: format!("unknown status {:?}", r.status).into(),
        })?;
        let webhook = match r.webhook_status {
            Some(status) => Some(WebhookView {
                status: status.parse().map_err(corrupt("batch webhook status"))?,
                attempts: r.webhook_attempts,
                last_status: r.webhook_last_status,
                last_error: r.webhook_last_error,
            }),
            None => None,
        };
        Ok(Self {
            batch_id: r.id,
            status,
            collection: r.collection,
            total: i64::from(r.total),
            counts: BatchCounts {
                queued: r.queued,
                processing: r.processing,
                succeeded: r.succeeded,
                failed: r.failed,
                canceled: r.canceled,
                skipped: r.skipped,
                expired: r.expired,
            },
            created_at: r.created_at,
            finished_at: r.finished_at,
            webhook,
        })
    }
}

#[derive(FromRow)]
struct ItemRow {
    seq: i32,
    path: String,
    subject: String,
    job_id: Option<Uuid>,
    status: String,
    error_code: Option<String>,
    error_message: Option<String>,
}

impl Store {
    pub async fn get_batch(&self, id: Uuid) -> Result<Option<BatchView>, StoreError> {
        let sql = format!("{BATCH_VIEW_SELECT} WHERE b.id = $1 GROUP BY b.id");
        let row: Option<BatchRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await.context("read batch")?;
        row.map(BatchView::try_from).transpose()
    }

    /// At most `limit` batches matching `filter`, newest first. The page is
    /// chosen first, so only its batches' items are counted.
    pub async fn list_batches(&self, filter: &BatchFilter, limit: u32) -> Result<Vec<BatchView>, StoreError> {
        let mut q: QueryBuilder<Postgres> =
            QueryBuilder::new(format!("{BATCH_VIEW_SELECT} WHERE b.id IN (SELECT id FROM batches WHERE true"));
        if let Some(status) = filter.status {
            q.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(before) = filter.before {
            q.push(" AND id < ").push_bind(before);
        }
        filter.visible.push_collection(&mut q, "collection");
        q.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(limit));
        q.push(") GROUP BY b.id ORDER BY b.id DESC");
        let rows: Vec<BatchRow> = q.build_query_as().fetch_all(&self.pool).await.context("list batches")?;
        rows.into_iter().map(BatchView::try_from).collect()
    }

    /// The batch's collection; `None` when there is no such batch.
    pub async fn batch_collection(&self, id: Uuid) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT collection FROM batches WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .context("find batch")
    }

    /// At most `limit` items after position `after`, in archive order, with
    /// their sequence numbers (the cursor).
    pub async fn list_batch_items(
        &self,
        id: Uuid,
        status: Option<BatchItemStatus>,
        after: Option<i32>,
        limit: u32,
    ) -> Result<Vec<(i32, BatchItemView)>, StoreError> {
        let rows: Vec<ItemRow> = sqlx::query_as(
            "SELECT * FROM ( \
                 SELECT i.seq, i.path, i.subject, i.job_id, \
                     CASE i.state WHEN 'pending' THEN 'queued' WHEN 'submitted' THEN coalesce(j.status, 'expired') \
                         ELSE i.state END AS status, \
                     coalesce(i.error_code, j.error_code) AS error_code, \
                     coalesce(i.error_message, j.error_message) AS error_message \
                 FROM batch_items i LEFT JOIN jobs j ON j.id = i.job_id \
                 WHERE i.batch_id = $1 AND i.seq > $2 ORDER BY i.seq) AS items \
             WHERE $3::text IS NULL OR status = $3 ORDER BY seq LIMIT $4",
        )
        .bind(id)
        .bind(after.unwrap_or(-1))
        .bind(status.map(BatchItemStatus::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .context("list batch items")?;
        rows.into_iter()
            .map(|r| {
                let status = BatchItemStatus::parse(&r.status).ok_or_else(|| StoreError::Corrupt {
                    what: "batch item status",
                    source: format!("unknown status {:?}", r.status).into(),
                })?;
                let error =
                    r.error_code.map(|code| BatchItemError { code, message: r.error_message.unwrap_or_default() });
                Ok((r.seq, BatchItemView { path: r.path, subject: r.subject, job_id: r.job_id, status, error }))
            })
            .collect()
    }

    /// Cancels a running batch: items not yet fed and queued jobs are
    /// canceled; jobs already processing finish. The batch ends now (its
    /// webhook is due).
    pub async fn cancel_batch(&self, id: Uuid) -> Result<BatchCancel, StoreError> {
        let mut tx = self.pool.begin().await.context("begin cancel batch")?;
        let status: Option<String> = sqlx::query_scalar("SELECT status FROM batches WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .context("lock batch")?;
        let Some(status) = status else { return Ok(BatchCancel::NotFound) };
        let Some(status) = BatchStatus::parse(&status) else {
            let source: Box<dyn std::error::Error + Send + Sync> = format!("unknown status {status:?}").into();
            return Err(StoreError::Corrupt { what: "batch status", source });
        };
        let running = status == BatchStatus::Running;
        if running {
            sqlx::query(
                "WITH canceled AS (UPDATE batch_items SET state = 'canceled' \
                     WHERE batch_id = $1 AND state = 'pending' RETURNING seq) \
                 DELETE FROM batch_item_inputs WHERE batch_id = $1 AND seq IN (SELECT seq FROM canceled)",
            )
            .bind(id)
            .execute(&mut *tx)
            .await
            .context("cancel batch items")?;
            sqlx::query(
                "WITH canceled AS (UPDATE jobs SET status = 'canceled', finished_at = now(), retry_at = NULL \
                     WHERE batch_id = $1 AND status = 'queued' RETURNING id) \
                 DELETE FROM job_inputs WHERE job_id IN (SELECT id FROM canceled)",
            )
            .bind(id)
            .execute(&mut *tx)
            .await
            .context("cancel batch jobs")?;
            end_batch(&mut tx, id, BatchStatus::Canceled).await?;
        }
        tx.commit().await.context("commit cancel batch")?;
        let view = self.get_batch(id).await?.ok_or(StoreError::Conflict("batch"))?;
        Ok(if running { BatchCancel::Canceled(view) } else { BatchCancel::NotRunning(view) })
    }
}

/// Marks a batch ended and its webhook (if it has a callback) due.
pub(crate) async fn end_batch(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    status: BatchStatus,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE batches SET status = $2, finished_at = now(), \
             webhook_status = CASE WHEN callback_url IS NULL THEN NULL ELSE 'pending' END, \
             webhook_next_at = CASE WHEN callback_url IS NULL THEN NULL ELSE now() END \
         WHERE id = $1 AND status = 'running'",
    )
    .bind(id)
    .bind(status.as_str())
    .execute(&mut **tx)
    .await
    .context("end batch")?;
    Ok(done.rows_affected() == 1)
}
