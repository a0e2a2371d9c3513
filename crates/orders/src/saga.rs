//! The order saga: reserve stock → authorize → capture → commit the reservation → create the
//! shipment → CONFIRMED, or compensate (void or refund, release or restock, cancel the shipment)
//! into REJECTED, PAYMENT_DECLINED or CANCELLED.
//!
//! Crash safety comes from three rules. The progress of every order is persisted after each step,
//! in the same transaction as the step's event. Every downstream call carries an idempotency key
//! derived from the order and the step, so a step re-run after a crash changes nothing twice. And
//! the next step is always computed from the persisted progress alone ([`next_step`]), so a
//! restarted process resumes — or compensates — every order in flight the moment it starts.
//! A transient failure (a service down or restarting) is retried with backoff capped at a few
//! seconds while the order waits as PENDING.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crowdcrunch_outbox::{Event, Outbox};
use crowdcrunch_proto::fulfillment::v1 as fulfillment;
use crowdcrunch_proto::inventory::v1 as inventory;
use crowdcrunch_proto::orders::v1::OrderStatus;
use crowdcrunch_proto::payments::v1 as payments;
use crowdcrunch_runtime::storage::now_micros;
use crowdcrunch_runtime::{Database, Shutdown};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tonic_types::StatusExt as _;
use tracing::Instrument as _;

use crate::clients::Clients;
use crate::error::Error;
use crate::storage::{self, OrderRecord};
use crate::watch::OrderHub;
use crowdcrunch_runtime::client::{is_transient, request};
use crowdcrunch_runtime::context::continue_traceparent;

/// How long a claimed order stays with this process before another may take it over.
const LEASE: Duration = Duration::from_secs(30);
/// How often the worker looks for due orders when nothing wakes it.
const TICK: Duration = Duration::from_millis(250);
/// The longest wait between two tries of a step that failed transiently.
const MAX_BACKOFF: Duration = Duration::from_secs(3);
/// Orders processed at once by one process.
const CONCURRENCY: i64 = 32;

/// The next thing to do for an order, from its persisted progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing: the order is not in flight.
    Idle,
    /// Reserve the order's stock (reservation id = order id).
    Reserve,
    /// Authorize the total on the card token.
    Authorize,
    /// Capture the authorised payment.
    Capture,
    /// Turn the reservation into sold stock.
    Commit,
    /// Create the shipment.
    Ship,
    /// A cancellation was asked for: start compensating towards CANCELLED.
    BeginCancel,
    /// Compensating after a crash: look up what was done downstream but not recorded.
    Reconcile,
    /// Cancel the shipment (fails if it already left).
    CancelShipment,
    /// Refund the captured amount.
    Refund,
    /// Void the uncaptured authorisation.
    Void,
    /// Release the reservation.
    Release,
    /// Put sold stock back on hand.
    Restock,
    /// End in this status.
    Finish(OrderStatus),
}

/// What to do next for `order`.
pub fn next_step(order: &OrderRecord) -> Step {
    let done = |flag: i64| flag != 0;
    let compensate_to =
        OrderStatus::try_from(i32::try_from(order.compensate_to).unwrap_or_default())
            .unwrap_or(OrderStatus::Unspecified);
    if compensate_to == OrderStatus::Unspecified {
        if done(order.cancel_requested) {
            return Step::BeginCancel;
        }
        if order.status() != OrderStatus::Pending {
            return Step::Idle;
        }
        return if !done(order.reserved) {
            Step::Reserve
        } else if order.payment_id.is_empty() {
            Step::Authorize
        } else if !done(order.captured) {
            Step::Capture
        } else if !done(order.committed) {
            Step::Commit
        } else if order.shipment_id.is_empty() {
            Step::Ship
        } else {
            Step::Finish(OrderStatus::Confirmed)
        };
    }
    if !done(order.reconciled) && done(order.reserved) {
        Step::Reconcile
    } else if !order.shipment_id.is_empty() && !done(order.shipment_cancelled) {
        Step::CancelShipment
    } else if done(order.captured) && !done(order.refunded) {
        Step::Refund
    } else if done(order.authorized) && !done(order.captured) && !done(order.voided) {
        Step::Void
    } else if done(order.reserved) && !done(order.committed) && !done(order.released) {
        Step::Release
    } else if done(order.committed) && !done(order.restocked) {
        Step::Restock
    } else {
        Step::Finish(compensate_to)
    }
}

/// The outcome of running one step.
enum Outcome {
    /// The step's effect is recorded in the order; go on.
    Done,
    /// A transient failure: try again later.
    Retry(tonic::Status),
}

/// Runs the saga of every order in flight, in the background.
#[derive(Clone)]
pub struct Saga {
    database: Database,
    outbox: Outbox,
    clients: Clients,
    hub: OrderHub,
    wake: Arc<Notify>,
    owner: String,
    in_flight: Arc<Mutex<HashSet<String>>>,
}

impl Saga {
    /// A saga runner over `database` calling `clients`, recording events in `outbox` and announcing
    /// changes on `hub`.
    pub fn new(database: Database, outbox: Outbox, clients: Clients, hub: OrderHub) -> Self {
        Self {
            database,
            outbox,
            clients,
            hub,
            wake: Arc::new(Notify::new()),
            owner: uuid::Uuid::now_v7().to_string(),
            in_flight: Arc::default(),
        }
    }

    /// Asks the runner to look for work now (after a commit that created some).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs until `shutdown` fires. Work in flight then is simply abandoned: like a crash, it is
    /// resumed from the persisted progress by whichever process runs next.
    pub async fn run(self, shutdown: Shutdown) {
        let mut tasks = JoinSet::new();
        loop {
            match self.claim().await {
                Ok(ids) => {
                    for id in ids {
                        let saga = self.clone();
                        tasks.spawn(async move { saga.process(id).await });
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot look for due orders"),
            }
            while tasks.try_join_next().is_some() {}
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(TICK) => {}
                () = shutdown.cancelled() => break,
            }
        }
        tasks.abort_all();
    }

    async fn claim(&self) -> Result<Vec<String>, Error> {
        let lease_until = now_micros() + i64::try_from(LEASE.as_micros()).unwrap_or(i64::MAX);
        let mut connection = self.database.pool().acquire().await?;
        let claimed =
            storage::claim_due(&mut connection, &self.owner, lease_until, CONCURRENCY).await?;
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(claimed
            .into_iter()
            .filter(|id| in_flight.insert(id.clone()))
            .collect())
    }

    /// Runs `id`'s steps back to back until it settles or a step must wait.
    async fn process(&self, id: String) {
        if let Err(error) = self.advance(&id).await {
            tracing::warn!(order_id = %id, %error, "saga step failed; it will be retried");
        }
        if let Ok(mut connection) = self.database.pool().acquire().await {
            let _ = storage::release_lease(&mut connection, &id, &self.owner).await;
        }
        self.in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&id);
        // Another change may have arrived while this order was busy.
        self.wake();
    }

    /// Runs `id`'s steps in the trace of the PlaceOrder call that created it, so the events
    /// and calls of every step carry that trace id, whichever replica runs them.
    async fn advance(&self, id: &str) -> Result<(), Error> {
        let mut connection = self.database.pool().acquire().await?;
        let traceparent = storage::get(&mut connection, id).await?.traceparent;
        drop(connection);
        let span = tracing::info_span!("saga", order_id = %id);
        continue_traceparent(&span, &traceparent);
        self.advance_steps(id).instrument(span).await
    }

    async fn advance_steps(&self, id: &str) -> Result<(), Error> {
        loop {
            let mut connection = self.database.pool().acquire().await?;
            let mut order = storage::get(&mut connection, id).await?;
            drop(connection);
            let step = next_step(&order);
            if step == Step::Idle {
                return Ok(());
            }
            let before = order.clone();
            let outcome = self.run_step(step, &mut order).await;
            let mut event = step_event(step, &before, &order);
            match outcome {
                Ok(Outcome::Done) => {
                    order.attempts = 0;
                    order.next_attempt_time = now_micros();
                }
                Ok(Outcome::Retry(status)) => {
                    order.attempts += 1;
                    order.next_attempt_time = now_micros() + backoff_micros(order.attempts);
                    tracing::info!(order_id = %id, ?step, code = ?status.code(), message = status.message(), "step will be retried");
                    event = None;
                }
                Err(status) => {
                    // A final refusal: going forward, the order is cancelled; while compensating,
                    // keep trying (money and stock must come back), slowly.
                    if order.compensate_to == 0 {
                        order.compensate_to = status_code(OrderStatus::Cancelled);
                        order.failure_reason = format!("{}: {}", step_name(step), status.message());
                        event = None;
                    } else {
                        tracing::error!(order_id = %id, ?step, %status, "compensation step refused; retrying");
                        order.attempts += 1;
                        order.next_attempt_time =
                            now_micros() + backoff_micros(order.attempts.max(5));
                        event = None;
                    }
                }
            }
            order.update_time = now_micros();
            let finished = matches!(step, Step::Finish(_));
            let waiting = order.next_attempt_time > now_micros();
            let refused_cancel = step == Step::CancelShipment
                && before.cancel_requested != 0
                && order.cancel_requested == 0;
            let outbox = &self.outbox;
            let saved = outbox
                .transaction(None, async |connection| {
                    storage::save_progress(connection, &order).await?;
                    if let Step::Finish(status) = step {
                        let from = [OrderStatus::Pending, OrderStatus::Confirmed];
                        storage::set_status(connection, &order.id, &from, status).await?;
                        // A cancellation is satisfied (or moot) once the order ends; not once it is
                        // confirmed.
                        if status != OrderStatus::Confirmed {
                            storage::clear_cancel(connection, &order.id).await?;
                        }
                    }
                    if refused_cancel {
                        storage::clear_cancel(connection, &order.id).await?;
                    }
                    if let Some((event_type, data)) = event {
                        outbox
                            .enqueue(connection, Event::new(event_type, order.id.clone(), data))
                            .await?;
                    }
                    Ok::<_, Error>(storage::get(connection, &order.id).await?.to_proto())
                })
                .await?;
            self.hub.publish(saved);
            if finished || waiting {
                return Ok(());
            }
        }
    }

    /// Runs one step against the other services and records its effect in `order`.
    /// `Err` is a final refusal of the step.
    async fn run_step(
        &self,
        step: Step,
        order: &mut OrderRecord,
    ) -> Result<Outcome, tonic::Status> {
        let attempt = |result: Result<(), tonic::Status>| match result {
            Ok(()) => Ok(Outcome::Done),
            Err(status) if is_transient(&status) => Ok(Outcome::Retry(status)),
            Err(status) => Err(status),
        };
        match step {
            Step::Idle => Ok(Outcome::Done),
            Step::Reserve => match self.reserve(order).await {
                Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                    let skus = short_skus(&status);
                    order.compensate_to = status_code(OrderStatus::Rejected);
                    order.failure_reason = if skus.is_empty() {
                        format!("not enough stock: {}", status.message())
                    } else {
                        format!("not enough stock for {}", skus.join(", "))
                    };
                    Ok(Outcome::Done)
                }
                result => attempt(result.map(|()| order.reserved = 1)),
            },
            Step::Authorize => attempt(self.authorize(order).await),
            Step::Capture => attempt(self.capture(order).await.map(|()| order.captured = 1)),
            Step::Commit => attempt(self.commit(order).await.map(|()| order.committed = 1)),
            Step::Ship => attempt(self.ship(order).await),
            Step::BeginCancel => {
                order.compensate_to = status_code(OrderStatus::Cancelled);
                Ok(Outcome::Done)
            }
            Step::Reconcile => attempt(self.reconcile(order).await.map(|()| order.reconciled = 1)),
            Step::CancelShipment => match self.cancel_shipment(order).await {
                Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                    // The shipment has left: the cancellation cannot happen; the order goes on.
                    order.compensate_to = 0;
                    order.cancel_requested = 0;
                    Ok(Outcome::Done)
                }
                result => attempt(result.map(|()| order.shipment_cancelled = 1)),
            },
            Step::Refund => attempt(self.refund(order).await.map(|()| order.refunded = 1)),
            Step::Void => attempt(self.void(order).await.map(|()| order.voided = 1)),
            Step::Release => attempt(self.release(order).await.map(|()| order.released = 1)),
            Step::Restock => attempt(self.restock(order).await.map(|()| order.restocked = 1)),
            Step::Finish(_) => {
                order.compensate_to = 0;
                Ok(Outcome::Done)
            }
        }
    }

    async fn reserve(&self, order: &OrderRecord) -> Result<(), tonic::Status> {
        let lines = order
            .lines
            .iter()
            .map(|line| inventory::ReservationLine {
                sku: line.sku.clone(),
                quantity: line_quantity(line.quantity),
            })
            .collect();
        let message = inventory::ReserveStockRequest {
            reservation_id: order.id.clone(),
            lines,
            request_id: format!("{}:reserve", order.id),
        };
        self.clients
            .inventory
            .clone()
            .reserve_stock(request(message))
            .await?;
        Ok(())
    }

    async fn authorize(&self, order: &mut OrderRecord) -> Result<(), tonic::Status> {
        let message = payments::AuthorizePaymentRequest {
            request_id: format!("{}:authorize", order.id),
            order_id: order.id.clone(),
            amount: Some(order.money(order.total_minor)),
            card_token: order.card_token.clone(),
        };
        let payment = self
            .clients
            .payments
            .clone()
            .authorize_payment(request(message))
            .await?
            .into_inner();
        let authorized = payment.status() == payments::PaymentStatus::Authorized;
        order.payment_id = payment.id;
        if authorized {
            order.authorized = 1;
        } else {
            order.compensate_to = status_code(OrderStatus::PaymentDeclined);
            order.failure_reason = format!("payment declined: {}", payment.decline_reason);
        }
        Ok(())
    }

    async fn capture(&self, order: &OrderRecord) -> Result<(), tonic::Status> {
        let message = payments::CapturePaymentRequest {
            id: order.payment_id.clone(),
            request_id: format!("{}:capture", order.id),
        };
        self.clients
            .payments
            .clone()
            .capture_payment(request(message))
            .await?;
        Ok(())
    }

    async fn commit(&self, order: &OrderRecord) -> Result<(), tonic::Status> {
        let message = inventory::CommitReservationRequest {
            reservation_id: order.id.clone(),
        };
        self.clients
            .inventory
            .clone()
            .commit_reservation(request(message))
            .await?;
        Ok(())
    }

    async fn ship(&self, order: &mut OrderRecord) -> Result<(), tonic::Status> {
        let shipment = fulfillment::Shipment {
            order_id: order.id.clone(),
            lines: order
                .lines
                .iter()
                .map(|line| fulfillment::ShipmentLine {
                    sku: line.sku.clone(),
                    quantity: line_quantity(line.quantity),
                })
                .collect(),
            address: Some(order.address()),
            ..Default::default()
        };
        let message = fulfillment::CreateShipmentRequest {
            shipment: Some(shipment),
            request_id: format!("{}:ship", order.id),
        };
        let created = self
            .clients
            .fulfillment
            .clone()
            .create_shipment(request(message))
            .await?
            .into_inner();
        order.shipment_id = created.id;
        Ok(())
    }

    /// After a crash between a call and the save of its effect, the payment or shipment exists
    /// downstream but not in the order: find them by order id.
    async fn reconcile(&self, order: &mut OrderRecord) -> Result<(), tonic::Status> {
        if order.payment_id.is_empty() {
            let message = payments::ListPaymentsRequest {
                order_ids: vec![order.id.clone()],
                ..Default::default()
            };
            let listed = self
                .clients
                .payments
                .clone()
                .list_payments(request(message))
                .await?
                .into_inner();
            if let Some(payment) = listed.payments.into_iter().last() {
                order.payment_id = payment.id.clone();
                let status = payment.status();
                order.authorized = i64::from(status != payments::PaymentStatus::Declined);
                order.captured =
                    i64::from(payment.captured.is_some_and(|money| money.minor_units > 0));
                order.voided = i64::from(status == payments::PaymentStatus::Voided);
            }
        }
        if order.shipment_id.is_empty() {
            let message = fulfillment::ListShipmentsRequest {
                order_ids: vec![order.id.clone()],
                ..Default::default()
            };
            let listed = self
                .clients
                .fulfillment
                .clone()
                .list_shipments(request(message))
                .await?
                .into_inner();
            if let Some(shipment) = listed
                .shipments
                .into_iter()
                .find(|shipment| shipment.return_id.is_empty())
            {
                order.shipment_id = shipment.id;
            }
        }
        Ok(())
    }

    async fn cancel_shipment(&self, order: &OrderRecord) -> Result<(), tonic::Status> {
        let message = fulfillment::UpdateShipmentStatusRequest {
            id: order.shipment_id.clone(),
            status: fulfillment::ShipmentStatus::Cancelled.into(),
            tracking_number: String::new(),
            request_id: format!("{}:cancel-shipment", order.id),
        };
        self.clients
            .fulfillment
            .clone()
            .update_shipment_status(request(message))
            .await?;
        Ok(())
    }

    async fn refund(&self, order: &OrderRecord) -> Result<(), tonic::Status> {
        let message = payments::RefundPaymentRequest {
            id: order.payment_id.clone(),
            amount: Some(order.money(order.total_minor)),
            reason: "order cancelled".to_owned(),
            request_id: format!("{}:refund", order.id),
        };
        self.clients
            .payments
            .clone()
            .refund_payment(request(message))
            .await?;
        Ok(())
    }

    async fn void(&self, order: &OrderRecord) -> Result<(), tonic::Status> {
        let message = payments::VoidPaymentRequest {
            id: order.payment_id.clone(),
            request_id: format!("{}:void", order.id),
        };
        self.clients
            .payments
            .clone()
            .void_payment(request(message))
            .await?;
        Ok(())
    }

    async fn release(&self, order: &OrderRecord) -> Result<(), tonic::Status> {
        let message = inventory::ReleaseReservationRequest {
            reservation_id: order.id.clone(),
        };
        self.clients
            .inventory
            .clone()
            .release_reservation(request(message))
            .await?;
        Ok(())
    }

    async fn restock(&self, order: &OrderRecord) -> Result<(), tonic::Status> {
        for line in &order.lines {
            let message = inventory::RestockRequest {
                sku: line.sku.clone(),
                quantity: line_quantity(line.quantity),
                reason: format!("order {} cancelled", order.id),
                request_id: format!("{}:restock:{}", order.id, line.sku),
            };
            self.clients
                .inventory
                .clone()
                .restock(request(message))
                .await?;
        }
        Ok(())
    }
}

/// The order event a completed step produces, if any.
fn step_event(
    step: Step,
    before: &OrderRecord,
    after: &OrderRecord,
) -> Option<(&'static str, serde_json::Value)> {
    match step {
        Step::Finish(status) => {
            let event_type = match status {
                OrderStatus::Confirmed => "OrderConfirmed",
                OrderStatus::Rejected => "OrderRejected",
                OrderStatus::PaymentDeclined => "OrderPaymentDeclined",
                _ => "OrderCancelled",
            };
            Some((
                event_type,
                serde_json::json!({
                    "order_id": after.id,
                    "status": status.as_str_name(),
                    "failure_reason": after.failure_reason,
                    "payment_id": after.payment_id,
                    "shipment_id": after.shipment_id,
                }),
            ))
        }
        Step::CancelShipment if before.cancel_requested != 0 && after.cancel_requested == 0 => {
            Some((
                "OrderCancellationRefused",
                serde_json::json!({ "order_id": after.id, "reason": "the shipment has already left" }),
            ))
        }
        _ => None,
    }
}

fn step_name(step: Step) -> &'static str {
    match step {
        Step::Reserve => "reserving stock",
        Step::Authorize => "authorizing the payment",
        Step::Capture => "capturing the payment",
        Step::Commit => "committing the reservation",
        Step::Ship => "creating the shipment",
        _ => "compensating",
    }
}

fn status_code(status: OrderStatus) -> i64 {
    i64::from(status as i32)
}

fn line_quantity(quantity: i64) -> i32 {
    i32::try_from(quantity).unwrap_or(i32::MAX)
}

/// The SKUs a FAILED_PRECONDITION from ReserveStock names as short.
fn short_skus(status: &tonic::Status) -> Vec<String> {
    status
        .get_details_precondition_failure()
        .map(|failure| {
            failure
                .violations
                .into_iter()
                .map(|violation| violation.subject)
                .collect()
        })
        .unwrap_or_default()
}

/// 100 ms doubling per attempt, capped at [`MAX_BACKOFF`].
fn backoff_micros(attempts: i64) -> i64 {
    let exponent = u32::try_from(attempts.clamp(0, 10)).unwrap_or(10);
    let backoff = Duration::from_millis(100)
        .saturating_mul(2u32.saturating_pow(exponent))
        .min(MAX_BACKOFF);
    i64::try_from(backoff.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::new_record;

    fn order() -> OrderRecord {
        new_record("o1".into(), None, "c1".into(), &Default::default())
    }

    #[test]
    fn the_next_step_follows_the_persisted_progress() {
        let forward = [
            (order(), Step::Reserve),
            (
                OrderRecord {
                    reserved: 1,
                    ..order()
                },
                Step::Authorize,
            ),
            (
                OrderRecord {
                    reserved: 1,
                    payment_id: "p".into(),
                    authorized: 1,
                    ..order()
                },
                Step::Capture,
            ),
            (
                OrderRecord {
                    reserved: 1,
                    payment_id: "p".into(),
                    authorized: 1,
                    captured: 1,
                    ..order()
                },
                Step::Commit,
            ),
            (
                OrderRecord {
                    reserved: 1,
                    payment_id: "p".into(),
                    authorized: 1,
                    captured: 1,
                    committed: 1,
                    ..order()
                },
                Step::Ship,
            ),
        ];
        for (record, expected) in forward {
            assert_eq!(next_step(&record), expected, "{record:?}");
        }
        let cancelled = i64::from(OrderStatus::Cancelled as i32);
        let compensating = OrderRecord {
            reserved: 1,
            reconciled: 1,
            payment_id: "p".into(),
            authorized: 1,
            captured: 1,
            committed: 1,
            shipment_id: "s".into(),
            compensate_to: cancelled,
            ..order()
        };
        assert_eq!(next_step(&compensating), Step::CancelShipment);
        let shipment_cancelled = OrderRecord {
            shipment_cancelled: 1,
            ..compensating.clone()
        };
        assert_eq!(next_step(&shipment_cancelled), Step::Refund);
        let refunded = OrderRecord {
            refunded: 1,
            ..shipment_cancelled
        };
        assert_eq!(next_step(&refunded), Step::Restock);
        let restocked = OrderRecord {
            restocked: 1,
            ..refunded
        };
        assert_eq!(next_step(&restocked), Step::Finish(OrderStatus::Cancelled));

        let declined = OrderRecord {
            reserved: 1,
            reconciled: 1,
            payment_id: "p".into(),
            compensate_to: i64::from(OrderStatus::PaymentDeclined as i32),
            ..order()
        };
        assert_eq!(next_step(&declined), Step::Release);
        assert_eq!(
            next_step(&OrderRecord {
                released: 1,
                ..declined
            }),
            Step::Finish(OrderStatus::PaymentDeclined)
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_micros(0), 100_000);
        assert_eq!(backoff_micros(1), 200_000);
        assert_eq!(backoff_micros(30), 3_000_000);
    }
}
