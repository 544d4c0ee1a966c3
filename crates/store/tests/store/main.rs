//! The store's SQL on a real database, without api, worker or models: each
//! test migrates a fresh database of its own (`facerec_testkit::TestDatabase`,
//! which needs `DATABASE_URL`, as `make test` sets it) and drives the store
//! as the api and the worker do, reading rows behind its back where the
//! store has no reader.
//!
//! One binary, a module per concern: claims and ends, leases and retries,
//! idempotency, deletion, batch feeding.

mod claim;
mod deletion;
mod feeding;
mod idempotency;
mod leases;

use std::time::Duration;

use facerec_core::{CollectionName, EmbedParams, JobId, JobParams, JobRef, MaxFaces, RegisterParams, SubjectName};
use facerec_store::{Claim, ClaimOutcome, NewJob, Store, Submitted};

/// A lease no test outlives: one that runs out is made to, in SQL.
pub const LEASE: Duration = Duration::from_secs(600);

/// What a request's trace context looks like (W3C `traceparent`).
pub const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// An embed job as the api records it: its upload, and the trace of its request.
pub fn embed_job() -> NewJob {
    NewJob {
        id: JobId::new(),
        params: JobParams::Embed(EmbedParams { max_faces: MaxFaces::DEFAULT }),
        request_id: Some("req-1".into()),
        callback_url: None,
        content_type: "image/jpeg".into(),
        input: b"the upload".to_vec(),
        second_input: None,
        idempotency_key: None,
        create_collection: None,
        api_key_id: None,
        traceparent: Some(TRACEPARENT.into()),
    }
}

/// A register job of `subject` into `collection`.
pub fn register_job(collection: &str, subject: &str) -> anyhow::Result<NewJob> {
    let params = RegisterParams {
        subject: SubjectName::parse(subject)?,
        collection: CollectionName::parse(collection)?,
        consent: None,
    };
    Ok(NewJob { params: JobParams::Register(params), ..embed_job() })
}

/// Records a job that must be new, and what the queue is to be given for it.
pub async fn submit(store: &Store, job: &NewJob) -> anyhow::Result<JobRef> {
    match store.insert_job(job).await? {
        Submitted::Created(created) => Ok(created),
        Submitted::Existing(existing) => anyhow::bail!("job {} was not new: {existing:?}", job.id),
    }
}

/// Claims a job that must be claimable.
pub async fn claim(store: &Store, id: JobId) -> anyhow::Result<Box<Claim>> {
    match store.claim_job(id, LEASE).await? {
        ClaimOutcome::Claimed(claim) => Ok(claim),
        other => anyhow::bail!("job {id} could not be claimed: {other:?}"),
    }
}

/// Makes the job's lease run out, as if its worker had died (no waiting).
pub async fn expire_lease(db: &sqlx::PgPool, id: JobId) -> anyhow::Result<()> {
    sqlx::query("UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(id.0)
        .execute(db)
        .await?;
    Ok(())
}

/// Rows in `table` that belong to the job (`job_inputs`, `webhook_attempts`).
pub async fn rows_of_job(db: &sqlx::PgPool, table: &str, id: JobId) -> anyhow::Result<i64> {
    let sql = format!("SELECT count(*) FROM {table} WHERE job_id = $1");
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(id.0).fetch_one(db).await?)
}
