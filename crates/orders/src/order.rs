//! An order as the API and the saga see it: typed ids, a typed status and the typed progress of
//! its saga ([`Progress`]). `storage.rs` reads it from its row, where an unknown status or an
//! impossible combination of steps is an error, never a default.

use crowdcrunch_proto::orders::v1 as pb;
use crowdcrunch_proto::r#type::v1::{Address, Money};
use crowdcrunch_proto::{MAX_MINOR_UNITS, bounded_product, bounded_sum};
use crowdcrunch_runtime::status::FieldViolation;
use crowdcrunch_runtime::storage::timestamp_from_micros;

use crate::domain::{CustomerId, OrderId, OrderStatus, PaymentId, Quantity, ShipmentId, Sku};

/// One line of an order, priced when it was placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The product.
    pub sku: Sku,
    /// How many.
    pub quantity: Quantity,
    /// Price of one unit at order time, in the order's currency.
    pub unit_price_minor: i64,
}

impl Line {
    /// Price of the whole line; `None` when it would be over [`MAX_MINOR_UNITS`], which
    /// [`total_minor`] refuses before an order is placed.
    pub fn total_minor(&self) -> Option<i64> {
        bounded_product(self.unit_price_minor, i64::from(self.quantity.get()))
    }
}

/// The total of an order of `lines`: every line and the sum at most [`MAX_MINOR_UNITS`], never a
/// wrapped number. A line over it is a violation of its `lines[i].quantity`; a sum over it, of
/// `lines`.
pub fn total_minor(lines: &[Line]) -> Result<i64, Vec<FieldViolation>> {
    let mut violations = Vec::new();
    let mut total = Some(0);
    for (index, line) in lines.iter().enumerate() {
        match line.total_minor() {
            Some(line_total) => total = total.and_then(|total| bounded_sum(total, line_total)),
            None => violations.push(FieldViolation::new(
                format!("lines[{index}].quantity"),
                format!(
                    "{} units of {} at {} minor units each come to more than \
                     {MAX_MINOR_UNITS} minor units, the most an order may cost",
                    line.quantity.get(),
                    line.sku,
                    line.unit_price_minor
                ),
            )),
        }
    }
    match total {
        Some(total) if violations.is_empty() => Ok(total),
        Some(_) => Err(violations),
        None => {
            violations.push(FieldViolation::new(
                "lines",
                format!("the lines come to more than {MAX_MINOR_UNITS} minor units, the most an order may cost"),
            ));
            Err(violations)
        }
    }
}

/// The token of the card an order is paid with, and what may be shown of the card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardOnFile {
    /// The payments service's token: the card itself is never stored here.
    pub token: String,
    /// The brand, lower case.
    pub brand: String,
    /// The last four digits.
    pub last4: String,
}

/// The status a compensating order ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compensation {
    /// Not enough stock.
    Rejected,
    /// The card was declined.
    PaymentDeclined,
    /// Cancelled: by the customer, or after a step was refused for good.
    Cancelled,
}

impl Compensation {
    /// The status the order ends in.
    pub fn status(self) -> OrderStatus {
        match self {
            Self::Rejected => OrderStatus::Rejected,
            Self::PaymentDeclined => OrderStatus::PaymentDeclined,
            Self::Cancelled => OrderStatus::Cancelled,
        }
    }

    /// The compensation that ends in `status`, if an order can be compensated into it.
    pub fn ending_in(status: OrderStatus) -> Option<Self> {
        match status {
            OrderStatus::Rejected => Some(Self::Rejected),
            OrderStatus::PaymentDeclined => Some(Self::PaymentDeclined),
            OrderStatus::Cancelled => Some(Self::Cancelled),
            OrderStatus::Pending
            | OrderStatus::Confirmed
            | OrderStatus::Shipped
            | OrderStatus::Delivered => None,
        }
    }
}

/// The payment an order's saga made, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentProgress {
    /// The payment.
    pub id: PaymentId,
    /// Authorised (false: declined).
    pub authorized: bool,
    /// Captured (implies authorised).
    pub captured: bool,
    /// Voided before capture (implies authorised, excludes captured).
    pub voided: bool,
    /// Refunded (implies captured).
    pub refunded: bool,
}

/// The shipment an order's saga created, and whether it was cancelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipmentProgress {
    /// The shipment.
    pub id: ShipmentId,
    /// Cancelled by the saga's compensation.
    pub cancelled: bool,
}

/// What an order's saga has done downstream, persisted after every step: the saga's next step is
/// computed from this alone (`saga::next_step`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The order's status.
    pub status: OrderStatus,
    /// A cancellation was asked for and not yet carried out or refused.
    pub cancel_requested: bool,
    /// The stock is reserved (the reservation id is the order id).
    pub reserved: bool,
    /// The reservation was released (implies reserved, excludes committed).
    pub released: bool,
    /// The reservation became sold stock (implies reserved).
    pub committed: bool,
    /// Sold stock was put back on hand (implies committed).
    pub restocked: bool,
    /// The payment, once authorisation was asked for.
    pub payment: Option<PaymentProgress>,
    /// The shipment, once created.
    pub shipment: Option<ShipmentProgress>,
    /// When compensating after a crash: payment and shipment were looked up downstream.
    pub reconciled: bool,
    /// While compensating: the status the order ends in; `None` while going forward.
    pub compensate_to: Option<Compensation>,
}

impl Progress {
    /// A new order's: PENDING, nothing done yet.
    pub fn pending() -> Self {
        Self {
            status: OrderStatus::Pending,
            cancel_requested: false,
            reserved: false,
            released: false,
            committed: false,
            restocked: false,
            payment: None,
            shipment: None,
            reconciled: false,
            compensate_to: None,
        }
    }

    /// Why this progress cannot have happened, if it cannot: each step implies the steps it
    /// follows.
    pub fn impossibility(&self) -> Option<&'static str> {
        if self.released && !self.reserved {
            return Some("released without a reservation");
        }
        if self.committed && !self.reserved {
            return Some("committed without a reservation");
        }
        if self.released && self.committed {
            return Some("both released and committed");
        }
        if self.restocked && !self.committed {
            return Some("restocked without a commit");
        }
        let payment = self.payment.as_ref();
        if payment.is_some_and(|payment| payment.captured && !payment.authorized) {
            return Some("captured without an authorisation");
        }
        if payment.is_some_and(|payment| payment.voided && !payment.authorized) {
            return Some("voided without an authorisation");
        }
        if payment.is_some_and(|payment| payment.voided && payment.captured) {
            return Some("both voided and captured");
        }
        if payment.is_some_and(|payment| payment.refunded && !payment.captured) {
            return Some("refunded without a capture");
        }
        None
    }
}

/// An order with the persisted progress of its saga.
#[derive(Debug, Clone)]
pub struct Order {
    /// The order.
    pub id: OrderId,
    /// PlaceOrder's request id, with which a replay finds this order.
    pub request_id: Option<String>,
    /// Who ordered.
    pub customer_id: CustomerId,
    /// The ISO 4217 currency of every price.
    pub currency_code: String,
    /// The sum of the lines.
    pub total_minor: i64,
    /// What, each SKU once, at least one line.
    pub lines: Vec<Line>,
    /// Where to.
    pub address: Address,
    /// Why the order failed or was cancelled; empty otherwise.
    pub failure_reason: String,
    /// The reason given to CancelOrder, kept when the cancellation was asked for; empty otherwise.
    pub cancellation_reason: String,
    /// The card it is paid with.
    pub card: CardOnFile,
    /// Its saga's progress, status included.
    pub progress: Progress,
    /// Failed tries of the current step, for backoff.
    pub attempts: i64,
    /// When the saga may next run a step (microseconds since the epoch).
    pub next_attempt_time: i64,
    /// The W3C traceparent of the PlaceOrder call, which the saga's steps continue.
    pub traceparent: String,
    /// The `x-request-id` of the PlaceOrder call (empty when it had none), which the saga's calls
    /// forward.
    pub forwarded_request_id: String,
    /// When it was placed (microseconds since the epoch).
    pub create_time: i64,
    /// When it last changed (microseconds since the epoch).
    pub update_time: i64,
}

impl Order {
    /// The order's status.
    pub fn status(&self) -> OrderStatus {
        self.progress.status
    }

    /// `minor_units` of this order's currency as Money.
    pub fn money(&self, minor_units: i64) -> Money {
        Money {
            currency_code: self.currency_code.clone(),
            minor_units,
        }
    }

    /// The order as the API shows it.
    pub fn to_proto(&self) -> pb::Order {
        let authorized_payment = self
            .progress
            .payment
            .as_ref()
            .filter(|payment| payment.authorized);
        pb::Order {
            id: self.id.to_string(),
            customer_id: self.customer_id.to_string(),
            lines: self
                .lines
                .iter()
                .map(|line| pb::OrderLine {
                    sku: line.sku.to_string(),
                    quantity: line.quantity.get(),
                    unit_price: Some(self.money(line.unit_price_minor)),
                    // Bounded when placed; absent rather than wrapped for a row that is not.
                    line_total: line.total_minor().map(|total| self.money(total)),
                })
                .collect(),
            total: Some(self.money(self.total_minor)),
            status: self.status().to_proto().into(),
            shipping_address: Some(self.address.clone()),
            failure_reason: self.failure_reason.clone(),
            cancellation_reason: self.cancellation_reason.clone(),
            payment_id: authorized_payment
                .map_or_else(String::new, |payment| payment.id.to_string()),
            card_brand: self.card.brand.clone(),
            card_last4: self.card.last4.clone(),
            create_time: Some(timestamp_from_micros(self.create_time)),
            update_time: Some(timestamp_from_micros(self.update_time)),
        }
    }
}
