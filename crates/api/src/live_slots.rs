//! Who may hold a live stream (`GET /v1/live`, served by `live`). An
//! authenticated stream takes one of `FACEREC_LIVE_MAX_STREAMS` slots. A
//! stream upgraded without a key (it will authenticate by its first message)
//! takes no slot until it has: it waits in a small budget of its own
//! (`FACEREC_LIVE_MAX_PENDING`, a few per client address), for a short while,
//! so that clients without a key cannot hold the slots of those with one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::shares::address_group;
use crate::{ApiError, Settings};

/// The live streams of this api: open ones and those waiting to authenticate.
pub struct LiveStreams {
    open: Arc<Semaphore>,
    pending: Arc<Semaphore>,
    pending_by_addr: Arc<Mutex<HashMap<IpAddr, usize>>>,
    pending_per_addr: usize,
    retry_after_secs: u64,
}

/// A stream's slot among the open ones, released when it ends.
pub(crate) struct OpenSlot {
    _permit: OwnedSemaphorePermit,
}

/// A stream waiting for its auth message, counted against its address until dropped.
pub(crate) struct PendingSlot {
    _permit: OwnedSemaphorePermit,
    addr: Option<IpAddr>,
    by_addr: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl LiveStreams {
    pub fn new(settings: &Settings) -> Self {
        Self {
            open: Arc::new(Semaphore::new(settings.live_max_streams)),
            pending: Arc::new(Semaphore::new(settings.live_max_pending)),
            pending_by_addr: Arc::default(),
            pending_per_addr: settings.live_max_pending_per_addr,
            retry_after_secs: settings.live_auth_wait_secs.max(1),
        }
    }

    /// A slot for an authenticated stream, or `503 server_busy`.
    pub(crate) fn admit(&self) -> Result<OpenSlot, ApiError> {
        self.open
            .clone()
            .try_acquire_owned()
            .map(|permit| OpenSlot { _permit: permit })
            .map_err(|_| ApiError::busy("the api is at its limit of live streams", 5))
    }

    /// A place to wait for an auth message: `503 server_busy` when every one
    /// is taken, `429 rate_limited` when the client's address holds its share.
    pub(crate) fn admit_pending(&self, peer: Option<IpAddr>) -> Result<PendingSlot, ApiError> {
        let addr = peer.map(address_group);
        let busy = || {
            let message = "the api is at its limit of live streams waiting for a key; send the key in the \
                           Authorization header or the facerec.key.<key> subprotocol";
            ApiError::busy(message, self.retry_after_secs)
        };
        let permit = self.pending.clone().try_acquire_owned().map_err(|_| busy())?;
        if let Some(addr) = addr {
            let mut by_addr = self.pending_by_addr.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let held = by_addr.entry(addr).or_insert(0);
            if *held >= self.pending_per_addr {
                let message = "this address holds its share of live streams waiting for a key";
                return Err(ApiError::over_share(message, self.retry_after_secs));
            }
            *held += 1;
        }
        Ok(PendingSlot { _permit: permit, addr, by_addr: self.pending_by_addr.clone() })
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        let Some(addr) = self.addr else { return };
        let mut by_addr = self.by_addr.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(held) = by_addr.get_mut(&addr) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                by_addr.remove(&addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn streams(pending: usize, per_addr: usize) -> LiveStreams {
        LiveStreams {
            open: Arc::new(Semaphore::new(1)),
            pending: Arc::new(Semaphore::new(pending)),
            pending_by_addr: Arc::default(),
            pending_per_addr: per_addr,
            retry_after_secs: 5,
        }
    }

    #[test]
    fn one_address_holds_only_its_share_of_the_waiting_streams() {
        let live = streams(4, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let (first, _second) = (live.admit_pending(Some(a)).unwrap(), live.admit_pending(Some(a)).unwrap());
        let refused = live.admit_pending(Some(a)).err().unwrap();
        assert_eq!(refused.code, ErrorCode::RateLimited);
        // Same /64, another host: the same share.
        let v6 = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let _x = live.admit_pending(v6("2001:db8::1")).unwrap();
        let _y = live.admit_pending(v6("2001:db8::2")).unwrap();
        assert_eq!(live.pending.available_permits(), 0);
        assert_eq!(live.admit_pending(v6("2001:db8:1::1")).err().unwrap().code, ErrorCode::ServerBusy);
        drop(first);
        let again = live.admit_pending(Some(a));
        assert!(again.is_ok(), "a slot given back is free again");
        assert_eq!(live.pending_by_addr.lock().unwrap().get(&a), Some(&2));
    }

    #[test]
    fn waiting_streams_take_no_open_slot() {
        let live = streams(2, 2);
        let _waiting = live.admit_pending(None).unwrap();
        assert!(live.admit().is_ok());
    }
}
