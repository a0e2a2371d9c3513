//! The one place that knows how each service is assembled: its database, the services it calls,
//! its outbox relay, its default port.

use anyhow::Context as _;
use crowdcrunch_outbox::{Outbox, Relay};
use crowdcrunch_proto::customers::v1::customer_service_client::CustomerServiceClient;
use crowdcrunch_proto::fulfillment::v1::fulfillment_service_client::FulfillmentServiceClient;
use crowdcrunch_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use crowdcrunch_proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use crowdcrunch_proto::orders::v1::order_service_client::OrderServiceClient;
use crowdcrunch_proto::payments::v1::payment_service_client::PaymentServiceClient;
use crowdcrunch_runtime::client::GrpcChannel;
use crowdcrunch_runtime::config::{TlsSettings, Upstream, UpstreamArgs};
use crowdcrunch_runtime::server::{GrpcService, ServiceDefinition};
use crowdcrunch_runtime::{
    Database, GrpcServer, ServeError, ServerSettings, Shutdown, StorageSettings,
};
use futures::future::BoxFuture;
use sqlx::migrate::Migrator;
use {
    crowdcrunch_customers as customers, crowdcrunch_exchanges as exchanges,
    crowdcrunch_fulfillment as fulfillment, crowdcrunch_inventory as inventory,
    crowdcrunch_ledger as ledger, crowdcrunch_orders as orders, crowdcrunch_payments as payments,
};

/// A service this binary runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceName {
    /// Customer accounts.
    Customers,
    /// The product catalogue, stock and reservations.
    Inventory,
    /// Orders and the order saga.
    Orders,
    /// Card tokens, authorisations, captures, voids and refunds.
    Payments,
    /// Shipments and their progress.
    Fulfillment,
    /// Returns and exchanges.
    Exchanges,
    /// The append-only log of every event.
    Ledger,
}

impl ServiceName {
    /// Every service, in start order: each after the services it calls (the ledger first, since
    /// every other delivers its events to it).
    pub const ALL: [Self; 7] = [
        Self::Ledger,
        Self::Customers,
        Self::Inventory,
        Self::Payments,
        Self::Fulfillment,
        Self::Orders,
        Self::Exchanges,
    ];

    /// The services this one calls: the call graph, as `chart/values.yaml` also states it.
    pub fn calls(self) -> &'static [Upstream] {
        match self {
            Self::Customers | Self::Inventory | Self::Payments | Self::Fulfillment => {
                &[Upstream::Ledger]
            }
            Self::Orders => &[
                Upstream::Customers,
                Upstream::Inventory,
                Upstream::Payments,
                Upstream::Fulfillment,
                Upstream::Ledger,
            ],
            Self::Exchanges => &[
                Upstream::Orders,
                Upstream::Inventory,
                Upstream::Payments,
                Upstream::Fulfillment,
                Upstream::Ledger,
            ],
            Self::Ledger => &[],
        }
    }

    /// The name used for logs, databases, ports and event sources.
    pub fn as_str(self) -> &'static str {
        self.upstream().as_str()
    }

    /// The service as others' configuration names it.
    pub fn upstream(self) -> Upstream {
        match self {
            Self::Customers => Upstream::Customers,
            Self::Inventory => Upstream::Inventory,
            Self::Orders => Upstream::Orders,
            Self::Payments => Upstream::Payments,
            Self::Fulfillment => Upstream::Fulfillment,
            Self::Exchanges => Upstream::Exchanges,
            Self::Ledger => Upstream::Ledger,
        }
    }

    /// The service's own port in `dev` (and the default of `serve`).
    pub fn default_port(self) -> u16 {
        match self {
            Self::Customers => 50051,
            Self::Inventory => 50052,
            Self::Orders => 50053,
            Self::Payments => 50054,
            Self::Fulfillment => 50055,
            Self::Exchanges => 50056,
            Self::Ledger => 50057,
        }
    }
}

/// Client channels to the services one service calls, checked before anything is bound.
pub struct Upstreams {
    channels: Vec<(Upstream, GrpcChannel)>,
}

impl Upstreams {
    /// The upstreams `name` calls, from `args`; a missing one is an error that names its variable.
    /// Channels connect lazily: a service that is down fails calls, never the start.
    pub fn resolve(
        name: ServiceName,
        args: &UpstreamArgs,
        tls: Option<&TlsSettings>,
    ) -> anyhow::Result<Self> {
        let channels = name
            .calls()
            .iter()
            .map(|upstream| {
                let endpoints = args.require(name.as_str(), *upstream)?;
                Ok((
                    *upstream,
                    crowdcrunch_runtime::client::channel(&endpoints, tls)?,
                ))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { channels })
    }

    fn channel(&self, upstream: Upstream) -> anyhow::Result<GrpcChannel> {
        self.channels
            .iter()
            .find(|(candidate, _)| *candidate == upstream)
            .map(|(_, channel)| channel.clone())
            .with_context(|| format!("the {} channel was not resolved", upstream.as_str()))
    }

    fn ledger(&self) -> anyhow::Result<GrpcChannel> {
        self.channel(Upstream::Ledger)
    }
}

type Serve = Box<dyn FnOnce(Shutdown) -> BoxFuture<'static, Result<(), ServeError>> + Send>;

/// A service whose storage is open and whose port is bound; [`BoundService::serve`] runs it.
pub struct BoundService {
    name: ServiceName,
    addr: std::net::SocketAddr,
    serve: Serve,
}

impl BoundService {
    /// `make` builds the service from the process's shutdown signal; `relay` delivers its outbox.
    fn new<S: GrpcService>(
        name: ServiceName,
        server: GrpcServer,
        relay: Option<Relay>,
        make: impl FnOnce(Shutdown) -> ServiceDefinition<S> + Send + 'static,
    ) -> Self {
        let addr = server.local_addr();
        let serve: Serve = Box::new(move |shutdown| {
            Box::pin(async move {
                // The relay outlives the drain, so that the events of the last calls get their
                // chance to reach the ledger before the process exits.
                let relay_stop = Shutdown::new();
                let relay = relay.map(|relay| tokio::spawn(relay.run(relay_stop.clone())));
                let served = server.serve(make(shutdown.clone()), shutdown).await;
                relay_stop.trigger();
                if let Some(relay) = relay
                    && let Err(error) = relay.await
                {
                    tracing::error!(%error, "the outbox relay failed");
                }
                served
            })
        });
        Self { name, addr, serve }
    }

    /// The bound address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// The service.
    pub fn name(&self) -> ServiceName {
        self.name
    }

    /// Serves until `shutdown` fires and the drain ends.
    pub async fn serve(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let name = self.name.as_str();
        (self.serve)(shutdown)
            .await
            .with_context(|| format!("{name} failed"))
    }
}

/// Opens the storage of `name`, with the clients in `upstreams`, and binds its port.
pub async fn bind(
    name: ServiceName,
    server: ServerSettings,
    storage: &StorageSettings,
    upstreams: &Upstreams,
) -> anyhow::Result<BoundService> {
    match name {
        ServiceName::Customers => {
            let database = open(
                name,
                storage,
                customers::DATABASE_NAME,
                &customers::MIGRATOR,
            )
            .await?;
            with_outbox(name, database, server, upstreams, |database, outbox, _| {
                customers::service(database, outbox)
            })
            .await
        }
        ServiceName::Inventory => {
            let database = open(
                name,
                storage,
                inventory::DATABASE_NAME,
                &inventory::MIGRATOR,
            )
            .await?;
            with_outbox(name, database, server, upstreams, |database, outbox, _| {
                inventory::service(database, outbox)
            })
            .await
        }
        ServiceName::Payments => {
            let database =
                open(name, storage, payments::DATABASE_NAME, &payments::MIGRATOR).await?;
            with_outbox(name, database, server, upstreams, |database, outbox, _| {
                payments::service(database, outbox)
            })
            .await
        }
        ServiceName::Fulfillment => {
            let database = open(
                name,
                storage,
                fulfillment::DATABASE_NAME,
                &fulfillment::MIGRATOR,
            )
            .await?;
            with_outbox(name, database, server, upstreams, |database, outbox, _| {
                fulfillment::service(database, outbox)
            })
            .await
        }
        ServiceName::Orders => {
            let clients = orders::Clients {
                customers: CustomerServiceClient::new(upstreams.channel(Upstream::Customers)?),
                inventory: InventoryServiceClient::new(upstreams.channel(Upstream::Inventory)?),
                payments: PaymentServiceClient::new(upstreams.channel(Upstream::Payments)?),
                fulfillment: FulfillmentServiceClient::new(
                    upstreams.channel(Upstream::Fulfillment)?,
                ),
                ledger: LedgerServiceClient::new(upstreams.ledger()?),
            };
            let database = open(name, storage, orders::DATABASE_NAME, &orders::MIGRATOR).await?;
            with_outbox(
                name,
                database,
                server,
                upstreams,
                |database, outbox, shutdown| orders::service(database, outbox, clients, shutdown),
            )
            .await
        }
        ServiceName::Exchanges => {
            let clients = exchanges::Clients {
                orders: OrderServiceClient::new(upstreams.channel(Upstream::Orders)?),
                inventory: InventoryServiceClient::new(upstreams.channel(Upstream::Inventory)?),
                payments: PaymentServiceClient::new(upstreams.channel(Upstream::Payments)?),
                fulfillment: FulfillmentServiceClient::new(
                    upstreams.channel(Upstream::Fulfillment)?,
                ),
            };
            let database = open(
                name,
                storage,
                exchanges::DATABASE_NAME,
                &exchanges::MIGRATOR,
            )
            .await?;
            with_outbox(name, database, server, upstreams, |database, outbox, _| {
                exchanges::service(database, outbox, clients)
            })
            .await
        }
        ServiceName::Ledger => {
            let database = open(name, storage, ledger::DATABASE_NAME, &ledger::MIGRATOR).await?;
            let server = bind_port(name, server).await?;
            Ok(BoundService::new(name, server, None, |shutdown| {
                ledger::service(database, shutdown)
            }))
        }
    }
}

/// A service that records its changes in an outbox, with the relay that delivers it to the
/// ledger.
async fn with_outbox<S: GrpcService>(
    name: ServiceName,
    database: Database,
    server: ServerSettings,
    upstreams: &Upstreams,
    service: impl FnOnce(Database, Outbox, Shutdown) -> ServiceDefinition<S> + Send + 'static,
) -> anyhow::Result<BoundService> {
    let outbox = Outbox::open(&database, name.as_str())
        .await
        .with_context(|| format!("cannot open the {} outbox", name.as_str()))?;
    let relay = outbox.relay(upstreams.ledger()?);
    let server = bind_port(name, server).await?;
    Ok(BoundService::new(
        name,
        server,
        Some(relay),
        move |shutdown| service(database, outbox, shutdown),
    ))
}

/// The migrated database `database_name` of `name`.
async fn open(
    name: ServiceName,
    storage: &StorageSettings,
    database_name: &str,
    migrator: &Migrator,
) -> anyhow::Result<Database> {
    Database::connect(storage, database_name, migrator)
        .await
        .with_context(|| format!("cannot open the {} database", name.as_str()))
}

async fn bind_port(name: ServiceName, server: ServerSettings) -> anyhow::Result<GrpcServer> {
    GrpcServer::bind(server)
        .await
        .with_context(|| format!("cannot start {}", name.as_str()))
}
