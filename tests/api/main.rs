//! The HTTP api as clients meet it: the job API's contract, keys and
//! tenants, refusals of bad uploads at the edge, and the limits that keep a
//! loaded or slow client from holding it. Most tests here start the api
//! alone (`TestApp::api_only`); those whose jobs must run start a worker.
//!
//! `cargo test --test api keys::` runs one module's tests.

mod api_contract;
mod api_key_process;
mod api_keys;
mod job_api;
mod load_limits;
mod uploads;
