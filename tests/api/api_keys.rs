//! API keys and tenant isolation (issue 13), against the real api, worker,
//! PostgreSQL and Redis: two tenants on `a-*` and `b-*` try every route on
//! each other's jobs, batches, collections, subjects and faces; read-only
//! keys; escalation; deletion and expiry; the 401 codes; the rate limit.

use std::io::{Cursor, Write};
use std::time::Duration;

use facerec_testkit::{Key, MASTER_KEY, TestApp, bearer, client_with_authorization, photo, wait_until};
use reqwest::Method;
use serde_json::{Value, json};

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

fn ids(page: &Value, list: &str, field: &str) -> Vec<String> {
    page[list].as_array().unwrap().iter().map(|x| x[field].as_str().unwrap().to_owned()).collect()
}

fn zip_of(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    zip.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
    zip.write_all(bytes).unwrap();
    zip.finish().unwrap().into_inner()
}

async fn post_batch(app: &TestApp, key: &Key, collection: &str) -> (u16, Value) {
    let archive = reqwest::multipart::Part::bytes(zip_of("carl/1.jpg", &photo("obama2.jpg"))).file_name("a.zip");
    let form = reqwest::multipart::Form::new().part("archive", archive).text("collection", collection.to_owned());
    let response = key.client.post(app.url("/v1/batches")).multipart(form).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

/// Submits as `key` and waits (as the master key) for the job to end.
async fn run_as(app: &TestApp, key: &Key, path: &str, image: &str, fields: &[(&str, &str)]) -> Value {
    let (status, accepted) = app.form_as(&key.client, path, Some(photo(image)), fields).await;
    assert_eq!(status, 202, "{accepted}");
    let job = app.wait_for_job(accepted["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_neither_see_nor_touch_each_others_data() {
    let app = TestApp::spawn_keyed(&|_| {}).await.unwrap();
    let a = app.create_key(&["*"], &["a-*"]).await;
    let b = app.create_key(&["*"], &["b-*"]).await;
    let a_too = app.create_key(&["*"], &["a-*"]).await;

    let register = run_as(&app, &a, "/v1/register", "obama.jpg", &[("subject", "ann"), ("collection", "a-1")]).await;
    let (reg_job, face) = (register["job_id"].as_str().unwrap(), register["result"]["face_id"].as_str().unwrap());
    run_as(&app, &b, "/v1/register", "biden.jpg", &[("subject", "bob"), ("collection", "b-1")]).await;
    let embed = run_as(&app, &a, "/v1/embed", "obama3.jpg", &[]).await;
    let embed_job = embed["job_id"].as_str().unwrap();
    let (status, batch) = post_batch(&app, &a, "a-1").await;
    assert_eq!(status, 202, "{batch}");
    let batch_id = batch["batch_id"].as_str().unwrap().to_owned();
    let path = format!("/v1/batches/{batch_id}");
    let describe = || format!("batch {batch_id} to end");
    wait_until(Duration::from_secs(120), describe, || async { app.get_json(&path).await.1["status"] != "running" })
        .await;
    // An audit record in a-*: the master key makes and deletes a collection there.
    app.json(Method::POST, "/v1/collections", Some(json!({"name": "a-gone"}))).await;
    assert_eq!(app.json(Method::DELETE, "/v1/collections/a-gone", None).await.0, 200);
    let faces_before = app.count("faces").await;

    // Every route that reads or changes a-* data answers B as if it did not exist.
    let (reg, emb, bat) =
        (format!("/v1/jobs/{reg_job}"), format!("/v1/jobs/{embed_job}"), format!("/v1/batches/{batch_id}"));
    let hidden = [
        (Method::GET, reg.clone(), None, "job_not_found"),
        (Method::GET, emb.clone(), None, "job_not_found"),
        (Method::POST, format!("{reg}/cancel"), None, "job_not_found"),
        (Method::GET, "/v1/collections/a-1".into(), None, "collection_not_found"),
        (Method::PATCH, "/v1/collections/a-1".into(), Some(json!({"threshold": 0.9})), "collection_not_found"),
        (Method::DELETE, "/v1/collections/a-1".into(), None, "collection_not_found"),
        (Method::GET, "/v1/collections/a-1/subjects".into(), None, "collection_not_found"),
        (Method::GET, "/v1/collections/a-1/subjects/ann".into(), None, "subject_not_found"),
        (Method::PATCH, "/v1/collections/a-1/subjects/ann".into(), Some(json!({"name": "x"})), "subject_not_found"),
        (Method::DELETE, "/v1/collections/a-1/subjects/ann".into(), None, "subject_not_found"),
        (Method::GET, "/v1/collections/a-1/faces".into(), None, "collection_not_found"),
        (Method::GET, format!("/v1/faces/{face}"), None, "face_not_found"),
        (Method::DELETE, format!("/v1/faces/{face}"), None, "face_not_found"),
        (Method::GET, bat.clone(), None, "batch_not_found"),
        (Method::GET, format!("{bat}/items"), None, "batch_not_found"),
        (Method::POST, format!("{bat}/cancel"), None, "batch_not_found"),
        (Method::GET, format!("/v1/keys/{}", a.id), None, "key_not_found"),
        (Method::PATCH, format!("/v1/keys/{}", a.id), Some(json!({"name": "mine"})), "key_not_found"),
        (Method::DELETE, format!("/v1/keys/{}", a.id), None, "key_not_found"),
    ];
    for (method, path, body, expected) in hidden {
        let (status, answer) = app.call(&b.client, method.clone(), &path, body).await;
        assert_eq!((status, code(&answer)), (404, expected), "B {method} {path}: {answer}");
    }
    // Submissions naming a-* collections are refused whether or not they exist.
    let forms: [(&str, Vec<(&str, &str)>); 4] = [
        ("/v1/register", vec![("subject", "eve"), ("collection", "a-1")]),
        ("/v1/register", vec![("subject", "eve"), ("collection", "a-new")]),
        ("/v1/recognize", vec![("collection", "a-1")]),
        ("/v1/verify", vec![("subject", "ann"), ("collection", "a-1")]),
    ];
    for (path, fields) in forms {
        let (status, answer) = app.form_as(&b.client, path, Some(photo("biden.jpg")), &fields).await;
        assert_eq!((status, code(&answer)), (403, "forbidden"), "B {path} {fields:?}: {answer}");
    }
    let (status, answer) = app.form_as(&b.client, "/v1/verify", Some(photo("biden.jpg")), &[("face_id", face)]).await;
    assert_eq!((status, code(&answer)), (404, "face_not_found"), "{answer}");
    let (status, answer) = app.call(&b.client, Method::POST, "/v1/collections", Some(json!({"name": "a-2"}))).await;
    assert_eq!((status, code(&answer)), (403, "forbidden"), "{answer}");
    assert_eq!(post_batch(&app, &b, "a-1").await.0, 403);

    // Listings leave a-* out.
    let (_, jobs) = app.call(&b.client, Method::GET, "/v1/jobs?limit=100", None).await;
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 1, "B sees only its register: {jobs}");
    // A collection outside B's patterns is not found, as on every other read of it.
    let (status, jobs) = app.call(&b.client, Method::GET, "/v1/jobs?collection=a-1", None).await;
    assert_eq!((status, code(&jobs)), (404, "collection_not_found"), "{jobs}");
    let (_, stats) = app.call(&b.client, Method::GET, "/v1/stats", None).await;
    assert_eq!(stats["succeeded"], 1, "{stats}");
    let (_, collections) = app.call(&b.client, Method::GET, "/v1/collections", None).await;
    assert_eq!(ids(&collections, "collections", "name"), ["b-1"]);
    let (_, audit) = app.call(&b.client, Method::GET, "/v1/audit", None).await;
    assert_eq!(audit["entries"], json!([]));
    let (_, keys) = app.call(&b.client, Method::GET, "/v1/keys", None).await;
    assert_eq!(ids(&keys, "keys", "id"), std::slice::from_ref(&b.id), "B manages only keys within its rights");

    // Nothing changed: A still sees all of it.
    assert_eq!(app.count("faces").await, faces_before);
    for path in
        [reg.as_str(), emb.as_str(), bat.as_str(), "/v1/collections/a-1/subjects/ann", &format!("/v1/faces/{face}")]
    {
        assert_eq!(app.call(&a.client, Method::GET, path, None).await.0, 200, "A {path}");
    }
    let (_, audit) = app.call(&a.client, Method::GET, "/v1/audit", None).await;
    assert_eq!(audit["entries"][0]["collection"], "a-gone");
    let (_, collections) = app.call(&a.client, Method::GET, "/v1/collections", None).await;
    assert_eq!(ids(&collections, "collections", "name"), ["a-1"]);

    // Another key on a-* sees the collection's jobs, but an embed job only its maker (and the master key).
    assert_eq!(app.call(&a_too.client, Method::GET, &reg, None).await.0, 200);
    assert_eq!(app.call(&a_too.client, Method::GET, &emb, None).await.0, 404);
    assert_eq!(app.get_job(embed_job).await.0, 200);

    // Jobs record their key, batch jobs included; idempotency keys are per API key.
    assert_eq!(app.job_column(reg_job, "api_key_id::text").await.as_deref(), Some(a.id.as_str()));
    let batch_keys: Vec<Option<uuid::Uuid>> =
        sqlx::query_scalar("SELECT api_key_id FROM jobs WHERE batch_id = $1::uuid")
            .bind(&batch_id)
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert!(!batch_keys.is_empty() && batch_keys.iter().all(|k| k.map(|k| k.to_string()) == Some(a.id.clone())));
    let same_key = |key: &Key, collection: &'static str| {
        let client = key.client.clone();
        let url = app.url("/v1/recognize");
        async move {
            let form = facerec_testkit::form(Some(photo("obama2.jpg")), &[("collection", collection)]);
            let response = client.post(url).header("Idempotency-Key", "same").multipart(form).send().await.unwrap();
            assert_eq!(response.status(), 202);
            response.json::<Value>().await.unwrap()["job_id"].as_str().unwrap().to_owned()
        }
    };
    assert_ne!(same_key(&a, "a-1").await, same_key(&b, "b-1").await);
    assert_eq!(same_key(&a, "a-1").await, same_key(&a, "a-1").await);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_key_recognizes_but_cannot_register_or_delete() {
    let app = TestApp::spawn_keyed(&|_| {}).await.unwrap();
    let job = app.run_job("/v1/register", photo("obama.jpg"), &[("subject", "ann"), ("collection", "a-1")]).await;
    let face = job["result"]["face_id"].as_str().unwrap().to_owned();
    let reader = app.create_key(&["recognize", "jobs.read"], &["a-*"]).await;

    let (status, accepted) =
        app.form_as(&reader.client, "/v1/recognize", Some(photo("obama2.jpg")), &[("collection", "a-1")]).await;
    assert_eq!(status, 202, "{accepted}");
    let job = app.wait_for_job(accepted["job_id"].as_str().unwrap()).await;
    assert_eq!(
        app.call(&reader.client, Method::GET, &format!("/v1/jobs/{}", job["job_id"].as_str().unwrap()), None).await.0,
        200
    );
    assert_eq!(job["result"]["faces"][0]["best"]["subject"], "ann", "{job}");

    let forms = [
        ("/v1/register", vec![("subject", "eve"), ("collection", "a-1")]),
        ("/v1/embed", vec![]),
        ("/v1/verify", vec![("subject", "ann"), ("collection", "a-1")]),
    ];
    for (path, fields) in forms {
        let (status, answer) = app.form_as(&reader.client, path, Some(photo("obama.jpg")), &fields).await;
        assert_eq!((status, code(&answer)), (403, "forbidden"), "{path}: {answer}");
    }
    let refused = [
        (Method::DELETE, format!("/v1/faces/{face}")),
        (Method::DELETE, "/v1/collections/a-1/subjects/ann".to_owned()),
        (Method::DELETE, "/v1/collections/a-1".to_owned()),
        (Method::GET, "/v1/collections/a-1".to_owned()),
        (Method::POST, format!("/v1/jobs/{}/cancel", job["job_id"].as_str().unwrap())),
        (Method::GET, "/v1/keys".to_owned()),
        (Method::POST, "/v1/keys".to_owned()),
    ];
    for (method, path) in refused {
        let (status, answer) = app.call(&reader.client, method.clone(), &path, Some(json!({}))).await;
        assert_eq!((status, code(&answer)), (403, "forbidden"), "{method} {path}: {answer}");
    }
    assert_eq!((app.count("faces").await, app.count("subjects").await), (1, 1));
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_never_grants_more_than_it_holds() {
    let app = TestApp::api_only_keyed(&|_| {}).await.unwrap();
    let admin = app.create_key(&["*"], &["a-*"]).await;
    let manager = app.create_key(&["keys.manage", "recognize", "jobs.read"], &["a-*"]).await;
    let ask =
        |actions: Value, collections: Value| json!({"name": "child", "actions": actions, "collections": collections});
    let create = |body: Value| app.call(&manager.client, Method::POST, "/v1/keys", Some(body));

    for (actions, collections) in [
        (json!(["register"]), json!(["a-*"])),
        (json!(["*"]), json!(["a-*"])),
        (json!(["recognize"]), json!(["*"])),
        (json!(["recognize"]), json!(["a*"])),
        (json!(["recognize"]), json!(["b-1"])),
    ] {
        let (status, answer) = create(ask(actions.clone(), collections.clone())).await;
        assert_eq!((status, code(&answer)), (403, "forbidden"), "{actions} on {collections}: {answer}");
    }
    let (status, child) = create(ask(json!(["recognize"]), json!(["a-team-*"]))).await;
    assert_eq!(status, 201, "{child}");
    let (status, peer) = create(ask(json!(["keys.manage", "recognize", "jobs.read"]), json!(["a-*"]))).await;
    assert_eq!(status, 201, "{peer}");
    assert_eq!(app.count("api_keys").await, 4);

    // It manages its own and lesser keys only, and cannot widen them.
    let (_, listed) = app.call(&manager.client, Method::GET, "/v1/keys", None).await;
    let listed = ids(&listed, "keys", "id");
    assert!(!listed.contains(&admin.id) && listed.contains(&manager.id) && listed.len() == 3, "{listed:?}");
    let child_path = format!("/v1/keys/{}", child["id"].as_str().unwrap());
    for widen in [json!({"actions": ["register"]}), json!({"collections": ["*"]})] {
        let (status, answer) = app.call(&manager.client, Method::PATCH, &child_path, Some(widen)).await;
        assert_eq!((status, code(&answer)), (403, "forbidden"), "{answer}");
    }
    let (status, renamed) = app.call(&manager.client, Method::PATCH, &child_path, Some(json!({"name": "kiosk"}))).await;
    assert_eq!((status, renamed["name"].as_str()), (200, Some("kiosk")));
    assert_eq!(app.call(&manager.client, Method::DELETE, &format!("/v1/keys/{}", admin.id), None).await.0, 404);

    // A key that expires cannot make one that outlives it.
    let soon = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let body =
        json!({"name": "m", "actions": ["keys.manage", "recognize"], "collections": ["a-*"], "expires_at": soon});
    let (_, expiring) = app.json(Method::POST, "/v1/keys", Some(body)).await;
    let expiring = facerec_testkit::key_of(&expiring);
    let later = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let sooner = (chrono::Utc::now() + chrono::Duration::minutes(30)).to_rfc3339();
    for (expires_at, expected) in [(json!(null), 403), (json!(later), 403), (json!(sooner), 201)] {
        let body = json!({"name": "c", "actions": ["recognize"], "collections": ["a-1"], "expires_at": expires_at});
        let (status, answer) = app.call(&expiring.client, Method::POST, "/v1/keys", Some(body)).await;
        assert_eq!(status, expected, "expires_at {expires_at}: {answer}");
    }
    // Bad grants are refused with their own codes.
    for (body, expected) in [
        (json!({"name": "x", "actions": ["fly"], "collections": ["*"]}), "invalid_actions"),
        (json!({"name": "x", "actions": [], "collections": ["*"]}), "invalid_actions"),
        (json!({"name": "x", "actions": ["*"], "collections": ["a b"]}), "invalid_collection_patterns"),
        (json!({"name": "", "actions": ["*"], "collections": ["*"]}), "invalid_key_name"),
        (
            json!({"name": "x", "actions": ["*"], "collections": ["*"], "expires_at": "2020-01-01T00:00:00Z"}),
            "invalid_expires_at",
        ),
        (json!({"name": "x", "actions": ["*"], "collections": ["*"], "admin": true}), "invalid_body"),
    ] {
        let (status, answer) = app.json(Method::POST, "/v1/keys", Some(body)).await;
        assert_eq!((status, code(&answer)), (400, expected), "{answer}");
    }
    app.stop().await.unwrap();
}

/// Each grant rule holds for `PATCH` as for `POST` (issue 29, item 8): a
/// key never gets rights beyond its granter's, and an expiring granter never
/// makes or shapes a key that outlives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_obeys_every_grant_rule_of_post() {
    fn key_body(actions: Value, expires_at: Value) -> Value {
        json!({"name": "k", "actions": actions, "collections": ["a-1"], "expires_at": expires_at})
    }
    let app = TestApp::api_only_keyed(&|_| {}).await.unwrap();
    let in_an_hour = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let in_two_hours = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let in_half_an_hour = (chrono::Utc::now() + chrono::Duration::minutes(30)).to_rfc3339();
    // Made by the master key: an expiring manager, a key without expiry and one ending before the manager.
    let manager =
        json!({"name": "m", "actions": ["keys.manage", "recognize"], "collections": ["a-*"], "expires_at": in_an_hour});
    let (status, manager) = app.json(Method::POST, "/v1/keys", Some(manager)).await;
    assert_eq!(status, 201, "{manager}");
    assert!(manager.get("warning").is_none(), "a keyed api gives no warning: {manager}");
    let manager = facerec_testkit::key_of(&manager);
    let (_, forever) = app.json(Method::POST, "/v1/keys", Some(key_body(json!(["recognize"]), json!(null)))).await;
    let forever = format!("/v1/keys/{}", forever["id"].as_str().unwrap());
    let (_, brief) =
        app.json(Method::POST, "/v1/keys", Some(key_body(json!(["recognize"]), json!(in_half_an_hour)))).await;
    let brief = format!("/v1/keys/{}", brief["id"].as_str().unwrap());

    // Rule 1, rights within the granter's: POST and PATCH refuse `register`.
    let (status, answer) = app
        .call(&manager.client, Method::POST, "/v1/keys", Some(key_body(json!(["register"]), json!(in_half_an_hour))))
        .await;
    assert_eq!((status, code(&answer)), (403, "forbidden"), "POST beyond its rights: {answer}");
    let (status, answer) =
        app.call(&manager.client, Method::PATCH, &brief, Some(json!({"actions": ["register"]}))).await;
    assert_eq!((status, code(&answer)), (403, "forbidden"), "PATCH beyond its rights: {answer}");

    // Rule 2, not outliving an expiring granter: POST refuses a key without expiry or ending later...
    for expires_at in [json!(null), json!(in_two_hours)] {
        let body = key_body(json!(["keys.manage"]), expires_at.clone());
        let (status, answer) = app.call(&manager.client, Method::POST, "/v1/keys", Some(body)).await;
        assert_eq!((status, code(&answer)), (403, "forbidden"), "POST expiring {expires_at}: {answer}");
    }
    // ...and PATCH refuses to give a key without expiry `keys.manage`, or any right it did not hold.
    for change in [json!({"actions": ["keys.manage", "recognize"]}), json!({"collections": ["a-*"]})] {
        let (status, answer) = app.call(&manager.client, Method::PATCH, &forever, Some(change.clone())).await;
        assert_eq!((status, code(&answer)), (403, "forbidden"), "PATCH {change} of a key that outlives it: {answer}");
    }
    let (_, unchanged) = app.json(Method::GET, &forever, None).await;
    assert_eq!(
        (unchanged["actions"].clone(), unchanged["collections"].clone()),
        (json!(["recognize"]), json!(["a-1"])),
        "{unchanged}"
    );
    // A change that hands out nothing (a rename, the same rights) escalates nothing: allowed.
    let (status, renamed) =
        app.call(&manager.client, Method::PATCH, &forever, Some(json!({"name": "x", "collections": ["a-1"]}))).await;
    assert_eq!((status, renamed["name"].clone()), (200, json!("x")), "{renamed}");
    // Within both rules, both work.
    let body = key_body(json!(["keys.manage"]), json!(in_half_an_hour));
    assert_eq!(app.call(&manager.client, Method::POST, "/v1/keys", Some(body)).await.0, 201);
    let change = json!({"actions": ["keys.manage", "recognize"]});
    let (status, changed) = app.call(&manager.client, Method::PATCH, &brief, Some(change)).await;
    assert_eq!((status, changed["actions"].clone()), (200, json!(["keys.manage", "recognize"])), "{changed}");
    // The master key is bound by neither.
    assert_eq!(app.json(Method::PATCH, &forever, Some(json!({"actions": ["*"]}))).await.0, 200);
    app.stop().await.unwrap();
}

/// The `201` that shows a key is never cached, and on an open api it says
/// that the key limits nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_key_is_not_cached_and_an_open_api_warns_that_keys_limit_nothing() {
    let app = TestApp::api_only().await.unwrap();
    let body = json!({"name": "early", "actions": ["recognize"], "collections": ["a-*"]});
    let response = app.client.post(app.url("/v1/keys")).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let created: Value = response.json().await.unwrap();
    let warning = created["warning"].as_str().unwrap_or_else(|| panic!("no warning: {created}"));
    assert!(warning.contains("FACEREC_MASTER_KEY") && warning.contains("limits nothing"), "{warning}");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_changed_and_expired_keys_take_effect_at_once() {
    let app = TestApp::api_only_keyed(&|_| {}).await.unwrap();
    let doomed = app.create_key(&["jobs.read"], &["*"]).await;
    assert_eq!(app.call(&doomed.client, Method::GET, "/v1/jobs", None).await.0, 200);
    assert_eq!(app.json(Method::DELETE, &format!("/v1/keys/{}", doomed.id), None).await.0, 204);
    let (status, answer) = app.call(&doomed.client, Method::GET, "/v1/jobs", None).await;
    assert_eq!((status, code(&answer)), (401, "invalid_api_key"), "{answer}");
    assert_eq!(app.json(Method::GET, &format!("/v1/keys/{}", doomed.id), None).await.0, 404);

    let changing = app.create_key(&["jobs.read"], &["*"]).await;
    assert_eq!(app.call(&changing.client, Method::GET, "/v1/stats", None).await.0, 200);
    let patch = Some(json!({"actions": ["recognize"]}));
    assert_eq!(app.json(Method::PATCH, &format!("/v1/keys/{}", changing.id), patch).await.0, 200);
    assert_eq!(app.call(&changing.client, Method::GET, "/v1/stats", None).await.0, 403);

    let expires_at = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let body =
        json!({"name": "brief", "actions": ["jobs.read"], "collections": ["*"], "expires_at": expires_at.to_rfc3339()});
    let (status, created) = app.json(Method::POST, "/v1/keys", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let brief = facerec_testkit::key_of(&created);
    assert_eq!(app.call(&brief.client, Method::GET, "/v1/jobs", None).await.0, 200);
    let left = (expires_at - chrono::Utc::now()).to_std().unwrap_or_default();
    // Waiting out the key's lifetime is the point: it ends at a known instant.
    tokio::time::sleep(left + Duration::from_millis(100)).await;
    let (status, answer) = app.call(&brief.client, Method::GET, "/v1/jobs", None).await;
    assert_eq!((status, code(&answer)), (401, "invalid_api_key"), "{answer}");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_wrong_and_malformed_keys_answer_their_codes_and_probes_stay_open() {
    let app = TestApp::api_only_keyed(&|s| {
        s.key_rate_per_sec = 1.0;
        s.key_rate_burst = Some(2.0);
    })
    .await
    .unwrap();
    let anonymous = reqwest::Client::new();
    let response = anonymous.get(app.url("/v1/jobs")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"facerec\"");
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), "missing_api_key", "{body}");
    assert!(body["error"]["request_id"].as_str().is_some_and(|id| !id.is_empty()));

    let wrong = format!("frk_{}", "0".repeat(64));
    for header in [
        format!("Bearer {wrong}"),
        "Bearer not-a-key".into(),
        format!("Basic {MASTER_KEY}"),
        "Bearer ".into(),
        MASTER_KEY.into(),
    ] {
        let (status, answer) = app.call(&client_with_authorization(&header), Method::GET, "/v1/jobs", None).await;
        assert_eq!((status, code(&answer)), (401, "invalid_api_key"), "{header:?}: {answer}");
        assert!(!answer.to_string().contains(MASTER_KEY) && !answer.to_string().contains(&wrong), "the key is echoed");
    }
    // Two Authorization headers: none is chosen, whichever comes first (issue 29, item 13).
    let wrong_then_master = [format!("Bearer {wrong}"), format!("Bearer {MASTER_KEY}")];
    for pair in [wrong_then_master.clone(), [wrong_then_master[1].clone(), wrong_then_master[0].clone()]] {
        for path in ["/v1/jobs", "/metrics", "/healthz"] {
            let request =
                anonymous.get(app.url(path)).header("authorization", &pair[0]).header("authorization", &pair[1]);
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let answer: Value = response.json().await.unwrap();
            assert_eq!((status, code(&answer)), (400, "ambiguous_credentials"), "{path} {pair:?}: {answer}");
            assert!(!answer.to_string().contains(MASTER_KEY), "the key is echoed");
        }
    }
    // The scheme is case-insensitive (RFC 7235).
    assert_eq!(
        app.call(&client_with_authorization(&format!("bearer {MASTER_KEY}")), Method::GET, "/v1/jobs", None).await.0,
        200
    );
    for open in ["/healthz", "/readyz", "/openapi.json", "/docs/"] {
        assert_eq!(anonymous.get(app.url(open)).send().await.unwrap().status(), 200, "{open}");
    }
    assert_eq!(anonymous.get(app.url("/v1/no-such-route")).send().await.unwrap().status(), 404);

    // The rate limit: a burst of 2, then 1 a second, per key; the master key is not limited.
    let limited = app.create_key(&["jobs.read"], &["*"]).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let response = limited.client.get(app.url("/v1/stats")).send().await.unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            assert_eq!(response.headers()["retry-after"], "1");
            assert_eq!(code(&response.json().await.unwrap()), "rate_limited");
        }
    }
    assert_eq!(statuses, [200, 200, 429]);
    let other = bearer(&app.create_key(&["jobs.read"], &["*"]).await.key);
    assert_eq!(app.call(&other, Method::GET, "/v1/stats", None).await.0, 200, "each key has its own bucket");
    for _ in 0..5 {
        assert_eq!(app.get_json("/v1/stats").await.0, 200);
    }
    // Waiting out the rate window is the point: the bucket refills after a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(app.call(&limited.client, Method::GET, "/v1/stats", None).await.0, 200, "refilled");
    app.stop().await.unwrap();
}
