//! An HTTP server (axum on hyper) with the same life cycle as the gRPC servers:
//! [`HttpServer::bind`] binds (port 0 in tests) so the address is known before serving;
//! [`HttpServer::serve`] serves until the [`Shutdown`] fires, then stops accepting, lets in-flight
//! requests finish, and closes what is still open when the drain grace runs out.
//!
//! A client cannot hold the server's connections for free ([`ConnectionLimits`]): at most
//! `max_connections` are open at once (more wait in the kernel's backlog, and an upgraded
//! WebSocket counts until it closes), a request's headers must arrive within the header read
//! timeout, and a connection with no request in flight is closed after the idle timeout (a fresh
//! connection after the header read timeout). Handlers see the client's address as
//! `axum::extract::ConnectInfo<SocketAddr>`.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt as _;

use crate::edge::EdgeSettings;
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

/// How long and how many connections a client may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time to send a request's headers, counted from the connection's first byte or, on a
    /// kept-alive HTTP/1.1 connection, from the end of the previous response (hyper's timer).
    pub header_read_timeout: Duration,
    /// Time a connection with no request in flight stays open.
    pub idle_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    /// The edge's production limits.
    fn default() -> Self {
        Self::from(&EdgeSettings::default())
    }
}

impl From<&EdgeSettings> for ConnectionLimits {
    fn from(settings: &EdgeSettings) -> Self {
        Self {
            header_read_timeout: settings.header_read_timeout,
            idle_timeout: settings.idle_timeout,
            max_connections: settings.max_connections,
        }
    }
}

/// A bound, not yet serving, HTTP server.
pub struct HttpServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    limits: ConnectionLimits,
}

impl HttpServer {
    /// Binds `addr`, with the default [`ConnectionLimits`].
    pub async fn bind(addr: SocketAddr) -> Result<Self, ServeError> {
        let (listener, local_addr) = bind_listener(addr).await?;
        Ok(Self {
            listener,
            local_addr,
            limits: ConnectionLimits::default(),
        })
    }

    /// The same server, holding its clients to `limits`.
    pub fn with_limits(self, limits: ConnectionLimits) -> Self {
        Self { limits, ..self }
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
        let serving = accept_until_shutdown(self.listener, router, self.limits, shutdown.clone());
        // Dropping `serving` when the grace runs out aborts the connections left.
        let _ = shutdown.drain(serving, grace, local_addr).await;
        tracing::info!(%local_addr, "stopped");
        Ok(())
    }
}

/// Accepts connections (each holding a permit of the connection limit) until `shutdown` fires,
/// then waits for the open ones to finish their requests and close.
async fn accept_until_shutdown(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    shutdown: Shutdown,
) {
    let local_addr = listener.local_addr().ok();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .http2()
        .timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    loop {
        // The permit comes first: past the limit, clients wait in the kernel's backlog.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or a connection reset before accept: try again shortly.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        // No Nagle delay on small responses.
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        connections.spawn(serve_connection(
            builder.clone(),
            Held {
                io: tcp,
                _permit: permit,
            },
            remote,
            router.clone(),
            limits,
            shutdown.clone(),
        ));
    }
    tracing::info!(local_addr = ?local_addr, "draining");
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Serves one connection until the client closes it, it idles out, or the shutdown asks it to
/// finish (the request in flight is answered first).
async fn serve_connection(
    builder: Arc<auto::Builder<TokioExecutor>>,
    io: Held,
    remote: SocketAddr,
    router: axum::Router,
    limits: ConnectionLimits,
    shutdown: Shutdown,
) {
    let (activity, idle) = watch::channel(0_usize);
    let activity = Arc::new(activity);
    let service = tower::service_fn(move |mut request: http::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        let in_flight = InFlight::start(activity.clone());
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await;
            drop(in_flight);
            response
        }
    });
    let connection =
        builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service));
    tokio::pin!(connection);
    tokio::select! {
        served = connection.as_mut() => {
            log_end(served, remote);
            return;
        }
        () = idled_out(idle, limits) => tracing::debug!(%remote, "closing an idle connection"),
        () = shutdown.cancelled() => {}
    }
    connection.as_mut().graceful_shutdown();
    log_end(connection.await, remote);
}

fn log_end(served: Result<(), Box<dyn std::error::Error + Send + Sync>>, remote: SocketAddr) {
    if let Err(error) = served {
        tracing::debug!(%remote, %error, "connection ended");
    }
}

/// Resolves once no request has been in flight for the idle timeout (before the first request,
/// for the header read timeout: a client that connects and says nothing is not kept).
async fn idled_out(mut in_flight: watch::Receiver<usize>, limits: ConnectionLimits) {
    let mut allowed = limits.header_read_timeout;
    loop {
        let busy = *in_flight.borrow_and_update() > 0;
        let changed = async {
            if in_flight.changed().await.is_err() {
                // The connection is gone; its own future ends the select.
                std::future::pending::<()>().await;
            }
        };
        if busy {
            changed.await;
        } else {
            tokio::select! {
                () = tokio::time::sleep(allowed) => return,
                () = changed => {}
            }
        }
        allowed = limits.idle_timeout;
    }
}

/// One request in flight on a connection, counted until dropped.
struct InFlight(Arc<watch::Sender<usize>>);

impl InFlight {
    fn start(activity: Arc<watch::Sender<usize>>) -> Self {
        activity.send_modify(|count| *count += 1);
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|count| *count -= 1);
    }
}

pin_project_lite::pin_project! {
    /// A client's socket with its permit of the connection limit, released when the socket
    /// closes (also after an upgrade hands it to a WebSocket).
    struct Held {
        #[pin]
        io: TcpStream,
        _permit: OwnedSemaphorePermit,
    }
}

impl AsyncRead for Held {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl AsyncWrite for Held {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
