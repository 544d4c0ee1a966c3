use facerec_api::{Api, Settings};

fn main() -> anyhow::Result<()> {
    // Parsed before the service starts: its logs and metrics follow the settings from the first line.
    let settings = facerec_telemetry::parse_settings::<Settings>();
    let telemetry = settings.telemetry;
    facerec_telemetry::run_service("facerec-api", telemetry, move || Api::build(settings), Api::run_until)
}
