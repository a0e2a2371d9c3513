//! The inventory service's errors and their one mapping to `tonic::Status`.

use crowdcrunch_runtime::StorageError;
use crowdcrunch_runtime::idempotency::IdempotencyError;
use crowdcrunch_runtime::status::{self, FieldViolation, PreconditionViolation};
use tonic::Status;

/// The `ErrorInfo.domain` of this service's errors.
pub const DOMAIN: &str = "inventory.crowdcrunch.dev";

/// A SKU a reservation asked more of than is available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    /// The SKU.
    pub sku: String,
    /// Units asked for.
    pub requested: i64,
    /// Units available.
    pub available: i64,
}

/// Why an inventory call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request has bad fields.
    #[error("invalid request: {0:?}")]
    InvalidArgument(Vec<FieldViolation>),
    /// No product has this SKU.
    #[error("product {0} not found")]
    ProductNotFound(String),
    /// No reservation has this id.
    #[error("reservation {0} not found")]
    ReservationNotFound(String),
    /// A product with this SKU exists.
    #[error("SKU {0} is taken")]
    SkuTaken(String),
    /// Some lines of a reservation lack available units; nothing was reserved.
    #[error("insufficient stock for {0:?}")]
    InsufficientStock(Vec<Shortage>),
    /// An adjustment would leave fewer units on hand than are reserved.
    #[error("on_hand of {sku} would fall below the {reserved} units reserved")]
    BelowReserved {
        /// The SKU.
        sku: String,
        /// Units reserved.
        reserved: i64,
    },
    /// An adjustment or restock would take on_hand past what an int32 holds.
    #[error("on_hand of {0} would exceed 2147483647")]
    StockLimit(String),
    /// The reservation is COMMITTED or RELEASED, so it cannot become the other.
    #[error("reservation {id} is {status}")]
    ReservationClosed {
        /// The reservation.
        id: String,
        /// Its final status, `COMMITTED` or `RELEASED`.
        status: &'static str,
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

impl From<FieldViolation> for Error {
    fn from(violation: FieldViolation) -> Self {
        Self::InvalidArgument(vec![violation])
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument(violations) => status::invalid_argument(DOMAIN, &violations),
            Error::ProductNotFound(sku) => {
                status::not_found(DOMAIN, "PRODUCT_NOT_FOUND", "product", &sku)
            }
            Error::ReservationNotFound(id) => {
                status::not_found(DOMAIN, "RESERVATION_NOT_FOUND", "reservation", &id)
            }
            Error::SkuTaken(sku) => status::already_exists(
                DOMAIN,
                "SKU_TAKEN",
                format!("a product with SKU {sku} exists"),
                [("sku", sku.as_str())],
            ),
            Error::InsufficientStock(shortages) => {
                let skus: Vec<&str> = shortages.iter().map(|short| short.sku.as_str()).collect();
                let violations: Vec<_> = shortages
                    .iter()
                    .map(|short| {
                        PreconditionViolation::new(
                            "INSUFFICIENT_STOCK",
                            &short.sku,
                            format!(
                                "{} units asked, {} available",
                                short.requested, short.available
                            ),
                        )
                    })
                    .collect();
                status::failed_precondition(
                    DOMAIN,
                    "INSUFFICIENT_STOCK",
                    format!(
                        "not enough stock of {}; nothing was reserved",
                        skus.join(", ")
                    ),
                    &violations,
                )
            }
            Error::BelowReserved { sku, reserved } => status::failed_precondition(
                DOMAIN,
                "STOCK_BELOW_RESERVED",
                format!("on_hand of {sku} would fall below the {reserved} units reserved"),
                &[PreconditionViolation::new(
                    "STOCK_BELOW_RESERVED",
                    &sku,
                    format!("{reserved} units are reserved"),
                )],
            ),
            Error::StockLimit(sku) => status::failed_precondition(
                DOMAIN,
                "STOCK_LIMIT",
                format!("on_hand of {sku} would exceed 2147483647"),
                &[PreconditionViolation::new(
                    "STOCK_LIMIT",
                    &sku,
                    "on_hand is at most 2147483647",
                )],
            ),
            Error::ReservationClosed { id, status } => status::failed_precondition(
                DOMAIN,
                "RESERVATION_CLOSED",
                format!("reservation {id} is {status}"),
                &[PreconditionViolation::new(
                    "RESERVATION_STATUS",
                    &id,
                    format!("the reservation is {status}"),
                )],
            ),
            Error::Idempotency(error) => error.into_status(DOMAIN),
            Error::Storage(error) => status::internal(DOMAIN, &error),
        }
    }
}
