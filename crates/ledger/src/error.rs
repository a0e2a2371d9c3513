//! The ledger's errors and their one mapping to `tonic::Status`.

use crowdcrunch_runtime::StorageError;
use crowdcrunch_runtime::status::{self, FieldViolation};
use tonic::Status;

/// The `ErrorInfo.domain` of this service's errors.
pub const DOMAIN: &str = "ledger.crowdcrunch.dev";

/// Why a ledger call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request has bad fields.
    #[error("invalid request: {0:?}")]
    InvalidArgument(Vec<FieldViolation>),
    /// An event names a source other than the service appending it.
    #[error("an event names the source {claimed}, but the caller is {caller}")]
    ForeignSource {
        /// The source the event names.
        claimed: String,
        /// The service appending.
        caller: String,
    },
    /// The caller appending is not a service (admission lets only the rule's peers through).
    #[error("only a service appends events, with its own identity")]
    NotAService,
    /// The server is shutting down; a watcher resumes after the last sequence it received.
    #[error("the ledger is shutting down")]
    ShuttingDown,
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        Self::Storage(error.into())
    }
}

impl From<FieldViolation> for Error {
    fn from(violation: FieldViolation) -> Self {
        Self::InvalidArgument(vec![violation])
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument(violations) => status::invalid_argument(DOMAIN, &violations),
            error @ Error::ForeignSource { .. } => status::with_reason(
                tonic::Code::PermissionDenied,
                DOMAIN,
                "SOURCE_NOT_CALLER",
                format!("{error}: an event's source is the service that appends it"),
            ),
            error @ Error::NotAService => status::with_reason(
                tonic::Code::PermissionDenied,
                DOMAIN,
                "NOT_A_SERVICE",
                error.to_string(),
            ),
            Error::ShuttingDown => status::with_reason(
                tonic::Code::Unavailable,
                DOMAIN,
                "SHUTTING_DOWN",
                "the ledger is shutting down; watch again with after_sequence set to the last \
                 sequence received",
            ),
            Error::Storage(error) => status::internal(DOMAIN, &error),
        }
    }
}
