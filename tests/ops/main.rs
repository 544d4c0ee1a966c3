//! Operating the service: Prometheus scraping the binaries, traces exported
//! over OTLP, the deployment files, `make up`'s supervisor, the CLI's admin
//! commands and the pooled PostgreSQL connections.
//!
//! This process's metrics recorder is global, and one test here counts the
//! lease takeovers it records: no test in this binary takes a job over in
//! this process (recovery, outage and shutdown, which do, are in `jobs`).
//! The tests that export traces run the binaries as processes, since this
//! process's tracing subscriber is set once, by whichever test starts first.

mod cli_keys;
mod cli_migrate;
mod connection_pool;
mod deploy;
mod metrics;
mod supervisor;
mod tracing_export;
