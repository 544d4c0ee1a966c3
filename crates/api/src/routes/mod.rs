pub mod health;
pub mod jobs;
pub mod listing;
pub mod submit;
