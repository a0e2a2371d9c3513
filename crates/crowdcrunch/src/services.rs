//! The one place that knows how each service is assembled: its database, the services it calls,
//! its outbox relay, its default port.

use anyhow::Context as _;
use crowdcrunch_outbox::{Outbox, Relay};
use crowdcrunch_runtime::client::GrpcChannel;
use crowdcrunch_runtime::config::{TlsSettings, Upstream, UpstreamArgs};
use crowdcrunch_runtime::server::{GrpcService, ServiceDefinition};
use crowdcrunch_runtime::{
    Database, GrpcServer, ServeError, ServerSettings, Shutdown, StorageSettings,
};
use futures::future::BoxFuture;
use sqlx::migrate::Migrator;

/// A service this binary runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceName {
    /// Customer accounts.
    Customers,
    /// The product catalogue, stock and reservations.
    Inventory,
    /// The append-only log of every event.
    Ledger,
}

impl ServiceName {
    /// Every service, in start order: the ledger first, since the others deliver their events to
    /// it.
    pub const ALL: [Self; 3] = [Self::Ledger, Self::Customers, Self::Inventory];

    /// The name used for logs, databases, ports and event sources.
    pub fn as_str(self) -> &'static str {
        self.upstream().as_str()
    }

    /// The service as others' configuration names it.
    pub fn upstream(self) -> Upstream {
        match self {
            Self::Customers => Upstream::Customers,
            Self::Inventory => Upstream::Inventory,
            Self::Ledger => Upstream::Ledger,
        }
    }

    /// The service's own port in `dev` (and the default of `serve`).
    pub fn default_port(self) -> u16 {
        match self {
            Self::Customers => 50051,
            Self::Inventory => 50052,
            Self::Ledger => 50057,
        }
    }
}

/// Client channels to the services one service calls, checked before anything is bound.
pub struct Upstreams {
    ledger: Option<GrpcChannel>,
}

impl Upstreams {
    /// The upstreams `name` needs, from `args`; a missing one is an error that names its variable.
    /// Channels connect lazily: a service that is down fails calls, never the start.
    pub fn resolve(
        name: ServiceName,
        args: &UpstreamArgs,
        tls: Option<&TlsSettings>,
    ) -> anyhow::Result<Self> {
        let channel = |upstream| -> anyhow::Result<GrpcChannel> {
            let endpoints = args.require(name.as_str(), upstream)?;
            Ok(crowdcrunch_runtime::client::channel(&endpoints, tls)?)
        };
        let ledger = match name {
            ServiceName::Customers | ServiceName::Inventory => Some(channel(Upstream::Ledger)?),
            ServiceName::Ledger => None,
        };
        Ok(Self { ledger })
    }

    fn ledger(&self) -> anyhow::Result<GrpcChannel> {
        self.ledger
            .clone()
            .context("the ledger channel was not resolved")
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
                crowdcrunch_customers::DATABASE_NAME,
                &crowdcrunch_customers::MIGRATOR,
            )
            .await?;
            with_outbox(
                name,
                database,
                server,
                upstreams,
                crowdcrunch_customers::service,
            )
            .await
        }
        ServiceName::Inventory => {
            let database = open(
                name,
                storage,
                crowdcrunch_inventory::DATABASE_NAME,
                &crowdcrunch_inventory::MIGRATOR,
            )
            .await?;
            with_outbox(
                name,
                database,
                server,
                upstreams,
                crowdcrunch_inventory::service,
            )
            .await
        }
        ServiceName::Ledger => {
            let database = open(
                name,
                storage,
                crowdcrunch_ledger::DATABASE_NAME,
                &crowdcrunch_ledger::MIGRATOR,
            )
            .await?;
            let server = bind_port(name, server).await?;
            Ok(BoundService::new(name, server, None, |shutdown| {
                crowdcrunch_ledger::service(database, shutdown)
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
    service: fn(Database, Outbox) -> ServiceDefinition<S>,
) -> anyhow::Result<BoundService> {
    let outbox = Outbox::open(&database, name.as_str())
        .await
        .with_context(|| format!("cannot open the {} outbox", name.as_str()))?;
    let relay = outbox.relay(upstreams.ledger()?);
    let server = bind_port(name, server).await?;
    Ok(BoundService::new(name, server, Some(relay), move |_| {
        service(database, outbox)
    }))
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
