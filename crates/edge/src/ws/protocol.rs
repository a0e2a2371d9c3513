//! The messages and close codes of graphql-transport-ws
//! (<https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md>), exactly as written there.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The one subprotocol the edge speaks.
pub(super) const SUBPROTOCOL: &str = "graphql-transport-ws";

/// A message from the client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum ClientMessage {
    /// Opens the connection; its payload names the caller (`authorization`).
    ConnectionInit {
        /// The caller's parameters.
        #[serde(default)]
        payload: Option<Map<String, Value>>,
    },
    /// Asks for a `pong` (its payload, if any, is not echoed).
    Ping,
    /// Answers a `ping` (the edge sends none, and ignores unasked pongs as the protocol says).
    Pong,
    /// Starts an operation under `id`.
    Subscribe {
        /// Unique among the connection's active operations.
        id: String,
        /// The GraphQL request.
        payload: SubscribePayload,
    },
    /// Stops the operation `id`.
    Complete {
        /// The operation.
        id: String,
    },
}

/// The GraphQL request of a `subscribe` message.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SubscribePayload {
    /// The document.
    #[serde(default)]
    pub(super) query: Option<String>,
    /// The operation to run.
    #[serde(default)]
    pub(super) operation_name: Option<String>,
    /// The variables.
    #[serde(default)]
    pub(super) variables: Option<Map<String, Value>>,
    /// The extensions (an automatic persisted query's hash).
    #[serde(default)]
    pub(super) extensions: Option<Map<String, Value>>,
}

/// A message to the client.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum ServerMessage {
    /// `connection_init` was accepted.
    ConnectionAck,
    /// Answers a `ping`.
    Pong,
    /// One result of the operation `id`.
    Next {
        /// The operation.
        id: String,
        /// A GraphQL response.
        payload: Box<async_graphql::Response>,
    },
    /// The operation `id` failed before it produced a result; it is over.
    Error {
        /// The operation.
        id: String,
        /// GraphQL errors.
        payload: Vec<async_graphql::ServerError>,
    },
    /// The operation `id` produced its last result.
    Complete {
        /// The operation.
        id: String,
    },
}

impl ServerMessage {
    /// The operation the message is about, if any.
    pub(super) fn operation(&self) -> Option<&str> {
        match self {
            Self::ConnectionAck | Self::Pong => None,
            Self::Next { id, .. } | Self::Error { id, .. } | Self::Complete { id } => Some(id),
        }
    }
}

/// Why the edge closes a connection: the protocol's close codes and reasons.
#[derive(Debug)]
pub(super) enum Close {
    /// A message the protocol does not know, or a frame that is not text (4400).
    InvalidMessage(String),
    /// `subscribe` before `connection_ack` (4401).
    Unauthorized,
    /// `connection_init` named no caller the edge accepts (4403).
    Forbidden,
    /// The client did not offer graphql-transport-ws (4406).
    SubprotocolNotAcceptable,
    /// No `connection_init` in time (4408).
    InitialisationTimeout,
    /// A `subscribe` reused the id of an active operation (4409).
    SubscriberExists(String),
    /// A second `connection_init` (4429).
    TooManyInitialisationRequests,
    /// The edge is shutting down (1001).
    GoingAway,
}

/// The longest close reason a WebSocket frame carries (RFC 6455 §5.5: 125 bytes less the code).
const MAX_REASON_BYTES: usize = 123;

impl Close {
    /// The close code.
    pub(super) fn code(&self) -> u16 {
        match self {
            Self::InvalidMessage(_) => 4400,
            Self::Unauthorized => 4401,
            Self::Forbidden => 4403,
            Self::SubprotocolNotAcceptable => 4406,
            Self::InitialisationTimeout => 4408,
            Self::SubscriberExists(_) => 4409,
            Self::TooManyInitialisationRequests => 4429,
            Self::GoingAway => 1001,
        }
    }

    /// The close reason, cut to what a frame carries.
    pub(super) fn reason(&self) -> String {
        let reason = match self {
            Self::InvalidMessage(why) => why.clone(),
            Self::Unauthorized => "Unauthorized".to_owned(),
            Self::Forbidden => "Forbidden".to_owned(),
            Self::SubprotocolNotAcceptable => "Subprotocol not acceptable".to_owned(),
            Self::InitialisationTimeout => "Connection initialisation timeout".to_owned(),
            Self::SubscriberExists(id) => format!("Subscriber for {id} already exists"),
            Self::TooManyInitialisationRequests => "Too many initialisation requests".to_owned(),
            Self::GoingAway => "The server is shutting down".to_owned(),
        };
        truncate(reason, MAX_REASON_BYTES)
    }
}

/// `text` cut to at most `bytes` bytes, on a character boundary.
fn truncate(mut text: String, bytes: usize) -> String {
    if text.len() > bytes {
        let end = (0..=bytes)
            .rev()
            .find(|&end| text.is_char_boundary(end))
            .unwrap_or(0);
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_close_reason_fits_a_frame() {
        let long = Close::SubscriberExists("é".repeat(200)).reason();
        assert!(long.len() <= MAX_REASON_BYTES);
        assert!(long.starts_with("Subscriber for é"));
    }

    #[test]
    fn messages_are_read_as_the_protocol_writes_them() {
        let subscribe: ClientMessage = serde_json::from_str(
            r#"{"type":"subscribe","id":"1","payload":{"query":"{ a }","operationName":null}}"#,
        )
        .expect("a subscribe message");
        assert!(matches!(subscribe, ClientMessage::Subscribe { id, .. } if id == "1"));
        for invalid in [
            r#"{"type":"subscribe","payload":{"query":"{ a }"}}"#,
            r#"{"type":"start","id":"1"}"#,
            r#"{"type":"complete"}"#,
            r#"{"id":"1"}"#,
            "[]",
        ] {
            assert!(
                serde_json::from_str::<ClientMessage>(invalid).is_err(),
                "{invalid}"
            );
        }
        assert_eq!(
            serde_json::to_value(ServerMessage::Complete { id: "7".into() }).expect("json"),
            serde_json::json!({"type": "complete", "id": "7"})
        );
    }
}
