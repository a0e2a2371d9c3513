//! Test support: the edge on port 0 over real backends, and a small HTTP client. The edge
//! verifies tokens of the runtime's test issuer (its JWKS served over real HTTP), as the backends
//! do; requests carry a staff token unless a test says otherwise.

#![expect(
    dead_code,
    reason = "each test binary includes this module and uses only part of it"
)]

use std::collections::HashMap;
use std::net::SocketAddr;

use crowdcrunch_edge::Gateway;
use crowdcrunch_runtime::Shutdown;
use crowdcrunch_runtime::auth::{Grant, Verifier};
use crowdcrunch_runtime::client::Endpoints;
use crowdcrunch_runtime::edge::EdgeSettings;
use crowdcrunch_runtime::http::HttpServer;
use crowdcrunch_runtime::testing::{TEST_STAFF, TestDatabase, TestServer, databases, issuer};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// A running edge and the backends behind it.
pub struct App {
    /// The edge's address.
    pub addr: SocketAddr,
    /// The edge.
    pub edge: Gateway,
    /// The backends, by name.
    pub backends: HashMap<String, TestServer>,
    shutdown: Shutdown,
    client: Client<HttpConnector, Full<Bytes>>,
    /// The databases of the backends, kept for as long as the app runs.
    pub databases: Vec<TestDatabase>,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: http::HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The Content-Type.
    pub fn content_type(&self) -> &str {
        self.headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }
}

/// The customers service (on SQLite) and the edge in front of it; `extra` names backends that
/// are configured but not running (their address refuses connections).
pub async fn spawn_app(settings: EdgeSettings, extra: &[&str]) -> App {
    let database = databases("customers").remove(0);
    let db = database.connect(&crowdcrunch_customers::MIGRATOR).await;
    // No relay runs: the customers' events stay in their outbox.
    let outbox = crowdcrunch_outbox::Outbox::open(&db, "customers")
        .await
        .expect("open the outbox");
    let customers = TestServer::start(crowdcrunch_customers::service(db, outbox)).await;
    let mut endpoints = HashMap::new();
    endpoints.insert(
        "customers".to_owned(),
        Endpoints::parse(&customers.url()).expect("endpoints"),
    );
    for name in extra {
        // A reserved port: nothing listens there.
        let addr = crowdcrunch_runtime::testing::reserved_addr();
        endpoints.insert(
            (*name).to_owned(),
            Endpoints::parse(&format!("http://{addr}")).expect("endpoints"),
        );
    }
    let mut backends = HashMap::new();
    backends.insert("customers".to_owned(), customers);
    let mut app = spawn_edge(settings, &endpoints, backends).await;
    app.databases.push(database);
    app
}

/// The edge in front of `endpoints`, verifying the runtime's test issuer's tokens.
pub async fn spawn_edge(
    settings: EdgeSettings,
    endpoints: &HashMap<String, Endpoints>,
    backends: HashMap<String, TestServer>,
) -> App {
    spawn_edge_verifying(settings, endpoints, backends, issuer().verifier()).await
}

/// The edge in front of `endpoints`, verifying tokens with `verifier`.
pub async fn spawn_edge_verifying(
    settings: EdgeSettings,
    endpoints: &HashMap<String, Endpoints>,
    backends: HashMap<String, TestServer>,
    verifier: Verifier,
) -> App {
    crowdcrunch_runtime::telemetry::init_for_tests();
    let edge = Gateway::new(settings, endpoints, None, verifier).expect("the edge builds");
    let shutdown = Shutdown::new();
    let server = HttpServer::bind(([127, 0, 0, 1], 0).into())
        .await
        .expect("bind the edge");
    let addr = server.local_addr();
    let router = crowdcrunch_edge::router(edge.clone(), shutdown.clone());
    let limits = crowdcrunch_runtime::http::ConnectionLimits::from(edge.settings());
    tokio::spawn(server.with_limits(limits).serve(
        router,
        shutdown.clone(),
        std::time::Duration::from_secs(5),
    ));
    App {
        addr,
        edge,
        backends,
        shutdown,
        client: Client::builder(TokioExecutor::new()).build_http(),
        databases: Vec::new(),
    }
}

impl App {
    /// Sends a request.
    pub async fn send(&self, request: http::Request<Full<Bytes>>) -> Answer {
        let response = self
            .client
            .request(request)
            .await
            .expect("the edge answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    /// POSTs `body` to `/graphql` with these headers, as staff unless they hold an
    /// `authorization`.
    pub async fn post(&self, body: &Value, headers: &[(&str, &str)]) -> Answer {
        let staff = staff_authorization();
        let mut headers = headers.to_vec();
        if !has_authorization(&headers) {
            headers.push(("authorization", &staff));
        }
        self.post_exactly(body, &headers).await
    }

    /// POSTs `body` to `/graphql` with these headers and no others (no token unless given).
    pub async fn post_exactly(&self, body: &Value, headers: &[(&str, &str)]) -> Answer {
        let mut request = http::Request::post(format!("http://{}/graphql", self.addr))
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(
            request
                .body(Full::new(Bytes::from(
                    serde_json::to_vec(body).expect("json"),
                )))
                .expect("request"),
        )
        .await
    }

    /// A GraphQL POST with `application/json`; the JSON response.
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        let answer = self
            .post(
                &serde_json::json!({"query": query, "variables": variables}),
                &[("accept", "application/json")],
            )
            .await;
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        answer.json()
    }

    /// GETs `path` with these headers, as staff unless they hold an `authorization`.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let staff = staff_authorization();
        let mut request = http::Request::get(format!("http://{}{path}", self.addr));
        if !has_authorization(headers) {
            request = request.header("authorization", staff);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(Full::new(Bytes::new())).expect("request"))
            .await
    }

    /// Stops the edge and the backends.
    pub async fn stop(self) {
        self.shutdown.trigger();
        for (_, backend) in self.backends {
            let _ = backend.stop().await;
        }
    }
}

/// Whether `headers` name an `authorization`.
fn has_authorization(headers: &[(&str, &str)]) -> bool {
    headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("authorization"))
}

/// The `authorization` value of the test staff member.
pub fn staff_authorization() -> String {
    bearer(&Grant::Staff(TEST_STAFF.to_owned()))
}

/// The `authorization` value of a test issuer's token for `grant`.
pub fn bearer(grant: &Grant) -> String {
    format!("Bearer {}", crowdcrunch_runtime::testing::token(grant))
}

/// The `extensions.code` of every error in `response`.
pub fn codes(response: &Value) -> Vec<String> {
    response["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|error| {
                    error["extensions"]["code"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn js_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js")
}

pub fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("crowdcrunch-edge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// `node`, with graphql-js installed in `tests/js` (by `npm ci` when missing); `None`, after one
/// line on stderr, when node is not installed.
pub fn node_with_graphql() -> Option<&'static str> {
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipping the graphql-js checks: node is not installed");
        return None;
    }
    if !js_dir().join("node_modules/graphql").exists() {
        let status = std::process::Command::new("npm")
            .args(["ci", "--silent", "--no-audit", "--no-fund"])
            .current_dir(js_dir())
            .status()
            .expect("run npm ci");
        assert!(status.success(), "npm ci in crates/edge/tests/js failed");
    }
    Some("node")
}

/// A graphql-transport-ws client.
pub struct WsClient {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl WsClient {
    /// Connects to the edge's `/graphql` and completes `connection_init`/`connection_ack` as
    /// staff.
    pub async fn connect(app: &App) -> Self {
        let mut client = Self::open(app).await;
        client
            .send(serde_json::json!({
                "type": "connection_init",
                "payload": {"authorization": staff_authorization()},
            }))
            .await;
        assert_eq!(client.receive().await["type"], "connection_ack");
        client
    }

    /// A client over a socket already upgraded.
    pub fn from_stream(
        stream: tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    ) -> Self {
        Self { stream }
    }

    /// Connects to the edge's `/graphql`, before `connection_init`.
    pub async fn open(app: &App) -> Self {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let mut request = format!("ws://{}/graphql", app.addr)
            .into_client_request()
            .expect("a WebSocket request");
        request.headers_mut().insert(
            "sec-websocket-protocol",
            http::HeaderValue::from_static("graphql-transport-ws"),
        );
        let (stream, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("the WebSocket upgrade");
        assert_eq!(
            response
                .headers()
                .get("sec-websocket-protocol")
                .map(|v| v.as_bytes()),
            Some(&b"graphql-transport-ws"[..])
        );
        Self { stream }
    }

    /// The close frame that ends the connection (its code and reason), within 30 seconds.
    pub async fn closed(&mut self) -> Option<(u16, String)> {
        use futures::StreamExt as _;
        loop {
            let message =
                tokio::time::timeout(std::time::Duration::from_secs(30), self.stream.next())
                    .await
                    .expect("a message within 30s")?
                    .ok()?;
            if let tokio_tungstenite::tungstenite::Message::Close(frame) = message {
                return frame.map(|frame| (u16::from(frame.code), frame.reason.to_string()));
            }
        }
    }

    /// Sends one message.
    pub async fn send(&mut self, message: Value) {
        use futures::SinkExt as _;
        self.stream
            .send(tokio_tungstenite::tungstenite::Message::text(
                message.to_string(),
            ))
            .await
            .expect("send");
    }

    /// The next text message, within 30 seconds.
    pub async fn receive(&mut self) -> Value {
        use futures::StreamExt as _;
        loop {
            let message =
                tokio::time::timeout(std::time::Duration::from_secs(30), self.stream.next())
                    .await
                    .expect("a message within 30s")
                    .expect("the socket is open")
                    .expect("a valid frame");
            if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
                return serde_json::from_str(&text).expect("JSON");
            }
        }
    }

    /// Subscribes with `id` to `query`.
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(serde_json::json!({
            "id": id,
            "type": "subscribe",
            "payload": {"query": query, "variables": variables},
        }))
        .await;
    }

    /// Closes the socket.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

/// The ledger, and customers delivering their events to it; the edge in front of both.
pub struct System {
    pub app: App,
    pub relay: Shutdown,
    _databases: Vec<TestDatabase>,
}

pub async fn spawn_system() -> System {
    spawn_system_with(EdgeSettings::default()).await
}

/// The same system, the edge with `settings`.
pub async fn spawn_system_with(settings: EdgeSettings) -> System {
    crowdcrunch_runtime::metrics::handle();
    let ledger_db = databases("ledger").remove(0);
    let customers_db = databases("customers").remove(0);
    let ledger_database = ledger_db.connect(&crowdcrunch_ledger::MIGRATOR).await;
    let ledger =
        TestServer::start_with(|shutdown| crowdcrunch_ledger::service(ledger_database, shutdown))
            .await;
    let database = customers_db.connect(&crowdcrunch_customers::MIGRATOR).await;
    let outbox = crowdcrunch_outbox::Outbox::open(&database, "customers")
        .await
        .expect("open the outbox");
    let ledger_endpoints = Endpoints::parse(&ledger.url()).expect("url");
    // The relay calls the ledger as the customers service.
    let channel = ledger.channel_as_peer("customers").await;
    let relay = Shutdown::new();
    tokio::spawn(outbox.relay(channel).run(relay.clone()));
    let customers = TestServer::start(crowdcrunch_customers::service(database, outbox)).await;
    let endpoints = HashMap::from([
        (
            "customers".to_owned(),
            Endpoints::parse(&customers.url()).expect("url"),
        ),
        ("ledger".to_owned(), ledger_endpoints),
    ]);
    let backends = HashMap::from([
        ("customers".to_owned(), customers),
        ("ledger".to_owned(), ledger),
    ]);
    System {
        app: spawn_edge(settings, &endpoints, backends).await,
        relay,
        _databases: vec![ledger_db, customers_db],
    }
}

/// The headers of every call a backend received, in order.
pub type RecordedCalls = std::sync::Arc<std::sync::Mutex<Vec<http::HeaderMap>>>;

/// The customers service (on SQLite) behind a layer that records the headers of each call and
/// holds it for `delay` before serving it; the edge in front of it with `settings`.
pub async fn spawn_app_recording(
    settings: EdgeSettings,
    delay: std::time::Duration,
) -> (App, RecordedCalls) {
    let database = databases("customers").remove(0);
    let db = database.connect(&crowdcrunch_customers::MIGRATOR).await;
    let outbox = crowdcrunch_outbox::Outbox::open(&db, "customers")
        .await
        .expect("open the outbox");
    let definition = crowdcrunch_customers::service(db, outbox);
    let page_tokens =
        crowdcrunch_runtime::pagination::PageTokens::generate().expect("a page-token key");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let recorded = RecordedCalls::default();
    let record = recorded.clone();
    let layer = tower::ServiceBuilder::new()
        .map_request(move |request: http::Request<tonic::body::Body>| {
            // The path rides along as `x-recorded-path`: the edge also checks the backend's
            // health, which a test may want to tell from its own calls.
            let mut headers = request.headers().clone();
            if let Ok(path) = http::HeaderValue::from_str(request.uri().path()) {
                headers.insert("x-recorded-path", path);
            }
            record.lock().expect("lock").push(headers);
            request
        })
        .map_future(move |call| async move {
            tokio::time::sleep(delay).await;
            call.await
        });
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service((definition.service)(page_tokens))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let endpoints = HashMap::from([(
        "customers".to_owned(),
        Endpoints::parse(&url).expect("endpoints"),
    )]);
    let mut app = spawn_edge(settings, &endpoints, HashMap::new()).await;
    app.databases.push(database);
    (app, recorded)
}
