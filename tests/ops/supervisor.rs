//! `make up`'s supervisor (scripts/run.sh) as an operator meets it: a worker
//! killed with SIGKILL, as the OOM killer would, is restarted while the api
//! and the other worker keep serving and every job succeeds; SIGTERM then
//! stops everything gracefully.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use facerec_testkit::process::{Process, descendants, free_port, signal_pid};
use facerec_testkit::{TestDatabase, built_binary, form, photo, wait_for_job_at, wait_until};
use serde_json::Value;

/// Two consecutive free ports (the supervisor gives worker i the base + i).
fn two_free_ports(besides: u16) -> u16 {
    loop {
        let base = free_port();
        if base < u16::MAX && ![base, base + 1].contains(&besides) && TcpListener::bind(("127.0.0.1", base + 1)).is_ok()
        {
            return base;
        }
    }
}

fn workers_of(supervisor: u32) -> Vec<u32> {
    descendants(supervisor).into_iter().filter(|(_, name)| name == "facerec-worker").map(|(pid, _)| pid).collect()
}

async fn ready(client: &reqwest::Client, url: &str) -> bool {
    client.get(url).timeout(Duration::from_secs(2)).send().await.is_ok_and(|r| r.status() == 200)
}

async fn submit(client: &reqwest::Client, api: &str) -> String {
    let response =
        client.post(format!("{api}/v1/embed")).multipart(form(Some(photo("obama.jpg")), &[])).send().await.unwrap();
    assert_eq!(response.status(), 202);
    response.json::<Value>().await.unwrap()["job_id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_by_sigkill_is_restarted_while_jobs_keep_succeeding_and_sigterm_stops_all() {
    let db = TestDatabase::create().await.unwrap();
    let queue = format!("facerec-test-{}", uuid::Uuid::new_v4().simple());
    let api_port = free_port();
    let metrics_base = two_free_ports(api_port);
    let bin_dir = built_binary("facerec-api").parent().unwrap().to_path_buf();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/run.sh");
    let mut command = Command::new("bash");
    command.arg(&script).envs([
        ("FACEREC_BIN_DIR", bin_dir.display().to_string()),
        ("FACEREC_WORKERS", "2".to_owned()),
        ("FACEREC_API_ADDR", format!("127.0.0.1:{api_port}")),
        ("FACEREC_WORKER_METRICS_BASE", metrics_base.to_string()),
        ("DATABASE_URL", db.database_url.clone()),
        ("FACEREC_QUEUE", queue),
        ("FACEREC_WORKER_CONCURRENCY", "1".to_owned()),
        ("FACEREC_INTRA_THREADS", "1".to_owned()),
        ("FACEREC_POLL_INTERVAL_MS", "20".to_owned()),
        // A job the killed worker held is taken over soon.
        ("FACEREC_JOB_LEASE_SECS", "3".to_owned()),
        ("FACEREC_SHUTDOWN_TIMEOUT_SECS", "10".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]);
    let mut supervisor = Process::spawn_group(command);
    let api = format!("http://127.0.0.1:{api_port}");
    let probes: Vec<String> = (0..2).map(|i| format!("http://127.0.0.1:{}/readyz", metrics_base + i)).collect();
    let client = reqwest::Client::new();
    let ready_all = || format!("the api and both workers ready:\n{}", supervisor.output());
    wait_until(Duration::from_secs(120), ready_all, || async {
        ready(&client, &format!("{api}/readyz")).await
            && ready(&client, &probes[0]).await
            && ready(&client, &probes[1]).await
    })
    .await;
    let before = workers_of(supervisor.pid());
    assert_eq!(before.len(), 2, "{before:?}\n{}", supervisor.output());

    // Jobs in flight while one worker dies the way the OOM killer kills.
    let mut jobs = Vec::new();
    for _ in 0..4 {
        jobs.push(submit(&client, &api).await);
    }
    signal_pid(before[0], "KILL");
    for _ in 0..4 {
        jobs.push(submit(&client, &api).await);
    }
    supervisor.line_with("exited with status 137; restarting it in 1s", Duration::from_secs(20)).await;
    let replaced = || format!("the killed worker replaced and ready:\n{}", supervisor.output());
    wait_until(Duration::from_secs(120), replaced, || async {
        let now = workers_of(supervisor.pid());
        now.len() == 2
            && !now.contains(&before[0])
            && now.contains(&before[1])
            && ready(&client, &probes[0]).await
            && ready(&client, &probes[1]).await
    })
    .await;
    for _ in 0..4 {
        jobs.push(submit(&client, &api).await);
    }
    for id in &jobs {
        let job = wait_for_job_at(&client, &api, id, Duration::from_secs(90)).await;
        assert_eq!(job["status"], "succeeded", "{job}\n{}", supervisor.output());
    }
    // The api and the other worker were never restarted.
    assert_eq!(supervisor.output().matches("restarting it").count(), 1, "{}", supervisor.output());

    // SIGTERM: every process drains and exits, then the supervisor.
    let children: Vec<u32> = descendants(supervisor.pid()).into_iter().map(|(pid, _)| pid).collect();
    supervisor.signal("TERM");
    let status = supervisor.exit_within(Duration::from_secs(60)).await;
    assert!(status.success(), "{status}\n{}", supervisor.output());
    for pid in children {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid),
            "{pid} outlived the supervisor"
        );
    }
    let output = supervisor.output();
    assert!(output.contains("shutting down: finishing jobs in hand"), "{output}");
    assert!(output.contains("shutting down: finishing requests in flight"), "{output}");
    db.drop().await.unwrap();
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')))
}
