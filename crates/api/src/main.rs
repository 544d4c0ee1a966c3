use clap::Parser;
use facerec_api::{Api, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    facerec_telemetry::init_tracing("facerec-api");
    let api = Api::build(Settings::parse()).await?;
    api.run_until(facerec_telemetry::shutdown_signal()).await
}
