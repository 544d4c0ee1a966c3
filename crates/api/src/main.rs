use std::time::Duration;

use clap::Parser;
use facerec_api::{Api, Settings};

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(async {
        facerec_telemetry::init_tracing("facerec-api");
        let mut shutdown = Box::pin(facerec_telemetry::shutdown_signal());
        let api = tokio::select! {
            api = Api::build(Settings::parse()) => api?,
            () = &mut shutdown => return Ok(()),
        };
        api.run_until(shutdown).await
    });
    // Connections still open after the shutdown deadline are dropped, not awaited.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}
