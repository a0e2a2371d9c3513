//! Running one GraphQL request: automatic persisted queries, the document cache (a repeated query
//! is parsed once and validated once, whatever its variables; the variables are coerced on each
//! request), the alias limit, error propagation, and the request scope (trace context, forwarded
//! headers, DataLoader) that every resolver reads.

use std::collections::HashMap;
use std::hash::{Hash as _, Hasher as _};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextResolve, NextValidation,
    ResolveInfo,
};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, OperationType, Selection,
    SelectionSet,
};
use async_graphql::{
    Name, PathSegment, Request, Response, ServerError, ServerResult, ValidationResult, Value,
};
use crowdcrunch_runtime::TlsSettings;
use crowdcrunch_runtime::client::Endpoints;
use crowdcrunch_runtime::edge::EdgeSettings;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use lru::LruCache;
use sha2::Digest as _;
use tracing::Instrument as _;

use crate::catalog::{Catalog, CatalogError};
use crate::grpc::{Backends, CallContext};
use crate::schema::{self, Runtime, SchemaOptions};
use crate::scope::RequestScope;
use crate::variables;

/// The edge could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// The descriptors do not make a valid schema.
    #[error(transparent)]
    Schema(#[from] CatalogError),
    /// A backend's endpoints or TLS settings are unusable.
    #[error(transparent)]
    Config(#[from] crowdcrunch_runtime::config::ConfigError),
}

/// The edge: the schema, the backends and the caches, built once and shared by every request.
#[derive(Clone)]
pub struct Edge(Arc<Inner>);

struct Inner {
    schema: async_graphql::dynamic::Schema,
    runtime: Arc<Runtime>,
    settings: EdgeSettings,
    documents: Mutex<LruCache<String, Arc<Parsed>>>,
    validations: Arc<ValidationCache>,
    persisted: Mutex<LruCache<String, String>>,
}

/// A parsed document and what the limits need to know of it.
struct Parsed {
    document: ExecutableDocument,
    aliases: usize,
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge")
            .field("runtime", &self.0.runtime)
            .finish_non_exhaustive()
    }
}

impl Edge {
    /// Builds the schema from the embedded descriptors and lazy channels to `endpoints` (by
    /// backend name: `customers`, `orders`, ...).
    pub fn new(
        settings: EdgeSettings,
        endpoints: &HashMap<String, Endpoints>,
        tls: Option<&TlsSettings>,
    ) -> Result<Self, EdgeError> {
        let catalog = Catalog::decode(crowdcrunch_proto::FILE_DESCRIPTOR_SET)?;
        let backends = Backends::new(endpoints, tls, settings.backend_timeout)?;
        let options = SchemaOptions {
            max_depth: settings.max_depth,
            max_complexity: settings.max_complexity,
            max_page_size: settings.max_page_size,
            introspection: settings.introspection,
        };
        let validations = ValidationCache::new(settings.document_cache);
        let (schema, runtime) = schema::build_with(&catalog, &options, backends, |builder| {
            builder.extension(EdgeExtensionFactory(validations.clone()))
        })?;
        let capacity =
            NonZeroUsize::new(settings.document_cache.max(1)).unwrap_or(NonZeroUsize::MIN);
        Ok(Self(Arc::new(Inner {
            schema,
            runtime,
            documents: Mutex::new(LruCache::new(capacity)),
            validations,
            persisted: Mutex::new(LruCache::new(capacity)),
            settings,
        })))
    }

    /// The settings.
    pub fn settings(&self) -> &EdgeSettings {
        &self.0.settings
    }

    /// The schema's SDL.
    pub fn sdl(&self) -> String {
        self.0.schema.sdl()
    }

    /// Whether every configured backend answers its health check.
    pub async fn backends_ready(&self) -> bool {
        self.0.runtime.backends.ready().await
    }

    /// How many calls the edge made to each RPC since it started, by full RPC name (for tests
    /// and diagnostics).
    pub fn backend_calls(&self) -> HashMap<String, u64> {
        self.0
            .runtime
            .rpcs
            .iter()
            .map(|(name, rpc)| (name.clone(), rpc.calls()))
            .collect()
    }

    /// How many documents the edge validated since it started: a repeated query is validated
    /// once (for tests and diagnostics).
    pub fn validations(&self) -> u64 {
        self.0.validations.runs.load(Ordering::Relaxed)
    }

    /// Resolves an automatic persisted query (Apollo's `persistedQuery` extension): a query
    /// with its hash is remembered; a hash alone is looked up.
    pub fn persisted_query(&self, request: &mut Request) -> Result<(), Box<Response>> {
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
            .persisted
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

    /// Parses (once per distinct query) and checks the limits the schema cannot check itself.
    /// Answers the operation's type, for the HTTP layer (a mutation over GET is refused).
    pub fn prepare(&self, request: &mut Request) -> Result<Option<OperationType>, Box<Response>> {
        let parsed = self.parse(&request.query)?;
        if parsed.aliases > self.0.settings.max_aliases {
            return Err(error_response(
                "QUERY_TOO_COMPLEX",
                format!(
                    "the query uses {} aliases; at most {} are allowed",
                    parsed.aliases, self.0.settings.max_aliases
                ),
            ));
        }
        let operation = operation(&parsed.document, request.operation_name.as_deref());
        if let Some(operation) = operation {
            let mut errors =
                variables::coerce(self.0.schema.registry(), operation, &request.variables);
            if !errors.is_empty() {
                errors
                    .iter_mut()
                    .for_each(|error| set_code(error, "BAD_USER_INPUT"));
                return Err(Box::new(Response::from_errors(errors)));
            }
        }
        request.set_parsed_query(parsed.document.clone());
        Ok(operation.map(|operation| operation.ty))
    }

    fn parse(&self, query: &str) -> Result<Arc<Parsed>, Box<Response>> {
        let mut cache = self
            .0
            .documents
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(parsed) = cache.get(query) {
            return Ok(parsed.clone());
        }
        drop(cache);
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
        self.0
            .documents
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .put(query.to_owned(), parsed.clone());
        Ok(parsed)
    }

    /// Executes a prepared query or mutation in the request's scope. Answers the response, and
    /// whether execution started (false when the request failed validation).
    pub async fn execute(&self, request: Request, call: CallContext) -> (Response, bool) {
        let span = call.span.clone();
        let request = self.scoped(request, call);
        run(&self.0.schema, request).instrument(span).await
    }

    /// Executes a subscription (or any operation over WebSocket) in its own scope.
    pub fn execute_stream(
        &self,
        mut request: Request,
        call: CallContext,
    ) -> BoxStream<'static, Response> {
        if let Err(response) = self.prepare(&mut request) {
            return futures::stream::once(async move { *response }).boxed();
        }
        run_stream(&self.0.schema, self.scoped(request, call))
    }

    fn scoped(&self, request: Request, call: CallContext) -> Request {
        let key = validation_key(&request);
        request
            .data(ValidationKey(key))
            .data(RequestScope::new(self.0.runtime.clone(), call))
    }
}

/// Executes `request` on `schema` (built with the edge's extension) and makes the response say
/// what the spec says of failed fields; answers whether execution started.
async fn run(schema: &async_graphql::dynamic::Schema, request: Request) -> (Response, bool) {
    let outcome = Arc::new(Outcome::default());
    let mut response = schema.execute(request.data(outcome.clone())).await;
    outcome.null_failed_fields(&mut response);
    (response, outcome.executed.load(Ordering::Relaxed))
}

/// Executes a subscription (or any operation as a stream) like `run`, event by event.
fn run_stream(
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
            response
        })
        .boxed()
}

/// What one query or mutation's execution leaves for its response: whether it started, and the
/// non-null fields that came out null.
#[derive(Debug, Default)]
struct Outcome {
    /// Set once execution starts: what was refused before is a request error (HTTP 4xx under
    /// `application/graphql-response+json`).
    executed: AtomicBool,
    /// Set once a non-null field came out null.
    any_nulled: AtomicBool,
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
    fn keep(&self, error: &ServerError) {
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
    fn null(&self, path: Vec<PathSegment>) {
        self.nulled().push(path);
        self.any_nulled.store(true, Ordering::Relaxed);
    }

    /// Whether a non-null child of the field at `path` came out null.
    fn child_nulled(&self, path: &[PathSegment]) -> bool {
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
fn path_of(node: &async_graphql::QueryPathNode<'_>) -> Vec<PathSegment> {
    node.to_string_vec()
        .into_iter()
        .map(|segment| match segment.parse::<usize>() {
            Ok(index) => PathSegment::Index(index),
            Err(_) => PathSegment::Field(segment),
        })
        .collect()
}

/// A response holding one error with `extensions.code`.
pub fn error_response(code: &str, message: impl Into<String>) -> Box<Response> {
    let mut error = ServerError::new(message, None);
    set_code(&mut error, code);
    Box::new(Response::from_errors(vec![error]))
}

fn set_code(error: &mut ServerError, code: &str) {
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
}

/// The operation the request selects.
fn operation<'a>(
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

/// The key under which a validation result is remembered: the query and the operation. The
/// variables are not part of it: `Edge::prepare` coerces them on every request, and nothing else
/// of validation depends on them (the schema has no complexity that reads arguments).
#[derive(Debug, Clone, Copy)]
struct ValidationKey(u64);

fn validation_key(request: &Request) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    request.query.hash(&mut hasher);
    request.operation_name.hash(&mut hasher);
    hasher.finish()
}

/// Remembers successful validations, so a repeated document is validated once.
struct ValidationCache {
    results: Mutex<LruCache<u64, ValidationResult>>,
    /// How many validations ran (cache misses).
    runs: AtomicU64,
}

impl ValidationCache {
    fn new(capacity: usize) -> Arc<Self> {
        let capacity = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        Arc::new(Self {
            results: Mutex::new(LruCache::new(capacity)),
            runs: AtomicU64::new(0),
        })
    }
}

/// The edge's hooks into every request's execution: the validation cache, the "execution
/// started" flag, the path of resolver errors, and null propagation.
struct EdgeExtension(Arc<ValidationCache>);

#[async_trait::async_trait]
impl Extension for EdgeExtension {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        if let Some(outcome) = ctx.data_opt::<Arc<Outcome>>() {
            outcome.executed.store(true, Ordering::Relaxed);
        }
        next.run(ctx, operation_name).await
    }

    /// Gives a resolver's error the path of its field (async-graphql's dynamic schema leaves it
    /// out), and propagates a null in a non-null field to its parent.
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let path_node = info.path_node;
        let non_null = info.return_type.ends_with('!');
        let outcome = ctx.data_opt::<Arc<Outcome>>();
        match next.run(ctx, info).await {
            Err(mut error) => {
                let path = path_of(path_node);
                if error.path.is_empty() {
                    error.path = path.clone();
                }
                if let Some(outcome) = outcome {
                    if non_null {
                        outcome.null(path);
                    }
                    outcome.keep(&error);
                }
                Err(error)
            }
            Ok(value) => {
                if let Some(outcome) = outcome
                    && outcome.any_nulled.load(Ordering::Relaxed)
                {
                    let path = path_of(path_node);
                    if outcome.child_nulled(&path) {
                        if non_null {
                            outcome.null(path);
                        }
                        return Ok(None);
                    }
                }
                Ok(value)
            }
        }
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let Some(ValidationKey(key)) = ctx.data_opt::<ValidationKey>().copied() else {
            return next.run(ctx).await;
        };
        if let Some(result) = self
            .0
            .results
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            .copied()
        {
            return Ok(result);
        }
        self.0.runs.fetch_add(1, Ordering::Relaxed);
        let result = next.run(ctx).await?;
        self.0
            .results
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .put(key, result);
        Ok(result)
    }
}

/// Makes the extension of each request, over the one shared cache.
struct EdgeExtensionFactory(Arc<ValidationCache>);

impl ExtensionFactory for EdgeExtensionFactory {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(EdgeExtension(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::dynamic::{
        Field, FieldFuture, FieldValue, Object, Schema, Subscription, SubscriptionField,
        SubscriptionFieldFuture, TypeRef,
    };
    use serde_json::json;

    use super::*;

    /// `Query { item: Item, items: [Item!], strict: Item! }` and `Subscription { items: Item }`
    /// (two events) over `Item { name: String!, broken: String!, maybe: String }`, where
    /// `broken` and `maybe` always fail.
    fn schema() -> Schema {
        fn item<'a>() -> FieldFuture<'a> {
            FieldFuture::new(async { Ok(Some(FieldValue::value("x"))) })
        }
        fn failing<'a>() -> FieldFuture<'a> {
            FieldFuture::new(async { Err::<Option<FieldValue>, _>("it broke".into()) })
        }
        let query = Object::new("Query")
            .field(Field::new("item", TypeRef::named("Item"), |_| item()))
            .field(Field::new("items", TypeRef::named_nn_list("Item"), |_| {
                FieldFuture::new(async {
                    Ok(Some(FieldValue::list([
                        FieldValue::value("a"),
                        FieldValue::value("b"),
                    ])))
                })
            }))
            .field(Field::new("strict", TypeRef::named_nn("Item"), |_| item()));
        let item = Object::new("Item")
            .field(Field::new(
                "name",
                TypeRef::named_nn(TypeRef::STRING),
                |_| FieldFuture::new(async { Ok(Some(FieldValue::value("name"))) }),
            ))
            .field(Field::new(
                "broken",
                TypeRef::named_nn(TypeRef::STRING),
                |_| failing(),
            ))
            .field(Field::new("maybe", TypeRef::named(TypeRef::STRING), |_| {
                failing()
            }));
        let subscription = Subscription::new("Subscription").field(SubscriptionField::new(
            "items",
            TypeRef::named("Item"),
            |_| {
                SubscriptionFieldFuture::new(async {
                    Ok(futures::stream::iter(["a", "b"].map(|item| {
                        Ok::<_, async_graphql::Error>(FieldValue::value(item))
                    })))
                })
            },
        ));
        Schema::build("Query", None, Some("Subscription"))
            .register(query)
            .register(item)
            .register(subscription)
            .extension(EdgeExtensionFactory(ValidationCache::new(8)))
            .finish()
            .expect("a valid schema")
    }

    async fn answer(query: &str) -> (serde_json::Value, Vec<serde_json::Value>) {
        let (response, executed) = run(&schema(), Request::new(query)).await;
        assert!(executed);
        let paths = response
            .errors
            .iter()
            .map(|error| serde_json::to_value(&error.path).expect("json"))
            .collect();
        (response.data.into_json().expect("json"), paths)
    }

    #[tokio::test]
    async fn a_failed_nullable_field_is_null_at_its_path() {
        let (data, paths) = answer("{ item { name maybe } }").await;
        assert_eq!(data, json!({ "item": { "name": "name", "maybe": null } }));
        assert_eq!(paths, [json!(["item", "maybe"])]);
    }

    #[tokio::test]
    async fn a_failed_non_null_field_nulls_its_parent() {
        let (data, paths) = answer("{ item { name broken } }").await;
        assert_eq!(data, json!({ "item": null }));
        assert_eq!(paths, [json!(["item", "broken"])]);
    }

    #[tokio::test]
    async fn a_null_non_null_list_item_nulls_the_list() {
        let (data, _) = answer("{ items { name broken } item { name } }").await;
        assert_eq!(data, json!({ "items": null, "item": { "name": "name" } }));
    }

    #[tokio::test]
    async fn a_null_non_null_root_field_nulls_data() {
        let (data, paths) = answer("{ strict { broken } item { name } }").await;
        assert_eq!(data, serde_json::Value::Null);
        assert_eq!(paths, [json!(["strict", "broken"])]);
    }

    #[tokio::test]
    async fn an_object_whose_every_field_failed_is_an_object_of_nulls() {
        let (data, _) = answer("{ a: item { maybe } b: item { broken } }").await;
        assert_eq!(data, json!({ "a": { "maybe": null }, "b": null }));
    }

    #[tokio::test]
    async fn every_subscription_event_keeps_its_field_errors_and_propagates_its_nulls() {
        let events: Vec<Response> = run_stream(
            &schema(),
            Request::new("subscription { items { name maybe broken } }"),
        )
        .collect()
        .await;
        assert_eq!(events.len(), 2);
        for event in events {
            let data = event.data.into_json().expect("json");
            assert_eq!(data, json!({ "items": null }));
            let paths: Vec<serde_json::Value> = event
                .errors
                .iter()
                .map(|error| serde_json::to_value(&error.path).expect("json"))
                .collect();
            assert_eq!(
                paths,
                [json!(["items", "maybe"]), json!(["items", "broken"])]
            );
        }
    }
}
