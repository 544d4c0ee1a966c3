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
mod bodies;
mod callback_url;
mod error;
mod headers;
mod intake;
mod job_ends;
mod landing;
pub mod live;
mod live_slots;
mod metrics;
mod openapi;
mod pacing;
mod routes;
mod serve;
mod settings;
mod shares;
mod spooling;
mod state;
mod upload;

pub use app::{Api, router};
pub use error::{ApiError, ErrorBody, ErrorCode};
pub use openapi::ApiDoc;
pub use settings::Settings;
pub use state::AppState;
pub use upload::check_image;
