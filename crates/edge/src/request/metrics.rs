//! GraphQL metrics, per operation name and type: `graphql_requests_total` by outcome (`ok`,
//! `client_error`, `server_error`) and `graphql_request_duration_seconds`. Only a server error
//! burns the availability budget: a refused, invalid or over-budget request, or an unknown id, is
//! the client's doing.
//!
//! Operation names come from clients, so the labels are bounded: the first
//! [`MAX_OPERATION_NAMES`] distinct names are kept, later ones are counted as `other`, and an
//! operation without a name is `anonymous`.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use async_graphql::Response;
use async_graphql::parser::types::OperationType;

/// Counter of GraphQL requests by `operation_name`, `operation_type` and `outcome`.
pub(crate) const REQUESTS: &str = "graphql_requests_total";
/// Histogram of GraphQL request durations in seconds, by `operation_name` and `operation_type`
/// (a subscription: until it ends).
pub(crate) const DURATION: &str = "graphql_request_duration_seconds";

/// Distinct operation names kept as labels.
const MAX_OPERATION_NAMES: usize = 200;

/// The `extensions.code`s that are the server's fault: the edge's own, and a backend's that is.
const SERVER_ERRORS: [&str; 10] = [
    "INTERNAL_SERVER_ERROR",
    "INTERNAL",
    "UNKNOWN",
    "UNAVAILABLE",
    "DATA_LOSS",
    "DEADLINE_EXCEEDED",
    "UNIMPLEMENTED",
    "TIMEOUT",
    "OVERLOADED",
    "SERVICE_UNAVAILABLE",
];

/// How a request ended, as the availability budget sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Answered without an error.
    Ok,
    /// Refused or answered with errors of the client's making.
    ClientError,
    /// At least one error was the server's fault.
    ServerError,
}

impl Outcome {
    /// The outcome of `response`.
    pub(crate) fn of(response: &Response) -> Self {
        if response.errors.is_empty() {
            return Self::Ok;
        }
        let server_fault = response.errors.iter().any(|error| {
            error
                .extensions
                .as_ref()
                .and_then(|extensions| extensions.get("code"))
                .is_some_and(|code| match code {
                    async_graphql::Value::String(code) => SERVER_ERRORS.contains(&code.as_str()),
                    _ => false,
                })
        });
        if server_fault {
            Self::ServerError
        } else {
            Self::ClientError
        }
    }

    /// The worse of two outcomes: a server error over a client error over ok.
    pub(crate) fn worst(self, other: Self) -> Self {
        match (self, other) {
            (Self::ServerError, _) | (_, Self::ServerError) => Self::ServerError,
            (Self::ClientError, _) | (_, Self::ClientError) => Self::ClientError,
            (Self::Ok, Self::Ok) => Self::Ok,
        }
    }

    /// The `outcome` label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::ClientError => "client_error",
            Self::ServerError => "server_error",
        }
    }
}

/// The operation's labels: its bounded name and its type.
#[derive(Debug, Clone)]
pub(crate) struct Operation {
    name: String,
    kind: &'static str,
}

impl Operation {
    /// The operation named `name` (as the request or the document names it) of type `kind`
    /// (`None`: the request failed before its operation was known).
    pub(crate) fn new(name: Option<&str>, kind: Option<OperationType>) -> Self {
        Self {
            name: bounded_name(name),
            kind: kind_label(kind),
        }
    }

    /// The operation `request` asks for: the `operationName` it sent, else the name its document
    /// gives its first operation; of type `kind` once the document was read.
    pub(crate) fn of(request: &async_graphql::Request, kind: Option<OperationType>) -> Self {
        let name = request
            .operation_name
            .as_deref()
            .or_else(|| super::tokens::operation_name(&request.query));
        Self::new(name, kind)
    }

    /// The `operation_name` label.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The same operation, of type `kind` (known once its document was read).
    pub(crate) fn of_kind(self, kind: Option<OperationType>) -> Self {
        Self {
            kind: kind_label(kind),
            ..self
        }
    }

    /// Counts one request that ended with `outcome` after `elapsed`.
    pub(crate) fn record(&self, outcome: Outcome, elapsed: Duration) {
        metrics::counter!(
            REQUESTS,
            "operation_name" => self.name.clone(),
            "operation_type" => self.kind,
            "outcome" => outcome.label(),
        )
        .increment(1);
        metrics::histogram!(
            DURATION,
            "operation_name" => self.name.clone(),
            "operation_type" => self.kind,
        )
        .record(elapsed.as_secs_f64());
    }
}

/// The `operation_type` label: `unknown` until the document was read.
fn kind_label(kind: Option<OperationType>) -> &'static str {
    match kind {
        Some(OperationType::Query) => "query",
        Some(OperationType::Mutation) => "mutation",
        Some(OperationType::Subscription) => "subscription",
        None => "unknown",
    }
}

/// `name` while fewer than [`MAX_OPERATION_NAMES`] distinct names were seen, else `other`.
fn bounded_name(name: Option<&str>) -> String {
    static SEEN: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Mutex::default);
    let Some(name) = name.filter(|name| !name.is_empty()) else {
        return "anonymous".to_owned();
    };
    let mut seen = SEEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if seen.contains(name) {
        return name.to_owned();
    }
    if seen.len() < MAX_OPERATION_NAMES {
        seen.insert(name.to_owned());
        return name.to_owned();
    }
    "other".to_owned()
}

#[cfg(test)]
mod tests {
    use async_graphql::ServerError;

    use super::*;

    fn failing_with(code: &str) -> Response {
        let mut error = ServerError::new("failed", None);
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", code);
        Response::from_errors(vec![error])
    }

    #[test]
    fn only_the_servers_faults_are_server_errors() {
        assert_eq!(Outcome::of(&Response::default()), Outcome::Ok);
        for code in [
            "BAD_USER_INPUT",
            "NOT_FOUND",
            "RATE_LIMITED",
            "QUERY_TOO_COSTLY",
        ] {
            assert_eq!(Outcome::of(&failing_with(code)), Outcome::ClientError);
        }
        for code in ["UNAVAILABLE", "INTERNAL_SERVER_ERROR", "DEADLINE_EXCEEDED"] {
            assert_eq!(Outcome::of(&failing_with(code)), Outcome::ServerError);
        }
    }

    #[test]
    fn operation_names_are_bounded() {
        assert_eq!(bounded_name(None), "anonymous");
        assert_eq!(bounded_name(Some("Order")), "Order");
        for n in 0..MAX_OPERATION_NAMES {
            bounded_name(Some(&format!("Flood{n}")));
        }
        assert_eq!(bounded_name(Some("Order")), "Order", "a known name stays");
        assert_eq!(bounded_name(Some("OneTooMany")), "other");
    }
}
