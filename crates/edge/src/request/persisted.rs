//! Automatic persisted queries (Apollo's `persistedQuery` extension): a query sent with its
//! SHA-256 is remembered once it validated; later, the hash alone stands for it. The queries are
//! held in a cache bounded in bytes, and a query that does not validate is never held.

use std::sync::Mutex;

use async_graphql::{Request, Response, Value};
use sha2::Digest as _;

use super::bounded::{ByteBounded, CacheUsage};
use super::error_response;

/// The bytes an entry takes besides its query and hash (the cache's node).
const ENTRY_BYTES: usize = 128;

/// A query sent with its hash, to remember once it validated (request data).
pub(super) struct PersistAs {
    /// The lowercase hex of the query's SHA-256.
    hash: String,
    /// The query.
    query: String,
}

/// The remembered queries, by the lowercase hex of their SHA-256.
pub(super) struct PersistedQueries(Mutex<ByteBounded<String, String>>);

impl PersistedQueries {
    /// A cache of at most `bytes` bytes.
    pub(super) fn new(bytes: usize) -> Self {
        Self(Mutex::new(ByteBounded::new(bytes)))
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, ByteBounded<String, String>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Resolves the request's `persistedQuery`: a query with its hash is checked, and marked to
    /// be remembered once it validates; a hash alone is looked up (`PERSISTED_QUERY_NOT_FOUND`
    /// when it is not known).
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
        if request.query.is_empty() {
            match self.cache().get(&hash) {
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
            let query = request.query.clone();
            request.data.insert(PersistAs { hash, query });
        }
        Ok(())
    }

    /// Remembers the query of `persist` (it validated).
    pub(super) fn validated(&self, persist: &PersistAs) {
        let weight = persist.hash.len() + persist.query.len() + ENTRY_BYTES;
        self.cache()
            .put(persist.hash.clone(), persist.query.clone(), weight);
    }

    /// What the cache holds.
    pub(super) fn usage(&self) -> CacheUsage {
        self.cache().usage()
    }
}
