//! The process-wide shutdown signal: SIGTERM or Ctrl-C starts the drain of every server, and
//! long-lived streams end themselves when it fires.

use std::fmt::Display;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// A cloneable handle on "the process is shutting down". Servers drain when it fires; streaming
/// RPCs select on [`Shutdown::cancelled`] so that an open stream never holds the process.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    /// A shutdown signal that fires only when [`Shutdown::trigger`] is called.
    pub fn new() -> Self {
        Self::default()
    }

    /// A shutdown signal that also fires on SIGTERM or SIGINT (Ctrl-C).
    pub fn on_signals() -> Self {
        let shutdown = Self::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received, draining");
            trigger.trigger();
        });
        shutdown
    }

    /// Starts the shutdown now.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether the shutdown has started.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once the shutdown has started.
    pub async fn cancelled(&self) {
        self.token.cancelled().await;
    }

    /// Runs `serving`, a server that stops accepting when this shutdown fires and ends once its
    /// last connection closes, to its end; if connections are still open `grace` after the
    /// shutdown fired, logs it (naming `server`) and answers `None`: dropping `serving` closes
    /// what is left.
    pub(crate) async fn drain<T>(
        &self,
        serving: impl Future<Output = T>,
        grace: Duration,
        server: impl Display,
    ) -> Option<T> {
        tokio::select! {
            served = serving => Some(served),
            () = async { self.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(%server, ?grace, "drain grace elapsed; closing the connections left");
                None
            }
        }
    }
}

async fn wait_for_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
