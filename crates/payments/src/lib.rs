//! The payments service: card tokens and payments against a simulated card network, served as
//! `crowdcrunch.payments.v1.PaymentService`.
//!
//! A card is tokenized at once and only its token, brand, last four digits and expiry are kept,
//! with what the network will answer when it is charged (the test cards 4000000000000002 and
//! 4000000000009995 decline; every other valid number is approved). A payment is authorised on a
//! token, then captured or voided, then refunded in part or in full; every change that moves money
//! is idempotent under its `request_id` and, without one, safe by the payment's own status. Amounts
//! are integer minor units, never floats.
//!
//! Every change commits with its event in the outbox, for the relay to deliver to the ledger: a
//! payment's events are about its order (the subject is the order id), `CardTokenized` is about the
//! token and holds no card data. A customer reads only their own payments (scoped in SQL; another's
//! is answered as an unknown one); money moves only for the services the protos name.
//!
//! This crate holds only the payments domain. It must never store, log or return a card number or
//! CVC, never call another service, and never read configuration (the binary hands it a
//! [`Database`] and an [`Outbox`]).

mod api;
mod domain;
mod error;
mod events;
mod storage;

use crowdcrunch_outbox::Outbox;
use crowdcrunch_proto::payments::v1::payment_service_server::PaymentServiceServer;
use crowdcrunch_runtime::Database;
use crowdcrunch_runtime::server::ServiceDefinition;

pub use api::PaymentApi;
pub use error::Error;

/// The database name (SQLite file stem, PostgreSQL schema) of this service.
pub const DATABASE_NAME: &str = "payments";

/// The service's schema migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The payments service over `database` (already migrated with [`MIGRATOR`]), writing its events
/// to `outbox` (opened on the same database), ready to serve.
pub fn service(
    database: Database,
    outbox: Outbox,
) -> ServiceDefinition<PaymentServiceServer<PaymentApi>> {
    ServiceDefinition {
        readiness: database.readiness(),
        service: Box::new(move |page_tokens| {
            PaymentServiceServer::new(PaymentApi::new(database, outbox, page_tokens))
        }),
        file_descriptor_set: crowdcrunch_proto::FILE_DESCRIPTOR_SET,
    }
}
