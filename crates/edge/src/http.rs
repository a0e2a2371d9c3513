//! HTTP wiring: `/graphql` (POST, GET for queries, the WebSocket upgrade for subscriptions over
//! graphql-transport-ws), GraphiQL at `/` with its assets served from the binary, `/healthz` and
//! `/readyz`. Content negotiation and status codes follow the GraphQL-over-HTTP spec:
//! `application/graphql-response+json` gets 4xx for requests that fail before execution,
//! `application/json` gets 200; a mutation over GET is 405. A caller names themselves with
//! `Authorization: Bearer` (over graphql-transport-ws, the `authorization` of the
//! `connection_init` payload); a bad token, or none where the operation needs one, is 401 with
//! `WWW-Authenticate` under either media type (over WebSocket, a bad one closes with 4403).
//!
//! What surrounds every request (`guard`): browsers may call from the allowed origins only
//! (CORS, with preflights answered 204, or 403 with no CORS headers for another origin); trace
//! headers, request ids and `x-forwarded-for` from outside are dropped unless a trusted proxy
//! sits in front; each request has an `x-request-id` (a UUIDv7 minted here when none came or
//! none can be trusted), echoed in the answer; every answer says `nosniff`, may not be framed
//! and sends no referrer. GraphQL requests (`admit`) are limited in number (503 `OVERLOADED`
//! with `Retry-After` past the limit), answered by their deadline (504 `TIMEOUT`; each backend
//! call gets what is left of it as its `grpc-timeout`), read their body within its timeout
//! (408) and are never cached. GraphiQL and its assets are served only when enabled, under a
//! strict CSP.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::parser::types::OperationType;
use async_graphql::{Request, Response, Variables};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest as _, State};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use crowdcrunch_runtime::Shutdown;
use crowdcrunch_runtime::context::{
    ForwardedHeaders, REQUEST_ID, continue_trace, remove_trace_headers,
};
use crowdcrunch_runtime::telemetry::ServiceName;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::access::{Credentials, Unauthenticated};
use crate::grpc::CallContext;
use crate::request::metrics::{Operation, Outcome};
use crate::request::{Gateway, Refused, error_response};

/// The GraphQL-over-HTTP media type.
const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

/// GraphiQL's page may run the edge's own scripts and talk to the edge alone; its styles are
/// the edge's too (inline ones included: styles cannot run code).
const GRAPHIQL_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";
/// Every other answer may not be framed (clickjacking).
const NO_FRAMING_CSP: &str = "frame-ancestors 'none'";
/// The methods a browser may call `/graphql` with.
const CORS_METHODS: &str = "GET, POST";
/// The request headers a browser may send cross-origin.
const CORS_HEADERS: &str = "accept, authorization, content-type, x-request-id";
/// The response headers a browser's script may read cross-origin.
const CORS_EXPOSED: &str = "retry-after, x-request-id";
/// How long a browser may remember a preflight's answer, in seconds.
const CORS_MAX_AGE: &str = "600";
/// What a shed request is told to wait, in seconds.
const RETRY_AFTER_SECONDS: &str = "1";

#[derive(Clone)]
struct AppState {
    edge: Gateway,
    shutdown: Shutdown,
    sockets: crate::ws::Sockets,
    /// Permits of the GraphQL requests served at once.
    requests: Arc<Semaphore>,
}

/// The deadline of one GraphQL request, set when it is admitted.
#[derive(Debug, Clone, Copy)]
struct RequestDeadline(Instant);

/// What a GraphQL request was and how it ended, filled in while it is answered and counted in
/// the metrics by `admit` once it is.
#[derive(Debug, Clone, Default)]
struct Recorded(Arc<std::sync::Mutex<Option<(Operation, Outcome)>>>);

impl Recorded {
    fn set(&self, operation: Operation, outcome: Outcome) {
        *self.lock() = Some((operation, outcome));
    }

    fn take(&self) -> Option<(Operation, Outcome)> {
        self.lock().take()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Operation, Outcome)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The edge's routes. `/readyz` turns 503 once `shutdown` fires, so the load balancer stops
/// sending before the drain.
pub fn router(edge: Gateway, shutdown: Shutdown) -> Router {
    let settings = edge.settings().clone();
    edge.watch_backends(shutdown.clone());
    let state = AppState {
        sockets: crate::ws::Sockets::new(edge.clone(), shutdown.clone()),
        requests: Arc::new(Semaphore::new(settings.max_concurrent_requests)),
        edge,
        shutdown,
    };
    let mut routes = Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        // GraphQL requests alone are limited and timed: the probes answer under any load.
        .route_layer(middleware::from_fn_with_state(state.clone(), admit))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz));
    if settings.graphiql {
        routes = routes
            .route("/", get(graphiql))
            .route("/graphiql/{file}", get(asset));
    }
    routes
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        // Outermost, so that every answer (a refusal, a 404) carries the headers.
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// What every request and answer goes through: CORS by the allow-list, the trace headers of an
/// untrusted client dropped, a request id, and the security headers.
async fn guard(
    State(state): State<AppState>,
    mut request: axum::extract::Request,
    next: Next,
) -> axum::response::Response {
    let settings = state.edge.settings();
    let allowed_origin = request
        .headers()
        .get(header::ORIGIN)
        .filter(|origin| {
            origin.to_str().is_ok_and(|origin| {
                settings
                    .allowed_origins
                    .iter()
                    .any(|allowed| allowed.matches(origin))
            })
        })
        .cloned();
    let headers = request.headers_mut();
    if !settings.trusted_proxy {
        remove_trace_headers(headers);
        headers.remove("x-forwarded-for");
    }
    let request_id = headers
        .entry(REQUEST_ID)
        .or_insert_with(mint_request_id)
        .clone();
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = match (preflight, &allowed_origin) {
        (false, _) => next.run(request).await,
        (true, Some(_)) => preflight_allowed(),
        (true, None) => (
            StatusCode::FORBIDDEN,
            "this origin may not call the API from a browser\n",
        )
            .into_response(),
    };
    let headers = response.headers_mut();
    headers.insert(REQUEST_ID, request_id);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(NO_FRAMING_CSP));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Whether the CORS headers are there depends on `Origin`: caches must know.
    headers.append(header::VARY, HeaderValue::from_static("origin"));
    if let Some(origin) = allowed_origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(CORS_EXPOSED),
        );
    }
    response
}

/// A fresh request id: a UUIDv7, ordered by time.
fn mint_request_id() -> HeaderValue {
    let id = uuid::Uuid::now_v7().hyphenated().to_string();
    HeaderValue::try_from(id).unwrap_or_else(|_| HeaderValue::from_static("unnamed"))
}

/// The answer to a preflight from an allowed origin (the origin itself is added by `guard`).
fn preflight_allowed() -> axum::response::Response {
    (
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_METHODS, CORS_METHODS),
            (header::ACCESS_CONTROL_ALLOW_HEADERS, CORS_HEADERS),
            (header::ACCESS_CONTROL_MAX_AGE, CORS_MAX_AGE),
        ],
    )
        .into_response()
}

/// Admits a GraphQL request while fewer than the limit are served (503 `OVERLOADED` with
/// `Retry-After` beyond it), and answers it by its deadline (504 `TIMEOUT`). GraphQL answers
/// carry personal data: `Cache-Control: no-store`.
async fn admit(
    State(state): State<AppState>,
    mut request: axum::extract::Request,
    next: Next,
) -> axum::response::Response {
    let settings = state.edge.settings();
    let media = negotiate(request.headers()).unwrap_or(JSON);
    let started = Instant::now();
    let request_id = settings.access_log.then(|| {
        request
            .headers()
            .get("x-request-id")
            .and_then(|id| id.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    });
    let recorded = Recorded::default();
    request.extensions_mut().insert(recorded.clone());
    let mut response = match state.requests.clone().try_acquire_owned() {
        Err(_) => {
            let response = error_response(
                "OVERLOADED",
                format!(
                    "the edge is serving {} requests, its limit; try again shortly",
                    settings.max_concurrent_requests
                ),
            );
            let mut http = refusal(&response, media, StatusCode::SERVICE_UNAVAILABLE);
            http.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
            http
        }
        Ok(_permit) => {
            let deadline = Instant::now() + settings.request_timeout;
            request.extensions_mut().insert(RequestDeadline(deadline));
            match tokio::time::timeout_at(deadline, next.run(request)).await {
                Ok(response) => response,
                Err(_) => {
                    let response = error_response(
                        "TIMEOUT",
                        format!(
                            "the request was not answered within its deadline of {}",
                            humanize(settings.request_timeout)
                        ),
                    );
                    refusal(&response, media, StatusCode::GATEWAY_TIMEOUT)
                }
            }
        }
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        // A request refused before its operation was read is counted without one; a 5xx (shed,
        // past its deadline) is the server's doing whatever the handler had recorded.
        let (operation, outcome) = recorded
            .take()
            .unwrap_or_else(|| (Operation::new(None, None), Outcome::ClientError));
        let outcome = if response.status().is_server_error() {
            Outcome::ServerError
        } else {
            outcome
        };
        if let Some(request_id) = request_id {
            tracing::info!(
                request_id,
                operation = operation.name(),
                outcome = outcome.label(),
                status = response.status().as_u16(),
                duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                "request finished"
            );
        }
        operation.record(outcome, started.elapsed());
    }
    response
}

/// `1.5s`, `15s`: a duration as the settings write it.
fn humanize(duration: std::time::Duration) -> String {
    format!("{}s", duration.as_secs_f64())
}

/// The deadline `admit` gave the request.
fn deadline_of(request: &axum::extract::Request) -> Instant {
    request
        .extensions()
        .get::<RequestDeadline>()
        .map_or_else(Instant::now, |RequestDeadline(deadline)| *deadline)
}

/// Where the handler records what the request was, for `admit`.
fn recorded_of(extensions: &http::Extensions) -> Recorded {
    extensions.get::<Recorded>().cloned().unwrap_or_default()
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.shutdown.is_triggered() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining\n");
    }
    if state.edge.backends_ready().await {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "a backend is not serving\n",
        )
    }
}

/// The trace context, forwarded headers and caller of one GraphQL operation; a trace starts here
/// when the client sent none. Its span is the edge's server span, which [`record_operation`]
/// names once the operation is known.
pub(crate) fn call_context(headers: &HeaderMap, credentials: Credentials) -> CallContext {
    let forwarded = ForwardedHeaders::from_headers(headers);
    let span = tracing::info_span!(
        "graphql",
        otel.name = tracing::field::Empty,
        otel.kind = "server",
        graphql.operation.name = tracing::field::Empty,
        graphql.operation.type = tracing::field::Empty,
        request_id = forwarded.request_id(),
    );
    continue_trace(&span, headers, ServiceName::new("edge"));
    CallContext {
        span,
        forwarded,
        credentials,
        deadline: None,
    }
}

/// Names the operation on its span, as OpenTelemetry's GraphQL conventions do:
/// `graphql.operation.name`, `graphql.operation.type` and the span name `mutation PlaceOrder`.
pub(crate) fn record_operation(
    span: &tracing::Span,
    operation: &Operation,
    kind: Option<OperationType>,
) {
    span.record("graphql.operation.name", operation.name());
    if let Some(kind) = kind {
        span.record("graphql.operation.type", tracing::field::display(kind));
        span.record(
            "otel.name",
            tracing::field::display(format_args!("{kind} {}", operation.name())),
        );
    }
}

/// The media type to answer with, from `Accept`; `None` when nothing acceptable was asked for.
fn negotiate(headers: &HeaderMap) -> Option<&'static str> {
    let Some(accept) = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
    else {
        return Some(JSON);
    };
    let mut best: Option<(&'static str, f32)> = None;
    for item in accept.split(',') {
        let (media, parameters) = item.split_once(';').unwrap_or((item, ""));
        let media = media.trim().to_ascii_lowercase();
        let quality = parameters
            .split(';')
            .map(str::trim)
            .filter_map(|param| param.strip_prefix("q="))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let candidate = match media.as_str() {
            GRAPHQL_RESPONSE => GRAPHQL_RESPONSE,
            JSON | "application/*" | "*/*" => JSON,
            _ => continue,
        };
        if quality > 0.0 && best.is_none_or(|(_, q)| quality > q) {
            best = Some((candidate, quality));
        }
    }
    best.map(|(media, _)| media)
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// An HTTP answer holding a GraphQL response. `before_execution` responses have no `data`.
fn answer(
    response: &Response,
    media: &'static str,
    before_execution: bool,
) -> axum::response::Response {
    let body = match response_body(response, before_execution) {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "a GraphQL response could not be written as JSON");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the response could not be written\n",
            )
                .into_response();
        }
    };
    let status = if before_execution && media == GRAPHQL_RESPONSE {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut http = (status, body).into_response();
    http.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media_with_charset(media)),
    );
    http
}

/// The JSON of `response`; one that failed before execution has no `data` at all.
fn response_body(response: &Response, before_execution: bool) -> serde_json::Result<Vec<u8>> {
    if !before_execution {
        return serde_json::to_vec(response);
    }
    let mut body = serde_json::to_value(response)?;
    if let Some(object) = body.as_object_mut() {
        object.remove("data");
    }
    serde_json::to_vec(&body)
}

fn media_with_charset(media: &str) -> &'static str {
    if media == GRAPHQL_RESPONSE {
        "application/graphql-response+json; charset=utf-8"
    } else {
        "application/json; charset=utf-8"
    }
}

/// A malformed HTTP request: not a GraphQL request at all.
fn bad_request(media: &'static str, message: &str) -> axum::response::Response {
    refusal(
        &error_response("BAD_REQUEST", message),
        media,
        StatusCode::BAD_REQUEST,
    )
}

/// A request refused before execution with `status`, whatever the media type.
fn refusal(
    response: &Response,
    media: &'static str,
    status: StatusCode,
) -> axum::response::Response {
    let mut http = answer(response, media, true);
    *http.status_mut() = status;
    http
}

/// A request refused until the caller says who they are: 401 (503 while the issuer's keys are
/// unavailable) with `WWW-Authenticate`, whatever the media type.
fn unauthenticated(refusal: &Unauthenticated, media: &'static str) -> axum::response::Response {
    let response = error_response(refusal.code(), refusal.to_string());
    let mut http = answer(&response, media, true);
    *http.status_mut() = refusal.http_status();
    if let Some(challenge) = refusal.www_authenticate() {
        http.headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
    }
    http
}

fn not_acceptable() -> axum::response::Response {
    (
        StatusCode::NOT_ACCEPTABLE,
        "accept application/graphql-response+json or application/json\n",
    )
        .into_response()
}

async fn graphql_post(
    State(state): State<AppState>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let headers = request.headers().clone();
    let deadline = deadline_of(&request);
    let recorded = recorded_of(request.extensions());
    let Some(media) = negotiate(&headers) else {
        return not_acceptable();
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            let (media, _parameters) = value.split_once(';').unwrap_or((value, ""));
            media.trim().to_ascii_lowercase()
        });
    match content_type.as_deref() {
        Some(JSON) => {}
        Some(_) => {
            return (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send application/json\n",
            )
                .into_response();
        }
        None => {
            return bad_request(
                media,
                "the request has no Content-Type; send application/json",
            );
        }
    }
    // A client that trickles its body is not waited for: 408, and the connection closes.
    let body_read_timeout = state.edge.settings().body_read_timeout;
    let body =
        match tokio::time::timeout(body_read_timeout, Bytes::from_request(request, &state)).await {
            Ok(Ok(body)) => body,
            Ok(Err(rejection)) => return rejection.into_response(),
            Err(_) => {
                let message = format!(
                    "the request's body did not arrive within {}",
                    humanize(body_read_timeout)
                );
                let mut http = refusal(
                    &error_response("BAD_REQUEST", message),
                    media,
                    StatusCode::REQUEST_TIMEOUT,
                );
                http.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return http;
            }
        };
    let request = match parse_body(&body) {
        Ok(request) => request,
        Err(message) => return bad_request(media, &message),
    };
    let peer = peer.map(|axum::Extension(axum::extract::ConnectInfo(peer))| peer);
    run(
        &state.edge,
        request,
        &headers,
        peer,
        media,
        Method::POST,
        Admitted {
            deadline,
            recorded: &recorded,
        },
    )
    .await
}

/// The JSON body of a POST: `{query, operationName, variables, extensions}`.
fn parse_body(body: &[u8]) -> Result<Request, String> {
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| format!("the body is not JSON: {error}"))?;
    let serde_json::Value::Object(mut object) = json else {
        return Err("the body must be a JSON object".to_owned());
    };
    request_from_parts(
        object.remove("query"),
        object.remove("operationName"),
        object.remove("variables"),
        object.remove("extensions"),
    )
}

fn request_from_parts(
    query: Option<serde_json::Value>,
    operation_name: Option<serde_json::Value>,
    variables: Option<serde_json::Value>,
    extensions: Option<serde_json::Value>,
) -> Result<Request, String> {
    let query = match query {
        Some(serde_json::Value::String(query)) => query,
        None | Some(serde_json::Value::Null) => String::new(),
        Some(_) => return Err("query must be a string".to_owned()),
    };
    let mut request = Request::new(query);
    match operation_name {
        Some(serde_json::Value::String(name)) => request = request.operation_name(name),
        None | Some(serde_json::Value::Null) => {}
        Some(_) => return Err("operationName must be a string".to_owned()),
    }
    match variables {
        Some(variables @ serde_json::Value::Object(_)) => {
            request = request.variables(Variables::from_json(variables));
        }
        None | Some(serde_json::Value::Null) => {}
        Some(_) => return Err("variables must be an object".to_owned()),
    }
    match extensions {
        Some(serde_json::Value::Object(extensions)) => {
            for (key, value) in extensions {
                let value =
                    async_graphql::Value::from_json(value).map_err(|error| error.to_string())?;
                request.extensions.insert(key, value);
            }
        }
        None | Some(serde_json::Value::Null) => {}
        Some(_) => return Err("extensions must be an object".to_owned()),
    }
    Ok(request)
}

async fn graphql_get(
    State(state): State<AppState>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let deadline = deadline_of(&request);
    let (mut parts, _) = request.into_parts();
    let headers = parts.headers.clone();
    if headers
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"))
    {
        return state.sockets.upgrade(&mut parts, &headers).await;
    }
    let params: HashMap<String, String> =
        match axum::extract::Query::<HashMap<String, String>>::try_from_uri(&parts.uri) {
            Ok(query) => query.0,
            Err(_) => {
                return match negotiate(&headers) {
                    Some(media) => bad_request(media, "the query string is malformed"),
                    None => not_acceptable(),
                };
            }
        };
    if !params.contains_key("query") && wants_html(&headers) && state.edge.settings().graphiql {
        return graphiql().await.into_response();
    }
    let Some(media) = negotiate(&headers) else {
        return not_acceptable();
    };
    let json = |name: &str| -> Result<Option<serde_json::Value>, String> {
        params
            .get(name)
            .map(|text| serde_json::from_str(text).map_err(|_| format!("{name} must be JSON")))
            .transpose()
    };
    let request = match (json("variables"), json("extensions")) {
        (Ok(variables), Ok(extensions)) => request_from_parts(
            params.get("query").cloned().map(serde_json::Value::String),
            params
                .get("operationName")
                .cloned()
                .map(serde_json::Value::String),
            variables,
            extensions,
        ),
        (Err(message), _) | (_, Err(message)) => Err(message),
    };
    match request {
        Ok(request) => {
            let peer = parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0);
            let recorded = recorded_of(&parts.extensions);
            run(
                &state.edge,
                request,
                &headers,
                peer,
                media,
                Method::GET,
                Admitted {
                    deadline,
                    recorded: &recorded,
                },
            )
            .await
        }
        Err(message) => bad_request(media, &message),
    }
}

/// What `admit` gave a GraphQL request: its deadline, and where it records how it ended.
struct Admitted<'a> {
    deadline: Instant,
    recorded: &'a Recorded,
}

async fn run(
    edge: &Gateway,
    mut request: Request,
    headers: &HeaderMap,
    peer: Option<std::net::SocketAddr>,
    media: &'static str,
    method: Method,
    admitted: Admitted<'_>,
) -> axum::response::Response {
    let Admitted { deadline, recorded } = admitted;
    // Until it is answered, a request counts as refused: every early answer is the client's. Its
    // name is read from the document once (again only for a persisted query sent by hash).
    let mut operation = Operation::of(&request, None);
    recorded.set(operation.clone(), Outcome::ClientError);
    let credentials = match edge.caller(headers).await {
        Ok(credentials) => credentials,
        Err(refusal) => return unauthenticated(&refusal, media),
    };
    let sent_query = !request.query.is_empty();
    if let Err(response) = edge.persisted_query(&mut request) {
        return answer(&response, media, true);
    }
    if !sent_query {
        operation = Operation::of(&request, None);
        recorded.set(operation.clone(), Outcome::ClientError);
    }
    if request.query.is_empty() {
        return bad_request(media, "the request has no query");
    }
    let client = edge.client_address(peer, headers);
    let kind = match edge.prepare_from(&mut request, &credentials, client) {
        Ok(kind) => {
            operation = operation.of_kind(kind);
            recorded.set(operation.clone(), Outcome::ClientError);
            kind
        }
        Err(Refused::Invalid(response)) => return answer(&response, media, true),
        Err(Refused::Unauthenticated(refusal)) => return unauthenticated(&refusal, media),
        Err(Refused::RateLimited {
            response,
            retry_after_seconds,
        }) => {
            // 429 with `Retry-After` under either media type, like a 401.
            let mut http = answer(&response, media, true);
            *http.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            http.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
            return http;
        }
    };
    match (method, kind) {
        (Method::GET, Some(OperationType::Mutation)) => {
            let mut http = (
                StatusCode::METHOD_NOT_ALLOWED,
                "a mutation must be sent with POST\n",
            )
                .into_response();
            http.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return http;
        }
        (_, Some(OperationType::Subscription)) => {
            let response = error_response(
                "BAD_REQUEST",
                "subscriptions are served over WebSocket (graphql-transport-ws) on /graphql",
            );
            return answer(&response, media, true);
        }
        _ => {}
    }
    let call = CallContext {
        deadline: Some(deadline),
        ..call_context(headers, credentials)
    };
    record_operation(&call.span, &operation, kind);
    let (response, executed) = edge.execute(request, call).await;
    recorded.set(operation, Outcome::of(&response));
    answer(&response, media, !executed)
}

/// GraphiQL, with its scripts and styles served by the edge itself (no CDN), under a CSP that
/// lets nothing else run.
async fn graphiql() -> impl IntoResponse {
    (
        [(header::CONTENT_SECURITY_POLICY, GRAPHIQL_CSP)],
        Html(include_str!("../assets/graphiql.html")),
    )
}

async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> axum::response::Response {
    let (body, content_type): (&'static [u8], &str) = match file.as_str() {
        "graphiql.min.js" => (
            include_bytes!("../assets/graphiql.min.js"),
            "text/javascript",
        ),
        "graphiql.min.css" => (include_bytes!("../assets/graphiql.min.css"), "text/css"),
        "react.production.min.js" => (
            include_bytes!("../assets/react.production.min.js"),
            "text/javascript",
        ),
        "react-dom.production.min.js" => (
            include_bytes!("../assets/react-dom.production.min.js"),
            "text/javascript",
        ),
        "graphql-ws.min.js" => (
            include_bytes!("../assets/graphql-ws.min.js"),
            "text/javascript",
        ),
        "graphiql-init.js" => (
            include_bytes!("../assets/graphiql-init.js"),
            "text/javascript",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}
