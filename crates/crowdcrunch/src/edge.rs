//! The GraphQL edge in the binary: built from its settings and the backends' endpoints, bound,
//! then served until the shutdown (`serve edge`, and inside `dev`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use crowdcrunch::roster::UpstreamArgs;
use crowdcrunch_runtime::Shutdown;
use crowdcrunch_runtime::auth::Verifier;
use crowdcrunch_runtime::client::Endpoints;
use crowdcrunch_runtime::config::TlsSettings;
use crowdcrunch_runtime::edge::EdgeSettings;
use crowdcrunch_runtime::http::{ConnectionLimits, HttpServer};

/// The configured services' endpoints, by service name: the edge calls every service of the
/// roster. A service left out answers UNAVAILABLE for its fields; the others still resolve.
pub fn endpoints(upstream: &UpstreamArgs) -> HashMap<String, Endpoints> {
    upstream
        .configured()
        .map(|(name, endpoints)| (name.to_owned(), endpoints.clone()))
        .collect()
}

/// A built and bound edge.
pub struct BoundEdge {
    server: HttpServer,
    edge: crowdcrunch_edge::Gateway,
    grace: Duration,
    extra_routes: Option<axum::Router>,
}

impl BoundEdge {
    /// Binds `listen`, then builds the schema and the channels; callers' tokens are verified by
    /// `verifier`.
    pub async fn bind(
        listen: SocketAddr,
        settings: EdgeSettings,
        endpoints: &HashMap<String, Endpoints>,
        tls: Option<&TlsSettings>,
        verifier: Verifier,
        grace: Duration,
    ) -> anyhow::Result<Self> {
        let server = HttpServer::bind(listen)
            .await
            .context("cannot start the edge")?;
        Self::on(server, settings, endpoints, tls, verifier, grace)
    }

    /// The edge on a server already bound (`dev` binds it first: its JWKS is served there).
    pub fn on(
        server: HttpServer,
        settings: EdgeSettings,
        endpoints: &HashMap<String, Endpoints>,
        tls: Option<&TlsSettings>,
        verifier: Verifier,
        grace: Duration,
    ) -> anyhow::Result<Self> {
        let edge = crowdcrunch_edge::Gateway::new(settings, endpoints, tls, verifier)
            .context("cannot build the GraphQL schema")?;
        Ok(Self {
            server,
            edge,
            grace,
            extra_routes: None,
        })
    }

    /// The same edge, also serving `routes` (`dev`'s JWKS).
    pub fn with_routes(self, routes: axum::Router) -> Self {
        Self {
            extra_routes: Some(routes),
            ..self
        }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Serves until `shutdown` fires and the drain ends, holding clients to the edge's
    /// connection limits (header read and idle timeouts, most open connections).
    pub async fn serve(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let limits = ConnectionLimits::from(self.edge.settings());
        let router = crowdcrunch_edge::router(self.edge, shutdown.clone());
        let router = match self.extra_routes {
            Some(routes) => router.merge(routes),
            None => router,
        };
        self.server
            .with_limits(limits)
            .serve(router, shutdown, self.grace)
            .await
            .context("the edge failed")
    }
}
