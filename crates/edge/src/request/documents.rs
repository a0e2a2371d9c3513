//! Documents and their cache: a document is checked against its bounds (`tokens`) before it is
//! parsed, and kept, with the result of its validation, only once it validated, so what a client
//! can make the edge hold is what the schema accepts. A repeated query is then parsed and
//! validated once, whatever its variables; the alias limit, which the schema cannot check, is
//! counted at parse time.
//!
//! The cache is bounded in bytes (`bounded`): each document weighs its text and an estimate of
//! its parsed tree, so a few large documents cannot hold what many small ones would.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::{Response, ServerError, ValidationResult};

use super::bounded::{ByteBounded, CacheUsage};
use super::tokens::{TooLarge, within_bounds};
use super::{error_response, set_code};

/// The bytes a parsed document is estimated to take per token of its text (a node of the tree
/// with its position and name, or less for punctuation).
const PARSED_BYTES_PER_TOKEN: usize = 128;
/// The bytes an entry takes besides its text and tree: the cache's node, the key, the
/// validation results of its operations.
const ENTRY_BYTES: usize = 256;

/// The `extensions.code` of a document refused before parsing for its size or its tokens.
const QUERY_TOO_LARGE: &str = "QUERY_TOO_LARGE";

/// A parsed document and what the limits need to know of it.
pub(super) struct Parsed {
    /// The document.
    pub(super) document: ExecutableDocument,
    /// How many aliases it uses.
    pub(super) aliases: usize,
    /// What it is estimated to weigh in the cache, in bytes.
    weight: usize,
}

/// A document that validated, with the result of each operation validated.
struct Entry {
    parsed: Arc<Parsed>,
    validated: Vec<(Option<String>, ValidationResult)>,
}

/// The documents that validated, by query text.
pub(super) struct Documents {
    cache: Mutex<ByteBounded<String, Entry>>,
    /// How many validations ran (cache misses).
    pub(super) validations: AtomicU64,
}

impl Documents {
    /// A cache of at most `bytes` bytes.
    pub(super) fn new(bytes: usize) -> Self {
        Self {
            cache: Mutex::new(ByteBounded::new(bytes)),
            validations: AtomicU64::new(0),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, ByteBounded<String, Entry>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The document of `query` when it validated before, with the result of validating
    /// `operation` when that operation was.
    pub(super) fn get(
        &self,
        query: &str,
        operation: Option<&str>,
    ) -> Option<(Arc<Parsed>, Option<ValidationResult>)> {
        let mut cache = self.cache();
        let entry = cache.get(query)?;
        let validated = entry
            .validated
            .iter()
            .find(|(name, _)| name.as_deref() == operation)
            .map(|(_, result)| *result);
        Some((entry.parsed.clone(), validated))
    }

    /// Keeps `parsed`, the document of `query`, now that `operation` of it validated.
    pub(super) fn validated(
        &self,
        query: &str,
        parsed: &Arc<Parsed>,
        operation: Option<&str>,
        result: ValidationResult,
    ) {
        let mut cache = self.cache();
        match cache.get(query) {
            Some(entry) => {
                if !entry
                    .validated
                    .iter()
                    .any(|(name, _)| name.as_deref() == operation)
                {
                    entry.validated.push((operation.map(str::to_owned), result));
                }
            }
            None => {
                let entry = Entry {
                    parsed: parsed.clone(),
                    validated: vec![(operation.map(str::to_owned), result)],
                };
                cache.put(query.to_owned(), entry, parsed.weight);
            }
        }
    }

    /// Counts one validation run.
    pub(super) fn count_validation(&self) {
        self.validations.fetch_add(1, Ordering::Relaxed);
    }

    /// What the cache holds.
    pub(super) fn usage(&self) -> CacheUsage {
        self.cache().usage()
    }
}

/// Parses `query` once it is within `max_bytes` and `max_tokens` (else `QUERY_TOO_LARGE`); a
/// parse error answers `GRAPHQL_PARSE_FAILED`.
pub(super) fn parse(
    query: &str,
    max_bytes: usize,
    max_tokens: usize,
) -> Result<Arc<Parsed>, Box<Response>> {
    let tokens = within_bounds(query, max_bytes, max_tokens).map_err(|too_large| {
        let mut response = error_response(QUERY_TOO_LARGE, too_large.to_string());
        if let Some(extensions) = response
            .errors
            .first_mut()
            .and_then(|error| error.extensions.as_mut())
        {
            let limit = match too_large {
                TooLarge::Bytes { limit, .. } => ("maxBytes", limit),
                TooLarge::Tokens { limit } => ("maxTokens", limit),
            };
            extensions.set(limit.0, u64::try_from(limit.1).unwrap_or(u64::MAX));
        }
        response
    })?;
    let document = async_graphql::parser::parse_query(query).map_err(|error| {
        let error: ServerError = error.into();
        let mut response = Response::from_errors(vec![error]);
        response
            .errors
            .iter_mut()
            .for_each(|error| set_code(error, "GRAPHQL_PARSE_FAILED"));
        Box::new(response)
    })?;
    let aliases = count_aliases(&document);
    let weight = query
        .len()
        .saturating_add(tokens.saturating_mul(PARSED_BYTES_PER_TOKEN))
        .saturating_add(ENTRY_BYTES);
    Ok(Arc::new(Parsed {
        document,
        aliases,
        weight,
    }))
}

/// The operation the request selects.
pub(super) fn operation<'a>(
    document: &'a ExecutableDocument,
    name: Option<&str>,
) -> Option<&'a OperationDefinition> {
    match (&document.operations, name) {
        (DocumentOperations::Single(operation), _) => Some(&operation.node),
        (DocumentOperations::Multiple(operations), Some(name)) => {
            operations.get(name).map(|operation| &operation.node)
        }
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values().next().map(|operation| &operation.node)
        }
        _ => None,
    }
}

fn count_aliases(document: &ExecutableDocument) -> usize {
    fn count(set: &SelectionSet) -> usize {
        set.items
            .iter()
            .map(|selection| match &selection.node {
                Selection::Field(field) => {
                    usize::from(field.node.alias.is_some()) + count(&field.node.selection_set.node)
                }
                Selection::InlineFragment(fragment) => count(&fragment.node.selection_set.node),
                Selection::FragmentSpread(_) => 0,
            })
            .sum()
    }
    let operations: usize = document
        .operations
        .iter()
        .map(|(_, operation)| count(&operation.node.selection_set.node))
        .sum();
    let fragments: usize = document
        .fragments
        .values()
        .map(|fragment| count(&fragment.node.selection_set.node))
        .sum();
    operations + fragments
}
