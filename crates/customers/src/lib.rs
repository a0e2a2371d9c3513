//! The customers service: customer accounts, served as `crowdcrunch.customers.v1.CustomerService`.
//!
//! Emails are unique ignoring case; creations are idempotent under a client request id; every
//! change commits with its event in the outbox (`CustomerCreated`, `CustomerUpdated`, about the
//! customer id). A customer reads and updates only their own record: another's is answered as an
//! unknown id. This crate holds only the customers domain: the gRPC implementation, its rules and
//! its storage. It never calls another service and never reads configuration (the binary hands it
//! a [`Database`] and an [`Outbox`]).

mod api;
mod domain;
mod error;
mod events;
mod storage;

use crowdcrunch_outbox::Outbox;
use crowdcrunch_proto::customers::v1::customer_service_server::CustomerServiceServer;
use crowdcrunch_runtime::Database;
use crowdcrunch_runtime::server::ServiceDefinition;

pub use api::CustomerApi;
pub use error::Error;

/// The database name (SQLite file stem, PostgreSQL schema) of this service.
pub const DATABASE_NAME: &str = "customers";

/// The service's schema migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The customers service over `database` (already migrated with [`MIGRATOR`]), writing its events
/// to `outbox` (opened on the same database), ready to serve.
pub fn service(
    database: Database,
    outbox: Outbox,
) -> ServiceDefinition<CustomerServiceServer<CustomerApi>> {
    ServiceDefinition {
        readiness: database.readiness(),
        service: Box::new(move |page_tokens| {
            CustomerServiceServer::new(CustomerApi::new(database, outbox, page_tokens))
        }),
        file_descriptor_set: crowdcrunch_proto::FILE_DESCRIPTOR_SET,
    }
}
