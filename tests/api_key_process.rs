//! The api binary itself, as an operator runs it: production mode refuses to
//! start without a master key, open mode warns, and no key ever reaches its
//! logs (read at `debug`), nor the database except as a hash.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use facerec_e2e::{TestDatabase, bearer, built_binary, client_with_authorization};
use reqwest::Method;
use serde_json::{Value, json};

const MASTER: &str = "operator-master-key-5f0c2a9d";

fn api_binary() -> PathBuf {
    built_binary("facerec-api")
}

/// The api binary with its stdout and stderr collected.
struct ApiProcess {
    child: Child,
    output: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl ApiProcess {
    fn start(env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(api_binary());
        command.env_remove("FACEREC_MASTER_KEY").env_remove("FACEREC_ENV").env_remove("FACEREC_KEY_PEPPER");
        command.env("FACEREC_API_ADDR", "127.0.0.1:0").env("RUST_LOG", "debug").env("NO_COLOR", "1");
        command.envs(env.iter().copied()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().unwrap_or_else(|e| panic!("{}: {e}", api_binary().display()));
        let output = Arc::new(Mutex::new(String::new()));
        let stdout: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let stderr: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        let readers = [stdout, stderr]
            .into_iter()
            .map(|stream| {
                let output = output.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(stream).lines().map_while(Result::ok) {
                        let mut all = output.lock().unwrap();
                        all.push_str(&line);
                        all.push('\n');
                    }
                })
            })
            .collect();
        Self { child, output, readers }
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// The base URL, once the api logs that it listens.
    async fn base_url(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let output = self.output();
            if let Some(line) = output.lines().find(|l| l.contains("api listening")) {
                let port: String =
                    line.split("127.0.0.1:").nth(1).unwrap().chars().take_while(char::is_ascii_digit).collect();
                return format!("http://127.0.0.1:{port}");
            }
            assert!(Instant::now() < deadline, "the api did not start:\n{output}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the process to exit by itself: its status and everything it printed.
    fn exit(mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the api did not exit:\n{}", self.output());
            std::thread::sleep(Duration::from_millis(50));
        };
        self.readers.drain(..).for_each(|r| r.join().unwrap());
        (status, self.output())
    }

    fn kill(mut self) -> String {
        self.child.kill().unwrap();
        self.exit().1
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_needs_a_master_key_and_open_mode_warns() {
    let nowhere = [("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")];
    let (status, output) = ApiProcess::start(&[nowhere[0], ("FACEREC_ENV", "production")]).exit();
    assert!(!status.success() && output.contains("FACEREC_ENV=production needs FACEREC_MASTER_KEY"), "{output}");
    let (status, output) = ApiProcess::start(&[nowhere[0], ("FACEREC_MASTER_KEY", "short")]).exit();
    assert!(!status.success() && output.contains("at least 16 bytes"), "{output}");
    assert!(!output.contains("short\n") && !output.contains("\"short\""), "the rejected key is echoed:\n{output}");

    let db = TestDatabase::create().await.unwrap();
    let queue = format!("facerec-test-{}", uuid::Uuid::new_v4().simple());
    let api = ApiProcess::start(&[("DATABASE_URL", &db.database_url), ("FACEREC_QUEUE", &queue)]);
    let base = api.base_url().await;
    let response = reqwest::get(format!("{base}/v1/jobs")).await.unwrap();
    assert_eq!(response.status(), 200, "open mode needs no key");
    let output = api.kill();
    assert!(output.contains("WARN") && output.contains("no FACEREC_MASTER_KEY: the api is open"), "{output}");
    db.drop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_never_reach_the_logs_and_are_stored_only_as_hashes() {
    let db = TestDatabase::create().await.unwrap();
    let queue = format!("facerec-test-{}", uuid::Uuid::new_v4().simple());
    let api = ApiProcess::start(&[
        ("DATABASE_URL", &db.database_url),
        ("FACEREC_QUEUE", &queue),
        ("FACEREC_MASTER_KEY", MASTER),
    ]);
    let base = api.base_url().await;
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
    let output = api.kill();
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
