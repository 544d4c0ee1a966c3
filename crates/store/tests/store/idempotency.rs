//! Idempotency keys: a key the same sender used in the last 24 hours answers
//! with the job it first made (whatever the repeat carries: the caller
//! refuses a different body by comparing it with that job); another sender's
//! key is its own; a key over 24 hours old is free again.

use facerec_core::{CollectionName, JobKind, JobParams, MaxFaces, RecognizeParams, Threshold, TopK};
use facerec_store::{NewJob, Submitted};
use facerec_testkit::TestDatabase;

use crate::{embed_job, register_job, submit};

fn keyed(job: NewJob, key: &str) -> NewJob {
    NewJob { idempotency_key: Some(key.into()), ..job }
}

#[tokio::test]
async fn a_repeated_key_answers_with_the_first_job() -> anyhow::Result<()> {
    let test = TestDatabase::create().await?;
    let store = &test.store;
    let first = keyed(embed_job(), "key-1");
    let created = submit(store, &first).await?;

    let repeat = keyed(embed_job(), "key-1");
    let Submitted::Existing(existing) = store.insert_job(&repeat).await? else {
        panic!("a repeated key records nothing new");
    };
    assert_eq!((existing.id, existing.kind), (created.job_id, JobKind::Embed));
    assert_eq!(existing.traceparent, created.traceparent);
    assert!(store.get_job(repeat.id).await?.is_none(), "the repeat's own id was never recorded");
    assert_eq!((test.count("jobs").await, test.count("job_inputs").await), (1, 1));

    // A different body under the same key still names the first job, whose
    // kind and params tell the caller the key was reused for something else.
    let recognize = RecognizeParams {
        collection: CollectionName::parse("people")?,
        top_k: TopK::DEFAULT,
        threshold: Threshold::new(0.4).expect("a valid threshold"),
        max_faces: MaxFaces::DEFAULT,
    };
    let other = NewJob { params: JobParams::Recognize(recognize), ..keyed(embed_job(), "key-1") };
    let Submitted::Existing(existing) = store.insert_job(&other).await? else {
        panic!("a key is never taken twice");
    };
    assert_eq!((existing.id, existing.kind, &existing.params), (first.id, JobKind::Embed, &first.params));
    assert_eq!(test.count("jobs").await, 1);
    test.drop().await
}

#[tokio::test]
async fn keys_are_per_sender_and_free_again_after_a_day() -> anyhow::Result<()> {
    let test = TestDatabase::create().await?;
    let (store, db) = (&test.store, &test.db);
    let open = keyed(embed_job(), "shared");
    submit(store, &open).await?;
    // The same key from an API key is that key's own.
    let from_key = NewJob { api_key_id: Some(uuid::Uuid::now_v7()), ..keyed(embed_job(), "shared") };
    submit(store, &from_key).await?;
    let again = NewJob { api_key_id: from_key.api_key_id, ..keyed(embed_job(), "shared") };
    let Submitted::Existing(existing) = store.insert_job(&again).await? else {
        panic!("the API key's own repeat finds its job");
    };
    assert_eq!(existing.id, from_key.id);

    // A day later the key names nothing: a new job is made, and the old one lets go of it.
    sqlx::query("UPDATE jobs SET created_at = now() - interval '25 hours' WHERE id = $1")
        .bind(open.id.0)
        .execute(db)
        .await?;
    let later = keyed(embed_job(), "shared");
    submit(store, &later).await?;
    let old_key: Option<String> =
        sqlx::query_scalar("SELECT idempotency_key FROM jobs WHERE id = $1").bind(open.id.0).fetch_one(db).await?;
    assert_eq!(old_key, None, "the old job's key is released");
    assert_eq!(test.count("jobs").await, 3);
    test.drop().await
}

/// A register that creates its collection takes the careful way (a
/// transaction), and answers a repeated key the same.
#[tokio::test]
async fn a_register_that_creates_its_collection_is_idempotent_too() -> anyhow::Result<()> {
    let test = TestDatabase::create().await?;
    let store = &test.store;
    // Created requiring consent (not the default), as the api asks when the server requires it.
    let create = |job: NewJob| NewJob { create_collection: Some(true), ..keyed(job, "register-1") };
    let first = create(register_job("new-people", "Ada")?);
    let created = submit(store, &first).await?;
    assert_eq!(created.kind, JobKind::Register);
    let collection = store.get_collection(&CollectionName::parse("new-people")?).await?;
    assert!(collection.is_some_and(|c| c.require_consent), "created with the job, as asked");

    let repeat = create(register_job("new-people", "Ada")?);
    let Submitted::Existing(existing) = store.insert_job(&repeat).await? else {
        panic!("a repeated key records nothing new");
    };
    assert_eq!(existing.id, first.id);
    assert_eq!(test.count("jobs").await, 1);
    test.drop().await
}
