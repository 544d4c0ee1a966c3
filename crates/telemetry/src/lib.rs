//! Logging and tracing setup shared by every facerec binary.
//!
//! `tracing` spans and events go to stdout (text or JSON lines, chosen by
//! `FACEREC_LOG_FORMAT`) and into an OpenTelemetry tracer, so every span has a
//! trace id that a job can carry from the api to the worker. Exporting traces
//! to a collector is configuration for later; nothing leaves the process now.
//! Also the shutdown signal every binary waits on.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Installs the global subscriber once; later calls (e.g. from several tests) do nothing.
/// `RUST_LOG` filters (default `info`); `FACEREC_LOG_FORMAT=json` switches to JSON lines.
pub fn init_tracing(service: &'static str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,apalis=warn,apalis_core=warn,ort=warn"));
    let json = std::env::var("FACEREC_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let fmt = if json {
        tracing_subscriber::fmt::layer().json().with_current_span(true).boxed()
    } else {
        tracing_subscriber::fmt::layer().boxed()
    };
    let provider = SdkTracerProvider::builder().build();
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer(service));
    let _ = tracing_subscriber::registry().with(filter).with(fmt).with(otel).try_init();
}

/// Completes on Ctrl-C or SIGTERM: the signal for a graceful shutdown.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
