//! The transactional outbox: how every service records the events of its state changes.
//!
//! A service writes each event with [`Outbox::enqueue`] on the connection of the transaction that
//! makes the change, so the event exists if and only if the change committed. A [`Relay`], one
//! background task per service process, then delivers the stored events to the ledger in order,
//! with retries and capped backoff, and removes them once the ledger has them. The ledger is
//! idempotent by event id, so a delivery repeated after a crash or by a second replica is recorded
//! once: an event is never lost and never recorded twice.
//!
//! A service only says which events its changes produce ([`Event`]: a type, a subject, a JSON
//! payload); the outbox adds the id (UUIDv7), the source (the service), the time and the trace id.
//! This crate holds no domain knowledge and never reads configuration.

mod relay;

use std::sync::Arc;

use crowdcrunch_runtime::client::GrpcChannel;
use crowdcrunch_runtime::context::{current_trace_id, current_traceparent};
use crowdcrunch_runtime::idempotency::{self, IdempotencyError, IdempotencyKey};
use crowdcrunch_runtime::storage::now_micros;
use crowdcrunch_runtime::{Database, StorageError};
use prost::Message;
use sqlx::AnyConnection;
use tokio::sync::Notify;

pub use relay::Relay;

/// The outbox table: infrastructure in every service's database, created by [`Outbox::open`].
/// Rows are the events not yet delivered, in the order of their time-ordered ids.
const OUTBOX_TABLE: &str = "
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    event_type TEXT NOT NULL,
    subject TEXT NOT NULL,
    data TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    event_time BIGINT NOT NULL,
    customer_id TEXT NOT NULL DEFAULT '',
    traceparent TEXT NOT NULL DEFAULT ''
)";

/// What a state change produced, as the service states it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// What happened, a PascalCase fact: `StockReserved`, `CustomerCreated`.
    pub event_type: &'static str,
    /// What it is about: the order id wherever an order is involved, else the changed resource's id.
    pub subject: String,
    /// The payload, a JSON object.
    pub data: serde_json::Value,
    /// The customer it is about, who may read it; `None` for events about no customer (the
    /// catalog, stock), which only staff read.
    pub customer_id: Option<String>,
}

impl Event {
    /// An event of `event_type` about `subject` carrying `data` (a JSON object).
    pub fn new(
        event_type: &'static str,
        subject: impl Into<String>,
        data: serde_json::Value,
    ) -> Self {
        Self {
            event_type,
            subject: subject.into(),
            data,
            customer_id: None,
        }
    }

    /// This event, about the customer `customer_id`; an empty id names no customer (a resource
    /// stored before resources named their owner), and the event is then for staff only.
    #[must_use]
    pub fn about_customer(mut self, customer_id: &str) -> Self {
        self.customer_id = (!customer_id.is_empty()).then(|| customer_id.to_owned());
        self
    }
}

/// One service's outbox: where its transactions write their events, and what wakes its relay.
#[derive(Debug, Clone)]
pub struct Outbox {
    database: Database,
    source: &'static str,
    wake: Arc<Notify>,
}

impl Outbox {
    /// The outbox of the service `source` in `database`, creating its table when missing.
    pub async fn open(database: &Database, source: &'static str) -> Result<Self, StorageError> {
        database.ensure_tables("outbox", OUTBOX_TABLE).await?;
        // Outboxes created before events named their customer.
        database
            .ensure_column(
                "outbox",
                "outbox",
                "customer_id",
                "TEXT NOT NULL DEFAULT ''",
            )
            .await?;
        // Outboxes created before deliveries linked to the trace that wrote the event.
        database
            .ensure_column(
                "outbox",
                "outbox",
                "traceparent",
                "TEXT NOT NULL DEFAULT ''",
            )
            .await?;
        Ok(Self {
            database: database.clone(),
            source,
            wake: Arc::new(Notify::new()),
        })
    }

    /// Writes `event` on `connection`, which must be inside the transaction of the change it
    /// records; it is delivered once that transaction commits.
    pub async fn enqueue(
        &self,
        connection: &mut AnyConnection,
        event: Event,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO outbox \
             (id, source, event_type, subject, data, trace_id, event_time, customer_id, \
             traceparent) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(self.source)
        .bind(event.event_type)
        .bind(&event.subject)
        .bind(event.data.to_string())
        .bind(current_trace_id())
        .bind(now_micros())
        .bind(event.customer_id.as_deref().unwrap_or(""))
        .bind(current_traceparent())
        .execute(connection)
        .await?;
        Ok(())
    }

    /// Runs `work` in one transaction, as [`idempotency::run`] does (a replay of `key` returns the
    /// first answer), and wakes the relay once it has committed, so that the events `work`
    /// enqueued reach the ledger at once.
    pub async fn transaction<M, E, F>(&self, key: Option<&IdempotencyKey>, work: F) -> Result<M, E>
    where
        M: Message + Default,
        E: From<IdempotencyError> + From<StorageError>,
        F: AsyncFnOnce(&mut AnyConnection) -> Result<M, E>,
    {
        let answer = idempotency::run(&self.database, key, work).await?;
        self.wake.notify_one();
        Ok(answer)
    }

    /// The relay that delivers this outbox to the ledger behind `ledger`.
    pub fn relay(&self, ledger: GrpcChannel) -> Relay {
        Relay::new(
            self.database.clone(),
            self.source,
            self.wake.clone(),
            ledger,
        )
    }
}
