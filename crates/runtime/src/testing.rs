//! Test support for the services' integration tests (feature `testing`): a fresh database on each
//! backend available here, and a real server on port 0.
//!
//! SQLite always runs. PostgreSQL runs when `CROWDCRUNCH_TEST_DATABASE_URL` is set (CI sets it),
//! each test in its own schema so tests run in parallel; otherwise a one-line skip is printed.

use std::net::SocketAddr;
use std::sync::Once;

use secrecy::SecretString;
use sqlx::migrate::Migrator;
use tokio::task::JoinHandle;

use crate::server::{GrpcService, ServiceDefinition};
use crate::{Database, GrpcServer, ServeError, ServerSettings, Shutdown, StorageSettings};

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

/// A real server on 127.0.0.1 with a free port, serving in the background.
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
        crate::telemetry::init_for_tests();
        let server = GrpcServer::bind(settings)
            .await
            .expect("cannot bind the test server");
        let addr = server.local_addr();
        let shutdown = Shutdown::new();
        let handle = tokio::spawn(server.serve(make(shutdown.clone()), shutdown.clone()));
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

    /// A plaintext channel to the server.
    pub async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(self.url())
            .expect("a valid URL")
            .connect()
            .await
            .expect("cannot connect to the test server")
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
