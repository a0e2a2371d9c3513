//! Documents and their cache: a repeated query is parsed once (and, through the validation
//! cache, validated once), whatever its variables; the alias limit, which the schema cannot
//! check, is counted at parse time.

use std::sync::{Arc, Mutex};

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::{Response, ServerError};
use lru::LruCache;

use super::{capacity, set_code};

/// A parsed document and what the limits need to know of it.
pub(super) struct Parsed {
    /// The document.
    pub(super) document: ExecutableDocument,
    /// How many aliases it uses.
    pub(super) aliases: usize,
}

/// The parsed documents, by query text.
pub(super) struct Documents(Mutex<LruCache<String, Arc<Parsed>>>);

impl Documents {
    /// A cache of at most `size` documents (at least one).
    pub(super) fn new(size: usize) -> Self {
        Self(Mutex::new(LruCache::new(capacity(size))))
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, LruCache<String, Arc<Parsed>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The document of `query`, parsed once; a parse error answers `GRAPHQL_PARSE_FAILED`.
    pub(super) fn parse(&self, query: &str) -> Result<Arc<Parsed>, Box<Response>> {
        if let Some(parsed) = self.cache().get(query) {
            return Ok(parsed.clone());
        }
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
        let parsed = Arc::new(Parsed { document, aliases });
        self.cache().put(query.to_owned(), parsed.clone());
        Ok(parsed)
    }
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
