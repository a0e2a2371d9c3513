//! The dashboard and the alerts, proven against a real Prometheus (Debian's, which `.ci/run`
//! installs into `.tools/bin`): every service and the edge run as `crowdcrunch serve` processes,
//! Prometheus scrapes them every second with the chart's rendered recording rules and alerts
//! loaded, and a shop's traffic runs through the edge: ordinary orders, declined cards, orders
//! for more than is in stock, unknown ids, bad input, and a subscriber who leaves. Then a backend
//! is stopped. Every panel of `chart/dashboards/*.json` and every rule is evaluated through
//! Prometheus's HTTP API: none may come back empty, client mistakes must leave availability at
//! 100% and every alert quiet, and the outage must move availability and fire the edge's
//! availability alert and the backend alert's condition.
//!
//! Without `prometheus` or `helm` (on `PATH` or in `<repo>/.tools/bin`) the test prints one line
//! and passes, so `cargo test` works on a fresh machine; `.ci/run` sets
//! `CROWDCRUNCH_REQUIRE_TOOLS=1`, under which a missing tool fails it.

#[expect(
    dead_code,
    reason = "this test uses a part of the shared support module"
)]
mod support;

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crowdcrunch_runtime::auth::Grant;
use crowdcrunch_runtime::testing::{reserved_addr, token};
use futures::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use serde_json::{Value, json};
use support::{Process, binary};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

/// The namespace label Prometheus gives every target, as Kubernetes service discovery would.
const NAMESPACE: &str = "observed";

/// The gRPC codes that are server faults, as the dashboard and the alerts count them.
const FAULTS: &str = "UNKNOWN|INTERNAL|UNAVAILABLE|DATA_LOSS|DEADLINE_EXCEEDED|UNIMPLEMENTED";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

/// `name` on `PATH` or in `<repo>/.tools/bin`.
fn find_tool(name: &str) -> Option<PathBuf> {
    let local = repo_root().join(".tools/bin").join(name);
    if local.is_file() {
        return Some(local);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// Prometheus and helm, or `None` (after one printed line) when either is missing and the tools
/// are not required.
fn tools() -> Option<(PathBuf, PathBuf)> {
    match (find_tool("prometheus"), find_tool("helm")) {
        (Some(prometheus), Some(helm)) => Some((prometheus, helm)),
        _ => {
            assert!(
                std::env::var_os("CROWDCRUNCH_REQUIRE_TOOLS").is_none(),
                "prometheus and helm are required (.ci/install-prometheus, .ci/chart-check)"
            );
            // Straight to stderr, past the test harness's capture, so it is seen.
            let _ = writeln!(
                std::io::stderr(),
                "skipping the Prometheus check: prometheus or helm not found (run .ci/install-prometheus and .ci/chart-check)"
            );
            None
        }
    }
}

/// The rule groups of the chart's PrometheusRule, rendered with the defaults, as a Prometheus
/// rules file.
fn render_rules(helm: &Path, into: &Path) -> serde_norway::Value {
    let root = repo_root();
    let output = Command::new(helm)
        .args(["template", "release"])
        .arg(root.join("chart"))
        .arg("-f")
        .arg(root.join("chart/ci/keycloak-values.yaml"))
        .args([
            "--api-versions",
            "monitoring.coreos.com/v1/PrometheusRule",
            "--show-only",
            "templates/prometheusrule.yaml",
        ])
        .output()
        .expect("run helm template");
    assert!(output.status.success(), "{output:?}");
    let rule: serde_norway::Value =
        serde_norway::from_slice(&output.stdout).expect("a PrometheusRule");
    let spec = rule["spec"].clone();
    std::fs::write(
        into,
        serde_norway::to_string(&spec).expect("the rules as YAML"),
    )
    .expect("write the rules");
    spec
}

/// Every service and the edge as `crowdcrunch serve` processes on SQLite, each with its metrics
/// port.
struct Cluster {
    processes: HashMap<&'static str, Process>,
    metrics: Vec<(&'static str, SocketAddr)>,
    edge: SocketAddr,
}

impl Cluster {
    fn start(data_dir: &Path) -> Self {
        let services: Vec<&'static str> = crowdcrunch::roster::SERVICES
            .iter()
            .map(|service| service.name)
            .collect();
        let addrs: HashMap<&'static str, SocketAddr> = services
            .iter()
            .map(|service| (*service, reserved_addr()))
            .collect();
        let upstreams = |command: &mut Command, except: &str| {
            for upstream in services.iter().filter(|upstream| **upstream != except) {
                command
                    .arg(format!("--{upstream}-endpoints"))
                    .arg(format!("http://{}", addrs[upstream]));
            }
        };
        let mut processes = HashMap::new();
        let mut metrics = Vec::new();
        for service in &services {
            let metrics_addr = reserved_addr();
            let token_file = data_dir.join(format!("{service}.token"));
            std::fs::write(&token_file, token(&Grant::Service((*service).to_owned())))
                .expect("write the service's token");
            let mut command = binary();
            command
                .args(["serve", service, "--listen"])
                .arg(addrs[service].to_string())
                .arg("--metrics-listen")
                .arg(metrics_addr.to_string())
                .arg("--data-dir")
                .arg(data_dir)
                .arg("--service-token-file")
                .arg(&token_file)
                .envs(support::auth_settings())
                .envs(support::page_token_key())
                .env("RUST_LOG", "warn,crowdcrunch=info");
            upstreams(&mut command, service);
            let mut process = Process::start(command);
            process.wait_for_line("serving gRPC");
            processes.insert(*service, process);
            metrics.push((*service, metrics_addr));
        }
        let edge = reserved_addr();
        let edge_metrics = reserved_addr();
        let mut command = binary();
        command
            .args(["serve", "edge", "--listen"])
            .arg(edge.to_string())
            .arg("--metrics-listen")
            .arg(edge_metrics.to_string())
            .envs(support::auth_settings())
            .env("RUST_LOG", "warn,crowdcrunch=info");
        upstreams(&mut command, "edge");
        let mut process = Process::start(command);
        process.wait_for_line("serving HTTP");
        processes.insert("edge", process);
        metrics.push(("edge", edge_metrics));
        Self {
            processes,
            metrics,
            edge,
        }
    }

    /// The JSON lines every process printed since the last look.
    fn take_lines(&mut self) -> Vec<(&'static str, Value)> {
        let mut lines = Vec::new();
        for (name, process) in &mut self.processes {
            for line in process.take_lines() {
                if let Ok(json) = serde_json::from_str::<Value>(&line) {
                    lines.push((*name, json));
                }
            }
        }
        lines
    }

    /// Stops `service` the hard way: its endpoints vanish.
    fn kill(&mut self, service: &str) {
        // `Process` kills (SIGKILL) on drop and reaps.
        drop(self.processes.remove(service));
    }
}

/// Percent-encodes `text` for a query string.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

fn http_client() -> HttpClient {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

async fn send(client: &HttpClient, request: http::Request<Full<Bytes>>) -> (u16, Bytes) {
    let response = client.request(request).await.expect("an answer");
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    (status, body)
}

/// A real Prometheus scraping the cluster every second, with the chart's rules.
struct Prometheus {
    process: std::process::Child,
    addr: SocketAddr,
    client: HttpClient,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Prometheus {
    async fn start(
        binary: &Path,
        dir: &Path,
        targets: &[(&'static str, SocketAddr)],
        rules: &Path,
    ) -> Self {
        let scrape_configs: Vec<serde_json::Value> = targets
            .iter()
            .map(|(job, addr)| {
                json!({
                    "job_name": job,
                    "static_configs": [{"targets": [addr.to_string()], "labels": {"namespace": NAMESPACE}}],
                })
            })
            .collect();
        // JSON is YAML.
        let config = json!({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [rules.display().to_string()],
            "scrape_configs": scrape_configs,
        });
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config.to_string()).expect("write prometheus.yml");
        let addr = reserved_addr();
        let process = Command::new(binary)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start prometheus");
        let prometheus = Self {
            process,
            addr,
            client: http_client(),
        };
        let deadline = Instant::now() + support::PATIENCE;
        loop {
            let request = http::Request::get(format!("http://{addr}/-/ready"))
                .body(Full::default())
                .expect("a request");
            if let Ok(response) = prometheus.client.request(request).await
                && response.status() == 200
            {
                return prometheus;
            }
            assert!(Instant::now() < deadline, "prometheus never got ready");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The instant vector of `query` now: each series' labels and value.
    async fn query(&self, query: &str) -> Vec<(HashMap<String, String>, f64)> {
        let url = format!("http://{}/api/v1/query?query={}", self.addr, encode(query));
        let request = http::Request::get(url)
            .body(Full::default())
            .expect("a request");
        let (status, body) = send(&self.client, request).await;
        let answer: Value = serde_json::from_slice(&body).expect("JSON from prometheus");
        assert_eq!(status, 200, "{query}: {answer}");
        answer["data"]["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{query}: not a vector: {answer}"))
            .iter()
            .map(|series| {
                let labels = series["metric"]
                    .as_object()
                    .expect("labels")
                    .iter()
                    .map(|(key, value)| (key.clone(), value.as_str().unwrap_or("").to_owned()))
                    .collect();
                let value = series["value"][1]
                    .as_str()
                    .and_then(|value| value.parse().ok())
                    .expect("a value");
                (labels, value)
            })
            .collect()
    }

    /// Waits for two more scrapes and rule evaluations.
    async fn settle(&self) {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

/// A shop's clients at the edge: staff and a customer, with their tokens.
struct Shop {
    edge: SocketAddr,
    client: HttpClient,
    staff: String,
    customer: String,
    customer_id: String,
}

/// How a GraphQL request came back.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Data,
    Errors,
}

impl Shop {
    async fn open(edge: SocketAddr) -> Self {
        let client = http_client();
        let staff = format!("Bearer {}", token(&Grant::Staff("observer".to_owned())));
        let mut shop = Self {
            edge,
            client,
            staff,
            customer: String::new(),
            customer_id: String::new(),
        };
        let created = shop
            .graphql(
                &shop.staff.clone(),
                "mutation CreateCustomer($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }",
                json!({"input": {"customer": {"email": "watched@example.com", "displayName": "Watched"}}}),
            )
            .await;
        shop.customer_id = created["data"]["createCustomer"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("a customer: {created}"))
            .to_owned();
        shop.customer = format!(
            "Bearer {}",
            token(&Grant::Customer(shop.customer_id.clone()))
        );
        for (sku, stock) in [("LAMP", 100_000), ("RARE", 1)] {
            let created = shop
                .graphql(
                    &shop.staff.clone(),
                    "mutation CreateProduct($input: CreateProductInput!) { createProduct(input: $input) { sku } }",
                    json!({"input": {
                        "product": {"sku": sku, "title": sku, "active": true,
                                    "price": {"currencyCode": "USD", "minorUnits": 1500}},
                        "initialStock": stock
                    }}),
                )
                .await;
            assert!(created["errors"].is_null(), "{created}");
        }
        shop
    }

    async fn graphql(&self, authorization: &str, query: &str, variables: Value) -> Value {
        let request = http::Request::post(format!("http://{}/graphql", self.edge))
            .header("content-type", "application/json")
            .header("authorization", authorization)
            .body(Full::new(Bytes::from(
                serde_json::to_vec(&json!({"query": query, "variables": variables})).expect("JSON"),
            )))
            .expect("a request");
        let (_, body) = send(&self.client, request).await;
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| json!({"errors": [{"message": "not JSON"}]}))
    }

    async fn answer(&self, query: &str, variables: Value) -> Answer {
        let response = self.graphql(&self.customer.clone(), query, variables).await;
        if response["errors"].is_null() {
            Answer::Data
        } else {
            Answer::Errors
        }
    }

    async fn browse(&self) -> Answer {
        self.answer(
            "query Products { products(first: 10) { edges { node { sku title } } } }",
            json!({}),
        )
        .await
    }

    async fn place(&self, sku: &str, quantity: i32, card: &str) -> Answer {
        self.answer(
            "mutation PlaceOrder($input: PlaceOrderInput!) { placeOrder(input: $input) { id status } }",
            json!({"input": {
                "customerId": self.customer_id,
                "requestId": uuid_like(),
                "lines": [{"sku": sku, "quantity": quantity}],
                "card": {"number": card, "expMonth": 12, "expYear": 2031, "cvc": "123"},
                "shippingAddress": {
                    "recipient": "Ada Lovelace", "line1": "12 St James's Square", "city": "London",
                    "postalCode": "SW1Y 4JH", "countryCode": "GB"
                }
            }}),
        )
        .await
    }

    async fn unknown_order(&self) -> Answer {
        self.answer(
            "query Order($id: ID!) { order(id: $id) { id status } }",
            json!({"id": "01a0a0a0-0000-7000-8000-000000000000"}),
        )
        .await
    }

    /// Subscribes to the customer's orders' events over graphql-transport-ws, takes the first
    /// acknowledgement, and leaves.
    async fn subscribe_and_leave(&self) {
        let mut request = format!("ws://{}/graphql", self.edge)
            .into_client_request()
            .expect("a WebSocket request");
        request.headers_mut().insert(
            "sec-websocket-protocol",
            http::HeaderValue::from_static("graphql-transport-ws"),
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("the upgrade");
        let init = json!({"type": "connection_init", "payload": {"authorization": self.customer}});
        socket
            .send(Message::text(init.to_string()))
            .await
            .expect("connection_init");
        let _ack = socket.next().await;
        let subscribe = json!({"id": "1", "type": "subscribe", "payload": {
            "query": "subscription Events($subject: String) { events(subject: $subject) { sequence } }",
            "variables": {"subject": self.customer_id},
        }});
        socket
            .send(Message::text(subscribe.to_string()))
            .await
            .expect("subscribe");
        let _ = tokio::time::timeout(Duration::from_millis(500), socket.next()).await;
        drop(socket);
    }
}

/// A fresh request id (time and a counter: unique within the test).
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "observed-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The card the simulated network approves, and the one it declines.
const APPROVED: &str = "4242424242424242";
const DECLINED: &str = "4000000000000002";

/// Every target expression of every panel of the chart's dashboards, with Grafana's variables
/// set: every namespace, every service, a one-minute rate window.
fn panel_queries() -> Vec<(String, String)> {
    let dir = repo_root().join("chart/dashboards");
    let mut queries = Vec::new();
    for entry in std::fs::read_dir(dir).expect("the dashboards") {
        let path = entry.expect("an entry").path();
        let dashboard: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("a dashboard")).expect("JSON");
        for panel in dashboard["panels"].as_array().expect("panels") {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"]
                    .as_str()
                    .expect("a target expression")
                    .replace("$namespace", ".*")
                    .replace("$service", ".*")
                    .replace("$__rate_interval", "1m");
                let title = panel["title"].as_str().unwrap_or("?").to_owned();
                queries.push((title, expr));
            }
        }
    }
    assert!(queries.len() > 20, "{queries:?}");
    queries
}

/// Every recording rule and every alert of the rendered rules.
fn rules_of(spec: &serde_norway::Value) -> (Vec<String>, HashMap<String, String>) {
    let mut records = Vec::new();
    let mut alerts = HashMap::new();
    for group in spec["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let expr = rule["expr"].as_str().expect("an expression").to_owned();
            if let Some(record) = rule["record"].as_str() {
                records.push(record.to_owned());
            }
            if let Some(alert) = rule["alert"].as_str() {
                alerts.insert(alert.to_owned(), expr);
            }
        }
    }
    (records, alerts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_the_alerts_tell_client_mistakes_from_an_outage() {
    let Some((prometheus_binary, helm)) = tools() else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temp dir");
    let rules_file = dir.path().join("rules.yaml");
    let spec = render_rules(&helm, &rules_file);
    let (records, alerts) = rules_of(&spec);
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).expect("the data dir");
    let mut cluster = tokio::task::block_in_place(|| Cluster::start(&data_dir));
    let prometheus = Prometheus::start(
        &prometheus_binary,
        dir.path(),
        &cluster.metrics,
        &rules_file,
    )
    .await;
    let shop = Shop::open(cluster.edge).await;
    let _started = cluster.take_lines();

    // A shop's day: everything the clients get wrong is an answer, not a fault.
    let until = Instant::now() + Duration::from_secs(12);
    while Instant::now() < until {
        assert_eq!(shop.browse().await, Answer::Data);
        assert_eq!(shop.place("LAMP", 1, APPROVED).await, Answer::Data);
        assert_eq!(shop.place("LAMP", 1, DECLINED).await, Answer::Data);
        assert_eq!(shop.place("RARE", 5, APPROVED).await, Answer::Data);
        assert_eq!(shop.place("LAMP", 0, APPROVED).await, Answer::Errors);
        assert_eq!(shop.unknown_order().await, Answer::Errors);
        shop.subscribe_and_leave().await;
    }
    prometheus.settle().await;

    // No info line per request on the hot paths; a line written inside a request carries its
    // trace and span ids.
    let lines = cluster.take_lines();
    let per_request: Vec<_> = lines
        .iter()
        .filter(|(_, line)| line["level"] == "INFO")
        .collect();
    assert!(
        per_request.is_empty(),
        "info lines per request: {per_request:?}"
    );
    for (process, line) in &lines {
        if line.get("span").is_some() {
            assert!(
                line["trace_id"].as_str().is_some_and(|id| id.len() == 32)
                    && line["span_id"].as_str().is_some_and(|id| id.len() == 16),
                "{process}: a line inside a request without its trace: {line}"
            );
        }
    }

    let availability = format!(
        r#"1 - ((sum by (service) (rate(grpc_server_requests_total{{code=~"{FAULTS}"}}[1m])) or (sum by (service) (rate(grpc_server_requests_total[1m])) * 0)) / sum by (service) (rate(grpc_server_requests_total[1m])))"#
    );
    let before = prometheus.query(&availability).await;
    for service in ["customers", "inventory", "orders", "payments", "ledger"] {
        assert!(
            before.iter().any(|(labels, _)| labels
                .get("service")
                .is_some_and(|name| name.contains(service))),
            "{service} answered: {before:?}"
        );
    }
    for (labels, value) in &before {
        assert!(
            (value - 1.0).abs() < 1e-9,
            "client mistakes moved availability of {labels:?}: {value}"
        );
    }
    let client_errors = prometheus
        .query(r#"sum(rate(graphql_requests_total{outcome="client_error"}[1m]))"#)
        .await;
    assert!(
        client_errors.first().is_some_and(|(_, rate)| *rate > 0.0),
        "the clients' mistakes are counted: {client_errors:?}"
    );
    // Every alert's expression is evaluated (Prometheus refuses one that does not parse), and
    // none holds on a day of client mistakes.
    assert!(
        alerts.len() >= 12,
        "the chart's alerts: {:?}",
        alerts.keys()
    );
    for (alert, expr) in &alerts {
        let firing = prometheus.query(expr).await;
        assert!(
            firing.is_empty(),
            "{alert} fires on client mistakes: {firing:?}"
        );
    }

    // An outage: inventory is gone.
    cluster.kill("inventory");
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        let _ = shop.browse().await;
        let _ = shop.place("LAMP", 1, APPROVED).await;
    }
    prometheus.settle().await;
    let failures = cluster
        .take_lines()
        .into_iter()
        .filter(|(process, line)| *process == "edge" && line["message"] == "backend call failed")
        .count();
    assert!(
        (1..=4).contains(&failures),
        "ten seconds of an outage, every request failing: {failures} warnings from the edge"
    );

    let after = prometheus.query(&availability).await;
    assert!(
        after.iter().any(|(labels, value)| labels
            .get("service")
            .is_some_and(|service| service.contains("orders"))
            && *value < 1.0),
        "the outage moved no service's availability: {after:?}"
    );
    let edge_availability = prometheus
        .query(r#"1 - (sum(rate(graphql_requests_total{outcome="server_error"}[1m])) / sum(rate(graphql_requests_total[1m])))"#)
        .await;
    assert!(
        edge_availability
            .first()
            .is_some_and(|(_, value)| *value < 1.0),
        "the outage moved the edge's availability: {edge_availability:?}"
    );
    for alert in [
        "CrowdCrunchEdgeAvailabilityBudgetBurn",
        "CrowdCrunchBackendWithoutHealthyEndpoints",
        "CrowdCrunchServiceAvailabilityBudgetBurn",
    ] {
        let firing = prometheus.query(&alerts[alert]).await;
        assert!(
            !firing.is_empty(),
            "{alert}'s condition does not hold during the outage"
        );
    }
    let down = prometheus
        .query(&alerts["CrowdCrunchBackendWithoutHealthyEndpoints"])
        .await;
    assert!(
        down.iter()
            .all(|(labels, _)| labels.get("backend").map(String::as_str) == Some("inventory")),
        "only inventory is down: {down:?}"
    );

    // Nothing the operator looks at is empty.
    for (title, expr) in panel_queries() {
        let series = prometheus.query(&expr).await;
        assert!(!series.is_empty(), "panel {title:?} shows nothing: {expr}");
    }
    for record in &records {
        let series = prometheus.query(record).await;
        assert!(!series.is_empty(), "recording rule {record} has no data");
    }
    for metric in [
        "saga_oldest_pending_seconds",
        "outbox_oldest_undelivered_age_seconds",
        "outbox_backlog_events",
        "edge_backend_up",
        "ledger_watcher_lag_seconds",
    ] {
        let series = prometheus.query(metric).await;
        assert!(
            !series.is_empty(),
            "an alert reads {metric}, which is missing"
        );
    }
    drop(prometheus);
    drop(cluster);
}
