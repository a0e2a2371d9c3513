//! Typed settings, parsed once at start from flags and `CROWDCRUNCH_*` environment variables.
//!
//! The `*Args` structs are what `clap` reads (the binary flattens them into its commands); each turns
//! into a validated `*Settings` value, so that bad configuration ends the process with one clear
//! line before any port is bound. Tests build the `*Settings` values directly and never touch the
//! process environment.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::client::Endpoints;
use crate::pagination::PageTokens;

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

/// Where a service's own token for its calls to other services comes from (`serve`).
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceTokenArgs {
    /// A file holding this service's own bearer token for its calls to other services (read
    /// again periodically, so a rotated token is picked up). Not needed where mTLS or the mesh
    /// names the service.
    #[arg(long, env = "CROWDCRUNCH_SERVICE_TOKEN_FILE", value_name = "PATH")]
    pub service_token_file: Option<PathBuf>,
}

impl ServiceTokenArgs {
    /// The token, read now (a missing or empty file is an error); `None` without a file.
    pub fn token(&self) -> Result<Option<crate::client::ServiceToken>, ConfigError> {
        self.service_token_file
            .as_deref()
            .map(crate::client::ServiceToken::from_file)
            .transpose()
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
    /// Whether every finished call is logged at info (an access log); off, calls are counted in
    /// the metrics and logged only when they fail.
    #[arg(long, env = "CROWDCRUNCH_ACCESS_LOG", default_value_t = false, action = clap::ArgAction::Set)]
    pub access_log: bool,
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
            access_log: self.access_log,
            tls: self.tls.settings()?,
            page_tokens: PageTokens::generate().map_err(ConfigError::from_display)?,
        })
    }
}

/// The key of the page tokens a service returns (`serve <service>`; the edge has none).
#[derive(Debug, Clone, clap::Args)]
pub struct PageTokenArgs {
    /// Base64 of at least 32 random bytes (`openssl rand -base64 32`) that signs and checks the
    /// page tokens this service returns. The same for every replica of the service, so that a
    /// token one replica returned the next one accepts, also across a rolling upgrade.
    #[arg(long, env = "CROWDCRUNCH_PAGE_TOKEN_KEY", value_name = "BASE64", hide_env_values = true, value_parser = parse_secret)]
    pub page_token_key: Option<SecretString>,
}

impl PageTokenArgs {
    /// The key; an error when it is not set or not base64 of at least 32 bytes.
    pub fn page_tokens(&self) -> Result<PageTokens, ConfigError> {
        let key = self.page_token_key.as_ref().ok_or_else(|| {
            ConfigError::new(
                "CROWDCRUNCH_PAGE_TOKEN_KEY must be set: base64 of at least 32 random bytes \
                 (`openssl rand -base64 32`), the same for every replica of the service",
            )
        })?;
        PageTokens::from_base64(key.expose_secret())
            .map_err(|error| ConfigError::new(format!("CROWDCRUNCH_PAGE_TOKEN_KEY: {error}")))
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
    /// Whether every finished call is logged at info.
    pub access_log: bool,
    /// Server TLS, when configured.
    pub tls: Option<TlsSettings>,
    /// The key of the page tokens the served service returns and accepts: random unless set
    /// with [`ServerSettings::with_page_tokens`], so that its tokens last only as long as it.
    pub page_tokens: PageTokens,
}

impl ServerSettings {
    /// Settings for a plaintext server on `listen_addr` with the defaults of [`ServerArgs`] and a
    /// random page-token key.
    pub fn new(listen_addr: SocketAddr) -> Self {
        Self {
            listen_addr,
            drain_grace: Duration::from_secs(10),
            max_connection_age: Duration::from_secs(300),
            request_timeout: Duration::from_secs(30),
            concurrency_limit: 1024,
            access_log: false,
            tls: None,
            page_tokens: PageTokens::generate()
                .unwrap_or_else(|error| panic!("no random page-token key: {error}")),
        }
    }

    /// These settings with the page tokens signed by `page_tokens` (the key every replica of
    /// the service shares).
    pub fn with_page_tokens(self, page_tokens: PageTokens) -> Self {
        Self {
            page_tokens,
            ..self
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

/// The names of the services a process may call, as the binary gives them: the runtime names no
/// service. Each name `n` is read from the flag `--n-endpoints` and the variable
/// `CROWDCRUNCH_N_ENDPOINTS` (upper case, `-` as `_`).
pub trait UpstreamNames {
    /// Every name, lower case.
    fn upstream_names() -> impl Iterator<Item = &'static str>;
}

/// Where the services this process calls are: one optional endpoint list per name of `N`
/// (comma-separated `http://` or `https://` URLs, balanced client-side).
#[derive(Debug, Clone)]
pub struct UpstreamArgs<N> {
    endpoints: BTreeMap<&'static str, Endpoints>,
    names: PhantomData<fn() -> N>,
}

impl<N> Default for UpstreamArgs<N> {
    fn default() -> Self {
        Self {
            endpoints: BTreeMap::new(),
            names: PhantomData,
        }
    }
}

impl<N: UpstreamNames> UpstreamArgs<N> {
    /// Sets the endpoints of the service `name` (as `dev` does with the addresses it bound).
    pub fn set(&mut self, name: &'static str, endpoints: Endpoints) -> Result<(), ConfigError> {
        let name = Self::known(name)?;
        self.endpoints.insert(name, endpoints);
        Ok(())
    }

    /// The endpoints of the service `name`, which `caller` cannot run without; when they are not
    /// set, the one-line error that says which variable to set.
    pub fn require(&self, caller: &str, name: &str) -> Result<Endpoints, ConfigError> {
        let name = Self::known(name)?;
        self.endpoints.get(name).cloned().ok_or_else(|| {
            ConfigError::new(format!(
                "{caller} needs {} (or --{}): the URLs of the {name} service",
                endpoints_variable(name),
                endpoints_flag(name)
            ))
        })
    }

    /// The services whose endpoints are set, by name.
    pub fn configured(&self) -> impl Iterator<Item = (&'static str, &Endpoints)> {
        self.endpoints
            .iter()
            .map(|(name, endpoints)| (*name, endpoints))
    }

    /// `name` as `N` gives it; an error when `N` does not name it.
    fn known(name: &str) -> Result<&'static str, ConfigError> {
        N::upstream_names()
            .find(|known| *known == name)
            .ok_or_else(|| ConfigError::new(format!("there is no {name} service to call")))
    }
}

/// The flag of the endpoints of `name`, without its dashes.
fn endpoints_flag(name: &str) -> String {
    format!("{name}-endpoints")
}

/// The variable of the endpoints of `name`.
fn endpoints_variable(name: &str) -> String {
    format!(
        "CROWDCRUNCH_{}_ENDPOINTS",
        name.to_uppercase().replace('-', "_")
    )
}

impl<N: UpstreamNames> clap::FromArgMatches for UpstreamArgs<N> {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut args = Self::default();
        args.update_from_arg_matches(matches)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        for name in N::upstream_names() {
            if let Some(endpoints) = matches.get_one::<Endpoints>(&endpoints_flag(name)) {
                self.endpoints.insert(name, endpoints.clone());
            }
        }
        Ok(())
    }
}

impl<N: UpstreamNames> clap::Args for UpstreamArgs<N> {
    fn augment_args(command: clap::Command) -> clap::Command {
        N::upstream_names().fold(command, |command, name| {
            command.arg(
                clap::Arg::new(endpoints_flag(name))
                    .long(endpoints_flag(name))
                    .env(endpoints_variable(name))
                    .value_name("URLS")
                    .value_parser(Endpoints::parse)
                    .help(format!("Endpoints of the {name} service")),
            )
        })
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
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
    /// Which spans are sampled (recorded and exported), as the OpenTelemetry specification
    /// names the samplers.
    #[arg(
        long,
        env = "OTEL_TRACES_SAMPLER",
        value_enum,
        default_value = "parentbased_always_on"
    )]
    pub traces_sampler: TraceSampler,
    /// The ratio of traces the `traceidratio` samplers keep, in [0, 1] (1 when not set).
    #[arg(long, env = "OTEL_TRACES_SAMPLER_ARG", value_name = "RATIO")]
    pub traces_sampler_arg: Option<f64>,
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
        let ratio = match self.traces_sampler_arg {
            None => 1.0,
            Some(ratio) if (0.0..=1.0).contains(&ratio) => ratio,
            Some(ratio) => {
                return Err(ConfigError::new(format!(
                    "OTEL_TRACES_SAMPLER_ARG: {ratio} is not a ratio in [0, 1]"
                )));
            }
        };
        Ok(TelemetrySettings {
            log_format: self.log_format,
            log_filter: self.log_filter.clone(),
            otlp_endpoint: self.otlp_endpoint.clone(),
            sampler: SamplerSettings {
                sampler: self.traces_sampler,
                ratio,
            },
        })
    }
}

/// The samplers of the OpenTelemetry specification (`OTEL_TRACES_SAMPLER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TraceSampler {
    /// Every span.
    #[value(name = "always_on")]
    AlwaysOn,
    /// No span.
    #[value(name = "always_off")]
    AlwaysOff,
    /// A ratio of traces, by trace id.
    #[value(name = "traceidratio")]
    TraceIdRatio,
    /// The caller's decision; every new trace.
    #[value(name = "parentbased_always_on")]
    ParentBasedAlwaysOn,
    /// The caller's decision; no new trace.
    #[value(name = "parentbased_always_off")]
    ParentBasedAlwaysOff,
    /// The caller's decision; a ratio of new traces, by trace id.
    #[value(name = "parentbased_traceidratio")]
    ParentBasedTraceIdRatio,
}

/// Validated sampling: the sampler and its ratio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplerSettings {
    /// The sampler.
    pub sampler: TraceSampler,
    /// The ratio of the `traceidratio` samplers, in [0, 1].
    pub ratio: f64,
}

impl Default for SamplerSettings {
    /// The specification's default: `parentbased_always_on`.
    fn default() -> Self {
        Self {
            sampler: TraceSampler::ParentBasedAlwaysOn,
            ratio: 1.0,
        }
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
    /// Which spans are sampled.
    pub sampler: SamplerSettings,
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

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser as _};

    use super::*;

    /// The services a test process calls.
    struct Neighbours;

    impl UpstreamNames for Neighbours {
        fn upstream_names() -> impl Iterator<Item = &'static str> {
            ["billing", "audit-log"].into_iter()
        }
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        upstream: UpstreamArgs<Neighbours>,
    }

    #[test]
    fn each_upstream_is_read_from_its_own_flag_and_variable() {
        let help = Cli::command().render_long_help().to_string();
        for expected in [
            "--billing-endpoints",
            "CROWDCRUNCH_BILLING_ENDPOINTS",
            "--audit-log-endpoints",
            "CROWDCRUNCH_AUDIT_LOG_ENDPOINTS",
        ] {
            assert!(help.contains(expected), "{expected} in:\n{help}");
        }
        let cli = Cli::try_parse_from([
            "test",
            "--billing-endpoints",
            "http://127.0.0.1:1, http://127.0.0.1:2",
        ])
        .expect("the flags parse");
        let billing = cli.upstream.require("caller", "billing").expect("billing");
        assert_eq!(billing.uris().len(), 2);
        assert_eq!(
            cli.upstream
                .require("caller", "audit-log")
                .expect_err("audit-log is not set")
                .to_string(),
            "caller needs CROWDCRUNCH_AUDIT_LOG_ENDPOINTS (or --audit-log-endpoints): \
             the URLs of the audit-log service"
        );
        assert!(cli.upstream.require("caller", "nowhere").is_err());
        let configured: Vec<_> = cli.upstream.configured().map(|(name, _)| name).collect();
        assert_eq!(configured, ["billing"]);
    }

    #[test]
    fn an_endpoint_list_of_no_url_is_refused() {
        assert!(Cli::try_parse_from(["test", "--billing-endpoints", "ftp://host"]).is_err());
        assert!(Cli::try_parse_from(["test", "--billing-endpoints", " , "]).is_err());
    }

    #[derive(clap::Parser)]
    struct Telemetry {
        #[command(flatten)]
        telemetry: TelemetryArgs,
    }

    fn sampling(args: &[&str]) -> Result<SamplerSettings, String> {
        let cli = Telemetry::try_parse_from(std::iter::once("test").chain(args.iter().copied()))
            .map_err(|error| error.to_string())?;
        cli.telemetry
            .settings()
            .map(|settings| settings.sampler)
            .map_err(|error| error.to_string())
    }

    #[test]
    fn the_sampler_is_one_of_the_specification_s_with_a_ratio_in_0_to_1() {
        assert_eq!(sampling(&[]), Ok(SamplerSettings::default()));
        assert_eq!(
            sampling(&[
                "--traces-sampler",
                "parentbased_traceidratio",
                "--traces-sampler-arg",
                "0.25"
            ]),
            Ok(SamplerSettings {
                sampler: TraceSampler::ParentBasedTraceIdRatio,
                ratio: 0.25
            })
        );
        assert_eq!(
            sampling(&["--traces-sampler", "always_off"]).map(|settings| settings.sampler),
            Ok(TraceSampler::AlwaysOff)
        );
        let bad = sampling(&["--traces-sampler", "sometimes"]).expect_err("not a sampler");
        assert!(bad.contains("sometimes"), "{bad}");
        for ratio in ["1.5", "-0.1", "NaN"] {
            let flag = format!("--traces-sampler-arg={ratio}");
            let bad = sampling(&[&flag]).expect_err("not a ratio");
            assert!(bad.contains("OTEL_TRACES_SAMPLER_ARG"), "{bad}");
        }
    }
}
