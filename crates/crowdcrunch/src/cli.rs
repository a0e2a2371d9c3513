//! The command line: every flag also reads a `CROWDCRUNCH_*` variable (see `--help`).

use anyhow::Context as _;
use crowdcrunch_runtime::Shutdown;
use crowdcrunch_runtime::config::{
    MetricsArgs, ServerArgs, StorageArgs, TelemetryArgs, UpstreamArgs,
};
use crowdcrunch_runtime::metrics::MetricsServer;

use crate::dev::DevArgs;
use crate::services::{ServiceName, Upstreams};

/// CrowdCrunch: an order-management backend of gRPC services behind a GraphQL edge.
#[derive(Debug, clap::Parser)]
#[command(version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start and consumed at once: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run one service (what a Kubernetes pod runs).
    Serve(ServeArgs),
    /// Run the whole system on this machine: every service on its own port on 127.0.0.1, talking
    /// real gRPC, with embedded SQLite storage and demo data.
    Dev(DevArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The service to run.
    #[arg(value_enum)]
    service: ServiceName,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    storage: StorageArgs,
    #[command(flatten)]
    upstream: UpstreamArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(flatten)]
    telemetry: TelemetryArgs,
}

impl Cli {
    /// Runs the chosen command to completion.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve(args) => serve(args).await,
            Command::Dev(args) => crate::dev::run(args).await,
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let default_listen = ([0, 0, 0, 0], args.service.default_port()).into();
    let server = args.server.settings(default_listen)?;
    let storage = args.storage.settings()?;
    let telemetry = args.telemetry.settings()?;
    let upstreams = Upstreams::resolve(args.service, &args.upstream, server.tls.as_ref())?;
    let _telemetry = crowdcrunch_runtime::telemetry::init(args.service.as_str(), &telemetry)?;

    let shutdown = Shutdown::on_signals();
    let metrics = MetricsServer::bind(args.metrics.metrics_addr)
        .await
        .with_context(|| format!("cannot listen on {} for metrics", args.metrics.metrics_addr))?;
    let service = crate::services::bind(args.service, server, &storage, &upstreams).await?;
    let (metrics, service) = tokio::join!(metrics.serve(shutdown.clone()), service.serve(shutdown));
    metrics.context("metrics server failed")?;
    service
}
