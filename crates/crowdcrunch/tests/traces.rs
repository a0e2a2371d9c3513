//! Traces by the OpenTelemetry conventions (issue 15 §4), collected over OTLP as a collector
//! would: `crowdcrunch dev` exports to an OTLP/gRPC receiver in this test, one customer places an
//! order through the edge, and the spans of that placeOrder must carry the conventions: span
//! names `package.Service/Method`, `rpc.*` attributes and the status code on every gRPC span, a
//! client span for every call between services, the GraphQL operation on the edge's span, one
//! `service.name` per service although `dev` is one process, and outbox deliveries in traces of
//! their own linked to the trace that wrote the event. Direct gRPC calls show B3 extraction, a
//! client error without an error status and a server fault with one. Another run shows that
//! `OTEL_TRACES_SAMPLER` decides what is exported, and that a bad sampler stops the start.

#[expect(
    dead_code,
    reason = "this test uses a part of the shared support module"
)]
mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use serde_json::{Value, json};
use support::Process;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

/// One exported span, flattened with the `service.name` of its resource.
#[derive(Debug, Clone)]
struct Collected {
    service: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    kind: SpanKind,
    attributes: HashMap<String, String>,
    /// `(trace id, span id)` of each link.
    links: Vec<(String, String)>,
    error: bool,
}

impl Collected {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// The OTLP/gRPC receiver: every span exported to it.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Collected>>>);

impl Receiver {
    /// Serves OTLP on a free port of 127.0.0.1; its address.
    async fn start() -> (Self, SocketAddr) {
        let receiver = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the OTLP receiver");
        let addr = listener.local_addr().expect("an address");
        let service = TraceServiceServer::new(receiver.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming(listener)),
        );
        (receiver, addr)
    }

    fn spans(&self) -> Vec<Collected> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits (bounded) until the spans received satisfy `ready`; them.
    async fn wait_for(&self, what: &str, ready: impl Fn(&[Collected]) -> bool) -> Vec<Collected> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let spans = self.spans();
            if ready(&spans) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "never received {what}; spans:\n{}",
                describe(&spans)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn incoming(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    })
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut collected = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans
                .resource
                .map(|resource| attributes(&resource.attributes))
                .unwrap_or_default();
            let service = resource.get("service.name").cloned().unwrap_or_default();
            for span in resource_spans
                .scope_spans
                .into_iter()
                .flat_map(|scope| scope.spans)
            {
                collected.push(Collected {
                    service: service.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                    attributes: attributes(&span.attributes),
                    links: span
                        .links
                        .iter()
                        .map(|link| (hex(&link.trace_id), hex(&link.span_id)))
                        .collect(),
                    error: span
                        .status
                        .is_some_and(|status| status.code == StatusCode::Error as i32),
                    name: span.name,
                });
            }
        }
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(collected);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn attributes(pairs: &[KeyValue]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|pair| {
            let value = match pair.value.as_ref().and_then(|value| value.value.as_ref()) {
                Some(AnyValue::StringValue(text)) => text.clone(),
                Some(AnyValue::IntValue(number)) => number.to_string(),
                Some(AnyValue::BoolValue(flag)) => flag.to_string(),
                Some(AnyValue::DoubleValue(number)) => number.to_string(),
                _ => String::new(),
            };
            (pair.key.clone(), value)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn describe(spans: &[Collected]) -> String {
    spans
        .iter()
        .map(|span| {
            format!(
                "{} {} {:?} trace={} span={} parent={} error={} links={:?} {:?}",
                span.service,
                span.name,
                span.kind,
                span.trace_id,
                span.span_id,
                span.parent_span_id,
                span.error,
                span.links,
                span.attributes
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `crowdcrunch dev` exporting its traces to `otlp`, with the batch exporter flushing often.
fn dev_exporting(data_dir: &std::path::Path, otlp: SocketAddr) -> std::process::Command {
    let mut command = support::dev(data_dir);
    command
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}"))
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env_remove("OTEL_TRACES_SAMPLER")
        .env_remove("OTEL_TRACES_SAMPLER_ARG");
    command
}

struct Edge {
    addr: SocketAddr,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
}

impl Edge {
    fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            client: hyper_util::client::legacy::Client::builder(
                hyper_util::rt::TokioExecutor::new(),
            )
            .build_http(),
        }
    }

    /// The `data` of a GraphQL request that must succeed.
    async fn data(&self, authorization: &str, query: &str, variables: Value) -> Value {
        let body =
            serde_json::to_vec(&json!({"query": query, "variables": variables})).expect("json");
        let request = http::Request::post(format!("http://{}/graphql", self.addr))
            .header("content-type", "application/json")
            .header("accept", "application/graphql-response+json")
            .header("authorization", authorization)
            .body(Full::new(Bytes::from(body)))
            .expect("a request");
        let response = self
            .client
            .request(request)
            .await
            .expect("the edge answers");
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        let json: Value = serde_json::from_slice(&body).expect("JSON");
        assert!(json["errors"].is_null(), "{json}");
        json["data"].clone()
    }
}

const PLACE_ORDER: &str =
    "mutation PlaceOrder($input: PlaceOrderInput!) { placeOrder(input: $input) { id status } }";

/// The gRPC services of a placed order's saga, called by orders.
const SAGA_CALLS: [&str; 2] = [
    "crowdcrunch.inventory.v1.InventoryService/",
    "crowdcrunch.payments.v1.PaymentService/",
];

const B3_TRACE: &str = "463ac35c9f6413ad48485a3953bb6124";
const B3_PARENT: &str = "a2fb4a1d1a96d312";

#[tokio::test]
async fn one_place_order_is_traced_by_the_opentelemetry_conventions() {
    let (receiver, otlp) = Receiver::start().await;
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut process = Process::start(dev_exporting(data_dir.path(), otlp));
    // In the table's order.
    let orders = process.wait_for_table_addr("orders");
    let edge = Edge::new(process.wait_for_table_addr("edge"));
    process.wait_for_line("demo data seeded");
    let staff = format!(
        "Bearer {}",
        support::token(data_dir.path(), &["--staff", "traces-test"])
    );

    edge.data(
        &staff,
        "mutation($input: CreateProductInput!) { createProduct(input: $input) { sku } }",
        json!({"input": {
            "product": {"sku": "TRACE-MUG", "title": "Traced mug", "active": true,
                        "price": {"currencyCode": "USD", "minorUnits": 1200}},
            "initialStock": 5
        }}),
    )
    .await;
    let customer = edge
        .data(
            &staff,
            "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }",
            json!({"input": {"customer": {"email": "traced@example.com", "displayName": "Ada"}}}),
        )
        .await["createCustomer"]["id"]
        .as_str()
        .expect("a customer id")
        .to_owned();
    let as_customer = format!(
        "Bearer {}",
        support::token(data_dir.path(), &["--customer", &customer])
    );
    let placed = edge
        .data(
            &as_customer,
            PLACE_ORDER,
            json!({"input": {
                "customerId": customer,
                "lines": [{"sku": "TRACE-MUG", "quantity": 1}],
                "card": {"number": "4242424242424242", "expMonth": 12, "expYear": 2031, "cvc": "123"},
                "shippingAddress": {
                    "recipient": "Ada Lovelace", "line1": "12 St James's Square", "city": "London",
                    "postalCode": "SW1Y 4JH", "countryCode": "GB"
                }
            }}),
        )
        .await;
    assert!(placed["placeOrder"]["id"].is_string(), "{placed}");

    // Straight to orders' port, as Envoy would call it: B3 only, a client error and a fault.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{orders}"))
        .expect("a URL")
        .connect()
        .await
        .expect("connect to orders");
    let mut health = HealthClient::new(channel.clone());
    let mut with_b3 = tonic::Request::new(HealthCheckRequest::default());
    with_b3.metadata_mut().insert(
        "b3",
        format!("{B3_TRACE}-{B3_PARENT}-1").parse().expect("ASCII"),
    );
    health.check(with_b3).await.expect("orders is serving");
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.such.Service".to_owned(),
        })
        .await
        .expect_err("an unknown service");
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let mut raw = tonic::client::Grpc::new(channel);
    raw.ready().await.expect("ready");
    let unimplemented = raw
        .unary(
            tonic::Request::new(HealthCheckRequest::default()),
            http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/NoSuchMethod"),
            tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default(),
        )
        .await
        .expect_err("no such method");
    assert_eq!(unimplemented.code(), tonic::Code::Unimplemented);

    // The edge's span names the operation; its trace is the order's.
    let spans = receiver
        .wait_for("the edge's PlaceOrder span", |spans| {
            spans
                .iter()
                .any(|span| span.attribute("graphql.operation.name") == Some("PlaceOrder"))
        })
        .await;
    let edge_span = spans
        .iter()
        .find(|span| span.attribute("graphql.operation.name") == Some("PlaceOrder"))
        .expect("the edge's span");
    assert_eq!(edge_span.service, "crowdcrunch-edge", "{edge_span:?}");
    assert_eq!(edge_span.kind, SpanKind::Server, "{edge_span:?}");
    assert_eq!(edge_span.name, "mutation PlaceOrder", "{edge_span:?}");
    assert_eq!(
        edge_span.attribute("graphql.operation.type"),
        Some("mutation")
    );
    let trace = edge_span.trace_id.clone();

    // Wait for the saga's calls and every outbox delivery that carries the order's events.
    let spans = receiver
        .wait_for(
            "the order's whole trace and a delivery linked to it",
            |spans| {
                let saga_called = SAGA_CALLS.iter().all(|service| {
                    spans.iter().any(|span| {
                        span.trace_id == trace
                            && span.kind == SpanKind::Server
                            && span.name.starts_with(service)
                    })
                });
                let delivered = spans.iter().any(|span| {
                    span.name == "outbox.deliver"
                        && span.service == "crowdcrunch-orders"
                        && span.links.iter().any(|(linked, _)| *linked == trace)
                });
                // Every span of the order's trace is in, up to the edge's.
                let in_trace: Vec<&Collected> =
                    spans.iter().filter(|span| span.trace_id == trace).collect();
                let whole = in_trace.iter().all(|span| {
                    span.parent_span_id.is_empty()
                        || in_trace
                            .iter()
                            .any(|parent| parent.span_id == span.parent_span_id)
                });
                saga_called && delivered && whole
            },
        )
        .await;
    let in_trace: Vec<&Collected> = spans.iter().filter(|span| span.trace_id == trace).collect();
    let trace_text = describe(
        &in_trace
            .iter()
            .map(|span| (*span).clone())
            .collect::<Vec<_>>(),
    );

    // The edge's client span and orders' server span of PlaceOrder, one the other's parent.
    let method = "crowdcrunch.orders.v1.OrderService/PlaceOrder";
    let edge_call = in_trace
        .iter()
        .find(|span| span.name == method && span.kind == SpanKind::Client)
        .unwrap_or_else(|| panic!("no client span {method}:\n{trace_text}"));
    assert_eq!(edge_call.service, "crowdcrunch-edge");
    assert_eq!(edge_call.parent_span_id, edge_span.span_id);
    let served = in_trace
        .iter()
        .find(|span| span.name == method && span.kind == SpanKind::Server)
        .unwrap_or_else(|| panic!("no server span {method}:\n{trace_text}"));
    assert_eq!(served.service, "crowdcrunch-orders");
    assert_eq!(served.parent_span_id, edge_call.span_id);

    // Every gRPC span of the order's trace follows the conventions; none failed.
    let grpc: Vec<&&Collected> = in_trace
        .iter()
        .filter(|span| span.attribute("rpc.system") == Some("grpc"))
        .collect();
    assert!(grpc.len() >= 6, "{trace_text}");
    for span in &grpc {
        let (service, method) = span.name.split_once('/').expect("package.Service/Method");
        assert_eq!(span.attribute("rpc.service"), Some(service), "{span:?}");
        assert_eq!(span.attribute("rpc.method"), Some(method), "{span:?}");
        assert!(service.contains('.') && !method.is_empty(), "{span:?}");
        assert_eq!(
            span.attribute("rpc.grpc.status_code"),
            Some("0"),
            "{span:?}"
        );
        assert!(!span.error, "{span:?}");
        assert!(
            matches!(span.kind, SpanKind::Server | SpanKind::Client),
            "{span:?}"
        );
    }

    // The request id the edge minted travels on every hop, the saga's calls included.
    let request_id = served
        .attribute("request_id")
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| panic!("PlaceOrder has no request id: {served:?}"));
    for span in grpc.iter().filter(|span| span.kind == SpanKind::Server) {
        assert_eq!(span.attribute("request_id"), Some(request_id), "{span:?}");
    }

    // Each service-to-service call of the saga: orders' client span, the callee's server span
    // under it, each under its own service.name.
    for callee in SAGA_CALLS {
        let server = in_trace
            .iter()
            .find(|span| span.kind == SpanKind::Server && span.name.starts_with(callee))
            .unwrap_or_else(|| panic!("no server span of {callee}:\n{trace_text}"));
        let client = in_trace
            .iter()
            .find(|span| span.span_id == server.parent_span_id)
            .unwrap_or_else(|| panic!("no parent of {server:?}:\n{trace_text}"));
        assert_eq!(client.kind, SpanKind::Client, "{client:?}");
        assert_eq!(client.name, server.name);
        assert_eq!(client.service, "crowdcrunch-orders", "{client:?}");
        let package = callee.split('.').nth(1).expect("a package");
        assert_eq!(
            server.service,
            format!("crowdcrunch-{package}"),
            "{server:?}"
        );
    }

    // The outbox's delivery is a trace of its own, linked to the one that wrote the event.
    let delivery = spans
        .iter()
        .find(|span| {
            span.name == "outbox.deliver" && span.links.iter().any(|(linked, _)| *linked == trace)
        })
        .expect("a delivery");
    assert_ne!(delivery.trace_id, trace, "{delivery:?}");
    assert!(delivery.parent_span_id.is_empty(), "{delivery:?}");
    assert!(
        spans.iter().any(|span| span.trace_id == delivery.trace_id
            && span.parent_span_id == delivery.span_id
            && span.name == "crowdcrunch.ledger.v1.LedgerService/AppendEvents"
            && span.kind == SpanKind::Client),
        "the delivery's call to the ledger is in its trace:\n{}",
        describe(&spans)
    );

    // B3 context is continued; a client error has its code and no error status; a fault has both.
    let spans = receiver
        .wait_for("the direct health calls", |spans| {
            spans
                .iter()
                .filter(|span| span.name.starts_with("grpc.health.v1.Health/"))
                .filter(|span| span.service == "crowdcrunch-orders")
                .filter(|span| span.kind == SpanKind::Server)
                .filter(|span| {
                    span.trace_id == B3_TRACE
                        || matches!(span.attribute("rpc.grpc.status_code"), Some("5" | "12"))
                })
                .count()
                >= 3
        })
        .await;
    let health_server = |code: &str| {
        spans
            .iter()
            .find(|span| {
                span.service == "crowdcrunch-orders"
                    && span.kind == SpanKind::Server
                    && span.attribute("rpc.grpc.status_code") == Some(code)
                    && span.name.starts_with("grpc.health.v1.Health/")
            })
            .unwrap_or_else(|| panic!("no health span with code {code}"))
    };
    let b3 = spans
        .iter()
        .find(|span| span.trace_id == B3_TRACE)
        .expect("the B3 call's span");
    assert_eq!(b3.parent_span_id, B3_PARENT, "{b3:?}");
    assert_eq!(b3.name, "grpc.health.v1.Health/Check");
    let not_found = health_server("5");
    assert_eq!(not_found.name, "grpc.health.v1.Health/Check");
    assert!(
        !not_found.error,
        "a client error is no fault: {not_found:?}"
    );
    let fault = health_server("12");
    assert_eq!(fault.name, "grpc.health.v1.Health/NoSuchMethod");
    assert_eq!(fault.attribute("rpc.method"), Some("NoSuchMethod"));
    assert!(fault.error, "UNIMPLEMENTED is a fault: {fault:?}");

    let services: std::collections::BTreeSet<&str> =
        spans.iter().map(|span| span.service.as_str()).collect();
    for service in [
        "crowdcrunch-edge",
        "crowdcrunch-orders",
        "crowdcrunch-inventory",
        "crowdcrunch-payments",
        "crowdcrunch-ledger",
    ] {
        assert!(services.contains(service), "{services:?}");
    }
    process.terminate();
    let (status, _) = process.wait();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn the_sampler_decides_what_is_exported() {
    // A bad sampler or ratio stops the start with one line that names the variable.
    for (variable, value) in [
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
    ] {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut command = support::dev(data_dir.path());
        command.env(variable, value);
        let (status, lines) = Process::start(command).wait();
        assert!(!status.success(), "{lines:?}");
        let said = lines.join("\n");
        assert!(
            said.contains(value) && (said.contains(variable) || said.contains("sampler")),
            "{said}"
        );
    }

    // always_off: the same traffic as a traced run, and nothing reaches the collector, not even
    // when the process flushes its spans at exit.
    let (receiver, otlp) = Receiver::start().await;
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut command = dev_exporting(data_dir.path(), otlp);
    command.env("OTEL_TRACES_SAMPLER", "always_off");
    let mut process = Process::start(command);
    let orders = process.wait_for_table_addr("orders");
    process.wait_for_line("demo data seeded");
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{orders}"))
        .expect("a URL")
        .connect()
        .await
        .expect("connect to orders");
    let mut health = HealthClient::new(channel);
    for _ in 0..5 {
        health
            .check(HealthCheckRequest::default())
            .await
            .expect("orders is serving");
    }
    process.terminate();
    let (status, _) = process.wait();
    assert!(status.success(), "{status:?}");
    assert!(
        receiver.spans().is_empty(),
        "always_off exported:\n{}",
        describe(&receiver.spans())
    );
}
