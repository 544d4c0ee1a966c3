//! How many archives may be on disk at once, and how many bytes: each
//! `POST /v1/batches` reserves a slot and its declared size (its
//! `Content-Length`, else the largest archive allowed) before its body is
//! read, and holds them until it is answered (its spool file is removed by
//! then). No room means `503 server_busy` with `Retry-After` at once: a
//! spooling upload takes minutes, so waiting for one would not help. One
//! caller may hold at most its fair share (`shares`) of either.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::bodies::{batch_body_limit, discard_refused_body, submission_body_limit};
use crate::shares::{CallerId, share_of};
use crate::{ApiError, Settings};

/// The limits, and what is held of them.
pub struct Spool {
    max_archives: usize,
    max_bytes: u64,
    caller_archives: usize,
    caller_bytes: u64,
    held: Mutex<Held>,
    /// What an archive that does not declare its size reserves: the largest batch body.
    batch_limit: u64,
    /// A refused body up to this size (a submission's largest) is read to its end.
    submission_limit: usize,
    /// `Retry-After` of a refusal (`FACEREC_RETRY_AFTER_SECS`).
    retry_after_secs: u64,
}

#[derive(Default)]
struct Held {
    archives: usize,
    bytes: u64,
    by_caller: HashMap<CallerId, (usize, u64)>,
}

/// Why an archive found no room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SpoolFull {
    #[error("the api is spooling as many archives as it may; try again later")]
    Archives,
    #[error("the archives being spooled take all the disk space the api may use; try again later")]
    Bytes,
    #[error("this caller is already spooling its share of archives; try again when one is recorded")]
    CallerShare,
}

/// A slot and its bytes, given back when dropped.
pub struct SpoolSlot {
    spool: Arc<Spool>,
    who: CallerId,
    bytes: u64,
}

impl Spool {
    pub fn new(settings: &Settings) -> Arc<Self> {
        let max_archives = settings.max_spooling_archives.max(1);
        let max_bytes = settings.max_spool_bytes;
        let percent = settings.max_share_percent;
        let batch_limit = batch_body_limit(settings);
        Arc::new(Self {
            max_archives,
            max_bytes,
            caller_archives: share_of(max_archives as u64, percent, 1) as usize,
            caller_bytes: share_of(max_bytes, percent, batch_limit.min(max_bytes)),
            held: Mutex::new(Held::default()),
            batch_limit,
            submission_limit: submission_body_limit(settings),
            retry_after_secs: settings.retry_after_secs,
        })
    }

    /// Reserves a slot and `bytes` for `who`, or says why there is no room.
    pub fn reserve(self: &Arc<Self>, who: CallerId, bytes: u64) -> Result<SpoolSlot, SpoolFull> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let (caller_archives, caller_bytes) = held.by_caller.get(&who).copied().unwrap_or_default();
        // The shared limits first: when they are reached, no caller's share would help.
        if held.archives >= self.max_archives {
            return Err(SpoolFull::Archives);
        }
        if held.bytes + bytes > self.max_bytes {
            return Err(SpoolFull::Bytes);
        }
        if caller_archives >= self.caller_archives || caller_bytes + bytes > self.caller_bytes {
            return Err(SpoolFull::CallerShare);
        }
        held.archives += 1;
        held.bytes += bytes;
        held.by_caller.insert(who.clone(), (caller_archives + 1, caller_bytes + bytes));
        Ok(SpoolSlot { spool: Arc::clone(self), who, bytes })
    }
}

impl Drop for SpoolSlot {
    fn drop(&mut self) {
        let mut held = self.spool.held.lock().unwrap_or_else(|e| e.into_inner());
        held.archives -= 1;
        held.bytes -= self.bytes;
        if let Some((archives, bytes)) = held.by_caller.get_mut(&self.who) {
            *archives -= 1;
            *bytes -= self.bytes;
            if *archives == 0 {
                held.by_caller.remove(&self.who);
            }
        }
    }
}

/// Middleware for `POST /v1/batches`: reserves the archive's room on disk
/// until the answer is ready, or answers `503 server_busy` without reading it.
pub async fn limit_spooling(State(spool): State<Arc<Spool>>, request: Request, next: Next) -> Response {
    let most = spool.batch_limit;
    let declared = request.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let bytes = declared.unwrap_or(most).min(most);
    match spool.reserve(CallerId::of(&request), bytes) {
        Ok(slot) => {
            let response = next.run(request).await;
            drop(slot);
            response
        }
        Err(full) => {
            tracing::warn!(bytes, reason = ?full, "archive refused: no room to spool it");
            metrics::counter!(facerec_telemetry::metrics::names::UPLOADS_REFUSED).increment(1);
            // A small body is read to its end so the client hears the answer;
            // a larger one is not, and the connection closes.
            let small = spool.submission_limit;
            if declared.is_some_and(|n| n <= small as u64) {
                discard_refused_body(request, small).await;
            }
            let retry_after = spool.retry_after_secs;
            match full {
                SpoolFull::CallerShare => ApiError::over_share(full.to_string(), retry_after).into_response(),
                SpoolFull::Archives | SpoolFull::Bytes => ApiError::busy(full.to_string(), retry_after).into_response(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn spool(max_archives: usize, max_bytes: u64, caller_archives: usize, caller_bytes: u64) -> Arc<Spool> {
        let held = Mutex::new(Held::default());
        let (batch_limit, submission_limit, retry_after_secs) = (max_bytes, 0, 1);
        Arc::new(Spool {
            max_archives,
            max_bytes,
            caller_archives,
            caller_bytes,
            held,
            batch_limit,
            submission_limit,
            retry_after_secs,
        })
    }

    #[test]
    fn archives_bytes_and_shares_are_each_limited_and_given_back() {
        let spool = spool(3, 100, 2, 60);
        let (a, b, c) =
            (CallerId::Unknown, CallerId::Address(IpAddr::from([127, 0, 0, 1])), CallerId::Key(uuid::Uuid::nil()));
        let a1 = spool.reserve(a.clone(), 30).unwrap();
        let _a2 = spool.reserve(a.clone(), 30).unwrap();
        assert_eq!(spool.reserve(a.clone(), 1).err(), Some(SpoolFull::CallerShare));
        assert_eq!(spool.reserve(b.clone(), 41).err(), Some(SpoolFull::Bytes));
        let _b1 = spool.reserve(b.clone(), 40).unwrap();
        assert_eq!(spool.reserve(c.clone(), 0).err(), Some(SpoolFull::Archives));
        drop(a1);
        let _c1 = spool.reserve(c, 30).unwrap();
        let held = spool.held.lock().unwrap();
        assert_eq!((held.archives, held.bytes, held.by_caller[&a]), (3, 100, (1, 30)));
    }
}
