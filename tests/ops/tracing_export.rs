//! Traces as an operator's collector receives them: the api and worker
//! binaries export OTLP (HTTP, protobuf) to a receiver here, and one job's
//! spans, from the client's `traceparent` through the api's request to the
//! worker's job and its stages, share one trace id, also when the logs are
//! quieted. The export interval is ten minutes, so what arrives was sent by
//! the flush at shutdown.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use facerec_e2e::process::Process;
use facerec_e2e::{TestDatabase, built_binary, form, photo, wait_for_job_at};
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
    let env = |extra: (&'static str, &str)| {
        vec![
            ("DATABASE_URL", db.database_url.clone()),
            ("FACEREC_QUEUE", queue.clone()),
            ("RUST_LOG", "info".to_owned()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone()),
            // Nothing is sent on a timer during the test: only the flush at shutdown.
            ("OTEL_BSP_SCHEDULE_DELAY", "600000".to_owned()),
            // Nor when a batch fills up (each poll of the job is a span of the api's).
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100000".to_owned()),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "100000".to_owned()),
            ("FACEREC_WORKER_CONCURRENCY", "1".to_owned()),
            ("FACEREC_INTRA_THREADS", "1".to_owned()),
            (extra.0, extra.1.to_owned()),
        ]
    };
    let mut api = Process::start(&built_binary("facerec-api"), &[], &env(("FACEREC_API_ADDR", "127.0.0.1:0")));
    let api_addr = api.address_after("api listening", Duration::from_secs(60)).await;
    // The worker logs little (warnings, and the line saying it is ready): quiet logs do not empty the traces.
    let mut worker_env = env(("FACEREC_POLL_INTERVAL_MS", "20"));
    worker_env.retain(|(k, _)| *k != "RUST_LOG");
    worker_env.push(("RUST_LOG", "warn,facerec_worker::app=info".to_owned()));
    let mut worker = Process::start(&built_binary("facerec-worker"), &[], &worker_env);
    worker.line_with("worker ready", Duration::from_secs(120)).await;

    // The client's own trace context, as a traced client sends it.
    let client_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let client = reqwest::Client::new();
    let response = client
        .post(format!("http://{api_addr}/v1/register"))
        .header("traceparent", format!("00-{client_trace}-{client_span}-01"))
        .multipart(form(Some(photo("obama.jpg")), &[("subject", "traced"), ("collection", "traces")]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["job_id"].as_str().unwrap().to_owned();
    let job = wait_for_job_at(&client, &format!("http://{api_addr}"), &id, Duration::from_secs(60)).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert!(spans.lock().unwrap().is_empty(), "spans arrived before shutdown: the schedule delay was not applied");

    // SIGTERM: each process drains, flushes its spans, and exits cleanly.
    api.signal("TERM");
    worker.signal("TERM");
    assert!(api.exit_within(Duration::from_secs(40)).await.success(), "{}", api.output());
    assert!(worker.exit_within(Duration::from_secs(60)).await.success(), "{}", worker.output());

    let spans = spans.lock().unwrap().clone();
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
