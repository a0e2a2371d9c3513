//! The orders service: orders and their saga, served as `crowdcrunch.orders.v1.OrderService`.
//!
//! PlaceOrder validates everything it can up front (through customers, inventory and payments),
//! saves the order with a card token (never the card), and the saga (`saga.rs`) carries it through
//! reserve → authorize → capture → commit → ship, or compensates. The saga's progress is persisted
//! after every step, so the process can die at any moment and resume on start. Orders follow their
//! shipments by consuming the ledger. A customer places, reads, lists, watches and cancels only
//! their own orders: every read is scoped to them in SQL, so another's order is answered as an
//! unknown one. This crate never calls the others' code, only their gRPC APIs, and never reads
//! configuration.

mod api;
mod clients;
mod domain;
mod error;
mod events;
mod order;
mod saga;
mod shipments;
mod storage;
mod watch;

use crowdcrunch_outbox::Outbox;
use crowdcrunch_proto::orders::v1::order_service_server::OrderServiceServer;
use crowdcrunch_runtime::server::ServiceDefinition;
use crowdcrunch_runtime::{Database, Shutdown};

pub use api::OrderApi;
pub use clients::Clients;
pub use error::Error;

/// The database name (SQLite file stem, PostgreSQL schema) of this service.
pub const DATABASE_NAME: &str = "orders";

/// The service's schema migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The orders service over `database` (migrated with [`MIGRATOR`]) and its `outbox`, calling the
/// services in `clients`. Starts the saga runner and the ledger consumer, which run until
/// `shutdown` fires.
pub fn service(
    database: Database,
    outbox: Outbox,
    clients: Clients,
    shutdown: Shutdown,
) -> ServiceDefinition<OrderServiceServer<OrderApi>> {
    let hub = watch::OrderHub::default();
    let saga = saga::Saga::new(
        database.clone(),
        outbox.clone(),
        clients.clone(),
        hub.clone(),
    );
    tokio::spawn(saga.clone().run(shutdown.clone()));
    tokio::spawn(shipments::follow(
        database.clone(),
        outbox.clone(),
        clients.clone(),
        hub.clone(),
        shutdown.clone(),
    ));
    ServiceDefinition {
        readiness: database.readiness(),
        service: Box::new(move |page_tokens| {
            OrderServiceServer::new(OrderApi::new(
                database.clone(),
                outbox,
                clients,
                hub,
                saga,
                shutdown,
                page_tokens,
            ))
        }),
        file_descriptor_set: crowdcrunch_proto::FILE_DESCRIPTOR_SET,
    }
}
