//! The errors a client sees, by whose fault they are. A backend's: gRPC statuses as GraphQL
//! errors, `extensions.code` from the status code and `extensions.service` naming the backend,
//! with the `google.rpc` details decoded (ErrorInfo, BadRequest field violations with their
//! GraphQL input path, PreconditionFailure, ResourceInfo); messages of failures the services did
//! not describe themselves (transport errors, INTERNAL) are replaced, so no address or cause
//! chain leaks. The client's: bad input caught before any call (`BAD_USER_INPUT`). The edge's own:
//! a fault (`crate::fault`), never reported as a backend's or the client's.

use async_graphql::{Error, ErrorExtensionValues, Value};
use crowdcrunch_runtime::telemetry::LogThrottle;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

use crate::convert::{InputError, InputFailure};
use crate::fault::INTERNAL;
use crate::plan::catalog::camel_case;

/// The `extensions.code` of a gRPC status code.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::InvalidArgument | Code::OutOfRange => "BAD_USER_INPUT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "FORBIDDEN",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Unavailable => "UNAVAILABLE",
        Code::Unauthenticated => "UNAUTHENTICATED",
        Code::Internal | Code::Unknown | Code::DataLoss => INTERNAL,
    }
}

/// Where the request's fields are in the GraphQL operation: under the `input` argument of a
/// mutation, or at the top of a query's arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputRoot {
    /// `input: {...}`.
    Input,
    /// Arguments.
    Arguments,
    /// Not the client's input (a join).
    None,
}

/// Logs a failed backend call, at most once every few seconds per backend and code: an outage
/// fails every request, and one line (with how many it stands for) says it as well as a thousand.
fn log_failure(backend: &str, code: Code, reason: &str) {
    static THROTTLE: std::sync::LazyLock<LogThrottle> =
        std::sync::LazyLock::new(|| LogThrottle::new(std::time::Duration::from_secs(5)));
    if let Some(held_back) = THROTTLE.admit(&format!("{backend} {code:?}")) {
        tracing::warn!(backend, ?code, reason, held_back, "backend call failed");
    }
}

/// A GraphQL error for `status`, returned by the `backend` service.
pub fn from_status(status: &Status, backend: &str, root: InputRoot) -> Error {
    let details = status.get_error_details();
    let described = details.error_info().is_some();
    let code = status.code();
    let message = match code {
        Code::Internal | Code::Unknown | Code::DataLoss => {
            format!("the {backend} service failed; the failure has been logged there")
        }
        Code::Unavailable if !described => format!("the {backend} service is unavailable"),
        Code::DeadlineExceeded if !described => {
            format!("the {backend} service did not answer in time")
        }
        Code::Cancelled if !described => format!("the call to the {backend} service was cancelled"),
        _ if !described && status.message().contains("://") => {
            format!("the {backend} service answered {}", code_name(code))
        }
        _ => status.message().to_owned(),
    };
    if matches!(code, Code::Internal | Code::Unknown | Code::DataLoss) || !described {
        log_failure(backend, code, status.message());
    }
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", code_name(code));
    extensions.set("service", backend);
    if let Some(info) = details.error_info() {
        extensions.set("reason", info.reason.as_str());
        extensions.set("domain", info.domain.as_str());
        if !info.metadata.is_empty() {
            let metadata = info
                .metadata
                .iter()
                .map(|(key, value)| (async_graphql::Name::new(key), Value::from(value.as_str())))
                .collect();
            extensions.set("metadata", Value::Object(metadata));
        }
    }
    if let Some(bad) = details.bad_request() {
        let violations = bad
            .field_violations
            .iter()
            .map(|violation| {
                let path = input_path(&violation.field, root);
                let dotted = path
                    .iter()
                    .map(|segment| match segment {
                        Value::Number(index) => format!("[{index}]"),
                        Value::String(name) => format!(".{name}"),
                        other => format!(".{other}"),
                    })
                    .collect::<String>();
                object([
                    ("field", Value::from(dotted.trim_start_matches('.'))),
                    ("path", Value::List(path)),
                    ("description", Value::from(violation.description.as_str())),
                ])
            })
            .collect();
        extensions.set("fieldViolations", Value::List(violations));
    }
    if let Some(failure) = details.precondition_failure() {
        let violations = failure
            .violations
            .iter()
            .map(|violation| {
                object([
                    ("type", Value::from(violation.r#type.as_str())),
                    ("subject", Value::from(violation.subject.as_str())),
                    ("description", Value::from(violation.description.as_str())),
                ])
            })
            .collect();
        extensions.set("preconditionViolations", Value::List(violations));
    }
    if let Some(resource) = details.resource_info() {
        extensions.set(
            "resourceInfo",
            object([
                ("resourceType", Value::from(resource.resource_type.as_str())),
                ("resourceName", Value::from(resource.resource_name.as_str())),
            ]),
        );
    }
    Error {
        message,
        source: None,
        extensions: Some(extensions),
    }
}

/// An input that could not become a request message: the client's bad value, or the edge's
/// fault.
pub fn from_input_failure(failure: InputFailure, root: InputRoot) -> Error {
    match failure {
        InputFailure::Input(error) => from_input(&error, root),
        InputFailure::Fault(fault) => fault.into(),
    }
}

/// A bad input value caught before any call (a value the schema's types let through).
fn from_input(error: &InputError, root: InputRoot) -> Error {
    let mut path: Vec<Value> = Vec::new();
    if root == InputRoot::Input {
        path.push(Value::from("input"));
    }
    path.extend(
        error
            .path
            .iter()
            .map(|segment| match segment.parse::<u64>() {
                Ok(index) => Value::from(index),
                Err(_) => Value::from(segment.as_str()),
            }),
    );
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", "BAD_USER_INPUT");
    extensions.set(
        "fieldViolations",
        Value::List(vec![object([
            ("path", Value::List(path)),
            ("description", Value::from(error.message.as_str())),
        ])]),
    );
    Error {
        message: format!("invalid input: {}", error.message),
        source: None,
        extensions: Some(extensions),
    }
}

/// An error with a code and a message.
pub fn coded(code: &str, message: impl Into<String>) -> Error {
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", code);
    Error {
        message: message.into(),
        source: None,
        extensions: Some(extensions),
    }
}

/// `customer.email` → `["input", "customer", "email"]`; `lines[2].quantity` →
/// `["input", "lines", 2, "quantity"]`.
fn input_path(field: &str, root: InputRoot) -> Vec<Value> {
    let mut path = Vec::new();
    if root == InputRoot::Input {
        path.push(Value::from("input"));
    }
    for segment in field.split('.') {
        let (name, indexes) = match segment.find('[') {
            Some(at) => (&segment[..at], &segment[at..]),
            None => (segment, ""),
        };
        if !name.is_empty() {
            path.push(Value::from(camel_case(name)));
        }
        for index in indexes.split(['[', ']']).filter(|part| !part.is_empty()) {
            path.push(match index.parse::<u64>() {
                Ok(number) => Value::from(number),
                Err(_) => Value::from(index),
            });
        }
    }
    path
}

fn object<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Object(
        entries
            .into_iter()
            .map(|(key, value)| (async_graphql::Name::new(key), value))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tonic_types::ErrorDetails;

    use super::*;
    use crate::fault::{FAULT_MESSAGE, Fault, conceal_faults};

    fn extensions(error: &Error) -> serde_json::Value {
        serde_json::to_value(error.extensions.as_ref().expect("extensions")).expect("json")
    }

    #[test]
    fn bad_requests_become_bad_user_input_with_the_graphql_input_path() {
        let mut details = ErrorDetails::with_error_info(
            "INVALID_ARGUMENT",
            "orders.crowdcrunch.dev",
            HashMap::new(),
        );
        details.add_bad_request_violation("lines[2].unit_price", "must be positive");
        let status = Status::with_error_details(Code::InvalidArgument, "invalid lines[2]", details);
        let error = from_status(&status, "orders", InputRoot::Input);
        assert_eq!(error.message, "invalid lines[2]");
        let extensions = extensions(&error);
        assert_eq!(extensions["code"], "BAD_USER_INPUT");
        assert_eq!(extensions["reason"], "INVALID_ARGUMENT");
        assert_eq!(
            extensions["fieldViolations"][0]["path"],
            serde_json::json!(["input", "lines", 2, "unitPrice"])
        );
        assert_eq!(
            extensions["fieldViolations"][0]["field"],
            "input.lines[2].unitPrice"
        );
    }

    #[test]
    fn transport_failures_leak_no_address() {
        let status = Status::unavailable("tcp connect error: 10.0.0.7:50053: connection refused");
        let error = from_status(&status, "orders", InputRoot::Arguments);
        assert_eq!(error.message, "the orders service is unavailable");
        assert_eq!(extensions(&error)["code"], "UNAVAILABLE");
        let internal = from_status(
            &Status::internal("panic at src/x.rs:10"),
            "orders",
            InputRoot::None,
        );
        assert!(!internal.message.contains("src/"));
    }

    #[test]
    fn an_edge_fault_is_not_reported_as_a_backend_failure() {
        let fault = Fault::Misplanned {
            join: "orders".to_owned(),
            what: "a connection without paging",
        };
        let mut errors = vec![
            Error::from(fault).into_server_error(async_graphql::Pos::default()),
            from_status(&Status::internal("boom"), "orders", InputRoot::None)
                .into_server_error(async_graphql::Pos::default()),
        ];
        conceal_faults(&mut errors);
        let [edge, backend] = errors.as_slice() else {
            panic!("two errors");
        };
        assert_eq!(edge.message, FAULT_MESSAGE);
        let extensions = serde_json::to_value(&edge.extensions).expect("json");
        assert_eq!(extensions["code"], INTERNAL);
        assert!(extensions.get("service").is_none());
        // A backend's INTERNAL still names the backend.
        assert!(backend.message.contains("the orders service failed"));
        let extensions = serde_json::to_value(&backend.extensions).expect("json");
        assert_eq!(extensions["service"], "orders");
    }

    #[test]
    fn a_services_refusals_keep_their_meaning_and_not_found_stays_not_found() {
        for (code, expected) in [
            (Code::Unauthenticated, "UNAUTHENTICATED"),
            (Code::PermissionDenied, "FORBIDDEN"),
            (Code::NotFound, "NOT_FOUND"),
        ] {
            let details = ErrorDetails::with_error_info(
                expected,
                "auth.crowdcrunch.dev",
                HashMap::from([("required".to_owned(), "staff".to_owned())]),
            );
            let status = Status::with_error_details(code, "refused", details);
            let extensions = extensions(&from_status(&status, "orders", InputRoot::Arguments));
            assert_eq!(extensions["code"], expected, "{code:?}");
            assert_eq!(extensions["metadata"]["required"], "staff");
        }
    }

    #[test]
    fn precondition_failures_are_listed() {
        let mut details = ErrorDetails::with_error_info(
            "INSUFFICIENT_STOCK",
            "inventory.crowdcrunch.dev",
            HashMap::new(),
        );
        details.add_precondition_failure_violation("INSUFFICIENT_STOCK", "TSHIRT-M", "2 short");
        let status =
            Status::with_error_details(Code::FailedPrecondition, "not enough stock", details);
        let extensions = extensions(&from_status(&status, "inventory", InputRoot::Input));
        assert_eq!(extensions["code"], "FAILED_PRECONDITION");
        assert_eq!(
            extensions["preconditionViolations"][0]["subject"],
            "TSHIRT-M"
        );
    }
}
