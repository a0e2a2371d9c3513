//! The server every service runs, over real gRPC on loopback: health and reflection, the drain,
//! deadlines, mutual TLS, trace propagation and metrics. The service under test is a tiny probe
//! written here: `Sleep` (answers after the requested duration), `Echo` (answers with the request's
//! headers as response metadata) and `Forward` (calls `Echo` on another server through a runtime
//! client channel and answers with what that server saw).

use std::sync::Arc;
use std::time::Duration;

use crowdcrunch_runtime::access::Caller;
use crowdcrunch_runtime::client::{Endpoints, GrpcChannel};
use crowdcrunch_runtime::config::TlsSettings;
use crowdcrunch_runtime::server::{Readiness, ServiceDefinition};
use crowdcrunch_runtime::testing::{TestServer, call_with_raw_body};
use crowdcrunch_runtime::{ServerSettings, metrics::MetricsServer};
use futures::future::BoxFuture;
use prost_types::Duration as ProtoDuration;
use tokio::sync::Notify;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_prost::ProstCodec;

const PROBE: &str = "crowdcrunch.test.Probe";

/// The probe service.
#[derive(Clone, Default)]
struct Probe {
    /// Poked when a `Sleep` call has started.
    sleeping: Arc<Notify>,
    /// Where `Forward` sends its call.
    forward_to: Option<GrpcChannel>,
}

impl tonic::server::NamedService for Probe {
    const NAME: &'static str = PROBE;
}

struct Method {
    probe: Probe,
    name: String,
}

impl tonic::server::UnaryService<ProtoDuration> for Method {
    type Response = ProtoDuration;
    type Future = BoxFuture<'static, Result<Response<ProtoDuration>, Status>>;

    fn call(&mut self, request: Request<ProtoDuration>) -> Self::Future {
        let probe = self.probe.clone();
        let name = self.name.clone();
        Box::pin(async move {
            match name.as_str() {
                "Sleep" => {
                    probe.sleeping.notify_one();
                    let wanted = request.into_inner();
                    let seconds = u64::try_from(wanted.seconds).unwrap_or(0);
                    tokio::time::sleep(Duration::from_secs(seconds)).await;
                    Ok(Response::new(wanted))
                }
                "Echo" => {
                    let mut response = Response::new(ProtoDuration::default());
                    *response.metadata_mut() = request.metadata().clone();
                    Ok(response)
                }
                "Forward" => {
                    let channel = probe.forward_to.clone().expect("Forward needs a target");
                    let echoed = call(channel, "Echo", ProtoDuration::default(), None).await?;
                    let mut response = Response::new(ProtoDuration::default());
                    *response.metadata_mut() = echoed.metadata().clone();
                    Ok(response)
                }
                "Whoami" => {
                    let caller = Caller::of(&request)?.identity().to_string();
                    let mut response = Response::new(ProtoDuration::default());
                    response
                        .metadata_mut()
                        .insert("x-caller", caller.parse().expect("ASCII"));
                    Ok(response)
                }
                other => Err(Status::unimplemented(other.to_owned())),
            }
        })
    }
}

impl tower::Service<http::Request<Body>> for Probe {
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<'static, Result<http::Response<Body>, std::convert::Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let name = request
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let method = Method {
            probe: self.clone(),
            name,
        };
        Box::pin(async move {
            let mut grpc =
                tonic::server::Grpc::new(ProstCodec::<ProtoDuration, ProtoDuration>::default());
            Ok(grpc.unary(method, request).await)
        })
    }
}

/// The probe's API with its access rules, compiled by protox beside the repository's
/// `crowdcrunch/access/v1/access.proto`: `Sleep`, `Echo` and `Forward` are open to anyone;
/// `Whoami` admits staff and the peer service `billing`.
const PROBE_PROTO: &str = r#"
syntax = "proto3";
package crowdcrunch.test;
import "google/protobuf/duration.proto";
import "crowdcrunch/access/v1/access.proto";
service Probe {
  rpc Sleep(google.protobuf.Duration) returns (google.protobuf.Duration) {
    option (crowdcrunch.access.v1.rule) = { roles: [ROLE_ANONYMOUS] };
  }
  rpc Echo(google.protobuf.Duration) returns (google.protobuf.Duration) {
    option (crowdcrunch.access.v1.rule) = { roles: [ROLE_ANONYMOUS] };
  }
  rpc Forward(google.protobuf.Duration) returns (google.protobuf.Duration) {
    option (crowdcrunch.access.v1.rule) = { roles: [ROLE_ANONYMOUS] };
  }
  rpc Whoami(google.protobuf.Duration) returns (google.protobuf.Duration) {
    option (crowdcrunch.access.v1.rule) = { roles: [ROLE_STAFF], peers: ["billing"] };
  }
}
"#;

/// The encoded descriptor set of [`PROBE_PROTO`] (with its imports), for reflection and rules.
fn probe_descriptors() -> &'static [u8] {
    static DESCRIPTORS: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    DESCRIPTORS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let probe = dir.path().join("crowdcrunch/test/probe.proto");
        std::fs::create_dir_all(probe.parent().expect("a parent")).expect("directories");
        std::fs::write(&probe, PROBE_PROTO).expect("write the probe proto");
        let repository_protos = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto");
        protox::Compiler::new([dir.path(), std::path::Path::new(repository_protos)])
            .expect("a compiler")
            .include_imports(true)
            .open_file("crowdcrunch/test/probe.proto")
            .expect("the probe proto compiles")
            .encode_file_descriptor_set()
    })
}

fn definition(probe: Probe, readiness: Readiness) -> ServiceDefinition<Probe> {
    ServiceDefinition {
        service: Box::new(move |_| probe),
        file_descriptor_set: probe_descriptors(),
        readiness,
    }
}

fn local_settings() -> ServerSettings {
    ServerSettings::new(([127, 0, 0, 1], 0).into())
}

async fn call<T>(
    channel: T,
    method: &str,
    message: ProtoDuration,
    metadata: Option<&[(&'static str, &str)]>,
) -> Result<Response<ProtoDuration>, Status>
where
    T: tonic::client::GrpcService<Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|error| Status::unavailable(error.into().to_string()))?;
    let mut request = Request::new(message);
    for (key, value) in metadata.unwrap_or_default() {
        request
            .metadata_mut()
            .insert(*key, value.parse().expect("ASCII metadata"));
    }
    let path = format!("/{PROBE}/{method}").parse().expect("a valid path");
    grpc.unary(request, path, ProstCodec::default()).await
}

fn seconds(seconds: i64) -> ProtoDuration {
    ProtoDuration { seconds, nanos: 0 }
}

#[tokio::test]
async fn reflection_v1_and_v1alpha_list_every_served_service() {
    let server = TestServer::start(definition(Probe::default(), Readiness::always())).await;
    let expected = [
        PROBE,
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ];

    use tonic_reflection::pb::{v1, v1alpha};
    let mut v1_client =
        v1::server_reflection_client::ServerReflectionClient::new(server.channel().await);
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut stream = v1_client
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("v1")
        .into_inner();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(listed)) =
        stream
            .message()
            .await
            .expect("v1 answer")
            .and_then(|response| response.message_response)
    else {
        panic!("v1 reflection did not list services");
    };
    let mut names: Vec<_> = listed
        .service
        .into_iter()
        .map(|service| service.name)
        .collect();
    names.sort();
    let mut wanted: Vec<_> = expected.iter().map(|name| (*name).to_owned()).collect();
    wanted.sort();
    assert_eq!(names, wanted);

    let mut alpha_client =
        v1alpha::server_reflection_client::ServerReflectionClient::new(server.channel().await);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut stream = alpha_client
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("v1alpha")
        .into_inner();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(listed)) =
        stream
            .message()
            .await
            .expect("v1alpha answer")
            .and_then(|response| response.message_response)
    else {
        panic!("v1alpha reflection did not list services");
    };
    let mut names: Vec<_> = listed
        .service
        .into_iter()
        .map(|service| service.name)
        .collect();
    names.sort();
    assert_eq!(names, wanted);
    server.stop().await.expect("drain");
}

async fn next_status(stream: &mut tonic::Streaming<HealthCheckResponse>) -> ServingStatus {
    let message = stream
        .message()
        .await
        .expect("health watch")
        .expect("health watch ended early");
    ServingStatus::try_from(message.status).expect("a known status")
}

#[tokio::test]
async fn a_drain_turns_health_not_serving_finishes_in_flight_calls_and_ends_despite_open_streams() {
    let probe = Probe::default();
    let sleeping = probe.sleeping.clone();
    let mut settings = local_settings();
    settings.drain_grace = Duration::from_secs(2);
    let server = TestServer::spawn(settings, definition(probe, Readiness::always())).await;
    let channel = server.channel().await;

    let mut health = HealthClient::new(channel.clone());
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch")
        .into_inner();
    assert_eq!(next_status(&mut watch).await, ServingStatus::Serving);
    let named = health
        .check(HealthCheckRequest {
            service: PROBE.into(),
        })
        .await
        .expect("check")
        .into_inner();
    assert_eq!(named.status(), ServingStatus::Serving);

    let in_flight = tokio::spawn(call(channel.clone(), "Sleep", seconds(1), None));
    sleeping.notified().await;
    let url = server.url();
    let addr = server.addr;
    let stopped = tokio::spawn(server.stop());

    assert_eq!(
        next_status(&mut watch).await,
        ServingStatus::NotServing,
        "the open watch sees the drain"
    );
    let answer = in_flight
        .await
        .expect("task")
        .expect("the in-flight call completes");
    assert_eq!(answer.into_inner(), seconds(1));
    let refused = Endpoint::from_shared(url).expect("url").connect().await;
    assert!(
        refused.is_err(),
        "{addr} still accepts connections while draining"
    );

    // The watch stream is still open: the drain must end anyway once the grace runs out.
    let ended = tokio::time::timeout(Duration::from_secs(20), stopped).await;
    ended
        .expect("the drain ended within its grace")
        .expect("task")
        .expect("a clean stop");
    drop(watch);
}

#[tokio::test]
async fn health_is_not_serving_until_ready() {
    let server = TestServer::start(definition(
        Probe::default(),
        Readiness::new(|| async { false }),
    ))
    .await;
    let mut health = HealthClient::new(server.channel().await);
    for service in ["", PROBE] {
        let answer = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("check");
        assert_eq!(
            answer.into_inner().status(),
            ServingStatus::NotServing,
            "service {service:?}"
        );
    }
    server.stop().await.expect("drain");
}

#[tokio::test]
async fn a_call_past_its_deadline_is_ended() {
    let server = TestServer::start(definition(Probe::default(), Readiness::always())).await;
    let channel = server.channel().await;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let mut request = Request::new(seconds(60));
    request.set_timeout(Duration::from_millis(200));
    let path = format!("/{PROBE}/Sleep").parse().expect("path");
    // Were the deadline ignored, the call would take a minute and this bound would trip.
    let answer = tokio::time::timeout(
        Duration::from_secs(20),
        grpc.unary::<_, ProtoDuration, _>(request, path, ProstCodec::default()),
    )
    .await
    .expect("the deadline ended the call");
    let status = answer.expect_err("past its deadline");
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
    server.stop().await.expect("drain");
}

/// A CA, a server certificate for `localhost` and a client certificate, all in PEM.
struct Pki {
    ca: String,
    server: (String, String),
    client: (String, String),
}

fn pki() -> Pki {
    pki_with_client("client")
}

/// A [`Pki`] whose client certificate's DNS name is `client_name`.
fn pki_with_client(client_name: &str) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>| {
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(names)
            .expect("params")
            .signed_by(&key, &issuer)
            .expect("certificate");
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        ca: ca_cert.pem(),
        server: leaf(vec!["localhost".into()]),
        client: leaf(vec![client_name.into()]),
    }
}

#[tokio::test]
async fn mutual_tls_refuses_a_client_without_a_certificate() {
    let pki = pki();
    let mut settings = local_settings();
    settings.tls = Some(TlsSettings {
        cert_pem: pki.server.0.clone(),
        key_pem: pki.server.1.clone(),
        client_ca_pem: Some(pki.ca.clone()),
    });
    let server =
        TestServer::spawn(settings, definition(Probe::default(), Readiness::always())).await;
    let url = format!("https://localhost:{}", server.addr.port());
    let connect = |tls: Option<ClientTlsConfig>| {
        let url = url.clone();
        async move {
            let endpoint = Endpoint::from_shared(url).expect("url");
            let endpoint = match tls {
                Some(tls) => endpoint.tls_config(tls).expect("client TLS"),
                None => endpoint,
            };
            let channel: Channel = endpoint
                .connect()
                .await
                .map_err(|error| Status::unavailable(error.to_string()))?;
            HealthClient::new(channel)
                .check(HealthCheckRequest::default())
                .await
        }
    };
    let trusting = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca))
        .domain_name("localhost");

    let anonymous = connect(Some(trusting.clone())).await;
    assert!(
        anonymous.is_err(),
        "a client without a certificate was served"
    );
    let plaintext = connect(None).await;
    assert!(plaintext.is_err(), "a plaintext client was served");
    let identified = connect(Some(
        trusting.identity(Identity::from_pem(&pki.client.0, &pki.client.1)),
    ))
    .await;
    assert_eq!(
        identified
            .expect("a client with a certificate is served")
            .into_inner()
            .status(),
        ServingStatus::Serving
    );
    server.stop().await.expect("drain");
}

#[tokio::test]
async fn trace_context_and_envoy_headers_cross_every_hop() {
    let echo = TestServer::start(definition(Probe::default(), Readiness::always())).await;
    let endpoints = Endpoints::parse(&echo.url()).expect("endpoints");
    let forwarder_channel =
        crowdcrunch_runtime::client::channel(&endpoints, None).expect("channel");
    let forwarder = Probe {
        forward_to: Some(forwarder_channel),
        ..Probe::default()
    };
    let front = TestServer::start(definition(forwarder, Readiness::always())).await;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let headers = [
        ("traceparent", traceparent.as_str()),
        ("x-request-id", "req-42"),
        ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("x-b3-sampled", "1"),
    ];
    let seen = call(
        front.channel().await,
        "Forward",
        ProtoDuration::default(),
        Some(&headers),
    )
    .await
    .expect("forwarded call")
    .metadata()
    .clone();
    let get = |key: &str| {
        seen.get(key)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let downstream_parent = get("traceparent").expect("the downstream call carries traceparent");
    assert!(
        downstream_parent.contains(trace_id),
        "same trace, new span: {downstream_parent}"
    );
    assert_ne!(
        downstream_parent, traceparent,
        "the hop is a span of its own"
    );
    assert_eq!(get("x-request-id").as_deref(), Some("req-42"));
    assert_eq!(
        get("x-b3-traceid").as_deref(),
        Some("80f198ee56343ba864fe8b2a57d3eff7")
    );
    assert_eq!(get("x-b3-sampled").as_deref(), Some("1"));
    front.stop().await.expect("drain");
    echo.stop().await.expect("drain");
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to /metrics");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .expect("request");
    let mut body = String::new();
    stream.read_to_string(&mut body).await.expect("response");
    body
}

#[tokio::test]
async fn metrics_count_calls_by_method_and_code() {
    let metrics = MetricsServer::bind(([127, 0, 0, 1], 0).into())
        .await
        .expect("metrics port");
    let metrics_addr = metrics.local_addr().expect("address");
    let shutdown = crowdcrunch_runtime::Shutdown::new();
    let metrics_task = tokio::spawn(metrics.serve(shutdown.clone()));
    let server = TestServer::start(definition(Probe::default(), Readiness::always())).await;
    let channel = server.channel().await;
    call(channel.clone(), "Echo", ProtoDuration::default(), None)
        .await
        .expect("echo");
    let status = call(channel.clone(), "Nope", ProtoDuration::default(), None)
        .await
        .expect_err("unknown method");
    assert_eq!(status.code(), Code::Unimplemented);
    // A stream the client leaves after its first message: measured apart from unary latency.
    let mut watch = HealthClient::new(channel)
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch")
        .into_inner();
    assert_eq!(next_status(&mut watch).await, ServingStatus::Serving);
    drop(watch);
    let health = "grpc.health.v1.Health";
    let left = [
        ("service", health),
        ("method", "Watch"),
        ("code", "CANCELLED"),
        ("rpc_type", "server_stream"),
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while crowdcrunch_runtime::metrics::sample_sum("grpc_server_requests_total", &left) < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the watch never ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let text = scrape(metrics_addr).await;
    assert!(text.contains("200 OK"), "{text}");
    for line in [
        format!(
            r#"grpc_server_requests_total{{service="{PROBE}",method="Echo",code="OK",rpc_type="unary"}}"#
        ),
        format!(
            r#"grpc_server_requests_total{{service="{PROBE}",method="Nope",code="UNIMPLEMENTED",rpc_type="unary"}}"#
        ),
        format!(
            r#"grpc_server_request_duration_seconds_bucket{{service="{PROBE}",method="Echo",code="OK",le="0.005"}}"#
        ),
        format!(r#"grpc_server_stream_duration_seconds_count{{service="{health}",method="Watch""#),
    ] {
        assert!(text.contains(&line), "missing {line} in\n{text}");
    }
    assert!(
        !text.contains(&format!(
            r#"grpc_server_request_duration_seconds_count{{service="{health}",method="Watch""#
        )),
        "a stream is not a slow unary call:\n{text}"
    );
    server.stop().await.expect("drain");
    shutdown.trigger();
    metrics_task
        .await
        .expect("task")
        .expect("metrics server stops");
}

/// The code, `ErrorInfo` reason and metadata of a refused call.
fn refusal(status: &Status) -> (Code, String, std::collections::HashMap<String, String>) {
    use tonic_types::StatusExt as _;
    let info = status.get_details_error_info().expect("an ErrorInfo");
    assert_eq!(info.domain, "auth.crowdcrunch.dev", "{}", status.message());
    (status.code(), info.reason, info.metadata)
}

/// Who `Whoami` says called it, as the handler's `Caller` has it.
async fn whoami(channel: GrpcChannel, authorization: Option<&str>) -> Result<String, Status> {
    let bearer = authorization.map(|token| format!("Bearer {token}"));
    let metadata: Vec<(&'static str, &str)> = bearer
        .as_deref()
        .map(|value| vec![("authorization", value)])
        .unwrap_or_default();
    let response = call(channel, "Whoami", seconds(0), Some(&metadata)).await?;
    Ok(response
        .metadata()
        .get("x-caller")
        .expect("the caller")
        .to_str()
        .expect("ASCII")
        .to_owned())
}

#[tokio::test]
async fn admission_judges_every_call_by_its_rule_and_gives_the_handler_its_caller() {
    use crowdcrunch_runtime::auth::Grant;
    use crowdcrunch_runtime::testing::token;

    let server = TestServer::start(definition(Probe::default(), Readiness::always())).await;
    let anonymous = server.anonymous_channel().await;

    let health = HealthClient::new(anonymous.clone())
        .check(HealthCheckRequest::default())
        .await
        .expect("health is open to anyone");
    assert_eq!(health.into_inner().status(), ServingStatus::Serving);
    let open = call(anonymous.clone(), "Sleep", seconds(0), None).await;
    assert!(open.is_ok(), "an RPC open to anyone refused: {open:?}");

    let unknown = call(anonymous.clone(), "Unknown", seconds(0), None)
        .await
        .expect_err("an RPC without a rule is refused");
    assert_eq!(unknown.code(), Code::Unimplemented);

    let no_token = whoami(anonymous.clone(), None).await.expect_err("refused");
    let (code, reason, _) = refusal(&no_token);
    assert_eq!(
        (code, reason.as_str()),
        (Code::Unauthenticated, "UNAUTHENTICATED")
    );

    let bad = call(
        anonymous.clone(),
        "Sleep",
        seconds(0),
        Some(&[("authorization", "Bearer not.a.token")]),
    )
    .await
    .expect_err("a bad token is refused even where anyone may call");
    let (code, reason, _) = refusal(&bad);
    assert_eq!(
        (code, reason.as_str()),
        (Code::Unauthenticated, "MALFORMED_TOKEN")
    );

    let customer = token(&Grant::Customer("cus_1".to_owned()));
    let forbidden = whoami(anonymous.clone(), Some(&customer))
        .await
        .expect_err("a customer on a staff RPC is refused");
    let (code, reason, metadata) = refusal(&forbidden);
    assert_eq!(
        (code, reason.as_str()),
        (Code::PermissionDenied, "PERMISSION_DENIED")
    );
    assert_eq!(
        metadata.get("rpc").map(String::as_str),
        Some("crowdcrunch.test.Probe.Whoami")
    );
    assert_eq!(metadata.get("required").map(String::as_str), Some("staff"));

    let stranger = token(&Grant::Service("shipping".to_owned()));
    let (code, _, _) = refusal(
        &whoami(anonymous.clone(), Some(&stranger))
            .await
            .expect_err("a peer the rule does not name is refused"),
    );
    assert_eq!(code, Code::PermissionDenied);

    assert_eq!(
        whoami(server.channel().await, None).await.expect("staff"),
        "staff test-staff"
    );
    assert_eq!(
        whoami(server.channel_as_peer("billing").await, None)
            .await
            .expect("a named peer"),
        "service billing"
    );
    server.stop().await.expect("drain");
}

#[tokio::test]
async fn a_peer_is_named_by_its_mtls_client_certificate() {
    let pki = pki_with_client("billing");
    let mut settings = local_settings();
    settings.tls = Some(TlsSettings {
        cert_pem: pki.server.0.clone(),
        key_pem: pki.server.1.clone(),
        client_ca_pem: Some(pki.ca.clone()),
    });
    let server =
        TestServer::spawn(settings, definition(Probe::default(), Readiness::always())).await;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca))
        .domain_name("localhost")
        .identity(Identity::from_pem(&pki.client.0, &pki.client.1));
    let channel = Endpoint::from_shared(format!("https://localhost:{}", server.addr.port()))
        .expect("url")
        .tls_config(tls)
        .expect("client TLS")
        .connect()
        .await
        .expect("connect");
    let channel = tower::Layer::layer(&crowdcrunch_runtime::context::PropagateLayer, channel);
    assert_eq!(
        whoami(channel, None)
            .await
            .expect("the certificate names billing"),
        "service billing"
    );
    server.stop().await.expect("drain");
}

#[tokio::test]
async fn istio_client_cert_header_names_a_peer_only_where_the_mesh_is_trusted() {
    use crowdcrunch_runtime::access::{AccessRules, Gatekeeper};
    use crowdcrunch_runtime::auth::{MeshIdentity, Verifier};
    use crowdcrunch_runtime::testing::issuer;

    let xfcc = "By=spiffe://cluster.local/ns/shop/sa/crowdcrunch-probe;Hash=00;\
                URI=spiffe://cluster.local/ns/shop/sa/crowdcrunch-billing";
    let untrusting = TestServer::start(definition(Probe::default(), Readiness::always())).await;
    let forged = call(
        untrusting.anonymous_channel().await,
        "Whoami",
        seconds(0),
        Some(&[("x-forwarded-client-cert", xfcc)]),
    )
    .await
    .expect_err("outside a mesh the header is anyone's to forge");
    assert_eq!(forged.code(), Code::Unauthenticated);

    let mut auth = issuer().settings();
    auth.mesh_identity = Some(MeshIdentity {
        account_prefix: "crowdcrunch-".to_owned(),
    });
    let rules = AccessRules::from_descriptor_set(probe_descriptors()).expect("rules");
    let gatekeeper = Gatekeeper::new(rules, Verifier::start(auth).expect("a verifier"));
    let trusting = TestServer::spawn_admitting(
        local_settings(),
        gatekeeper,
        definition(Probe::default(), Readiness::always()),
    )
    .await;
    let response = call(
        trusting.anonymous_channel().await,
        "Whoami",
        seconds(0),
        Some(&[("x-forwarded-client-cert", xfcc)]),
    )
    .await
    .expect("the mesh names billing");
    assert_eq!(
        response
            .metadata()
            .get("x-caller")
            .map(|value| value.to_str().expect("ASCII")),
        Some("service billing")
    );
    untrusting.stop().await.expect("drain");
    trusting.stop().await.expect("drain");
}

/// Issue 14 §7: a body that is not valid protobuf is INVALID_ARGUMENT, on the standard services
/// every server mounts too (they decode with tonic's `ProstCodec`, which says INTERNAL), and the
/// metrics count the code the client received. (tonic-reflection's bidi `ServerReflectionInfo`
/// reads its requests in its handler and ends the stream with OK on one that does not decode:
/// no status to rewrite, so it is not a case here.)
#[tokio::test]
async fn a_body_that_is_not_protobuf_is_invalid_argument_on_the_standard_services() {
    // The process's recorder, installed before the first call is counted.
    let counted = |method| {
        crowdcrunch_runtime::metrics::sample_sum(
            "grpc_server_requests_total",
            &[
                ("service", "grpc.health.v1.Health"),
                ("method", method),
                ("code", "INVALID_ARGUMENT"),
            ],
        )
    };
    let before = [counted("Check"), counted("Watch")];
    let server = TestServer::start(definition(Probe::default(), Readiness::always())).await;
    // A varint that never ends.
    const GARBAGE: &[u8] = &[0xff, 0xff, 0xff];
    for (method, before) in ["Check", "Watch"].into_iter().zip(before) {
        let path = format!("/grpc.health.v1.Health/{method}");
        let status = call_with_raw_body(server.channel().await, &path, GARBAGE.to_vec())
            .await
            .expect_err("garbage is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{path}: {status:?}");
        assert!(
            status
                .message()
                .starts_with("failed to decode Protobuf message"),
            "{path}: {status:?}"
        );
        assert_eq!(counted(method), before + 1.0, "{path}");
    }

    // A valid request is still answered.
    call_with_raw_body(
        server.channel().await,
        "/grpc.health.v1.Health/Check",
        Vec::new(),
    )
    .await
    .expect("an empty HealthCheckRequest is valid");
    let serving = HealthClient::new(server.channel().await)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("a valid check")
        .into_inner();
    assert_eq!(serving.status(), ServingStatus::Serving);
    server.stop().await.expect("drain");
}

/// Libraries' own trace and debug spans and events (h2 and hyper write them per frame and per
/// stream) are never built unless a log filter asks for them, while the spans the system exports
/// are. A layer without a filter once made every callsite "always" enabled, so each one was built
/// and handed to the registry on every call.
#[test]
fn library_trace_spans_and_events_are_not_built_unless_asked_for() {
    crowdcrunch_runtime::telemetry::init_for_tests();
    assert!(
        tracing::trace_span!(target: "h2::proto::streams", "stream").is_disabled(),
        "a library's trace span is built"
    );
    assert!(
        !tracing::enabled!(target: "hyper::proto::h1", tracing::Level::DEBUG),
        "a library's debug event is enabled"
    );
    assert!(
        tracing::level_filters::LevelFilter::current() <= tracing::level_filters::LevelFilter::INFO,
        "the global level hint lets {} through",
        tracing::level_filters::LevelFilter::current()
    );
    assert!(
        !tracing::info_span!("grpc", request_id = "req-1").is_disabled(),
        "the spans the system exports are still built"
    );
}
