//! OTLP export of the process's spans, configured by the standard
//! `OTEL_EXPORTER_OTLP_*` variables and off when no endpoint is set.

use std::sync::OnceLock;

use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Where and how spans are exported; `None` when no endpoint is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    pub protocol: Protocol,
}

/// Reads `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`
/// (either turns export on) and `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` /
/// `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, the default, or `http/json`).
pub fn otlp_config(var: impl Fn(&str) -> Option<String>) -> Result<Option<OtlpConfig>, String> {
    let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    if set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none() && set("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() {
        return Ok(None);
    }
    if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    let protocol = set("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| set("OTEL_EXPORTER_OTLP_PROTOCOL"));
    let protocol = match protocol.as_deref().map(str::trim) {
        None | Some("http/protobuf") => Protocol::HttpBinary,
        Some("http/json") => Protocol::HttpJson,
        Some(other) => {
            return Err(format!(
                "OTEL_EXPORTER_OTLP_PROTOCOL={other} is not supported: use http/protobuf (the default; a \
                 collector's port 4318) or http/json"
            ));
        }
    };
    Ok(Some(OtlpConfig { protocol }))
}

/// The tracer provider of the process: exporting over OTLP when configured
/// (named `service` unless `OTEL_SERVICE_NAME` says otherwise), else keeping
/// spans in the process (they still carry trace ids across the queue).
pub(crate) fn provider(service: &'static str) -> SdkTracerProvider {
    PROVIDER
        .get_or_init(|| {
            let builder = SdkTracerProvider::builder();
            let config = match otlp_config(|name| std::env::var(name).ok()) {
                Ok(config) => config,
                Err(message) => {
                    // Logging is not up yet: this goes to stderr, and tracing stays in the process.
                    eprintln!("facerec: {message}; spans are not exported");
                    None
                }
            };
            let Some(config) = config else { return builder.build() };
            let mut resource = Resource::builder();
            let named = std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|a| a.contains("service.name="));
            if std::env::var_os("OTEL_SERVICE_NAME").is_none() && !named {
                resource = resource.with_service_name(service);
            }
            match opentelemetry_otlp::SpanExporter::builder().with_http().with_protocol(config.protocol).build() {
                Ok(exporter) => builder.with_resource(resource.build()).with_batch_exporter(exporter).build(),
                Err(e) => {
                    eprintln!("facerec: the OTLP exporter could not be built ({e}); spans are not exported");
                    builder.build()
                }
            }
        })
        .clone()
}

/// Sends the spans still buffered and stops exporting; call once, outside
/// any async runtime, when the service has stopped.
pub fn shutdown_tracing() {
    if let Some(provider) = PROVIDER.get()
        && let Err(e) = provider.shutdown()
    {
        eprintln!("facerec: flushing spans at shutdown failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Option<OtlpConfig>, String> {
        otlp_config(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned()))
    }

    #[test]
    fn export_is_off_without_an_endpoint_and_on_with_either() {
        assert_eq!(config(&[]), Ok(None));
        assert_eq!(config(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]), Ok(None));
        let on = Ok(Some(OtlpConfig { protocol: Protocol::HttpBinary }));
        assert_eq!(config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")]), on);
        assert_eq!(config(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/v1/traces")]), on);
        assert_eq!(
            config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_SDK_DISABLED", "true")]),
            Ok(None)
        );
    }

    #[test]
    fn the_protocol_is_read_per_signal_first_and_grpc_is_refused() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318");
        let json = Ok(Some(OtlpConfig { protocol: Protocol::HttpJson }));
        assert_eq!(config(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]), json);
        assert_eq!(
            config(&[
                endpoint,
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")
            ]),
            json
        );
        let grpc = config(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap_err();
        assert!(grpc.contains("http/protobuf"), "{grpc}");
    }
}
