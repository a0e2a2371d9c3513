//! Trace context that crosses every gRPC hop.
//!
//! On the way in, [`RequestContextLayer`] continues the caller's W3C trace (`traceparent`,
//! `tracestate`) in a span per call and keeps the headers that Istio's Envoy needs an application to
//! forward (`x-request-id` and the B3 set). On the way out, [`PropagateLayer`] (on every client
//! channel) injects the current span's trace context and forwards those headers, so one trace and
//! one request id follow a request through every service.

use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, HeaderValue, Request};
use opentelemetry::propagation::{Extractor, Injector};
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::client::ServiceToken;

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

/// Continues the caller's trace in the span `span`, from the W3C headers in `headers`.
pub fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    });
    // A parent that cannot be attached (no OpenTelemetry layer installed) leaves a root span.
    let _ = span.set_parent(parent);
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

/// Continues the trace of a remembered `traceparent` in the span `span` (a root span when it is
/// empty or malformed).
pub fn continue_traceparent(span: &tracing::Span, traceparent: &str) {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(traceparent) {
        headers.insert("traceparent", value);
    }
    continue_trace(span, &headers);
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
/// in scope for every call the handler makes.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestContextLayer;

impl<S> Layer<S> for RequestContextLayer {
    type Service = RequestContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestContext { inner }
    }
}

/// The service made by [`RequestContextLayer`].
#[derive(Clone, Debug)]
pub struct RequestContext<S> {
    inner: S,
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
        let span = tracing::info_span!(
            "grpc",
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.method = %request.uri().path(),
            request_id = forwarded.request_id().unwrap_or_default(),
        );
        continue_trace(&span, request.headers());
        let future = span.in_scope(|| self.inner.call(request));
        Box::pin(forwarded.scope(future).instrument(span))
    }
}

/// Client layer: trace context and forwarded headers on every outbound call.
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

impl<S, B> Service<Request<B>> for Propagate<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        inject_current(request.headers_mut());
        if let Some(token) = &self.identity {
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, token.authorization());
        }
        self.inner.call(request)
    }
}
