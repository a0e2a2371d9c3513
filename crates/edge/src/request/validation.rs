//! The validation cache: a repeated document is validated once, whatever its variables.

use std::hash::{Hash as _, Hasher as _};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use async_graphql::{Request, ValidationResult};
use lru::LruCache;

use super::capacity;

/// The key under which a validation result is remembered: the query and the operation. The
/// variables are not part of it: `Gateway::prepare` coerces them on every request, and nothing else
/// of validation depends on them (the schema has no complexity that reads arguments).
#[derive(Debug, Clone, Copy)]
pub(super) struct ValidationKey(pub(super) u64);

pub(super) fn validation_key(request: &Request) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    request.query.hash(&mut hasher);
    request.operation_name.hash(&mut hasher);
    hasher.finish()
}

/// Remembers successful validations, so a repeated document is validated once.
pub(super) struct ValidationCache {
    pub(super) results: Mutex<LruCache<u64, ValidationResult>>,
    /// How many validations ran (cache misses).
    pub(super) runs: AtomicU64,
}

impl ValidationCache {
    pub(super) fn new(size: usize) -> Arc<Self> {
        Arc::new(Self {
            results: Mutex::new(LruCache::new(capacity(size))),
            runs: AtomicU64::new(0),
        })
    }
}
