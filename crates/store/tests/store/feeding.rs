//! Batch feeding (`facerec_feed_batches`): pending items become queued
//! register jobs up to the window, each once, each carrying its batch's trace
//! context and params as serde writes them, and reading its item's image.

use facerec_core::{CollectionName, ConsentRef, JobKind, JobParams, JobRef, JobStatus, RegisterParams, SubjectName};
use facerec_store::{ItemContent, NewBatch, NewBatchItem, Store};
use facerec_testkit::TestDatabase;
use uuid::Uuid;

use crate::{TRACEPARENT, claim};

/// A batch of `images` images of "Ada" (and one entry that is not an image)
/// in `collection`, recorded as the api records an upload.
async fn record_batch(
    store: &Store,
    collection: &str,
    images: i32,
    traceparent: Option<&str>,
) -> anyhow::Result<NewBatch> {
    let batch = NewBatch {
        id: Uuid::now_v7(),
        collection: CollectionName::parse(collection)?,
        consent: Some(ConsentRef::parse("ticket-9")?),
        callback_url: None,
        request_id: Some("req-batch".into()),
        create_collection: Some(false),
        api_key_id: None,
        traceparent: traceparent.map(str::to_owned),
    };
    let mut writer = store.begin_batch(&batch).await?;
    for seq in 0..images {
        let content = ItemContent::Image { content_type: "image/jpeg", bytes: item_bytes(seq) };
        writer.add(NewBatchItem { path: format!("Ada/{seq}.jpg"), subject: "Ada".into(), content }).await?;
    }
    let skipped = ItemContent::Skipped { code: "not_an_image", message: "a text file".into() };
    writer.add(NewBatchItem { path: "notes.txt".into(), subject: "Ada".into(), content: skipped }).await?;
    writer.commit().await?;
    Ok(batch)
}

/// Each item's own bytes, so a job reading another's would show.
fn item_bytes(seq: i32) -> Vec<u8> {
    format!("image of item {seq}").into_bytes()
}

#[tokio::test]
async fn fed_jobs_carry_the_batchs_trace_and_are_fed_once() -> anyhow::Result<()> {
    let test = TestDatabase::create().await?;
    let (store, db) = (&test.store, &test.db);
    let batch = record_batch(store, "people", 3, Some(TRACEPARENT)).await?;

    let round = store.feed_batches(100).await?;
    assert_eq!((round.fed.len(), round.running, round.drained), (3, 1, 1), "every image, and nothing else");
    let expected: Vec<JobRef> = round
        .fed
        .iter()
        .map(|r| JobRef { job_id: r.job_id, kind: JobKind::Register, traceparent: Some(TRACEPARENT.into()) })
        .collect();
    assert_eq!(round.fed, expected, "each job carries its batch's trace, for the queue");
    let stored: Vec<Option<String>> = sqlx::query_scalar("SELECT traceparent FROM jobs").fetch_all(db).await?;
    assert_eq!(stored.len(), 3);
    assert!(stored.iter().all(|t| t.as_deref() == Some(TRACEPARENT)), "and keeps it, for its retries: {stored:?}");

    let again = store.feed_batches(100).await?;
    assert!(again.fed.is_empty(), "fed twice, an item is still one job");
    assert_eq!(test.count("jobs").await, 3);
    let items: Vec<(i32, Option<Uuid>)> =
        sqlx::query_as("SELECT seq, job_id FROM batch_items WHERE state = 'submitted' ORDER BY seq")
            .fetch_all(db)
            .await?;
    assert_eq!(items.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), [0, 1, 2]);

    // Each job is a register as the api would have recorded it, and reads its own item's image.
    let expected = JobParams::Register(RegisterParams {
        subject: SubjectName::parse("Ada")?,
        collection: batch.collection.clone(),
        consent: batch.consent.clone(),
    });
    for (seq, job_id) in items {
        let job_id = facerec_core::JobId(job_id.expect("a submitted item names its job"));
        let job = store.get_job(job_id).await?.expect("the job is recorded");
        assert_eq!((job.status, &job.params), (JobStatus::Queued, &expected));
        assert_eq!(job.job_ref(), JobRef { job_id, kind: JobKind::Register, traceparent: Some(TRACEPARENT.into()) });
        assert_eq!(claim(store, job_id).await?.input, item_bytes(seq), "item {seq}'s own image");
    }
    test.drop().await
}

#[tokio::test]
async fn feeding_tops_up_the_window_and_keeps_each_batchs_trace() -> anyhow::Result<()> {
    let test = TestDatabase::create().await?;
    let store = &test.store;
    record_batch(store, "people", 3, Some(TRACEPARENT)).await?;
    record_batch(store, "others", 2, None).await?;

    let first = store.feed_batches(2).await?;
    assert_eq!((first.fed.len(), first.running, first.drained), (2, 2, 0), "two jobs fill a window of two");
    assert!(first.fed.iter().all(|r| r.traceparent.as_deref() == Some(TRACEPARENT)), "the oldest batch first");
    assert!(store.feed_batches(2).await?.fed.is_empty(), "no room while both wait for a worker");
    // A worker takes one: room for one more.
    claim(store, first.fed[0].job_id).await?;
    let second = store.feed_batches(2).await?;
    assert_eq!(second.fed.len(), 1);

    // A batch without a trace feeds jobs without one.
    let rest = [store.feed_batches(10).await?.fed, second.fed, first.fed].concat();
    assert_eq!(rest.len(), 5, "every image once");
    let traced = rest.iter().filter(|r| r.traceparent.as_deref() == Some(TRACEPARENT)).count();
    let untraced = rest.iter().filter(|r| r.traceparent.is_none()).count();
    assert_eq!((traced, untraced), (3, 2));
    test.drop().await
}
