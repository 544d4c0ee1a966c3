//! Verify 1:1 against a second photo, a subject and a stored face, for the
//! same person and for different people; recognize listing people, not faces;
//! a collection's own threshold; and a collection bound to its embedder.

use facerec_testkit::reqwest::Method;
use facerec_testkit::serde_json::{Value, json};
use facerec_testkit::{TestApp, photo};

async fn verify(app: &TestApp, image: &str, fields: &[(&str, &str)], image2: Option<&str>) -> Value {
    let mut form = facerec_testkit::reqwest::multipart::Form::new()
        .part("image", facerec_testkit::reqwest::multipart::Part::bytes(photo(image)).file_name("a.jpg"));
    if let Some(second) = image2 {
        form = form.part("image2", facerec_testkit::reqwest::multipart::Part::bytes(photo(second)).file_name("b.jpg"));
    }
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    let resp = app.client.post(app.url("/v1/verify")).multipart(form).send().await.unwrap();
    assert_eq!(resp.status(), 202, "verify refused: {}", resp.text().await.unwrap_or_default());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["kind"], "verify");
    app.wait_for_job(body["job_id"].as_str().unwrap()).await
}

fn outcome(job: &Value) -> (bool, f64) {
    assert_eq!(job["status"], "succeeded", "{job}");
    (job["result"]["match"].as_bool().unwrap(), job["result"]["similarity"].as_f64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_against_a_photo_a_subject_and_a_face() {
    let app = TestApp::spawn().await.unwrap();
    // Photo against photo.
    let same = verify(&app, "obama2.jpg", &[], Some("obama.jpg")).await;
    let (matched, similarity) = outcome(&same);
    assert!(matched && similarity > 0.5, "{same}");
    let r = &same["result"];
    assert_eq!(r["target"]["type"], "image");
    assert!(r["target"]["face"]["bbox"]["width"].as_f64().unwrap() > 100.0, "{same}");
    assert!(r["face"]["landmarks"].is_array());
    assert_eq!(r["threshold"], 0.4);
    assert_eq!(r["model"], "yunet_2023mar+sface_2021dec");
    let (matched, similarity) = outcome(&verify(&app, "biden.jpg", &[], Some("obama.jpg")).await);
    assert!(!matched && similarity < 0.4, "biden verified as obama: {similarity}");

    // Photo against a subject: the best of its faces counts.
    let mut face_ids = Vec::new();
    for file in ["obama.jpg", "obama3.jpg"] {
        let job = app.run_job("/v1/register", photo(file), &[("subject", "obama"), ("collection", "team")]).await;
        face_ids.push(job["result"]["face_id"].as_str().unwrap().to_owned());
    }
    let job = verify(&app, "obama2.jpg", &[("subject", "obama"), ("collection", "team")], None).await;
    let (matched, to_subject) = outcome(&job);
    assert!(matched, "{job}");
    assert_eq!(job["result"]["target"]["type"], "subject");
    assert_eq!(job["result"]["target"]["subject"], "obama");
    let best = job["result"]["target"]["face_id"].as_str().unwrap().to_owned();
    assert!(face_ids.contains(&best), "{job}");
    let mut per_face = Vec::new();
    for id in &face_ids {
        let job = verify(&app, "obama2.jpg", &[("face_id", id)], None).await;
        assert_eq!(job["result"]["target"]["collection"], "team", "{job}");
        assert_eq!(job["result"]["target"]["subject"], "obama");
        per_face.push(outcome(&job).1);
    }
    let max = per_face.iter().cloned().fold(f64::MIN, f64::max);
    assert!((to_subject - max).abs() < 1e-4, "subject {to_subject} vs faces {per_face:?}");
    let (matched, _) = outcome(&verify(&app, "biden.jpg", &[("subject", "obama"), ("collection", "team")], None).await);
    assert!(!matched);
    let job = verify(&app, "biden.jpg", &[("face_id", &face_ids[0])], None).await;
    assert!(!outcome(&job).0, "{job}");

    // The collection's threshold is the default; the request's wins over it.
    app.json(Method::PATCH, "/v1/collections/team", Some(json!({"threshold": 0.99}))).await;
    let job = verify(&app, "obama2.jpg", &[("subject", "obama"), ("collection", "team")], None).await;
    assert_eq!((job["result"]["threshold"].as_f64(), job["result"]["match"].as_bool()), (Some(0.99), Some(false)));
    let job = verify(&app, "obama2.jpg", &[("face_id", &face_ids[0])], None).await;
    assert_eq!(job["result"]["threshold"].as_f64(), Some(0.99), "a face's collection sets it too: {job}");
    let fields = [("subject", "obama"), ("collection", "team"), ("threshold", "0.3")];
    assert_eq!(verify(&app, "obama2.jpg", &fields, None).await["result"]["threshold"], 0.3);

    // Targets that do not exist fail the job with a stable code.
    for (fields, expected) in [
        (vec![("subject", "nobody"), ("collection", "team")], "subject_not_found"),
        (vec![("face_id", "01a1fd00-0000-7000-8000-000000000000")], "face_not_found"),
    ] {
        let job = verify(&app, "obama2.jpg", &fields, None).await;
        assert_eq!((job["status"].as_str(), job["error"]["code"].as_str()), (Some("failed"), Some(expected)), "{job}");
    }
    // A collection that does not exist is refused at once, whichever the target.
    let mut two_photos = facerec_testkit::form(Some(photo("obama2.jpg")), &[("collection", "elsewhere")]);
    two_photos = two_photos.part("image2", facerec_testkit::reqwest::multipart::Part::bytes(photo("obama.jpg")));
    let by_subject =
        facerec_testkit::form(Some(photo("obama2.jpg")), &[("subject", "obama"), ("collection", "elsewhere")]);
    for form in [by_subject, two_photos] {
        let resp = app.client.post(app.url("/v1/verify")).multipart(form).send().await.unwrap();
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "collection_not_found");
    }

    // A photo without a face fails like a register would.
    let no_face = facerec_testkit::faceless_image();
    let form = facerec_testkit::reqwest::multipart::Form::new()
        .part("image", facerec_testkit::reqwest::multipart::Part::bytes(no_face).file_name("x.jpg"))
        .text("face_id", face_ids[0].clone());
    let resp = app.client.post(app.url("/v1/verify")).multipart(form).send().await.unwrap();
    let id = resp.json::<Value>().await.unwrap()["job_id"].as_str().unwrap().to_owned();
    assert_eq!(app.wait_for_job(&id).await["error"]["code"], "no_face");

    // Exactly one target.
    for fields in [vec![], vec![("subject", "obama"), ("face_id", face_ids[0].as_str())]] {
        let resp = app.post_form("/v1/verify", Some(photo("obama2.jpg")), &fields).await;
        assert_eq!(resp.status(), 400);
        assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "invalid_verify_target");
    }
    let resp = app.post_form("/v1/verify", Some(photo("obama2.jpg")), &[("face_id", "nope")]).await;
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "invalid_face_id");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recognize_lists_each_subject_once_with_its_best_face() {
    let app = TestApp::spawn().await.unwrap();
    // One person with many faces must not crowd out the others.
    for _ in 0..6 {
        app.run_job("/v1/register", photo("obama.jpg"), &[("subject", "obama")]).await;
    }
    let best_obama = app.run_job("/v1/register", photo("obama2.jpg"), &[("subject", "obama")]).await;
    app.run_job("/v1/register", photo("biden.jpg"), &[("subject", "biden")]).await;
    let job = app.run_job("/v1/recognize", photo("obama2.jpg"), &[("top_k", "2")]).await;
    let matches = job["result"]["faces"][0]["matches"].as_array().unwrap();
    let subjects: Vec<&str> = matches.iter().map(|m| m["subject"].as_str().unwrap()).collect();
    assert_eq!(subjects, ["obama", "biden"], "{job}");
    assert_eq!(matches[0]["face_id"], best_obama["result"]["face_id"], "the subject's best face: {job}");
    assert!(matches[0]["similarity"].as_f64().unwrap() > 0.99);
    let job = app.run_job("/v1/recognize", photo("obama2.jpg"), &[("top_k", "1")]).await;
    assert_eq!(job["result"]["faces"][0]["matches"].as_array().unwrap().len(), 1);

    // The collection's threshold is recognize's default.
    app.json(Method::PATCH, "/v1/collections/default", Some(json!({"threshold": 0.999}))).await;
    let job = app.run_job("/v1/recognize", photo("obama3.jpg"), &[]).await;
    assert_eq!(job["result"]["threshold"].as_f64(), Some(0.999));
    let face = &job["result"]["faces"][0];
    assert!(face["best"].is_null() && face["matches"][0]["subject"] == "obama", "{job}");
    let job = app.run_job("/v1/recognize", photo("obama3.jpg"), &[("threshold", "0.4")]).await;
    assert_eq!(job["result"]["faces"][0]["best"]["subject"], "obama", "the request's threshold wins: {job}");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_bound_to_another_embedder_refuses_faces_of_ours() {
    let app = TestApp::spawn().await.unwrap();
    let (status, _) = app.json(Method::POST, "/v1/collections", Some(json!({"name": "arcface"}))).await;
    assert_eq!(status, 201);
    // As if its first face had come from another embedder.
    sqlx::query("UPDATE collections SET embedder = 'arcface_r100' WHERE name = 'arcface'")
        .execute(&app.db)
        .await
        .unwrap();
    let job = app.run_job("/v1/register", photo("obama.jpg"), &[("subject", "ada"), ("collection", "arcface")]).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "embedder_mismatch");
    assert!(job["error"]["message"].as_str().unwrap().contains("arcface_r100"), "{job}");
    assert_eq!((app.count("faces").await, app.count("subjects").await), (0, 0), "nothing half-written");
    app.stop().await.unwrap();
}
