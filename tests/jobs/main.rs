//! Jobs through the real worker and models: recognition, verification and
//! the vision checks, then what happens around a job: retries, recovery of
//! lost messages and expired leases, PostgreSQL going away, graceful
//! shutdown, and webhooks.
//!
//! Lease takeovers happen here, in this process: the test that counts them
//! in this process's metrics lives in the `ops` binary, which has none.

mod outage;
mod recognition;
mod recovery;
mod retries;
mod shutdown;
mod verify;
mod vision_jobs;
mod webhooks;
