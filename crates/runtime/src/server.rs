//! The gRPC server every service runs: the shared tower stack (with admission: every call is
//! identified and judged by its RPC's rule), the standard health service, reflection (v1 and
//! v1alpha), optional TLS, and a graceful drain.
//!
//! [`GrpcServer::bind`] binds the port (port 0 in tests) so the address is known before serving;
//! [`GrpcServer::serve`] serves until the [`Shutdown`] fires, then drains: health turns
//! NOT_SERVING, no new calls are accepted, in-flight calls finish, and whatever is still open when
//! the drain grace runs out is closed.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::ServiceBuilder;

use crate::access::{AdmissionLayer, Gatekeeper};
use crate::config::ServerSettings;
use crate::context::RequestContextLayer;
use crate::decode_status::DecodeStatusLayer;
use crate::metrics::GrpcMetricsLayer;
use crate::pagination::PageTokens;
use crate::shutdown::Shutdown;

/// How often readiness is checked again while serving.
const READINESS_INTERVAL: Duration = Duration::from_secs(5);

/// A server could not start or failed while serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS configuration was refused.
    #[error("bad TLS configuration: {0}")]
    Tls(tonic::transport::Error),
    /// The reflection descriptors do not decode.
    #[error("bad file descriptor set for reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The service's descriptors do not say which methods stream.
    #[error("bad file descriptor set for metrics: {0}")]
    Descriptors(#[from] prost_reflect::DescriptorError),
    /// The transport failed while serving.
    #[error("server failed: {0}")]
    Transport(tonic::transport::Error),
}

/// Whether a server is ready to take traffic (its storage answers, its migrations ran).
#[derive(Clone)]
pub struct Readiness(Arc<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>);

impl Readiness {
    /// Ready whenever `check` resolves to `true`.
    pub fn new<F, Fut>(check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        Self(Arc::new(move || Box::pin(check())))
    }

    /// Ready as soon as it serves (a server with no dependency to wait for).
    pub fn always() -> Self {
        Self::new(|| std::future::ready(true))
    }

    async fn check(&self) -> bool {
        (self.0)().await
    }
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Readiness")
    }
}

/// A tonic service a [`GrpcServer`] can serve (what the generated `XServer<_>` types are).
pub trait GrpcService:
    tower_service::Service<
        http::Request<Body>,
        Response = http::Response<Body>,
        Error = Infallible,
        Future: Send + 'static,
    > + NamedService
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> GrpcService for S where
    S: tower_service::Service<
            http::Request<Body>,
            Response = http::Response<Body>,
            Error = Infallible,
            Future: Send + 'static,
        > + NamedService
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// What one server serves: the service, the descriptors reflection describes it with, and its
/// readiness check.
pub struct ServiceDefinition<S> {
    /// Makes the tonic service (e.g. `CustomerServiceServer<_>`) with the page-token key of the
    /// server that serves it ([`ServerSettings::page_tokens`]).
    pub service: Box<dyn FnOnce(PageTokens) -> S + Send>,
    /// Encoded `FileDescriptorSet` that describes `service`.
    pub file_descriptor_set: &'static [u8],
    /// When the service may report SERVING.
    pub readiness: Readiness,
}

/// A bound, not yet serving, gRPC server.
pub struct GrpcServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    settings: ServerSettings,
    gatekeeper: Gatekeeper,
}

impl GrpcServer {
    /// Checks the TLS configuration, then binds the listening port. Every call it will serve is
    /// admitted by `gatekeeper` (the access rules and the token verifier): there is no server
    /// without one.
    pub async fn bind(
        settings: ServerSettings,
        gatekeeper: Gatekeeper,
    ) -> Result<Self, ServeError> {
        if let Some(tls) = &settings.tls {
            Server::builder()
                .tls_config(crate::tls::server_config(tls))
                .map_err(ServeError::Tls)?;
        }
        let (listener, local_addr) = crate::http::bind_listener(settings.listen_addr).await?;
        Ok(Self {
            listener,
            local_addr,
            settings,
            gatekeeper,
        })
    }

    /// The bound address (the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves `definition` (plus health and reflection) until `shutdown` fires, then drains.
    pub async fn serve<S: GrpcService>(
        self,
        definition: ServiceDefinition<S>,
        shutdown: Shutdown,
    ) -> Result<(), ServeError> {
        let Self {
            listener,
            local_addr,
            settings,
            gatekeeper,
        } = self;
        let (health, health_service) = tonic_health::server::health_reporter();
        set_status::<S>(&health, ServingStatus::NotServing).await;
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(definition.file_descriptor_set)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                // The `google.rpc` error details, so that grpcurl decodes them.
                .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
                .with_service_name(S::NAME)
                .with_service_name("grpc.health.v1.Health")
                .with_service_name("grpc.reflection.v1.ServerReflection")
                .with_service_name("grpc.reflection.v1alpha.ServerReflection")
        };
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;

        let mut builder = Server::builder()
            .timeout(settings.request_timeout)
            .max_connection_age(settings.max_connection_age)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .tcp_nodelay(true);
        if let Some(tls) = &settings.tls {
            builder = builder
                .tls_config(crate::tls::server_config(tls))
                .map_err(ServeError::Tls)?;
        }
        let stack = ServiceBuilder::new()
            // One span per call, continuing the caller's trace, with Envoy's headers in scope for
            // every outbound call; outermost so that everything below is inside it.
            .layer(RequestContextLayer::serving(S::NAME))
            // RED metrics: every call, with the code the client saw, including shed calls.
            .layer(
                GrpcMetricsLayer::new(&[
                    definition.file_descriptor_set,
                    tonic_health::pb::FILE_DESCRIPTOR_SET,
                ])?
                .with_access_log(settings.access_log),
            )
            // Admission: who calls and whether their RPC's rule admits them, before any handler
            // runs (health and reflection stay open); a refusal is counted above with its code,
            // and the admitted `Caller` rides in the request's extensions.
            .layer(AdmissionLayer::new(gatekeeper))
            // At the limit, answer RESOURCE_EXHAUSTED at once rather than queue without bound.
            .load_shed()
            // Bound the calls served at once across all connections.
            .concurrency_limit(settings.concurrency_limit)
            // A request body that does not decode is INVALID_ARGUMENT on the standard services
            // too (tonic's codec says INTERNAL); innermost, so that the metrics, the access log
            // and the span above record the code the client receives.
            .layer(DecodeStatusLayer)
            .into_inner();
        let router = builder
            .layer(stack)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service((definition.service)(settings.page_tokens.clone()));

        // Health is decided before the first call is accepted: "serving" in the log means the
        // health service already tells the truth.
        let ready = definition.readiness.check().await;
        set_status::<S>(&health, serving_status(ready)).await;
        let readiness = tokio::spawn(watch_readiness::<S>(
            health.clone(),
            definition.readiness,
            shutdown.clone(),
            ready,
        ));
        let drain = {
            let health = health.clone();
            let shutdown = shutdown.clone();
            let readiness = readiness.abort_handle();
            async move {
                shutdown.cancelled().await;
                // Stop the readiness loop first, so that nothing turns SERVING again.
                readiness.abort();
                set_status::<S>(&health, ServingStatus::NotServing).await;
                tracing::info!(service = S::NAME, %local_addr, "draining");
            }
        };
        tracing::info!(service = S::NAME, %local_addr, "serving gRPC");
        let serving = router.serve_with_incoming_shutdown(
            // `Server::tcp_nodelay` applies only to listeners tonic binds itself: without this,
            // Nagle's algorithm holds a response's trailers until the client's delayed ACK (40ms).
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            drain,
        );
        let result = shutdown
            .drain(serving, settings.drain_grace, S::NAME)
            .await
            .map_or(Ok(()), |served| served.map_err(ServeError::Transport));
        readiness.abort();
        tracing::info!(service = S::NAME, "stopped");
        result
    }
}

async fn set_status<S: NamedService>(health: &HealthReporter, status: ServingStatus) {
    health.set_service_status("", status).await;
    health.set_service_status(S::NAME, status).await;
}

/// Reports SERVING while `readiness` holds and the server is not draining.
/// After the first check (`last`), reports SERVING while `readiness` holds and the server is not
/// draining.
async fn watch_readiness<S: NamedService>(
    health: HealthReporter,
    readiness: Readiness,
    shutdown: Shutdown,
    mut last: bool,
) {
    if !last {
        tracing::warn!(service = S::NAME, "not ready");
    }
    loop {
        tokio::select! {
            () = tokio::time::sleep(READINESS_INTERVAL) => {},
            () = shutdown.cancelled() => return,
        }
        let ready = readiness.check().await;
        if shutdown.is_triggered() {
            return;
        }
        if last != ready {
            set_status::<S>(&health, serving_status(ready)).await;
            if !ready {
                tracing::warn!(service = S::NAME, "not ready");
            }
            last = ready;
        }
    }
}

fn serving_status(ready: bool) -> ServingStatus {
    if ready {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}
