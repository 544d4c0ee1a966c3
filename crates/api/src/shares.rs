//! Fair shares: who holds how much of a shared budget. A caller is its API
//! key, or its address when it has none (open mode, the master key); each may
//! hold at most `FACEREC_MAX_SHARE_PERCENT` of the upload budget and of the
//! spool, so that one caller cannot take what every tenant shares.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::auth::Caller;

/// Who a share belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CallerId {
    Key(Uuid),
    Address(IpAddr),
    /// Neither a key nor an address is known (a router served without the accept loop).
    Unknown,
}

impl CallerId {
    /// The request's caller, as the authentication middleware and the accept loop left it.
    pub fn of(request: &Request) -> Self {
        if let Some(id) = request.extensions().get::<Caller>().and_then(Caller::key_id) {
            return CallerId::Key(id);
        }
        match request.extensions().get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(addr)) => CallerId::Address(address_group(addr.ip())),
            None => CallerId::Unknown,
        }
    }
}

/// The unit a client without a key counts by: its IPv4 address, or the /64
/// of its IPv6 address (one host is usually given a whole /64, so a share per
/// IPv6 address would be a share per whim).
pub fn address_group(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(segments[0], segments[1], segments[2], segments[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// The most one caller may hold of a budget of `total`: `percent` of it, but
/// never less than `largest` (the largest single reservation, so that a lone
/// request of any allowed size is never refused for fairness) nor more than all.
pub fn share_of(total: u64, percent: u8, largest: u64) -> u64 {
    let part = total.saturating_mul(u64::from(percent)) / 100;
    part.clamp(largest.min(total), total).max(1)
}

/// Each caller's share of a budget counted in units, as a semaphore per
/// caller (created on first use, removed when its last holder is done).
pub struct Shares {
    per_caller: u32,
    callers: Mutex<HashMap<CallerId, Arc<Semaphore>>>,
}

/// Units of one caller's share, given back when dropped.
pub struct Share {
    permit: Option<OwnedSemaphorePermit>,
    semaphore: Arc<Semaphore>,
    who: CallerId,
    shares: Arc<Shares>,
}

impl Shares {
    pub fn new(per_caller: u32) -> Arc<Self> {
        Arc::new(Self { per_caller: per_caller.max(1), callers: Mutex::new(HashMap::new()) })
    }

    /// Waits until `who` holds less than its share minus `units`, then takes them.
    pub async fn take(self: &Arc<Self>, who: CallerId, units: u32) -> Share {
        let semaphore = {
            let mut callers = self.callers.lock().unwrap_or_else(|e| e.into_inner());
            callers.entry(who.clone()).or_insert_with(|| Arc::new(Semaphore::new(self.per_caller as usize))).clone()
        };
        // Built before waiting, so that a wait given up removes the entry too.
        let mut share = Share { permit: None, semaphore, who, shares: Arc::clone(self) };
        let units = units.clamp(1, self.per_caller);
        let permit = share.semaphore.clone().acquire_many_owned(units).await.expect("the semaphore is never closed");
        share.permit = Some(permit);
        share
    }

    #[cfg(test)]
    fn callers(&self) -> usize {
        self.callers.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        drop(self.permit.take());
        let mut callers = self.shares.callers.lock().unwrap_or_else(|e| e.into_inner());
        // Only the map and this share still point to it: nobody holds or waits.
        if Arc::strong_count(&self.semaphore) == 2 {
            callers.remove(&self.who);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_share_is_a_part_but_never_less_than_the_largest_request() {
        assert_eq!(share_of(64, 50, 21), 32);
        assert_eq!(share_of(64, 50, 40), 40);
        assert_eq!(share_of(64, 100, 21), 64);
        assert_eq!(share_of(4, 50, 10), 4, "never more than all");
    }

    #[tokio::test]
    async fn one_caller_waits_for_its_own_share_while_another_takes_its_own() {
        let shares = Shares::new(10);
        let a = CallerId::Address(IpAddr::from([127, 0, 0, 1]));
        let b = CallerId::Key(Uuid::nil());
        let held = shares.take(a.clone(), 8).await;
        let more_for_a = tokio::time::timeout(Duration::from_millis(50), shares.take(a.clone(), 3)).await;
        assert!(more_for_a.is_err(), "a holds 8 of its 10");
        let for_b = tokio::time::timeout(Duration::from_millis(50), shares.take(b, 10)).await;
        assert!(for_b.is_ok(), "b's share is its own");
        drop(for_b);
        drop(held);
        assert_eq!(shares.callers(), 0, "callers with nothing held are forgotten");
        let _again = shares.take(a, 10).await;
        assert_eq!(shares.callers(), 1);
    }
}
