//! The exchanges service's errors and their one mapping to `tonic::Status`.

use crowdcrunch_runtime::StorageError;
use crowdcrunch_runtime::client::UpstreamError;
use crowdcrunch_runtime::idempotency::IdempotencyError;
use crowdcrunch_runtime::status::{self, FieldViolation, PreconditionViolation};
use tonic::Status;

/// The `ErrorInfo.domain` of this service's errors.
pub const DOMAIN: &str = "exchanges.crowdcrunch.dev";

/// Why an exchanges call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request has bad fields (including an unknown order or a quantity over what is returnable).
    #[error("invalid request: {0:?}")]
    InvalidArgument(Vec<FieldViolation>),
    /// No return request has this id.
    #[error("return {0} not found")]
    NotFound(String),
    /// The return (or its order) is not in a state that allows this.
    #[error("{message}")]
    FailedPrecondition {
        /// The machine-readable reason (`ORDER_NOT_SHIPPED`, `RETURN_NOT_APPROVED`, ...).
        reason: &'static str,
        /// The resource concerned.
        subject: String,
        /// What is wrong, for the developer.
        message: String,
    },
    /// A service exchanges depends on failed: transiently (the client may retry) or for good.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// A service exchanges depends on answered what its API rules out (an order without prices).
    #[error("{service} answered what its API rules out: {problem}")]
    BrokenAnswer {
        /// Which service.
        service: &'static str,
        /// What is wrong with the answer.
        problem: String,
    },
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

impl Error {
    /// A state that does not allow the call.
    pub fn precondition(reason: &'static str, subject: &str, message: impl Into<String>) -> Self {
        Self::FailedPrecondition {
            reason,
            subject: subject.to_owned(),
            message: message.into(),
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument(violations) => status::invalid_argument(DOMAIN, &violations),
            Error::NotFound(id) => status::not_found(DOMAIN, "RETURN_NOT_FOUND", "return", &id),
            Error::FailedPrecondition {
                reason,
                subject,
                message,
            } => status::failed_precondition(
                DOMAIN,
                reason,
                message.clone(),
                &[PreconditionViolation::new(reason, subject, message)],
            ),
            Error::Upstream(error) => error.into_status(DOMAIN, "the same request"),
            Error::BrokenAnswer { .. } => status::internal(DOMAIN, &error),
            Error::Storage(error) => status::internal(DOMAIN, &error),
            Error::Idempotency(error) => error.into_status(DOMAIN),
        }
    }
}
