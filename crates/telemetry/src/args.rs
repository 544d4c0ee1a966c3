//! The telemetry settings of a service binary, `FACEREC_LOG_FORMAT` and
//! `FACEREC_METRICS`: declared once here and flattened into the api's and
//! the worker's settings, so clap reads them like every other setting and
//! `--help` lists them. Both stay as lenient as they were when read from the
//! environment: a value they do not know means the default, never a refusal to start.

use std::convert::Infallible;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, with the current span's fields.
    Json,
}

/// Logging and metrics settings, read before the service is built
/// ([`run_service`](crate::run_service)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub struct TelemetryArgs {
    /// `json` writes log lines as JSON objects, one per line; anything else, plain text.
    /// Which lines: `RUST_LOG` (default `info`).
    #[arg(long, env = "FACEREC_LOG_FORMAT", default_value = "text", value_parser = parse_log_format)]
    pub log_format: LogFormat,
    /// `off` (or `false`, `0`, `no`) records no metrics: every metric call
    /// costs next to nothing and `/metrics` answers empty; for measuring their cost.
    #[arg(long, env = "FACEREC_METRICS", default_value = "on", value_parser = parse_metrics,
          action = clap::ArgAction::Set)]
    pub metrics: bool,
}

impl Default for TelemetryArgs {
    /// What clap gives when neither variable nor flag is set.
    fn default() -> Self {
        Self { log_format: LogFormat::Text, metrics: true }
    }
}

/// `json` (any case) is JSON lines; anything else is text.
fn parse_log_format(value: &str) -> Result<LogFormat, Infallible> {
    Ok(if value.eq_ignore_ascii_case("json") { LogFormat::Json } else { LogFormat::Text })
}

/// Metrics stay on unless switched off (off, false, 0 or no, in any case).
fn parse_metrics(value: &str) -> Result<bool, Infallible> {
    Ok(!["off", "false", "0", "no"].contains(&value.trim().to_ascii_lowercase().as_str()))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Binary {
        #[command(flatten)]
        telemetry: TelemetryArgs,
    }

    fn parsed(args: &[&str]) -> TelemetryArgs {
        Binary::parse_from(std::iter::once("binary").chain(args.iter().copied())).telemetry
    }

    #[test]
    fn metrics_are_on_unless_switched_off() {
        assert!(TelemetryArgs::default().metrics);
        assert_eq!(parse_metrics("on"), Ok(true));
        for off in ["off", "OFF", "false", "0", "no", " off "] {
            assert_eq!(parse_metrics(off), Ok(false), "{off}");
        }
        assert!(!parsed(&["--metrics", "off"]).metrics);
    }

    #[test]
    fn logs_are_json_only_when_asked_for() {
        assert_eq!(parse_log_format("text"), Ok(TelemetryArgs::default().log_format));
        assert_eq!(parse_log_format("JSON"), Ok(LogFormat::Json));
        assert_eq!(parse_log_format("pretty"), Ok(LogFormat::Text));
        assert_eq!(parsed(&["--log-format", "json"]).log_format, LogFormat::Json);
    }

    #[test]
    fn help_names_both_variables() {
        use clap::CommandFactory;
        let help = Binary::command().render_help().to_string();
        assert!(help.contains("FACEREC_LOG_FORMAT") && help.contains("FACEREC_METRICS"), "{help}");
    }
}
