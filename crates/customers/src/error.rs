//! The customers service's errors and their one mapping to `tonic::Status`.

use crowdcrunch_runtime::StorageError;
use crowdcrunch_runtime::idempotency::IdempotencyError;
use crowdcrunch_runtime::status::{self, FieldViolation};
use tonic::Status;

/// The `ErrorInfo.domain` of this service's errors.
pub const DOMAIN: &str = "customers.crowdcrunch.dev";

/// Why a customers call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request has bad fields.
    #[error("invalid request: {0:?}")]
    InvalidArgument(Vec<FieldViolation>),
    /// No customer has this id.
    #[error("customer {0} not found")]
    NotFound(String),
    /// Another customer has this email (ignoring case).
    #[error("email {0} belongs to another customer")]
    EmailTaken(String),
    /// A request id was reused, or its record is unreadable.
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        Self::Storage(error.into())
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument(violations) => status::invalid_argument(DOMAIN, &violations),
            Error::NotFound(id) => status::not_found(DOMAIN, "CUSTOMER_NOT_FOUND", "customer", &id),
            Error::EmailTaken(email) => status::already_exists(
                DOMAIN,
                "EMAIL_TAKEN",
                format!("email {email} belongs to another customer"),
                [("email", email.as_str())],
            ),
            Error::Idempotency(error) => error.into_status(DOMAIN),
            Error::Storage(error) => status::internal(DOMAIN, &error),
        }
    }
}
