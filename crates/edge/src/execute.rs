//! Running one GraphQL request: automatic persisted queries, the document cache (a repeated query
//! is parsed once, and validated once for the same variables), the alias limit, and the request
//! scope (trace context, forwarded headers, DataLoader) that every resolver reads.

use std::collections::HashMap;
use std::hash::{Hash as _, Hasher as _};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextResolve, NextValidation,
    ResolveInfo,
};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
};
use async_graphql::{Request, Response, ServerError, ServerResult, ValidationResult};
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
        let (schema, runtime) = schema::build_with(&catalog, &options, backends, |builder| {
            builder.extension(ValidationCacheFactory(ValidationCache::new(
                settings.document_cache,
            )))
        })?;
        let capacity =
            NonZeroUsize::new(settings.document_cache.max(1)).unwrap_or(NonZeroUsize::MIN);
        Ok(Self(Arc::new(Inner {
            schema,
            runtime,
            documents: Mutex::new(LruCache::new(capacity)),
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

    /// Resolves an automatic persisted query (Apollo's `persistedQuery` extension): a query
    /// with its hash is remembered; a hash alone is looked up.
    pub fn persisted_query(&self, request: &mut Request) -> Result<(), Box<Response>> {
        let Some(persisted) = request.extensions.get("persistedQuery") else {
            return Ok(());
        };
        let hash = match persisted {
            async_graphql::Value::Object(object) => match object.get("sha256Hash") {
                Some(async_graphql::Value::String(hash)) => hash.to_ascii_lowercase(),
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
        let kind = operation_type(&parsed.document, request.operation_name.as_deref());
        request.set_parsed_query(parsed.document.clone());
        Ok(kind)
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
        let executed = Arc::new(AtomicBool::new(false));
        let request = self.scoped(request, call).data(Executed(executed.clone()));
        let mut response = self.0.schema.execute(request).instrument(span).await;
        null_failed_fields(&mut response);
        (response, executed.load(Ordering::Relaxed))
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
        let request = self.scoped(request, call);
        self.0.schema.execute_stream(request)
    }

    fn scoped(&self, request: Request, call: CallContext) -> Request {
        let key = validation_key(&request);
        request
            .data(ValidationKey(key))
            .data(RequestScope::new(self.0.runtime.clone(), call))
    }
}

/// Set once execution starts: what was refused before is a request error (HTTP 4xx under
/// `application/graphql-response+json`).
#[derive(Debug, Clone)]
struct Executed(Arc<AtomicBool>);

/// Writes `null` where a field failed: async-graphql leaves the failed field out of `data`, but
/// GraphQL answers a nullable field that failed as null, at the error's path.
fn null_failed_fields(response: &mut Response) {
    use async_graphql::{Name, PathSegment, Value};
    fn at<'a>(value: &'a mut Value, path: &[PathSegment]) -> Option<&'a mut Value> {
        let Some((first, rest)) = path.split_first() else {
            return Some(value);
        };
        let next = match (value, first) {
            (Value::Object(object), PathSegment::Field(name)) => object.get_mut(name.as_str())?,
            (Value::List(items), PathSegment::Index(index)) => items.get_mut(*index)?,
            _ => return None,
        };
        at(next, rest)
    }
    let paths: Vec<Vec<PathSegment>> = response
        .errors
        .iter()
        .map(|error| error.path.clone())
        .collect();
    for path in paths {
        let Some((PathSegment::Field(last), parents)) = path.split_last() else {
            continue;
        };
        match at(&mut response.data, parents) {
            Some(Value::Object(object)) => {
                object.entry(Name::new(last)).or_insert(Value::Null);
            }
            // Every root field failed: `data` is an object of nulls, not null.
            Some(data @ Value::Null) if parents.is_empty() => {
                let mut object = async_graphql::indexmap::IndexMap::new();
                object.insert(Name::new(last), Value::Null);
                *data = Value::Object(object);
            }
            _ => {}
        }
    }
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

/// The type of the operation the request selects.
fn operation_type(document: &ExecutableDocument, name: Option<&str>) -> Option<OperationType> {
    match (&document.operations, name) {
        (DocumentOperations::Single(operation), _) => Some(operation.node.ty),
        (DocumentOperations::Multiple(operations), Some(name)) => {
            operations.get(name).map(|operation| operation.node.ty)
        }
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => operations
            .values()
            .next()
            .map(|operation| operation.node.ty),
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

/// The key under which a validation result is remembered: the query, the operation and the
/// variables (variables take part in validation: their types and the complexity of `first`).
#[derive(Debug, Clone, Copy)]
struct ValidationKey(u64);

fn validation_key(request: &Request) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    request.query.hash(&mut hasher);
    request.operation_name.hash(&mut hasher);
    serde_json::to_string(&request.variables)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

/// Remembers successful validations, so a repeated request is validated once.
struct ValidationCache {
    results: Mutex<LruCache<u64, ValidationResult>>,
}

impl ValidationCache {
    fn new(capacity: usize) -> Arc<Self> {
        let capacity = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        Arc::new(Self {
            results: Mutex::new(LruCache::new(capacity)),
        })
    }
}

struct ValidationCacheExtension(Arc<ValidationCache>);

#[async_trait::async_trait]
impl Extension for ValidationCacheExtension {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        if let Some(Executed(flag)) = ctx.data_opt::<Executed>() {
            flag.store(true, Ordering::Relaxed);
        }
        next.run(ctx, operation_name).await
    }

    /// Gives a resolver's error the path of its field (async-graphql's dynamic schema leaves it
    /// out), so that clients, and `null_failed_fields`, know where it happened.
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<async_graphql::Value>> {
        let path_node = info.path_node;
        next.run(ctx, info).await.map_err(|mut error| {
            if error.path.is_empty() {
                error.path = path_node
                    .to_string_vec()
                    .into_iter()
                    .map(|segment| match segment.parse::<usize>() {
                        Ok(index) => async_graphql::PathSegment::Index(index),
                        Err(_) => async_graphql::PathSegment::Field(segment),
                    })
                    .collect();
            }
            error
        })
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
struct ValidationCacheFactory(Arc<ValidationCache>);

impl ExtensionFactory for ValidationCacheFactory {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ValidationCacheExtension(self.0.clone()))
    }
}
