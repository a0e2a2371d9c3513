//! The command line: every flag also reads a `CROWDCRUNCH_*` variable (see `--help`).

use anyhow::Context as _;
use crowdcrunch::roster::{self, Service, UpstreamArgs};
use crowdcrunch::services::Upstreams;
use crowdcrunch_runtime::Shutdown;
use crowdcrunch_runtime::access::Gatekeeper;
use crowdcrunch_runtime::auth::{AuthArgs, Verifier};
use crowdcrunch_runtime::config::{
    MetricsArgs, PageTokenArgs, ServerArgs, ServiceTokenArgs, StorageArgs, TelemetryArgs,
};
use crowdcrunch_runtime::edge::EdgeArgs;
use crowdcrunch_runtime::metrics::MetricsServer;
use crowdcrunch_runtime::telemetry::ServiceName;

use crate::dev::DevArgs;
use crate::load::LoadArgs;
use crate::smoke::SmokeArgs;
use crate::token::TokenArgs;

/// CrowdCrunch: an order-management backend of gRPC services behind a GraphQL edge.
#[derive(Debug, clap::Parser)]
#[command(version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run one service (what a Kubernetes pod runs). Boxed: its flags outweigh every other
    /// command's.
    Serve(Box<ServeArgs>),
    /// Run the whole system on this machine: every service on its own port on 127.0.0.1, talking
    /// real gRPC, with embedded SQLite storage and demo data.
    Dev(DevArgs),
    /// Print the GraphQL schema (SDL) the edge derives from the protos.
    Schema,
    /// Check that a running edge answers and reaches every service (what `helm test` runs).
    Smoke(SmokeArgs),
    /// Print a token signed with the key `dev` keeps in its data dir, alone on stdout.
    Token(TokenArgs),
    /// Drive one GraphQL operation (or one gRPC method), with headers and templated variables,
    /// at a concurrency, or simulate shoppers (`--scenario shop`); report requests/s, errors and
    /// latency percentiles. Boxed: its flags outweigh the other commands'.
    Load(Box<LoadArgs>),
}

/// What `serve` runs: a service, or the GraphQL edge.
#[derive(Debug, Clone, Copy)]
enum Served {
    /// One of the gRPC services.
    Service(&'static Service),
    /// The GraphQL edge in front of them.
    Edge,
}

impl clap::ValueEnum for Served {
    fn value_variants<'a>() -> &'a [Self] {
        static VARIANTS: std::sync::OnceLock<Vec<Served>> = std::sync::OnceLock::new();
        VARIANTS.get_or_init(|| {
            std::iter::once(Served::Edge)
                .chain(roster::by_port().into_iter().map(Served::Service))
                .collect()
        })
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(match self {
            Self::Service(service) => {
                clap::builder::PossibleValue::new(service.name).help(service.about)
            }
            Self::Edge => clap::builder::PossibleValue::new("edge")
                .help("The GraphQL edge, over HTTP and WebSocket"),
        })
    }
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The service to run.
    #[arg(value_enum)]
    service: Served,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    storage: StorageArgs,
    #[command(flatten)]
    upstream: UpstreamArgs,
    #[command(flatten, next_help_heading = "Identity")]
    auth: AuthArgs,
    #[command(flatten, next_help_heading = "Identity")]
    service_token: ServiceTokenArgs,
    #[command(flatten, next_help_heading = "Pagination (serve <service>)")]
    page_tokens: PageTokenArgs,
    #[command(flatten, next_help_heading = "The edge (serve edge)")]
    edge: EdgeArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(flatten)]
    telemetry: TelemetryArgs,
}

impl Cli {
    /// Runs the chosen command to completion.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve(args) => match args.service {
                Served::Service(service) => serve(service, *args).await,
                Served::Edge => serve_edge(*args).await,
            },
            Command::Dev(args) => crate::dev::run(args).await,
            Command::Schema => print_schema(),
            Command::Smoke(args) => crate::smoke::run(args).await,
            Command::Load(args) => crate::load::run(*args).await,
            Command::Token(args) => crate::token::run(&args),
        }
    }
}

#[expect(clippy::print_stdout, reason = "the SDL is the command's output")]
fn print_schema() -> anyhow::Result<()> {
    print!("{}", crowdcrunch_edge::sdl()?);
    Ok(())
}

/// `serve edge`: the GraphQL edge in front of the services named by the endpoint flags.
async fn serve_edge(args: ServeArgs) -> anyhow::Result<()> {
    let default_listen = ([0, 0, 0, 0], roster::EDGE_PORT).into();
    let server = args.server.settings(default_listen)?;
    let settings = crowdcrunch_runtime::edge::EdgeSettings {
        access_log: server.access_log,
        ..args.edge.settings()?
    };
    let auth = args.auth.settings()?;
    let telemetry = args.telemetry.settings()?;
    let endpoints = crate::edge::endpoints(&args.upstream);
    let _telemetry = crowdcrunch_runtime::telemetry::init(ServiceName::new("edge"), &telemetry)?;
    if endpoints.is_empty() {
        tracing::warn!("no CROWDCRUNCH_<SERVICE>_ENDPOINTS set: every field will be UNAVAILABLE");
    }

    let shutdown = Shutdown::on_signals();
    let metrics = MetricsServer::bind(args.metrics.metrics_addr)
        .await
        .with_context(|| format!("cannot listen on {} for metrics", args.metrics.metrics_addr))?;
    let edge = crate::edge::BoundEdge::bind(
        server.listen_addr,
        settings,
        &endpoints,
        server.tls.as_ref(),
        Verifier::start(auth)?,
        server.drain_grace,
    )
    .await?;
    let (metrics, edge) = tokio::join!(metrics.serve(shutdown.clone()), edge.serve(shutdown));
    metrics.context("metrics server failed")?;
    edge
}

async fn serve(service: &'static Service, args: ServeArgs) -> anyhow::Result<()> {
    let default_listen = ([0, 0, 0, 0], service.default_port).into();
    let server = args.server.settings(default_listen)?;
    let storage = args.storage.settings()?;
    let auth = args.auth.settings()?;
    let server = server.with_page_tokens(args.page_tokens.page_tokens()?);
    let rules = crowdcrunch::services::access_rules()?;
    let telemetry = args.telemetry.settings()?;
    let identity = args.service_token.token()?;
    let upstreams = Upstreams::resolve(
        service,
        &args.upstream,
        server.tls.as_ref(),
        identity.as_ref(),
    )?;
    let _telemetry =
        crowdcrunch_runtime::telemetry::init(ServiceName::new(service.name), &telemetry)?;

    let shutdown = Shutdown::on_signals();
    let metrics = MetricsServer::bind(args.metrics.metrics_addr)
        .await
        .with_context(|| format!("cannot listen on {} for metrics", args.metrics.metrics_addr))?;
    let gatekeeper = Gatekeeper::new(rules, Verifier::start(auth)?);
    let service =
        crowdcrunch::services::bind(service, server, &storage, &upstreams, gatekeeper).await?;
    let (metrics, service) = tokio::join!(metrics.serve(shutdown.clone()), service.serve(shutdown));
    metrics.context("metrics server failed")?;
    service
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// Every command's flags are well formed: unique names and ids across the flattened
    /// settings of `serve` and `dev` (clap checks only the command a process runs).
    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
