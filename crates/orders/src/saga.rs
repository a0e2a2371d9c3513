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
use std::time::{Duration, Instant};

use crowdcrunch_outbox::{Event, Outbox};
use crowdcrunch_proto::fulfillment::v1 as fulfillment;
use crowdcrunch_proto::inventory::v1 as inventory;
use crowdcrunch_proto::payments::v1 as payments;
use crowdcrunch_runtime::client::{is_transient, request};
use crowdcrunch_runtime::context::{ForwardedHeaders, continue_traceparent};
use crowdcrunch_runtime::storage::now_micros;
use crowdcrunch_runtime::telemetry::LogThrottle;
use crowdcrunch_runtime::telemetry::ServiceName;
use crowdcrunch_runtime::{Database, Shutdown};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tonic_types::StatusExt as _;
use tracing::Instrument as _;

use crate::clients::Clients;
use crate::domain::{OrderId, OrderStatus, PaymentId, ShipmentId};
use crate::error::Error;
use crate::events;
use crate::order::{Compensation, Order, PaymentProgress, Progress, ShipmentProgress};
use crate::storage;
use crate::watch::OrderHub;

/// How long a claimed order stays with this process before another may take it over.
const LEASE: Duration = Duration::from_secs(30);
/// How often the worker looks for due orders when nothing wakes it.
const TICK: Duration = Duration::from_millis(250);
/// The longest wait between two tries of a step that failed transiently.
const MAX_BACKOFF: Duration = Duration::from_secs(3);
/// Orders processed at once by one process.
const CONCURRENCY: i64 = 32;
/// How often the age of the oldest PENDING order is read, at most.
const OLDEST_PENDING_EVERY: Duration = Duration::from_secs(5);

/// Counter of orders that reached a final outcome, by `outcome` (`confirmed`, `declined`,
/// `rejected`, `cancelled`).
const ORDERS: &str = "orders_total";
/// Histogram of the duration of saga steps in seconds, by `step` and `result` (`done`, `retry`,
/// `refused`).
const STEP_DURATION: &str = "saga_step_duration_seconds";
/// Counter of compensation steps done (money or stock given back), by `step`.
const COMPENSATIONS: &str = "saga_compensations_total";
/// Gauge of the age in seconds of the oldest order still PENDING (0 when none is): a saga that
/// is stuck shows here.
const OLDEST_PENDING: &str = "saga_oldest_pending_seconds";

/// The next thing to do for an order, from its persisted progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing: the order is not in flight.
    Idle,
    /// Reserve the order's stock (reservation id = order id).
    Reserve,
    /// Authorize the total on the card token.
    Authorize,
    /// Capture the authorised payment.
    Capture(PaymentId),
    /// Turn the reservation into sold stock.
    Commit,
    /// Create the shipment.
    Ship,
    /// Everything is done: end in CONFIRMED.
    Confirm,
    /// A cancellation was asked for: start compensating towards CANCELLED.
    BeginCancel,
    /// Compensating after a crash: look up what was done downstream but not recorded.
    Reconcile,
    /// Cancel the shipment (fails if it already left).
    CancelShipment(ShipmentId),
    /// Refund the captured amount.
    Refund(PaymentId),
    /// Void the uncaptured authorisation.
    Void(PaymentId),
    /// Release the reservation.
    Release,
    /// Put sold stock back on hand.
    Restock,
    /// Everything is given back: end in the compensation's status.
    Finish(Compensation),
}

impl Step {
    /// The step's name in metrics: a fixed word, never an id.
    fn metric_name(&self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Reserve => "reserve",
            Self::Authorize => "authorize",
            Self::Capture(_) => "capture",
            Self::Commit => "commit",
            Self::Ship => "ship",
            Self::Confirm => "confirm",
            Self::BeginCancel => "begin_cancel",
            Self::Reconcile => "reconcile",
            Self::CancelShipment(_) => "cancel_shipment",
            Self::Refund(_) => "refund",
            Self::Void(_) => "void",
            Self::Release => "release",
            Self::Restock => "restock",
            Self::Finish(_) => "finish",
        }
    }

    /// Whether the step gives money or stock back (or stops a shipment).
    fn compensates(&self) -> bool {
        matches!(
            self,
            Self::CancelShipment(_)
                | Self::Refund(_)
                | Self::Void(_)
                | Self::Release
                | Self::Restock
        )
    }
}

/// The outcome of an order that ended in `status`, as [`ORDERS`] counts it.
fn outcome_name(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Confirmed => "confirmed",
        OrderStatus::PaymentDeclined => "declined",
        OrderStatus::Rejected => "rejected",
        OrderStatus::Cancelled => "cancelled",
        OrderStatus::Pending | OrderStatus::Shipped | OrderStatus::Delivered => "other",
    }
}

/// What to do next for an order whose saga has made `progress`.
pub fn next_step(progress: &Progress) -> Step {
    let payment = progress.payment.as_ref();
    let Some(compensate_to) = progress.compensate_to else {
        if progress.cancel_requested {
            return Step::BeginCancel;
        }
        if progress.status != OrderStatus::Pending {
            return Step::Idle;
        }
        return match payment {
            _ if !progress.reserved => Step::Reserve,
            None => Step::Authorize,
            Some(payment) if !payment.captured => Step::Capture(payment.id.clone()),
            Some(_) if !progress.committed => Step::Commit,
            Some(_) if progress.shipment.is_none() => Step::Ship,
            Some(_) => Step::Confirm,
        };
    };
    if !progress.reconciled && progress.reserved {
        return Step::Reconcile;
    }
    if let Some(shipment) = progress
        .shipment
        .as_ref()
        .filter(|shipment| !shipment.cancelled)
    {
        return Step::CancelShipment(shipment.id.clone());
    }
    if let Some(payment) = payment.filter(|payment| payment.captured && !payment.refunded) {
        return Step::Refund(payment.id.clone());
    }
    if let Some(payment) =
        payment.filter(|payment| payment.authorized && !payment.captured && !payment.voided)
    {
        return Step::Void(payment.id.clone());
    }
    if progress.reserved && !progress.committed && !progress.released {
        Step::Release
    } else if progress.committed && !progress.restocked {
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
    in_flight: Arc<Mutex<HashSet<OrderId>>>,
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
        let mut oldest_pending_read: Option<Instant> = None;
        loop {
            if oldest_pending_read.is_none_or(|read| read.elapsed() >= OLDEST_PENDING_EVERY) {
                oldest_pending_read = Some(Instant::now());
                self.observe_oldest_pending().await;
            }
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

    /// Sets [`OLDEST_PENDING`] from the orders table.
    async fn observe_oldest_pending(&self) {
        let oldest = match self.database.acquire().await {
            Ok(mut connection) => storage::oldest_pending_create_time(&mut connection).await,
            Err(error) => Err(error.into()),
        };
        match oldest {
            Ok(oldest) => {
                let age = oldest.map_or(0.0, |oldest| {
                    Duration::from_micros(u64::try_from(now_micros() - oldest).unwrap_or(0))
                        .as_secs_f64()
                });
                metrics::gauge!(OLDEST_PENDING).set(age);
            }
            Err(error) => tracing::debug!(%error, "cannot read the oldest pending order"),
        }
    }

    async fn claim(&self) -> Result<Vec<OrderId>, Error> {
        let lease_until = now_micros() + micros(LEASE);
        let busy: Vec<OrderId> = self.in_flight().iter().cloned().collect();
        let mut connection = self.database.acquire().await?;
        let claimed = storage::claim_due(
            &mut connection,
            &self.owner,
            lease_until,
            CONCURRENCY,
            &busy,
        )
        .await?;
        let mut in_flight = self.in_flight();
        Ok(claimed
            .into_iter()
            .filter(|id| in_flight.insert(id.clone()))
            .collect())
    }

    /// The orders this process is running now.
    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashSet<OrderId>> {
        self.in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `id`'s steps back to back until it settles or a step must wait.
    async fn process(&self, id: OrderId) {
        if let Err(error) = self.advance(&id).await {
            // In an outage every order in flight fails its step: one line now and then says it.
            static THROTTLE: std::sync::LazyLock<LogThrottle> =
                std::sync::LazyLock::new(|| LogThrottle::new(Duration::from_secs(5)));
            if let Some(held_back) = THROTTLE.admit("saga step failed") {
                tracing::warn!(order_id = %id, %error, held_back, "saga step failed; it will be retried");
            }
        }
        if let Ok(mut connection) = self.database.acquire().await {
            let _ = storage::release_lease(&mut connection, &id, &self.owner).await;
        }
        self.in_flight().remove(&id);
        // Another change may have arrived while this order was busy.
        self.wake();
    }

    /// Runs `id`'s steps in the trace of the PlaceOrder call that created it, and under its
    /// request id, so the events, calls and log lines of every step carry both, whichever replica
    /// runs them.
    async fn advance(&self, id: &OrderId) -> Result<(), Error> {
        let mut connection = self.database.acquire().await?;
        let order = storage::get(&mut connection, id, None).await?;
        drop(connection);
        let span = tracing::info_span!(
            "saga",
            order_id = %id,
            request_id = order.forwarded_request_id.as_str()
        );
        continue_traceparent(&span, &order.traceparent, ServiceName::new("orders"));
        ForwardedHeaders::of_request_id(&order.forwarded_request_id)
            .scope(self.advance_steps(order).instrument(span))
            .await
    }

    /// Runs the steps of `order` (as just read). Each later step starts from the order as the
    /// transaction of the step before read it back on commit: a cancellation requested since is
    /// seen at the step after (and, once the order is released, by the next claim).
    async fn advance_steps(&self, mut order: Order) -> Result<(), Error> {
        let id = order.id.clone();
        loop {
            let step = next_step(&order.progress);
            if step == Step::Idle {
                return Ok(());
            }
            let before = order.clone();
            let started = Instant::now();
            let outcome = self.run_step(&step, &mut order).await;
            let result = match &outcome {
                Ok(Outcome::Done) => "done",
                Ok(Outcome::Retry(_)) => "retry",
                Err(_) => "refused",
            };
            metrics::histogram!(STEP_DURATION, "step" => step.metric_name(), "result" => result)
                .record(started.elapsed().as_secs_f64());
            if step.compensates() && result == "done" {
                metrics::counter!(COMPENSATIONS, "step" => step.metric_name()).increment(1);
            }
            let mut event = step_event(&step, &before, &order);
            match outcome {
                Ok(Outcome::Done) => {
                    order.attempts = 0;
                    order.next_attempt_time = now_micros();
                }
                Ok(Outcome::Retry(status)) => {
                    order.attempts += 1;
                    order.next_attempt_time = now_micros() + backoff_micros(order.attempts);
                    tracing::debug!(order_id = %id, ?step, code = ?status.code(), reason = status.message(), "step will be retried");
                    event = None;
                }
                Err(status) => {
                    // A final refusal: going forward, the order is cancelled; while compensating,
                    // keep trying (money and stock must come back), slowly.
                    if order.progress.compensate_to.is_none() {
                        order.progress.compensate_to = Some(Compensation::Cancelled);
                        order.failure_reason =
                            format!("{}: {}", step_name(&step), status.message());
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
            let ending = match &step {
                Step::Confirm => Some(OrderStatus::Confirmed),
                Step::Finish(compensation) => Some(compensation.status()),
                _ => None,
            };
            let waiting = order.next_attempt_time > now_micros();
            let refused_cancel = matches!(step, Step::CancelShipment(_))
                && before.progress.cancel_requested
                && !order.progress.cancel_requested;
            let outbox = &self.outbox;
            let mut saved = None;
            outbox
                .transaction(None, async |connection| {
                    if let Some(status) = ending {
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
                    if let Some(event) = event {
                        outbox.enqueue(connection, event).await?;
                    }
                    // Last, so that the order it answers has the status and request set above.
                    saved = Some(storage::save_progress(connection, &order).await?);
                    Ok::<_, Error>(())
                })
                .await?;
            order = saved.ok_or_else(|| {
                Error::Corrupt(format!("order {id}: its saved progress was not read back"))
            })?;
            self.hub.publish(order.clone());
            if let Some(status) = ending {
                metrics::counter!(ORDERS, "outcome" => outcome_name(status)).increment(1);
            }
            if ending.is_some() || waiting {
                return Ok(());
            }
        }
    }

    /// Runs one step against the other services and records its effect in `order`.
    /// `Err` is a final refusal of the step.
    async fn run_step(&self, step: &Step, order: &mut Order) -> Result<Outcome, tonic::Status> {
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
                    order.progress.compensate_to = Some(Compensation::Rejected);
                    order.failure_reason = if skus.is_empty() {
                        format!("not enough stock: {}", status.message())
                    } else {
                        format!("not enough stock for {}", skus.join(", "))
                    };
                    Ok(Outcome::Done)
                }
                result => attempt(result.map(|()| order.progress.reserved = true)),
            },
            Step::Authorize => attempt(self.authorize(order).await),
            Step::Capture(payment) => {
                attempt(self.capture(&order.id, payment).await.map(|()| {
                    record_payment(&mut order.progress, |payment| payment.captured = true)
                }))
            }
            Step::Commit => attempt(
                self.commit(&order.id)
                    .await
                    .map(|()| order.progress.committed = true),
            ),
            Step::Ship => attempt(self.ship(order).await),
            Step::Confirm => Ok(Outcome::Done),
            Step::BeginCancel => {
                order.progress.compensate_to = Some(Compensation::Cancelled);
                Ok(Outcome::Done)
            }
            Step::Reconcile => attempt(self.reconcile(order).await),
            Step::CancelShipment(shipment) => match self.cancel_shipment(&order.id, shipment).await
            {
                Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                    // The shipment has left: the cancellation cannot happen; the order goes on.
                    order.progress.compensate_to = None;
                    order.progress.cancel_requested = false;
                    Ok(Outcome::Done)
                }
                result => attempt(result.map(|()| {
                    if let Some(shipment) = order.progress.shipment.as_mut() {
                        shipment.cancelled = true;
                    }
                })),
            },
            Step::Refund(payment) => {
                attempt(self.refund(order, payment).await.map(|()| {
                    record_payment(&mut order.progress, |payment| payment.refunded = true)
                }))
            }
            Step::Void(payment) => attempt(
                self.void(&order.id, payment)
                    .await
                    .map(|()| record_payment(&mut order.progress, |payment| payment.voided = true)),
            ),
            Step::Release => attempt(
                self.release(&order.id)
                    .await
                    .map(|()| order.progress.released = true),
            ),
            Step::Restock => attempt(
                self.restock(order)
                    .await
                    .map(|()| order.progress.restocked = true),
            ),
            Step::Finish(_) => {
                order.progress.compensate_to = None;
                Ok(Outcome::Done)
            }
        }
    }

    async fn reserve(&self, order: &Order) -> Result<(), tonic::Status> {
        let lines = order
            .lines
            .iter()
            .map(|line| inventory::ReservationLine {
                sku: line.sku.to_string(),
                quantity: line.quantity.get(),
            })
            .collect();
        let message = inventory::ReserveStockRequest {
            reservation_id: order.id.to_string(),
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

    async fn authorize(&self, order: &mut Order) -> Result<(), tonic::Status> {
        let message = payments::AuthorizePaymentRequest {
            request_id: format!("{}:authorize", order.id),
            order_id: order.id.to_string(),
            customer_id: order.customer_id.to_string(),
            amount: Some(order.money(order.total_minor)),
            card_token: order.card.token.clone(),
        };
        let payment = self
            .clients
            .payments
            .clone()
            .authorize_payment(request(message))
            .await?
            .into_inner();
        let authorized = payment.status() == payments::PaymentStatus::Authorized;
        order.progress.payment = Some(PaymentProgress {
            id: upstream_id("payments", &payment.id, PaymentId::parse)?,
            authorized,
            captured: false,
            voided: false,
            refunded: false,
        });
        if !authorized {
            order.progress.compensate_to = Some(Compensation::PaymentDeclined);
            order.failure_reason = format!("payment declined: {}", payment.decline_reason);
        }
        Ok(())
    }

    async fn capture(&self, order: &OrderId, payment: &PaymentId) -> Result<(), tonic::Status> {
        let message = payments::CapturePaymentRequest {
            id: payment.to_string(),
            request_id: format!("{order}:capture"),
        };
        self.clients
            .payments
            .clone()
            .capture_payment(request(message))
            .await?;
        Ok(())
    }

    async fn commit(&self, order: &OrderId) -> Result<(), tonic::Status> {
        let message = inventory::CommitReservationRequest {
            reservation_id: order.to_string(),
        };
        self.clients
            .inventory
            .clone()
            .commit_reservation(request(message))
            .await?;
        Ok(())
    }

    async fn ship(&self, order: &mut Order) -> Result<(), tonic::Status> {
        let shipment = fulfillment::Shipment {
            order_id: order.id.to_string(),
            customer_id: order.customer_id.to_string(),
            lines: order
                .lines
                .iter()
                .map(|line| fulfillment::ShipmentLine {
                    sku: line.sku.to_string(),
                    quantity: line.quantity.get(),
                })
                .collect(),
            address: Some(order.address.clone()),
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
        order.progress.shipment = Some(ShipmentProgress {
            id: upstream_id("fulfillment", &created.id, ShipmentId::parse)?,
            cancelled: false,
        });
        Ok(())
    }

    /// After a crash between a call and the save of its effect, the payment or shipment exists
    /// downstream but not in the order: find them by order id. Records the order reconciled.
    async fn reconcile(&self, order: &mut Order) -> Result<(), tonic::Status> {
        if order.progress.payment.is_none() {
            let message = payments::ListPaymentsRequest {
                order_ids: vec![order.id.to_string()],
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
                let status = payment.status();
                order.progress.payment = Some(PaymentProgress {
                    id: upstream_id("payments", &payment.id, PaymentId::parse)?,
                    authorized: status != payments::PaymentStatus::Declined,
                    captured: payment.captured.is_some_and(|money| money.minor_units > 0),
                    voided: status == payments::PaymentStatus::Voided,
                    refunded: false,
                });
            }
        }
        if order.progress.shipment.is_none() {
            let message = fulfillment::ListShipmentsRequest {
                order_ids: vec![order.id.to_string()],
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
                order.progress.shipment = Some(ShipmentProgress {
                    id: upstream_id("fulfillment", &shipment.id, ShipmentId::parse)?,
                    cancelled: false,
                });
            }
        }
        order.progress.reconciled = true;
        Ok(())
    }

    async fn cancel_shipment(
        &self,
        order: &OrderId,
        shipment: &ShipmentId,
    ) -> Result<(), tonic::Status> {
        let message = fulfillment::UpdateShipmentStatusRequest {
            id: shipment.to_string(),
            status: fulfillment::ShipmentStatus::Cancelled.into(),
            tracking_number: String::new(),
            request_id: format!("{order}:cancel-shipment"),
        };
        self.clients
            .fulfillment
            .clone()
            .update_shipment_status(request(message))
            .await?;
        Ok(())
    }

    async fn refund(&self, order: &Order, payment: &PaymentId) -> Result<(), tonic::Status> {
        let message = payments::RefundPaymentRequest {
            id: payment.to_string(),
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

    async fn void(&self, order: &OrderId, payment: &PaymentId) -> Result<(), tonic::Status> {
        let message = payments::VoidPaymentRequest {
            id: payment.to_string(),
            request_id: format!("{order}:void"),
        };
        self.clients
            .payments
            .clone()
            .void_payment(request(message))
            .await?;
        Ok(())
    }

    async fn release(&self, order: &OrderId) -> Result<(), tonic::Status> {
        let message = inventory::ReleaseReservationRequest {
            reservation_id: order.to_string(),
        };
        self.clients
            .inventory
            .clone()
            .release_reservation(request(message))
            .await?;
        Ok(())
    }

    async fn restock(&self, order: &Order) -> Result<(), tonic::Status> {
        for line in &order.lines {
            let message = inventory::RestockRequest {
                sku: line.sku.to_string(),
                quantity: line.quantity.get(),
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

/// Records `effect` on the order's payment, which the step that had it done named.
fn record_payment(progress: &mut Progress, effect: impl FnOnce(&mut PaymentProgress)) {
    if let Some(payment) = progress.payment.as_mut() {
        effect(payment);
    }
}

/// An id another service answered, by the one id rule; a malformed one breaks its contract and
/// refuses the step.
fn upstream_id<T>(
    service: &str,
    raw: &str,
    parse: fn(&str, &str) -> Result<T, crowdcrunch_runtime::status::FieldViolation>,
) -> Result<T, tonic::Status> {
    parse(raw, "id").map_err(|violation| {
        tonic::Status::internal(format!(
            "{service} answered a malformed id {raw:?}: {}",
            violation.description
        ))
    })
}

/// The order event a completed step produces, if any.
fn step_event(step: &Step, before: &Order, after: &Order) -> Option<Event> {
    match step {
        Step::Confirm => Some(events::order_confirmed(after)),
        Step::Finish(compensation) => Some(events::order_compensated(after, *compensation)),
        Step::CancelShipment(_)
            if before.progress.cancel_requested && !after.progress.cancel_requested =>
        {
            Some(events::cancellation_refused(after))
        }
        _ => None,
    }
}

fn step_name(step: &Step) -> &'static str {
    match step {
        Step::Reserve => "reserving stock",
        Step::Authorize => "authorizing the payment",
        Step::Capture(_) => "capturing the payment",
        Step::Commit => "committing the reservation",
        Step::Ship => "creating the shipment",
        _ => "compensating",
    }
}

/// The SKUs a FAILED_PRECONDITION from ReserveStock names as short.
fn short_skus(status: &tonic::Status) -> Vec<String> {
    status
        .get_details_precondition_failure()
        .into_iter()
        .flat_map(|failure| failure.violations)
        .map(|violation| violation.subject)
        .collect()
}

/// `duration` in microseconds, saturating.
fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// 100 ms doubling per attempt, capped at [`MAX_BACKOFF`].
fn backoff_micros(attempts: i64) -> i64 {
    let exponent = u32::try_from(attempts.clamp(0, 10)).unwrap_or(10);
    micros(
        Duration::from_millis(100)
            .saturating_mul(2u32.saturating_pow(exponent))
            .min(MAX_BACKOFF),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment(authorized: bool, captured: bool) -> Option<PaymentProgress> {
        Some(PaymentProgress {
            id: PaymentId::parse("p", "id").expect("an id"),
            authorized,
            captured,
            voided: false,
            refunded: false,
        })
    }

    fn shipment() -> Option<ShipmentProgress> {
        Some(ShipmentProgress {
            id: ShipmentId::parse("s", "id").expect("an id"),
            cancelled: false,
        })
    }

    fn payment_id() -> PaymentId {
        PaymentId::parse("p", "id").expect("an id")
    }

    #[test]
    fn the_next_step_follows_the_persisted_progress() {
        let reserved = Progress {
            reserved: true,
            ..Progress::pending()
        };
        let authorized = Progress {
            payment: payment(true, false),
            ..reserved.clone()
        };
        let captured = Progress {
            payment: payment(true, true),
            ..reserved.clone()
        };
        let committed = Progress {
            committed: true,
            ..captured.clone()
        };
        let shipped = Progress {
            shipment: shipment(),
            ..committed.clone()
        };
        let forward = [
            (Progress::pending(), Step::Reserve),
            (reserved, Step::Authorize),
            (authorized, Step::Capture(payment_id())),
            (captured, Step::Commit),
            (committed, Step::Ship),
            (shipped.clone(), Step::Confirm),
        ];
        for (progress, expected) in forward {
            assert_eq!(next_step(&progress), expected, "{progress:?}");
        }

        let compensating = Progress {
            reconciled: true,
            compensate_to: Some(Compensation::Cancelled),
            ..shipped
        };
        assert_eq!(
            next_step(&compensating),
            Step::CancelShipment(ShipmentId::parse("s", "id").expect("an id"))
        );
        let shipment_cancelled = Progress {
            shipment: Some(ShipmentProgress {
                id: ShipmentId::parse("s", "id").expect("an id"),
                cancelled: true,
            }),
            ..compensating
        };
        assert_eq!(next_step(&shipment_cancelled), Step::Refund(payment_id()));
        let mut refunded = shipment_cancelled;
        record_payment(&mut refunded, |payment| payment.refunded = true);
        assert_eq!(next_step(&refunded), Step::Restock);
        let restocked = Progress {
            restocked: true,
            ..refunded
        };
        assert_eq!(next_step(&restocked), Step::Finish(Compensation::Cancelled));

        let declined = Progress {
            reserved: true,
            reconciled: true,
            payment: payment(false, false),
            compensate_to: Some(Compensation::PaymentDeclined),
            ..Progress::pending()
        };
        assert_eq!(next_step(&declined), Step::Release);
        assert_eq!(
            next_step(&Progress {
                released: true,
                ..declined
            }),
            Step::Finish(Compensation::PaymentDeclined)
        );

        let settled = Progress {
            status: OrderStatus::Confirmed,
            ..Progress::pending()
        };
        assert_eq!(next_step(&settled), Step::Idle);
        let cancel_asked = Progress {
            cancel_requested: true,
            ..settled
        };
        assert_eq!(next_step(&cancel_asked), Step::BeginCancel);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_micros(0), 100_000);
        assert_eq!(backoff_micros(1), 200_000);
        assert_eq!(backoff_micros(30), 3_000_000);
    }
}
