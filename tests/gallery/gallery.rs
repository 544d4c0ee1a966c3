//! The gallery as a product, end to end: collections, subjects (names with
//! `/` and Unicode in the path), faces, pagination, 404s and 409s, deletion
//! that forgets (also while a register for the subject is queued or being
//! stored), consent, the audit log, and recognize listing each person once.

use facerec_testkit::reqwest::Method;
use facerec_testkit::serde_json::{Value, json};
use facerec_testkit::{TestApp, path_segment, photo};

async fn register(app: &TestApp, file: &str, subject: &str, collection: &str) -> Value {
    let job = app.run_job("/v1/register", photo(file), &[("subject", subject), ("collection", collection)]).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    job
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// The collection of each audit record `GET /v1/audit?{query}` lists.
async fn audited(app: &TestApp, query: &str) -> Vec<String> {
    let (status, page) = app.get_json(&format!("/v1/audit?{query}")).await;
    assert_eq!(status, 200, "{query}: {page}");
    page["entries"].as_array().unwrap().iter().map(|e| e["collection"].as_str().unwrap().to_owned()).collect()
}

fn names(page: &Value, list: &str) -> Vec<String> {
    page[list].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_are_created_listed_paged_updated_and_deleted() {
    let app = TestApp::spawn().await.unwrap();
    let (status, created) = app
        .json(Method::POST, "/v1/collections", Some(json!({"name": "staff", "description": "HQ", "threshold": 0.5})))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "staff");
    assert_eq!(created["description"], "HQ");
    assert_eq!(created["threshold"], 0.5);
    assert_eq!((created["subject_count"].as_i64(), created["face_count"].as_i64()), (Some(0), Some(0)));
    assert!(created["embedder"].is_null() && created["created_at"].is_string(), "{created}");
    assert_eq!(created["require_consent"], false);

    let (status, again) = app.json(Method::POST, "/v1/collections", Some(json!({"name": "staff"}))).await;
    assert_eq!((status, code(&again)), (409, "collection_exists"));
    for (body, expected) in [
        (json!({"name": "a b"}), "invalid_collection"),
        (json!({"name": "x", "threshold": 2}), "invalid_threshold"),
        (json!({"name": "x", "description": "d".repeat(1001)}), "invalid_description"),
        (json!({"name": "x", "description": "nul \u{0} inside"}), "invalid_description"),
        (json!({"name": "x", "colour": "red"}), "invalid_body"),
        (json!({"description": "no name"}), "invalid_body"),
    ] {
        let (status, answer) = app.json(Method::POST, "/v1/collections", Some(body.clone())).await;
        assert_eq!((status, code(&answer)), (400, expected), "{body}: {answer}");
    }

    // A register creates its collection, binds it to the embedder, counts the face.
    register(&app, "obama.jpg", "obama", "visitors").await;
    let (status, visitors) = app.get_json("/v1/collections/visitors").await;
    assert_eq!(status, 200, "{visitors}");
    assert_eq!(visitors["embedder"], "sface_2021dec");
    assert_eq!((visitors["subject_count"].as_i64(), visitors["face_count"].as_i64()), (Some(1), Some(1)));

    for name in ["c1", "c2", "c3"] {
        assert_eq!(app.json(Method::POST, "/v1/collections", Some(json!({"name": name}))).await.0, 201);
    }
    // Five collections in pages of two, by name, with no repeats.
    let mut seen = Vec::new();
    let mut path = "/v1/collections?limit=2".to_owned();
    loop {
        let (status, page) = app.get_json(&path).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(names(&page, "collections"));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/collections?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ["c1", "c2", "c3", "staff", "visitors"]);
    assert_eq!(code(&app.get_json("/v1/collections?limit=0").await.1), "invalid_limit");
    assert_eq!(code(&app.get_json("/v1/collections?cursor=zz").await.1), "invalid_cursor");

    let (status, patched) =
        app.json(Method::PATCH, "/v1/collections/staff", Some(json!({"description": null, "threshold": 0.6}))).await;
    assert_eq!(status, 200, "{patched}");
    assert!(patched["description"].is_null(), "null clears: {patched}");
    assert_eq!(patched["threshold"], 0.6);
    let (status, patched) = app.json(Method::PATCH, "/v1/collections/staff", Some(json!({}))).await;
    assert_eq!((status, patched["threshold"].as_f64()), (200, Some(0.6)), "absent keeps: {patched}");

    for (method, path) in [
        (Method::GET, "/v1/collections/nobody"),
        (Method::PATCH, "/v1/collections/nobody"),
        (Method::DELETE, "/v1/collections/nobody"),
        (Method::GET, "/v1/collections/nobody/subjects"),
        (Method::GET, "/v1/collections/nobody/faces"),
        (Method::GET, "/v1/audit?collection=nobody"),
    ] {
        let body = (method == Method::PATCH).then(|| json!({"threshold": 0.1}));
        let (status, answer) = app.json(method.clone(), path, body).await;
        assert_eq!((status, code(&answer)), (404, "collection_not_found"), "{method} {path}");
    }

    // Deleting a collection removes its subjects and faces, and says so.
    let (status, deleted) = app.json(Method::DELETE, "/v1/collections/visitors", None).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["action"], "collection_deleted");
    assert_eq!((deleted["subjects_deleted"].as_i64(), deleted["faces_deleted"].as_i64()), (Some(1), Some(1)));
    assert_eq!(app.get_json("/v1/collections/visitors").await.0, 404);
    assert_eq!((app.count("faces").await, app.count("subjects").await), (0, 0));

    // The audit log by collection: a deleted one's record stays readable, one
    // with no deletion has none, and the filter is applied (it once was not).
    assert_eq!(app.json(Method::DELETE, "/v1/collections/c1", None).await.0, 200);
    assert_eq!(audited(&app, "collection=visitors").await, ["visitors"]);
    assert_eq!(audited(&app, "collection=c1").await, ["c1"]);
    assert_eq!(audited(&app, "collection=staff").await, Vec::<String>::new());
    assert_eq!(audited(&app, "").await, ["c1", "visitors"]);
    let (status, answer) = app.get_json("/v1/audit?collection=a%20b").await;
    assert_eq!((status, code(&answer)), (400, "invalid_collection"));
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subjects_and_faces_are_listed_inspected_renamed_and_forgotten() {
    let app = TestApp::spawn().await.unwrap();
    let slashed = "Obama / 奥巴马 🇺🇸";
    let first = register(&app, "obama.jpg", slashed, "people").await;
    let second = register(&app, "obama3.jpg", slashed, "people").await;
    register(&app, "biden.jpg", "biden", "people").await;
    for i in 0..3 {
        register(&app, "obama2.jpg", &format!("extra-{i}"), "people").await;
    }
    let subject_path = format!("/v1/collections/people/subjects/{}", path_segment(slashed));

    let (status, subject) = app.get_json(&subject_path).await;
    assert_eq!(status, 200, "{subject}");
    assert_eq!(subject["name"], slashed);
    assert_eq!(subject["collection"], "people");
    assert_eq!(subject["face_count"], 2);
    let faces = subject["faces"].as_array().unwrap();
    assert_eq!(faces[0]["face_id"], first["result"]["face_id"]);
    assert_eq!(faces[1]["face_id"], second["result"]["face_id"]);
    assert_eq!(faces[0]["landmarks"], first["result"]["landmarks"]);
    assert_eq!(faces[0]["bbox"], first["result"]["bbox"]);
    assert_eq!(faces[0]["detector"], "yunet_2023mar");
    assert_eq!(faces[0]["source_job_id"], first["job_id"]);
    assert!(faces[0].get("embedding").is_none(), "embeddings are never returned");
    assert!(subject["consent"].is_null());

    // Subjects by name in pages, and by prefix.
    let (_, page) = app.get_json("/v1/collections/people/subjects?limit=4").await;
    assert_eq!(names(&page, "subjects"), ["Obama / 奥巴马 🇺🇸", "biden", "extra-0", "extra-1"]);
    let cursor = page["next_cursor"].as_str().expect("a next page").to_owned();
    let (_, page) = app.get_json(&format!("/v1/collections/people/subjects?limit=4&cursor={cursor}")).await;
    assert_eq!(names(&page, "subjects"), ["extra-2"]);
    assert!(page["next_cursor"].is_null());
    let (_, page) = app.get_json("/v1/collections/people/subjects?prefix=extra-").await;
    assert_eq!(names(&page, "subjects"), ["extra-0", "extra-1", "extra-2"]);
    assert_eq!(page["subjects"][0]["face_count"], 1);
    let (_, page) = app.get_json(&format!("/v1/collections/people/subjects?prefix={}", path_segment("Obama /"))).await;
    assert_eq!(names(&page, "subjects"), [slashed]);
    // PostgreSQL text holds no NUL: refused, not a 500 (found by schemathesis).
    for (query, expected) in [("prefix=a%00b", "invalid_prefix"), ("cursor=6100", "invalid_cursor")] {
        let (status, answer) = app.get_json(&format!("/v1/collections/people/subjects?{query}")).await;
        assert_eq!((status, code(&answer)), (400, expected), "{query}: {answer}");
    }

    // Faces of the collection in pages; of one subject.
    let (_, page) = app.get_json("/v1/collections/people/faces?limit=4").await;
    assert_eq!(page["faces"].as_array().unwrap().len(), 4);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, rest) = app.get_json(&format!("/v1/collections/people/faces?limit=4&cursor={cursor}")).await;
    assert_eq!(rest["faces"].as_array().unwrap().len(), 2);
    let (_, mine) = app.get_json(&format!("/v1/collections/people/faces?subject={}", path_segment(slashed))).await;
    assert_eq!(mine["faces"].as_array().unwrap().len(), 2, "{mine}");

    let face_id = first["result"]["face_id"].as_str().unwrap();
    let (status, face) = app.get_json(&format!("/v1/faces/{face_id}")).await;
    assert_eq!(status, 200, "{face}");
    assert_eq!((face["subject"].as_str(), face["collection"].as_str()), (Some(slashed), Some("people")));
    assert_eq!(face["quality"], first["result"]["quality"]);
    let (status, answer) = app.get_json("/v1/faces/01a1fd00-0000-7000-8000-000000000000").await;
    assert_eq!((status, code(&answer)), (404, "face_not_found"));
    assert_eq!(code(&app.get_json("/v1/faces/not-a-uuid").await.1), "invalid_face_id");
    let (status, answer) = app.get_json("/v1/collections/people/subjects/nobody").await;
    assert_eq!((status, code(&answer)), (404, "subject_not_found"));

    // Rename: a clash is refused, a free name is taken with the faces.
    let (status, answer) = app.json(Method::PATCH, &subject_path, Some(json!({"name": "biden"}))).await;
    assert_eq!((status, code(&answer)), (409, "subject_exists"));
    let (status, renamed) = app.json(Method::PATCH, &subject_path, Some(json!({"name": "Barack"}))).await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!((renamed["name"].as_str(), renamed["face_count"].as_i64()), (Some("Barack"), Some(2)));
    assert_eq!(app.get_json(&subject_path).await.0, 404);
    let job = app.run_job("/v1/recognize", photo("obama2.jpg"), &[("collection", "people"), ("top_k", "10")]).await;
    let best = job["result"]["faces"][0]["best"]["subject"].as_str().unwrap();
    assert!(best.starts_with("extra-"), "the identical photo first: {job}");
    let barack = job["result"]["faces"][0]["matches"].as_array().unwrap().iter().find(|m| m["subject"] == "Barack");
    assert!(barack.is_some(), "the renamed subject is found: {job}");

    // A subject whose last face is deleted stays, with 0 faces.
    let (status, gone) = app.json(Method::DELETE, "/v1/collections/people/subjects/biden", None).await;
    assert_eq!(status, 200, "{gone}");
    let (status, biden) = app.get_json("/v1/collections/people/subjects/extra-1").await;
    assert_eq!(status, 200);
    let extra_face = biden["faces"][0]["face_id"].as_str().unwrap().to_owned();
    let (status, deleted) = app.json(Method::DELETE, &format!("/v1/faces/{extra_face}"), None).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!((deleted["action"].as_str(), deleted["faces_deleted"].as_i64()), (Some("face_deleted"), Some(1)));
    assert_eq!(app.json(Method::DELETE, &format!("/v1/faces/{extra_face}"), None).await.0, 404);
    let (_, emptied) = app.get_json("/v1/collections/people/subjects/extra-1").await;
    assert_eq!((emptied["face_count"].as_i64(), emptied["faces"].as_array().map(Vec::len)), (Some(0), Some(0)));

    // Deleting a subject forgets it: no vector left, no later match.
    let (status, deleted) = app.json(Method::DELETE, "/v1/collections/people/subjects/Barack", None).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!((deleted["subjects_deleted"].as_i64(), deleted["faces_deleted"].as_i64()), (Some(1), Some(2)));
    let (status, answer) = app.json(Method::DELETE, "/v1/collections/people/subjects/Barack", None).await;
    assert_eq!((status, code(&answer)), (404, "subject_not_found"));
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM faces f JOIN subjects s ON s.id = f.subject_id WHERE s.name = 'Barack'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(left, 0);
    let job = app.run_job("/v1/recognize", photo("obama.jpg"), &[("collection", "people"), ("top_k", "100")]).await;
    let matched: Vec<&str> = job["result"]["faces"][0]["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    assert!(!matched.contains(&"Barack"), "a deleted subject matched: {job}");
    let (_, people) = app.get_json("/v1/collections/people").await;
    assert_eq!((people["subject_count"].as_i64(), people["face_count"].as_i64()), (Some(3), Some(2)), "{people}");

    // Every deletion is on record, newest first, in pages.
    let (status, audit) = app.get_json("/v1/audit?limit=2").await;
    assert_eq!(status, 200, "{audit}");
    let actions: Vec<&str> =
        audit["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["subject_deleted", "face_deleted"]);
    assert_eq!(audit["entries"][0]["subject"], "Barack");
    let cursor = audit["next_cursor"].as_str().unwrap().to_owned();
    let (_, older) = app.get_json(&format!("/v1/audit?limit=2&cursor={cursor}")).await;
    assert_eq!(older["entries"][0]["subject"], "biden");
    assert!(older["next_cursor"].is_null(), "{older}");
    app.stop().await.unwrap();
}
