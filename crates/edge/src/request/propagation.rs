//! Error propagation, done by hand. GraphQL answers a failed field as null at the error's path,
//! and a null in a non-null field as a null parent, up to `data` itself; async-graphql's dynamic
//! schema leaves a failed field out of `data` instead, answers an object whose every field
//! failed as null, and drops the errors of a subscription event's nested fields. So the edge's
//! request hooks (`hooks.rs`) record, as fields resolve, which non-null fields came out null and
//! every field error, and [`Outcome`] rewrites the response as the spec says once execution
//! ends.
//!
//! **Why by hand.** The dynamic schema gives resolvers no say over their parent's value, and
//! patching the response afterwards needs the paths of the nulled non-null fields, which only a
//! resolve hook sees. Keeping both halves here keeps the rule in one place.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_graphql::{Name, PathSegment, Request, Response, ServerError, Value};
use futures::StreamExt as _;
use futures::stream::BoxStream;

use crate::fault;

/// Executes `request` on `schema` (built with the edge's extension) and makes the response say
/// what the spec says of failed fields; answers whether execution started.
pub(super) async fn run(
    schema: &async_graphql::dynamic::Schema,
    request: Request,
) -> (Response, bool) {
    let outcome = Arc::new(Outcome::default());
    let mut response = schema.execute(request.data(outcome.clone())).await;
    outcome.null_failed_fields(&mut response);
    fault::conceal_faults(&mut response.errors);
    (response, outcome.executed.load(Ordering::Relaxed))
}

/// Executes a subscription (or any operation as a stream) like `run`, event by event.
pub(super) fn run_stream(
    schema: &async_graphql::dynamic::Schema,
    request: Request,
) -> BoxStream<'static, Response> {
    // Each event is resolved in turn, after the previous one was answered: one outcome, cleared
    // after each, serves them all.
    let outcome = Arc::new(Outcome {
        collect_errors: true,
        ..Outcome::default()
    });
    schema
        .execute_stream(request.data(outcome.clone()))
        .map(move |mut response| {
            outcome.restore_errors(&mut response);
            outcome.null_failed_fields(&mut response);
            outcome.clear();
            fault::conceal_faults(&mut response.errors);
            response
        })
        .boxed()
}

/// What one query or mutation's execution leaves for its response: whether it started, and the
/// non-null fields that came out null.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    /// Set once execution starts: what was refused before is a request error (HTTP 4xx under
    /// `application/graphql-response+json`).
    pub(super) executed: AtomicBool,
    /// Set once a non-null field came out null.
    pub(super) any_nulled: AtomicBool,
    /// The paths of the non-null fields (and list items) that came out null: each makes its
    /// parent null, as the spec's error propagation says.
    nulled: Mutex<Vec<Vec<PathSegment>>>,
    /// Whether to keep every field error: async-graphql's dynamic subscriptions drop the errors
    /// of an event's nested fields from its response.
    collect_errors: bool,
    /// The field errors kept, in the order they happened.
    errors: Mutex<Vec<ServerError>>,
}

impl Outcome {
    fn nulled(&self) -> std::sync::MutexGuard<'_, Vec<Vec<PathSegment>>> {
        self.nulled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets the nulled fields and kept errors, for the next event of a subscription.
    fn clear(&self) {
        self.nulled().clear();
        self.any_nulled.store(false, Ordering::Relaxed);
        self.errors().clear();
    }

    fn errors(&self) -> std::sync::MutexGuard<'_, Vec<ServerError>> {
        self.errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps a field error, when this outcome collects them (once: an error can pass up through
    /// a list and its item).
    pub(super) fn keep(&self, error: &ServerError) {
        if self.collect_errors {
            let mut errors = self.errors();
            if !errors.contains(error) {
                errors.push(error.clone());
            }
        }
    }

    /// Puts back the kept errors that the response lacks.
    fn restore_errors(&self, response: &mut Response) {
        for error in self.errors().drain(..) {
            if !response.errors.contains(&error) {
                response.errors.push(error);
            }
        }
    }

    /// Records that the non-null field at `path` came out null.
    pub(super) fn null(&self, path: Vec<PathSegment>) {
        self.nulled().push(path);
        self.any_nulled.store(true, Ordering::Relaxed);
    }

    /// Whether a non-null child of the field at `path` came out null.
    pub(super) fn child_nulled(&self, path: &[PathSegment]) -> bool {
        self.any_nulled.load(Ordering::Relaxed)
            && self
                .nulled()
                .iter()
                .any(|nulled| nulled.len() == path.len() + 1 && nulled.starts_with(path))
    }

    /// Makes the response say what the spec says of failed fields. async-graphql's dynamic
    /// schema leaves a failed field out of `data`; GraphQL answers it as null, at the error's
    /// path, and a null in a non-null field as a null parent (up to `data` itself).
    fn null_failed_fields(&self, response: &mut Response) {
        if self.nulled().iter().any(|path| path.len() == 1) {
            response.data = Value::Null;
            return;
        }
        for error in &response.errors {
            self.null_at(&mut response.data, &error.path);
        }
    }

    /// Writes `null` at the first missing field along `path`: where a failed field was left out.
    fn null_at(&self, data: &mut Value, path: &[PathSegment]) {
        let mut value = data;
        for (depth, segment) in path.iter().enumerate() {
            if matches!(value, Value::Null)
                && matches!(segment, PathSegment::Field(_))
                && !self.child_nulled(&path[..depth])
            {
                // async-graphql answers an object whose every field failed as null; GraphQL
                // answers it as an object of nulls.
                *value = Value::Object(Default::default());
            }
            value = match (value, segment) {
                (Value::Object(object), PathSegment::Field(name)) => {
                    match object.entry(Name::new(name)) {
                        async_graphql::indexmap::map::Entry::Occupied(entry) => entry.into_mut(),
                        async_graphql::indexmap::map::Entry::Vacant(entry) => {
                            entry.insert(Value::Null);
                            return;
                        }
                    }
                }
                (Value::List(items), PathSegment::Index(index)) => match items.get_mut(*index) {
                    Some(item) => item,
                    None => return,
                },
                _ => return,
            };
        }
    }
}

/// The response path of a field being resolved.
pub(super) fn path_of(node: &async_graphql::QueryPathNode<'_>) -> Vec<PathSegment> {
    node.to_string_vec()
        .into_iter()
        .map(|segment| match segment.parse::<usize>() {
            Ok(index) => PathSegment::Index(index),
            Err(_) => PathSegment::Field(segment),
        })
        .collect()
}
