//! The exchanges service: returns and exchanges, served as
//! `crowdcrunch.exchanges.v1.ExchangeService`.
//!
//! A return may be requested for a shipped or delivered order, up to the quantity bought minus
//! what other (not rejected) returns already claim. Receiving it restocks the goods, then refunds
//! the paid amount of those lines (RETURN) or reserves replacement stock and creates a replacement
//! shipment at no charge (EXCHANGE) — before it answers. Every downstream call carries a key
//! derived from the return and the step, so a retried ReceiveReturn finishes what a failed one
//! started and never refunds or ships twice. A customer returns only their own orders (another's is
//! answered as an unknown order) and reads only their own returns. This crate talks to the other
//! services only over gRPC and never reads configuration.

mod api;
mod domain;
mod error;
mod events;
mod storage;

use crowdcrunch_outbox::Outbox;
use crowdcrunch_proto::exchanges::v1::exchange_service_server::ExchangeServiceServer;
use crowdcrunch_proto::fulfillment::v1::fulfillment_service_client::FulfillmentServiceClient;
use crowdcrunch_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use crowdcrunch_proto::orders::v1::order_service_client::OrderServiceClient;
use crowdcrunch_proto::payments::v1::payment_service_client::PaymentServiceClient;
use crowdcrunch_runtime::Database;
use crowdcrunch_runtime::client::GrpcChannel;
use crowdcrunch_runtime::server::ServiceDefinition;

pub use api::ExchangeApi;
pub use error::Error;

/// The database name (SQLite file stem, PostgreSQL schema) of this service.
pub const DATABASE_NAME: &str = "exchanges";

/// The service's schema migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// Clients of the services exchanges depends on.
#[derive(Debug, Clone)]
pub struct Clients {
    /// The orders returned: status, lines, prices, payment, address.
    pub orders: OrderServiceClient<GrpcChannel>,
    /// Restock, and replacement reservations.
    pub inventory: InventoryServiceClient<GrpcChannel>,
    /// Refunds.
    pub payments: PaymentServiceClient<GrpcChannel>,
    /// Replacement shipments.
    pub fulfillment: FulfillmentServiceClient<GrpcChannel>,
}

/// The exchanges service over `database` (migrated with [`MIGRATOR`]) and its `outbox`, calling
/// the services in `clients`.
pub fn service(
    database: Database,
    outbox: Outbox,
    clients: Clients,
) -> ServiceDefinition<ExchangeServiceServer<ExchangeApi>> {
    ServiceDefinition {
        readiness: database.readiness(),
        service: Box::new(move |page_tokens| {
            ExchangeServiceServer::new(ExchangeApi::new(database, outbox, clients, page_tokens))
        }),
        file_descriptor_set: crowdcrunch_proto::FILE_DESCRIPTOR_SET,
    }
}
