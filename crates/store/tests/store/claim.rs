//! Claims and ends: a queued job is claimed once, with its input; only the
//! claim's holder ends it; a queued job is canceled, a claimed one is not.

use facerec_core::{JobError, JobErrorCode, JobId, JobKind, JobStatus, JobView, WebhookStatus, WebhookView};
use facerec_store::{CancelOutcome, ClaimOutcome};
use facerec_testkit::TestDatabase;
use serde_json::json;

use crate::{LEASE, TRACEPARENT, claim, embed_job, expire_lease, rows_of_job, submit};

#[tokio::test]
async fn a_queued_job_is_claimed_once_with_its_input_and_trace() -> anyhow::Result<()> {
    let test = TestDatabase::create().await?;
    let store = &test.store;
    let job = embed_job();
    let created = submit(store, &job).await?;
    assert_eq!((created.job_id, created.kind), (job.id, JobKind::Embed));
    assert_eq!(created.traceparent.as_deref(), Some(TRACEPARENT), "the submission's trace is kept");

    let queued = store.get_job(job.id).await?.expect("the job is recorded");
    assert_eq!((queued.status, queued.attempts, queued.started_at), (JobStatus::Queued, 0, None));
    assert_eq!(queued.params, job.params, "params come back as they went in");

    let held = claim(store, job.id).await?;
    assert_eq!((held.job.status, held.job.attempts, held.taken_over), (JobStatus::Processing, 1, false));
    assert_eq!(held.input, job.input, "the claim carries the upload");
    assert_eq!(held.second_input, None);
    assert!(held.job.started_at.is_some());
    assert_eq!(held.job_ref(), created, "a retry re-enqueues the job with its own trace");

    // Another worker, while the lease is live: not its job.
    assert!(matches!(store.claim_job(job.id, LEASE).await?, ClaimOutcome::Held));
    let stored = store.get_job(job.id).await?.expect("still there");
    assert_eq!((stored.status, stored.attempts), (JobStatus::Processing, 1), "a refused claim counts nothing");
    assert!(matches!(store.claim_job(JobId::new(), LEASE).await?, ClaimOutcome::Done), "no such job");
    test.drop().await
}

#[tokio::test]
async fn only_the_claims_holder_ends_the_job() -> anyhow::Result<()> {
    let test = TestDatabase::create().await?;
    let (store, db) = (&test.store, &test.db);
    let job = embed_job();
    submit(store, &job).await?;
    let stale = claim(store, job.id).await?;
    // Its worker stalled past the lease; another one took the job over.
    expire_lease(db, job.id).await?;
    let holder = claim(store, job.id).await?;
    assert!(holder.taken_over);

    assert!(!store.fail_job(&stale, JobErrorCode::NoFace, "late").await?, "a stale claim cannot fail the job");
    assert!(!store.succeed_job(&stale, &json!({"late": true})).await?, "nor succeed it");
    let running = store.get_job(job.id).await?.expect("still there");
    assert_eq!((running.status, running.result, running.error), (JobStatus::Processing, None, None));
    assert_eq!(rows_of_job(db, "job_inputs", job.id).await?, 1, "the input stays while the job runs");

    let result = json!({"faces": []});
    assert!(store.succeed_job(&holder, &result).await?);
    let done = store.get_job(job.id).await?.expect("still there");
    assert_eq!((done.status, done.result.as_ref()), (JobStatus::Succeeded, Some(&result)));
    assert!(done.finished_at.is_some());
    assert_eq!(rows_of_job(db, "job_inputs", job.id).await?, 0, "an ended job's upload is deleted");
    assert!(!store.fail_job(&holder, JobErrorCode::Internal, "twice").await?, "an ended job stays ended");
    assert!(matches!(store.claim_job(job.id, LEASE).await?, ClaimOutcome::Done));
    test.drop().await
}

#[tokio::test]
async fn a_failed_job_reads_back_with_its_typed_error() -> anyhow::Result<()> {
    let test = TestDatabase::create().await?;
    let store = &test.store;
    let job = embed_job();
    submit(store, &job).await?;
    let held = claim(store, job.id).await?;
    assert!(store.fail_job(&held, JobErrorCode::CorruptImage, "the image cannot be decoded").await?);
    let failed = store.get_job(job.id).await?.expect("still there");
    assert_eq!(failed.status, JobStatus::Failed);
    let error = JobError { code: JobErrorCode::CorruptImage, message: "the image cannot be decoded".into() };
    assert_eq!(failed.error.as_ref(), Some(&error));
    // And clients see the code's stable text.
    let view = serde_json::to_value(JobView::from(failed))?;
    assert_eq!(view["error"], json!({"code": "corrupt_image", "message": "the image cannot be decoded"}));
    assert_eq!(view["status"], "failed");
    test.drop().await
}

#[tokio::test]
async fn a_claimed_job_without_its_input_fails_at_once() -> anyhow::Result<()> {
    let test = TestDatabase::create().await?;
    let (store, db) = (&test.store, &test.db);
    let job = embed_job();
    submit(store, &job).await?;
    sqlx::query("DELETE FROM job_inputs WHERE job_id = $1").bind(job.id.0).execute(db).await?;
    assert!(matches!(store.claim_job(job.id, LEASE).await?, ClaimOutcome::Done), "nothing to run");
    let failed = store.get_job(job.id).await?.expect("still there");
    assert_eq!(failed.status, JobStatus::Failed, "failed, rather than stuck in processing");
    assert_eq!(failed.error.map(|e| e.code), Some(JobErrorCode::Internal));
    test.drop().await
}

#[tokio::test]
async fn a_queued_job_is_canceled_and_a_claimed_one_is_not() -> anyhow::Result<()> {
    let test = TestDatabase::create().await?;
    let (store, db) = (&test.store, &test.db);
    let queued = embed_job();
    let queued = facerec_store::NewJob { callback_url: Some("http://127.0.0.1:9/hook".into()), ..queued };
    submit(store, &queued).await?;
    let CancelOutcome::Canceled(canceled) = store.cancel_job(queued.id).await? else {
        panic!("a queued job is canceled");
    };
    assert_eq!(canceled.status, JobStatus::Canceled);
    assert!(canceled.finished_at.is_some());
    let pending = WebhookView { status: WebhookStatus::Pending, attempts: 0, last_status: None, last_error: None };
    assert_eq!(canceled.webhook, Some(pending), "its end is to be delivered to its callback");
    assert_eq!(rows_of_job(db, "job_inputs", queued.id).await?, 0, "its upload is deleted");
    assert!(matches!(store.cancel_job(queued.id).await?, CancelOutcome::NotCancelable(JobStatus::Canceled)));
    assert!(matches!(store.claim_job(queued.id, LEASE).await?, ClaimOutcome::Done), "a canceled job never runs");

    let running = embed_job();
    submit(store, &running).await?;
    claim(store, running.id).await?;
    assert!(matches!(store.cancel_job(running.id).await?, CancelOutcome::NotCancelable(JobStatus::Processing)));
    assert_eq!(store.get_job(running.id).await?.map(|j| j.status), Some(JobStatus::Processing));
    assert!(matches!(store.cancel_job(JobId::new()).await?, CancelOutcome::NotFound));
    test.drop().await
}
