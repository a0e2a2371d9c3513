//! Automatic persisted queries (Apollo's `persistedQuery` extension): a query sent with its
//! SHA-256 is remembered; later, the hash alone stands for it.

use std::sync::Mutex;

use async_graphql::{Request, Response, Value};
use lru::LruCache;
use sha2::Digest as _;

use super::{capacity, error_response};

/// The remembered queries, by the lowercase hex of their SHA-256.
pub(super) struct PersistedQueries(Mutex<LruCache<String, String>>);

impl PersistedQueries {
    /// A cache of at most `size` queries (at least one).
    pub(super) fn new(size: usize) -> Self {
        Self(Mutex::new(LruCache::new(capacity(size))))
    }

    /// Resolves the request's `persistedQuery`: a query with its hash is checked and remembered;
    /// a hash alone is looked up (`PERSISTED_QUERY_NOT_FOUND` when it is not known).
    pub(super) fn resolve(&self, request: &mut Request) -> Result<(), Box<Response>> {
        let Some(persisted) = request.extensions.get("persistedQuery") else {
            return Ok(());
        };
        let hash = match persisted {
            Value::Object(object) => match object.get("sha256Hash") {
                Some(Value::String(hash)) => hash.to_ascii_lowercase(),
                _ => {
                    return Err(error_response(
                        "PERSISTED_QUERY_INVALID",
                        "persistedQuery needs a sha256Hash",
                    ));
                }
            },
            _ => {
                return Err(error_response(
                    "PERSISTED_QUERY_INVALID",
                    "persistedQuery must be an object",
                ));
            }
        };
        let mut cache = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if request.query.is_empty() {
            match cache.get(&hash) {
                Some(query) => request.query = query.clone(),
                None => {
                    return Err(error_response(
                        "PERSISTED_QUERY_NOT_FOUND",
                        "PersistedQueryNotFound",
                    ));
                }
            }
        } else {
            let actual = hex::encode(sha2::Sha256::digest(request.query.as_bytes()));
            if actual != hash {
                return Err(error_response(
                    "PERSISTED_QUERY_HASH_MISMATCH",
                    "provided sha256Hash does not match the query",
                ));
            }
            cache.put(hash, request.query.clone());
        }
        Ok(())
    }
}
