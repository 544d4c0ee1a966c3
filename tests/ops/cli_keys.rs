//! `facerec keys` and `facerec ingest --api-key` against an api with a master
//! key: the CLI binary makes, lists and deletes keys; ingestion runs with a
//! key limited to its collections and stops at once without one.

use std::process::Command;

use clap::Parser;
use facerec_cli::{Cli, Exit};
use facerec_testkit::serde_json::Value;
use facerec_testkit::{MASTER_KEY, TestApp, built_binary, photo};

/// Runs the `facerec` binary: whether it succeeded, its stdout and its stderr.
fn facerec(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let binary = built_binary("facerec");
    let output = Command::new(&binary)
        .args(args)
        .env("FACEREC_URL", &app.base_url)
        .env("FACEREC_MASTER_KEY", MASTER_KEY)
        .env_remove("FACEREC_API_KEY")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (output.status.success(), text(output.stdout), text(output.stderr))
}

async fn ingest(app: &TestApp, dir: &str, collection: &str, key: Option<&str>) -> Exit {
    let mut argv = vec!["facerec", "ingest", dir, "--api", &app.base_url, "--quiet", "-c", collection];
    if let Some(key) = key {
        argv.extend(["--api-key", key]);
    }
    facerec_cli::run(Cli::try_parse_from(argv).expect("valid arguments"), std::future::pending()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_makes_lists_and_deletes_keys_and_ingests_with_one() {
    let app = TestApp::spawn_keyed(&|_| {}).await.unwrap();
    let args = ["keys", "create", "--name", "loader", "--actions", "register,jobs.read", "--collections", "lab-*"];
    let (ok, stdout, stderr) = facerec(&app, &args);
    assert!(ok, "{stderr}");
    let created: Value = serde_json::from_str(&stdout).unwrap();
    let (key, id) = (created["key"].as_str().unwrap().to_owned(), created["id"].as_str().unwrap().to_owned());
    assert_eq!(created["collections"], serde_json::json!(["lab-*"]));

    let (ok, listed, _) = facerec(&app, &["keys", "list"]);
    assert!(
        ok && listed.lines().count() == 1 && listed.contains(&id) && listed.contains("register,jobs.read"),
        "{listed}"
    );
    assert!(!listed.contains(&key), "list shows the key itself");

    let dir = tempfile::tempdir().unwrap();
    let subject = dir.path().join("Ann");
    std::fs::create_dir_all(&subject).unwrap();
    std::fs::write(subject.join("1.jpg"), photo("obama.jpg")).unwrap();
    let dir = dir.path().to_str().unwrap();
    assert_eq!(ingest(&app, dir, "lab-1", Some(&key)).await, Exit::AllRegistered);
    assert_eq!(app.count("faces").await, 1);
    // Without a key, or outside its collections, nothing is sent.
    assert_eq!(ingest(&app, dir, "lab-1", None).await, Exit::UsageOrConnection);
    assert_eq!(ingest(&app, dir, "other", Some(&key)).await, Exit::SomeNotRegistered);
    assert_eq!(app.count("faces").await, 1);

    let (ok, _, stderr) = facerec(&app, &["keys", "delete", &id]);
    assert!(ok, "{stderr}");
    assert_eq!(ingest(&app, dir, "lab-1", Some(&key)).await, Exit::UsageOrConnection);
    let (ok, _, stderr) = facerec(&app, &["keys", "delete", &id]);
    assert!(!ok && stderr.contains("key_not_found"), "{stderr}");
    app.stop().await.unwrap();
}

/// On an open api a key limits nothing: `facerec keys create` still makes it
/// (to prepare keys before a master key is set) and says so on stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_create_warns_that_an_open_api_enforces_nothing() {
    let app = TestApp::api_only().await.unwrap();
    let args = ["keys", "create", "--name", "early", "--actions", "recognize", "--collections", "*"];
    let (ok, stdout, stderr) = facerec(&app, &args);
    assert!(ok, "{stderr}");
    let created: Value = serde_json::from_str(&stdout).unwrap();
    assert!(created["key"].as_str().is_some_and(|k| k.starts_with("frk_")), "{stdout}");
    assert!(stderr.contains("warning:") && stderr.contains("limits nothing"), "{stderr}");
    app.stop().await.unwrap();
}

/// `--help` names `FACEREC_URL` without printing an empty value for it when unset.
#[test]
fn help_shows_no_empty_environment_values() {
    use clap::CommandFactory;
    let mut command = Cli::command();
    let keys = command.find_subcommand_mut("keys").expect("a keys command");
    let help = keys.render_help().to_string();
    assert!(help.contains("[env: FACEREC_URL]") && !help.contains("FACEREC_URL="), "{help}");
}

/// The services' `--help`, as an operator runs it: every variable named,
/// none shown as "set to nothing" (`[env: FACEREC_QUEUE=]`), no value printed.
#[test]
fn the_services_help_names_variables_without_values() {
    for binary in ["facerec-api", "facerec-worker"] {
        let out = std::process::Command::new(facerec_testkit::built_binary(binary))
            .arg("--help")
            .env_remove("FACEREC_QUEUE")
            .env("DATABASE_URL", "postgres://user:hunter2@127.0.0.1/x")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && help.contains("[env: FACEREC_QUEUE]"), "{binary}: {help}");
        assert!(!help.contains("=]") && !help.contains("hunter2"), "{binary}: {help}");
    }
}
