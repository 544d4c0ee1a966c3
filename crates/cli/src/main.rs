//! The `facerec` command: thin wrapper over [`facerec_cli`].

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = facerec_cli::Cli::parse();
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("\ninterrupted: finishing the report (Ctrl-C again to quit at once)");
        // A second Ctrl-C ends the process without waiting.
        tokio::spawn(async {
            let _ = tokio::signal::ctrl_c().await;
            std::process::exit(130);
        });
    };
    facerec_cli::run(cli, interrupt).await.into()
}
