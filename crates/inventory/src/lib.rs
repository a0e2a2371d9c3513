//! The inventory service: the product catalogue, stock levels and reservations, served as
//! `crowdcrunch.inventory.v1.InventoryService`.
//!
//! Stock never oversells: a reservation holds every line or none, under any concurrency, on SQLite
//! and on PostgreSQL. Every change commits with its events in the outbox (product and stock events
//! are about the SKU, reservation events about the reservation id, which is the order id). This
//! crate holds only the inventory domain: it never calls another service and never reads
//! configuration (the binary hands it a [`Database`] and an [`Outbox`]).

mod api;
mod domain;
mod error;
mod events;
mod storage;

use crowdcrunch_outbox::Outbox;
use crowdcrunch_proto::inventory::v1::inventory_service_server::InventoryServiceServer;
use crowdcrunch_runtime::Database;
use crowdcrunch_runtime::server::ServiceDefinition;

pub use api::InventoryApi;
pub use error::Error;

/// The database name (SQLite file stem, PostgreSQL schema) of this service.
pub const DATABASE_NAME: &str = "inventory";

/// The service's schema migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The inventory service over `database` (already migrated with [`MIGRATOR`]), writing its events
/// to `outbox` (opened on the same database), ready to serve.
pub fn service(
    database: Database,
    outbox: Outbox,
) -> ServiceDefinition<InventoryServiceServer<InventoryApi>> {
    ServiceDefinition {
        readiness: database.readiness(),
        service: Box::new(move |page_tokens| {
            InventoryServiceServer::new(InventoryApi::new(database, outbox, page_tokens))
        }),
        file_descriptor_set: crowdcrunch_proto::FILE_DESCRIPTOR_SET,
    }
}
