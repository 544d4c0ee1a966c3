//! `facerec ingest` against the real api and worker: every file reported with
//! the right status and code, exit codes, re-runs that send and add nothing,
//! an interrupted run that resumes without duplicates, manifests, dry runs
//! that tell what a run then does, and faces deleted since an earlier run.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use facerec_cli::{Cli, Exit};
use facerec_testkit::reqwest::Method;
use facerec_testkit::serde_json::Value;
use facerec_testkit::{TestApp, built_binary, faceless_image, photo, side_by_side, variants};

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
    // Nothing is sent, so nothing runs: no worker.
    let app = TestApp::api_only().await.unwrap();
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

/// The file names of a report's lines that satisfy `keep`.
fn names(lines: &HashMap<String, Value>, keep: impl Fn(&Value) -> bool) -> BTreeSet<String> {
    lines.iter().filter(|(_, v)| keep(v)).map(|(name, _)| name.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dry_run_lists_every_file_writes_its_report_and_counts_what_a_run_then_sends() {
    let app = TestApp::spawn().await.unwrap();
    let (dir, out) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let d = dir.path();
    let images = variants(&photo("obama.jpg"), 3);
    write(d, "obama/0.jpg", &images[0]);
    write(d, "obama/1.jpg", &images[1]);
    write(d, "nobody/x.jpg", &faceless_image());
    let folder = d.to_str().unwrap();
    assert_eq!(ingest(&app, &[folder, "-c", "people"]).await, Exit::SomeNotRegistered, "x.jpg has no face");
    // The folder grows: a dry run must tell the new files from the loaded ones.
    write(d, "obama/2.jpg", &images[2]);
    write(d, "biden/b.jpg", &photo("biden.jpg"));
    write(d, "biden/notes.txt", b"not an image");
    let jobs = app.count("jobs").await;

    // The binary, to see the listing it prints.
    let dry_path = out.path().join("dry.jsonl");
    let binary = built_binary("facerec");
    let args = ["ingest", folder, "-c", "people", "--dry-run", "--report", dry_path.to_str().unwrap()];
    let output = std::process::Command::new(&binary)
        .args(args)
        .args(["--api", &app.base_url])
        .env_remove("FACEREC_API_KEY")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "x.jpg and notes.txt would not be registered: {stdout}{stderr}");
    assert_eq!(app.count("jobs").await, jobs, "a dry run sends nothing");
    let listed = |action: &str, file: &str, why: &str| {
        stdout.lines().any(|l| l.starts_with(action) && l.contains(file) && l.contains(why))
    };
    for (action, file, why) in [
        ("send", "obama/2.jpg", ""),
        ("send", "biden/b.jpg", ""),
        ("skip", "obama/0.jpg", "already registered"),
        ("skip", "obama/1.jpg", "already registered"),
        ("skip", "nobody/x.jpg", "no_face"),
        ("skip", "biden/notes.txt", "unsupported_media_type"),
    ] {
        assert!(listed(action, file, why), "{action} {file} ({why}) in:\n{stdout}");
    }

    let dry = report(&dry_path);
    assert_eq!(dry.len(), 6, "every file has a line: {dry:?}");
    assert!(dry.values().all(|v| v["dry_run"] == true), "{dry:?}");
    assert_eq!((dry["0.jpg"]["status"].as_str(), dry["0.jpg"]["resumed"].as_bool()), (Some("succeeded"), Some(true)));
    assert_eq!(
        (dry["x.jpg"]["status"].as_str(), dry["x.jpg"]["error"]["code"].as_str()),
        (Some("failed"), Some("no_face"))
    );
    assert_eq!(dry["notes.txt"]["status"], "skipped");
    let would_send = names(&dry, |v| v["status"] == "would_send");
    assert_eq!(would_send, BTreeSet::from(["2.jpg".to_owned(), "b.jpg".to_owned()]));

    let run_path = out.path().join("run.jsonl");
    let args = [folder, "-c", "people", "--report", run_path.to_str().unwrap()];
    assert_eq!(ingest(&app, &args).await, Exit::SomeNotRegistered);
    let run = report(&run_path);
    let sent = names(&run, |v| v["job_id"].is_string() && v["resumed"] == false);
    assert_eq!(sent, would_send, "the run sends exactly what the dry run said: {run:?}");
    assert_eq!(app.count("jobs").await - jobs, would_send.len() as i64);
    assert!(run.values().all(|v| v.get("dry_run").is_none()), "a real run's lines are not marked");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_face_deleted_since_is_reported_deleted_and_registered_again_only_on_request() {
    let app = TestApp::spawn().await.unwrap();
    let (dir, out) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let d = dir.path();
    let images = variants(&photo("obama.jpg"), 2);
    write(d, "obama/0.jpg", &images[0]);
    write(d, "obama/1.jpg", &images[1]);
    write(d, "biden/b.jpg", &photo("biden.jpg"));
    let folder = d.to_str().unwrap();
    let rp = out.path().join("report.jsonl");
    let args = [folder, "-c", "people", "--report", rp.to_str().unwrap()];
    assert_eq!(ingest(&app, &args).await, Exit::AllRegistered);
    let first = report(&rp);
    let (status, body) = app.json(Method::DELETE, "/v1/collections/people/subjects/obama", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(faces(&app).await, 1);
    let jobs = app.count("jobs").await;

    assert_eq!(ingest(&app, &args).await, Exit::SomeNotRegistered, "a deleted face is not registered");
    let second = report(&rp);
    for f in ["0.jpg", "1.jpg"] {
        assert_eq!(second[f]["status"], "deleted", "{}", second[f]);
        assert_eq!((&second[f]["face_id"], second[f]["resumed"].as_bool()), (&first[f]["face_id"], Some(true)));
    }
    assert_eq!(
        (second["b.jpg"]["status"].as_str(), second["b.jpg"]["resumed"].as_bool()),
        (Some("succeeded"), Some(true))
    );
    assert_eq!((faces(&app).await, app.count("jobs").await), (1, jobs), "nothing sent, nothing brought back");

    // A dry run says the same, and what --resend-deleted would send.
    let dry = out.path().join("dry.jsonl");
    let dry_args = [folder, "-c", "people", "--dry-run", "--report", dry.to_str().unwrap()];
    assert_eq!(ingest(&app, &dry_args).await, Exit::SomeNotRegistered);
    assert_eq!(
        names(&report(&dry), |v| v["status"] == "deleted"),
        BTreeSet::from(["0.jpg".to_owned(), "1.jpg".to_owned()])
    );
    let resend = [&dry_args[..], &["--resend-deleted"]].concat();
    assert_eq!(ingest(&app, &resend).await, Exit::AllRegistered);
    assert_eq!(
        names(&report(&dry), |v| v["status"] == "would_send"),
        BTreeSet::from(["0.jpg".to_owned(), "1.jpg".to_owned()])
    );

    // On purpose: registered again, once; the next run finds those faces.
    let resend = [&args[..], &["--resend-deleted"]].concat();
    assert_eq!(ingest(&app, &resend).await, Exit::AllRegistered);
    let third = report(&rp);
    for f in ["0.jpg", "1.jpg"] {
        assert_eq!((third[f]["status"].as_str(), third[f]["resumed"].as_bool()), (Some("succeeded"), Some(false)));
        assert_ne!(third[f]["face_id"], first[f]["face_id"], "a new face");
    }
    assert_eq!((faces(&app).await, app.count("jobs").await), (3, jobs + 2));
    assert_eq!(ingest(&app, &args).await, Exit::AllRegistered, "the faces registered again are found");
    let fourth = report(&rp);
    for f in ["0.jpg", "1.jpg"] {
        assert_eq!((fourth[f]["status"].as_str(), fourth[f]["resumed"].as_bool()), (Some("succeeded"), Some(true)));
        assert_eq!(fourth[f]["face_id"], third[f]["face_id"]);
    }
    assert_eq!((faces(&app).await, app.count("jobs").await), (3, jobs + 2), "nothing sent twice");
    app.stop().await.unwrap();
}

#[test]
fn ingest_help_tells_the_exit_codes_and_how_to_resume() {
    let help = Cli::try_parse_from(["facerec", "ingest", "--help"]).expect_err("help is shown, not run").to_string();
    for needle in ["Exit codes:", "0  every image is registered", "2  bad usage", "Resume:", "--resend-deleted"] {
        assert!(help.contains(needle), "{needle:?} in:\n{help}");
    }
}
