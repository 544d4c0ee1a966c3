//! Recording an archive batch: the batch row and its items, written in chunks
//! as the archive is read, all in one transaction, so a refused archive
//! leaves nothing.

use facerec_core::{BatchStatus, CollectionName, ConsentRef};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::batches::end_batch;
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
    /// W3C trace context of the upload request; its jobs carry the same, so
    /// their spans join the upload's trace.
    pub traceparent: Option<String>,
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
/// ...or this many bytes of images (or one image, if larger), whichever comes
/// first: two statements per chunk instead of two per item (a 2,000-image
/// archive took 4,000 round trips), with at most this much of the archive
/// held at once (and, while it is written, a copy in the connection's buffer).
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
            "INSERT INTO batches (id, collection, status, total, consent_ref, callback_url, request_id, api_key_id, \
                 traceparent) \
             VALUES ($1, $2, 'running', 0, $3, $4, $5, $6, $7)",
        )
        .bind(batch.id)
        .bind(batch.collection.as_str())
        .bind(batch.consent.as_ref().map(ConsentRef::as_str))
        .bind(&batch.callback_url)
        .bind(&batch.request_id)
        .bind(batch.api_key_id)
        .bind(&batch.traceparent)
        .execute(&mut *writer.tx)
        .await
        .context("insert batch")?;
        Ok(writer)
    }
}

impl BatchWriter {
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Items added so far (the last chunk's are written at commit).
    pub fn len(&self) -> i32 {
        self.items
    }

    pub fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// Records the next item (written with its chunk, or at commit). The
    /// chunk held is written first if this item would take it past a limit.
    pub async fn add(&mut self, item: NewBatchItem) -> Result<(), StoreError> {
        let bytes = match &item.content {
            ItemContent::Image { bytes, .. } => bytes.len(),
            _ => 0,
        };
        if self.chunk.len() >= CHUNK_ITEMS || self.chunk_bytes + bytes > CHUNK_BYTES {
            self.write_chunk().await?;
        }
        self.chunk_bytes += bytes;
        self.chunk.push(item);
        self.items += 1;
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
        // The connection goes back to the pool without a chunk-sized buffer.
        sqlx::Connection::shrink_buffers(&mut *self.tx);
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
