//! The request path: the [`Gateway`], built once and shared by every request, runs one GraphQL
//! request through automatic persisted queries (`persisted`), the document's bounds checked
//! before parsing (`tokens`), the cache of documents that validated and the alias limit
//! (`documents`, bounded in bytes by `bounded`), the variables coerced against their declared
//! types (`variables`), the operation's static cost (`cost`) against the per-request limit and
//! the caller's budget (`budget`), and execution in the request's scope, with the edge's hooks
//! (`hooks`) and the spec's error propagation done by hand (`propagation`).
//!
//! A repeated query is parsed once and validated once, whatever its variables; the variables are
//! coerced, and the cost computed, on every request.
//!
//! Codes of the refusals made here: `QUERY_TOO_LARGE` (the document's bytes or tokens, before
//! parsing; `extensions.maxBytes` or `extensions.maxTokens`), `QUERY_TOO_COMPLEX` (aliases),
//! `QUERY_TOO_COSTLY` (the static cost over `max_cost`; `extensions.cost` and
//! `extensions.limit`), all HTTP 400 under `application/graphql-response+json`; and
//! `RATE_LIMITED` (the caller's budget per minute spent; HTTP 429 with `Retry-After`). Every
//! response of an operation that was priced, whether it ran or was refused as `QUERY_TOO_COSTLY`
//! or `RATE_LIMITED`, carries its static cost as
//! `extensions.cost = {"requestedQueryCost": N, "maximumAvailable": max_cost}`; a document that
//! could not be parsed or validated has none (see `cost`).

mod access;
mod bounded;
mod budget;
mod cost;
mod documents;
#[cfg(test)]
mod fuzz;
mod hooks;
pub(crate) mod metrics;
mod persisted;
mod propagation;
mod subscription;
#[cfg(test)]
mod tests;
mod tokens;
mod variables;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use async_graphql::parser::types::OperationType;
use async_graphql::{Request, Response, ServerError, ValidationResult};
use crowdcrunch_runtime::auth::{Identity, Verifier};
use crowdcrunch_runtime::client::Endpoints;
use crowdcrunch_runtime::edge::EdgeSettings;
use crowdcrunch_runtime::{Shutdown, TlsSettings};
use futures::StreamExt as _;
use futures::stream::BoxStream;
use http::HeaderMap;
use tracing::Instrument as _;

use crate::access::{Credentials, Unauthenticated};
use crate::grpc::{Backends, CallContext};
use crate::loader::RequestScope;
use crate::plan::Plan;
use crate::plan::catalog::{Catalog, CatalogError};
use crate::schema::{self, SchemaOptions};
pub use bounded::CacheUsage;
use budget::{Budgets, Caller};
use documents::{Documents, Parsed};
use hooks::RequestHooksFactory;
use persisted::PersistedQueries;

/// The edge could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The descriptors do not make a valid schema.
    #[error(transparent)]
    Schema(#[from] CatalogError),
    /// A backend's endpoints or TLS settings are unusable.
    #[error(transparent)]
    Config(#[from] crowdcrunch_runtime::config::ConfigError),
}

/// The GraphQL gateway: the schema, its plan, the backends' channels and the caches, built once
/// and shared by every request (cheap to clone).
#[derive(Clone)]
pub struct Gateway(Arc<Inner>);

struct Inner {
    schema: async_graphql::dynamic::Schema,
    plan: Arc<Plan>,
    backends: Backends,
    settings: EdgeSettings,
    caches: Arc<Caches>,
    budgets: Budgets,
    verifier: Verifier,
}

/// The caches a client's documents may fill, only with what validated, within
/// `document_cache_bytes` together: documents hold the parsed tree (most of it), persisted
/// queries only their text.
pub(super) struct Caches {
    documents: Documents,
    persisted: PersistedQueries,
}

impl Caches {
    fn new(settings: &EdgeSettings) -> Self {
        let bytes = settings.document_cache_bytes;
        Self {
            documents: Documents::new(bytes - bytes / 4),
            persisted: PersistedQueries::new(bytes / 4),
        }
    }
}

/// What the cache of documents and the cache of persisted queries hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedDocuments {
    /// The documents that validated (with their validation results).
    pub documents: CacheUsage,
    /// The persisted queries.
    pub persisted: CacheUsage,
}

/// A prepared request's document that has not validated yet, to keep once it does (request
/// data, read by the validation hook).
pub(super) struct Unvalidated {
    query: String,
    operation: Option<String>,
    parsed: Arc<Parsed>,
}

/// A prepared request's document that validated before, with its result (request data).
#[derive(Clone, Copy)]
pub(super) struct Validated(ValidationResult);

/// A prepared request's static cost (request data, read when it is answered).
#[derive(Clone, Copy)]
struct Priced(u64);

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("plan", &self.0.plan)
            .field("backends", &self.0.backends)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Builds the schema and the access rules from the embedded descriptors and lazy channels
    /// to `endpoints` (by backend name: `customers`, `orders`, ...); callers' tokens are
    /// verified by `verifier`.
    pub fn new(
        settings: EdgeSettings,
        endpoints: &HashMap<String, Endpoints>,
        tls: Option<&TlsSettings>,
        verifier: Verifier,
    ) -> Result<Self, BuildError> {
        let catalog = Catalog::decode(crowdcrunch_proto::FILE_DESCRIPTOR_SET)?;
        let backends = Backends::new(endpoints, tls, settings.backend_timeout)?;
        let options = SchemaOptions {
            max_depth: settings.max_depth,
            max_complexity: settings.max_complexity,
            max_page_size: settings.max_page_size,
            introspection: settings.introspection,
            field_suggestions: settings.field_suggestions,
        };
        let caches = Arc::new(Caches::new(&settings));
        let (schema, plan) = schema::build(&catalog, &options, |builder| {
            builder.extension(RequestHooksFactory(caches.clone()))
        })?;
        Ok(Self(Arc::new(Inner {
            schema,
            plan,
            backends,
            caches,
            budgets: Budgets::new(settings.cost_budget_per_minute),
            settings,
            verifier,
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
        self.0.backends.ready().await
    }

    /// Keeps `edge_backend_up` current for every backend until `shutdown` fires.
    pub(crate) fn watch_backends(&self, shutdown: Shutdown) {
        tokio::spawn(self.0.backends.clone().watch_health(shutdown));
    }

    /// How many calls the edge made to each RPC since it started, by full RPC name (for tests
    /// and diagnostics).
    pub fn backend_calls(&self) -> HashMap<String, u64> {
        self.0
            .plan
            .rpcs
            .iter()
            .map(|(name, rpc)| (name.clone(), rpc.calls()))
            .collect()
    }

    /// How many documents the edge validated since it started: a repeated query is validated
    /// once (for tests and diagnostics).
    pub fn validations(&self) -> u64 {
        self.0.caches.documents.validations.load(Ordering::Relaxed)
    }

    /// What the caches of documents and persisted queries hold (for tests and diagnostics):
    /// only documents that validated, within `document_cache_bytes`.
    pub fn cached_documents(&self) -> CachedDocuments {
        CachedDocuments {
            documents: self.0.caches.documents.usage(),
            persisted: self.0.caches.persisted.usage(),
        }
    }

    /// Resolves an automatic persisted query (Apollo's `persistedQuery` extension): a query
    /// with its hash is remembered once it validates; a hash alone is looked up.
    pub fn persisted_query(&self, request: &mut Request) -> Result<(), Box<Response>> {
        self.0.caches.persisted.resolve(request)
    }

    /// The client's address: the peer's, or behind a trusted proxy the last address of
    /// `X-Forwarded-For`, the one the proxy appended (the client it saw). Earlier entries are
    /// whatever the client sent, and would let it pick its own budget.
    pub(crate) fn client_address(
        &self,
        peer: Option<SocketAddr>,
        headers: &HeaderMap,
    ) -> Option<IpAddr> {
        let forwarded = || {
            headers
                .get("x-forwarded-for")?
                .to_str()
                .ok()?
                .rsplit(',')
                .next()?
                .trim()
                .parse()
                .ok()
        };
        let peer = peer.map(|peer| peer.ip());
        if self.0.settings.trusted_proxy {
            forwarded().or(peer)
        } else {
            peer
        }
    }

    /// The caller of an HTTP request, from its `Authorization` header.
    pub(crate) async fn caller(&self, headers: &HeaderMap) -> Result<Credentials, Unauthenticated> {
        Credentials::of_headers(&self.0.verifier, headers).await
    }

    /// The caller of a graphql-transport-ws connection, from the `authorization` value of its
    /// `connection_init` payload.
    pub(crate) async fn connection_caller(
        &self,
        authorization: Option<&str>,
    ) -> Result<Credentials, Unauthenticated> {
        Credentials::of_value(&self.0.verifier, authorization).await
    }

    /// Checks the document's bounds and parses it (once per distinct query that validated),
    /// checks the limits the schema cannot check itself, that a caller without a token selects
    /// only what anyone may, and the operation's static cost against the per-request limit and
    /// the caller's budget (charging it), before any backend call. `client` is the caller's
    /// address, whose budget a caller without a token spends. Answers the operation's type,
    /// for the HTTP layer (a mutation over GET is refused).
    pub(crate) fn prepare_from(
        &self,
        request: &mut Request,
        credentials: &Credentials,
        client: Option<IpAddr>,
    ) -> Result<Option<OperationType>, Refused> {
        let settings = &self.0.settings;
        let operation_name = request.operation_name.clone();
        let cached = self
            .0
            .caches
            .documents
            .get(&request.query, operation_name.as_deref());
        let (parsed, validated) = match cached {
            Some(cached) => cached,
            None => (
                documents::parse(
                    &request.query,
                    settings.max_document_bytes,
                    settings.max_tokens,
                )?,
                None,
            ),
        };
        if parsed.aliases > settings.max_aliases {
            return Err(Refused::Invalid(error_response(
                "QUERY_TOO_COMPLEX",
                format!(
                    "the query uses {} aliases; at most {} are allowed",
                    parsed.aliases, settings.max_aliases
                ),
            )));
        }
        let operation = documents::operation(&parsed.document, operation_name.as_deref());
        if let Some(refusal) = subscription::single_root_field_refusal(&parsed.document) {
            return Err(Refused::Invalid(refusal));
        }
        if let Some(operation) = operation {
            let registry = self.0.schema.registry();
            let mut errors = variables::coerce(registry, operation, &request.variables);
            if !errors.is_empty() {
                errors
                    .iter_mut()
                    .for_each(|error| set_code(error, "BAD_USER_INPUT"));
                return Err(Refused::Invalid(Box::new(Response::from_errors(errors))));
            }
            if matches!(credentials.identity(), Identity::Anonymous)
                && let Some(refusal) =
                    access::anonymous_refusal(registry, &self.0.plan, &parsed.document, operation)
            {
                return Err(Refused::Unauthenticated(refusal));
            }
            let cost = cost::cost(
                registry,
                &self.0.plan,
                &parsed.document,
                operation,
                &request.variables,
            );
            if cost > settings.max_cost {
                let mut response = too_costly(cost, settings.max_cost);
                self.add_cost(&mut response, cost);
                return Err(Refused::Invalid(response));
            }
            let caller = Caller::of(credentials.identity(), client);
            self.0
                .budgets
                .charge(caller, cost, Instant::now())
                .map_err(|overdrawn| {
                    let mut response = error_response(
                        "RATE_LIMITED",
                        format!(
                            "this operation costs {cost}; the caller's budget of {} per minute \
                             allows it again in {} seconds",
                            settings.cost_budget_per_minute, overdrawn.retry_after_seconds
                        ),
                    );
                    self.add_cost(&mut response, cost);
                    Refused::RateLimited {
                        response,
                        retry_after_seconds: overdrawn.retry_after_seconds,
                    }
                })?;
            request.data.insert(Priced(cost));
        }
        request.set_parsed_query(parsed.document.clone());
        match validated {
            Some(result) => request.data.insert(Validated(result)),
            None => request.data.insert(Unvalidated {
                query: request.query.clone(),
                operation: operation_name,
                parsed: parsed.clone(),
            }),
        }
        Ok(operation.map(|operation| operation.ty))
    }

    /// Executes a prepared query or mutation in the request's scope. Answers the response, and
    /// whether execution started (false when the request failed validation); a response of an
    /// operation that ran carries its cost (`extensions.cost`).
    pub async fn execute(&self, request: Request, call: CallContext) -> (Response, bool) {
        let span = call.span.clone();
        let cost = priced(&request);
        let request = self.scoped(request, call);
        let (mut response, executed) = propagation::run(&self.0.schema, request)
            .instrument(span)
            .await;
        if executed && let Some(cost) = cost {
            self.add_cost(&mut response, cost);
        }
        (response, executed)
    }

    /// Executes a prepared subscription in its own scope, event by event; each event carries
    /// the subscription's cost (`extensions.cost`).
    pub fn execute_stream(
        &self,
        request: Request,
        call: CallContext,
    ) -> BoxStream<'static, Response> {
        let cost = priced(&request).map(|cost| self.cost_extension(cost));
        propagation::run_stream(&self.0.schema, self.scoped(request, call))
            .map(move |mut response| {
                if let Some(cost) = &cost {
                    response.extensions.insert("cost".to_owned(), cost.clone());
                }
                response
            })
            .boxed()
    }

    /// The `extensions.cost` of an operation of static cost `cost`: that cost and the most one
    /// request may cost, as GitHub and Shopify answer theirs.
    fn cost_extension(&self, cost: u64) -> async_graphql::Value {
        async_graphql::Value::Object(
            [
                ("requestedQueryCost", cost),
                ("maximumAvailable", self.0.settings.max_cost),
            ]
            .into_iter()
            .map(|(name, value)| (async_graphql::Name::new(name), value.into()))
            .collect(),
        )
    }

    /// Adds `extensions.cost` to `response`, of an operation of static cost `cost` (whether it
    /// ran or was refused for its cost or the caller's budget).
    fn add_cost(&self, response: &mut Response, cost: u64) {
        response
            .extensions
            .insert("cost".to_owned(), self.cost_extension(cost));
    }

    fn scoped(&self, request: Request, call: CallContext) -> Request {
        request.data(RequestScope::new(
            self.0.plan.clone(),
            self.0.backends.clone(),
            call,
        ))
    }
}

/// The static cost of a prepared request, when its operation was priced.
fn priced(request: &Request) -> Option<u64> {
    request
        .data
        .get(&std::any::TypeId::of::<Priced>())?
        .downcast_ref::<Priced>()
        .map(|Priced(cost)| *cost)
}

/// Why a request is not executed.
#[derive(Debug)]
pub(crate) enum Refused {
    /// It is not a valid request: the response that says why (HTTP 4xx before execution).
    Invalid(Box<Response>),
    /// The caller must authenticate first (HTTP 401).
    Unauthenticated(Unauthenticated),
    /// The caller's budget cannot pay for the operation now (HTTP 429 with `Retry-After`).
    RateLimited {
        /// The response that says why (`RATE_LIMITED`).
        response: Box<Response>,
        /// When it would be paid for, in seconds.
        retry_after_seconds: u64,
    },
}

impl From<Box<Response>> for Refused {
    fn from(response: Box<Response>) -> Self {
        Self::Invalid(response)
    }
}

impl Refused {
    /// The GraphQL response that says why.
    pub(crate) fn response(self) -> Box<Response> {
        match self {
            Self::Invalid(response) | Self::RateLimited { response, .. } => response,
            Self::Unauthenticated(refusal) => error_response(refusal.code(), refusal.to_string()),
        }
    }
}

/// The refusal of an operation whose static cost is over the limit: `QUERY_TOO_COSTLY` with
/// `extensions.cost` and `extensions.limit`.
fn too_costly(cost: u64, limit: u64) -> Box<Response> {
    let mut response = error_response(
        "QUERY_TOO_COSTLY",
        format!(
            "the operation costs {cost}; at most {limit} is allowed (each field costs 1, and a \
             list multiplies what it selects by its page size, its number of ids, a join's \
             page or, for a list within a resource, an estimate of {} items)",
            cost::EMBEDDED_LIST_ITEMS
        ),
    );
    if let Some(extensions) = response
        .errors
        .first_mut()
        .and_then(|error| error.extensions.as_mut())
    {
        extensions.set("cost", cost);
        extensions.set("limit", limit);
    }
    response
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
