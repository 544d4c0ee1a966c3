use clap::Parser;
use facerec_worker::{Settings, Worker};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    facerec_telemetry::init_tracing("facerec-worker");
    let worker = Worker::build(Settings::parse()).await?;
    worker.run_until(facerec_telemetry::shutdown_signal()).await
}
