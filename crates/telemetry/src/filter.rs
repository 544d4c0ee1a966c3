//! Which spans and events the subscriber sees: the logs follow `RUST_LOG`,
//! the traced spans a fixed level, so quieting the logs never empties the
//! traces nor drops the trace ids jobs carry from the api to the worker.
//!
//! One global filter, not one per layer: with per-layer filters an event the
//! fmt layer should print was lost after another crate asked `enabled!`
//! without emitting (sqlx does, for every statement), leaving a stale
//! per-layer decision behind.

use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, Layer};

/// What is logged when `RUST_LOG` does not say, and what is traced always.
pub(crate) const DEFAULT_FILTER: &str = "info,sqlx=warn,apalis=warn,apalis_core=warn,ort=warn";

/// Spans traced whatever `RUST_LOG` says: the same as [`DEFAULT_FILTER`].
fn traced() -> Targets {
    Targets::new()
        .with_default(LevelFilter::INFO)
        .with_targets(["sqlx", "apalis", "apalis_core", "ort"].map(|t| (t, LevelFilter::WARN)))
}

/// Enables an event when `RUST_LOG` does, a span when `RUST_LOG` or the
/// tracing level does.
pub(crate) struct LogsOrTraces {
    logs: EnvFilter,
    traces: Targets,
}

impl LogsOrTraces {
    pub(crate) fn new(logs: EnvFilter) -> Self {
        Self { logs, traces: traced() }
    }

    fn traced(&self, metadata: &Metadata<'_>) -> bool {
        metadata.is_span() && self.traces.would_enable(metadata.target(), metadata.level())
    }
}

impl<S: Subscriber> Layer<S> for LogsOrTraces {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        // The logs' filter sees every callsite first: it sets up its span-based directives there.
        let logs = Layer::<S>::register_callsite(&self.logs, metadata);
        if self.traced(metadata) { Interest::always() } else { logs }
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.traced(metadata) || self.logs.enabled(metadata, ctx)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Layer::<S>::max_level_hint(&self.logs).map(|logs| logs.max(LevelFilter::INFO))
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        self.logs.on_new_span(attrs, id, ctx)
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        self.logs.on_record(id, values, ctx)
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        self.logs.on_enter(id, ctx)
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        self.logs.on_exit(id, ctx)
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        self.logs.on_close(id, ctx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Records the names of the spans it sees and the messages of the events.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber> Layer<S> for Seen {
        fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
            self.0.lock().unwrap().push(format!("span {}", attrs.metadata().name()));
        }
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            self.0.lock().unwrap().push(format!("event {}", event.metadata().level()));
        }
    }

    #[test]
    fn quiet_logs_keep_the_traced_spans_and_drop_the_events() {
        let seen = Seen::default();
        let subscriber = tracing_subscriber::registry()
            .with(LogsOrTraces::new(EnvFilter::new("warn,facerec_telemetry=error")))
            .with(seen.clone());
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("job");
            let _entered = span.enter();
            tracing::info!("not logged");
            tracing::error!("logged");
            tracing::debug_span!("too fine").in_scope(|| {});
        });
        assert_eq!(*seen.0.lock().unwrap(), ["span job", "event ERROR"]);
    }
}
