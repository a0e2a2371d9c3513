//! Orders follow their shipments by consuming the ledger: `ShipmentShipped` moves an order to
//! SHIPPED, `ShipmentDelivered` to DELIVERED (an exchange's replacement shipment moves nothing).
//!
//! The consumer reads WatchEvents from a checkpoint it persists in the same transaction as the
//! order change an event causes, so after a restart it resumes without missing an event or
//! applying one twice.

use std::time::Duration;

use crowdcrunch_outbox::Outbox;
use crowdcrunch_proto::ledger::v1 as ledger;
use crowdcrunch_runtime::client::UpstreamError;
use crowdcrunch_runtime::{Database, Shutdown};

use crate::clients::Clients;
use crate::domain::{OrderId, OrderStatus};
use crate::error::Error;
use crate::events;
use crate::storage;
use crate::watch::OrderHub;

/// The name of this consumer's checkpoint.
const CONSUMER: &str = "shipment-progress";
/// The longest wait before reconnecting to the ledger.
const MAX_BACKOFF: Duration = Duration::from_secs(3);
/// How many events that change nothing may pass before the checkpoint is written anyway.
const CHECKPOINT_EVERY: i64 = 200;

/// Follows the ledger until `shutdown` fires, reconnecting with backoff.
pub async fn follow(
    database: Database,
    outbox: Outbox,
    clients: Clients,
    hub: OrderHub,
    shutdown: Shutdown,
) {
    let mut backoff = Duration::from_millis(100);
    while !shutdown.is_triggered() {
        match consume(&database, &outbox, &clients, &hub, &shutdown).await {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(error) => {
                tracing::debug!(%error, retry_in = ?backoff, "ledger stream ended; reconnecting");
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.cancelled() => {}
        }
    }
}

async fn consume(
    database: &Database,
    outbox: &Outbox,
    clients: &Clients,
    hub: &OrderHub,
    shutdown: &Shutdown,
) -> Result<(), Error> {
    let mut checkpoint = {
        let mut connection = database.acquire().await?;
        storage::checkpoint(&mut connection, CONSUMER).await?
    };
    let request = ledger::WatchEventsRequest {
        after_sequence: checkpoint,
        subject: None,
    };
    let mut stream = clients
        .ledger
        .clone()
        .watch_events(request)
        .await
        .map_err(|status| UpstreamError::from_status("ledger", status))?
        .into_inner();
    let mut unsaved = 0;
    loop {
        let message = tokio::select! {
            message = stream.message() => message.map_err(|status| UpstreamError::from_status("ledger", status))?,
            () = shutdown.cancelled() => None,
        };
        let Some(event) = message else {
            if unsaved > 0 {
                let mut connection = database.acquire().await?;
                storage::set_checkpoint(&mut connection, CONSUMER, checkpoint).await?;
            }
            return Ok(());
        };
        checkpoint = event.sequence;
        match order_change(&event) {
            Some((order_id, from, to, order_event)) => {
                let mut changed = None;
                outbox
                    .transaction(None, async |connection| {
                        let moved = storage::set_status(connection, &order_id, from, to).await?;
                        if moved {
                            let order = storage::get(connection, &order_id, None).await?;
                            let event = order_event(&order_id, order.customer_id.as_str());
                            outbox.enqueue(connection, event).await?;
                            // The order as it is now, announced once committed.
                            changed = Some(order);
                        }
                        storage::set_checkpoint(connection, CONSUMER, checkpoint).await?;
                        Ok::<_, Error>(())
                    })
                    .await?;
                unsaved = 0;
                if let Some(order) = changed {
                    tracing::debug!(%order_id, status = to.name(), "order follows its shipment");
                    hub.publish(order);
                }
            }
            None => {
                unsaved += 1;
                if unsaved >= CHECKPOINT_EVERY {
                    let mut connection = database.acquire().await?;
                    storage::set_checkpoint(&mut connection, CONSUMER, checkpoint).await?;
                    unsaved = 0;
                }
            }
        }
    }
}

/// The constructor of the order event a change causes.
type OrderEvent = fn(&OrderId, &str) -> crowdcrunch_outbox::Event;

/// The order change an event causes: (order id, from statuses, to status, the order's event). An
/// event whose order id is malformed names no order of ours.
fn order_change(
    event: &ledger::Event,
) -> Option<(OrderId, &'static [OrderStatus], OrderStatus, OrderEvent)> {
    let (from, to, order_event): (&'static [OrderStatus], _, OrderEvent) =
        match event.r#type.as_str() {
            "ShipmentShipped" => (
                &[OrderStatus::Confirmed],
                OrderStatus::Shipped,
                events::order_shipped,
            ),
            "ShipmentDelivered" => (
                &[OrderStatus::Confirmed, OrderStatus::Shipped],
                OrderStatus::Delivered,
                events::order_delivered,
            ),
            _ => return None,
        };
    let text = |key: &str| {
        event
            .data
            .as_ref()
            .and_then(|data| data.fields.get(key))
            .and_then(|value| match &value.kind {
                Some(prost_types::value::Kind::StringValue(text)) => Some(text.clone()),
                _ => None,
            })
    };
    if text("return_id").is_some_and(|id| !id.is_empty()) {
        return None;
    }
    let order_id = text("order_id").unwrap_or_else(|| event.subject.clone());
    let order_id = OrderId::parse(&order_id, "order_id").ok()?;
    Some((order_id, from, to, order_event))
}
