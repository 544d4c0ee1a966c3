//! Deletion that forgets: a face, a subject and a collection go with their
//! rows, register jobs that would bring the person back are canceled (a
//! running one can no longer store its face), and the audit log keeps a
//! record of each deletion (and so the collection's name).

use facerec_core::{BBox, CollectionName, EMBEDDING_DIM, FaceQuality, JobId, JobStatus, SubjectName};
use facerec_store::{NewFace, RegisterOutcome, Store, Visibility};
use facerec_testkit::TestDatabase;
use serde_json::json;
use uuid::Uuid;

use crate::{claim, register_job, rows_of_job, submit};

/// A face as the worker stores it for a register job (no real photo: a made-up vector).
fn face(collection: &CollectionName, subject: &SubjectName) -> NewFace {
    let mut embedding = vec![0.0; EMBEDDING_DIM];
    embedding[0] = 1.0;
    NewFace {
        id: Uuid::now_v7(),
        subject: subject.clone(),
        collection: collection.clone(),
        detector: "yunet".into(),
        embedder: "sface".into(),
        embedding,
        bbox: BBox { x: 10.0, y: 20.0, width: 80.0, height: 100.0 },
        detection_score: 0.95,
        landmarks: [[30.0, 50.0], [70.0, 50.0], [50.0, 70.0], [35.0, 90.0], [65.0, 90.0]],
        quality: FaceQuality { inter_eye_distance: 40.0, sharpness: 300.0, pose_offset: 0.02, visible_fraction: 1.0 },
        consent: None,
        source_sha256: None,
    }
}

/// Registers one face of `subject` as a worker does: a job, its claim, then the face and the job's end.
async fn register(store: &Store, collection: &CollectionName, subject: &SubjectName) -> anyhow::Result<Uuid> {
    let job = register_job(collection.as_str(), subject.as_str())?;
    submit(store, &job).await?;
    let held = claim(store, job.id).await?;
    let new = face(collection, subject);
    let outcome = store.complete_register(&held, &new, &json!({"face_id": new.id})).await?;
    assert_eq!(outcome, RegisterOutcome::Stored);
    Ok(new.id)
}

#[tokio::test]
async fn deleting_a_face_then_its_subject_removes_rows_and_leaves_the_audit() -> anyhow::Result<()> {
    let test = TestDatabase::create().await?;
    let (store, db) = (&test.store, &test.db);
    let people = CollectionName::parse("people")?;
    let (ada, bo) = (SubjectName::parse("Ada")?, SubjectName::parse("Bo")?);
    let first = register(store, &people, &ada).await?;
    let second = register(store, &people, &ada).await?;
    register(store, &people, &bo).await?;
    assert_eq!((test.count("subjects").await, test.count("faces").await), (2, 3));

    let entry = store.delete_face(first, Some("req-face")).await?.expect("the face exists");
    assert_eq!((entry.action.as_str(), entry.face_id, entry.faces_deleted), ("face_deleted", Some(first), 1));
    assert_eq!((entry.subject.as_deref(), entry.request_id.as_deref()), (Some("Ada"), Some("req-face")));
    assert!(store.get_face(first).await?.is_none());
    let subject = store.get_subject(&people, &ada).await?.expect("the subject stays");
    assert_eq!(subject.faces.iter().map(|f| f.face_id).collect::<Vec<_>>(), [second]);
    assert!(store.delete_face(first, None).await?.is_none(), "gone already");

    // A register of Ada waiting in the queue, and one in a worker's hands.
    let queued = register_job("people", "Ada")?;
    submit(store, &queued).await?;
    let running = register_job("people", "Ada")?;
    submit(store, &running).await?;
    let in_hand = claim(store, running.id).await?;

    let entry = store.delete_subject(&people, &ada, Some("req-subject")).await?.expect("the subject exists");
    assert_eq!(entry.action, "subject_deleted");
    assert_eq!((entry.subjects_deleted, entry.faces_deleted, entry.jobs_canceled), (1, 1, 2));
    assert!(store.get_subject(&people, &ada).await?.is_none());
    assert!(store.get_face(second).await?.is_none(), "its faces go with it");
    for id in [queued.id, running.id] {
        assert_eq!(status(store, id).await?, JobStatus::Canceled, "a register that would bring Ada back");
    }
    assert_eq!(rows_of_job(db, "job_inputs", queued.id).await?, 0, "the canceled upload is deleted");
    let late = store.complete_register(&in_hand, &face(&people, &ada), &json!({})).await?;
    assert_eq!(late, RegisterOutcome::ClaimLost, "the running register stores nothing");
    assert!(store.get_subject(&people, &ada).await?.is_none(), "Ada does not come back");
    assert!(store.get_subject(&people, &bo).await?.is_some(), "another subject is untouched");
    assert_eq!((test.count("subjects").await, test.count("faces").await), (1, 1));

    let audit = store.list_audit(Some(&people), None, 10, &Visibility::All).await?;
    let actions: Vec<_> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["subject_deleted", "face_deleted"], "newest first");
    test.drop().await
}

#[tokio::test]
async fn a_deleted_collection_is_gone_but_on_record() -> anyhow::Result<()> {
    let test = TestDatabase::create().await?;
    let store = &test.store;
    let people = CollectionName::parse("people")?;
    register(store, &people, &SubjectName::parse("Ada")?).await?;
    register(store, &people, &SubjectName::parse("Bo")?).await?;
    let queued = register_job("people", "Cy")?;
    submit(store, &queued).await?;

    let entry = store.delete_collection(&people, None).await?.expect("the collection exists");
    assert_eq!(entry.action, "collection_deleted");
    assert_eq!((entry.subjects_deleted, entry.faces_deleted, entry.jobs_canceled), (2, 2, 1));
    assert!(store.get_collection(&people).await?.is_none());
    assert_eq!((test.count("subjects").await, test.count("faces").await), (0, 0));
    assert_eq!(status(store, queued.id).await?, JobStatus::Canceled);
    assert!(store.collection_known(&people).await?, "the audit log still names it");
    assert!(!store.collection_known(&CollectionName::parse("never")?).await?);
    assert!(store.delete_collection(&people, None).await?.is_none(), "gone already");
    assert_eq!(test.count("audit_log").await, 1);
    test.drop().await
}

async fn status(store: &Store, id: JobId) -> anyhow::Result<JobStatus> {
    Ok(store.get_job(id).await?.expect("the job is kept").status)
}
