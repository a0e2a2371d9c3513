//! One graphql-transport-ws connection: `connection_init` within the timeout names the caller,
//! then each `subscribe` runs as its own task until its last result, the client's `complete` or
//! the socket's end. Every way the protocol is broken closes the socket with the code the
//! protocol gives it.

use std::collections::HashMap;
use std::net::IpAddr;

use async_graphql::parser::types::OperationType;
use async_graphql::{Request, Variables};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{SinkExt as _, StreamExt as _};
use http::HeaderMap;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::Sockets;
use super::limits::{CallerKey, Permit};
use super::protocol::{ClientMessage, Close, ServerMessage, SubscribePayload};
use crate::access::Credentials;
use crate::grpc::CallContext;
use crate::http::{call_context, record_operation};
use crate::request::metrics::{self as graphql_metrics, Outcome};
use crate::request::{Gateway, error_response};

/// Results the operations of one connection may queue ahead of the socket.
const RESULT_BUFFER: usize = 16;

/// One connection's state.
pub(super) struct Session {
    sockets: Sockets,
    /// The upgrade request's headers: its trace context and forwarded headers.
    headers: HeaderMap,
    /// The client's address, when the server knows it.
    address: Option<IpAddr>,
    /// Whether `connection_init` arrived (it may arrive once).
    initialised: bool,
    /// The caller, once `connection_init` was accepted.
    caller: Option<Caller>,
    /// The active operations, by id.
    operations: HashMap<String, Running>,
    /// Tells one run of an id from a later one under the same id.
    runs: u64,
}

/// The caller `connection_init` named.
struct Caller {
    credentials: Credentials,
    /// Their key in the count of open operations; `None` when only the connection's own limit
    /// holds them.
    key: Option<CallerKey>,
}

/// An active operation: its task, aborted and its permit released when it is removed.
struct Running {
    run: u64,
    task: AbortHandle,
    _permit: Option<Permit>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A message of the operation `run`; `last` when the operation ends with it.
struct Outgoing {
    run: u64,
    message: ServerMessage,
    last: bool,
}

/// What one received message asks of the connection.
enum Step {
    /// Nothing to send.
    Nothing,
    /// Send a message.
    Reply(ServerMessage),
    /// Close the connection with a code.
    Close(Close),
}

impl Session {
    /// A connection of `sockets`, upgraded from a request with `headers` from `address`.
    pub(super) fn new(sockets: Sockets, headers: HeaderMap, address: Option<IpAddr>) -> Self {
        Self {
            sockets,
            headers,
            address,
            initialised: false,
            caller: None,
            operations: HashMap::new(),
            runs: 0,
        }
    }

    /// Serves the connection until either side closes it or the edge shuts down; `spoken` says
    /// whether the client offered graphql-transport-ws.
    pub(super) async fn serve(mut self, socket: WebSocket, spoken: bool) {
        let (mut sink, mut stream) = socket.split();
        let close = if spoken {
            let (results, mut queued) = mpsc::channel(RESULT_BUFFER);
            let shutdown = self.sockets.shutdown.clone();
            let init_deadline =
                tokio::time::sleep(self.sockets.edge.settings().connection_init_timeout);
            tokio::pin!(init_deadline);
            loop {
                let step = tokio::select! {
                    () = shutdown.cancelled() => Step::Close(Close::GoingAway),
                    () = &mut init_deadline, if !self.initialised => {
                        Step::Close(Close::InitialisationTimeout)
                    }
                    received = stream.next() => match received {
                        Some(Ok(message)) => self.receive(message, &results).await,
                        // The client went away.
                        None | Some(Err(_)) => return,
                    },
                    Some(result) = queued.recv() => self.deliver(result),
                };
                let message = match step {
                    Step::Nothing => continue,
                    Step::Reply(message) => message,
                    Step::Close(close) => break close,
                };
                let Ok(text) = serde_json::to_string(&message) else {
                    tracing::error!("a graphql-transport-ws message could not be written as JSON");
                    return;
                };
                if sink.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
        } else {
            Close::SubprotocolNotAcceptable
        };
        let frame = CloseFrame {
            code: close.code(),
            reason: close.reason().into(),
        };
        // Best effort: the client may be gone already.
        let _ = sink.send(Message::Close(Some(frame))).await;
    }

    /// Answers one frame from the client.
    async fn receive(&mut self, frame: Message, results: &mpsc::Sender<Outgoing>) -> Step {
        let text = match frame {
            Message::Text(text) => text,
            Message::Binary(_) => {
                return Step::Close(Close::InvalidMessage(
                    "graphql-transport-ws messages are text frames".to_owned(),
                ));
            }
            // The WebSocket layer answers pings itself; a close ends the stream next.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => return Step::Nothing,
        };
        let message = match serde_json::from_str::<ClientMessage>(text.as_str()) {
            Ok(message) => message,
            Err(error) => {
                return Step::Close(Close::InvalidMessage(format!("Invalid message: {error}")));
            }
        };
        match message {
            ClientMessage::ConnectionInit { payload } => self.initialise(payload).await,
            ClientMessage::Ping => Step::Reply(ServerMessage::Pong),
            ClientMessage::Pong => Step::Nothing,
            ClientMessage::Subscribe { id, payload } => self.subscribe(id, payload, results),
            ClientMessage::Complete { id } => {
                // Aborts the operation; the client expects nothing more of it.
                self.operations.remove(&id);
                Step::Nothing
            }
        }
    }

    /// Accepts `connection_init` once, when its `authorization` (if any) names a caller.
    async fn initialise(
        &mut self,
        payload: Option<serde_json::Map<String, serde_json::Value>>,
    ) -> Step {
        if self.initialised {
            return Step::Close(Close::TooManyInitialisationRequests);
        }
        self.initialised = true;
        let authorization = match payload
            .as_ref()
            .and_then(|payload| payload.get("authorization"))
        {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(value)) => Some(value.as_str()),
            Some(_) => return Step::Close(Close::Forbidden),
        };
        match self.sockets.edge.connection_caller(authorization).await {
            Ok(credentials) => {
                let key = CallerKey::of(credentials.identity(), self.address);
                self.caller = Some(Caller { credentials, key });
                Step::Reply(ServerMessage::ConnectionAck)
            }
            Err(refusal) => {
                tracing::debug!(%refusal, "connection_init refused");
                Step::Close(Close::Forbidden)
            }
        }
    }

    /// Starts the operation `id`, within the connection's and the caller's limits.
    fn subscribe(
        &mut self,
        id: String,
        payload: SubscribePayload,
        results: &mpsc::Sender<Outgoing>,
    ) -> Step {
        let Some(caller) = &self.caller else {
            return Step::Close(Close::Unauthorized);
        };
        if self.operations.contains_key(&id) {
            return Step::Close(Close::SubscriberExists(id));
        }
        let permit = match self.admit(caller) {
            Ok(permit) => permit,
            Err(over) => return refused(id, "TOO_MANY_SUBSCRIPTIONS", over),
        };
        let request = match request_of(payload) {
            Ok(request) => request,
            Err(message) => return refused(id, "BAD_REQUEST", message),
        };
        self.runs += 1;
        let operation = Operation {
            edge: self.sockets.edge.clone(),
            call: call_context(&self.headers, caller.credentials.clone()),
            address: self.address,
            id: id.clone(),
            run: self.runs,
            results: results.clone(),
        };
        let task = tokio::spawn(operation.run(request)).abort_handle();
        self.operations.insert(
            id,
            Running {
                run: self.runs,
                task,
                _permit: permit,
            },
        );
        Step::Nothing
    }

    /// Room for one more operation of `caller` on this connection, and their permit (when they
    /// are counted over connections); or which limit is reached.
    fn admit(&self, caller: &Caller) -> Result<Option<Permit>, String> {
        let settings = self.sockets.edge.settings();
        let per_connection = settings.max_subscriptions_per_connection;
        if self.operations.len() >= per_connection {
            return Err(format!(
                "this connection holds {per_connection} open subscriptions, the most one may \
                 (max_subscriptions_per_connection)"
            ));
        }
        let per_caller = settings.max_subscriptions_per_caller;
        caller
            .key
            .as_ref()
            .map(|key| {
                self.sockets.callers.admit(key, per_caller).ok_or_else(|| {
                    format!(
                        "you hold {per_caller} open subscriptions over your connections, the \
                         most one caller may (max_subscriptions_per_caller)"
                    )
                })
            })
            .transpose()
    }

    /// Passes on a result of an operation that is still active; its last one ends it.
    fn deliver(&mut self, result: Outgoing) -> Step {
        let Some(id) = result.message.operation() else {
            return Step::Reply(result.message);
        };
        if self
            .operations
            .get(id)
            .is_none_or(|running| running.run != result.run)
        {
            // The client completed it (and may have reused its id since).
            return Step::Nothing;
        }
        if result.last {
            self.operations.remove(id);
        }
        Step::Reply(result.message)
    }
}

/// The `error` refusing the operation `id` with `extensions.code` `code`.
fn refused(id: String, code: &str, message: String) -> Step {
    Step::Reply(ServerMessage::Error {
        id,
        payload: error_response(code, message).errors,
    })
}

/// The GraphQL request of a `subscribe` payload.
fn request_of(payload: SubscribePayload) -> Result<Request, String> {
    let mut request = Request::new(payload.query.unwrap_or_default());
    if let Some(name) = payload.operation_name {
        request = request.operation_name(name);
    }
    if let Some(variables) = payload.variables {
        request = request.variables(Variables::from_json(serde_json::Value::Object(variables)));
    }
    for (key, value) in payload.extensions.unwrap_or_default() {
        let value = async_graphql::Value::from_json(value).map_err(|error| error.to_string())?;
        request.extensions.insert(key, value);
    }
    Ok(request)
}

/// Whether a subscription's first response is a refusal before execution (validation, depth or
/// complexity), which the protocol answers with `error`: errors and no data, none of them at a
/// field's path. An error of a field (the backend refusing the stream) has its path, and is a
/// `next` like any result, as the protocol's reference server answers it.
fn failed_before_execution(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|error| error.path.is_empty())
}

/// One operation of a connection, run in its own task.
struct Operation {
    edge: Gateway,
    call: CallContext,
    /// The client's address, whose budget a caller without a token spends.
    address: Option<IpAddr>,
    id: String,
    run: u64,
    results: mpsc::Sender<Outgoing>,
}

impl Operation {
    /// Runs `request` and counts it in the GraphQL metrics, as a POST is counted: a
    /// subscription from its `subscribe` to its end.
    async fn run(self, request: Request) {
        let started = std::time::Instant::now();
        let (operation, outcome) = self.answer(request).await;
        operation.record(outcome, started.elapsed());
    }

    /// Runs `request` through the same preparation as a POST, then as a stream of results
    /// (a subscription) or one result; answers the operation (its name and type) and how it ended.
    async fn answer(&self, mut request: Request) -> (graphql_metrics::Operation, Outcome) {
        // The name is read from the document once (again only for a persisted query by hash).
        let mut operation = graphql_metrics::Operation::of(&request, None);
        let sent_query = !request.query.is_empty();
        if let Err(response) = self.edge.persisted_query(&mut request) {
            self.fail(response.errors).await;
            return (operation, Outcome::ClientError);
        }
        if !sent_query {
            operation = graphql_metrics::Operation::of(&request, None);
        }
        if request.query.is_empty() {
            let response = error_response("BAD_REQUEST", "the subscribe message has no query");
            self.fail(response.errors).await;
            return (operation, Outcome::ClientError);
        }
        let prepared = self
            .edge
            .prepare_from(&mut request, &self.call.credentials, self.address);
        let kind = match prepared {
            Ok(kind) => kind,
            Err(refused) => {
                self.fail(refused.response().errors).await;
                return (operation, Outcome::ClientError);
            }
        };
        let operation = operation.of_kind(kind);
        record_operation(&self.call.span, &operation, kind);
        let mut outcome = Outcome::Ok;
        if kind == Some(OperationType::Subscription) {
            let mut results = self.edge.execute_stream(request, self.call.clone());
            let mut first = true;
            while let Some(response) = results.next().await {
                if first && failed_before_execution(&response) {
                    self.fail(response.errors).await;
                    return (operation, Outcome::ClientError);
                }
                first = false;
                outcome = outcome.worst(Outcome::of(&response));
                let next = ServerMessage::Next {
                    id: self.id.clone(),
                    payload: Box::new(response),
                };
                if !self.send(next, false).await {
                    // The subscriber left: that ends a subscription, it does not fail it.
                    return (operation, outcome);
                }
            }
        } else {
            let (response, executed) = self.edge.execute(request, self.call.clone()).await;
            if !executed {
                self.fail(response.errors).await;
                return (operation, Outcome::ClientError);
            }
            outcome = Outcome::of(&response);
            let next = ServerMessage::Next {
                id: self.id.clone(),
                payload: Box::new(response),
            };
            if !self.send(next, false).await {
                return (operation, outcome);
            }
        }
        let complete = ServerMessage::Complete {
            id: self.id.clone(),
        };
        self.send(complete, true).await;
        (operation, outcome)
    }

    /// Ends the operation with an `error` message.
    async fn fail(&self, errors: Vec<async_graphql::ServerError>) {
        let error = ServerMessage::Error {
            id: self.id.clone(),
            payload: errors,
        };
        self.send(error, true).await;
    }

    /// Queues `message`; false when the connection is gone.
    async fn send(&self, message: ServerMessage, last: bool) -> bool {
        self.results
            .send(Outgoing {
                run: self.run,
                message,
                last,
            })
            .await
            .is_ok()
    }
}
