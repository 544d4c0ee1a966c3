//! Logging and tracing setup shared by every facerec service binary, how
//! they run (`run_service`) and read their settings (`parse_settings`).
//!
//! `tracing` spans and events go to stdout (text or JSON lines, chosen by
//! `FACEREC_LOG_FORMAT`, one of the [`TelemetryArgs`] every binary flattens
//! into its settings) and into an OpenTelemetry tracer, so every span has a
//! trace id that a job can carry from the api to the worker; the spans are
//! exported over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set ([`export`]).
//! Prometheus metrics: their names, the recorder and the text of `/metrics`
//! ([`metrics`]). Also how every binary runs: its runtime and its graceful
//! shutdown ([`run_service`]).

mod args;
pub mod export;
mod filter;
pub mod metrics;
mod service;
mod settings;

pub use args::{LogFormat, TelemetryArgs};
pub use export::shutdown_tracing;
pub use metrics::Stage;
pub use service::{Shutdown, run_service, shutdown_signal};
pub use settings::{parse_settings, without_env_values};

use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// [`init_tracing_with`] the default settings (text logs): for the test kit,
/// whose apps run without a binary's settings.
pub fn init_tracing(service: &'static str) {
    init_tracing_with(service, &TelemetryArgs::default());
}

/// Installs the global subscriber once; later calls (e.g. from several tests) do nothing.
/// `RUST_LOG` filters the logs (default `info`); `args.log_format`
/// (`FACEREC_LOG_FORMAT`) chooses text or JSON lines. Spans are traced at
/// `info` whatever `RUST_LOG` says ([`filter`]).
pub fn init_tracing_with(service: &'static str, args: &TelemetryArgs) {
    let logs = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter::DEFAULT_FILTER));
    let fmt = match args.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer().json().with_current_span(true).boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer().boxed(),
    };
    let provider = export::provider(service);
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer(service));
    let _ = tracing_subscriber::registry().with(filter::LogsOrTraces::new(logs)).with(fmt).with(otel).try_init();
}

/// The W3C `traceparent` of the current span, to carry a trace across the
/// queue; `None` outside any traced span.
pub fn current_traceparent() -> Option<String> {
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = std::collections::HashMap::new();
    opentelemetry_sdk::propagation::TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` part of the trace named by `traceparent` (as produced by
/// [`current_traceparent`], possibly in another process). Ignores malformed values.
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    let carrier = std::collections::HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let cx = opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// The trace id of `span`, for log lines and error reports.
pub fn trace_id(span: &tracing::Span) -> String {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    span.context().span().span_context().trace_id().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::layer::SubscriberExt;

    fn traced<T>(f: impl FnOnce() -> T) -> T {
        let provider = SdkTracerProvider::builder().build();
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, f)
    }

    #[test]
    fn a_span_continued_from_a_traceparent_joins_that_trace() {
        traced(|| {
            let request = tracing::info_span!("request");
            let traceparent = request.in_scope(current_traceparent).expect("a traced span has a traceparent");
            assert!(traceparent.starts_with("00-"), "{traceparent}");
            let request_trace = trace_id(&request);
            assert!(traceparent.contains(&request_trace));

            let job = tracing::info_span!("job");
            let unrelated = trace_id(&tracing::info_span!("other"));
            continue_trace(&job, &traceparent);
            assert_eq!(trace_id(&job), request_trace);
            assert_ne!(unrelated, request_trace);
        });
    }

    #[test]
    fn malformed_traceparents_are_ignored_and_no_span_has_none() {
        traced(|| {
            assert_eq!(current_traceparent(), None);
            let job = tracing::info_span!("job");
            continue_trace(&job, "garbage");
            assert_eq!(trace_id(&job).len(), 32);
        });
    }
}
