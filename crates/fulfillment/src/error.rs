//! The fulfillment service's errors and their one mapping to `tonic::Status`.

use crowdcrunch_runtime::StorageError;
use crowdcrunch_runtime::idempotency::IdempotencyError;
use crowdcrunch_runtime::status::{self, FieldViolation, PreconditionViolation};
use tonic::Status;

use crate::domain::ShipmentStatus;

/// The `ErrorInfo.domain` of this service's errors.
pub const DOMAIN: &str = "fulfillment.crowdcrunch.dev";

/// Why a fulfillment call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request has bad fields.
    #[error("invalid request: {0:?}")]
    InvalidArgument(Vec<FieldViolation>),
    /// No shipment has this id.
    #[error("shipment {0} not found")]
    NotFound(String),
    /// The shipment cannot move from its status to the one asked for.
    #[error("shipment {id} is {status} and cannot move to {to}")]
    WrongStatus {
        /// The shipment.
        id: String,
        /// Its status.
        status: ShipmentStatus,
        /// The status asked for.
        to: ShipmentStatus,
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

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::InvalidArgument(violations) => status::invalid_argument(DOMAIN, &violations),
            Error::NotFound(id) => status::not_found(DOMAIN, "SHIPMENT_NOT_FOUND", "shipment", &id),
            Error::WrongStatus { id, .. } => status::failed_precondition(
                DOMAIN,
                "SHIPMENT_STATUS",
                message,
                &[PreconditionViolation::new(
                    "STATUS",
                    id,
                    "a shipment moves one step at a time, PENDING → PACKED → SHIPPED → \
                     DELIVERED, or to CANCELLED before it ships",
                )],
            ),
            Error::Idempotency(error) => error.into_status(DOMAIN),
            Error::Storage(error) => status::internal(DOMAIN, &error),
        }
    }
}
