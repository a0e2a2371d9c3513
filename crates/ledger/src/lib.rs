//! The ledger service: the append-only log of everything that happened, in one global order,
//! served as `crowdcrunch.ledger.v1.LedgerService`.
//!
//! Appends are idempotent by event id and get gap-free sequences in commit order; readers list
//! events by subject or watch the log live (the stored backlog first, then new events as they
//! commit). An event's source is the service that appends it and its time the moment the ledger
//! received it, never what the body says; a customer reads only the events about them. This crate
//! holds only the ledger: it never calls another service, has no outbox (it is where outboxes
//! deliver) and never reads configuration.

mod api;
mod domain;
mod error;
mod storage;
mod watch;

use crowdcrunch_proto::ledger::v1::ledger_service_server::LedgerServiceServer;
use crowdcrunch_runtime::server::ServiceDefinition;
use crowdcrunch_runtime::{Database, Shutdown};

pub use api::LedgerApi;
pub use error::Error;

/// The database name (SQLite file stem, PostgreSQL schema) of this service.
pub const DATABASE_NAME: &str = "ledger";

/// The service's schema migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The ledger service over `database` (already migrated with [`MIGRATOR`]), ready to serve. Its
/// `WatchEvents` streams end when `shutdown` fires, so that a drain never waits on them.
pub fn service(
    database: Database,
    shutdown: Shutdown,
) -> ServiceDefinition<LedgerServiceServer<LedgerApi>> {
    ServiceDefinition {
        readiness: database.readiness(),
        service: Box::new(move |page_tokens| {
            LedgerServiceServer::new(LedgerApi::new(database, shutdown, page_tokens))
        }),
        file_descriptor_set: crowdcrunch_proto::FILE_DESCRIPTOR_SET,
    }
}
