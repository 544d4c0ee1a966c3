//! The facerec HTTP api (axum): accepts uploads, records each job and its
//! input in PostgreSQL, enqueues it in Redis, answers `202` with the job id,
//! and serves job status. It never runs inference and never links ONNX Runtime.
//!
//! Threading model: plain async handlers on tokio; the only CPU work is
//! reading an image header to check its type and size.

mod admission;
mod app;
mod archive;
pub mod auth;
mod callback_url;
mod error;
mod headers;
mod intake;
mod job_ends;
mod landing;
pub mod live;
mod metrics;
mod openapi;
mod pacing;
mod routes;
mod serve;
mod settings;
mod shares;
mod spooling;
mod upload;

pub use app::{Api, router};
pub use error::{ApiError, ErrorBody, ErrorCode};
pub use openapi::ApiDoc;
pub use settings::Settings;
pub use upload::check_image;

use facerec_queue::JobQueue;
use facerec_store::Store;
use std::sync::Arc;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub queue: JobQueue,
    pub admission: Arc<admission::Admission>,
    pub job_ends: Arc<job_ends::JobEnds>,
    pub auth: Arc<auth::Auth>,
    pub live: Arc<live::LiveStreams>,
    pub settings: Arc<Settings>,
}
