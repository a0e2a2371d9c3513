//! The fulfillment service: shipments, one per confirmed order and one per exchange for its
//! replacement goods, served as `crowdcrunch.fulfillment.v1.FulfillmentService`.
//!
//! A shipment is created PENDING and moves only when told to, one step forward at a time:
//! PENDING → PACKED → SHIPPED (with a tracking number) → DELIVERED, or CANCELLED before it ships.
//! Asking for the status a shipment already has returns it unchanged; creation is idempotent under
//! the request id. Every change commits with its event in the outbox, for the relay to deliver to
//! the ledger; the events' subject is the order id. A customer reads only their own shipments
//! (scoped in SQL; another's is answered as an unknown one).
//!
//! This crate holds only the fulfillment domain. It never calls another service and never reads
//! configuration (the binary hands it a [`Database`] and an [`Outbox`]).

mod api;
mod domain;
mod error;
mod events;
mod storage;

use crowdcrunch_outbox::Outbox;
use crowdcrunch_proto::fulfillment::v1::fulfillment_service_server::FulfillmentServiceServer;
use crowdcrunch_runtime::Database;
use crowdcrunch_runtime::server::ServiceDefinition;

pub use api::FulfillmentApi;
pub use error::Error;

/// The database name (SQLite file stem, PostgreSQL schema) of this service.
pub const DATABASE_NAME: &str = "fulfillment";

/// The service's schema migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The fulfillment service over `database` (already migrated with [`MIGRATOR`]), writing its
/// events to `outbox` (opened on the same database), ready to serve.
pub fn service(
    database: Database,
    outbox: Outbox,
) -> ServiceDefinition<FulfillmentServiceServer<FulfillmentApi>> {
    ServiceDefinition {
        readiness: database.readiness(),
        service: Box::new(move |page_tokens| {
            FulfillmentServiceServer::new(FulfillmentApi::new(database, outbox, page_tokens))
        }),
        file_descriptor_set: crowdcrunch_proto::FILE_DESCRIPTOR_SET,
    }
}
