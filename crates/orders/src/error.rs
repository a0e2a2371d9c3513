//! The orders service's errors and their one mapping to `tonic::Status`.

use crowdcrunch_runtime::StorageError;
use crowdcrunch_runtime::client::UpstreamError;
use crowdcrunch_runtime::idempotency::IdempotencyError;
use crowdcrunch_runtime::status::{self, FieldViolation, PreconditionViolation};
use tonic::Status;

/// The `ErrorInfo.domain` of this service's errors.
pub const DOMAIN: &str = "orders.crowdcrunch.dev";

/// Why an orders call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request has bad fields (including an unknown customer or SKU, or a bad card).
    #[error("invalid request: {0:?}")]
    InvalidArgument(Vec<FieldViolation>),
    /// No order has this id.
    #[error("order {0} not found")]
    NotFound(String),
    /// The order cannot be cancelled in its state.
    #[error("order {id} cannot be cancelled: {why}")]
    NotCancellable {
        /// The order.
        id: String,
        /// Its state.
        why: String,
    },
    /// A service orders depends on failed: transiently (the client may retry) or for good.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// A request id was reused, or its record is unreadable.
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Data breaks an invariant: a stored order that cannot be (an unknown status, an impossible
    /// progress), or an answer of another service that its contract rules out.
    #[error("broken invariant: {0}")]
    Corrupt(String),
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
            Error::NotFound(id) => status::not_found(DOMAIN, "ORDER_NOT_FOUND", "order", &id),
            Error::NotCancellable { id, why } => status::failed_precondition(
                DOMAIN,
                "ORDER_NOT_CANCELLABLE",
                format!("order {id} cannot be cancelled: {why}"),
                &[PreconditionViolation::new("ORDER_STATUS", &id, why)],
            ),
            Error::Upstream(error) => error.into_status(DOMAIN, "the same request id"),
            error @ (Error::Storage(_) | Error::Corrupt(_)) => status::internal(DOMAIN, &error),
            Error::Idempotency(error) => error.into_status(DOMAIN),
        }
    }
}
