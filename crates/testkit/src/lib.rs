//! The end-to-end test kit of facerec: what every test under `tests/` starts
//! and talks to. [`TestApp::api_only`] starts the real api (from its library,
//! on a free loopback port) against a fresh PostgreSQL database and a private
//! Redis queue, with no worker and no model: for keys, listings, contracts
//! and refusals. [`TestApp::spawn`] adds a real worker in this process with
//! the real models, for tests whose jobs run. [`TestDatabase`] is a migrated
//! database alone, for tests of the store. [`TestApp::stop`] and
//! [`TestDatabase::drop`] remove what they made.
//!
//! Configuration comes from the same environment as the binaries
//! (`DATABASE_URL` names the server, not the database; `REDIS_URL`,
//! `ORT_DYLIB_PATH`, model paths), which `make test` sets. Async (tokio);
//! the api and workers run as tasks of the test's own runtime.
//!
//! One concern per module: the app's lifecycle (`app`), requests as a client
//! sends them (`client`), SQL peeks and the store-only database (`database`),
//! queue peeks through the queue crate (`queue`), images (`images`), waiting
//! on a condition (`wait`), keys (`keys`), live streams (`live`), processes
//! (`process`), a cuttable TCP proxy (`proxy`) and a webhook receiver
//! (`receiver`).

mod app;
mod client;
mod database;
mod fresh_db;
mod images;
mod keys;
mod live;
pub mod process;
mod proxy;
mod queue;
mod receiver;
mod wait;

pub use reqwest;
pub use serde_json;

pub use app::{TestApp, Tweak};
pub use client::{form, path_segment, wait_for_job_at};
pub use database::TestDatabase;
pub use images::{faceless_image, jpeg, photo, side_by_side, variants};
pub use keys::{Key, MASTER_KEY, bearer, client_with_authorization, key_of};
pub use live::{Closed, LiveStream, camera_frame, resident_bytes, resident_bytes_of, y4m_video};
pub use process::built_binary;
pub use proxy::Proxy;
pub use receiver::WebhookReceiver;
pub use wait::wait_until;
