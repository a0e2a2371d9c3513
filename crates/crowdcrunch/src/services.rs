//! The one place that knows how each service is assembled: its database, its dependencies, its
//! default port.

use anyhow::Context as _;
use crowdcrunch_runtime::server::{GrpcService, ServiceDefinition};
use crowdcrunch_runtime::{
    Database, GrpcServer, ServeError, ServerSettings, Shutdown, StorageSettings,
};
use futures::future::BoxFuture;

/// A service this binary runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceName {
    /// Customer accounts.
    Customers,
}

impl ServiceName {
    /// Every service, in start order.
    pub const ALL: [Self; 1] = [Self::Customers];

    /// The name used for logs, databases and ports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customers => "customers",
        }
    }

    /// The service's own port in `dev` (and the default of `serve`).
    pub fn default_port(self) -> u16 {
        match self {
            Self::Customers => 50051,
        }
    }
}

/// A service whose storage is open and whose port is bound; [`BoundService::serve`] runs it.
pub struct BoundService {
    name: ServiceName,
    addr: std::net::SocketAddr,
    serve: Box<dyn FnOnce(Shutdown) -> BoxFuture<'static, Result<(), ServeError>> + Send>,
}

impl BoundService {
    fn new<S: GrpcService>(
        name: ServiceName,
        server: GrpcServer,
        definition: ServiceDefinition<S>,
    ) -> Self {
        let addr = server.local_addr();
        Self {
            name,
            addr,
            serve: Box::new(move |shutdown| Box::pin(server.serve(definition, shutdown))),
        }
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

/// Opens the storage of `name` and binds its port.
pub async fn bind(
    name: ServiceName,
    server: ServerSettings,
    storage: &StorageSettings,
) -> anyhow::Result<BoundService> {
    let database_error = || format!("cannot open the {} database", name.as_str());
    let bind_error = || format!("cannot start {}", name.as_str());
    match name {
        ServiceName::Customers => {
            let database = Database::connect(
                storage,
                crowdcrunch_customers::DATABASE_NAME,
                &crowdcrunch_customers::MIGRATOR,
            )
            .await
            .with_context(database_error)?;
            let server = GrpcServer::bind(server).await.with_context(bind_error)?;
            Ok(BoundService::new(
                name,
                server,
                crowdcrunch_customers::service(database),
            ))
        }
    }
}
