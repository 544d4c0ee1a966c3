pub mod health;
pub mod jobs;
pub mod submit;
