//! How many operations a caller holds open over all their WebSocket connections. A [`Permit`]
//! counts one; it is released when dropped, so every way an operation ends (its last result, the
//! client's `complete`, the socket closing, the task failing) gives it back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crowdcrunch_runtime::auth::Identity;

/// Who a caller is for the count: the token's subject (by role), or, without a token, the
/// client's address when the edge knows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct CallerKey(String);

impl CallerKey {
    /// The key of `identity` on a connection from `address`; `None` for an anonymous caller
    /// whose address is unknown (held to the connection's own limit only).
    pub(super) fn of(identity: &Identity, address: Option<std::net::IpAddr>) -> Option<Self> {
        let key = match identity {
            Identity::Customer { customer_id } => format!("customer:{customer_id}"),
            Identity::Staff { subject, .. } => format!("staff:{subject}"),
            Identity::Peer { service } => format!("service:{service}"),
            Identity::Anonymous => format!("address:{}", address?),
        };
        Some(Self(key))
    }
}

/// The open operations of every caller, shared by all connections of one edge.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallerOperations(Arc<Mutex<HashMap<CallerKey, usize>>>);

impl CallerOperations {
    fn counts(&self) -> MutexGuard<'_, HashMap<CallerKey, usize>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one more open operation of `caller`, unless they hold `limit` already.
    pub(super) fn admit(&self, caller: &CallerKey, limit: usize) -> Option<Permit> {
        let mut counts = self.counts();
        let count = counts.entry(caller.clone()).or_default();
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Permit {
            operations: self.clone(),
            caller: caller.clone(),
        })
    }

    /// How many operations `caller` holds open (for tests).
    #[cfg(test)]
    fn open(&self, caller: &CallerKey) -> usize {
        self.counts().get(caller).copied().unwrap_or_default()
    }
}

/// One open operation of a caller, counted until dropped.
#[derive(Debug)]
pub(super) struct Permit {
    operations: CallerOperations,
    caller: CallerKey,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.operations.counts();
        if let Some(count) = counts.get_mut(&self.caller) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.caller);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permit_counts_until_it_is_dropped() {
        let operations = CallerOperations::default();
        let staff = CallerKey::of(
            &Identity::Staff {
                subject: "s".into(),
                name: "S".into(),
            },
            None,
        )
        .expect("a key");
        let first = operations.admit(&staff, 2).expect("first");
        let second = operations.admit(&staff, 2).expect("second");
        assert!(operations.admit(&staff, 2).is_none(), "the third is over");
        drop(first);
        assert_eq!(operations.open(&staff), 1);
        let third = operations.admit(&staff, 2).expect("room again");
        drop((second, third));
        assert_eq!(operations.open(&staff), 0);
        assert!(
            operations.counts().is_empty(),
            "no entry outlives its permits"
        );
        assert_eq!(CallerKey::of(&Identity::Anonymous, None), None);
    }
}
