//! The deployment files, checked by the tools that will read them: the alert
//! rules by `promtool` (and its rule unit tests), Prometheus's configuration,
//! and the compose file by `docker-compose config` (the Compose
//! specification's validator; no Docker engine is needed to run it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(program: &str, args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(program);
    command.args(args).current_dir(dir);
    // Only what the test sets: not a developer's own exports.
    for var in [
        "POSTGRES_PASSWORD",
        "FACEREC_MASTER_KEY",
        "FACEREC_WORKERS",
        "FACEREC_WEBHOOK_SECRET",
        "COMPOSE_FILE",
        "COMPOSE_PROJECT_NAME",
    ] {
        command.env_remove(var);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap_or_else(|e| panic!("{program} (make test installs it): {e}"))
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let dir = root().join("deploy/prometheus");
    let check = run("promtool", &["check", "rules", "alerts.yml"], &dir, &[]);
    assert!(check.status.success(), "{}", text(&check));
    assert!(text(&check).contains("SUCCESS: 7 rules found"), "{}", text(&check));
    let tests = run("promtool", &["test", "rules", "alerts.test.yml"], &dir, &[]);
    assert!(tests.status.success(), "{}", text(&tests));
    let config = run("promtool", &["check", "config", "prometheus.yml"], &dir, &[]);
    assert!(config.status.success(), "{}", text(&config));
}

#[test]
fn broken_rules_are_caught_by_promtool() {
    // The check above can fail: a rule with a bad expression does.
    let dir = tempfile::tempdir().unwrap();
    let rules = std::fs::read_to_string(root().join("deploy/prometheus/alerts.yml")).unwrap();
    std::fs::write(
        dir.path().join("alerts.yml"),
        rules.replace("sum(facerec_worker_ready)", "sum(facerec_worker_ready"),
    )
    .unwrap();
    let check = run("promtool", &["check", "rules", "alerts.yml"], dir.path(), &[]);
    assert!(!check.status.success(), "{}", text(&check));
}

/// `docker-compose config` with these variables: its exit status and the
/// resolved file as JSON.
fn compose_config(env: &[(&str, &str)]) -> (bool, Value, String) {
    // An empty env file: not a developer's `.env` either.
    let empty = tempfile::NamedTempFile::new().unwrap();
    let env_file = empty.path().to_str().unwrap();
    let output = run("docker-compose", &["--env-file", env_file, "config"], &root(), env);
    if !output.status.success() {
        return (false, Value::Null, text(&output));
    }
    // docker-compose 1.x prints YAML; its own dependency (PyYAML) turns it into JSON.
    let mut to_json = Command::new("python3")
        .args(["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    to_json.stdin.take().unwrap().write_all(&output.stdout).unwrap();
    let json = to_json.wait_with_output().unwrap();
    assert!(json.status.success());
    (true, serde_json::from_slice(&json.stdout).unwrap(), text(&output))
}

#[test]
fn the_compose_file_validates_and_runs_every_part_with_healthchecks_and_restarts() {
    let secrets =
        [("POSTGRES_PASSWORD", "compose-test-password"), ("FACEREC_MASTER_KEY", "compose-test-master-key-0123")];
    let (valid, config, output) = compose_config(&secrets);
    assert!(valid, "{output}");
    let services = config["services"].as_object().unwrap();
    let mut names: Vec<_> = services.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["api", "otel-collector", "postgres", "prometheus", "redis", "worker"]);
    for (name, service) in services {
        assert_eq!(service["restart"], "unless-stopped", "{name}");
        if name != "otel-collector" {
            assert!(service["healthcheck"]["test"].is_array(), "{name} has no healthcheck");
        }
    }
    let (api, worker) = (&services["api"], &services["worker"]);
    assert_eq!(worker["deploy"]["replicas"], 2, "{worker}");
    for service in [api, worker] {
        assert_eq!(service["stop_grace_period"], "60s", "{service}");
        assert_eq!(service["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://otel-collector:4318");
        assert_eq!(service["depends_on"]["postgres"]["condition"], "service_healthy");
        let url = service["environment"]["DATABASE_URL"].as_str().unwrap();
        assert!(url.contains("compose-test-password@postgres"), "{url}");
    }
    assert_eq!(api["environment"]["FACEREC_ENV"], "production");
    // Metrics on a port of their own, not published (the public one needs the master key for them).
    assert_eq!(api["environment"]["FACEREC_API_METRICS_ADDR"], "0.0.0.0:9100");
    assert!(!api["ports"].to_string().contains("9100"), "{api}");
    assert_eq!(worker["environment"]["FACEREC_WORKER_METRICS_ADDR"], "0.0.0.0:9100");
    assert!(worker["healthcheck"]["test"].to_string().contains("9100/readyz"));

    // More workers by one variable.
    let scaled: Vec<_> = secrets.iter().copied().chain([("FACEREC_WORKERS", "5")]).collect();
    let (_, config, output) = compose_config(&scaled);
    assert_eq!(config["services"]["worker"]["deploy"]["replicas"], 5, "{output}");

    // Without the secrets it refuses, naming what is missing, instead of
    // starting an open api or a database with a known password.
    let (valid, _, output) = compose_config(&[("POSTGRES_PASSWORD", "compose-test-password")]);
    assert!(!valid && output.contains("FACEREC_MASTER_KEY"), "{output}");
    let (valid, _, output) = compose_config(&[("FACEREC_MASTER_KEY", "compose-test-master-key-0123")]);
    assert!(!valid && output.contains("POSTGRES_PASSWORD"), "{output}");
}

#[test]
fn prometheus_in_compose_scrapes_the_api_and_every_worker_replica() {
    let config = std::fs::read_to_string(root().join("deploy/prometheus/prometheus.yml")).unwrap();
    assert!(config.contains(r#"targets: ["api:9100"]"#), "the api's metrics listener: {config}");
    assert!(config.contains(r#"names: ["worker"]"#) && config.contains("port: 9100"), "{config}");
    let compose = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    assert!(compose.contains("./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml"), "{compose}");
}
