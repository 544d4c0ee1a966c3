//! Archive batches: recording one (its items written in chunks as the archive
//! is read, all in one transaction, so a refused archive leaves nothing), reading its
//! counts and items, and canceling it.

use chrono::{DateTime, Utc};
use facerec_core::{
    BatchCounts, BatchItemError, BatchItemStatus, BatchItemView, BatchStatus, BatchView, CollectionName, ConsentRef,
};
use sqlx::{FromRow, Postgres, Transaction};
use uuid::Uuid;

use crate::collections::ensure_collection;
use crate::error::QueryContext;
use crate::{Store, StoreError};

/// A batch about to be recorded.
#[derive(Debug, Clone)]
pub struct NewBatch {
    pub id: Uuid,
    pub collection: CollectionName,
    pub consent: Option<ConsentRef>,
    pub callback_url: Option<String>,
    pub request_id: Option<String>,
    /// Create the collection, requiring consent or not, when it does not exist.
    pub create_collection: Option<bool>,
    /// The API key that sent it; its jobs carry the same.
    pub api_key_id: Option<Uuid>,
}

/// One archive entry as recorded.
#[derive(Debug, Clone)]
pub struct NewBatchItem {
    pub path: String,
    pub subject: String,
    pub content: ItemContent,
}

#[derive(Debug, Clone)]
pub enum ItemContent {
    /// An image to register: its type and bytes.
    Image { content_type: &'static str, bytes: Vec<u8> },
    /// Reported, never run.
    Skipped { code: &'static str, message: String },
    /// Reported as failed, never run (e.g. a corrupt image header).
    Failed { code: &'static str, message: String },
}

/// Items are written in chunks of at most this many...
const CHUNK_ITEMS: usize = 256;
/// ...or this many bytes of images, whichever comes first: two statements per
/// chunk instead of two per item (a 2,000-image archive took 4,000 round
/// trips), with at most this much of the archive held at once.
const CHUNK_BYTES: usize = 4 << 20;

/// A batch being written; dropped without [`BatchWriter::commit`], nothing is kept.
pub struct BatchWriter {
    tx: Transaction<'static, Postgres>,
    id: Uuid,
    items: i32,
    /// Items not written yet (their seqs follow the written ones), and their images' bytes.
    chunk: Vec<NewBatchItem>,
    chunk_bytes: usize,
    /// To create at commit, requiring consent or not.
    collection: Option<(CollectionName, bool)>,
}

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
}

/// The batch row with its item counts (an item's state, else its job's).
const BATCH_VIEW_SQL: &str = "SELECT b.id, b.collection, b.status, b.total, b.created_at, b.finished_at, \
         count(*) FILTER (WHERE i.state = 'pending' OR j.status = 'queued') AS queued, \
         count(*) FILTER (WHERE j.status = 'processing') AS processing, \
         count(*) FILTER (WHERE j.status = 'succeeded') AS succeeded, \
         count(*) FILTER (WHERE i.state = 'failed' OR j.status = 'failed') AS failed, \
         count(*) FILTER (WHERE i.state = 'canceled' OR j.status = 'canceled') AS canceled, \
         count(*) FILTER (WHERE i.state = 'skipped') AS skipped, \
         count(*) FILTER (WHERE i.state = 'submitted' AND j.id IS NULL) AS expired \
     FROM batches b LEFT JOIN batch_items i ON i.batch_id = b.id LEFT JOIN jobs j ON j.id = i.job_id \
     WHERE b.id = $1 GROUP BY b.id";

impl TryFrom<BatchRow> for BatchView {
    type Error = StoreError;

    fn try_from(r: BatchRow) -> Result<Self, StoreError> {
        let status = BatchStatus::parse(&r.status).ok_or_else(|| StoreError::Corrupt {
            what: "batch status",
            source: format!("unknown status {:?}", r.status).into(),
        })?;
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
    /// Starts recording a batch (and its collection, if asked to create it).
    pub async fn begin_batch(&self, batch: &NewBatch) -> Result<BatchWriter, StoreError> {
        let tx = self.pool.begin().await.context("begin batch")?;
        let mut writer =
            BatchWriter { tx, id: batch.id, items: 0, chunk: Vec::new(), chunk_bytes: 0, collection: None };
        // The collection is created at commit: its row is then locked only for
        // a moment, not while the whole archive is read.
        writer.collection = batch.create_collection.map(|consent| (batch.collection.clone(), consent));
        sqlx::query(
            "INSERT INTO batches (id, collection, status, total, consent_ref, callback_url, request_id, api_key_id) \
             VALUES ($1, $2, 'running', 0, $3, $4, $5, $6)",
        )
        .bind(batch.id)
        .bind(batch.collection.as_str())
        .bind(batch.consent.as_ref().map(ConsentRef::as_str))
        .bind(&batch.callback_url)
        .bind(&batch.request_id)
        .bind(batch.api_key_id)
        .execute(&mut *writer.tx)
        .await
        .context("insert batch")?;
        Ok(writer)
    }

    pub async fn get_batch(&self, id: Uuid) -> Result<Option<BatchView>, StoreError> {
        let row: Option<BatchRow> = sqlx::query_as(sqlx::AssertSqlSafe(BATCH_VIEW_SQL))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .context("read batch")?;
        row.map(BatchView::try_from).transpose()
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
        if status == "running" {
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
        Ok(if status == "running" { BatchCancel::Canceled(view) } else { BatchCancel::NotRunning(view) })
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

impl BatchWriter {
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Items recorded so far.
    pub fn len(&self) -> i32 {
        self.items
    }

    pub fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// Records the next item (written with its chunk, or at commit).
    pub async fn add(&mut self, item: NewBatchItem) -> Result<(), StoreError> {
        if let ItemContent::Image { bytes, .. } = &item.content {
            self.chunk_bytes += bytes.len();
        }
        self.chunk.push(item);
        self.items += 1;
        if self.chunk.len() >= CHUNK_ITEMS || self.chunk_bytes >= CHUNK_BYTES {
            self.write_chunk().await?;
        }
        Ok(())
    }

    /// Writes the items held so far: their rows, then their images.
    async fn write_chunk(&mut self) -> Result<(), StoreError> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let first = self.items - self.chunk.len() as i32;
        let count = self.chunk.len();
        let (mut seqs, mut paths, mut subjects, mut states, mut codes, mut messages) = (
            Vec::with_capacity(count),
            Vec::with_capacity(count),
            Vec::with_capacity(count),
            Vec::with_capacity(count),
            Vec::with_capacity(count),
            Vec::with_capacity(count),
        );
        let (mut image_seqs, mut types, mut images) = (Vec::new(), Vec::new(), Vec::new());
        for (seq, item) in (first..).zip(self.chunk.drain(..)) {
            let (state, code, message) = match item.content {
                ItemContent::Image { content_type, bytes } => {
                    image_seqs.push(seq);
                    types.push(content_type);
                    images.push(bytes);
                    ("pending", None, None)
                }
                ItemContent::Skipped { code, message } => ("skipped", Some(code), Some(message)),
                ItemContent::Failed { code, message } => ("failed", Some(code), Some(message)),
            };
            seqs.push(seq);
            paths.push(item.path);
            subjects.push(item.subject);
            states.push(state);
            codes.push(code);
            messages.push(message);
        }
        self.chunk_bytes = 0;
        sqlx::query(
            "INSERT INTO batch_items (batch_id, seq, path, subject, state, error_code, error_message) \
             SELECT $1, * FROM unnest($2::int4[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])",
        )
        .bind(self.id)
        .bind(&seqs)
        .bind(&paths)
        .bind(&subjects)
        .bind(&states)
        .bind(&codes)
        .bind(&messages)
        .execute(&mut *self.tx)
        .await
        .context("insert batch items")?;
        if !images.is_empty() {
            sqlx::query(
                "INSERT INTO batch_item_inputs (batch_id, seq, content_type, bytes) \
                 SELECT $1, * FROM unnest($2::int4[], $3::text[], $4::bytea[])",
            )
            .bind(self.id)
            .bind(&image_seqs)
            .bind(&types)
            .bind(&images)
            .execute(&mut *self.tx)
            .await
            .context("insert batch item inputs")?;
        }
        Ok(())
    }

    /// Keeps the batch; a batch with nothing to run ends at once.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        self.write_chunk().await?;
        if let Some((collection, require_consent)) = &self.collection {
            ensure_collection(&mut self.tx, collection, *require_consent).await?;
        }
        sqlx::query("UPDATE batches SET total = $2 WHERE id = $1")
            .bind(self.id)
            .bind(self.items)
            .execute(&mut *self.tx)
            .await
            .context("set batch total")?;
        let runnable: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM batch_items WHERE batch_id = $1 AND state = 'pending')")
                .bind(self.id)
                .fetch_one(&mut *self.tx)
                .await
                .context("read batch items")?;
        if !runnable {
            end_batch(&mut self.tx, self.id, BatchStatus::Completed).await?;
        }
        self.tx.commit().await.context("commit batch")
    }
}
