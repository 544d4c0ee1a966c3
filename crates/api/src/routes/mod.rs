pub mod batches;
pub mod collections;
pub mod gallery;
pub mod health;
pub mod jobs;
pub mod listing;
pub mod subjects;
pub mod submit;
