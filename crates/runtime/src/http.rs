//! An HTTP server (axum) with the same life cycle as the gRPC servers: [`HttpServer::bind`] binds
//! (port 0 in tests) so the address is known before serving; [`HttpServer::serve`] serves until
//! the [`Shutdown`] fires, then stops accepting, lets in-flight requests finish, and closes what
//! is still open when the drain grace runs out.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::server::ServeError;
use crate::shutdown::Shutdown;

/// Binds `addr`; answers the listener and the address it really got (port 0 picks one).
pub(crate) async fn bind_listener(
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), ServeError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    Ok((listener, local_addr))
}

/// A bound, not yet serving, HTTP server.
pub struct HttpServer {
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl HttpServer {
    /// Binds `addr`.
    pub async fn bind(addr: SocketAddr) -> Result<Self, ServeError> {
        let (listener, local_addr) = bind_listener(addr).await?;
        Ok(Self {
            listener,
            local_addr,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves `router` until `shutdown` fires, then drains within `grace`.
    pub async fn serve(
        self,
        router: axum::Router,
        shutdown: Shutdown,
        grace: Duration,
    ) -> Result<(), ServeError> {
        let local_addr = self.local_addr;
        tracing::info!(%local_addr, "serving HTTP");
        let drain = {
            let shutdown = shutdown.clone();
            async move {
                shutdown.cancelled().await;
                tracing::info!(%local_addr, "draining");
            }
        };
        // No Nagle delay on small responses (axum leaves TCP_NODELAY off).
        let listener = axum::serve::ListenerExt::tap_io(self.listener, |tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
        });
        let serving = axum::serve(listener, router).with_graceful_shutdown(drain);
        let result = shutdown
            .drain(
                std::future::IntoFuture::into_future(serving),
                grace,
                local_addr,
            )
            .await
            .map_or(Ok(()), |served| served.map_err(ServeError::Http));
        tracing::info!(%local_addr, "stopped");
        result
    }
}
