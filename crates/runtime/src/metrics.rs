//! RED metrics for every gRPC call and the process, served in Prometheus text format on a
//! separate port (`/metrics`), so scraping never competes with traffic and never needs mTLS.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tonic::Code;
use tower_layer::Layer;
use tower_service::Service;

use crate::call_end::{CallEndBody, EndCodes, OnCallEnd, status_code};
use crate::shutdown::Shutdown;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Counter of finished gRPC calls, by `service`, `method`, `code` and `rpc_type` (`unary` or
/// `server_stream`).
pub const GRPC_REQUESTS: &str = "grpc_server_requests_total";
/// Histogram of unary gRPC call durations in seconds, by `service`, `method` and `code`.
pub const GRPC_DURATION: &str = "grpc_server_request_duration_seconds";
/// Histogram of server-streaming call durations in seconds (until the stream ends), apart from
/// unary latency: a subscription open for an hour is not a slow request.
pub const GRPC_STREAM_DURATION: &str = "grpc_server_stream_duration_seconds";

const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide Prometheus recorder, installed on first use.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("duration_seconds".to_owned()),
                &LATENCY_BUCKETS,
            )
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        // Another recorder may already be installed (a test harness); ours then only renders.
        let _ = metrics::set_global_recorder(recorder);
        metrics::describe_counter!(
            GRPC_REQUESTS,
            "Finished gRPC calls by service, method and status code."
        );
        metrics::describe_histogram!(
            GRPC_DURATION,
            metrics::Unit::Seconds,
            "Unary gRPC call duration."
        );
        metrics::describe_histogram!(
            GRPC_STREAM_DURATION,
            metrics::Unit::Seconds,
            "Server-streaming gRPC call duration, until the stream ends."
        );
        handle
    })
}

/// The sum of the samples of `name` in this process whose labels include every pair of `labels`
/// (0 when there is none), read from the rendered exposition as Prometheus would scrape it: a
/// counter's total, or a gauge's value. For tests and diagnostics.
pub fn sample_sum(name: &str, labels: &[(&str, &str)]) -> f64 {
    handle()
        .render()
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((series_name, rest)) => (series_name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let wanted = series_name == name
                && labels.iter().all(|(key, value)| {
                    series_labels
                        .split(',')
                        .any(|pair| pair == format!("{key}=\"{value}\""))
                });
            wanted.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// The `/metrics` endpoint of the process: bound by [`MetricsServer::bind`], served by
/// [`MetricsServer::serve`].
pub struct MetricsServer {
    listener: TcpListener,
}

impl MetricsServer {
    /// Binds the metrics port.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        handle();
        Ok(Self {
            listener: TcpListener::bind(addr).await?,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `/metrics` until `shutdown` fires.
    pub async fn serve(self, shutdown: Shutdown) -> std::io::Result<()> {
        let collector = metrics_process::Collector::default();
        collector.describe();
        let upkeep = tokio::spawn(async {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                handle().run_upkeep();
            }
        });
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                collector.collect();
                std::future::ready(handle().render())
            }),
        );
        let result = axum::serve(self.listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        upkeep.abort();
        result
    }
}

/// Server layer recording [`GRPC_REQUESTS`] for every call, with the status code the client
/// really saw (from the trailers, or from a trailers-only response), and its duration in
/// [`GRPC_DURATION`] or, for a server-streaming method, [`GRPC_STREAM_DURATION`]. The code also
/// goes on the call's span (`rpc.grpc.status_code`, and an error status for a server fault), and
/// with an access log each finished call is one info line.
#[derive(Clone, Debug, Default)]
pub struct GrpcMetricsLayer {
    /// The paths (`/package.Service/Method`) of the server-streaming methods served.
    streaming: Arc<HashSet<String>>,
    access_log: bool,
}

impl GrpcMetricsLayer {
    /// A layer that tells streams from unary calls by the methods of the services in the encoded
    /// `FileDescriptorSet`s.
    pub fn new(file_descriptor_sets: &[&[u8]]) -> Result<Self, prost_reflect::DescriptorError> {
        let mut streaming = HashSet::new();
        for bytes in file_descriptor_sets {
            let pool = prost_reflect::DescriptorPool::decode(*bytes)?;
            for service in pool.services() {
                for method in service.methods() {
                    if method.is_server_streaming() {
                        streaming.insert(format!("/{}/{}", service.full_name(), method.name()));
                    }
                }
            }
        }
        Ok(Self {
            streaming: Arc::new(streaming),
            access_log: false,
        })
    }

    /// The same layer, logging every finished call at info when `access_log` is set.
    pub fn with_access_log(self, access_log: bool) -> Self {
        Self { access_log, ..self }
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics {
            inner,
            streaming: self.streaming.clone(),
            access_log: self.access_log,
        }
    }
}

/// The service made by [`GrpcMetricsLayer`].
#[derive(Clone, Debug)]
pub struct GrpcMetrics<S> {
    inner: S,
    streaming: Arc<HashSet<String>>,
    access_log: bool,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GrpcMetrics<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = Response<CallEndBody<ResBody, CallRecorder>>;
    type Error = BoxError;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let path = request.uri().path();
        let call = CallRecorder::start(path, self.streaming.contains(path), self.access_log);
        let future = self.inner.call(request);
        Box::pin(async move {
            match future.await {
                Ok(response) => {
                    let call = match status_code(response.headers()) {
                        // A trailers-only response: the call ended with its headers.
                        Some(code) => {
                            call.finish(code);
                            None
                        }
                        None => Some(call),
                    };
                    Ok(response.map(|inner| CallEndBody::new(inner, call, SERVER_END)))
                }
                Err(error) => {
                    let error: BoxError = error.into();
                    let code = if error.is::<tower::load_shed::error::Overloaded>() {
                        Code::ResourceExhausted
                    } else {
                        Code::Unknown
                    };
                    call.finish(code);
                    Err(error)
                }
            }
        })
    }
}

/// The metrics (and span) of one call in flight, until its response body tells how it ended.
pub struct CallRecorder {
    service: String,
    method: String,
    streaming: bool,
    access_log: bool,
    /// The call's span (the request context's, which this layer runs in).
    span: tracing::Span,
    start: Instant,
}

impl CallRecorder {
    fn start(path: &str, streaming: bool, access_log: bool) -> Self {
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or((path, ""));
        Self {
            service: service.to_owned(),
            method: method.to_owned(),
            streaming,
            access_log,
            span: tracing::Span::current(),
            start: Instant::now(),
        }
    }

    fn finish(self, code: Code) {
        let (rpc_type, duration) = if self.streaming {
            ("server_stream", GRPC_STREAM_DURATION)
        } else {
            ("unary", GRPC_DURATION)
        };
        let labels = [
            ("service", self.service),
            ("method", self.method),
            ("code", code_name(code).to_owned()),
        ];
        let elapsed = self.start.elapsed();
        metrics::histogram!(duration, &labels).record(elapsed.as_secs_f64());
        crate::context::record_code(&self.span, code);
        if self.access_log {
            self.span.in_scope(|| {
                tracing::info!(
                    code = code_name(code),
                    duration_ms = elapsed.as_secs_f64() * 1000.0,
                    "call finished"
                );
            });
        }
        let [service, method, code] = labels;
        let labels = [service, method, code, ("rpc_type", rpc_type.to_owned())];
        metrics::counter!(GRPC_REQUESTS, &labels).increment(1);
    }
}

impl OnCallEnd for CallRecorder {
    fn call_ended(self, code: Code) {
        self.finish(code);
    }
}

/// How a served call ended when its body says nothing: a body that ends without a status (tonic
/// always sends one) counts as OK, one that fails as INTERNAL.
const SERVER_END: EndCodes = EndCodes {
    missing: Code::Ok,
    failed: Code::Internal,
};

/// Whether `code` is a server fault (what burns the availability budget), not an answer to the
/// client: UNKNOWN, INTERNAL, UNAVAILABLE, DATA_LOSS, DEADLINE_EXCEEDED, UNIMPLEMENTED.
pub fn is_fault(code: Code) -> bool {
    matches!(
        code,
        Code::Unknown
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
            | Code::DeadlineExceeded
            | Code::Unimplemented
    )
}

/// The canonical upper-case name of a gRPC status code (`NOT_FOUND`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
