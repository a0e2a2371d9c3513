//! Typed settings, parsed once at start from flags and `CROWDCRUNCH_*` environment variables.
//!
//! The `*Args` structs are what `clap` reads (the binary flattens them into its commands); each turns
//! into a validated `*Settings` value, so that bad configuration ends the process with one clear
//! line before any port is bound. Tests build the `*Settings` values directly and never touch the
//! process environment.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::client::Endpoints;

/// A configuration value that cannot be used; the message names the setting and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl ConfigError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// An error with this message.
    pub fn from_display(message: impl std::fmt::Display) -> Self {
        Self(message.to_string())
    }
}

/// How a gRPC (or HTTP) server listens, drains and limits its work.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Address to listen on [default: the service's own port on 127.0.0.1 in `dev`, on 0.0.0.0 in `serve`].
    #[arg(long = "listen", env = "CROWDCRUNCH_LISTEN_ADDR", value_name = "ADDR")]
    pub listen_addr: Option<SocketAddr>,
    /// How long a draining server waits for in-flight calls before it closes what is left.
    #[arg(long, env = "CROWDCRUNCH_DRAIN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub drain_grace: Duration,
    /// Close client connections after this age (with GOAWAY), so long-lived clients rebalance.
    #[arg(long, env = "CROWDCRUNCH_MAX_CONNECTION_AGE", default_value = "5m", value_parser = humantime::parse_duration)]
    pub max_connection_age: Duration,
    /// The longest a unary call may run when the client sets no shorter `grpc-timeout`.
    #[arg(long, env = "CROWDCRUNCH_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Calls served at once; further calls are shed with RESOURCE_EXHAUSTED.
    #[arg(long, env = "CROWDCRUNCH_CONCURRENCY_LIMIT", default_value_t = 1024)]
    pub concurrency_limit: usize,
    /// TLS of the server (and of its clients, for mutual TLS).
    #[command(flatten)]
    pub tls: TlsArgs,
}

impl ServerArgs {
    /// Validates the flags into settings; `default_listen` applies when no address was given.
    pub fn settings(&self, default_listen: SocketAddr) -> Result<ServerSettings, ConfigError> {
        if self.concurrency_limit == 0 {
            return Err(ConfigError::new(
                "CROWDCRUNCH_CONCURRENCY_LIMIT must be at least 1",
            ));
        }
        if self.drain_grace.is_zero() {
            return Err(ConfigError::new(
                "CROWDCRUNCH_DRAIN_GRACE must be longer than zero",
            ));
        }
        Ok(ServerSettings {
            listen_addr: self.listen_addr.unwrap_or(default_listen),
            drain_grace: self.drain_grace,
            max_connection_age: self.max_connection_age,
            request_timeout: self.request_timeout,
            concurrency_limit: self.concurrency_limit,
            tls: self.tls.settings()?,
        })
    }
}

/// Validated settings of one server.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// The address to bind; port 0 picks a free port (tests).
    pub listen_addr: SocketAddr,
    /// The longest a drain waits for in-flight calls.
    pub drain_grace: Duration,
    /// Connections older than this are closed with GOAWAY.
    pub max_connection_age: Duration,
    /// Upper bound on a call's duration.
    pub request_timeout: Duration,
    /// Calls served at once.
    pub concurrency_limit: usize,
    /// Server TLS, when configured.
    pub tls: Option<TlsSettings>,
}

impl ServerSettings {
    /// Settings for a plaintext server on `listen_addr` with the defaults of [`ServerArgs`].
    pub fn new(listen_addr: SocketAddr) -> Self {
        Self {
            listen_addr,
            drain_grace: Duration::from_secs(10),
            max_connection_age: Duration::from_secs(300),
            request_timeout: Duration::from_secs(30),
            concurrency_limit: 1024,
            tls: None,
        }
    }
}

/// TLS file paths (for running outside a service mesh, which otherwise provides mTLS).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// PEM certificate chain this process presents (as a server, and as a client when mTLS is on).
    #[arg(long, env = "CROWDCRUNCH_TLS_CERT", value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "CROWDCRUNCH_TLS_KEY", value_name = "PATH")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA that client certificates must chain to; setting it turns on mutual TLS.
    #[arg(long, env = "CROWDCRUNCH_TLS_CLIENT_CA", value_name = "PATH")]
    pub tls_client_ca: Option<PathBuf>,
}

impl TlsArgs {
    /// Reads and checks the PEM files; `None` when TLS is not configured.
    pub fn settings(&self) -> Result<Option<TlsSettings>, ConfigError> {
        match (&self.tls_cert, &self.tls_key) {
            (None, None) if self.tls_client_ca.is_some() => Err(ConfigError::new(
                "CROWDCRUNCH_TLS_CLIENT_CA needs CROWDCRUNCH_TLS_CERT and CROWDCRUNCH_TLS_KEY too",
            )),
            (None, None) => Ok(None),
            (Some(_), None) | (None, Some(_)) => Err(ConfigError::new(
                "CROWDCRUNCH_TLS_CERT and CROWDCRUNCH_TLS_KEY must be set together",
            )),
            (Some(cert), Some(key)) => Ok(Some(TlsSettings {
                cert_pem: read_pem(cert, "CROWDCRUNCH_TLS_CERT", "CERTIFICATE")?,
                key_pem: read_pem(key, "CROWDCRUNCH_TLS_KEY", "PRIVATE KEY")?,
                client_ca_pem: self
                    .tls_client_ca
                    .as_deref()
                    .map(|ca| read_pem(ca, "CROWDCRUNCH_TLS_CLIENT_CA", "CERTIFICATE"))
                    .transpose()?,
            })),
        }
    }
}

fn read_pem(path: &Path, setting: &str, label: &str) -> Result<String, ConfigError> {
    let pem = std::fs::read_to_string(path).map_err(|error| {
        ConfigError::new(format!(
            "{setting}: cannot read {}: {error}",
            path.display()
        ))
    })?;
    if !pem.contains(&format!("-----BEGIN {label}")) && !pem.contains(&format!("{label}-----")) {
        return Err(ConfigError::new(format!(
            "{setting}: {} holds no PEM {label}",
            path.display()
        )));
    }
    Ok(pem)
}

/// Loaded TLS material. `Debug` never prints the private key.
#[derive(Clone)]
pub struct TlsSettings {
    /// PEM certificate chain.
    pub cert_pem: String,
    /// PEM private key.
    pub key_pem: String,
    /// PEM CA for client certificates; `Some` means mutual TLS.
    pub client_ca_pem: Option<String>,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("key_pem", &"[redacted]")
            .field("mutual", &self.client_ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

/// Where a service keeps its data.
#[derive(Debug, Clone, clap::Args)]
pub struct StorageArgs {
    /// Directory of the embedded SQLite databases, one file per service.
    #[arg(
        long,
        env = "CROWDCRUNCH_DATA_DIR",
        default_value = "./data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,
    /// PostgreSQL URL; when set, each service uses its own schema in this database instead of SQLite.
    #[arg(long, env = "CROWDCRUNCH_DATABASE_URL", value_name = "URL", hide_env_values = true, value_parser = parse_secret)]
    pub database_url: Option<SecretString>,
}

fn parse_secret(value: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(value.to_owned()))
}

impl StorageArgs {
    /// Validates the storage flags.
    pub fn settings(&self) -> Result<StorageSettings, ConfigError> {
        match &self.database_url {
            Some(url) => {
                let url = url.expose_secret();
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    return Err(ConfigError::new(
                        "CROWDCRUNCH_DATABASE_URL must be a postgres:// or postgresql:// URL",
                    ));
                }
                Ok(StorageSettings::Postgres {
                    url: SecretString::from(url.to_owned()),
                })
            }
            None => Ok(StorageSettings::Sqlite {
                data_dir: self.data_dir.clone(),
            }),
        }
    }
}

/// Validated storage settings.
#[derive(Debug, Clone)]
pub enum StorageSettings {
    /// One embedded SQLite file per service under this directory.
    Sqlite {
        /// The directory; created when missing.
        data_dir: PathBuf,
    },
    /// One schema per service in this PostgreSQL database.
    Postgres {
        /// The connection URL (a secret: it may hold a password).
        url: SecretString,
    },
}

/// A service another one calls: its endpoints come from `--<service>-endpoints` or
/// `CROWDCRUNCH_<SERVICE>_ENDPOINTS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// The customers service.
    Customers,
    /// The inventory service.
    Inventory,
    /// The orders service.
    Orders,
    /// The payments service.
    Payments,
    /// The fulfillment service.
    Fulfillment,
    /// The exchanges service.
    Exchanges,
    /// The ledger service.
    Ledger,
}

impl Upstream {
    /// The service's name, as in its flag and variable.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customers => "customers",
            Self::Inventory => "inventory",
            Self::Orders => "orders",
            Self::Payments => "payments",
            Self::Fulfillment => "fulfillment",
            Self::Exchanges => "exchanges",
            Self::Ledger => "ledger",
        }
    }
}

/// Where the services this process calls are: one optional endpoint list per service
/// (comma-separated `http://` or `https://` URLs, balanced client-side).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct UpstreamArgs {
    /// Endpoints of the customers service.
    #[arg(long = "customers-endpoints", env = "CROWDCRUNCH_CUSTOMERS_ENDPOINTS", value_name = "URLS", value_parser = Endpoints::parse)]
    pub customers: Option<Endpoints>,
    /// Endpoints of the inventory service.
    #[arg(long = "inventory-endpoints", env = "CROWDCRUNCH_INVENTORY_ENDPOINTS", value_name = "URLS", value_parser = Endpoints::parse)]
    pub inventory: Option<Endpoints>,
    /// Endpoints of the orders service.
    #[arg(long = "orders-endpoints", env = "CROWDCRUNCH_ORDERS_ENDPOINTS", value_name = "URLS", value_parser = Endpoints::parse)]
    pub orders: Option<Endpoints>,
    /// Endpoints of the payments service.
    #[arg(long = "payments-endpoints", env = "CROWDCRUNCH_PAYMENTS_ENDPOINTS", value_name = "URLS", value_parser = Endpoints::parse)]
    pub payments: Option<Endpoints>,
    /// Endpoints of the fulfillment service.
    #[arg(long = "fulfillment-endpoints", env = "CROWDCRUNCH_FULFILLMENT_ENDPOINTS", value_name = "URLS", value_parser = Endpoints::parse)]
    pub fulfillment: Option<Endpoints>,
    /// Endpoints of the exchanges service.
    #[arg(long = "exchanges-endpoints", env = "CROWDCRUNCH_EXCHANGES_ENDPOINTS", value_name = "URLS", value_parser = Endpoints::parse)]
    pub exchanges: Option<Endpoints>,
    /// Endpoints of the ledger service.
    #[arg(long = "ledger-endpoints", env = "CROWDCRUNCH_LEDGER_ENDPOINTS", value_name = "URLS", value_parser = Endpoints::parse)]
    pub ledger: Option<Endpoints>,
}

impl UpstreamArgs {
    fn slot(&mut self, upstream: Upstream) -> &mut Option<Endpoints> {
        match upstream {
            Upstream::Customers => &mut self.customers,
            Upstream::Inventory => &mut self.inventory,
            Upstream::Orders => &mut self.orders,
            Upstream::Payments => &mut self.payments,
            Upstream::Fulfillment => &mut self.fulfillment,
            Upstream::Exchanges => &mut self.exchanges,
            Upstream::Ledger => &mut self.ledger,
        }
    }

    /// Sets the endpoints of `upstream` (as `dev` does with the addresses it bound).
    pub fn set(&mut self, upstream: Upstream, endpoints: Endpoints) {
        *self.slot(upstream) = Some(endpoints);
    }

    /// The endpoints of `upstream`, which `caller` cannot run without; when they are not set, the
    /// one-line error that says which variable to set.
    pub fn require(&self, caller: &str, upstream: Upstream) -> Result<Endpoints, ConfigError> {
        self.clone().slot(upstream).take().ok_or_else(|| {
            let name = upstream.as_str();
            ConfigError::new(format!(
                "{caller} needs CROWDCRUNCH_{}_ENDPOINTS (or --{name}-endpoints): the URLs of the {name} service",
                name.to_uppercase()
            ))
        })
    }
}

/// Log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable, coloured when on a terminal.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Logs and traces.
#[derive(Debug, Clone, clap::Args)]
pub struct TelemetryArgs {
    /// Log format.
    #[arg(
        long,
        env = "CROWDCRUNCH_LOG_FORMAT",
        value_enum,
        default_value = "pretty"
    )]
    pub log_format: LogFormat,
    /// Log filter in `tracing` env-filter syntax.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,
    /// OTLP/gRPC collector for traces; traces are exported only when it is set.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
}

impl TelemetryArgs {
    /// Validates the telemetry flags.
    pub fn settings(&self) -> Result<TelemetrySettings, ConfigError> {
        tracing_subscriber::EnvFilter::try_new(&self.log_filter)
            .map_err(|error| ConfigError::new(format!("RUST_LOG: {error}")))?;
        if let Some(endpoint) = &self.otlp_endpoint {
            endpoint.parse::<http::Uri>().map_err(|error| {
                ConfigError::new(format!(
                    "OTEL_EXPORTER_OTLP_ENDPOINT: {endpoint:?} is not a URL: {error}"
                ))
            })?;
        }
        Ok(TelemetrySettings {
            log_format: self.log_format,
            log_filter: self.log_filter.clone(),
            otlp_endpoint: self.otlp_endpoint.clone(),
        })
    }
}

/// Validated telemetry settings.
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log_filter: String,
    /// OTLP collector, when traces are exported.
    pub otlp_endpoint: Option<String>,
}

/// The Prometheus endpoint of the process.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsArgs {
    /// Address of the Prometheus `/metrics` endpoint (one per process).
    #[arg(
        long = "metrics-listen",
        env = "CROWDCRUNCH_METRICS_ADDR",
        default_value = "0.0.0.0:9090",
        value_name = "ADDR"
    )]
    pub metrics_addr: SocketAddr,
}
