//! The one mapping from errors to `tonic::Status`, with `google.rpc` error details (AIP-193):
//! every error carries `ErrorInfo { reason, domain }`; bad input carries `BadRequest` field
//! violations; a failed precondition carries `PreconditionFailure`. Internal errors are logged with
//! their whole cause chain and answered with a generic message that leaks nothing.
//!
//! Each service has one error enum and one `From<Error> for tonic::Status` built from these.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

/// One invalid request field: its path (`customer.email`, `lines[2].quantity`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field path, in proto field names.
    pub field: String,
    /// What is wrong with it, for the developer.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }

    /// `Ok(())` when a rule found no `problem` with the value of `field`, else the violation:
    /// `FieldViolation::check("sku", sku_problem(raw))?`.
    pub fn check(field: impl Into<String>, problem: Option<&str>) -> Result<(), Self> {
        match problem {
            Some(description) => Err(Self::new(field, description)),
            None => Ok(()),
        }
    }
}

/// One unmet precondition (AIP-193 `PreconditionFailure.Violation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreconditionViolation {
    /// The kind of precondition, e.g. `STOCK`.
    pub kind: String,
    /// What it is about, e.g. the SKU.
    pub subject: String,
    /// What is missing.
    pub description: String,
}

impl PreconditionViolation {
    /// A violation of kind `kind` about `subject`.
    pub fn new(
        kind: impl Into<String>,
        subject: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Self {
            kind: kind.into(),
            subject: subject.into(),
            description: description.into(),
        }
    }
}

/// INVALID_ARGUMENT with one field violation per bad field.
pub fn invalid_argument(domain: &str, violations: &[FieldViolation]) -> Status {
    let message = match violations {
        [only] => format!("invalid {}: {}", only.field, only.description),
        many => format!("{} invalid fields: {}", many.len(), field_list(many)),
    };
    let mut details = ErrorDetails::with_error_info("INVALID_ARGUMENT", domain, HashMap::new());
    for violation in violations {
        details.add_bad_request_violation(&violation.field, &violation.description);
    }
    Status::with_error_details(Code::InvalidArgument, message, details)
}

fn field_list(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|violation| violation.field.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// NOT_FOUND for the resource `resource_type` named `name`.
pub fn not_found(domain: &str, reason: &str, resource_type: &str, name: &str) -> Status {
    let mut details =
        ErrorDetails::with_error_info(reason, domain, metadata([(resource_type, name)]));
    details.set_resource_info(
        resource_type,
        name,
        "",
        format!("no {resource_type} {name}"),
    );
    Status::with_error_details(
        Code::NotFound,
        format!("{resource_type} {name} not found"),
        details,
    )
}

/// ALREADY_EXISTS: `message` says what conflicts; `metadata` names it for machines.
pub fn already_exists<'a>(
    domain: &str,
    reason: &str,
    message: impl Into<String>,
    metadata_entries: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Status {
    let details = ErrorDetails::with_error_info(reason, domain, metadata(metadata_entries));
    Status::with_error_details(Code::AlreadyExists, message, details)
}

/// FAILED_PRECONDITION with the preconditions that are not met.
pub fn failed_precondition(
    domain: &str,
    reason: &str,
    message: impl Into<String>,
    violations: &[PreconditionViolation],
) -> Status {
    let mut details = ErrorDetails::with_error_info(reason, domain, HashMap::new());
    for violation in violations {
        details.add_precondition_failure_violation(
            &violation.kind,
            &violation.subject,
            &violation.description,
        );
    }
    Status::with_error_details(Code::FailedPrecondition, message, details)
}

/// A status of `code` with an `ErrorInfo` and nothing more (UNAVAILABLE, ABORTED, ...).
pub fn with_reason(code: Code, domain: &str, reason: &str, message: impl Into<String>) -> Status {
    let details = ErrorDetails::with_error_info(reason, domain, HashMap::new());
    Status::with_error_details(code, message, details)
}

/// INTERNAL: logs `error` with its causes and answers with a message that reveals nothing.
pub fn internal(domain: &str, error: &(dyn std::error::Error + 'static)) -> Status {
    tracing::error!(
        error = %crate::telemetry::cause_chain(error),
        "internal error"
    );
    with_reason(
        Code::Internal,
        domain,
        "INTERNAL",
        "internal error; it has been logged",
    )
}

fn metadata<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> HashMap<String, String> {
    entries
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}
