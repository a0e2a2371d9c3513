//! Dynamic gRPC calls to the backends: messages encoded and decoded by descriptor (a small tonic
//! [`Codec`] over prost-reflect), one balanced channel per service built at start, a deadline on
//! every call, one retry on UNAVAILABLE for idempotent calls, and the request's trace context,
//! forwarded headers and the caller's `authorization` on each.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crowdcrunch_runtime::TlsSettings;
use crowdcrunch_runtime::access::Rule;
use crowdcrunch_runtime::client::{Endpoints, GrpcChannel};
use crowdcrunch_runtime::context::ForwardedHeaders;
use futures::Stream;
use http::uri::PathAndQuery;
use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor, MethodDescriptor};
use tokio::time::Instant;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};
use tracing::Instrument as _;

use crate::access::Credentials;

/// Counter of the calls the edge made to its backends, by `rpc` (full name); a retry is the same
/// call.
pub const BACKEND_CALLS: &str = "edge_backend_calls_total";
/// Counter of the calls the edge retried once (see `retryable`).
pub const BACKEND_RETRIES: &str = "edge_backend_retries_total";

/// Encodes any message and decodes messages of one descriptor.
#[derive(Debug, Clone)]
pub struct DynamicCodec {
    output: MessageDescriptor,
}

impl DynamicCodec {
    /// A codec whose responses are `output` messages.
    pub fn new(output: MessageDescriptor) -> Self {
        Self { output }
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
        DynamicDecoder(self.output.clone())
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
pub struct DynamicDecoder(MessageDescriptor);

impl Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        DynamicMessage::decode(self.0.clone(), src)
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

    fn count(&self, counter: &'static str) {
        if counter == BACKEND_CALLS {
            self.calls.fetch_add(1, Ordering::Relaxed);
        }
        metrics::counter!(counter, "rpc" => self.method.full_name().to_owned()).increment(1);
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
    ) -> Result<(tonic::client::Grpc<GrpcChannel>, DynamicCodec, PathAndQuery), Status> {
        let codec = DynamicCodec {
            output: rpc.method.output(),
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
        rpc.count(BACKEND_CALLS);
        let attempts = if rpc.idempotent { 2 } else { 1 };
        let mut last = Status::unavailable("no attempt");
        for attempt in 0..attempts {
            match self.unary_once(rpc, request.clone(), context).await {
                Err(status) if retryable(&status) && attempt + 1 < attempts => {
                    tracing::warn!(rpc = %rpc.path, code = ?status.code(), message = status.message(), "retrying once");
                    rpc.count(BACKEND_RETRIES);
                    last = status;
                }
                result => return result,
            }
        }
        Err(last)
    }

    async fn unary_once(
        &self,
        rpc: &Rpc,
        request: DynamicMessage,
        context: &CallContext,
    ) -> Result<DynamicMessage, Status> {
        let (mut client, codec, path) = self.start(rpc)?;
        let deadline = context.time_left(self.deadline)?;
        let span = tracing::info_span!(parent: &context.span, "grpc.call", otel.kind = "client", rpc.method = %rpc.path);
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
        context.forwarded.clone().scope(call.instrument(span)).await
    }

    /// A server-streaming call. The stream ends the upstream call when it is dropped.
    pub async fn server_streaming(
        &self,
        rpc: &Rpc,
        request: DynamicMessage,
        context: &CallContext,
    ) -> Result<impl Stream<Item = Result<DynamicMessage, Status>> + Send + 'static + use<>, Status>
    {
        rpc.count(BACKEND_CALLS);
        let (mut client, codec, path) = self.start(rpc)?;
        let deadline = context.time_left(self.deadline)?;
        let span = tracing::info_span!(parent: &context.span, "grpc.stream", otel.kind = "client", rpc.method = %rpc.path);
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
        let stream = context
            .forwarded
            .clone()
            .scope(call.instrument(span))
            .await?;
        Ok(stream)
    }

    /// Whether every configured backend answers its health check with SERVING.
    pub async fn ready(&self) -> bool {
        let checks = self.channels.values().map(|channel| {
            let mut client = tonic_health::pb::health_client::HealthClient::new(channel.clone());
            async move {
                let check = client.check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                });
                matches!(
                    tokio::time::timeout(Duration::from_secs(2), check).await,
                    Ok(Ok(response)) if response.get_ref().status
                        == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
                )
            }
        });
        futures::future::join_all(checks)
            .await
            .into_iter()
            .all(|ready| ready)
    }
}
