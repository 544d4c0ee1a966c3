use clap::Parser;
use facerec_worker::{Settings, Worker};

fn main() -> anyhow::Result<()> {
    facerec_telemetry::run_service("facerec-worker", || Worker::build(Settings::parse()), Worker::run_until)
}
