//! The payments service's errors and their one mapping to `tonic::Status`.

use crowdcrunch_runtime::StorageError;
use crowdcrunch_runtime::idempotency::IdempotencyError;
use crowdcrunch_runtime::status::{self, FieldViolation, PreconditionViolation};
use tonic::Status;

use crate::domain::PaymentStatus;

/// The `ErrorInfo.domain` of this service's errors.
pub const DOMAIN: &str = "payments.crowdcrunch.dev";

/// Why a payments call failed. A declined card is not an error: it is a payment that says so.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request has bad fields (an unknown card token is one).
    #[error("invalid request: {0:?}")]
    InvalidArgument(Vec<FieldViolation>),
    /// No payment has this id.
    #[error("payment {0} not found")]
    NotFound(String),
    /// The payment's status does not allow the change.
    #[error("payment {id} is {status}: {requirement}")]
    WrongStatus {
        /// The payment.
        id: String,
        /// Its status.
        status: PaymentStatus,
        /// The status the change needs.
        requirement: &'static str,
    },
    /// The refund asked for is more than what is left to refund.
    #[error("payment {id} has {refundable} {currency_code} minor units left to refund")]
    RefundTooLarge {
        /// The payment.
        id: String,
        /// Captured minus refunded.
        refundable: i64,
        /// The payment's currency.
        currency_code: String,
    },
    /// A request id was reused, or its record is unreadable.
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    /// The database failed, or holds what it never should.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        Self::Storage(error.into())
    }
}

impl Error {
    /// One bad field.
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::InvalidArgument(violations) => status::invalid_argument(DOMAIN, &violations),
            Error::NotFound(id) => status::not_found(DOMAIN, "PAYMENT_NOT_FOUND", "payment", &id),
            Error::WrongStatus {
                id, requirement, ..
            } => status::failed_precondition(
                DOMAIN,
                "PAYMENT_STATUS",
                message,
                &[PreconditionViolation::new("STATUS", id, requirement)],
            ),
            Error::RefundTooLarge { id, .. } => status::failed_precondition(
                DOMAIN,
                "REFUND_EXCEEDS_CAPTURED",
                message,
                &[PreconditionViolation::new(
                    "REFUNDABLE_AMOUNT",
                    id,
                    "the refunded total may not exceed the captured amount",
                )],
            ),
            Error::Idempotency(error) => error.into_status(DOMAIN),
            Error::Storage(error) => status::internal(DOMAIN, &error),
        }
    }
}
