//! `crowdcrunch dev`: every service in one process, each on its own port on 127.0.0.1, talking
//! real gRPC to each other, with embedded SQLite under `--data-dir` and demo data seeded on the
//! first start only.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use crowdcrunch_proto::customers::v1 as customers;
use crowdcrunch_runtime::config::TelemetryArgs;
use crowdcrunch_runtime::metrics::MetricsServer;
use crowdcrunch_runtime::{ServerSettings, Shutdown, StorageSettings};
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;

use crate::services::{BoundService, ServiceName};

/// The file whose presence in the data dir says the demo data was seeded once already.
const SEEDED_MARKER: &str = ".demo-seeded";

/// Flags of `crowdcrunch dev`.
#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// Directory of the embedded databases (created when missing).
    #[arg(long, default_value = "./data", value_name = "DIR")]
    data_dir: PathBuf,
    /// Address every server listens on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port of the customers service.
    #[arg(long, default_value_t = ServiceName::Customers.default_port())]
    customers_port: u16,
    /// Port of the Prometheus `/metrics` endpoint.
    #[arg(long, default_value_t = 9090)]
    metrics_port: u16,
    #[command(flatten)]
    telemetry: TelemetryArgs,
}

impl DevArgs {
    fn port(&self, service: ServiceName) -> u16 {
        match service {
            ServiceName::Customers => self.customers_port,
        }
    }
}

/// Runs the whole system until Ctrl-C or SIGTERM.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let telemetry = args.telemetry.settings()?;
    let _telemetry = crowdcrunch_runtime::telemetry::init("crowdcrunch-dev", &telemetry)?;
    let storage = StorageSettings::Sqlite {
        data_dir: args.data_dir.clone(),
    };
    let first_start = !args.data_dir.join(SEEDED_MARKER).exists();

    let metrics_addr = SocketAddr::new(args.host, args.metrics_port);
    let metrics = MetricsServer::bind(metrics_addr)
        .await
        .with_context(|| format!("cannot listen on {metrics_addr} for metrics"))?;
    let mut services = Vec::new();
    for name in ServiceName::ALL {
        let settings = ServerSettings::new(SocketAddr::new(args.host, args.port(name)));
        services.push(crate::services::bind(name, settings, &storage).await?);
    }
    print_table(&services, metrics_addr, &args.data_dir);
    let addr_of = |name: ServiceName| {
        services
            .iter()
            .find(|service| service.name() == name)
            .map(BoundService::addr)
    };
    let customers_addr = addr_of(ServiceName::Customers).context("customers is not running")?;

    let shutdown = Shutdown::on_signals();
    let mut running: FuturesUnordered<_> = services
        .into_iter()
        .map(|service| tokio::spawn(service.serve(shutdown.clone())))
        .collect();
    running.push(tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            metrics
                .serve(shutdown)
                .await
                .context("metrics server failed")
        }
    }));

    if first_start {
        seed(customers_addr, &shutdown)
            .await
            .context("cannot seed the demo data")?;
        std::fs::write(args.data_dir.join(SEEDED_MARKER), b"demo data seeded\n").with_context(
            || {
                format!(
                    "cannot write {}",
                    args.data_dir.join(SEEDED_MARKER).display()
                )
            },
        )?;
        tracing::info!("demo data seeded");
    }

    let mut result = Ok(());
    while let Some(finished) = running.next().await {
        let outcome = finished
            .context("a server task panicked")
            .and_then(|outcome| outcome);
        if let Err(error) = outcome {
            // One server failing stops the others: a half-running system misleads.
            shutdown.trigger();
            result = result.and(Err(error));
        }
    }
    result
}

#[allow(clippy::print_stdout)]
fn print_table(services: &[BoundService], metrics_addr: SocketAddr, data_dir: &Path) {
    println!("CrowdCrunch dev: every service on its own port (Ctrl-C drains and stops)");
    println!("  {:<12} {:<22} PROTOCOL", "SERVICE", "ADDRESS");
    for service in services {
        println!(
            "  {:<12} {:<22} gRPC (reflection, health)",
            service.name().as_str(),
            service.addr()
        );
    }
    println!(
        "  {:<12} {:<22} Prometheus /metrics",
        "metrics", metrics_addr
    );
    println!("  data dir: {}", data_dir.display());
}

/// Demo customers, created through the real gRPC API with fixed request ids.
async fn seed(customers_addr: SocketAddr, shutdown: &Shutdown) -> anyhow::Result<()> {
    let customers_url = format!("http://{customers_addr}");
    let mut client =
        customers::customer_service_client::CustomerServiceClient::connect(customers_url).await?;
    let demo = [
        ("ada@example.com", "Ada Lovelace"),
        ("grace@example.com", "Grace Hopper"),
        ("alan@example.com", "Alan Turing"),
    ];
    for (index, (email, display_name)) in demo.into_iter().enumerate() {
        if shutdown.is_triggered() {
            break;
        }
        client
            .create_customer(customers::CreateCustomerRequest {
                customer: Some(customers::Customer {
                    email: email.to_owned(),
                    display_name: display_name.to_owned(),
                    ..Default::default()
                }),
                request_id: format!("demo-customer-{index}"),
            })
            .await
            .with_context(|| format!("creating demo customer {email}"))?;
    }
    Ok(())
}
