//! Order rules applied where requests enter: typed ids (by the one id and SKU rules of
//! `crowdcrunch_proto::rules`), lines, the shipping address (`Address::problems`), statuses. What
//! needs another service (the customer exists, the SKUs are for sale, the card is valid) is checked
//! in `api.rs` through those services.

use std::collections::HashSet;
use std::fmt;

use crowdcrunch_proto::orders::v1 as pb;
use crowdcrunch_proto::rules;
use crowdcrunch_proto::r#type::v1::{Address, PaymentCard};
use crowdcrunch_runtime::idempotency::RequestId;
use crowdcrunch_runtime::pagination::{self, PageRequest, PageTokens};
use crowdcrunch_runtime::status::FieldViolation;

/// The most lines one order may have.
pub const MAX_LINES: usize = 100;
/// The most units of one SKU one order may ask for.
pub const MAX_QUANTITY: i32 = 1000;

/// What is wrong with `raw` as the value of `field` by `rule`, as a field violation.
fn checked(
    raw: &str,
    field: &str,
    rule: fn(&str) -> Option<&'static str>,
) -> Result<String, FieldViolation> {
    match rule(raw) {
        Some(description) => Err(FieldViolation::new(field, description)),
        None => Ok(raw.to_owned()),
    }
}

/// An identifier newtype checked by `rule`: `parse` names the field of a violation; `as_str`
/// reads it back.
macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident by $rule:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Checks `raw` as the value of `field`.
            pub fn parse(raw: &str, field: &str) -> Result<Self, FieldViolation> {
                checked(raw, field, $rule).map(Self)
            }

            /// The value as the API spells it.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.0)
            }
        }
    };
}

checked_string!(
    /// An order's id (a UUID this service mints); only its shape is checked at the boundary.
    OrderId by rules::id_problem
);
checked_string!(
    /// A customer's id (the customers service's); whether it exists is asked of that service.
    CustomerId by rules::id_problem
);
checked_string!(
    /// A payment's id (the payments service's), as the saga records it.
    PaymentId by rules::id_problem
);
checked_string!(
    /// A shipment's id (the fulfillment service's), as the saga records it.
    ShipmentId by rules::id_problem
);
checked_string!(
    /// A product's stock-keeping unit, by the one SKU rule; whether it is for sale is asked of
    /// inventory.
    Sku by rules::sku_problem
);

impl OrderId {
    /// A fresh id for a new order (a UUIDv7, so ids sort by creation).
    pub fn mint() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }
}

/// Units of one SKU on an order: 1 to [`MAX_QUANTITY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(i32);

impl Quantity {
    /// Checks `raw` as the value of `field`.
    pub fn parse(raw: i32, field: &str) -> Result<Self, FieldViolation> {
        Self::new(raw).ok_or_else(|| {
            FieldViolation::new(field, format!("must be between 1 and {MAX_QUANTITY}"))
        })
    }

    /// `units` if it is a quantity an order may hold.
    pub fn new(units: i32) -> Option<Self> {
        (1..=MAX_QUANTITY).contains(&units).then_some(Self(units))
    }

    /// How many units.
    pub fn get(self) -> i32 {
        self.0
    }
}

/// Where an order is in its life (`OrderStatus` without its UNSPECIFIED).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    /// Its saga is running.
    Pending,
    /// Not enough stock: nothing was charged.
    Rejected,
    /// The card was declined: the stock was released.
    PaymentDeclined,
    /// Paid and handed to fulfillment.
    Confirmed,
    /// The parcel has left.
    Shipped,
    /// The parcel arrived.
    Delivered,
    /// Cancelled before it shipped: money and stock went back.
    Cancelled,
}

impl OrderStatus {
    /// The API's enum value.
    pub fn to_proto(self) -> pb::OrderStatus {
        match self {
            Self::Pending => pb::OrderStatus::Pending,
            Self::Rejected => pb::OrderStatus::Rejected,
            Self::PaymentDeclined => pb::OrderStatus::PaymentDeclined,
            Self::Confirmed => pb::OrderStatus::Confirmed,
            Self::Shipped => pb::OrderStatus::Shipped,
            Self::Delivered => pb::OrderStatus::Delivered,
            Self::Cancelled => pb::OrderStatus::Cancelled,
        }
    }

    /// The status of the API's enum value `raw`, if it is one (UNSPECIFIED is none).
    pub fn from_proto(raw: i32) -> Option<Self> {
        match pb::OrderStatus::try_from(raw).ok()? {
            pb::OrderStatus::Unspecified => None,
            pb::OrderStatus::Pending => Some(Self::Pending),
            pb::OrderStatus::Rejected => Some(Self::Rejected),
            pb::OrderStatus::PaymentDeclined => Some(Self::PaymentDeclined),
            pb::OrderStatus::Confirmed => Some(Self::Confirmed),
            pb::OrderStatus::Shipped => Some(Self::Shipped),
            pb::OrderStatus::Delivered => Some(Self::Delivered),
            pb::OrderStatus::Cancelled => Some(Self::Cancelled),
        }
    }

    /// How it is stored: the API's enum number.
    pub fn stored(self) -> i64 {
        i64::from(self.to_proto() as i32)
    }

    /// The status stored as `stored`, if it is one.
    pub fn from_stored(stored: i64) -> Option<Self> {
        Self::from_proto(i32::try_from(stored).ok()?)
    }

    /// The API's name of the status (`ORDER_STATUS_CONFIRMED`), as events spell it.
    pub fn name(self) -> &'static str {
        self.to_proto().as_str_name()
    }

    /// Whether an order never leaves this status.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Rejected | Self::PaymentDeclined | Self::Cancelled | Self::Delivered
        )
    }
}

/// One requested line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRequest {
    /// The product.
    pub sku: Sku,
    /// How many.
    pub quantity: Quantity,
}

/// A PlaceOrder request whose own fields are valid.
#[derive(Debug, Clone)]
pub struct PlaceOrder {
    /// The idempotency key.
    pub request_id: Option<RequestId>,
    /// Who orders.
    pub customer_id: CustomerId,
    /// What, each SKU once.
    pub lines: Vec<LineRequest>,
    /// Where to (valid by `Address::problems`).
    pub address: Address,
    /// The card, checked and tokenized by payments.
    pub card: PaymentCard,
}

impl TryFrom<&pb::PlaceOrderRequest> for PlaceOrder {
    type Error = Vec<FieldViolation>;

    /// Checks the fields of `request` that need no other service; the card is checked by
    /// payments.
    fn try_from(request: &pb::PlaceOrderRequest) -> Result<Self, Self::Error> {
        let mut violations = Vec::new();
        let request_id = RequestId::parse_optional(&request.request_id, "request_id")
            .map_err(|violation| violations.push(violation))
            .ok()
            .flatten();
        let customer_id = CustomerId::parse(&request.customer_id, "customer_id")
            .map_err(|violation| violations.push(violation))
            .ok();
        let lines = parse_lines(&request.lines, &mut violations);
        let address = match &request.shipping_address {
            Some(address) => {
                let problems = address_violations(address, "shipping_address");
                let valid = problems.is_empty();
                violations.extend(problems);
                valid.then(|| address.clone())
            }
            None => {
                violations.push(FieldViolation::new("shipping_address", "is required"));
                None
            }
        };
        if request.card.is_none() {
            violations.push(FieldViolation::new("card", "is required"));
        }
        match (customer_id, address, request.card.clone()) {
            (Some(customer_id), Some(address), Some(card)) if violations.is_empty() => Ok(Self {
                request_id,
                customer_id,
                lines,
                address,
                card,
            }),
            _ => Err(violations),
        }
    }
}

fn parse_lines(lines: &[pb::OrderLine], violations: &mut Vec<FieldViolation>) -> Vec<LineRequest> {
    if lines.is_empty() {
        violations.push(FieldViolation::new(
            "lines",
            "at least one line is required",
        ));
    }
    if lines.len() > MAX_LINES {
        violations.push(FieldViolation::new(
            "lines",
            format!("at most {MAX_LINES} lines per order"),
        ));
    }
    let mut seen = HashSet::new();
    let mut parsed = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let sku = match Sku::parse(&line.sku, &format!("lines[{index}].sku")) {
            Ok(sku) if !seen.insert(sku.clone()) => {
                violations.push(FieldViolation::new(
                    format!("lines[{index}].sku"),
                    format!("{sku} appears on more than one line; put its whole quantity on one"),
                ));
                None
            }
            Ok(sku) => Some(sku),
            Err(violation) => {
                violations.push(violation);
                None
            }
        };
        let quantity = Quantity::parse(line.quantity, &format!("lines[{index}].quantity"))
            .map_err(|violation| violations.push(violation))
            .ok();
        if let (Some(sku), Some(quantity)) = (sku, quantity) {
            parsed.push(LineRequest { sku, quantity });
        }
    }
    parsed
}

/// The problems of a shipping address, with field paths under `prefix` (the one definition in
/// `crowdcrunch-proto`, shared with fulfillment).
fn address_violations(address: &Address, prefix: &str) -> Vec<FieldViolation> {
    address
        .problems(prefix)
        .into_iter()
        .map(|(field, description)| FieldViolation::new(field, description))
        .collect()
}

/// A checked ListOrders request: its page and its filters.
#[derive(Debug)]
pub struct OrderQuery {
    /// Which page.
    pub page: PageRequest,
    /// Only this customer's orders; everyone's when `None`.
    pub customer_id: Option<CustomerId>,
    /// Only orders in this status; any when `None`.
    pub status: Option<OrderStatus>,
}

impl OrderQuery {
    /// Checks `request`; its page token must be one `page_tokens` signed.
    pub fn parse(
        request: &pb::ListOrdersRequest,
        page_tokens: &PageTokens,
    ) -> Result<Self, Vec<FieldViolation>> {
        let mut violations = Vec::new();
        // An empty customer id filters nothing, as an absent one.
        let customer_id = match request.customer_id.as_deref() {
            None | Some("") => None,
            Some(raw) => CustomerId::parse(raw, "customer_id")
                .map_err(|violation| violations.push(violation))
                .ok(),
        };
        let status = match request.status {
            None => None,
            Some(raw) => {
                let status = OrderStatus::from_proto(raw);
                if status.is_none() {
                    violations.push(FieldViolation::new("status", "is not an order status"));
                }
                status
            }
        };
        if !violations.is_empty() {
            return Err(violations);
        }
        // A page token is valid only with the filters of the call that returned it.
        let filter = format!(
            "customer_id={};status={}",
            customer_id.as_ref().map_or("", CustomerId::as_str),
            status.map_or("", OrderStatus::name)
        );
        let page = page_tokens
            .parse_filtered(request.page_size, &request.page_token, &filter)
            .map_err(|violation| vec![violation])?;
        Ok(Self {
            page,
            customer_id,
            status,
        })
    }
}

/// Checks the ids of a batch get: at most [`pagination::MAX_IDS`], each well-formed.
pub fn parse_order_ids(ids: &[String]) -> Result<Vec<OrderId>, Vec<FieldViolation>> {
    pagination::parse_ids(ids, "ids", OrderId::parse)
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_storage_and_the_api() {
        let all = [
            OrderStatus::Pending,
            OrderStatus::Rejected,
            OrderStatus::PaymentDeclined,
            OrderStatus::Confirmed,
            OrderStatus::Shipped,
            OrderStatus::Delivered,
            OrderStatus::Cancelled,
        ];
        for status in all {
            assert_eq!(OrderStatus::from_stored(status.stored()), Some(status));
            assert_eq!(
                OrderStatus::from_proto(status.to_proto() as i32),
                Some(status)
            );
        }
        for unknown in [0, 8, -1, i64::from(i32::MAX) + 1] {
            assert_eq!(OrderStatus::from_stored(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn a_quantity_is_one_to_the_maximum() {
        assert_eq!(Quantity::new(1).map(Quantity::get), Some(1));
        assert_eq!(
            Quantity::new(MAX_QUANTITY).map(Quantity::get),
            Some(MAX_QUANTITY)
        );
        for bad in [0, -1, MAX_QUANTITY + 1] {
            assert_eq!(Quantity::new(bad), None, "{bad}");
        }
    }
}
