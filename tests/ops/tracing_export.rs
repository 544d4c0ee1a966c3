//! Traces as an operator's collector receives them: the api and worker
//! binaries export OTLP (HTTP, protobuf) to a receiver here, and one job's
//! spans, from the client's `traceparent` through the api's request to the
//! worker's job and its stages, share one trace id, also when the logs are
//! quieted. The export interval is ten minutes, so what arrives was sent by
//! the flush at shutdown. A job fed from a batch, and a job whose message was
//! lost and re-sent by the reconciler, join the trace of the request that
//! created them too (the trace context is kept with the job's row).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use facerec_testkit::process::Process;
use facerec_testkit::{TestDatabase, built_binary, form, photo, wait_for_job_at};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use serde_json::Value;

/// One received span: its service, trace id, span id, parent span id and name.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
}

/// An OTLP/HTTP receiver: every span of every `POST /v1/traces`.
async fn start_receiver() -> (Arc<Mutex<Vec<Received>>>, String) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let seen = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: Bytes| {
            let seen = seen.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf request");
                for resource in request.resource_spans {
                    let service = resource
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|a| a.key == "service.name")
                        .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                            AnyValue::StringValue(s) => Some(s.clone()),
                            _ => None,
                        })
                        .unwrap_or_default();
                    for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                        seen.lock().unwrap().push(Received {
                            service: service.clone(),
                            trace_id: hex::encode(&span.trace_id),
                            span_id: hex::encode(&span.span_id),
                            parent: hex::encode(&span.parent_span_id),
                            name: span.name,
                        });
                    }
                }
                ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (spans, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_id_runs_from_the_client_through_the_api_into_the_worker_and_is_flushed_at_shutdown() {
    let db = TestDatabase::create().await.unwrap();
    let (spans, endpoint) = start_receiver().await;
    let queue = format!("facerec-test-{}", uuid::Uuid::new_v4().simple());
    let env = traced_env(&db, &queue, &endpoint);
    let (api, base) = start_api(&env).await;
    // The worker logs little (warnings, and the line saying it is ready): quiet logs do not empty the traces.
    let worker = start_worker(&env, &[]).await;

    // The client's own trace context, as a traced client sends it.
    let client_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{base}/v1/register"))
        .header("traceparent", format!("00-{client_trace}-{client_span}-01"))
        .multipart(form(Some(photo("obama.jpg")), &[("subject", "traced"), ("collection", "traces")]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["job_id"].as_str().unwrap().to_owned();
    let job = wait_for_job_at(&client, &base, &id, Duration::from_secs(60)).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert!(spans.lock().unwrap().is_empty(), "spans arrived before shutdown: the schedule delay was not applied");

    // SIGTERM: each process drains, flushes its spans, and exits cleanly.
    let spans = stop_and_collect(api, worker, &spans).await;
    let traced: Vec<_> = spans.iter().filter(|s| s.trace_id == client_trace).collect();
    let of = |service: &str, name: &str| traced.iter().find(|s| s.service == service && s.name == name).copied();
    let request = of("facerec-api", "request").unwrap_or_else(|| panic!("no api request span in {spans:#?}"));
    assert_eq!(request.parent, client_span, "the request continues the client's span");
    let job = of("facerec-worker", "job").unwrap_or_else(|| panic!("no worker job span in {spans:#?}"));
    assert!(
        traced.iter().any(|s| s.service == "facerec-api" && s.span_id == job.parent),
        "the job's span continues one of the api's spans of the request: {traced:#?}"
    );
    for stage in ["decode", "detect", "align", "embed", "store"] {
        let span = of("facerec-worker", stage).unwrap_or_else(|| panic!("no {stage} span in {traced:#?}"));
        assert_eq!(span.parent, job.span_id, "{stage} is inside the job");
    }
    db.drop().await.unwrap();
}

/// What both binaries of every test here run with: the test's database and
/// queue, the receiver, and nothing exported before the flush at shutdown.
fn traced_env(db: &TestDatabase, queue: &str, endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", db.database_url.clone()),
        ("FACEREC_QUEUE", queue.to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.to_owned()),
        // Nothing is sent on a timer during a test: only the flush at shutdown.
        ("OTEL_BSP_SCHEDULE_DELAY", "600000".to_owned()),
        // Nor when a batch fills up (each poll of a job is a span of the api's).
        ("OTEL_BSP_MAX_QUEUE_SIZE", "100000".to_owned()),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "100000".to_owned()),
        ("FACEREC_WORKER_CONCURRENCY", "1".to_owned()),
        ("FACEREC_INTRA_THREADS", "1".to_owned()),
    ]
}

/// The api binary, listening; its base URL.
async fn start_api(env: &[(&'static str, String)]) -> (Process, String) {
    let mut env = env.to_vec();
    env.extend([("RUST_LOG", "info".to_owned()), ("FACEREC_API_ADDR", "127.0.0.1:0".to_owned())]);
    let api = Process::start(&built_binary("facerec-api"), &[], &env);
    let addr = api.address_after("api listening", Duration::from_secs(60)).await;
    (api, format!("http://{addr}"))
}

/// The worker binary, ready, with `extra` settings.
async fn start_worker(env: &[(&'static str, String)], extra: &[(&'static str, &str)]) -> Process {
    let mut env = env.to_vec();
    env.push(("RUST_LOG", "warn,facerec_worker::app=info".to_owned()));
    env.push(("FACEREC_POLL_INTERVAL_MS", "20".to_owned()));
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let worker = Process::start(&built_binary("facerec-worker"), &[], &env);
    worker.line_with("worker ready", Duration::from_secs(120)).await;
    worker
}

/// Stops both binaries with SIGTERM (each flushes its spans) and returns every span received.
async fn stop_and_collect(mut api: Process, mut worker: Process, spans: &Mutex<Vec<Received>>) -> Vec<Received> {
    api.signal("TERM");
    worker.signal("TERM");
    assert!(api.exit_within(Duration::from_secs(40)).await.success(), "{}", api.output());
    assert!(worker.exit_within(Duration::from_secs(60)).await.success(), "{}", worker.output());
    spans.lock().unwrap().clone()
}

/// Asserts that the worker ran a job in `trace`: a `job` span that continues
/// one of the api's spans of that trace, with every stage of a register inside.
fn assert_worker_job_in_trace(spans: &[Received], trace: &str) {
    let traced: Vec<_> = spans.iter().filter(|s| s.trace_id == trace).collect();
    let jobs: Vec<_> = traced.iter().copied().filter(|s| s.service == "facerec-worker" && s.name == "job").collect();
    assert!(!jobs.is_empty(), "no worker job span in trace {trace}: {spans:#?}");
    for job in &jobs {
        assert!(
            traced.iter().any(|s| s.service == "facerec-api" && s.span_id == job.parent),
            "the job's span continues one of the api's spans of the request: {traced:#?}"
        );
    }
    let stages = ["decode", "detect", "align", "embed", "store"];
    let ran = |job: &Received| {
        stages.iter().all(|stage| {
            traced.iter().any(|s| s.service == "facerec-worker" && s.name == *stage && s.parent == job.span_id)
        })
    };
    assert!(jobs.iter().copied().any(ran), "no job span of trace {trace} holds every stage: {traced:#?}");
}

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned())
}

/// A job fed from a batch carries the trace of the `POST /v1/batches` that
/// uploaded it: the batch row keeps the request's trace context and copies it
/// to every job it feeds, whose message carries it to the worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_fed_job_joins_the_trace_of_the_batch_upload() {
    let db = TestDatabase::create().await.unwrap();
    let (spans, endpoint) = start_receiver().await;
    let queue = format!("facerec-test-{}", uuid::Uuid::new_v4().simple());
    let env = traced_env(&db, &queue, &endpoint);
    let (api, base) = start_api(&env).await;
    let worker = start_worker(&env, &[]).await;

    let client_trace = "5cf92f3577b34da6a3ce929d0e0e4737";
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("traced/obama.jpg", zip::write::SimpleFileOptions::default()).unwrap();
    std::io::Write::write_all(&mut zip, &photo("obama.jpg")).unwrap();
    let archive = zip.finish().unwrap().into_inner();
    let form = reqwest::multipart::Form::new()
        .part("archive", reqwest::multipart::Part::bytes(archive).file_name("photos.zip"))
        .text("collection", "traces");
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{base}/v1/batches"))
        .header("traceparent", format!("00-{client_trace}-00f067aa0ba902b8-01"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let batch_id = response.json::<Value>().await.unwrap()["batch_id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let batch = loop {
        let batch: Value =
            client.get(format!("{base}/v1/batches/{batch_id}")).send().await.unwrap().json().await.unwrap();
        if batch["status"] != "running" {
            break batch;
        }
        assert!(std::time::Instant::now() < deadline, "batch still running: {batch}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let outcome = (batch["status"].as_str(), batch["counts"]["succeeded"].as_i64());
    assert_eq!(outcome, (Some("completed"), Some(1)), "{batch}");

    let spans = stop_and_collect(api, worker, &spans).await;
    assert_worker_job_in_trace(&spans, client_trace);
    facerec_queue::JobQueue::connect(&redis_url(), &queue).await.unwrap().purge().await.unwrap();
    db.drop().await.unwrap();
}

/// A job whose message is lost (its queue purged, as a Redis flush would) is
/// sent again by a worker's reconciler from the job's row, and its spans still
/// join the trace of the request that created it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_re_enqueued_by_the_reconciler_keeps_the_trace_of_its_request() {
    let db = TestDatabase::create().await.unwrap();
    let (spans, endpoint) = start_receiver().await;
    let name = format!("facerec-test-{}", uuid::Uuid::new_v4().simple());
    let env = traced_env(&db, &name, &endpoint);
    let (api, base) = start_api(&env).await;

    let client_trace = "6df92f3577b34da6a3ce929d0e0e4738";
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{base}/v1/register"))
        .header("traceparent", format!("00-{client_trace}-00f067aa0ba902b9-01"))
        .multipart(form(Some(photo("obama.jpg")), &[("subject", "reconciled"), ("collection", "traces")]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["job_id"].as_str().unwrap().to_owned();
    // No worker runs yet: the api's message waits, and is lost.
    let queue = facerec_queue::JobQueue::connect(&redis_url(), &name).await.unwrap();
    assert_eq!(queue.held_count().await.unwrap(), 1, "the api's message");
    queue.purge().await.unwrap();
    assert_eq!(queue.held_count().await.unwrap(), 0, "the message is gone; only the job's row remains");

    // Every second, the reconciler re-sends jobs queued for over a second.
    let worker = start_worker(&env, &[("FACEREC_RECONCILE_SECS", "1"), ("FACEREC_REQUEUE_AFTER_SECS", "1")]).await;
    let job = wait_for_job_at(&client, &base, &id, Duration::from_secs(60)).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    // The reconciler's message carries the trace context kept in the row.
    let sent = queue.held_payloads().await.unwrap();
    assert!(
        sent.iter()
            .any(|m| m["job_id"] == id.as_str() && m["traceparent"].as_str().is_some_and(|t| t.contains(client_trace))),
        "the reconciler's message for {id} has no traceparent of trace {client_trace}: {sent:?}"
    );

    let spans = stop_and_collect(api, worker, &spans).await;
    assert_worker_job_in_trace(&spans, client_trace);
    queue.purge().await.unwrap();
    db.drop().await.unwrap();
}
