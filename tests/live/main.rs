//! Live recognition: WebSocket streams through the api and a worker, and the
//! `/live` and `/docs` pages in a real browser. The stream that measures
//! this process's memory has a binary of its own (`tests/live_memory.rs`).

mod live;
mod live_browser;
