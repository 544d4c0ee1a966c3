use std::time::Duration;

use clap::Parser;
use facerec_worker::{Settings, Worker};

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(async {
        facerec_telemetry::init_tracing("facerec-worker");
        let mut shutdown = Box::pin(facerec_telemetry::shutdown_signal());
        // Loading the models takes a while; a stop meanwhile ends here, cleanly.
        let worker = tokio::select! {
            worker = Worker::build(Settings::parse()) => worker?,
            () = &mut shutdown => return Ok(()),
        };
        worker.run_until(shutdown).await
    });
    // Whatever is still running after the shutdown deadline (an inference on a
    // blocking thread) is abandoned, not awaited: its lease runs out and another
    // worker takes the job.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}
