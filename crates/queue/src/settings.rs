//! Where the job queue is: declared once, flattened into every binary that
//! connects (`#[command(flatten)]` in the api and the worker).

use facerec_core::SecretUrl;

/// The Redis connection and the queue's name in it.
#[derive(Debug, Clone, clap::Args)]
pub struct QueueArgs {
    /// Redis connection URL. Its password never appears in logs or `Debug` output.
    #[arg(long = "redis-url", env = "REDIS_URL", default_value = "redis://127.0.0.1:6379/", hide_env_values = true)]
    pub redis_url: SecretUrl,
    /// Redis key prefix of the job queue; the api and every worker must use the same.
    #[arg(long = "queue", env = "FACEREC_QUEUE", default_value = crate::DEFAULT_QUEUE)]
    pub name: String,
}
