//! The `facerec` command line: bulk ingestion of labelled photo folders or
//! manifests into a running facerec api (`facerec ingest`), API key
//! management (`facerec keys`), and the schema migrations of an upgrade
//! (`facerec migrate`).
//!
//! `ingest` and `keys` talk to the api over HTTP only, as any client would;
//! `migrate` connects to PostgreSQL with the settings the api and workers use. Threading model:
//! one tokio runtime; at most `--concurrency` images are in flight (read,
//! uploaded, polled) at once, each over at most one connection.

mod client;
mod ingest;
mod inputs;
mod keys;
mod migrate;
mod progress;
mod report;
mod resume;

use std::future::Future;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;

pub use report::{Outcome, Status};
pub use resume::idempotency_key;

/// facerec command line.
#[derive(Debug, Parser)]
#[command(
    name = "facerec",
    version,
    about = "facerec command line: bulk ingestion and API keys of a running facerec api"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Register every photo of a folder (`DIR/<subject>/...`) or of a manifest.
    #[command(after_help = INGEST_AFTER_HELP)]
    Ingest(IngestArgs),
    /// Create, list and delete API keys (needs the master key or a key with `keys.manage`).
    Keys(keys::KeysArgs),
    /// Apply the database migrations of this release (the api and workers also do at start).
    Migrate(migrate::MigrateArgs),
}

/// Where the api is, and the key to use.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// The api's base URL.
    // `hide_env_values`: help would print `[env: FACEREC_URL=]` when it is unset, as if set to nothing.
    #[arg(long, env = "FACEREC_URL", default_value = "http://127.0.0.1:8080", global = true, hide_env_values = true)]
    pub api: String,
    /// The key sent as `Authorization: Bearer <key>`, when the api has a master key.
    #[arg(long, env = "FACEREC_API_KEY", hide_env_values = true, global = true)]
    pub api_key: Option<SecretString>,
}

#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    /// Folder with one sub-folder per subject (the folder name is the subject).
    #[arg(required_unless_present = "manifest", conflicts_with = "manifest")]
    pub dir: Option<PathBuf>,
    /// A CSV (`path,subject`) or JSONL (`{"path": ..., "subject": ...}`) file
    /// instead of a folder; relative paths are relative to the manifest.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Collection to register into (created if it does not exist).
    #[arg(long, short = 'c', default_value = "default")]
    pub collection: String,
    #[command(flatten)]
    pub connection: ApiArgs,
    /// Images in flight at once (each over at most one connection).
    #[arg(long, short = 'j', default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
    /// Write one JSON line per input file here (also on a dry run).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// List every file and what a run would do with it (send, skip: already
    /// registered, skip: unsupported, ...), asking the api what earlier runs
    /// did, as a run does; send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Register again the files whose face was deleted since an earlier run
    /// registered it (by deleting the face, its subject or its collection);
    /// without it they are reported as `deleted` and not sent.
    #[arg(long)]
    pub resend_deleted: bool,
    /// Consent reference sent with every register (collections that require consent).
    #[arg(long)]
    pub consent: Option<String>,
    /// Seconds between progress lines when stderr is not a terminal.
    #[arg(long, default_value_t = 10)]
    pub progress_interval: u64,
    /// No progress output (the summary is still printed).
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Give up when the api cannot be reached for this many seconds.
    #[arg(long, default_value_t = 60)]
    pub connect_timeout: u64,
}

/// The end of `facerec ingest --help`: how a run ends and how it resumes.
const INGEST_AFTER_HELP: &str = "\
Exit codes:
  0  every image is registered (a dry run: every file would be sent or is registered already)
  1  some images failed, were skipped, were deleted since, or were not reached (Ctrl-C)
  2  bad usage, or the api could not be reached

Resume: run the same command again after Ctrl-C, a crash or failures. Each image
is sent with an idempotency key made of its bytes, the collection and the
subject; before sending, the api is asked for a job with that key, so an image
an earlier run sent is reported from its job (\"resumed\": true) and never
registered twice. An image whose face was deleted since is reported as
\"deleted\" and not sent again; --resend-deleted registers it again.
--dry-run asks the same questions and sends nothing.";

/// How the command ended, as a process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every image registered.
    AllRegistered = 0,
    /// Some images failed, were skipped, were deleted since or were not reached (interrupted).
    SomeNotRegistered = 1,
    /// Bad usage, or the api could not be reached.
    UsageOrConnection = 2,
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e as u8)
    }
}

/// Runs a command until it ends or `interrupt` completes (Ctrl-C), in which
/// case it stops starting images and reports what it has.
pub async fn run(cli: Cli, interrupt: impl Future<Output = ()>) -> Exit {
    match cli.command {
        Command::Ingest(args) => match ingest::ingest(args, interrupt).await {
            Ok(exit) => exit,
            Err(e) => {
                eprintln!("error: {e:#}");
                Exit::UsageOrConnection
            }
        },
        Command::Keys(args) => match keys::run(args).await {
            Ok(()) => Exit::AllRegistered,
            Err(e) => {
                eprintln!("error: {e:#}");
                Exit::UsageOrConnection
            }
        },
        Command::Migrate(args) => match migrate::run(args).await {
            Ok(()) => Exit::AllRegistered,
            Err(e) => {
                eprintln!("error: {e:#}");
                Exit::UsageOrConnection
            }
        },
    }
}
