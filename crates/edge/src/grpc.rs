//! Dynamic gRPC calls to the backends: messages encoded and decoded by descriptor (a small tonic
//! [`Codec`] over prost-reflect), one balanced channel per service built at start, a deadline on
//! every call, one retry on UNAVAILABLE for idempotent calls, and the request's trace context,
//! forwarded headers and the caller's `authorization` on each.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crowdcrunch_runtime::access::Rule;
use crowdcrunch_runtime::client::{Endpoints, GrpcChannel};
use crowdcrunch_runtime::context::ForwardedHeaders;
use crowdcrunch_runtime::context::{client_span, record_code};
use crowdcrunch_runtime::metrics::code_name;
use crowdcrunch_runtime::telemetry::LogThrottle;
use crowdcrunch_runtime::{Shutdown, TlsSettings};
use futures::Stream;
use http::uri::PathAndQuery;
use prost::Message as _;
use prost::bytes::Buf as _;
use prost_reflect::{DynamicMessage, MessageDescriptor, MethodDescriptor};
use tokio::time::Instant;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};
use tracing::Instrument as _;

use crate::access::Credentials;
use crate::plan::reads::{FieldMask, MaskedDecodeError};

/// Counter of the calls the edge made to its backends, by `rpc` (full name) and the gRPC `code`
/// they ended with (a stream: the code it opened with); a retry is the same call. Every RPC is
/// there from the first scrape, at zero.
pub const BACKEND_CALLS: &str = "edge_backend_calls_total";
/// Counter of the calls the edge retried once (see `retryable`), by `rpc`; at zero from the start.
pub const BACKEND_RETRIES: &str = "edge_backend_retries_total";
/// Gauge per `backend`: 1 while it answers its health check with SERVING, else 0.
pub const BACKEND_UP: &str = "edge_backend_up";
/// How often the edge checks its backends' health for [`BACKEND_UP`].
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// How long one health check may take.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// Encodes any message and decodes messages of one descriptor: whole, or only the fields a mask
/// names.
#[derive(Debug, Clone)]
pub struct DynamicCodec {
    output: MessageDescriptor,
    mask: Option<Arc<FieldMask>>,
}

impl DynamicCodec {
    /// A codec whose responses are `output` messages, decoded whole.
    pub fn new(output: MessageDescriptor) -> Self {
        Self { output, mask: None }
    }
}

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        DynamicDecoder {
            output: self.output.clone(),
            mask: self.mask.clone(),
        }
    }
}

/// The encoder of [`DynamicCodec`].
#[derive(Debug, Clone)]
pub struct DynamicEncoder;

impl Encoder for DynamicEncoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        // prost fails only on a buffer too small, and tonic's buffer grows: this cannot fail.
        item.encode(dst)
            .map_err(|error| Status::internal(format!("cannot encode the request: {error}")))
    }
}

/// The decoder of [`DynamicCodec`].
#[derive(Debug, Clone)]
pub struct DynamicDecoder {
    output: MessageDescriptor,
    mask: Option<Arc<FieldMask>>,
}

impl Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        let decoded = match &self.mask {
            None => {
                DynamicMessage::decode(self.output.clone(), src).map_err(MaskedDecodeError::from)
            }
            Some(mask) => {
                // tonic hands over one contiguous buffer: read it in place, copy only otherwise.
                let length = src.remaining();
                let decoded = if src.chunk().len() == length {
                    mask.decode(self.output.clone(), src.chunk())
                } else {
                    mask.decode(self.output.clone(), &src.copy_to_bytes(length))
                };
                src.advance(src.remaining());
                decoded
            }
        };
        decoded
            .map(Some)
            .map_err(|error| Status::internal(format!("cannot decode the response: {error}")))
    }
}

/// One RPC, with everything a call needs, built at start.
#[derive(Debug)]
pub struct Rpc {
    /// The RPC's descriptor.
    pub method: MethodDescriptor,
    /// `/package.Service/Method`.
    path: PathAndQuery,
    /// The backend's name (`customers`, `orders`, ...).
    pub backend: String,
    /// Whether a retry cannot apply the call twice.
    pub idempotent: bool,
    /// Who may call it, from its `(crowdcrunch.access.v1.rule)`.
    pub rule: Rule,
    calls: AtomicU64,
}

impl Rpc {
    /// The call plan of `method`. Reads are idempotent; so are calls whose request carries an
    /// idempotency key (the edge sets one when the client does not). A method whose
    /// `/package.Service/Method` is not a valid HTTP/2 path fails here, at start, never a call.
    pub fn new(method: &MethodDescriptor, rule: Rule) -> Result<Self, http::uri::InvalidUri> {
        let name = method.name();
        let read =
            name.starts_with("Get") || name.starts_with("BatchGet") || name.starts_with("List");
        let keyed = method.input().get_field_by_name("request_id").is_some();
        let service = method.parent_service();
        let path = format!("/{}/{}", service.full_name(), name);
        let full_name = method.full_name().to_owned();
        metrics::counter!(BACKEND_CALLS, "rpc" => full_name.clone(), "code" => "OK").increment(0);
        metrics::counter!(BACKEND_RETRIES, "rpc" => full_name).increment(0);
        Ok(Self {
            path: PathAndQuery::try_from(path)?,
            backend: backend_name(service.full_name()),
            idempotent: read || keyed || method.is_server_streaming(),
            method: method.clone(),
            rule,
            calls: AtomicU64::new(0),
        })
    }

    /// How many calls this process made to the RPC (retries not counted).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Counts a call that ended with `code`.
    fn count_call(&self, code: Code) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(
            BACKEND_CALLS,
            "rpc" => self.method.full_name().to_owned(),
            "code" => code_name(code),
        )
        .increment(1);
    }

    fn count_retry(&self) {
        metrics::counter!(BACKEND_RETRIES, "rpc" => self.method.full_name().to_owned())
            .increment(1);
    }
}

/// `crowdcrunch.orders.v1.OrderService` → `orders`.
pub fn backend_name(service: &str) -> String {
    service.split('.').nth(1).unwrap_or(service).to_owned()
}

/// What a call carries from the GraphQL request: the trace span, the forwarded headers, the
/// caller and the request's deadline.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The request's span; backend calls are its children.
    pub span: tracing::Span,
    /// `x-request-id` and the B3 headers.
    pub forwarded: ForwardedHeaders,
    /// The caller, whose `authorization` every call forwards.
    pub credentials: Credentials,
    /// When the request must be answered: each call gets what is left of it as its
    /// `grpc-timeout`, never more than the backends' deadline. `None` (an operation over
    /// WebSocket) leaves the backends' deadline alone.
    pub deadline: Option<Instant>,
}

impl CallContext {
    /// The time a call started now may take: what is left of the request's deadline, at most
    /// `backend_timeout`; DEADLINE_EXCEEDED when nothing is left.
    fn time_left(&self, backend_timeout: Duration) -> Result<Duration, Status> {
        let Some(deadline) = self.deadline else {
            return Ok(backend_timeout);
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Status::deadline_exceeded(
                "the request's deadline passed before this call",
            ));
        }
        Ok(left.min(backend_timeout))
    }

    /// Runs `call`, a call of `rpc`, in its client span under the request's, with the forwarded
    /// headers in scope, and records the code it ended with on the span.
    async fn traced<T>(
        &self,
        rpc: &Rpc,
        call: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        let span = client_span(&self.span, rpc.path.path());
        let result = self
            .forwarded
            .clone()
            .scope(call.instrument(span.clone()))
            .await;
        record_code(
            &span,
            result.as_ref().map_or_else(Status::code, |_| Code::Ok),
        );
        result
    }

    /// A request for a call: `message` with the caller's `authorization`, so the service judges
    /// the caller again (zero trust).
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(authorization) = self.credentials.authorization() {
            request
                .metadata_mut()
                .insert("authorization", authorization.clone());
        }
        request
    }
}

/// Whether a call failed before the backend could act on it: UNAVAILABLE, or a CANCELLED,
/// INTERNAL or UNKNOWN that the transport produced (an HTTP/2 connection closed under the call, as
/// when a replica drains) and no backend described — every CrowdCrunch service attaches an
/// `ErrorInfo` to the errors it answers itself. The edge never sees its own cancellations: it
/// drops the call.
fn retryable(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable => true,
        Code::Cancelled | Code::Internal | Code::Unknown => status.details().is_empty(),
        _ => false,
    }
}

/// Waits until the channel can take a call: UNAVAILABLE when no endpoint is ready in time.
async fn ready(
    client: &mut tonic::client::Grpc<GrpcChannel>,
    deadline: Duration,
) -> Result<(), Status> {
    tokio::time::timeout(deadline, client.ready())
        .await
        .map_err(|_| Status::unavailable("no backend endpoint is ready"))?
        .map_err(|error| Status::unavailable(format!("the backend is unreachable: {error}")))
}

/// The channels to every configured backend.
#[derive(Clone)]
pub struct Backends {
    channels: Arc<HashMap<String, GrpcChannel>>,
    deadline: Duration,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends")
            .field("backends", &self.channels.keys().collect::<Vec<_>>())
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl Backends {
    /// Lazy channels to `endpoints` (by backend name); a call to a backend that is not configured
    /// answers UNAVAILABLE.
    pub fn new(
        endpoints: &HashMap<String, Endpoints>,
        tls: Option<&TlsSettings>,
        deadline: Duration,
    ) -> Result<Self, crowdcrunch_runtime::config::ConfigError> {
        let channels = endpoints
            .iter()
            .map(|(name, endpoints)| {
                Ok((
                    name.clone(),
                    crowdcrunch_runtime::client::channel(endpoints, tls)?,
                ))
            })
            .collect::<Result<_, crowdcrunch_runtime::config::ConfigError>>()?;
        Ok(Self {
            channels: Arc::new(channels),
            deadline,
        })
    }

    /// Counts the call and returns what it needs: the client, the codec and the path.
    fn start(
        &self,
        rpc: &Rpc,
        mask: Option<Arc<FieldMask>>,
    ) -> Result<(tonic::client::Grpc<GrpcChannel>, DynamicCodec, PathAndQuery), Status> {
        let codec = DynamicCodec {
            output: rpc.method.output(),
            mask,
        };
        Ok((self.client(rpc)?, codec, rpc.path.clone()))
    }

    fn client(&self, rpc: &Rpc) -> Result<tonic::client::Grpc<GrpcChannel>, Status> {
        self.channels
            .get(&rpc.backend)
            .cloned()
            .map(tonic::client::Grpc::new)
            .ok_or_else(|| {
                Status::unavailable(format!("the {} service is not configured", rpc.backend))
            })
    }

    /// A unary call, within the deadline, retried once on UNAVAILABLE when idempotent.
    pub async fn unary(
        &self,
        rpc: &Rpc,
        request: DynamicMessage,
        context: &CallContext,
    ) -> Result<DynamicMessage, Status> {
        self.unary_masked(rpc, request, context, None).await
    }

    /// [`Self::unary`], its response decoded only as far as `mask` says (whole without one).
    pub async fn unary_masked(
        &self,
        rpc: &Rpc,
        request: DynamicMessage,
        context: &CallContext,
        mask: Option<Arc<FieldMask>>,
    ) -> Result<DynamicMessage, Status> {
        let attempts = if rpc.idempotent { 2 } else { 1 };
        let mut last = Status::unavailable("no attempt");
        for attempt in 0..attempts {
            match self
                .unary_once(rpc, request.clone(), context, mask.clone())
                .await
            {
                Err(status) if retryable(&status) && attempt + 1 < attempts => {
                    // In an outage every call retries: one line now and then says it.
                    static THROTTLE: std::sync::LazyLock<LogThrottle> =
                        std::sync::LazyLock::new(|| LogThrottle::new(Duration::from_secs(5)));
                    if let Some(held_back) = THROTTLE.admit(&rpc.backend) {
                        tracing::warn!(rpc = %rpc.path, code = ?status.code(), reason = status.message(), held_back, "retrying once");
                    }
                    rpc.count_retry();
                    last = status;
                }
                result => {
                    rpc.count_call(result.as_ref().map_or_else(Status::code, |_| Code::Ok));
                    return result;
                }
            }
        }
        rpc.count_call(last.code());
        Err(last)
    }

    async fn unary_once(
        &self,
        rpc: &Rpc,
        request: DynamicMessage,
        context: &CallContext,
        mask: Option<Arc<FieldMask>>,
    ) -> Result<DynamicMessage, Status> {
        let (mut client, codec, path) = self.start(rpc, mask)?;
        let deadline = context.time_left(self.deadline)?;
        let mut request = context.request(request);
        let call = async move {
            ready(&mut client, deadline).await?;
            request.set_timeout(deadline);
            match tokio::time::timeout(deadline, client.unary(request, path, codec)).await {
                Ok(result) => result.map(tonic::Response::into_inner),
                Err(_) => Err(Status::deadline_exceeded(
                    "the backend did not answer in time",
                )),
            }
        };
        context.traced(rpc, call).await
    }

    /// A server-streaming call. The stream ends the upstream call when it is dropped.
    pub async fn server_streaming(
        &self,
        rpc: &Rpc,
        request: DynamicMessage,
        context: &CallContext,
    ) -> Result<impl Stream<Item = Result<DynamicMessage, Status>> + Send + 'static + use<>, Status>
    {
        let opened = self.open_stream(rpc, request, context).await;
        rpc.count_call(opened.as_ref().map_or_else(Status::code, |_| Code::Ok));
        opened
    }

    async fn open_stream(
        &self,
        rpc: &Rpc,
        request: DynamicMessage,
        context: &CallContext,
    ) -> Result<impl Stream<Item = Result<DynamicMessage, Status>> + Send + 'static + use<>, Status>
    {
        let (mut client, codec, path) = self.start(rpc, None)?;
        let deadline = context.time_left(self.deadline)?;
        let request = context.request(request);
        let call = async move {
            ready(&mut client, deadline).await?;
            match tokio::time::timeout(deadline, client.server_streaming(request, path, codec))
                .await
            {
                Ok(result) => result.map(tonic::Response::into_inner),
                Err(_) => Err(Status::deadline_exceeded(
                    "the backend did not answer in time",
                )),
            }
        };
        // The span covers opening the stream: the code it records is the opening's.
        context.traced(rpc, call).await
    }

    /// Whether every configured backend answers its health check with SERVING.
    pub async fn ready(&self) -> bool {
        let checks = self.channels.values().map(serving);
        futures::future::join_all(checks)
            .await
            .into_iter()
            .all(|ready| ready)
    }

    /// Sets [`BACKEND_UP`] for every backend every few seconds, until `shutdown` fires: an
    /// operator sees a backend the edge cannot reach before its fields fail.
    pub async fn watch_health(self, shutdown: Shutdown) {
        let mut tick = tokio::time::interval(HEALTH_INTERVAL);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let checks = self.channels.iter().map(|(name, channel)| async move {
                let up = if serving(channel).await { 1.0 } else { 0.0 };
                metrics::gauge!(BACKEND_UP, "backend" => name.clone()).set(up);
            });
            futures::future::join_all(checks).await;
        }
    }
}

/// Whether the backend behind `channel` answers its health check with SERVING in time.
async fn serving(channel: &GrpcChannel) -> bool {
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let check = client.check(tonic_health::pb::HealthCheckRequest {
        service: String::new(),
    });
    matches!(
        tokio::time::timeout(HEALTH_TIMEOUT, check).await,
        Ok(Ok(response)) if response.get_ref().status
            == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    )
}
