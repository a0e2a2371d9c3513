//! Trace context that crosses every gRPC hop.
//!
//! On the way in, [`RequestContextLayer`] continues the caller's trace (W3C `traceparent` and
//! `tracestate`, else B3, see [`crate::telemetry`]) in a server span per call and keeps the headers
//! that Istio's Envoy needs an application to forward (`x-request-id` and the B3 set). On the way
//! out, [`PropagateLayer`] (on every client channel) makes a client span per call, injects its
//! trace context and forwards those headers, so one trace and one request id follow a request
//! through every service.
//!
//! Spans follow OpenTelemetry's RPC conventions: named `package.Service/Method`, with
//! `rpc.system`, `rpc.service`, `rpc.method` and `rpc.grpc.status_code`, and an error status for a
//! server fault ([`crate::metrics::is_fault`]) only: a client's mistake (NOT_FOUND, a refused
//! argument) is an answer, not an error.

use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use opentelemetry::propagation::{Extractor, Injector};
use tonic::Code;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::call_end::{CallEndBody, EndCodes, status_code};
use crate::client::ServiceToken;
use crate::metrics::is_fault;
use crate::telemetry::ServiceName;

/// Headers an application must copy from an inbound request to its outbound calls for Envoy's
/// tracing and request correlation (Istio "trace context propagation").
pub const FORWARDED_HEADERS: [&str; 8] = [
    REQUEST_ID,
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    "x-ot-span-context",
];

/// The header that names a request (Envoy sets it; the edge mints one when it cannot trust the
/// client's).
pub const REQUEST_ID: &str = "x-request-id";

/// The W3C trace context headers.
pub const TRACE_CONTEXT_HEADERS: [&str; 2] = ["traceparent", "tracestate"];

/// Removes what a client outside the cluster could send to name a request or join a trace: the
/// W3C trace context and every forwarded header (request id, B3, OpenTracing). What follows
/// then starts its own trace.
pub fn remove_trace_headers(headers: &mut HeaderMap) {
    for name in TRACE_CONTEXT_HEADERS.iter().chain(&FORWARDED_HEADERS) {
        headers.remove(*name);
    }
}

tokio::task_local! {
    static FORWARDED: ForwardedHeaders;
}

/// The forwardable headers of the request being served.
#[derive(Clone, Debug, Default)]
pub struct ForwardedHeaders(Vec<(HeaderName, HeaderValue)>);

impl ForwardedHeaders {
    /// Picks the forwardable headers out of `headers`.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Self(
            FORWARDED_HEADERS
                .iter()
                .filter_map(|name| {
                    let value = headers.get(*name)?;
                    Some((HeaderName::from_static(name), value.clone()))
                })
                .collect(),
        )
    }

    /// Only a request id (when `request_id` is one that a header can carry): what work that
    /// carries on a request after it was answered (an order's saga) forwards on its calls.
    pub fn of_request_id(request_id: &str) -> Self {
        Self(
            HeaderValue::from_str(request_id)
                .ok()
                .filter(|_| !request_id.is_empty())
                .map(|value| (HeaderName::from_static(REQUEST_ID), value))
                .into_iter()
                .collect(),
        )
    }

    /// The headers of the request this task is serving, if any.
    pub fn current() -> Self {
        FORWARDED.try_with(Clone::clone).unwrap_or_default()
    }

    /// Runs `future` with these headers as the current ones, so calls made inside forward them.
    pub async fn scope<F: Future>(self, future: F) -> F::Output {
        FORWARDED.scope(self, future).await
    }

    /// The request id the caller (or Envoy) assigned, if any.
    pub fn request_id(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| name == REQUEST_ID)
            .and_then(|(_, value)| value.to_str().ok())
    }

    /// Copies the headers into `headers`, keeping values already set there.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.0 {
            if !headers.contains_key(name) {
                headers.insert(name.clone(), value.clone());
            }
        }
    }
}

/// The W3C trace id of the current span, as 32 hex digits, or empty when there is none.
pub fn current_trace_id() -> String {
    use opentelemetry::trace::TraceContextExt as _;
    let context = tracing::Span::current().context();
    let span_context = context.span().span_context().clone();
    if span_context.is_valid() {
        span_context.trace_id().to_string()
    } else {
        String::new()
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Continues the caller's trace (from the trace context in `headers`: W3C, else B3) in the span
/// `span`, which opens the part of the trace that `service` serves: `span` and the spans under it
/// are exported as that service's ([`ServiceName`]).
pub fn continue_trace(span: &tracing::Span, headers: &HeaderMap, service: ServiceName) {
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    });
    // A parent that cannot be attached (no OpenTelemetry layer installed) leaves a root span.
    let _ = span.set_parent(parent.with_value(service));
}

/// The current span's W3C `traceparent`, to continue its trace later with
/// [`continue_traceparent`]; empty outside a trace.
pub fn current_traceparent() -> String {
    let mut headers = HeaderMap::new();
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(&mut headers));
    });
    headers
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Continues the trace of a remembered `traceparent` in the span `span` of `service` (a root
/// span when it is empty or malformed).
pub fn continue_traceparent(span: &tracing::Span, traceparent: &str, service: ServiceName) {
    continue_trace(span, &traceparent_headers(traceparent), service);
}

/// Starts a trace of its own in the span `span` of `service` (work that no request caused, such
/// as delivering the outbox), whatever span is current.
pub fn start_trace(span: &tracing::Span, service: ServiceName) {
    let _ = span.set_parent(opentelemetry::Context::new().with_value(service));
}

/// Links the span `span` to the span of a remembered `traceparent` (the request whose work it
/// carries on in a trace of its own); an empty or malformed one links nothing.
pub fn link_to_traceparent(span: &tracing::Span, traceparent: &str) {
    use opentelemetry::trace::TraceContextExt as _;
    let context = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract_with_context(
            &opentelemetry::Context::new(),
            &HeaderExtractor(&traceparent_headers(traceparent)),
        )
    });
    let span_context = context.span().span_context().clone();
    if span_context.is_valid() {
        span.add_link(span_context);
    }
}

fn traceparent_headers(traceparent: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(traceparent) {
        headers.insert("traceparent", value);
    }
    headers
}

/// `/shop.catalog.v1.CatalogService/GetItem` → the span name
/// `shop.catalog.v1.CatalogService/GetItem`, `rpc.service`
/// `shop.catalog.v1.CatalogService` and `rpc.method` `GetItem`.
fn rpc_names(path: &str) -> (&str, &str, &str) {
    let name = path.trim_start_matches('/');
    let (service, method) = name.split_once('/').unwrap_or((name, ""));
    (name, service, method)
}

/// The name of every gRPC client span in `tracing` (its OpenTelemetry name is the method's).
const CLIENT_SPAN: &str = "grpc.client";

/// A client span for a call of `path` (`/package.Service/Method`) under `parent`; the call's
/// code goes on it with [`record_code`]. A call made inside it (through a [`GrpcChannel`]) is its
/// call and makes no span of its own.
///
/// [`GrpcChannel`]: crate::client::GrpcChannel
pub fn client_span(parent: impl Into<Option<tracing::Id>>, path: &str) -> tracing::Span {
    let (name, service, method) = rpc_names(path);
    tracing::info_span!(
        parent: parent,
        CLIENT_SPAN,
        otel.name = name,
        otel.kind = "client",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    )
}

/// Records the code a call ended with on its span (server or client): `rpc.grpc.status_code`,
/// and an error status when the code is a server fault.
pub fn record_code(span: &tracing::Span, code: Code) {
    span.record("rpc.grpc.status_code", code as i32);
    if is_fault(code) {
        span.record("otel.status_code", "ERROR");
    }
}

/// Writes the current span's trace context and the forwarded headers into `headers`.
pub fn inject_current(headers: &mut HeaderMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(headers));
    });
    ForwardedHeaders::current().apply(headers);
}

/// Server layer: a span per call that continues the caller's trace, with the forwardable headers
/// in scope for every call the handler makes. The span's code is recorded by
/// [`crate::metrics::GrpcMetricsLayer`], which runs inside it.
#[derive(Clone, Copy, Debug)]
pub struct RequestContextLayer {
    service: ServiceName,
}

impl RequestContextLayer {
    /// The layer of the server of the gRPC service `grpc_service` (its full name,
    /// `shop.catalog.v1.CatalogService`): its spans are that service's.
    pub fn serving(grpc_service: &'static str) -> Self {
        Self {
            service: ServiceName::of_grpc_service(grpc_service),
        }
    }
}

impl<S> Layer<S> for RequestContextLayer {
    type Service = RequestContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestContext {
            inner,
            service: self.service,
        }
    }
}

/// The service made by [`RequestContextLayer`].
#[derive(Clone, Debug)]
pub struct RequestContext<S> {
    inner: S,
    service: ServiceName,
}

impl<S, B> Service<Request<B>> for RequestContext<S>
where
    S: Service<Request<B>> + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let forwarded = ForwardedHeaders::from_headers(request.headers());
        let (name, service, method) = rpc_names(request.uri().path());
        let span = tracing::info_span!(
            "grpc",
            otel.name = name,
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
            rpc.grpc.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            request_id = forwarded.request_id().unwrap_or_default(),
        );
        continue_trace(&span, request.headers(), self.service);
        let future = span.in_scope(|| self.inner.call(request));
        Box::pin(forwarded.scope(future).instrument(span))
    }
}

/// Client layer: a client span (see [`client_span`]), its trace context and the forwarded headers
/// on every outbound call.
#[derive(Clone, Copy, Debug, Default)]
pub struct PropagateLayer;

impl<S> Layer<S> for PropagateLayer {
    type Service = Propagate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Propagate {
            inner,
            identity: None,
        }
    }
}

/// The service made by [`PropagateLayer`].
#[derive(Clone, Debug)]
pub struct Propagate<S> {
    inner: S,
    identity: Option<ServiceToken>,
}

impl<S> Propagate<S> {
    /// The same channel, with `token` as the `authorization` of every call: the calling
    /// service's own identity (without one, the transport carries it: mTLS, or the mesh).
    pub fn carrying(self, token: ServiceToken) -> Self {
        Self {
            identity: Some(token),
            ..self
        }
    }
}

impl<S, B, R> Service<Request<B>> for Propagate<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<CallEndBody<R, tracing::Span>>;
    type Error = S::Error;
    type Future = ClientCall<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let current = tracing::Span::current();
        // A call made inside a client span (the edge's, around its retries) is that span's call,
        // which its maker records; a call outside any span (a health probe, a caller that set
        // its own trace context) is in no trace. Any other call gets its own span, recorded here.
        let span = match current.metadata().map(tracing::Metadata::name) {
            None | Some(CLIENT_SPAN) => None,
            Some(_) => Some(client_span(current.id(), request.uri().path())),
        };
        let in_span = span.clone().unwrap_or(current);
        in_span.in_scope(|| inject_current(request.headers_mut()));
        if let Some(token) = &self.identity {
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, token.authorization());
        }
        ClientCall {
            inner: self.inner.call(request),
            span,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of a [`Propagate`]d call: the call's code goes on its client span
    /// when the response ends it (trailers-only) or when its body's trailers pass (CANCELLED
    /// when the caller gives up first).
    pub struct ClientCall<F> {
        #[pin]
        inner: F,
        span: Option<tracing::Span>,
    }

    impl<F> PinnedDrop for ClientCall<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(span) = this.project().span.take() {
                record_code(&span, Code::Cancelled);
            }
        }
    }
}

/// How a client call ended when its body says nothing: without a status tonic reports UNKNOWN; a
/// body that fails is the transport's UNAVAILABLE.
const CLIENT_END: EndCodes = EndCodes {
    missing: Code::Unknown,
    failed: Code::Unavailable,
};

impl<F, R, E> Future for ClientCall<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = Result<Response<CallEndBody<R, tracing::Span>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        let span = this.span.take();
        Poll::Ready(match result {
            Ok(response) => {
                let span = match (span, status_code(response.headers())) {
                    (Some(span), Some(code)) => {
                        record_code(&span, code);
                        None
                    }
                    (span, _) => span,
                };
                Ok(response.map(|inner| CallEndBody::new(inner, span, CLIENT_END)))
            }
            Err(error) => {
                // No answer at all: the transport failed (tonic says UNAVAILABLE).
                if let Some(span) = span {
                    record_code(&span, Code::Unavailable);
                }
                Err(error)
            }
        })
    }
}
