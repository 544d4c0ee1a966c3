//! Register and recognize real faces end to end: api → Redis → worker → PostgreSQL.

use facerec_testkit::reqwest::Method;
use facerec_testkit::serde_json::Value;
use facerec_testkit::{TestApp, faceless_image, photo, side_by_side};

fn similarity(face: &Value) -> f64 {
    face["matches"][0]["similarity"].as_f64().expect("a match with a similarity")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_person_is_recognized_in_other_photos_and_others_are_not() {
    let app = TestApp::spawn().await.unwrap();
    let job = app.run_job("/v1/register", photo("obama.jpg"), &[("subject", "obama"), ("collection", "people")]).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["kind"], "register");
    assert_eq!(job["attempts"], 1);
    assert!(job["error"].is_null());
    let r = &job["result"];
    assert_eq!(r["subject"], "obama");
    assert_eq!(r["collection"], "people");
    assert_eq!(r["model"], "yunet_2023mar+sface_2021dec");
    assert_eq!(r["landmarks"].as_array().unwrap().len(), 5);
    // The face is in the upper middle of the 910x1137 portrait.
    let (x, w) = (r["bbox"]["x"].as_f64().unwrap(), r["bbox"]["width"].as_f64().unwrap());
    assert!(x > 200.0 && x + w < 750.0 && w > 150.0, "implausible box {}", r["bbox"]);
    assert!(r["detection_score"].as_f64().unwrap() > 0.8);
    let face_id = r["face_id"].as_str().unwrap().to_owned();
    assert_eq!(app.count("faces").await, 1);
    assert_eq!(app.count("job_inputs").await, 0, "the upload must be deleted when the job ends");

    for same in ["obama2.jpg", "obama3.jpg"] {
        let job = app.run_job("/v1/recognize", photo(same), &[("collection", "people")]).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        let faces = job["result"]["faces"].as_array().unwrap();
        assert_eq!(faces.len(), 1, "{same}: {job}");
        assert_eq!(faces[0]["best"]["subject"], "obama", "{same} not recognized: {job}");
        assert_eq!(faces[0]["matches"][0]["face_id"], face_id.as_str());
        assert!(similarity(&faces[0]) > 0.5, "{same}: {}", similarity(&faces[0]));
    }

    let job = app.run_job("/v1/recognize", photo("biden.jpg"), &[("collection", "people")]).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let face = &job["result"]["faces"][0];
    assert!(face["best"].is_null(), "biden matched obama: {job}");
    let threshold = job["result"]["threshold"].as_f64().unwrap();
    assert!(similarity(face) < threshold, "{}", similarity(face));

    // An empty collection holds nobody: no matches at all.
    app.create_collection("elsewhere").await;
    let job = app.run_job("/v1/recognize", photo("obama2.jpg"), &[("collection", "elsewhere")]).await;
    assert_eq!(job["result"]["faces"][0]["matches"], Value::Array(vec![]));
    assert!(job["result"]["faces"][0]["best"].is_null());

    // A collection that does not exist (a typo) is refused, not searched: its
    // "nobody" would read as "this person is unknown".
    let jobs = app.count("jobs").await;
    let resp = app.post_form("/v1/recognize", Some(photo("obama2.jpg")), &[("collection", "peopel")]).await;
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "collection_not_found", "{body}");
    assert_eq!(app.count("jobs").await, jobs, "nothing is recorded");
    assert_eq!(app.get_json("/v1/collections/peopel").await.0, 404, "nor created");
    app.stop().await.unwrap();
}

/// A collection deleted between the submission and the search fails the job
/// with a stable code; it does not succeed with nobody found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_deleted_after_submission_fails_the_job_instead_of_finding_nobody() {
    let mut app = TestApp::spawn().await.unwrap();
    let job = app.run_job("/v1/register", photo("obama.jpg"), &[("subject", "obama"), ("collection", "people")]).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    // No worker while the collection goes: the jobs wait in the queue.
    app.shut_down_worker().await.unwrap().unwrap();
    let recognize = app.submit("/v1/recognize", photo("obama2.jpg"), &[("collection", "people")]).await;
    let verify = app.submit("/v1/verify", photo("obama2.jpg"), &[("collection", "people"), ("subject", "obama")]).await;
    let (status, _) = app.json(Method::DELETE, "/v1/collections/people", None).await;
    assert_eq!(status, 200);
    app.start_worker(&|_| {}).await.unwrap();
    for id in [recognize, verify] {
        let job = app.wait_for_job(&id).await;
        assert_eq!(
            (job["status"].as_str(), job["error"]["code"].as_str()),
            (Some("failed"), Some("collection_not_found")),
            "{job}"
        );
        assert!(job["result"].is_null(), "{job}");
    }
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recognize_reports_every_face_largest_first_with_top_k_and_threshold() {
    let app = TestApp::spawn().await.unwrap();
    for (file, subject) in [("obama.jpg", "obama"), ("biden.jpg", "biden")] {
        let job = app.run_job("/v1/register", photo(file), &[("subject", subject)]).await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    let two = side_by_side(&photo("obama2.jpg"), &photo("biden.jpg")).unwrap();
    let job = app.run_job("/v1/recognize", two.clone(), &[("top_k", "1")]).await;
    let faces = job["result"]["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 2, "{job}");
    let area = |f: &Value| f["bbox"]["width"].as_f64().unwrap() * f["bbox"]["height"].as_f64().unwrap();
    assert!(area(&faces[0]) >= area(&faces[1]));
    let mut best: Vec<&str> = faces.iter().map(|f| f["best"]["subject"].as_str().unwrap()).collect();
    best.sort();
    assert_eq!(best, ["biden", "obama"]);
    assert!(faces.iter().all(|f| f["matches"].as_array().unwrap().len() == 1), "top_k=1: {job}");

    // A threshold above any similarity: matches are listed, none is `best`.
    let job = app.run_job("/v1/recognize", two, &[("threshold", "0.999")]).await;
    let faces = job["result"]["faces"].as_array().unwrap();
    assert!(faces.iter().all(|f| f["best"].is_null() && f["matches"].as_array().unwrap().len() == 2), "{job}");
    let sims: Vec<f64> =
        faces[0]["matches"].as_array().unwrap().iter().map(|m| m["similarity"].as_f64().unwrap()).collect();
    assert!(sims[0] >= sims[1], "matches not sorted: {sims:?}");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_fails_cleanly_without_exactly_one_face() {
    let app = TestApp::spawn().await.unwrap();
    let job = app.run_job("/v1/register", faceless_image(), &[("subject", "nobody")]).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "no_face");
    assert!(job["result"].is_null());

    let two = side_by_side(&photo("obama.jpg"), &photo("biden.jpg")).unwrap();
    let job = app.run_job("/v1/register", two, &[("subject", "two people")]).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "multiple_faces");
    assert!(job["error"]["message"].as_str().unwrap().contains("2 faces"), "{job}");

    // A recognize on a face-less photo is not an error: it finds no one.
    let job = app.run_job("/v1/recognize", faceless_image(), &[]).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["faces"], Value::Array(vec![]));

    assert_eq!(app.count("faces").await, 0, "a failed register must store nothing");
    assert_eq!(app.count("subjects").await, 0);
    assert_eq!(app.count("job_inputs").await, 0);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unicode_subjects_round_trip_and_repeat_registrations_share_a_subject() {
    let app = TestApp::spawn().await.unwrap();
    let name = "Barack Hussein Obama II — 第44任总统 🇺🇸";
    for file in ["obama.jpg", "obama3.jpg"] {
        let job = app.run_job("/v1/register", photo(file), &[("subject", name)]).await;
        assert_eq!(job["result"]["subject"], name, "{job}");
    }
    assert_eq!(app.count("subjects").await, 1);
    assert_eq!(app.count("faces").await, 2);
    let job = app.run_job("/v1/recognize", photo("obama2.jpg"), &[]).await;
    let face = &job["result"]["faces"][0];
    assert_eq!(face["best"]["subject"], name);
    assert_eq!(face["matches"].as_array().unwrap().len(), 1, "a subject is listed once, however many faces: {job}");
    app.stop().await.unwrap();
}

/// The in-memory index large collections are searched through, used here for
/// every collection: the worker's recognize finds the registered person, and
/// never again once the person is deleted through the api.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recognize_through_the_in_memory_index_finds_people_and_forgets_the_deleted() {
    let app = TestApp::spawn_with(&|_| {}, &|worker| {
        worker.exact_search_max_faces = 0;
        worker.search_in_memory = true;
    })
    .await
    .unwrap();
    for (photo_name, subject) in [("obama.jpg", "obama"), ("biden.jpg", "biden")] {
        let job =
            app.run_job("/v1/register", photo(photo_name), &[("subject", subject), ("collection", "people")]).await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    let job = app.run_job("/v1/recognize", photo("obama2.jpg"), &[("collection", "people")]).await;
    let face = &job["result"]["faces"][0];
    assert_eq!(face["best"]["subject"], "obama", "{job}");
    assert_eq!(face["matches"].as_array().unwrap().len(), 2, "both people, best first: {job}");
    assert!(similarity(face) > 0.5, "{job}");

    let (status, _) = app.json(Method::DELETE, "/v1/collections/people/subjects/obama", None).await;
    assert_eq!(status, 200);
    let job = app.run_job("/v1/recognize", photo("obama2.jpg"), &[("collection", "people")]).await;
    let matches = job["result"]["faces"][0]["matches"].as_array().unwrap().clone();
    assert_eq!(matches.len(), 1, "{job}");
    assert_eq!(matches[0]["subject"], "biden");
    assert!(job["result"]["faces"][0]["best"].is_null(), "{job}");
    app.stop().await.unwrap();
}
