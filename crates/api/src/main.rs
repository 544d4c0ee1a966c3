use facerec_api::{Api, Settings};

fn main() -> anyhow::Result<()> {
    facerec_telemetry::run_service(
        "facerec-api",
        || Api::build(facerec_telemetry::parse_settings::<Settings>()),
        Api::run_until,
    )
}
