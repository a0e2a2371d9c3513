//! Test support for the services' integration tests (feature `testing`): a fresh database on each
//! backend available here, a real server on port 0 that admits calls by the real access rules,
//! and channels that carry an identity.
//!
//! # Identities in tests (issue 13)
//!
//! Every [`TestServer`] admits calls exactly as production does: the rules are read from the
//! descriptor set of the [`ServiceDefinition`] it serves (`crowdcrunch_proto::FILE_DESCRIPTOR_SET`,
//! the real rules), and tokens are verified against the process-wide test issuer ([`issuer`]: an
//! ES256 key whose JWKS is served over real HTTP on 127.0.0.1). So:
//!
//! - `server.channel().await`: calls as staff (`test-staff`), so most existing tests keep working
//!   (a `Client<Channel>` field becomes `Client<GrpcChannel>`, from `crowdcrunch_runtime::client`).
//! - `server.channel_as(Grant::Customer("cus_…".into())).await`: calls as that customer (ownership).
//! - `server.channel_as_peer("billing").await`: calls as the peer service `billing`; use it for
//!   peer-only RPCs, and give it to a service under test as its channel to this upstream
//!   (billing's channel to a `shipping` server is `shipping.channel_as_peer("billing").await`).
//! - `server.anonymous_channel().await`: calls with no identity.
//! - [`token`]`(&Grant::…)`: a raw token, for a request's own `authorization` metadata.
//! - [`Caller::of`](crate::access::Caller::of) in a handler reads who was admitted.

mod ports;

use std::net::SocketAddr;
use std::sync::{Once, OnceLock};
use std::time::Duration;

use secrecy::SecretString;
use sqlx::migrate::Migrator;
use tokio::task::JoinHandle;

use crate::access::{AccessRules, Gatekeeper};
use crate::auth::{AuthSettings, Grant, JwksUrl, SigningKey, Verifier};
use crate::client::{GrpcChannel, ServiceToken};
use crate::context::PropagateLayer;
use crate::server::{GrpcService, ServiceDefinition};
use crate::{Database, GrpcServer, ServeError, ServerSettings, Shutdown, StorageSettings};

pub use ports::reserved_addr;

/// The audience of the test issuer's tokens.
pub const TEST_AUDIENCE: &str = "crowdcrunch";

/// The name of the staff member that [`TestServer::channel`] calls as.
pub const TEST_STAFF: &str = "test-staff";

/// The process-wide test issuer: an ES256 key and its JWKS, served over HTTP on 127.0.0.1 by a
/// thread of its own (so it outlives every test's runtime).
pub struct TestIssuer {
    key: SigningKey,
    settings: AuthSettings,
}

/// The test issuer of this process, started on first use.
pub fn issuer() -> &'static TestIssuer {
    static ISSUER: OnceLock<TestIssuer> = OnceLock::new();
    ISSUER.get_or_init(TestIssuer::start)
}

/// A token of the test issuer for `grant`, valid for an hour.
pub fn token(grant: &Grant) -> String {
    issuer().token(grant)
}

impl TestIssuer {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("cannot create a temporary directory");
        // The key stays in memory; its file goes with the directory.
        let key = SigningKey::generate(dir.path()).expect("cannot generate the test signing key");
        let jwks = serde_json::to_string(&key.jwks()).expect("a JWKS serializes");
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
            .expect("cannot bind the test JWKS server");
        let addr = listener.local_addr().expect("a bound address");
        std::thread::Builder::new()
            .name("test-jwks".to_owned())
            .spawn(move || serve_jwks(listener, jwks))
            .expect("cannot start the test JWKS thread");
        let issuer = format!("http://{addr}");
        let jwks_url =
            JwksUrl::parse(&format!("{issuer}/.well-known/jwks.json")).expect("a valid JWKS URL");
        Self {
            key,
            settings: AuthSettings::new(issuer, TEST_AUDIENCE, jwks_url),
        }
    }

    /// The settings that verify this issuer's tokens.
    pub fn settings(&self) -> AuthSettings {
        self.settings.clone()
    }

    /// A verifier of this issuer's tokens (in the current runtime).
    pub fn verifier(&self) -> Verifier {
        Verifier::start(self.settings()).expect("a test verifier starts")
    }

    /// A token for `grant`, valid for an hour.
    pub fn token(&self, grant: &Grant) -> String {
        self.key
            .mint(&self.settings.rules, grant, Duration::from_secs(3600))
            .expect("the test key signs")
    }

    /// Admission by the rules of `file_descriptor_set`, with this issuer's tokens.
    pub fn gatekeeper(&self, file_descriptor_set: &[u8]) -> Gatekeeper {
        let rules = AccessRules::from_descriptor_set(file_descriptor_set)
            .unwrap_or_else(|error| panic!("the access rules do not load: {error}"));
        Gatekeeper::new(rules, self.verifier())
    }
}

fn serve_jwks(listener: std::net::TcpListener, jwks: String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("cannot build the test JWKS runtime");
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::from_std(listener).expect("a non-blocking listener");
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                std::future::ready(([(http::header::CONTENT_TYPE, "application/json")], jwks))
            }),
        );
        if let Err(error) = axum::serve(listener, app).await {
            panic!("the test JWKS server failed: {error}");
        }
    });
}

/// The variable naming the PostgreSQL database of the tests.
pub const TEST_DATABASE_URL: &str = "CROWDCRUNCH_TEST_DATABASE_URL";

/// A fresh, empty database for one test.
pub struct TestDatabase {
    /// Which backend, for messages (`sqlite`, `postgres`).
    pub backend: &'static str,
    /// Storage settings pointing at it.
    pub settings: StorageSettings,
    /// Its name: the SQLite file stem or the PostgreSQL schema, unique to this test.
    pub name: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// Opens and migrates it.
    pub async fn connect(&self, migrator: &Migrator) -> Database {
        Database::connect(&self.settings, &self.name, migrator)
            .await
            .unwrap_or_else(|error| {
                panic!("cannot open the {} test database: {error}", self.backend)
            })
    }
}

/// A fresh database named after `service` on every backend available here.
pub fn databases(service: &str) -> Vec<TestDatabase> {
    let unique = uuid::Uuid::now_v7().simple().to_string();
    let dir = tempfile::tempdir().expect("cannot create a temporary directory");
    let mut databases = vec![TestDatabase {
        backend: "sqlite",
        settings: StorageSettings::Sqlite {
            data_dir: dir.path().to_owned(),
        },
        name: service.to_owned(),
        _dir: Some(dir),
    }];
    match std::env::var(TEST_DATABASE_URL) {
        Ok(url) if !url.is_empty() => databases.push(TestDatabase {
            backend: "postgres",
            settings: StorageSettings::Postgres {
                url: SecretString::from(url),
            },
            name: format!("test_{service}_{unique}"),
            _dir: None,
        }),
        _ => {
            static SKIP: Once = Once::new();
            // Written past the test harness's capture, so the skip is seen even when tests pass.
            SKIP.call_once(|| {
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "skipping the PostgreSQL path: {TEST_DATABASE_URL} is not set"
                );
            });
        }
    }
    databases
}

/// A real server on 127.0.0.1 with a free port, serving in the background, admitting calls by
/// the rules of the descriptor set it serves and the [`issuer`]'s tokens.
pub struct TestServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// Fires the drain.
    pub shutdown: Shutdown,
    handle: JoinHandle<Result<(), ServeError>>,
}

impl TestServer {
    /// Binds with `settings` (use port 0) and serves `definition`.
    pub async fn spawn<S: GrpcService>(
        settings: ServerSettings,
        definition: ServiceDefinition<S>,
    ) -> Self {
        Self::spawn_with(settings, |_| definition).await
    }

    /// Binds with `settings` and serves the service `make` builds from the server's shutdown
    /// signal (a service with streams ends them on it, so that the drain never waits on them).
    pub async fn spawn_with<S: GrpcService>(
        settings: ServerSettings,
        make: impl FnOnce(Shutdown) -> ServiceDefinition<S>,
    ) -> Self {
        let shutdown = Shutdown::new();
        let definition = make(shutdown.clone());
        let gatekeeper = issuer().gatekeeper(definition.file_descriptor_set);
        Self::serve(settings, gatekeeper, definition, shutdown).await
    }

    /// Binds with `settings` and serves `definition`, admitting calls with `gatekeeper` (a test
    /// of admission itself).
    pub async fn spawn_admitting<S: GrpcService>(
        settings: ServerSettings,
        gatekeeper: Gatekeeper,
        definition: ServiceDefinition<S>,
    ) -> Self {
        Self::serve(settings, gatekeeper, definition, Shutdown::new()).await
    }

    async fn serve<S: GrpcService>(
        settings: ServerSettings,
        gatekeeper: Gatekeeper,
        definition: ServiceDefinition<S>,
        shutdown: Shutdown,
    ) -> Self {
        crate::telemetry::init_for_tests();
        let server = GrpcServer::bind(settings, gatekeeper)
            .await
            .expect("cannot bind the test server");
        let addr = server.local_addr();
        let handle = tokio::spawn(server.serve(definition, shutdown.clone()));
        Self {
            addr,
            shutdown,
            handle,
        }
    }

    /// Serves `definition` plaintext on a free port of 127.0.0.1.
    pub async fn start<S: GrpcService>(definition: ServiceDefinition<S>) -> Self {
        Self::start_with(|_| definition).await
    }

    /// Serves what `make` builds from the shutdown signal, plaintext on a free port of 127.0.0.1.
    pub async fn start_with<S: GrpcService>(
        make: impl FnOnce(Shutdown) -> ServiceDefinition<S>,
    ) -> Self {
        Self::spawn_with(ServerSettings::new(([127, 0, 0, 1], 0).into()), make).await
    }

    /// `http://` URL of the server.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A plaintext channel to the server, calling as staff ([`TEST_STAFF`]).
    pub async fn channel(&self) -> GrpcChannel {
        self.channel_as(&Grant::Staff(TEST_STAFF.to_owned())).await
    }

    /// A plaintext channel to the server, calling with a token for `grant`.
    pub async fn channel_as(&self, grant: &Grant) -> GrpcChannel {
        let token = ServiceToken::new(&token(grant)).expect("a token is a header value");
        self.anonymous_channel().await.carrying(token)
    }

    /// A plaintext channel to the server, calling as the peer service `service` (also what a
    /// service under test is given as its channel to this server).
    pub async fn channel_as_peer(&self, service: &str) -> GrpcChannel {
        self.channel_as(&Grant::Service(service.to_owned())).await
    }

    /// A plaintext channel to the server, calling with no identity.
    pub async fn anonymous_channel(&self) -> GrpcChannel {
        let channel = tonic::transport::Endpoint::from_shared(self.url())
            .expect("a valid URL")
            .connect()
            .await
            .expect("cannot connect to the test server");
        tower_layer::Layer::layer(&PropagateLayer, channel)
    }

    /// Drains the server and waits until it stops.
    pub async fn stop(self) -> Result<(), ServeError> {
        self.shutdown.trigger();
        self.handle.await.expect("the server task panicked")
    }
}

/// The field paths of a status's `BadRequest` details, in order.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt as _;
    status
        .get_details_bad_request()
        .map(|bad| {
            bad.field_violations
                .into_iter()
                .map(|violation| violation.field)
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts that `status` is INVALID_ARGUMENT from `domain` (its `ErrorInfo`) with `BadRequest`
/// violations of exactly `fields`, in order.
#[track_caller]
pub fn assert_invalid_argument(status: &tonic::Status, domain: &str, fields: &[&str]) {
    use tonic_types::StatusExt as _;
    assert_eq!(
        status.code(),
        tonic::Code::InvalidArgument,
        "{}",
        status.message()
    );
    assert_eq!(violated_fields(status), fields, "{}", status.message());
    assert_eq!(
        status.get_details_error_info().map(|info| info.domain),
        Some(domain.to_owned()),
        "{}",
        status.message()
    );
}

/// The `ErrorInfo` reason of a FAILED_PRECONDITION status and the (type, subject) of each of its
/// `PreconditionFailure` violations, in order. Panics on any other code.
pub fn failed_precondition(status: &tonic::Status) -> (String, Vec<(String, String)>) {
    use tonic_types::StatusExt as _;
    assert_eq!(
        status.code(),
        tonic::Code::FailedPrecondition,
        "{}",
        status.message()
    );
    let reason = status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default();
    let violations = status
        .get_details_precondition_failure()
        .map(|failure| {
            failure
                .violations
                .into_iter()
                .map(|violation| (violation.r#type, violation.subject))
                .collect()
        })
        .unwrap_or_default();
    (reason, violations)
}

/// Every page of an AIP-158 list, first to last: `fetch` gets a page token and answers that
/// page's items and its `next_page_token`.
pub async fn all_pages<T, F, Fut>(mut fetch: F) -> Vec<Vec<T>>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = (Vec<T>, String)>,
{
    let mut pages = Vec::new();
    let mut page_token = String::new();
    loop {
        let (items, next_page_token) = fetch(page_token).await;
        pages.push(items);
        if next_page_token.is_empty() {
            return pages;
        }
        page_token = next_page_token;
    }
}

/// Asserts that `hidden`, the answer about another customer's resource `hidden_id`, is exactly
/// the answer about `missing_id`, which does not exist (`missing`): the same code, message,
/// `ErrorInfo` and field violations but for the id, so a caller cannot probe ids.
#[track_caller]
pub fn assert_answered_as_missing(
    hidden: &tonic::Status,
    hidden_id: &str,
    missing: &tonic::Status,
    missing_id: &str,
) {
    use tonic_types::StatusExt as _;
    type Shape = (
        tonic::Code,
        String,
        Option<(String, String, Vec<(String, String)>)>,
        Vec<(String, String)>,
    );
    fn shape(status: &tonic::Status, id: &str) -> Shape {
        let anonymise = |text: &str| text.replace(id, "<id>");
        let info = status.get_details_error_info().map(|info| {
            let mut metadata: Vec<(String, String)> = info
                .metadata
                .iter()
                .map(|(key, value)| (key.clone(), anonymise(value)))
                .collect();
            metadata.sort();
            (info.reason, info.domain, metadata)
        });
        let violations = status
            .get_details_bad_request()
            .map(|bad| {
                bad.field_violations
                    .iter()
                    .map(|violation| (violation.field.clone(), anonymise(&violation.description)))
                    .collect()
            })
            .unwrap_or_default();
        (status.code(), anonymise(status.message()), info, violations)
    }
    assert_ne!(
        hidden.code(),
        tonic::Code::Ok,
        "the hidden resource was answered"
    );
    assert_eq!(shape(hidden, hidden_id), shape(missing, missing_id));
}

/// Calls the unary RPC `path` (`/package.Service/Method`) over `channel` with `body` framed as
/// its request message, whatever those bytes are: what a client that sends garbage gets.
pub async fn call_with_raw_body(
    channel: GrpcChannel,
    path: &str,
    body: Vec<u8>,
) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|error| tonic::Status::unavailable(error.to_string()))?;
    let path = path.parse().expect("an RPC path");
    grpc.unary(tonic::Request::new(body), path, RawCodec)
        .await
        .map(drop)
}

/// Sends bytes as they are and takes any answer's bytes.
#[derive(Debug, Clone, Copy)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        Self
    }

    fn decoder(&mut self) -> Self::Decoder {
        Self
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        prost::bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let remaining = prost::bytes::Buf::remaining(src);
        Ok(Some(
            prost::bytes::Buf::copy_to_bytes(src, remaining).to_vec(),
        ))
    }
}
