//! `facerec ingest` against the real api and worker: every file reported with
//! the right status and code, exit codes, re-runs that send and add nothing,
//! an interrupted run that resumes without duplicates, and manifests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use facerec_cli::{Cli, Exit};
use facerec_e2e::serde_json::Value;
use facerec_e2e::{TestApp, faceless_image, photo, side_by_side, variants};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    path
}

async fn ingest(app: &TestApp, args: &[&str]) -> Exit {
    ingest_until(app, args, std::future::pending()).await
}

async fn ingest_until(app: &TestApp, args: &[&str], interrupt: impl std::future::Future<Output = ()>) -> Exit {
    let mut argv = vec!["facerec", "ingest", "--api", &app.base_url, "--quiet"];
    argv.extend_from_slice(args);
    facerec_cli::run(Cli::try_parse_from(argv).expect("valid arguments"), interrupt).await
}

/// The report's lines by file name.
fn report(path: &Path) -> HashMap<String, Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let name = Path::new(v["path"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned();
            (name, v)
        })
        .collect()
}

async fn faces(app: &TestApp) -> i64 {
    app.count("faces").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_folder_is_reported_file_by_file_and_a_rerun_sends_and_adds_nothing() {
    let app = TestApp::spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "Barack Obama/obama.jpg", &photo("obama.jpg"));
    write(d, "Barack Obama/nested/obama2.jpg", &photo("obama2.jpg"));
    write(d, "Joe Biden/biden.jpg", &photo("biden.jpg"));
    write(d, "Joe Biden/nobody.jpg", &faceless_image());
    write(d, "Joe Biden/two.jpg", &side_by_side(&photo("obama.jpg"), &photo("biden.jpg")).unwrap());
    let mut corrupt = vec![0xFF, 0xD8, 0xFF, 0xE0];
    corrupt.extend_from_slice(&[0x5A; 64]);
    write(d, "Joe Biden/corrupt.jpg", &corrupt);
    write(d, "Joe Biden/notes.txt", b"not an image");
    write(d, "loose.jpg", &photo("obama3.jpg"));
    write(d, "Joe Biden/.DS_Store", b"hidden: ignored");
    let report_path = d.join("report.jsonl");
    let rp = report_path.to_str().unwrap();
    // The report sits inside the folder: the second run must not ingest it
    // either (it is directly under DIR, so it is skipped and reported).
    let args = [d.to_str().unwrap(), "--collection", "people", "--report", rp, "-j", "3"];

    assert_eq!(ingest(&app, &args).await, Exit::SomeNotRegistered);
    let first = report(&report_path);
    let status = |r: &HashMap<String, Value>, f: &str| (r[f]["status"].clone(), r[f]["error"]["code"].clone());
    for f in ["obama.jpg", "obama2.jpg", "biden.jpg"] {
        assert_eq!(first[f]["status"], "succeeded", "{f}: {}", first[f]);
        assert!(first[f]["face_id"].is_string() && first[f]["job_id"].is_string(), "{}", first[f]);
    }
    assert_eq!(first["obama2.jpg"]["subject"], "Barack Obama", "a nested folder keeps its top folder's subject");
    assert_eq!(status(&first, "nobody.jpg"), ("failed".into(), "no_face".into()));
    assert_eq!(status(&first, "two.jpg"), ("failed".into(), "multiple_faces".into()));
    assert_eq!(status(&first, "corrupt.jpg"), ("failed".into(), "corrupt_image".into()));
    assert_eq!(status(&first, "notes.txt"), ("skipped".into(), "unsupported_media_type".into()));
    assert_eq!(status(&first, "loose.jpg"), ("skipped".into(), "not_in_subject_folder".into()));
    assert_eq!(first.len(), 8, "every file but the hidden one is reported: {first:?}");
    assert_eq!(faces(&app).await, 3);
    let (_, collection) = app.get_json("/v1/collections/people").await;
    assert_eq!((collection["subject_count"].as_i64(), collection["face_count"].as_i64()), (Some(2), Some(3)));

    let jobs = app.count("jobs").await;
    assert_eq!(ingest(&app, &args).await, Exit::SomeNotRegistered);
    let second = report(&report_path);
    assert_eq!(faces(&app).await, 3, "a re-run registers nothing twice");
    assert_eq!(app.count("jobs").await, jobs, "a re-run sends no image that already has a job");
    for f in ["obama.jpg", "obama2.jpg", "biden.jpg"] {
        assert_eq!(second[f]["status"], "succeeded");
        assert_eq!(second[f]["resumed"], true, "{}", second[f]);
        assert_eq!(second[f]["face_id"], first[f]["face_id"]);
    }
    assert_eq!(status(&second, "nobody.jpg"), ("failed".into(), "no_face".into()));
    assert_eq!(second["nobody.jpg"]["resumed"], true);
    assert_eq!(status(&second, "report.jsonl"), ("skipped".into(), "not_in_subject_folder".into()));
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_interrupted_run_resumes_without_duplicates() {
    // No reconciler to rescue a job recorded while its request was cut off:
    // the api must enqueue it anyway (it did not, before: the re-run then
    // waited 2 minutes for the reconciler, in about half the runs).
    let app = TestApp::spawn_with(&|_| {}, &|w| w.reconcile_secs = 0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let images = variants(&photo("obama.jpg"), 8);
    for (i, bytes) in images.iter().enumerate() {
        write(dir.path(), &format!("obama/{i}.jpg"), bytes);
    }
    let args = [dir.path().to_str().unwrap(), "-j", "2"];
    // Ctrl-C once three faces are stored: the run stops with work in flight.
    let interrupt = async {
        while faces(&app).await < 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    assert_eq!(ingest_until(&app, &args, interrupt).await, Exit::SomeNotRegistered);
    let stored = faces(&app).await;
    assert!((3..8).contains(&stored), "interrupted part-way: {stored} faces");
    // Jobs sent before the interrupt may still finish; the re-run waits for them.
    let report_path = dir.path().join("../resume-report.jsonl");
    let rp = report_path.to_str().unwrap().to_owned();
    let args = [dir.path().to_str().unwrap(), "-j", "4", "--report", &rp];
    let rerun = tokio::time::timeout(Duration::from_secs(60), ingest(&app, &args)).await;
    assert_eq!(rerun.expect("a job of the first run was never enqueued"), Exit::AllRegistered);
    assert_eq!(faces(&app).await, 8, "every image once");
    let lines = report(&report_path);
    let resumed = lines.values().filter(|v| v["resumed"] == true).count();
    assert!(resumed >= 3, "the images of the first run are found, not sent again: {resumed}");
    std::fs::remove_file(report_path).ok();
    app.stop().await.unwrap();
}

/// A first run stops asking for earlier jobs after a run of misses; an image
/// with an earlier job met after that is still not registered twice: the
/// api answers its upload with the earlier job.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_lookups_a_repeated_image_gets_its_earlier_job() {
    let app = TestApp::spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (i, bytes) in variants(&photo("obama.jpg"), 2).iter().enumerate() {
        write(d, &format!("obama/{i}.jpg"), bytes);
    }
    assert_eq!(ingest(&app, &[d.to_str().unwrap(), "-j", "1"]).await, Exit::AllRegistered);
    assert_eq!(faces(&app).await, 2);
    let jobs = app.count("jobs").await;
    // 33 new images whose folders sort first: each lookup misses, so the
    // two known images come after lookups have stopped.
    for i in 0..33 {
        write(d, &format!("a-nobody-{i:02}/x.jpg"), &faceless_image());
    }
    let report_path = d.join("../straight-report.jsonl");
    let args = [d.to_str().unwrap(), "-j", "1", "--report", report_path.to_str().unwrap()];
    assert_eq!(ingest(&app, &args).await, Exit::SomeNotRegistered);
    let lines = report(&report_path);
    assert_eq!(faces(&app).await, 2, "nothing registered twice");
    assert_eq!(app.count("jobs").await, jobs + 33, "only the new images made jobs");
    for f in ["0.jpg", "1.jpg"] {
        assert_eq!((lines[f]["status"].as_str(), lines[f]["resumed"].as_bool()), (Some("succeeded"), Some(true)));
        assert!(lines[f]["face_id"].is_string(), "the earlier job's face: {}", lines[f]);
    }
    std::fs::remove_file(report_path).ok();
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn manifests_in_csv_and_jsonl() {
    let app = TestApp::spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "photos/a.jpg", &photo("obama.jpg"));
    write(d, "photos/b.jpg", &photo("biden.jpg"));
    write(d, "photos/c.jpg", &photo("obama2.jpg"));
    let csv = write(d, "list.csv", "path,subject\nphotos/a.jpg,\"Obama, Barack\"\nphotos/b.jpg,Biden 🇺🇸\n".as_bytes());
    assert_eq!(ingest(&app, &["--manifest", csv.to_str().unwrap(), "-c", "m"]).await, Exit::AllRegistered);
    let jsonl = write(d, "list.jsonl", b"{\"path\": \"photos/c.jpg\", \"subject\": \"Obama, Barack\"}\n");
    assert_eq!(ingest(&app, &["--manifest", jsonl.to_str().unwrap(), "-c", "m"]).await, Exit::AllRegistered);
    let (status, subject) = app.get_json("/v1/collections/m/subjects/Obama%2C%20Barack").await;
    assert_eq!(status, 200, "{subject}");
    assert_eq!(subject["face_count"], 2);
    let (_, collection) = app.get_json("/v1/collections/m").await;
    assert_eq!(collection["subject_count"], 2);
    // A manifest naming a missing file reports it and exits 1.
    let missing = write(d, "missing.csv", b"photos/nope.jpg,Someone\n");
    assert_eq!(ingest(&app, &["--manifest", missing.to_str().unwrap(), "-c", "m"]).await, Exit::SomeNotRegistered);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn usage_and_connection_errors_exit_2_and_a_dry_run_sends_nothing() {
    let app = TestApp::spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "obama/a.jpg", &photo("obama.jpg"));
    write(dir.path(), "obama/b.txt", b"text");
    let d = dir.path().to_str().unwrap();
    assert_eq!(ingest(&app, &[d, "-c", "not a name"]).await, Exit::UsageOrConnection);
    assert_eq!(ingest(&app, &[dir.path().join("nope").to_str().unwrap()]).await, Exit::UsageOrConnection);
    let unreachable = ["facerec", "ingest", d, "--api", "http://127.0.0.1:9", "--connect-timeout", "1"];
    let exit = facerec_cli::run(Cli::try_parse_from(unreachable).unwrap(), std::future::pending()).await;
    assert_eq!(exit, Exit::UsageOrConnection);
    assert_eq!(ingest(&app, &[d, "--dry-run"]).await, Exit::SomeNotRegistered, "one file would be skipped");
    assert_eq!(app.count("jobs").await, 0, "neither a refused nor a dry run sends anything");
    app.stop().await.unwrap();
}
