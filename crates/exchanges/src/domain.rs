//! Return rules, applied where requests enter and where rows are read: ids, SKUs and quantities
//! are checked once and carried as newtypes; a return's kind and status are enums without an
//! UNSPECIFIED, so code past the boundary never meets a value the API forbids.

use std::collections::{HashMap, HashSet};
use std::fmt;

use crowdcrunch_proto::exchanges::v1 as pb;
use crowdcrunch_proto::orders::v1 as orders;
use crowdcrunch_proto::rules::{id_problem, sku_problem};
use crowdcrunch_proto::r#type::v1::{Address, Money};
use crowdcrunch_proto::{MAX_MINOR_UNITS, bounded_product, bounded_sum};
use crowdcrunch_runtime::idempotency::RequestId;
use crowdcrunch_runtime::pagination::{self, PageRequest, PageTokens};
use crowdcrunch_runtime::status::FieldViolation;
use crowdcrunch_runtime::storage::timestamp_from_micros;

/// The longest reason accepted, in characters.
const MAX_REASON_LEN: usize = 1000;

/// Checks `raw` (the value of `field`) by the one id rule of `crowdcrunch_proto::rules`.
fn checked_id(raw: &str, field: &str) -> Result<String, FieldViolation> {
    FieldViolation::check(field, id_problem(raw))?;
    Ok(raw.to_owned())
}

/// Declares an id newtype, taken as it is where this service stored it or another service minted
/// it; the ids a request carries are checked by the one id rule (`parse`).
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// An id that was checked before it was stored, or that its owner minted.
            pub fn known(id: String) -> Self {
                Self(id)
            }

            /// The id.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// The id of a return request (a UUIDv7 minted here).
    ReturnId
);
id_type!(
    /// The id of an order (the orders service's).
    OrderId
);
id_type!(
    /// The id of a payment (the payments service's), the one a return refunds.
    PaymentId
);
id_type!(
    /// The id of a shipment (the fulfillment service's), the one carrying a replacement.
    ShipmentId
);

impl ReturnId {
    /// A new id, in creation order (UUIDv7), so that listing by id lists by age.
    pub fn mint() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// Checks `raw` as the value of `field`; whether it exists is found out later.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldViolation> {
        checked_id(raw, field).map(Self)
    }
}

impl OrderId {
    /// Checks `raw` as the value of `field`; whether it exists is asked of the orders service.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldViolation> {
        checked_id(raw, field).map(Self)
    }
}

/// A product's SKU, by the one SKU rule of `crowdcrunch_proto::rules`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sku(String);

impl Sku {
    /// Checks `raw` as the value of `field`.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldViolation> {
        FieldViolation::check(field, sku_problem(raw))?;
        Ok(Self(raw.to_owned()))
    }

    /// A SKU that was checked before it was stored.
    pub fn known(sku: String) -> Self {
        Self(sku)
    }

    /// The SKU.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A number of units, at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(i32);

impl Quantity {
    /// `units`, if it is at least 1.
    pub fn new(units: i64) -> Option<Self> {
        i32::try_from(units)
            .ok()
            .filter(|units| *units >= 1)
            .map(Self)
    }

    /// The units.
    pub fn get(self) -> i32 {
        self.0
    }
}

/// One line of a return: units of one SKU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnLine {
    /// The product.
    pub sku: Sku,
    /// How many units come back.
    pub quantity: Quantity,
}

impl ReturnLine {
    /// The line as the API shows it.
    pub fn to_proto(&self) -> pb::ReturnLine {
        pb::ReturnLine {
            sku: self.sku.as_str().to_owned(),
            quantity: self.quantity.get(),
        }
    }
}

/// What the customer wants for the goods (`ReturnKind` without its UNSPECIFIED).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnKind {
    /// Money back.
    Return,
    /// The same goods again, at no charge.
    Exchange,
}

impl ReturnKind {
    /// Every kind.
    const ALL: [Self; 2] = [Self::Return, Self::Exchange];

    /// The kind the API's enum number stands for, if it is one.
    pub fn from_number(number: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.number() == number)
    }

    /// The API's enum value.
    pub fn to_proto(self) -> pb::ReturnKind {
        match self {
            Self::Return => pb::ReturnKind::Return,
            Self::Exchange => pb::ReturnKind::Exchange,
        }
    }

    /// The API's enum number, which is how it is stored.
    pub fn number(self) -> i64 {
        i64::from(i32::from(self.to_proto()))
    }
}

/// Where a return is in its life (`ReturnStatus` without its UNSPECIFIED).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnStatus {
    /// Waiting for staff to decide.
    Requested,
    /// Waiting for the goods.
    Approved,
    /// Turned down (final).
    Rejected,
    /// The goods arrived; refunded or replaced (final).
    Received,
}

impl ReturnStatus {
    /// Every status.
    const ALL: [Self; 4] = [
        Self::Requested,
        Self::Approved,
        Self::Rejected,
        Self::Received,
    ];

    /// The status the API's enum number stands for, if it is one.
    pub fn from_number(number: i64) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|status| status.number() == number)
    }

    /// The API's enum value.
    pub fn to_proto(self) -> pb::ReturnStatus {
        match self {
            Self::Requested => pb::ReturnStatus::Requested,
            Self::Approved => pb::ReturnStatus::Approved,
            Self::Rejected => pb::ReturnStatus::Rejected,
            Self::Received => pb::ReturnStatus::Received,
        }
    }

    /// The API's enum number, which is how it is stored.
    pub fn number(self) -> i64 {
        i64::from(i32::from(self.to_proto()))
    }
}

impl fmt::Display for ReturnStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.to_proto().as_str_name())
    }
}

/// A return request, as stored and as every change sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Return {
    /// Its id.
    pub id: ReturnId,
    /// The order the goods came from.
    pub order_id: OrderId,
    /// The customer who returns them: the order's (empty for returns stored before returns
    /// named their customer).
    pub customer_id: String,
    /// Refund or replacement.
    pub kind: ReturnKind,
    /// Where it is in its life.
    pub status: ReturnStatus,
    /// The customer's reason; may be empty.
    pub reason: String,
    /// Why it was turned down; empty unless rejected.
    pub rejection_reason: String,
    /// What a RETURN gives back (zero for an EXCHANGE), in the order's currency.
    pub refund: Money,
    /// The payment refunded, once a RETURN with something to refund is received.
    pub refund_payment_id: Option<PaymentId>,
    /// The replacement's shipment, once an EXCHANGE is received.
    pub replacement_shipment_id: Option<ShipmentId>,
    /// When it was requested, in microseconds since the Unix epoch.
    pub create_time: i64,
    /// When its status last changed, in microseconds since the Unix epoch.
    pub update_time: i64,
    /// What comes back, each SKU once; never empty.
    pub lines: Vec<ReturnLine>,
}

impl Return {
    /// The return as the API shows it.
    pub fn to_proto(&self) -> pb::ReturnRequest {
        pb::ReturnRequest {
            id: self.id.to_string(),
            order_id: self.order_id.to_string(),
            customer_id: self.customer_id.clone(),
            kind: self.kind.to_proto().into(),
            lines: self.lines.iter().map(ReturnLine::to_proto).collect(),
            status: self.status.to_proto().into(),
            reason: self.reason.clone(),
            rejection_reason: self.rejection_reason.clone(),
            refund_amount: Some(self.refund.clone()),
            refund_payment_id: self
                .refund_payment_id
                .as_ref()
                .map_or_else(String::new, PaymentId::to_string),
            replacement_shipment_id: self
                .replacement_shipment_id
                .as_ref()
                .map_or_else(String::new, ShipmentId::to_string),
            create_time: Some(timestamp_from_micros(self.create_time)),
            update_time: Some(timestamp_from_micros(self.update_time)),
        }
    }
}

/// A valid RequestReturn request; whether the order allows it is asked of the orders service.
#[derive(Debug, Clone)]
pub struct NewReturn {
    /// The idempotency key, if the client sent one.
    pub request_id: Option<RequestId>,
    /// The order.
    pub order_id: OrderId,
    /// Refund or replacement.
    pub kind: ReturnKind,
    /// What comes back, each SKU once, at least one line.
    pub lines: Vec<ReturnLine>,
    /// Why; may be empty.
    pub reason: String,
}

impl TryFrom<&pb::RequestReturnRequest> for NewReturn {
    type Error = Vec<FieldViolation>;

    fn try_from(request: &pb::RequestReturnRequest) -> Result<Self, Self::Error> {
        let mut violations = Vec::new();
        let request_id = RequestId::parse_optional(&request.request_id, "request_id")
            .map_err(|violation| violations.push(violation))
            .ok()
            .flatten();
        let order_id = OrderId::parse(&request.order_id, "order_id")
            .map_err(|violation| violations.push(violation))
            .ok();
        let kind = ReturnKind::from_number(i64::from(request.kind));
        if kind.is_none() {
            violations.push(FieldViolation::new("kind", "must be RETURN or EXCHANGE"));
        }
        if request.lines.is_empty() {
            violations.push(FieldViolation::new(
                "lines",
                "at least one line is required",
            ));
        }
        let mut seen = HashSet::new();
        let mut lines = Vec::with_capacity(request.lines.len());
        for (index, line) in request.lines.iter().enumerate() {
            let sku_field = format!("lines[{index}].sku");
            let sku = match Sku::parse(&line.sku, &sku_field) {
                Ok(sku) if !seen.insert(sku.clone()) => {
                    violations.push(FieldViolation::new(
                        sku_field,
                        "appears on more than one line",
                    ));
                    None
                }
                Ok(sku) => Some(sku),
                Err(violation) => {
                    violations.push(violation);
                    None
                }
            };
            let quantity = Quantity::new(i64::from(line.quantity));
            if quantity.is_none() {
                violations.push(FieldViolation::new(
                    format!("lines[{index}].quantity"),
                    "must be at least 1",
                ));
            }
            if let (Some(sku), Some(quantity)) = (sku, quantity) {
                lines.push(ReturnLine { sku, quantity });
            }
        }
        if let Err(violation) = check_reason(&request.reason, "reason") {
            violations.push(violation);
        }
        match (order_id, kind) {
            (Some(order_id), Some(kind)) if violations.is_empty() => Ok(Self {
                request_id,
                order_id,
                kind,
                lines,
                reason: request.reason.clone(),
            }),
            _ => Err(violations),
        }
    }
}

/// Checks a free-text reason: at most [`MAX_REASON_LEN`] characters.
fn check_reason(reason: &str, field: &str) -> Result<(), FieldViolation> {
    if reason.chars().count() > MAX_REASON_LEN {
        return Err(FieldViolation::new(
            field,
            format!("must be at most {MAX_REASON_LEN} characters"),
        ));
    }
    Ok(())
}

/// A staff decision on a return: to approve it, or to reject it for a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The customer may send the goods.
    Approve,
    /// The return is turned down.
    Reject {
        /// Why, for the customer; not blank.
        reason: String,
    },
}

impl Decision {
    /// The statuses the decision applies to.
    pub fn applies_to(&self) -> &'static [ReturnStatus] {
        match self {
            Self::Approve => &[ReturnStatus::Requested],
            Self::Reject { .. } => &[ReturnStatus::Requested, ReturnStatus::Approved],
        }
    }

    /// The status it leads to; a return already there is answered unchanged.
    pub fn outcome(&self) -> ReturnStatus {
        match self {
            Self::Approve => ReturnStatus::Approved,
            Self::Reject { .. } => ReturnStatus::Rejected,
        }
    }

    /// The rejection reason it records; empty for an approval.
    pub fn rejection_reason(&self) -> &str {
        match self {
            Self::Approve => "",
            Self::Reject { reason } => reason,
        }
    }
}

/// Checks the `id` and `request_id` of a call that acts on one return. The request id is only
/// checked: a repeat is answered from the return's status, which records what was done.
fn parse_target(
    id: &str,
    request_id: &str,
    violations: &mut Vec<FieldViolation>,
) -> Option<ReturnId> {
    let id = ReturnId::parse(id, "id")
        .map_err(|violation| violations.push(violation))
        .ok();
    if let Err(violation) = RequestId::parse_optional(request_id, "request_id") {
        violations.push(violation);
    }
    id
}

/// A valid ApproveReturn or RejectReturn request: which return, and what is decided.
#[derive(Debug, Clone)]
pub struct DecisionRequest {
    /// The return.
    pub id: ReturnId,
    /// What is decided.
    pub decision: Decision,
}

impl TryFrom<&pb::ApproveReturnRequest> for DecisionRequest {
    type Error = Vec<FieldViolation>;

    fn try_from(request: &pb::ApproveReturnRequest) -> Result<Self, Self::Error> {
        let mut violations = Vec::new();
        match parse_target(&request.id, &request.request_id, &mut violations) {
            Some(id) if violations.is_empty() => Ok(Self {
                id,
                decision: Decision::Approve,
            }),
            _ => Err(violations),
        }
    }
}

impl TryFrom<&pb::RejectReturnRequest> for DecisionRequest {
    type Error = Vec<FieldViolation>;

    fn try_from(request: &pb::RejectReturnRequest) -> Result<Self, Self::Error> {
        let mut violations = Vec::new();
        if request.reason.trim().is_empty() {
            violations.push(FieldViolation::new(
                "reason",
                "is required to reject a return",
            ));
        } else if let Err(violation) = check_reason(&request.reason, "reason") {
            violations.push(violation);
        }
        match parse_target(&request.id, &request.request_id, &mut violations) {
            Some(id) if violations.is_empty() => Ok(Self {
                id,
                decision: Decision::Reject {
                    reason: request.reason.clone(),
                },
            }),
            _ => Err(violations),
        }
    }
}

/// A valid ReceiveReturn request: the return whose goods arrived.
pub fn parse_receipt(request: &pb::ReceiveReturnRequest) -> Result<ReturnId, Vec<FieldViolation>> {
    let mut violations = Vec::new();
    match parse_target(&request.id, &request.request_id, &mut violations) {
        Some(id) if violations.is_empty() => Ok(id),
        _ => Err(violations),
    }
}

/// Checks the ids of a batch get: at most [`pagination::MAX_IDS`], each well-formed.
pub fn parse_return_ids(ids: &[String]) -> Result<Vec<ReturnId>, Vec<FieldViolation>> {
    pagination::parse_ids(ids, "ids", ReturnId::parse)
}

/// A valid ListReturns request: the page, and the orders whose returns are listed (all when
/// empty), sorted and without duplicates.
#[derive(Debug)]
pub struct ReturnQuery {
    /// Which page.
    pub page: PageRequest,
    /// Only returns of these orders; every order's when empty.
    pub order_ids: Vec<OrderId>,
}

impl ReturnQuery {
    /// Checks `request`; its page token must be one `page_tokens` signed.
    pub fn parse(
        request: &pb::ListReturnsRequest,
        page_tokens: &PageTokens,
    ) -> Result<Self, Vec<FieldViolation>> {
        let (page, order_ids) = pagination::parse_id_filtered_page(
            page_tokens,
            request.page_size,
            &request.page_token,
            "order_ids",
            &request.order_ids,
            OrderId::parse,
            OrderId::as_str,
        )?;
        Ok(Self { page, order_ids })
    }
}

/// One line of a paid order: what was bought and what each unit cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaidLine {
    /// The product.
    pub sku: String,
    /// Units bought.
    pub quantity: i64,
    /// What one unit cost, in the order's currency's minor units.
    pub unit_price: i64,
}

/// What a return needs of its order, read from the orders service's answer. Prices and the total
/// are always set (`Money` is never absent in the API), so an answer without them is refused
/// here instead of being read as zero.
#[derive(Debug, Clone, PartialEq)]
pub struct PaidOrder {
    /// The order.
    pub id: OrderId,
    /// Who placed it.
    pub customer_id: String,
    /// The currency of its prices and total.
    pub currency_code: String,
    /// What was bought.
    pub lines: Vec<PaidLine>,
    /// The payment a refund goes back to; none before the order was paid.
    pub payment_id: Option<PaymentId>,
    /// Where a replacement goes.
    pub shipping_address: Option<Address>,
}

impl TryFrom<orders::Order> for PaidOrder {
    /// What the answer lacks.
    type Error = String;

    fn try_from(order: orders::Order) -> Result<Self, Self::Error> {
        let Some(total) = order.total else {
            return Err(format!("order {} has no total", order.id));
        };
        let lines = order
            .lines
            .into_iter()
            .map(|line| match line.unit_price {
                Some(price) => Ok(PaidLine {
                    sku: line.sku,
                    quantity: i64::from(line.quantity),
                    unit_price: price.minor_units,
                }),
                None => Err(format!(
                    "order {} has no unit price for {}",
                    order.id, line.sku
                )),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            id: OrderId(order.id),
            customer_id: order.customer_id,
            currency_code: total.currency_code,
            lines,
            payment_id: (!order.payment_id.is_empty()).then_some(PaymentId(order.payment_id)),
            shipping_address: order.shipping_address,
        })
    }
}

impl NewReturn {
    /// The return this request makes of `order`, whose SKUs other (not rejected) returns already
    /// claim as `claimed` says; a line of a SKU the order lacks, or over what is still returnable,
    /// is a field violation, and so is a line whose refund would take the sum over
    /// [`MAX_MINOR_UNITS`] (never a wrapped number). A RETURN refunds what the lines cost; an
    /// EXCHANGE refunds nothing.
    pub fn against(
        &self,
        order: &PaidOrder,
        claimed: &HashMap<String, i64>,
        now: i64,
    ) -> Result<Return, Vec<FieldViolation>> {
        let mut violations = Vec::new();
        let mut refund_minor = 0;
        for (index, wanted) in self.lines.iter().enumerate() {
            let sku = wanted.sku.as_str();
            let Some(line) = order.lines.iter().find(|line| line.sku == sku) else {
                violations.push(FieldViolation::new(
                    format!("lines[{index}].sku"),
                    format!("order {} has no {sku}", order.id),
                ));
                continue;
            };
            let quantity = i64::from(wanted.quantity.get());
            let returnable = line.quantity - claimed.get(sku).copied().unwrap_or(0);
            if quantity > returnable {
                violations.push(FieldViolation::new(
                    format!("lines[{index}].quantity"),
                    format!("at most {returnable} of {sku} can still be returned"),
                ));
            }
            match bounded_product(line.unit_price, quantity)
                .and_then(|line_refund| bounded_sum(refund_minor, line_refund))
            {
                Some(sum) => refund_minor = sum,
                None => violations.push(FieldViolation::new(
                    format!("lines[{index}].quantity"),
                    format!("the refund would come to more than {MAX_MINOR_UNITS} minor units"),
                )),
            }
        }
        if !violations.is_empty() {
            return Err(violations);
        }
        Ok(Return {
            id: ReturnId::mint(),
            order_id: order.id.clone(),
            customer_id: order.customer_id.clone(),
            kind: self.kind,
            status: ReturnStatus::Requested,
            reason: self.reason.clone(),
            rejection_reason: String::new(),
            refund: Money {
                currency_code: order.currency_code.clone(),
                minor_units: match self.kind {
                    ReturnKind::Return => refund_minor,
                    ReturnKind::Exchange => 0,
                },
            },
            refund_payment_id: None,
            replacement_shipment_id: None,
            create_time: now,
            update_time: now,
            lines: self.lines.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, quantity: i32) -> pb::ReturnLine {
        pb::ReturnLine {
            sku: sku.into(),
            quantity,
        }
    }

    fn violated<T>(result: Result<T, Vec<FieldViolation>>) -> Vec<String> {
        match result {
            Ok(_) => Vec::new(),
            Err(violations) => violations
                .into_iter()
                .map(|violation| violation.field)
                .collect(),
        }
    }

    #[test]
    fn kinds_and_statuses_round_trip_through_their_numbers() {
        for kind in ReturnKind::ALL {
            assert_eq!(ReturnKind::from_number(kind.number()), Some(kind));
        }
        for status in ReturnStatus::ALL {
            assert_eq!(ReturnStatus::from_number(status.number()), Some(status));
        }
        for unknown in [0, 99, i64::MAX] {
            assert_eq!(ReturnKind::from_number(unknown), None);
            assert_eq!(ReturnStatus::from_number(unknown), None);
        }
    }

    #[test]
    fn a_new_return_names_every_bad_field() {
        let request = pb::RequestReturnRequest {
            request_id: String::new(),
            order_id: "order 1".into(),
            kind: 0,
            lines: vec![line("MUG", 1), line("MUG", 0), line("", 2)],
            reason: "x".repeat(MAX_REASON_LEN + 1),
        };
        assert_eq!(
            violated(NewReturn::try_from(&request)),
            [
                "order_id",
                "kind",
                "lines[1].sku",
                "lines[1].quantity",
                "lines[2].sku",
                "reason"
            ]
        );
        let good = pb::RequestReturnRequest {
            order_id: "order-1".into(),
            kind: pb::ReturnKind::Exchange.into(),
            lines: vec![line("MUG", 2)],
            ..request
        };
        let parsed = NewReturn::try_from(&pb::RequestReturnRequest {
            reason: "wrong size".into(),
            ..good
        })
        .expect("valid");
        assert_eq!(parsed.kind, ReturnKind::Exchange);
        assert_eq!(parsed.lines[0].quantity.get(), 2);
    }

    #[test]
    fn a_refund_over_the_bound_is_refused_not_wrapped() {
        let paid_line = |sku: &str, unit_price| PaidLine {
            sku: sku.into(),
            quantity: 3,
            unit_price,
        };
        let order = |lines| PaidOrder {
            id: OrderId("order-1".into()),
            customer_id: "customer-1".into(),
            currency_code: "USD".into(),
            lines,
            payment_id: None,
            shipping_address: None,
        };
        let request = |lines| {
            NewReturn::try_from(&pb::RequestReturnRequest {
                request_id: String::new(),
                order_id: "order-1".into(),
                kind: pb::ReturnKind::Return.into(),
                lines,
                reason: String::new(),
            })
            .expect("valid")
        };
        let refund = |order: &PaidOrder, lines| {
            request(lines)
                .against(order, &HashMap::new(), 0)
                .map(|made| made.refund.minor_units)
        };
        // Issue 14's price: three units wrapped to two cents.
        let wrapping = order(vec![paid_line("MUG", 6_148_914_691_236_517_206)]);
        assert_eq!(
            violated(refund(&wrapping, vec![line("MUG", 3)])),
            ["lines[0].quantity"]
        );
        // Each line under the bound, their sum over it.
        let half = MAX_MINOR_UNITS / 2;
        let two_lines = order(vec![paid_line("MUG", half), paid_line("CAP", half)]);
        assert_eq!(
            violated(refund(&two_lines, vec![line("MUG", 1), line("CAP", 2)])),
            ["lines[1].quantity"]
        );
        assert_eq!(
            refund(&two_lines, vec![line("MUG", 1), line("CAP", 1)]).ok(),
            Some(MAX_MINOR_UNITS)
        );
    }
}
