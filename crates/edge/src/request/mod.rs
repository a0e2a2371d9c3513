//! The request path: the [`Gateway`], built once and shared by every request, runs one GraphQL
//! request through automatic persisted queries (`persisted`), the document cache and the alias
//! limit (`documents`), the variables coerced against their declared types (`variables`), the
//! validation cache (`validation`), and execution in the request's scope, with the edge's hooks
//! (`hooks`) and the spec's error propagation done by hand (`propagation`).
//!
//! A repeated query is parsed once and validated once, whatever its variables; the variables are
//! coerced on every request, which is all that validation would check of them.

mod access;
mod documents;
mod hooks;
mod persisted;
mod propagation;
#[cfg(test)]
mod tests;
mod validation;
mod variables;

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_graphql::parser::types::OperationType;
use async_graphql::{Request, Response, ServerError};
use crowdcrunch_runtime::TlsSettings;
use crowdcrunch_runtime::auth::{Identity, Verifier};
use crowdcrunch_runtime::client::Endpoints;
use crowdcrunch_runtime::edge::EdgeSettings;
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
use documents::Documents;
use hooks::RequestHooksFactory;
use persisted::PersistedQueries;
use validation::{ValidationCache, ValidationKey, validation_key};

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
    documents: Documents,
    validations: Arc<ValidationCache>,
    persisted: PersistedQueries,
    verifier: Verifier,
}

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
        };
        let documents_held = settings.document_cache_bytes / settings.max_document_bytes.max(1);
        let validations = ValidationCache::new(documents_held);
        let (schema, plan) = schema::build(&catalog, &options, |builder| {
            builder.extension(RequestHooksFactory(validations.clone()))
        })?;
        Ok(Self(Arc::new(Inner {
            schema,
            plan,
            backends,
            documents: Documents::new(documents_held),
            validations,
            persisted: PersistedQueries::new(documents_held),
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
        self.0.validations.runs.load(Ordering::Relaxed)
    }

    /// Resolves an automatic persisted query (Apollo's `persistedQuery` extension): a query
    /// with its hash is remembered; a hash alone is looked up.
    pub fn persisted_query(&self, request: &mut Request) -> Result<(), Box<Response>> {
        self.0.persisted.resolve(request)
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

    /// Parses (once per distinct query) and checks the limits the schema cannot check itself,
    /// and that a caller without a token selects only what anyone may. Answers the operation's
    /// type, for the HTTP layer (a mutation over GET is refused).
    pub(crate) fn prepare(
        &self,
        request: &mut Request,
        credentials: &Credentials,
    ) -> Result<Option<OperationType>, Refused> {
        let parsed = self.0.documents.parse(&request.query)?;
        if parsed.aliases > self.0.settings.max_aliases {
            return Err(Refused::Invalid(error_response(
                "QUERY_TOO_COMPLEX",
                format!(
                    "the query uses {} aliases; at most {} are allowed",
                    parsed.aliases, self.0.settings.max_aliases
                ),
            )));
        }
        let operation = documents::operation(&parsed.document, request.operation_name.as_deref());
        if let Some(operation) = operation {
            let mut errors =
                variables::coerce(self.0.schema.registry(), operation, &request.variables);
            if !errors.is_empty() {
                errors
                    .iter_mut()
                    .for_each(|error| set_code(error, "BAD_USER_INPUT"));
                return Err(Refused::Invalid(Box::new(Response::from_errors(errors))));
            }
            if matches!(credentials.identity(), Identity::Anonymous)
                && let Some(refusal) = access::anonymous_refusal(
                    self.0.schema.registry(),
                    &self.0.plan,
                    &parsed.document,
                    operation,
                )
            {
                return Err(Refused::Unauthenticated(refusal));
            }
        }
        request.set_parsed_query(parsed.document.clone());
        Ok(operation.map(|operation| operation.ty))
    }

    /// Executes a prepared query or mutation in the request's scope. Answers the response, and
    /// whether execution started (false when the request failed validation).
    pub async fn execute(&self, request: Request, call: CallContext) -> (Response, bool) {
        let span = call.span.clone();
        let request = self.scoped(request, call);
        propagation::run(&self.0.schema, request)
            .instrument(span)
            .await
    }

    /// Executes a subscription (or any operation over WebSocket) in its own scope.
    pub fn execute_stream(
        &self,
        mut request: Request,
        call: CallContext,
    ) -> BoxStream<'static, Response> {
        if let Err(refused) = self.prepare(&mut request, &call.credentials) {
            let response = refused.response();
            return futures::stream::once(async move { *response }).boxed();
        }
        propagation::run_stream(&self.0.schema, self.scoped(request, call))
    }

    fn scoped(&self, request: Request, call: CallContext) -> Request {
        let key = validation_key(&request);
        request.data(ValidationKey(key)).data(RequestScope::new(
            self.0.plan.clone(),
            self.0.backends.clone(),
            call,
        ))
    }
}

/// Why a request is not executed.
#[derive(Debug)]
pub(crate) enum Refused {
    /// It is not a valid request: the response that says why (HTTP 4xx before execution).
    Invalid(Box<Response>),
    /// The caller must authenticate first (HTTP 401).
    Unauthenticated(Unauthenticated),
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
            Self::Invalid(response) => response,
            Self::Unauthenticated(refusal) => error_response(refusal.code(), refusal.to_string()),
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

/// The capacity of a cache configured for `size` entries: a cache of 0 still holds one.
fn capacity(size: usize) -> NonZeroUsize {
    NonZeroUsize::new(size).unwrap_or(NonZeroUsize::MIN)
}
