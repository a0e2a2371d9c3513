//! Each caller's budget of cost points per minute: a token bucket per caller that holds at most
//! a minute's points and refills continuously. An operation is charged its static cost before it
//! runs; one that would overdraw the bucket is refused, uncharged, with the seconds until it
//! would fit (HTTP 429 with `Retry-After`).
//!
//! A caller is the token's subject, or without a token the client's address (the peer's, or
//! behind a trusted proxy the last `X-Forwarded-For` address, which the proxy appended). The table is an LRU of at most
//! [`MAX_CALLERS`] buckets, so its memory is bounded however many addresses call: the caller idle
//! longest is forgotten first (and comes back with a full bucket).
//!
//! **Why not the `governor` crate.** Its keyed limiter charges weighted costs (`check_key_n`),
//! but its table only shrinks when told to (`retain_recent`) and has no bound of its own; an LRU
//! of plain buckets is bounded by construction and a few lines long.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use crowdcrunch_runtime::auth::Identity;
use lru::LruCache;

/// The most callers whose buckets are remembered at once (about 100 bytes each).
const MAX_CALLERS: usize = 65_536;

/// Whose budget an operation is charged to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Caller {
    /// A customer, by the customer id of their token.
    Customer(String),
    /// A member of staff (or any other subject), by the token's subject.
    Subject(String),
    /// A caller without a token, by their address.
    Address(IpAddr),
    /// A caller without a token whose address is not known (the one bucket they all share).
    Unknown,
}

impl Caller {
    /// The caller of a request by `identity`, from `client` when anonymous.
    pub(super) fn of(identity: &Identity, client: Option<IpAddr>) -> Self {
        match identity {
            Identity::Customer { customer_id } => Self::Customer(customer_id.clone()),
            Identity::Staff { subject, .. } => Self::Subject(subject.clone()),
            Identity::Peer { service } => Self::Subject(format!("service:{service}")),
            Identity::Anonymous => client.map_or(Self::Unknown, Self::Address),
        }
    }
}

/// An operation refused for want of budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Overdrawn {
    /// When the operation would fit, rounded up to whole seconds (at least 1).
    pub(super) retry_after_seconds: u64,
}

struct Bucket {
    points: f64,
    at: Instant,
}

/// Every caller's bucket.
pub(super) struct Budgets {
    per_minute: u64,
    buckets: Mutex<LruCache<Caller, Bucket>>,
}

impl Budgets {
    /// Budgets of `per_minute` points per caller; 0 switches them off.
    pub(super) fn new(per_minute: u64) -> Self {
        Self {
            per_minute,
            buckets: Mutex::new(LruCache::new(
                std::num::NonZeroUsize::new(MAX_CALLERS).unwrap_or(std::num::NonZeroUsize::MIN),
            )),
        }
    }

    /// Charges `caller` `cost` points at `now`, or says when it could be.
    pub(super) fn charge(&self, caller: Caller, cost: u64, now: Instant) -> Result<(), Overdrawn> {
        if self.per_minute == 0 {
            return Ok(());
        }
        #[expect(
            clippy::cast_precision_loss,
            reason = "points are counted approximately; a cost or budget past 2^53 is already refused or unlimited in practice"
        )]
        let (capacity, cost) = (self.per_minute as f64, cost as f64);
        let per_second = capacity / 60.0;
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = buckets.get_or_insert_mut(caller, || Bucket {
            points: capacity,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.points = (bucket.points + elapsed * per_second).min(capacity);
        bucket.at = now;
        if cost <= bucket.points {
            bucket.points -= cost;
            return Ok(());
        }
        // A cost above a whole minute's budget never fits: come back in a minute, when the
        // bucket is full, and be refused again, which says the same.
        let missing = (cost.min(capacity) - bucket.points).max(0.0);
        let wait = (missing / per_second).ceil();
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a positive number of seconds, at most 60"
        )]
        let retry_after_seconds = (wait as u64).max(1);
        Err(Overdrawn {
            retry_after_seconds,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_bucket_holds_a_minute_and_refills_over_it() {
        let budgets = Budgets::new(600);
        let start = Instant::now();
        let caller = || Caller::Subject("ada".to_owned());
        assert_eq!(budgets.charge(caller(), 600, start), Ok(()));
        // Empty: 10 points a second come back.
        assert_eq!(
            budgets.charge(caller(), 100, start),
            Err(Overdrawn {
                retry_after_seconds: 10
            })
        );
        // Another caller has their own bucket.
        assert_eq!(budgets.charge(Caller::Unknown, 100, start), Ok(()));
        let later = start + Duration::from_secs(10);
        assert_eq!(budgets.charge(caller(), 100, later), Ok(()));
        assert!(budgets.charge(caller(), 1, later).is_err());
        // A cost above the whole budget waits for a full bucket, and no longer.
        let much_later = later + Duration::from_secs(3600);
        assert_eq!(budgets.charge(caller(), 600, much_later), Ok(()));
        assert_eq!(
            budgets.charge(caller(), 10_000, much_later),
            Err(Overdrawn {
                retry_after_seconds: 60
            })
        );
    }

    #[test]
    fn no_budget_charges_nothing() {
        let budgets = Budgets::new(0);
        assert_eq!(
            budgets.charge(Caller::Unknown, u64::MAX, Instant::now()),
            Ok(())
        );
    }
}
