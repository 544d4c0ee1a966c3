use std::net::SocketAddr;

use clap::Parser;
use facerec_core::{ImageLimits, Threshold};
use facerec_telemetry::TelemetryArgs;
use secrecy::{ExposeSecret, SecretString};

/// Api configuration: defaults, overridden by environment variables, overridden by flags.
#[derive(Debug, Clone, Parser)]
#[command(name = "facerec-api", version, about = "facerec HTTP api")]
pub struct Settings {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "FACEREC_API_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Serve `/metrics` on a listener of its own at this address, open to
    /// whoever reaches it (keep it off the public network), and not on
    /// `FACEREC_API_ADDR`. Unset: `/metrics` is on `FACEREC_API_ADDR`, and
    /// needs the master key when one is set (the metrics count every tenant's traffic).
    #[arg(long, env = "FACEREC_API_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    #[command(flatten)]
    pub database: facerec_store::DatabaseArgs,
    #[command(flatten)]
    pub queue: facerec_queue::QueueArgs,
    /// Largest accepted image, in bytes.
    #[arg(long, env = "FACEREC_MAX_UPLOAD_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_upload_bytes: usize,
    /// Back-pressure: with this many jobs waiting for a worker, submissions get `429 queue_full`.
    #[arg(long, env = "FACEREC_MAX_QUEUED_JOBS", default_value_t = 10_000)]
    pub max_queued_jobs: i64,
    /// Upload bytes the api holds in memory at once, over all submissions
    /// (each reserves its `Content-Length`). A submission that finds no room
    /// within `FACEREC_UPLOAD_WAIT_MS` gets `503 server_busy` with `Retry-After`.
    #[arg(long, env = "FACEREC_MAX_UPLOAD_BYTES_IN_FLIGHT", default_value_t = 64 * 1024 * 1024)]
    pub max_upload_bytes_in_flight: usize,
    /// How long a submission may wait for room among the upload bytes in flight.
    #[arg(long, env = "FACEREC_UPLOAD_WAIT_MS", default_value_t = 2000)]
    pub upload_wait_ms: u64,
    /// The most of the upload budget, and of the spool (archives and bytes),
    /// one caller may hold at once, in percent: a caller is its API key, or its
    /// address without one. A lone request of any allowed size always fits.
    #[arg(long, env = "FACEREC_MAX_SHARE_PERCENT", default_value_t = 50,
          value_parser = clap::value_parser!(u8).range(1..=100))]
    pub max_share_percent: u8,
    /// A client must send a request's whole header block within this many
    /// seconds (one deadline for the block, not per line), else the connection
    /// is closed; also how long an idle keep-alive connection stays open. 0: no limit.
    #[arg(long, env = "FACEREC_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// A request body that sends nothing for this many seconds is cut off
    /// (`408 request_timeout`); it is also the grace before
    /// `FACEREC_MIN_UPLOAD_BYTES_PER_SEC` counts. 0: neither limit.
    #[arg(long, env = "FACEREC_BODY_IDLE_TIMEOUT_SECS", default_value_t = 10)]
    pub body_idle_timeout_secs: u64,
    /// Bytes per second a request body must average, counted from its start
    /// once the grace (`FACEREC_BODY_IDLE_TIMEOUT_SECS`) is over; slower ones are
    /// cut off (`408 request_timeout`). 0: no minimum.
    #[arg(long, env = "FACEREC_MIN_UPLOAD_BYTES_PER_SEC", default_value_t = 16 * 1024)]
    pub min_upload_bytes_per_sec: u64,
    /// Largest archive `POST /v1/batches` accepts, in bytes.
    #[arg(long, env = "FACEREC_MAX_BATCH_BYTES", default_value_t = 2 * 1024 * 1024 * 1024)]
    pub max_batch_bytes: u64,
    /// Most entries an archive may have.
    #[arg(long, env = "FACEREC_MAX_BATCH_ITEMS", default_value_t = 100_000)]
    pub max_batch_items: usize,
    /// Where uploaded archives are spooled while they are read (default: the system's temp folder).
    /// Each file is removed as soon as its batch is recorded or refused.
    #[arg(long, env = "FACEREC_SPOOL_DIR")]
    pub spool_dir: Option<std::path::PathBuf>,
    /// Archives spooled at once (being uploaded or read); more get `503 server_busy`.
    #[arg(long, env = "FACEREC_MAX_SPOOLING_ARCHIVES", default_value_t = 4)]
    pub max_spooling_archives: usize,
    /// Bytes of archives spooled at once (each counts its `Content-Length`, or
    /// `FACEREC_MAX_BATCH_BYTES` without one); past it, `503 server_busy`.
    /// At least `FACEREC_MAX_BATCH_BYTES`.
    #[arg(long, env = "FACEREC_MAX_SPOOL_BYTES", default_value_t = 4 * 1024 * 1024 * 1024)]
    pub max_spool_bytes: u64,
    /// PostgreSQL connections the api keeps at most.
    #[arg(long, env = "FACEREC_API_DB_CONNECTIONS", default_value_t = 16)]
    pub db_connections: u32,
    /// How long a request waits for a free database connection before it
    /// gets `503 server_busy`.
    #[arg(long, env = "FACEREC_API_DB_WAIT_MS", default_value_t = 3000)]
    pub db_wait_ms: u64,
    /// Seconds a client is told to wait (`Retry-After`) when the queue is full.
    #[arg(long, env = "FACEREC_RETRY_AFTER_SECS", default_value_t = 5)]
    pub retry_after_secs: u64,
    /// On SIGTERM, how long requests in flight may take to finish before the api exits anyway.
    #[arg(long, env = "FACEREC_SHUTDOWN_TIMEOUT_SECS", default_value_t = 30)]
    pub shutdown_timeout_secs: u64,
    /// `FACEREC_MAX_PIXELS` and `FACEREC_MAX_PIXELS_PER_BYTE`, shared with the worker.
    #[command(flatten)]
    pub image_limits: ImageLimits,
    /// Default cosine-similarity threshold for a recognize match to count as `best`.
    /// Chosen from our measurements (docs/benchmarks.md, "Accuracy and the default threshold"): no
    /// errors on 1,770 labelled pairs, 0.046 above the most similar different people.
    #[arg(long, env = "FACEREC_DEFAULT_THRESHOLD", default_value = "0.4", value_parser = parse_threshold)]
    pub default_threshold: Threshold,
    /// Whether collections created without saying so (by a register, or by
    /// `POST /v1/collections` without `require_consent`) require a `consent` reference.
    #[arg(long, env = "FACEREC_REQUIRE_CONSENT", default_value_t = false)]
    pub require_consent: bool,
    /// Turns authentication on: every `/v1` request then needs
    /// `Authorization: Bearer <key>`, with this key (which can do everything)
    /// or an API key made with it. At least 16 bytes. Unset: the api is open.
    #[arg(long, env = "FACEREC_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<SecretString>,
    /// `production` refuses to start without a master key.
    #[arg(long, env = "FACEREC_ENV", default_value = "development")]
    pub env: String,
    /// Server-side secret mixed into the stored hash of every API key. Unset:
    /// derived from the master key, so changing the master key revokes every
    /// API key (as in Meilisearch). Set it to keep keys across a master key change.
    #[arg(long, env = "FACEREC_KEY_PEPPER", hide_env_values = true)]
    pub key_pepper: Option<SecretString>,
    /// Requests per second each API key may make (a token bucket per key and
    /// api instance); over it, `429 rate_limited` with `Retry-After`. 0: no limit.
    #[arg(long, env = "FACEREC_KEY_RATE_PER_SEC", default_value_t = 0.0)]
    pub key_rate_per_sec: f64,
    /// Requests a key may make at once above its rate (the bucket's size);
    /// default: one second's worth, at least 1.
    #[arg(long, env = "FACEREC_KEY_RATE_BURST")]
    pub key_rate_burst: Option<f64>,
    /// Live streams (`GET /v1/live`) this api holds open at once; more get `503 server_busy`.
    #[arg(long, env = "FACEREC_LIVE_MAX_STREAMS", default_value_t = 32)]
    pub live_max_streams: usize,
    /// Largest live frame, in bytes: larger ones get a `payload_too_large`
    /// message; a message over 4 times this closes the stream (1009).
    #[arg(long, env = "FACEREC_LIVE_MAX_FRAME_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub live_max_frame_bytes: usize,
    /// Frames per second a live stream may send (a bucket of one second's
    /// worth); others get a `rate_limited` message. 0: no limit.
    #[arg(long, env = "FACEREC_LIVE_MAX_FPS", default_value_t = 30.0)]
    pub live_max_fps: f64,
    /// A live stream with no message for this many seconds is closed (`idle_timeout`).
    #[arg(long, env = "FACEREC_LIVE_IDLE_SECS", default_value_t = 30)]
    pub live_idle_secs: u64,
    /// How often an open live stream's API key and collection are looked up
    /// again, in seconds: a deleted or expired key ends its streams
    /// (`invalid_api_key`), and so does one no longer allowed to recognize in
    /// the stream's collection (`forbidden`) or a deleted collection (`collection_not_found`).
    #[arg(long, env = "FACEREC_LIVE_KEY_RECHECK_SECS", default_value_t = 10)]
    pub live_key_recheck_secs: u64,
    /// How long a live frame waits for a worker's answer before `no_worker`.
    #[arg(long, env = "FACEREC_LIVE_TIMEOUT_MS", default_value_t = 3000)]
    pub live_timeout_ms: u64,
    /// Live streams upgraded without a key, waiting for their first message to
    /// authenticate them: they count here, not against `FACEREC_LIVE_MAX_STREAMS`,
    /// until they have. More get `503 server_busy`.
    #[arg(long, env = "FACEREC_LIVE_MAX_PENDING", default_value_t = 8)]
    pub live_max_pending: usize,
    /// Of those, how many one client address may hold (an IPv6 address counts
    /// by its /64); more get `429 rate_limited`.
    #[arg(long, env = "FACEREC_LIVE_MAX_PENDING_PER_ADDR", default_value_t = 2)]
    pub live_max_pending_per_addr: usize,
    /// Seconds a stream without a key has to send its auth message before it is closed (`missing_api_key`).
    #[arg(long, env = "FACEREC_LIVE_AUTH_WAIT_SECS", default_value_t = 5)]
    pub live_auth_wait_secs: u64,
    /// Accept a `callback_url` whose host is a loopback or private-range
    /// address (the workers' setting of the same name lets them deliver
    /// there). Link-local, reserved and embedded addresses are refused always.
    #[arg(long, env = "FACEREC_WEBHOOK_ALLOW_PRIVATE", default_value_t = false)]
    pub webhook_allow_private: bool,
    /// `FACEREC_LOG_FORMAT` and `FACEREC_METRICS`, read by `main` before the
    /// api is built (`facerec_telemetry::run_service`); the test kit's apps use the defaults.
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

impl Settings {
    /// Refuses settings the api must not run with.
    pub fn check(&self) -> anyhow::Result<()> {
        match &self.master_key {
            Some(key) if key.expose_secret().len() < 16 => {
                anyhow::bail!("FACEREC_MASTER_KEY must be at least 16 bytes long")
            }
            None if self.env == "production" => anyhow::bail!(
                "FACEREC_ENV=production needs FACEREC_MASTER_KEY (at least 16 bytes): \
                 without it anyone who reaches the api can read every face"
            ),
            _ => {}
        }
        if !(self.key_rate_per_sec >= 0.0 && self.key_rate_per_sec.is_finite()) {
            anyhow::bail!("FACEREC_KEY_RATE_PER_SEC must be a number of at least 0");
        }
        if !(self.live_max_fps >= 0.0 && self.live_max_fps.is_finite()) {
            anyhow::bail!("FACEREC_LIVE_MAX_FPS must be a number of at least 0");
        }
        if self.max_spool_bytes < self.max_batch_bytes {
            anyhow::bail!(
                "FACEREC_MAX_SPOOL_BYTES must be at least FACEREC_MAX_BATCH_BYTES, or no largest archive fits"
            );
        }
        Ok(())
    }
}

fn parse_threshold(s: &str) -> Result<Threshold, String> {
    Threshold::parse(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_carries_no_secret() {
        let mut settings = Settings::parse_from([
            "facerec-api",
            "--database-url",
            "postgres://facerec:db-password-1@db:5432/facerec",
            "--redis-url",
            "redis://:redis-password-2@cache:6379/",
        ]);
        settings.master_key = Some(SecretString::from("master-key-secret-3"));
        settings.key_pepper = Some(SecretString::from("pepper-secret-4"));
        let debug = format!("{settings:?}");
        for secret in ["db-password-1", "redis-password-2", "master-key-secret-3", "pepper-secret-4"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert!(debug.contains("postgres://facerec:***@db:5432/facerec"), "{debug}");
        assert_eq!(settings.database.url.expose(), "postgres://facerec:db-password-1@db:5432/facerec");
    }
}
