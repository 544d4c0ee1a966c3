//! The gallery and what fills it: collections, subjects and faces, deletion
//! that forgets and consent, the in-memory search index, archive batches and
//! bulk ingestion with the CLI.

mod batches;
mod forgetting;
mod gallery;
mod ingest;
mod search_index;
