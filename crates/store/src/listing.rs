//! Reading jobs in bulk: filtered, cursor-paged listing and counts by status.

use chrono::{DateTime, Utc};
use facerec_core::{CollectionName, JobId, JobKind, JobRecord, JobStatus};
use sqlx::{Postgres, QueryBuilder};

use crate::error::QueryContext;
use crate::error::corrupt;
use crate::jobs::{JOB_COLUMNS, JobRow};
use crate::{Store, StoreError, Visibility};

/// Jobs not yet ended, as an operator watches them (`facerec_queue_depth`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Queued and due: waiting for a worker.
    pub queued: i64,
    /// Queued, waiting for the retry time of a transient failure.
    pub retry_wait: i64,
    pub processing: i64,
}

/// Which jobs to list; every field narrows the set. Newest first.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub kind: Option<JobKind>,
    pub collection: Option<CollectionName>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    /// Only the job submitted with this `Idempotency-Key` (at most one).
    pub idempotency_key: Option<String>,
    /// Only jobs older than this one (the cursor of the previous page).
    pub before: Option<JobId>,
    /// Only jobs the caller may see.
    pub visible: Visibility,
}

/// How many jobs are in each state right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub queued: i64,
    pub processing: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub canceled: i64,
}

impl Store {
    /// At most `limit` jobs matching `filter`, newest first.
    pub async fn list_jobs(&self, filter: &JobFilter, limit: u32) -> Result<Vec<JobRecord>, StoreError> {
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE true"));
        if let Some(status) = filter.status {
            q.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(kind) = filter.kind {
            q.push(" AND kind = ").push_bind(kind.as_str());
        }
        if let Some(collection) = &filter.collection {
            q.push(" AND params->>'collection' = ").push_bind(collection.as_str().to_owned());
        }
        if let Some(after) = filter.created_after {
            q.push(" AND created_at >= ").push_bind(after);
        }
        if let Some(before) = filter.created_before {
            q.push(" AND created_at < ").push_bind(before);
        }
        if let Some(key) = &filter.idempotency_key {
            q.push(" AND idempotency_key = ").push_bind(key.clone());
        }
        if let Some(cursor) = filter.before {
            q.push(" AND id < ").push_bind(cursor.0);
        }
        filter.visible.push_job(&mut q);
        q.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(limit));
        let rows: Vec<JobRow> = q.build_query_as().fetch_all(&self.pool).await.context("list jobs")?;
        rows.into_iter().map(JobRow::into_record).collect()
    }

    /// Jobs per status, of those the caller may see.
    pub async fn job_counts(&self, visible: &Visibility) -> Result<JobCounts, StoreError> {
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new("SELECT status, count(*) FROM jobs WHERE true");
        visible.push_job(&mut q);
        q.push(" GROUP BY status");
        let rows: Vec<(String, i64)> = q.build_query_as().fetch_all(&self.pool).await.context("count jobs")?;
        let mut counts = JobCounts::default();
        for (status, n) in rows {
            let count = match status.parse::<JobStatus>().map_err(corrupt("job status"))? {
                JobStatus::Queued => &mut counts.queued,
                JobStatus::Processing => &mut counts.processing,
                JobStatus::Succeeded => &mut counts.succeeded,
                JobStatus::Failed => &mut counts.failed,
                JobStatus::Canceled => &mut counts.canceled,
            };
            *count = n;
        }
        Ok(counts)
    }

    /// Jobs waiting for a worker (what back-pressure limits), counted up to
    /// `cap`: the answer is `min(queued, cap)`, so the count costs the same at
    /// any queue depth past the limit.
    pub async fn queued_jobs(&self, cap: i64) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT count(*) FROM (SELECT 1 FROM jobs WHERE status = 'queued' LIMIT $1) AS q")
            .bind(cap.max(0))
            .fetch_one(&self.pool)
            .await
            .context("count queued jobs")
    }

    /// Every job not yet ended, by state (all of them: what an operator
    /// watches). Reads the `queued` and `processing` rows through their index.
    pub async fn queue_depth(&self) -> Result<QueueDepth, StoreError> {
        let (queued, retry_wait, processing): (i64, i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'queued' AND (retry_at IS NULL OR retry_at <= now())), \
                    count(*) FILTER (WHERE status = 'queued' AND retry_at > now()), \
                    count(*) FILTER (WHERE status = 'processing') \
             FROM jobs WHERE status IN ('queued', 'processing')",
        )
        .fetch_one(&self.pool)
        .await
        .context("read the queue depth")?;
        Ok(QueueDepth { queued, retry_wait, processing })
    }
}
