//! The api binary itself, as an operator runs it: production mode refuses to
//! start without a master key, open mode warns, and no key ever reaches its
//! logs (read at `debug`), nor the database except as a hash.

use std::process::Command;
use std::time::Duration;

use facerec_testkit::process::Process;
use facerec_testkit::{TestDatabase, bearer, built_binary, client_with_authorization};
use reqwest::Method;
use serde_json::{Value, json};

const MASTER: &str = "operator-master-key-5f0c2a9d";

/// The api binary with its output collected, with `env` and no key settings of ours.
fn start_api(env: &[(&str, &str)]) -> Process {
    let mut command = Command::new(built_binary("facerec-api"));
    command.env_remove("FACEREC_MASTER_KEY").env_remove("FACEREC_ENV").env_remove("FACEREC_KEY_PEPPER");
    command.env("FACEREC_API_ADDR", "127.0.0.1:0").env("RUST_LOG", "debug").env("NO_COLOR", "1");
    command.envs(env.iter().copied());
    Process::spawn(command)
}

async fn base_url(api: &Process) -> String {
    format!("http://{}", api.address_after("api listening", Duration::from_secs(30)).await)
}

/// Waits for the api to exit by itself: its status and everything it printed.
async fn exit(mut api: Process) -> (std::process::ExitStatus, String) {
    let status = api.exit_within(Duration::from_secs(20)).await;
    (status, api.output())
}

/// Kills the api: everything it printed.
async fn kill(api: Process) -> String {
    api.signal("KILL");
    exit(api).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_needs_a_master_key_and_open_mode_warns() {
    let nowhere = [("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")];
    let (status, output) = exit(start_api(&[nowhere[0], ("FACEREC_ENV", "production")])).await;
    assert!(!status.success() && output.contains("FACEREC_ENV=production needs FACEREC_MASTER_KEY"), "{output}");
    let (status, output) = exit(start_api(&[nowhere[0], ("FACEREC_MASTER_KEY", "short")])).await;
    assert!(!status.success() && output.contains("at least 16 bytes"), "{output}");
    assert!(!output.contains("short\n") && !output.contains("\"short\""), "the rejected key is echoed:\n{output}");

    let db = TestDatabase::create().await.unwrap();
    let queue = format!("facerec-test-{}", uuid::Uuid::new_v4().simple());
    let api = start_api(&[("DATABASE_URL", &db.database_url), ("FACEREC_QUEUE", &queue)]);
    let base = base_url(&api).await;
    let response = reqwest::get(format!("{base}/v1/jobs")).await.unwrap();
    assert_eq!(response.status(), 200, "open mode needs no key");
    let output = kill(api).await;
    assert!(output.contains("WARN") && output.contains("no FACEREC_MASTER_KEY: the api is open"), "{output}");
    db.drop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_never_reach_the_logs_and_are_stored_only_as_hashes() {
    let db = TestDatabase::create().await.unwrap();
    let queue = format!("facerec-test-{}", uuid::Uuid::new_v4().simple());
    let api =
        start_api(&[("DATABASE_URL", &db.database_url), ("FACEREC_QUEUE", &queue), ("FACEREC_MASTER_KEY", MASTER)]);
    let base = base_url(&api).await;
    let master = bearer(MASTER);
    let body = json!({"name": "kiosk", "actions": ["jobs.read"], "collections": ["lobby"]});
    let response = master.post(format!("{base}/v1/keys")).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();

    let wrong = format!("frk_{}", "ab".repeat(32));
    let attempts = [
        (bearer(&key), 200),
        (bearer(&wrong), 401),
        (client_with_authorization(&format!("Basic {MASTER}")), 401),
        (client_with_authorization(&format!("Bearer {key}x")), 401),
        (master.clone(), 200),
    ];
    for (client, expected) in attempts {
        let response = client.request(Method::GET, format!("{base}/v1/jobs")).send().await.unwrap();
        assert_eq!(response.status(), expected);
    }
    let response = bearer(&key).get(format!("{base}/v1/keys")).send().await.unwrap();
    assert_eq!(response.status(), 403);
    let output = kill(api).await;
    assert!(output.contains("api key created") && output.contains(&id), "the logs were not captured:\n{output}");
    let secret_part = &key["frk_".len()..];
    for secret in [MASTER, key.as_str(), secret_part, &wrong] {
        assert!(!output.contains(secret), "a key is in the logs");
    }

    let (hash, prefix): (Vec<u8>, String) =
        sqlx::query_as("SELECT key_hash, key_prefix FROM api_keys").fetch_one(&db.db).await.unwrap();
    assert_eq!(hash.len(), 32);
    assert!(key.starts_with(&prefix) && prefix.len() < 16, "{prefix}");
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT row_to_json(k)::text FROM api_keys k").fetch_all(&db.db).await.unwrap();
    assert!(rows.iter().all(|row| !row.contains(secret_part) && !row.contains(MASTER)), "{rows:?}");
    db.drop().await.unwrap();
}
