use facerec_worker::{Settings, Worker};

fn main() -> anyhow::Result<()> {
    facerec_telemetry::run_service(
        "facerec-worker",
        || Worker::build(facerec_telemetry::parse_settings::<Settings>()),
        Worker::run_until,
    )
}
