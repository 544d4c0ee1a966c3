//! Leases and retries: a lease that ran out is claimable again (attempts
//! counted), a renewal keeps it, a release waits its delay, and the
//! reconciler's scan finds jobs whose message or worker was lost, with the
//! trace they were created in.

use std::time::Duration;

use chrono::Utc;
use facerec_core::{JobId, JobKind, JobStatus, JobView};
use facerec_store::ClaimOutcome;
use facerec_testkit::TestDatabase;

use crate::{LEASE, TRACEPARENT, claim, embed_job, expire_lease, submit};

/// When the job's lease runs out, as stored.
async fn lease_expires_at(db: &sqlx::PgPool, id: JobId) -> anyhow::Result<Option<chrono::DateTime<Utc>>> {
    Ok(sqlx::query_scalar("SELECT lease_expires_at FROM jobs WHERE id = $1").bind(id.0).fetch_one(db).await?)
}

#[tokio::test]
async fn a_lease_that_ran_out_is_claimable_again_with_attempts_counted() -> anyhow::Result<()> {
    let test = TestDatabase::create().await?;
    let (store, db) = (&test.store, &test.db);
    let job = embed_job();
    submit(store, &job).await?;
    let first = claim(store, job.id).await?;
    let before = lease_expires_at(db, job.id).await?.expect("a claimed job has a lease");
    assert!(store.renew_lease(&first, LEASE * 2).await?, "the holder renews its lease");
    let renewed = lease_expires_at(db, job.id).await?.expect("still leased");
    assert!(renewed > before, "renewal moves the lease on: {before} -> {renewed}");
    assert!(matches!(store.claim_job(job.id, LEASE).await?, ClaimOutcome::Held));

    expire_lease(db, job.id).await?;
    let second = claim(store, job.id).await?;
    assert!(second.taken_over, "claimed from a worker whose lease ran out");
    assert_eq!((second.job.status, second.job.attempts), (JobStatus::Processing, 2), "each claim is an attempt");
    assert_ne!(second.token, first.token);
    assert_eq!(second.input, job.input, "a job taken over still reads its upload");
    assert!(!store.renew_lease(&first, LEASE).await?, "the old holder's renewal finds its claim lost");
    assert!(store.renew_lease(&second, LEASE).await?);
    test.drop().await
}

#[tokio::test]
async fn a_released_job_waits_for_its_retry_time() -> anyhow::Result<()> {
    let test = TestDatabase::create().await?;
    let (store, db) = (&test.store, &test.db);
    let job = embed_job();
    submit(store, &job).await?;
    let held = claim(store, job.id).await?;
    assert!(store.release_job(&held, Duration::from_secs(3600), "the database went away").await?);
    assert!(!store.release_job(&held, Duration::ZERO, "again").await?, "a released claim is spent");

    let waiting = store.get_job(job.id).await?.expect("still there");
    assert_eq!((waiting.status, waiting.attempts), (JobStatus::Queued, 1));
    let retry_at = waiting.retry_at.expect("a released job has a retry time");
    let delay = retry_at - Utc::now();
    assert!(delay > chrono::Duration::minutes(59) && delay <= chrono::Duration::minutes(60), "due in {delay}");
    let retry = JobView::from(waiting).retry.expect("clients see the job wait for its retry");
    assert_eq!((retry.next_attempt_at, retry.last_error.as_str()), (retry_at, "the database went away"));
    assert!(matches!(store.claim_job(job.id, LEASE).await?, ClaimOutcome::NotYet), "not before its time");

    sqlx::query("UPDATE jobs SET retry_at = now() - interval '1 second' WHERE id = $1")
        .bind(job.id.0)
        .execute(db)
        .await?;
    let again = claim(store, job.id).await?;
    assert_eq!((again.job.attempts, again.taken_over), (2, false));
    assert_eq!(again.input, job.input, "a retry reads the same upload");

    // Released with no delay, a job is due at once.
    assert!(store.release_job(&again, Duration::ZERO, "once more").await?);
    assert_eq!(claim(store, job.id).await?.job.attempts, 3);
    test.drop().await
}

#[tokio::test]
async fn the_reconciler_finds_lost_jobs_with_their_trace() -> anyhow::Result<()> {
    let test = TestDatabase::create().await?;
    let (store, db) = (&test.store, &test.db);
    let requeue_after = Duration::from_secs(60);
    let (lost, fresh, dead) = (embed_job(), embed_job(), embed_job());
    for job in [&lost, &fresh, &dead] {
        submit(store, job).await?;
    }
    // `lost` was enqueued long ago and never claimed: its message is gone.
    sqlx::query("UPDATE jobs SET enqueued_at = now() - interval '1 hour' WHERE id = $1")
        .bind(lost.id.0)
        .execute(db)
        .await?;
    // `dead`'s worker died after claiming it: its lease ran out an hour ago,
    // and no message was sent since.
    claim(store, dead.id).await?;
    sqlx::query(
        "UPDATE jobs SET enqueued_at = now() - interval '2 hours', lease_expires_at = now() - interval '1 hour' \
         WHERE id = $1",
    )
    .bind(dead.id.0)
    .execute(db)
    .await?;

    let mut found = store.jobs_to_reenqueue(requeue_after, 10).await?;
    found.sort_by_key(|r| r.job_id.0);
    let mut expected = vec![lost.job_ref(), dead.job_ref()];
    expected.sort_by_key(|r| r.job_id.0);
    assert_eq!(found, expected, "the lost and the dead, not the fresh one");
    assert!(found.iter().all(|r| r.kind == JobKind::Embed && r.traceparent.as_deref() == Some(TRACEPARENT)));
    assert!(store.jobs_to_reenqueue(requeue_after, 10).await?.is_empty(), "each is sent once per round");
    test.drop().await
}
