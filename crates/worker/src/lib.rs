//! The facerec worker: takes job messages from Redis (through `facerec-queue`,
//! which owns apalis), claims each job in PostgreSQL, runs face detection and
//! embedding, and writes the outcome.
//!
//! Threading model: the queue's consumer drives jobs on the tokio runtime, at most
//! `concurrency` at a time; inference runs on pipeline threads, one per
//! [`FacePipeline`](facerec_vision::FacePipeline) loaded at start, which take
//! each job's inference in turn. Database and Redis I/O stay async.
//!
//! Live frames ([`live`]) come through Redis on a path of their own, served by
//! `FACEREC_LIVE_SLOTS` tasks on the same pipelines, with no job row.
//!
//! Failure policy: bad input (no face, corrupt image…) fails the job at once
//! with a stable code; anything else is transient: the job goes back to
//! `queued` with a retry time (exponential backoff with jitter) and a message
//! scheduled in Redis for then, until `max_attempts`.
//!
//! Modules point one way: `app` starts everything; `handler` runs one job
//! message and calls the kinds (`jobs`, `verify`), which use `jobs`'s shared
//! steps; all of them, and `live`, take `context` (what they share) and
//! `failure` (how a failure is classified), which depend on none of them.

mod app;
mod backoff;
mod batches;
mod context;
mod failure;
mod handler;
mod jobs;
mod live;
mod maintenance;
mod pool;
mod probe;
mod settings;
mod verify;
mod webhook;

pub use app::Worker;
pub use probe::SERVICE;
pub use settings::{DetectorKind, Settings};
pub use webhook::signature;
