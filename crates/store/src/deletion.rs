//! Deletion that forgets: a collection, a subject or a face is removed in one
//! transaction, with its vectors (no soft delete); register jobs that would
//! bring a deleted person back are canceled in the same transaction; and an
//! audit record (no biometric data) says what went. Also lists that record.

use chrono::{DateTime, Utc};
use facerec_core::{AuditEntry, CollectionName, SubjectName};
use sqlx::{FromRow, Postgres, QueryBuilder, Transaction};
use uuid::Uuid;

use crate::error::QueryContext;
use crate::{Store, StoreError, Visibility};

#[derive(FromRow)]
struct AuditRow {
    id: Uuid,
    at: DateTime<Utc>,
    action: String,
    collection: String,
    subject: Option<String>,
    face_id: Option<Uuid>,
    subjects_deleted: i64,
    faces_deleted: i64,
    jobs_canceled: i64,
    consent_ref: Option<String>,
    request_id: Option<String>,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        Self {
            id: r.id,
            at: r.at,
            action: r.action,
            collection: r.collection,
            subject: r.subject,
            face_id: r.face_id,
            subjects_deleted: r.subjects_deleted,
            faces_deleted: r.faces_deleted,
            jobs_canceled: r.jobs_canceled,
            consent_ref: r.consent_ref,
            request_id: r.request_id,
        }
    }
}

const AUDIT_COLUMNS: &str = "id, at, action, collection, subject, face_id, subjects_deleted, faces_deleted, \
     jobs_canceled, consent_ref, request_id";

/// What a deletion removed, as recorded.
struct Removed<'a> {
    action: &'static str,
    collection: &'a str,
    subject: Option<&'a str>,
    face_id: Option<Uuid>,
    subjects: i64,
    faces: i64,
    jobs_canceled: i64,
    consent_ref: Option<String>,
}

impl Store {
    /// Deletes the collection with every subject and face in it. `None` when it does not exist.
    pub async fn delete_collection(
        &self,
        name: &CollectionName,
        request_id: Option<&str>,
    ) -> Result<Option<AuditEntry>, StoreError> {
        let mut tx = self.pool.begin().await.context("begin delete collection")?;
        // Jobs first, then the collection: the order in which a register
        // takes its locks, so the two never deadlock. Nothing is kept if the
        // collection turns out not to exist (the transaction is dropped).
        let jobs_canceled = cancel_registers(&mut tx, name.as_str(), None).await?;
        let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM collections WHERE name = $1 FOR UPDATE")
            .bind(name.as_str())
            .fetch_optional(&mut *tx)
            .await
            .context("lock collection")?;
        if found.is_none() {
            return Ok(None);
        }
        // Faces first, in one statement (a cascade would run one per subject).
        let faces = delete_rows(&mut tx, "DELETE FROM faces WHERE collection = $1", name.as_str()).await?;
        let subjects = delete_rows(&mut tx, "DELETE FROM subjects WHERE collection = $1", name.as_str()).await?;
        delete_rows(&mut tx, "DELETE FROM collections WHERE name = $1", name.as_str()).await?;
        let removed = Removed {
            action: "collection_deleted",
            collection: name.as_str(),
            subject: None,
            face_id: None,
            subjects,
            faces,
            jobs_canceled,
            consent_ref: None,
        };
        let entry = record(&mut tx, removed, request_id).await?;
        tx.commit().await.context("commit delete collection")?;
        Ok(Some(entry))
    }

    /// Deletes the subject and all its faces. `None` when it does not exist.
    pub async fn delete_subject(
        &self,
        collection: &CollectionName,
        name: &SubjectName,
        request_id: Option<&str>,
    ) -> Result<Option<AuditEntry>, StoreError> {
        let mut tx = self.pool.begin().await.context("begin delete subject")?;
        // Jobs before the subject, as in `delete_collection`.
        let jobs_canceled = cancel_registers(&mut tx, collection.as_str(), Some(name.as_str())).await?;
        let subject: Option<(Uuid, Option<String>)> =
            sqlx::query_as("SELECT id, consent_ref FROM subjects WHERE collection = $1 AND name = $2 FOR UPDATE")
                .bind(collection.as_str())
                .bind(name.as_str())
                .fetch_optional(&mut *tx)
                .await
                .context("lock subject")?;
        let Some((id, consent_ref)) = subject else { return Ok(None) };
        let faces = sqlx::query("DELETE FROM faces WHERE subject_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .context("delete subject faces")?
            .rows_affected() as i64;
        sqlx::query("DELETE FROM subjects WHERE id = $1").bind(id).execute(&mut *tx).await.context("delete subject")?;
        let removed = Removed {
            action: "subject_deleted",
            collection: collection.as_str(),
            subject: Some(name.as_str()),
            face_id: None,
            subjects: 1,
            faces,
            jobs_canceled,
            consent_ref,
        };
        let entry = record(&mut tx, removed, request_id).await?;
        tx.commit().await.context("commit delete subject")?;
        Ok(Some(entry))
    }

    /// Deletes one face; its subject stays (with one face fewer). `None` when it does not exist.
    pub async fn delete_face(&self, id: Uuid, request_id: Option<&str>) -> Result<Option<AuditEntry>, StoreError> {
        let mut tx = self.pool.begin().await.context("begin delete face")?;
        let deleted: Option<(String, String)> = sqlx::query_as(
            "DELETE FROM faces f USING subjects s WHERE f.id = $1 AND s.id = f.subject_id RETURNING f.collection, s.name",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .context("delete face")?;
        let Some((collection, subject)) = deleted else { return Ok(None) };
        let removed = Removed {
            action: "face_deleted",
            collection: &collection,
            subject: Some(&subject),
            face_id: Some(id),
            subjects: 0,
            faces: 1,
            jobs_canceled: 0,
            consent_ref: None,
        };
        let entry = record(&mut tx, removed, request_id).await?;
        tx.commit().await.context("commit delete face")?;
        Ok(Some(entry))
    }

    /// At most `limit` audit records the caller may see older than `before`,
    /// newest first; only those of `collection`, when one is named.
    pub async fn list_audit(
        &self,
        collection: Option<&CollectionName>,
        before: Option<Uuid>,
        limit: u32,
        visible: &Visibility,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE ("));
        q.push_bind(before).push("::uuid IS NULL OR id < ").push_bind(before).push(")");
        if let Some(collection) = collection {
            q.push(" AND collection = ").push_bind(collection.as_str().to_owned());
        }
        visible.push_collection(&mut q, "collection");
        q.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(limit));
        let rows: Vec<AuditRow> = q.build_query_as().fetch_all(&self.pool).await.context("list audit")?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }

    /// Whether the collection exists, or did: the audit log names it (a
    /// deleted collection's record stays readable; a name never used is not found).
    pub async fn collection_known(&self, name: &CollectionName) -> Result<bool, StoreError> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM collections WHERE name = $1) \
                 OR EXISTS (SELECT 1 FROM audit_log WHERE collection = $1)",
        )
        .bind(name.as_str())
        .fetch_one(&self.pool)
        .await
        .context("find collection in the audit log")
    }
}

async fn delete_rows(tx: &mut Transaction<'_, Postgres>, sql: &'static str, key: &str) -> Result<i64, StoreError> {
    let done = sqlx::query(sql).bind(key).execute(&mut **tx).await.context("delete gallery rows")?;
    Ok(done.rows_affected() as i64)
}

/// Cancels the register jobs for the collection (or one subject of it) that
/// are queued or running: a running one then cannot store its face (its
/// claim no longer holds), so a deleted person never comes back from an old upload.
async fn cancel_registers(
    tx: &mut Transaction<'_, Postgres>,
    collection: &str,
    subject: Option<&str>,
) -> Result<i64, StoreError> {
    // Batch items not yet fed first: this waits for a feeder that is turning
    // one into a job right now, so the jobs statement below sees that job.
    let items: i64 = sqlx::query_scalar(
        "WITH canceled AS ( \
             UPDATE batch_items i SET state = 'canceled' FROM batches b \
             WHERE b.id = i.batch_id AND b.collection = $1 AND ($2::text IS NULL OR i.subject = $2) \
                 AND i.state = 'pending' RETURNING i.batch_id, i.seq), \
         dropped AS (DELETE FROM batch_item_inputs x USING canceled c WHERE x.batch_id = c.batch_id AND x.seq = c.seq) \
         SELECT count(*) FROM canceled",
    )
    .bind(collection)
    .bind(subject)
    .fetch_one(&mut **tx)
    .await
    .context("cancel batch items")?;
    let canceled: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE jobs SET status = 'canceled', finished_at = now(), claim_token = NULL, lease_expires_at = NULL, \
             retry_at = NULL, \
             webhook_status = CASE WHEN callback_url IS NULL THEN NULL ELSE 'pending' END, \
             webhook_next_at = CASE WHEN callback_url IS NULL THEN NULL ELSE now() END \
         WHERE status IN ('queued', 'processing') AND kind = 'register' \
             AND params->>'collection' = $1 AND ($2::text IS NULL OR params->>'subject' = $2) \
         RETURNING id",
    )
    .bind(collection)
    .bind(subject)
    .fetch_all(&mut **tx)
    .await
    .context("cancel registers")?;
    if !canceled.is_empty() {
        sqlx::query("DELETE FROM job_inputs WHERE job_id = ANY($1)")
            .bind(&canceled)
            .execute(&mut **tx)
            .await
            .context("delete canceled inputs")?;
    }
    Ok(canceled.len() as i64 + items)
}

async fn record(
    tx: &mut Transaction<'_, Postgres>,
    r: Removed<'_>,
    request_id: Option<&str>,
) -> Result<AuditEntry, StoreError> {
    let sql = format!(
        "INSERT INTO audit_log (id, action, collection, subject, face_id, subjects_deleted, faces_deleted, \
             jobs_canceled, consent_ref, request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         RETURNING {AUDIT_COLUMNS}"
    );
    let row: AuditRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::now_v7())
        .bind(r.action)
        .bind(r.collection)
        .bind(r.subject)
        .bind(r.face_id)
        .bind(r.subjects)
        .bind(r.faces)
        .bind(r.jobs_canceled)
        .bind(r.consent_ref)
        .bind(request_id)
        .fetch_one(&mut **tx)
        .await
        .context("record deletion")?;
    Ok(row.into())
}
