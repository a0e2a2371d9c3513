//! The WebSocket side of `/graphql`: graphql-transport-ws (and the legacy graphql-ws), each
//! operation run by the [`Gateway`] in its own scope with the caller `connection_init` named.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::{Request, Response};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::ws::{CloseFrame, Message};
use axum::extract::{FromRequestParts as _, WebSocketUpgrade};
use axum::response::IntoResponse;
use crowdcrunch_runtime::Shutdown;
use futures::stream::BoxStream;
use futures::{SinkExt as _, StreamExt as _};
use http::HeaderMap;

use crate::access::Credentials;
use crate::fault::{Fault, conceal_faults};
use crate::grpc::CallContext;
use crate::http::call_context;
use crate::request::Gateway;

/// The executor of one WebSocket connection: every operation it carries runs in its own scope,
/// with the trace context of the upgrade request and the caller its `connection_init` named.
#[derive(Clone)]
struct Connection {
    edge: Gateway,
    headers: HeaderMap,
    /// Set by `connection_init`, which the protocol completes before any operation.
    credentials: Arc<OnceLock<Credentials>>,
}

impl Connection {
    /// The caller, or the response of an operation sent before `connection_init` was accepted
    /// (the protocol layer lets none through: the edge's fault if one is).
    fn call_context(&self) -> Result<CallContext, Box<Response>> {
        match self.credentials.get() {
            Some(credentials) => Ok(call_context(&self.headers, credentials.clone())),
            None => {
                let mut errors = vec![
                    async_graphql::Error::from(Fault::Unwired("the caller of the connection"))
                        .into_server_error(async_graphql::Pos::default()),
                ];
                conceal_faults(&mut errors);
                Err(Box::new(Response::from_errors(errors)))
            }
        }
    }

    /// Accepts `connection_init` when its payload's `authorization` (if any) names a caller.
    async fn init(&self, payload: serde_json::Value) -> async_graphql::Result<async_graphql::Data> {
        let authorization = match payload.get("authorization") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(value)) => Some(value.as_str()),
            Some(_) => {
                return Err(async_graphql::Error::new(
                    "the authorization of connection_init must be a string",
                ));
            }
        };
        let credentials = self
            .edge
            .connection_caller(authorization)
            .await
            .map_err(|refusal| async_graphql::Error::new(refusal.to_string()))?;
        // The protocol accepts one `connection_init` per connection.
        let _ = self.credentials.set(credentials);
        Ok(async_graphql::Data::default())
    }
}

impl async_graphql::Executor for Connection {
    async fn execute(&self, mut request: Request) -> Response {
        let call = match self.call_context() {
            Ok(call) => call,
            Err(response) => return *response,
        };
        if let Err(refused) = self.edge.prepare(&mut request, &call.credentials) {
            return *refused.response();
        }
        self.edge.execute(request, call).await.0
    }

    fn execute_stream(
        &self,
        request: Request,
        _session_data: Option<std::sync::Arc<async_graphql::Data>>,
    ) -> BoxStream<'static, Response> {
        match self.call_context() {
            Ok(call) => self.edge.execute_stream(request, call),
            Err(response) => futures::stream::once(async move { *response }).boxed(),
        }
    }
}

/// The close code of graphql-transport-ws for a refused `connection_init`.
const FORBIDDEN_CLOSE: u16 = 4403;

/// Upgrades a GET of `/graphql` to a graphql-transport-ws (or legacy graphql-ws) connection.
pub(crate) async fn upgrade(
    edge: Gateway,
    shutdown: Shutdown,
    parts: &mut http::request::Parts,
    headers: &HeaderMap,
) -> axum::response::Response {
    let protocol = match GraphQLProtocol::from_request_parts(parts, &()).await {
        Ok(protocol) => protocol,
        Err(rejection) => return rejection.into_response(),
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let connection = Connection {
        edge,
        headers: headers.clone(),
        credentials: Arc::new(OnceLock::new()),
    };
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| async move {
            let (sink, stream) = socket.split();
            let initializer = connection.clone();
            let refused = Arc::new(AtomicBool::new(false));
            let init_refused = refused.clone();
            // async-graphql closes a refused `connection_init` with 1002; the protocol says 4403.
            let sink = sink.with(move |message: Message| {
                let message = match message {
                    Message::Close(_) if refused.load(Ordering::Relaxed) => {
                        Message::Close(Some(CloseFrame {
                            code: FORBIDDEN_CLOSE,
                            reason: "Forbidden".into(),
                        }))
                    }
                    other => other,
                };
                futures::future::ready(Ok::<_, axum::Error>(message))
            });
            let serve = GraphQLWebSocket::new_with_pair(sink, stream, connection, protocol)
                .on_connection_init(move |payload| async move {
                    let accepted = initializer.init(payload).await;
                    if accepted.is_err() {
                        init_refused.store(true, Ordering::Relaxed);
                    }
                    accepted
                })
                .serve();
            // A drain ends open subscriptions, as it ends gRPC streams.
            tokio::select! {
                () = serve => {},
                () = shutdown.cancelled() => {},
            }
        })
}
