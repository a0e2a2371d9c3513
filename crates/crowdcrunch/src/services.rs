//! How a row of the [roster](crate::roster) becomes a running service: the channels to the
//! services it calls, its migrated database, its outbox and relay, its bound port.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use anyhow::Context as _;
use crowdcrunch_outbox::{Outbox, Relay};
use crowdcrunch_runtime::access::{AccessRules, Gatekeeper};
use crowdcrunch_runtime::client::{GrpcChannel, ServiceToken};
use crowdcrunch_runtime::config::TlsSettings;
use crowdcrunch_runtime::server::{GrpcService, ServiceDefinition};
use crowdcrunch_runtime::{
    Database, GrpcServer, ServeError, ServerSettings, Shutdown, StorageSettings,
};
use futures::future::BoxFuture;

use crate::roster::{EVENT_LOG, Service, UpstreamArgs};

/// The access rules of every RPC, read from the protos; a rule that cannot be applied is an
/// error naming its RPC, and the process does not start.
pub fn access_rules() -> anyhow::Result<AccessRules> {
    AccessRules::from_descriptor_set(crowdcrunch_proto::FILE_DESCRIPTOR_SET)
        .context("the access rules in the protos cannot be used")
}

/// Client channels to the services one service calls, checked before anything is bound.
pub struct Upstreams {
    channels: BTreeMap<&'static str, GrpcChannel>,
}

impl Upstreams {
    /// The channels to the services `service` calls, from `args`; a missing one is an error that
    /// names its variable. Channels connect lazily: a service that is down fails calls, never
    /// the start. Every call carries `identity`, the service's own token, when there is one
    /// (without it, mTLS or the mesh names the service).
    pub fn resolve(
        service: &Service,
        args: &UpstreamArgs,
        tls: Option<&TlsSettings>,
        identity: Option<&ServiceToken>,
    ) -> anyhow::Result<Self> {
        let channels = service
            .calls
            .iter()
            .map(|callee| {
                let endpoints = args.require(service.name, callee)?;
                let channel = crowdcrunch_runtime::client::channel(&endpoints, tls)?;
                let channel = match identity {
                    Some(token) => channel.carrying(token.clone()),
                    None => channel,
                };
                Ok((*callee, channel))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { channels })
    }

    /// The channel to `callee`; an error when the roster does not say that this service calls it.
    fn channel(&self, callee: &str) -> anyhow::Result<GrpcChannel> {
        self.channels.get(callee).cloned().with_context(|| {
            format!("the roster does not list {callee} among the services this one calls")
        })
    }
}

/// What a service is made from: its migrated database, its outbox when it has one, and the
/// channels to the services it calls.
pub struct Parts<'a> {
    service: &'static Service,
    database: Database,
    outbox: Option<Outbox>,
    upstreams: &'a Upstreams,
}

impl Parts<'_> {
    /// The channel to `callee`, one of the services the roster says this one calls.
    pub fn channel(&self, callee: &str) -> anyhow::Result<GrpcChannel> {
        self.upstreams.channel(callee)
    }

    /// The database, for a service without an outbox.
    pub fn into_database(self) -> Database {
        self.database
    }

    /// The service `service` makes from nothing but its database and its outbox.
    pub fn with_outbox_only<S: GrpcService>(
        self,
        service: fn(Database, Outbox) -> ServiceDefinition<S>,
    ) -> anyhow::Result<Made> {
        let (database, outbox) = self.into_database_and_outbox()?;
        Ok(Made::new(move |_| service(database, outbox)))
    }

    /// The database and the outbox in it; an error when the roster gives the service no outbox.
    pub fn into_database_and_outbox(self) -> anyhow::Result<(Database, Outbox)> {
        let outbox = self
            .outbox
            .with_context(|| format!("the roster gives {} no outbox", self.service.name))?;
        Ok((self.database, outbox))
    }
}

type Serve =
    Box<dyn FnOnce(GrpcServer, Shutdown) -> BoxFuture<'static, Result<(), ServeError>> + Send>;

/// A service made from its [`Parts`], to be served on its bound port.
pub struct Made(Serve);

impl Made {
    /// The service `definition` builds from the process's shutdown signal.
    pub fn new<S: GrpcService>(
        definition: impl FnOnce(Shutdown) -> ServiceDefinition<S> + Send + 'static,
    ) -> Self {
        Self(Box::new(move |server, shutdown| {
            Box::pin(async move { server.serve(definition(shutdown.clone()), shutdown).await })
        }))
    }
}

/// A service whose storage is open and whose port is bound; [`BoundService::serve`] runs it.
pub struct BoundService {
    service: &'static Service,
    server: GrpcServer,
    relay: Option<Relay>,
    made: Made,
}

impl BoundService {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The service's row in the roster.
    pub fn service(&self) -> &'static Service {
        self.service
    }

    /// Serves until `shutdown` fires and the drain ends.
    pub async fn serve(self, shutdown: Shutdown) -> anyhow::Result<()> {
        // The relay outlives the drain, so that the events of the last calls get their chance
        // to reach the ledger before the process exits.
        let relay_stop = Shutdown::new();
        let relay = self
            .relay
            .map(|relay| tokio::spawn(relay.run(relay_stop.clone())));
        let served = (self.made.0)(self.server, shutdown).await;
        relay_stop.trigger();
        if let Some(relay) = relay
            && let Err(error) = relay.await
        {
            tracing::error!(%error, "the outbox relay failed");
        }
        served.with_context(|| format!("{} failed", self.service.name))
    }
}

/// Opens the storage of `service`, makes it with the channels in `upstreams`, and binds its port,
/// admitting calls with `gatekeeper`.
pub async fn bind(
    service: &'static Service,
    server: ServerSettings,
    storage: &StorageSettings,
    upstreams: &Upstreams,
    gatekeeper: Gatekeeper,
) -> anyhow::Result<BoundService> {
    let name = service.name;
    let database = Database::connect(storage, service.database, service.migrator)
        .await
        .with_context(|| format!("cannot open the {name} database"))?;
    let (outbox, relay) = if service.outbox {
        let outbox = Outbox::open(&database, name)
            .await
            .with_context(|| format!("cannot open the {name} outbox"))?;
        let relay = outbox.relay(upstreams.channel(EVENT_LOG)?);
        (Some(outbox), Some(relay))
    } else {
        (None, None)
    };
    let made = (service.make)(Parts {
        service,
        database,
        outbox,
        upstreams,
    })?;
    let server = GrpcServer::bind(server, gatekeeper)
        .await
        .with_context(|| format!("cannot start {name}"))?;
    Ok(BoundService {
        service,
        server,
        relay,
        made,
    })
}
