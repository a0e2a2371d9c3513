//! The GraphQL edge in the binary: built from its settings and the backends' endpoints, bound,
//! then served until the shutdown (`serve edge`, and inside `dev`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use crowdcrunch_runtime::Shutdown;
use crowdcrunch_runtime::client::Endpoints;
use crowdcrunch_runtime::config::{TlsSettings, Upstream, UpstreamArgs};
use crowdcrunch_runtime::edge::EdgeSettings;
use crowdcrunch_runtime::http::HttpServer;

/// The edge's port in `dev` (and the default of `serve edge`).
pub const DEFAULT_PORT: u16 = 8080;

/// Every service the edge may call.
const BACKENDS: [Upstream; 7] = [
    Upstream::Customers,
    Upstream::Inventory,
    Upstream::Orders,
    Upstream::Payments,
    Upstream::Fulfillment,
    Upstream::Exchanges,
    Upstream::Ledger,
];

/// The configured backends' endpoints, by service name. A service left out answers UNAVAILABLE
/// for its fields; the others still resolve.
pub fn endpoints(upstream: &UpstreamArgs) -> HashMap<String, Endpoints> {
    BACKENDS
        .into_iter()
        .filter_map(|backend| {
            let endpoints = upstream.require("edge", backend).ok()?;
            Some((backend.as_str().to_owned(), endpoints))
        })
        .collect()
}

/// A built and bound edge.
pub struct BoundEdge {
    server: HttpServer,
    edge: crowdcrunch_edge::Gateway,
    grace: Duration,
}

impl BoundEdge {
    /// Builds the schema and the channels, then binds `listen`.
    pub async fn bind(
        listen: SocketAddr,
        settings: EdgeSettings,
        endpoints: &HashMap<String, Endpoints>,
        tls: Option<&TlsSettings>,
        grace: Duration,
    ) -> anyhow::Result<Self> {
        let edge = crowdcrunch_edge::Gateway::new(settings, endpoints, tls)
            .context("cannot build the GraphQL schema")?;
        let server = HttpServer::bind(listen)
            .await
            .context("cannot start the edge")?;
        Ok(Self {
            server,
            edge,
            grace,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Serves until `shutdown` fires and the drain ends.
    pub async fn serve(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let router = crowdcrunch_edge::router(self.edge, shutdown.clone());
        self.server
            .serve(router, shutdown, self.grace)
            .await
            .context("the edge failed")
    }
}
