//! Where PostgreSQL is: declared once, flattened into every binary that
//! connects (`#[command(flatten)]` in the api, the worker and the CLI).

use facerec_core::SecretUrl;

/// The database connection settings.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// PostgreSQL connection URL. Its password never appears in logs or `Debug` output.
    #[arg(
        long = "database-url",
        env = "DATABASE_URL",
        default_value = "postgres://postgres:postgres@127.0.0.1:5432/facerec",
        hide_env_values = true
    )]
    pub url: SecretUrl,
}
