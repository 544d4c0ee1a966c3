use facerec_worker::{Settings, Worker};

fn main() -> anyhow::Result<()> {
    // Parsed before the service starts: its logs and metrics follow the settings from the first line.
    let settings = facerec_telemetry::parse_settings::<Settings>();
    let telemetry = settings.telemetry;
    facerec_telemetry::run_service("facerec-worker", telemetry, move || Worker::build(settings), Worker::run_until)
}
