//! Deletion that forgets, against registers still on their way: a queued
//! register for a deleted subject is canceled and never stores its face, and
//! one that is storing its face as the delete arrives loses it to the delete.
//! Also consent: a collection that requires it refuses a register without it
//! and shows the stored reference.

use facerec_testkit::reqwest::Method;
use facerec_testkit::serde_json::{Value, json};
use facerec_testkit::{TestApp, photo};

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_register_for_a_deleted_subject_is_canceled_and_never_stored() {
    let mut app = TestApp::spawn().await.unwrap();
    let job = app.run_job("/v1/register", photo("obama.jpg"), &[("subject", "ada"), ("collection", "c")]).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    // No worker: the next register for the same subject, and one for another, stay queued.
    app.shut_down_worker().await.unwrap().unwrap();
    let queued = app.submit("/v1/register", photo("obama3.jpg"), &[("subject", "ada"), ("collection", "c")]).await;
    let other = app.submit("/v1/register", photo("biden.jpg"), &[("subject", "bob"), ("collection", "c")]).await;

    let (status, deleted) = app.json(Method::DELETE, "/v1/collections/c/subjects/ada", None).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["jobs_canceled"], 1, "{deleted}");
    assert_eq!(deleted["faces_deleted"], 1);
    assert_eq!(app.get_job(&queued).await.1["status"], "canceled");
    assert_eq!(app.get_job(&other).await.1["status"], "queued", "another subject's register is untouched");

    // A worker comes back: the canceled job's message is still in Redis, but
    // the job never runs; the other one does.
    app.start_worker(&|_| {}).await.unwrap();
    let job = app.wait_for_job(&other).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let job = app.get_job(&queued).await.1;
    assert_eq!((job["status"].as_str(), job["attempts"].as_i64()), (Some("canceled"), Some(0)), "{job}");
    assert_eq!(app.get_json("/v1/collections/c/subjects/ada").await.0, 404);
    let ada_faces: i64 =
        sqlx::query_scalar("SELECT count(*) FROM faces f JOIN subjects s ON s.id = f.subject_id WHERE s.name = 'ada'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(ada_faces, 0);
    assert_eq!(app.count("job_inputs").await, 0, "the canceled upload is deleted");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_register_storing_its_face_as_the_subject_is_deleted_loses_it() {
    let app = TestApp::spawn().await.unwrap();
    let job = app.run_job("/v1/register", photo("obama.jpg"), &[("subject", "ada")]).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    // The worker will block writing the face (after ending its job row) ...
    let lock = app.lock_table("faces").await;
    let late = app.submit("/v1/register", photo("obama3.jpg"), &[("subject", "ada")]).await;
    app.wait_until_blocked_on("faces").await;
    // ... while the delete waits for that job; then both go on.
    let client = app.client.clone();
    let url = app.url("/v1/collections/default/subjects/ada");
    let delete = tokio::spawn(async move { client.delete(url).send().await.unwrap() });
    // The worker's write and the delete: both wait for a lock before the test lets go.
    app.wait_until_waiting_for_locks(2).await;
    lock.rollback().await.unwrap();
    let resp = delete.await.unwrap();
    assert_eq!(resp.status(), 200);
    let deleted: Value = resp.json().await.unwrap();
    let job = app.wait_for_job(&late).await;
    // The register had ended its job before the delete came, so it was not
    // canceled: the delete waited for it and took its face along.
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!((deleted["faces_deleted"].as_i64(), deleted["jobs_canceled"].as_i64()), (Some(2), Some(0)), "{deleted}");
    assert_eq!((app.count("faces").await, app.count("subjects").await), (0, 0));
    let job = app.run_job("/v1/recognize", photo("obama2.jpg"), &[]).await;
    assert_eq!(job["result"]["faces"][0]["matches"], json!([]), "{job}");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_that_requires_consent_refuses_registers_without_it_and_keeps_the_reference() {
    // The server default makes new collections require consent.
    let app = TestApp::spawn_with(&|api| api.require_consent = true, &|_| {}).await.unwrap();
    let resp =
        app.post_form("/v1/register", Some(photo("obama.jpg")), &[("subject", "ada"), ("collection", "hr")]).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(code(&body), "consent_required", "{body}");
    assert_eq!((app.count("jobs").await, app.count("job_inputs").await, app.count("collections").await), (0, 0, 0));
    let resp = app
        .post_form(
            "/v1/register",
            Some(photo("obama.jpg")),
            &[("subject", "ada"), ("collection", "hr"), ("consent", "")],
        )
        .await;
    assert_eq!(code(&resp.json::<Value>().await.unwrap()), "invalid_consent");

    let form = "https://forms.example/consent/2026-0042";
    let fields = [("subject", "ada"), ("collection", "hr"), ("consent", form)];
    let job = app.run_job("/v1/register", photo("obama.jpg"), &fields).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let (_, collection) = app.get_json("/v1/collections/hr").await;
    assert_eq!(collection["require_consent"], true, "{collection}");
    let (status, subject) = app.get_json("/v1/collections/hr/subjects/ada").await;
    assert_eq!(status, 200, "{subject}");
    assert_eq!(subject["consent"]["reference"], form);
    let given_at = subject["consent"]["given_at"].as_str().unwrap();
    assert_eq!(given_at, job["created_at"].as_str().unwrap(), "consent dates from the submission");

    // A collection can opt out explicitly, and opt in again by PATCH.
    let (status, open) =
        app.json(Method::POST, "/v1/collections", Some(json!({"name": "open", "require_consent": false}))).await;
    assert_eq!((status, open["require_consent"].as_bool()), (201, Some(false)), "{open}");
    let job = app.run_job("/v1/register", photo("biden.jpg"), &[("subject", "bob"), ("collection", "open")]).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let (_, subject) = app.get_json("/v1/collections/open/subjects/bob").await;
    assert!(subject["consent"].is_null(), "{subject}");
    app.json(Method::PATCH, "/v1/collections/open", Some(json!({"require_consent": true}))).await;
    let resp =
        app.post_form("/v1/register", Some(photo("biden.jpg")), &[("subject", "bob"), ("collection", "open")]).await;
    assert_eq!(resp.status(), 400);

    // Deleting the subject withdraws consent: the deletion keeps the reference on record.
    let (_, deleted) = app.json(Method::DELETE, "/v1/collections/hr/subjects/ada", None).await;
    assert_eq!(deleted["consent_ref"], form, "{deleted}");
    let (_, audit) = app.get_json("/v1/audit").await;
    assert_eq!(audit["entries"][0]["consent_ref"], form);
    assert_eq!(audit["entries"][0]["subject"], "ada");
    app.stop().await.unwrap();
}
