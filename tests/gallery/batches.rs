//! Archive batches (`POST /v1/batches`): zip and tar.gz, `<subject>/<image>`
//! and manifest layouts, counts and items, cancel, the one webhook, a batch
//! larger than the queue limit, and every hostile archive refused with a 4xx
//! (nothing kept) or reported as a skipped item.

use std::io::{Cursor, Write};
use std::time::{Duration, Instant};

use facerec_testkit::reqwest;
use facerec_testkit::reqwest::multipart::{Form, Part};
use facerec_testkit::serde_json::Value;
use facerec_testkit::{TestApp, WebhookReceiver, faceless_image, photo, variants, wait_until};
use zip::write::SimpleFileOptions;

/// A zip of `(name, bytes)` entries (deflated).
fn zip_of(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        zip.start_file(*name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// A tar of `(name, bytes)` entries; names are written raw (absolute and
/// `..` names included, as a hostile tool would).
fn tar_of(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append(&header, bytes.as_slice()).unwrap();
    }
    tar.into_inner().unwrap()
}

/// A tar whose one entry's name travels in a GNU long-name record (as any
/// name over 100 bytes does), written raw.
fn tar_with_long_name(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut long = tar::Header::new_gnu();
    long.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
    long.set_entry_type(tar::EntryType::GNULongName);
    long.set_size(name.len() as u64 + 1);
    long.set_cksum();
    tar.append(&long, [name.as_bytes(), b"\0"].concat().as_slice()).unwrap();
    let mut header = tar::Header::new_gnu();
    header.as_old_mut().name[..5].copy_from_slice(b"x.jpg");
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append(&header, bytes).unwrap();
    tar.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

async fn post_batch(app: &TestApp, archive: Vec<u8>, fields: &[(&str, &str)]) -> (u16, Value) {
    let mut form = Form::new().part("archive", Part::bytes(archive).file_name("photos.zip"));
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    let resp = app.client.post(app.url("/v1/batches")).multipart(form).send().await.unwrap();
    let status = resp.status().as_u16();
    if status == 202 {
        let id = resp.headers()["location"].to_str().unwrap().rsplit('/').next().unwrap().to_owned();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["batch_id"], id.as_str());
        return (status, body);
    }
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn wait_for_batch(app: &TestApp, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, batch) = app.get_json(&format!("/v1/batches/{id}")).await;
        assert_eq!(status, 200, "{batch}");
        if batch["status"] != "running" {
            return batch;
        }
        assert!(Instant::now() < deadline, "batch {id} still running: {batch}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn items(app: &TestApp, id: &str, query: &str) -> Vec<Value> {
    let (status, page) = app.get_json(&format!("/v1/batches/{id}/items?{query}")).await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_zip_batch_registers_its_images_reports_the_rest_and_calls_back_once() {
    let (receiver, url) = WebhookReceiver::start(0).await;
    let app = TestApp::spawn_with(&|_| {}, &|w| w.webhook_secret = Some("s3cret".into())).await.unwrap();
    let archive = zip_of(&[
        ("Barack Obama/1.jpg", photo("obama.jpg")),
        ("Barack Obama/2.jpg", photo("obama2.jpg")),
        ("Joe Biden/1.jpg", photo("biden.jpg")),
        ("Joe Biden/nobody.jpg", faceless_image()),
        ("Joe Biden/notes.txt", b"not an image".to_vec()),
        ("Joe Biden/inner.zip", zip_of(&[("x/1.jpg", photo("obama3.jpg"))])),
        ("loose.jpg", photo("obama3.jpg")),
        ("__MACOSX/Joe Biden/._1.jpg", b"resource fork".to_vec()),
    ]);
    let (status, batch) = post_batch(&app, archive, &[("collection", "staff"), ("callback_url", &url)]).await;
    assert_eq!(status, 202, "{batch}");
    assert_eq!(batch["total"], 7, "directories and resource forks are not items: {batch}");
    let id = batch["batch_id"].as_str().unwrap().to_owned();
    let done = wait_for_batch(&app, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let counts = &done["counts"];
    assert_eq!(
        [&counts["succeeded"], &counts["failed"], &counts["skipped"], &counts["queued"], &counts["processing"]],
        [3, 1, 3, 0, 0],
        "{done}"
    );
    assert!(done["finished_at"].is_string());
    assert_eq!(app.count("faces").await, 3);
    let (_, staff) = app.get_json("/v1/collections/staff").await;
    assert_eq!(staff["subject_count"], 2, "{staff}");

    let failed = items(&app, &id, "status=failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(
        (failed[0]["path"].as_str(), failed[0]["error"]["code"].as_str()),
        (Some("Joe Biden/nobody.jpg"), Some("no_face"))
    );
    let skipped: Vec<_> = items(&app, &id, "status=skipped").await.iter().map(|i| i["error"]["code"].clone()).collect();
    assert_eq!(skipped, ["unsupported_media_type", "nested_archive", "not_in_subject_folder"]);
    // Paging in archive order.
    let (_, first) = app.get_json(&format!("/v1/batches/{id}/items?limit=4")).await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = items(&app, &id, &format!("limit=4&cursor={cursor}")).await;
    assert_eq!(first["items"].as_array().unwrap().len() + rest.len(), 7);
    assert_eq!(first["items"][0]["path"], "Barack Obama/1.jpg");
    assert!(first["items"][0]["job_id"].is_string());

    // One signed webhook for the whole batch.
    let describe = || "the batch's webhook".to_owned();
    wait_until(Duration::from_secs(20), describe, || std::future::ready(receiver.count() > 0)).await;
    // Proving that no second webhook follows, for a while, is the point.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.count(), 1, "one webhook per batch, not per item");
    let (headers, body) = receiver.seen.lock().unwrap()[0].clone();
    let sent: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((sent["batch_id"].as_str(), sent["status"].as_str()), (Some(id.as_str()), Some("completed")));
    assert_eq!(sent["counts"], done["counts"]);
    assert_eq!(headers["x-facerec-batch-id"], id.as_str());
    let timestamp: u64 = headers["x-facerec-timestamp"].to_str().unwrap().parse().unwrap();
    assert_eq!(headers["x-facerec-signature"].to_str().unwrap(), facerec_worker::signature("s3cret", timestamp, &body));
    assert_eq!(app.count("batch_item_inputs").await, 0, "no image is kept once its job has ended");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tar_gz_batch_with_a_manifest_and_a_canceled_batch() {
    let mut app = TestApp::spawn().await.unwrap();
    let manifest = "path,subject\nimg/a.jpg,\"Obama, Barack\"\nimg/b.jpg,Biden\n";
    let archive = gzip(&tar_of(&[
        ("manifest.csv", manifest.as_bytes().to_vec()),
        ("img/a.jpg", photo("obama.jpg")),
        ("img/b.jpg", photo("biden.jpg")),
        ("img/c.jpg", photo("obama2.jpg")),
    ]));
    let consent = "https://forms.example/consent/batch-7";
    let (status, batch) = post_batch(&app, archive.clone(), &[("collection", "m"), ("consent", consent)]).await;
    assert_eq!(status, 202, "{batch}");
    assert_eq!(batch["total"], 3, "the manifest is not an item");
    let done = wait_for_batch(&app, batch["batch_id"].as_str().unwrap()).await;
    assert_eq!(
        (done["counts"]["succeeded"].as_i64(), done["counts"]["skipped"].as_i64()),
        (Some(2), Some(1)),
        "{done}"
    );
    let (status, subject) = app.get_json("/v1/collections/m/subjects/Obama%2C%20Barack").await;
    assert_eq!((status, subject["consent"]["reference"].as_str()), (200, Some(consent)), "{subject}");
    // The same archive again adds no face: each image names the face it made.
    let (_, again) = post_batch(&app, archive, &[("collection", "m")]).await;
    let again_id = again["batch_id"].as_str().unwrap();
    assert_eq!(wait_for_batch(&app, again_id).await["counts"]["succeeded"], 2);
    assert_eq!(app.count("faces").await, 2, "a re-uploaded batch duplicates nothing");
    let item = &items(&app, again_id, "status=succeeded").await[0];
    let (_, job) = app.get_job(item["job_id"].as_str().unwrap()).await;
    assert_eq!(job["result"]["already_registered"], true, "{job}");

    // With no worker running, nothing of a new batch runs before it is canceled.
    app.shut_down_worker().await.unwrap().unwrap();
    let images: Vec<_> = variants(&photo("obama.jpg"), 4).into_iter().enumerate().collect();
    let entries: Vec<_> = images.iter().map(|(i, b)| (format!("obama/{i}.jpg"), b.clone())).collect();
    let entries: Vec<(&str, Vec<u8>)> = entries.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let (status, batch) = post_batch(&app, zip_of(&entries), &[]).await;
    assert_eq!(status, 202);
    let id = batch["batch_id"].as_str().unwrap();
    let (status, canceled) = app.json(reqwest::Method::POST, &format!("/v1/batches/{id}/cancel"), None).await;
    assert_eq!(status, 200, "{canceled}");
    assert_eq!((canceled["status"].as_str(), canceled["counts"]["canceled"].as_i64()), (Some("canceled"), Some(4)));
    let (status, again) = app.json(reqwest::Method::POST, &format!("/v1/batches/{id}/cancel"), None).await;
    assert_eq!((status, again["error"]["code"].as_str()), (409, Some("batch_not_cancelable")));
    app.start_worker(&|_| {}).await.unwrap();
    // Proving that the worker runs nothing of it, for a while, is the point.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, after) = app.get_json(&format!("/v1/batches/{id}")).await;
    assert_eq!(after["counts"]["canceled"], 4, "a worker that comes back runs nothing of it: {after}");
    assert_eq!(app.count("faces").await, 2);
    assert_eq!(app.count("batch_item_inputs").await + app.count("job_inputs").await, 0, "canceled images are gone");
    let (status, missing) = app.get_json(&format!("/v1/batches/{}", uuid::Uuid::now_v7())).await;
    assert_eq!((status, missing["error"]["code"].as_str()), (404, Some("batch_not_found")));
    let (status, bad) = app.get_json("/v1/batches/nope/items").await;
    assert_eq!((status, bad["error"]["code"].as_str()), (400, Some("invalid_batch_id")));
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_larger_than_the_queue_limit_is_fed_as_room_frees() {
    let app = TestApp::spawn_with(&|a| a.max_queued_jobs = 4, &|w| w.batch_window = 2).await.unwrap();
    let images = variants(&photo("biden.jpg"), 10);
    let names: Vec<String> = (0..images.len()).map(|i| format!("biden/{i}.jpg")).collect();
    let entries: Vec<(&str, Vec<u8>)> = names.iter().map(String::as_str).zip(images).collect();
    let (status, batch) = post_batch(&app, zip_of(&entries), &[]).await;
    assert_eq!(status, 202, "a batch over the queue limit is accepted: {batch}");
    let id = batch["batch_id"].as_str().unwrap().to_owned();
    // While it runs, single submissions keep their room.
    let single = app.submit("/v1/register", photo("obama.jpg"), &[("subject", "obama")]).await;
    let mut most_queued = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let queued: i64 =
            sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 'queued' AND batch_id IS NOT NULL")
                .fetch_one(&app.db)
                .await
                .unwrap();
        most_queued = most_queued.max(queued);
        let (_, b) = app.get_json(&format!("/v1/batches/{id}")).await;
        if b["status"] != "running" {
            assert_eq!(b["counts"]["succeeded"], 10, "{b}");
            break;
        }
        assert!(Instant::now() < deadline, "batch still running: {b}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(most_queued <= 2, "the batch kept to its window of the queue: {most_queued} queued at once");
    assert_eq!(app.wait_for_job(&single).await["status"], "succeeded");
    assert_eq!(app.count("faces").await, 11);
    app.stop().await.unwrap();
}

/// A feeder with no batch running sleeps on PostgreSQL's announcement of new
/// batches: here it would look only every 60 s (every 6 s while one runs),
/// yet a new batch's item starts within seconds. The worker's queue consumer
/// looks for jobs only once a minute too: the feeder's announcement of the
/// jobs it enqueued (`JobQueue::enqueue`) is what wakes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_batch_wakes_an_idle_feeder() {
    let app = TestApp::spawn_with(&|_| {}, &|w| {
        w.batch_poll_ms = 6_000;
        w.poll_interval_ms = 60_000;
    })
    .await
    .unwrap();
    // The feeder's first look (at 6 s) finds nothing, and it goes idle: being idle is the point.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let (status, batch) = post_batch(&app, zip_of(&[("obama/a.jpg", photo("obama.jpg"))]), &[]).await;
    assert_eq!(status, 202, "{batch}");
    let id = batch["batch_id"].as_str().unwrap().to_owned();
    let posted = Instant::now();
    loop {
        let (_, b) = app.get_json(&format!("/v1/batches/{id}")).await;
        if b["counts"]["succeeded"] == 1 {
            break;
        }
        assert!(posted.elapsed() < Duration::from_secs(4), "the batch was not started at once: {b}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Its job waited for no heartbeat (every 5 s, which also wakes the consumer).
    let item = &items(&app, &id, "").await[0];
    let (_, job) = app.get_json(&format!("/v1/jobs/{}", item["job_id"].as_str().unwrap())).await;
    let waited = job["durations"]["queued_ms"].as_i64().unwrap();
    assert!(waited < 1000, "queued for {waited} ms: the feeder's announcement did not wake the worker");
    // It ends at the feeder's next look, a running batch's tick later.
    assert_eq!(wait_for_batch(&app, &id).await["status"], "completed");
    assert!(posted.elapsed() < Duration::from_secs(15));
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_archives_are_refused_and_leave_nothing() {
    let spool = tempfile::tempdir().unwrap();
    let spool_dir = spool.path().to_owned();
    // Refused archives and skipped items are decided at upload: no worker.
    let app = TestApp::api_only_with(&|a| {
        a.max_batch_items = 8;
        a.max_batch_bytes = 1024 * 1024;
        a.spool_dir = Some(spool_dir.clone());
    })
    .await
    .unwrap();
    let good = || ("ok/1.jpg", photo("obama.jpg"));
    // Eight entries of 9 MiB of zeros: 72 MiB from a few hundred KiB.
    let names: Vec<String> = (0..9).map(|i| format!("z/{i}")).collect();
    let zeros: Vec<(&str, Vec<u8>)> = names[..8].iter().map(|n| (n.as_str(), vec![0u8; 9 * 1024 * 1024])).collect();
    let bomb = zip_of(&zeros);
    let tar_bomb = gzip(&tar_of(&zeros));
    let too_many: Vec<(&str, Vec<u8>)> = names.iter().map(|n| (n.as_str(), b"x".to_vec())).collect();
    let mut corrupt = zip_of(&[good(), ("ok/2.jpg", photo("biden.jpg"))]);
    let end = corrupt.len();
    corrupt[end - 22..end - 18].copy_from_slice(b"XXXX"); // the end-of-central-directory signature
    let mut truncated_gz = gzip(&tar_of(&[good()]));
    truncated_gz.truncate(truncated_gz.len() / 2);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("zip climbing out", zip_of(&[good(), ("../evil.jpg", photo("biden.jpg"))]), 400, "unsafe_archive_path"),
        ("tar climbing out", tar_of(&[good(), ("a/../../evil.jpg", photo("biden.jpg"))]), 400, "unsafe_archive_path"),
        ("tar absolute", gzip(&tar_of(&[("/etc/evil.jpg", photo("biden.jpg"))])), 400, "unsafe_archive_path"),
        (
            "long name climbing out",
            tar_with_long_name(&format!("{}../../../evil.jpg", "a/".repeat(60)), &photo("biden.jpg")),
            400,
            "unsafe_archive_path",
        ),
        (
            "long name of 1 MiB",
            gzip(&tar_with_long_name(&"n".repeat(1 << 20), &photo("biden.jpg"))),
            400,
            "corrupt_archive",
        ),
        ("zip bomb", bomb, 400, "archive_bomb"),
        ("tar.gz bomb", tar_bomb, 400, "archive_bomb"),
        ("too many entries", zip_of(&too_many), 400, "archive_too_many_entries"),
        ("corrupt central directory", corrupt, 400, "corrupt_archive"),
        ("truncated tar.gz", truncated_gz, 400, "corrupt_archive"),
        ("not an archive", photo("obama.jpg"), 415, "unsupported_archive"),
        ("over the size limit", vec![b'P'; 1024 * 1024 + 64 * 1024], 413, "archive_too_large"),
        ("empty zip", zip_of(&[]), 400, "empty_archive"),
    ];
    for (what, archive, status, code) in cases {
        let (got, body) = post_batch(&app, archive, &[]).await;
        assert_eq!((got, body["error"]["code"].as_str()), (status, Some(code)), "{what}: {body}");
    }
    let resp =
        app.client.post(app.url("/v1/batches")).multipart(Form::new().text("collection", "x")).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "missing_archive");
    for table in ["batches", "batch_items", "batch_item_inputs", "jobs"] {
        assert_eq!(app.count(table).await, 0, "{table}: a refused archive leaves nothing");
    }
    assert_eq!(std::fs::read_dir(spool.path()).unwrap().count(), 0, "no spool file is left behind");

    // Links are never followed: a symlink entry is a skipped item.
    let mut tar = tar::Builder::new(Vec::new());
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    tar.append_link(&mut link, "ok/passwd.jpg", "/etc/passwd").unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_size(photo("obama.jpg").len() as u64);
    header.set_mode(0o644);
    tar.append_data(&mut header, "ok/1.jpg", photo("obama.jpg").as_slice()).unwrap();
    let (status, batch) = post_batch(&app, tar.into_inner().unwrap(), &[]).await;
    assert_eq!(status, 202, "{batch}");
    let id = batch["batch_id"].as_str().unwrap();
    let skipped = items(&app, id, "status=skipped").await;
    assert_eq!((skipped.len(), skipped[0]["error"]["code"].as_str()), (1, Some("not_a_regular_file")));
    app.stop().await.unwrap();
}

/// The store alone: what one feeding round makes of a batch. Jobs carry the
/// params serde writes (the SQL function builds them itself), every item is
/// fed once, a window larger than one round's 1,024 jobs fills over rounds
/// instead of stopping there, and each job reads its item's image, which is
/// deleted when the job ends (and only then).
#[tokio::test]
async fn feeding_rounds_fill_the_window_with_jobs_as_serde_writes_them() {
    use facerec_core::{CollectionName, ConsentRef, JobErrorCode, JobId, JobParams, RegisterParams, SubjectName};
    use facerec_store::{BatchCancel, ClaimOutcome, ItemContent, NewBatch, NewBatchItem};

    let test = facerec_testkit::TestDatabase::create().await.unwrap();
    let (store, db) = (&test.store, &test.db);
    let batch = NewBatch {
        id: uuid::Uuid::now_v7(),
        collection: CollectionName::parse("fed").unwrap(),
        consent: Some(ConsentRef::parse("ticket-9").unwrap()),
        callback_url: None,
        request_id: None,
        create_collection: Some(false),
        api_key_id: None,
        traceparent: None,
    };
    let mut writer = store.begin_batch(&batch).await.unwrap();
    let items: i64 = 1_100;
    for i in 0..items {
        let content = ItemContent::Image { content_type: "image/jpeg", bytes: item_bytes(i as i32) };
        writer.add(NewBatchItem { path: format!("Ada, L/{i}.jpg"), subject: "Ada, L".into(), content }).await.unwrap();
    }
    writer.commit().await.unwrap();
    let queued = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM jobs WHERE status = 'queued'").fetch_one(db).await.unwrap()
    };

    assert!(store.feed_batches(0).await.unwrap().fed.is_empty(), "a window of 0 feeds nothing");
    let first = store.feed_batches(2_000).await.unwrap();
    assert_eq!((first.fed.len(), first.running, first.drained), (1_024, 1, 0), "one round makes at most 1,024 jobs");
    let second = store.feed_batches(2_000).await.unwrap();
    assert_eq!((second.fed.len(), second.running, second.drained), (76, 1, 1), "the next round, the rest");
    assert!(store.feed_batches(2_000).await.unwrap().fed.is_empty());
    assert_eq!(queued().await, items);

    let params: Vec<Value> = sqlx::query_scalar("SELECT DISTINCT params FROM jobs").fetch_all(db).await.unwrap();
    let expected = JobParams::Register(RegisterParams {
        subject: SubjectName::parse("Ada, L").unwrap(),
        collection: batch.collection.clone(),
        consent: batch.consent.clone(),
    });
    assert_eq!(params, [facerec_testkit::serde_json::to_value(&expected).unwrap()]);
    // Each job reads its own item's bytes, which stay with the item (not
    // copied: migration 19) until the job ends, however it ends.
    let jobs: Vec<(uuid::Uuid, i32)> =
        sqlx::query_as("SELECT job_id, seq FROM batch_items ORDER BY seq").fetch_all(db).await.unwrap();
    assert_eq!(jobs.len(), items as usize);
    let mut claims = Vec::new();
    for (job_id, seq) in &jobs {
        let ClaimOutcome::Claimed(claim) = store.claim_job(JobId(*job_id), Duration::from_secs(60)).await.unwrap()
        else {
            panic!("job {job_id} of item {seq} cannot be claimed");
        };
        assert_eq!(claim.input, item_bytes(*seq), "item {seq}'s own bytes reach its job");
        claims.push(claim);
    }
    let inputs = || test.count("batch_item_inputs");
    assert_eq!((inputs().await, test.count("job_inputs").await), (items, 0), "fed images are not copied");
    assert!(store.fail_job(&claims[0], JobErrorCode::NoFace, "none").await.unwrap());
    let has_input = |seq: i32| async move {
        sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM batch_item_inputs WHERE seq = $1)")
            .bind(seq)
            .fetch_one(db)
            .await
            .unwrap()
    };
    assert!(!has_input(0).await, "a failed job's image is deleted");
    assert!(store.succeed_job(&claims[3], &facerec_testkit::serde_json::json!({})).await.unwrap());
    assert!(!has_input(3).await, "a succeeded job's image is deleted");
    // A worker that died: its job is taken over once the lease runs out, image and all.
    sqlx::query("UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(jobs[4].0)
        .execute(db)
        .await
        .unwrap();
    let ClaimOutcome::Claimed(taken) = store.claim_job(JobId(jobs[4].0), Duration::from_secs(60)).await.unwrap() else {
        panic!("an expired lease is taken over");
    };
    assert!(taken.taken_over);
    assert_eq!(taken.input, item_bytes(4), "a job taken over still reads its image");
    assert!(store.release_job(&claims[1], Duration::ZERO, "try again").await.unwrap());
    assert!(has_input(1).await, "a job released for a retry keeps its image");
    sqlx::query("DELETE FROM jobs WHERE id = $1").bind(jobs[2].0).execute(db).await.unwrap();
    assert!(!has_input(2).await, "a job deleted before its end takes its image along");
    assert_eq!(inputs().await, items - 3);
    // Cancelling the batch cancels its queued job (the released one); the
    // others, in a worker's hands, keep their images until they end.
    assert!(matches!(store.cancel_batch(batch.id).await.unwrap(), BatchCancel::Canceled(_)));
    assert!(!has_input(1).await, "a canceled job's image is deleted");
    assert_eq!(inputs().await, items - 4);
    // Retention keeps a canceled batch whose jobs still run: they read their images from it.
    assert_eq!(store.delete_finished_batches(Duration::ZERO).await.unwrap(), 0);
    sqlx::query("UPDATE jobs SET status = 'canceled', finished_at = now() WHERE status = 'processing'")
        .execute(db)
        .await
        .unwrap();
    assert_eq!(inputs().await, 0, "every ended job's image is gone");
    assert_eq!(store.delete_finished_batches(Duration::ZERO).await.unwrap(), 1);
    test.drop().await.unwrap();
}

/// An item's own image in the feeding test: its number, then 0 to 6 more bytes.
fn item_bytes(seq: i32) -> Vec<u8> {
    seq.to_le_bytes().into_iter().chain((0..seq % 7).map(|i| i as u8)).collect()
}

/// The `path → (status, code, message)` of each line of a `facerec ingest` report.
fn report_lines(path: &std::path::Path) -> std::collections::HashMap<String, (String, String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let field = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    text.lines()
        .map(|line| {
            let v: Value = facerec_testkit::serde_json::from_str(line).unwrap();
            let name = field(&v["path"]).rsplit('/').next().unwrap().to_owned();
            (name, (field(&v["status"]), field(&v["error"]["code"]), field(&v["error"]["message"])))
        })
        .collect()
}

/// One code and one plain message for the same bad file, whichever way it
/// comes in: an upload, an archive entry, a file of `facerec ingest`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_bad_file_gets_the_same_code_and_a_plain_message_on_every_path() {
    use clap::Parser;
    // Every path refuses the file before a job would run it: no worker.
    let app = TestApp::api_only().await.unwrap();
    // A JPEG whose APP0 segment declares a length of 0: its decoder says
    // "Found a marker with invalid length:0", which is ours to read, not the client's.
    let broken = [[0xFFu8, 0xD8, 0xFF, 0xE0, 0x00, 0x00].as_slice(), &[0u8; 64]].concat();
    let cases = [
        ("empty.jpg", Vec::new(), "the image is empty"),
        ("broken.jpg", broken, "the image is damaged or cut short: its header cannot be read"),
    ];
    for (name, bytes, message) in &cases {
        let resp = app.post_form("/v1/register", Some(bytes.clone()), &[("subject", "ann")]).await;
        assert_eq!(resp.status(), 422, "{name}");
        let error = resp.json::<Value>().await.unwrap()["error"].clone();
        assert_eq!((error["code"].as_str(), error["message"].as_str()), (Some("corrupt_image"), Some(*message)));
    }

    let entries: Vec<(String, Vec<u8>)> = cases.iter().map(|(n, b, _)| (format!("ann/{n}"), b.clone())).collect();
    let entries: Vec<(&str, Vec<u8>)> = entries.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let (status, batch) = post_batch(&app, zip_of(&entries), &[]).await;
    assert_eq!(status, 202, "{batch}");
    let failed = items(&app, batch["batch_id"].as_str().unwrap(), "status=failed").await;
    let seen: Vec<(&str, &str)> = failed
        .iter()
        .map(|i| (i["error"]["code"].as_str().unwrap(), i["error"]["message"].as_str().unwrap()))
        .collect();
    assert_eq!(seen, cases.iter().map(|(_, _, m)| ("corrupt_image", *m)).collect::<Vec<_>>(), "{failed:?}");

    let (dir, out) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::create_dir(dir.path().join("ann")).unwrap();
    for (name, bytes, _) in &cases {
        std::fs::write(dir.path().join("ann").join(name), bytes).unwrap();
    }
    let report = out.path().join("report.jsonl");
    let argv = ["facerec", "ingest", "--api", &app.base_url, "--quiet", dir.path().to_str().unwrap()];
    let cli = facerec_cli::Cli::try_parse_from(argv.into_iter().chain(["--report", report.to_str().unwrap()]));
    let exit = facerec_cli::run(cli.expect("valid arguments"), std::future::pending()).await;
    assert_eq!(exit, facerec_cli::Exit::SomeNotRegistered);
    let lines = report_lines(&report);
    for (name, _, message) in &cases {
        let expected = ("failed".to_owned(), "corrupt_image".to_owned(), (*message).to_owned());
        assert_eq!(lines[*name], expected, "{name}: {lines:?}");
    }

    // A misnamed archive field is named as such, not measured as a text field.
    let form = Form::new().part("file", Part::bytes(zip_of(&[("ann/1.jpg", photo("obama.jpg"))])).file_name("a.zip"));
    let resp = app.client.post(app.url("/v1/batches")).multipart(form).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let error = resp.json::<Value>().await.unwrap()["error"].clone();
    assert_eq!(error["code"], "unknown_field", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("\"file\"") && message.contains("archive"), "{message}");
    app.stop().await.unwrap();
}

/// `GET /v1/batches?{query}` as `client`: the batch ids and the next cursor.
async fn listed(app: &TestApp, client: &reqwest::Client, query: &str) -> (Vec<String>, Option<String>) {
    let (status, page) = app.call(client, reqwest::Method::GET, &format!("/v1/batches?{query}"), None).await;
    assert_eq!(status, 200, "{query}: {page}");
    let ids = page["batches"].as_array().unwrap().iter().map(|b| b["batch_id"].as_str().unwrap().to_owned());
    (ids.collect(), page["next_cursor"].as_str().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_listed_newest_first_by_status_in_pages_to_those_who_may_see_them() {
    // No worker: a batch stays running until it is canceled.
    let app = TestApp::api_only_keyed(&|_| {}).await.unwrap();
    let a = app.create_key(&["batches.create", "batches.read"], &["a-*"]).await;
    let b = app.create_key(&["batches.create", "batches.read"], &["b-*"]).await;
    let mut made = Vec::new();
    for (key, collection) in [(&a, "a-1"), (&b, "b-1"), (&a, "a-2")] {
        let archive = Part::bytes(zip_of(&[("ann/1.jpg", photo("obama.jpg"))])).file_name("a.zip");
        let form = Form::new().part("archive", archive).text("collection", collection);
        let resp = key.client.post(app.url("/v1/batches")).multipart(form).send().await.unwrap();
        assert_eq!(resp.status(), 202);
        made.push(resp.json::<Value>().await.unwrap()["batch_id"].as_str().unwrap().to_owned());
    }
    let cancel = format!("/v1/batches/{}/cancel", made[2]);
    assert_eq!(app.call(&a.client, reqwest::Method::POST, &cancel, None).await.0, 200);
    // The ids of the batches made, by their order of making.
    let ids = |picked: &[usize]| picked.iter().map(|&i| made[i].clone()).collect::<Vec<_>>();

    let master = &app.client;
    assert_eq!(listed(&app, master, "").await, (ids(&[2, 1, 0]), None));
    assert_eq!(listed(&app, master, "status=running").await.0, ids(&[1, 0]));
    assert_eq!(listed(&app, master, "status=canceled").await.0, ids(&[2]));
    assert_eq!(listed(&app, master, "status=completed").await.0, ids(&[]));
    let (first, cursor) = listed(&app, master, "limit=2").await;
    assert_eq!(first, ids(&[2, 1]));
    let rest = listed(&app, master, &format!("limit=2&cursor={}", cursor.unwrap())).await;
    assert_eq!(rest, (ids(&[0]), None));
    // The page carries each batch's own counts.
    let (_, page) = app.get_json("/v1/batches?status=canceled").await;
    assert_eq!(
        (page["batches"][0]["total"].as_i64(), page["batches"][0]["counts"]["canceled"].as_i64()),
        (Some(1), Some(1))
    );

    // A key sees the batches of the collections it reaches, and only those.
    assert_eq!(listed(&app, &a.client, "").await.0, ids(&[2, 0]));
    assert_eq!(listed(&app, &a.client, "status=running").await.0, ids(&[0]));
    assert_eq!(listed(&app, &b.client, "").await.0, ids(&[1]));
    let writer = app.create_key(&["batches.create"], &["*"]).await;
    let (status, answer) = app.call(&writer.client, reqwest::Method::GET, "/v1/batches", None).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("forbidden")), "batches.read is needed");

    for (query, code) in
        [("status=done", "invalid_status"), ("cursor=nope", "invalid_cursor"), ("limit=0", "invalid_limit")]
    {
        let (status, answer) = app.get_json(&format!("/v1/batches?{query}")).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (400, Some(code)), "{query}");
    }
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_too_large_or_too_long_is_refused_and_leaves_nothing() {
    let app = TestApp::api_only_with(&|a| a.max_batch_items = 5).await.unwrap();
    // Over 8 MiB of rows (it deflates to a few KiB).
    let row = "ann/1.jpg,Ann\n";
    let big = format!("path,subject\n{}", row.repeat(9 * 1024 * 1024 / row.len() + 1));
    let archive = zip_of(&[("manifest.csv", big.into_bytes()), ("ann/1.jpg", photo("obama.jpg"))]);
    let (status, body) = post_batch(&app, archive, &[]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("manifest_too_large")), "{body}");
    // A few bytes, but more rows than the archive may have entries.
    let rows: String = (0..6).map(|i| format!("ann/{i}.jpg,Ann\n")).collect();
    let archive = zip_of(&[("manifest.csv", rows.into_bytes()), ("ann/1.jpg", photo("obama.jpg"))]);
    let (status, body) = post_batch(&app, archive, &[]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("manifest_too_large")), "{body}");
    assert_eq!(app.count("batches").await, 0, "a refused manifest leaves no batch");
    // Within both limits, with quoted fields, it is read.
    let rows = "path,subject\n\"ann/1.jpg\",\"Smith, Ann\"\n";
    let archive = zip_of(&[("manifest.csv", rows.as_bytes().to_vec()), ("ann/1.jpg", photo("obama.jpg"))]);
    let (status, batch) = post_batch(&app, archive, &[]).await;
    assert_eq!(status, 202, "{batch}");
    let id = batch["batch_id"].as_str().unwrap().to_owned();
    assert_eq!(items(&app, &id, "").await[0]["subject"], "Smith, Ann");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn archives_beyond_the_spooling_limit_are_told_to_come_back() {
    use tokio::io::AsyncWriteExt as _;
    let spool = tempfile::tempdir().unwrap();
    let spool_dir = spool.path().to_owned();
    let app = TestApp::api_only_with(&|a| {
        a.spool_dir = Some(spool_dir.clone());
        a.max_spooling_archives = 1;
        // The stalled upload below must stay for the whole test.
        a.body_idle_timeout_secs = 60;
    })
    .await
    .unwrap();
    let spooled = || std::fs::read_dir(spool.path()).map(|d| d.count()).unwrap_or(0);
    // An upload that declares 1 MiB and sends only the start of its archive: it holds the one slot.
    let addr = app.base_url.trim_start_matches("http://").to_owned();
    let mut stalled = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/batches HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary=x\r\n\
         Content-Length: {}\r\n\r\n--x\r\nContent-Disposition: form-data; name=\"archive\"; \
         filename=\"a.zip\"\r\n\r\nPK\x03\x04",
        1024 * 1024
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    let describe = || "the stalled upload's spool file".to_owned();
    wait_until(Duration::from_secs(10), describe, || std::future::ready(spooled() == 1)).await;

    let archive = zip_of(&[("ann/1.jpg", photo("obama.jpg"))]);
    let form = Form::new().part("archive", Part::bytes(archive.clone()).file_name("a.zip"));
    let resp = app.client.post(app.url("/v1/batches")).multipart(form).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "server_busy", "{body}");
    assert_eq!(app.count("batches").await, 0, "a busy answer keeps nothing");
    assert_eq!(spooled(), 1, "nothing of the refused archive was written");

    // Once the stalled upload is gone, its slot is free again.
    drop(stalled);
    let describe = || "a batch accepted once the slot is free".to_owned();
    wait_until(Duration::from_secs(10), describe, || {
        let archive = archive.clone();
        let app = &app;
        async move { post_batch(app, archive, &[]).await.0 == 202 }
    })
    .await;
    app.stop().await.unwrap();
}
