//! The WebSocket side of `/graphql`: graphql-transport-ws, exactly as its protocol says
//! (`protocol`), one connection at a time (`session`), with the open operations of every caller
//! counted over all their connections (`limits`).
//!
//! The upgrade admits a browser only from an allowed `Origin` (a page elsewhere must not use a
//! visitor's socket: cross-site WebSocket hijacking); a client that sends none is not a browser
//! and is admitted. Every operation a socket carries runs through the same preparation as a POST
//! ([`Gateway::prepare_from`]), so it obeys every rule a POST obeys. Every operation started by
//! `subscribe` (a query or mutation too, while it runs) counts against
//! `max_subscriptions_per_connection` and the caller's `max_subscriptions_per_caller`; over
//! either, that operation gets an `error` with `TOO_MANY_SUBSCRIPTIONS`.

mod limits;
mod protocol;
mod session;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts as _, WebSocketUpgrade};
use axum::response::IntoResponse;
use crowdcrunch_runtime::Shutdown;
use http::{HeaderMap, StatusCode, header};

use crate::request::Gateway;
use limits::CallerOperations;
use protocol::SUBPROTOCOL;
use session::Session;

/// What every WebSocket connection of one edge shares: the gateway, the shutdown that ends them
/// and the count of each caller's open operations.
#[derive(Debug, Clone)]
pub(crate) struct Sockets {
    edge: Gateway,
    shutdown: Shutdown,
    callers: CallerOperations,
}

impl Sockets {
    /// The WebSocket side of `edge`, whose connections close when `shutdown` fires.
    pub(crate) fn new(edge: Gateway, shutdown: Shutdown) -> Self {
        Self {
            edge,
            shutdown,
            callers: CallerOperations::default(),
        }
    }

    /// Upgrades a GET of `/graphql` to a graphql-transport-ws connection: 403 for an `Origin`
    /// that is not allowed, before anything else.
    pub(crate) async fn upgrade(
        &self,
        parts: &mut http::request::Parts,
        headers: &HeaderMap,
    ) -> axum::response::Response {
        if let Some(origin) = headers.get(header::ORIGIN) {
            let allowed = origin.to_str().is_ok_and(|origin| {
                self.edge
                    .settings()
                    .allowed_origins
                    .iter()
                    .any(|allowed| allowed.matches(origin))
            });
            if !allowed {
                return (
                    StatusCode::FORBIDDEN,
                    "this origin may not open a WebSocket to the API\n",
                )
                    .into_response();
            }
        }
        let upgrade = match WebSocketUpgrade::from_request_parts(parts, &()).await {
            Ok(upgrade) => upgrade,
            Err(rejection) => return rejection.into_response(),
        };
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| *peer);
        let address = self.edge.client_address(peer, headers);
        let max_message_bytes = self.edge.settings().max_body_bytes;
        let upgrade = upgrade
            .max_message_size(max_message_bytes)
            .max_frame_size(max_message_bytes)
            .protocols([SUBPROTOCOL]);
        let spoken = upgrade.selected_protocol().is_some();
        let session = Session::new(self.clone(), headers.clone(), address);
        upgrade.on_upgrade(move |socket| session.serve(socket, spoken))
    }
}
