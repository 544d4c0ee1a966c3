use clap::Parser;
use facerec_api::{Api, Settings};

fn main() -> anyhow::Result<()> {
    facerec_telemetry::run_service("facerec-api", || Api::build(Settings::parse()), Api::run_until)
}
