//! Order rules applied where requests enter: line and address checks, ids, statuses. What needs
//! another service (the customer exists, the SKUs are for sale, the card is valid) is checked in
//! `api.rs` through those services.

use std::collections::HashSet;

use crowdcrunch_proto::orders::v1 as pb;
use crowdcrunch_proto::r#type::v1::Address;
use crowdcrunch_runtime::idempotency::RequestId;
use crowdcrunch_runtime::status::FieldViolation;

/// The most lines one order may have.
pub const MAX_LINES: usize = 100;
/// The most units of one SKU one order may ask for.
pub const MAX_QUANTITY: i32 = 1000;
/// The longest id accepted; anything longer cannot exist.
const MAX_ID_LEN: usize = 64;

/// One requested line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRequest {
    /// The product.
    pub sku: String,
    /// Units, 1 to [`MAX_QUANTITY`].
    pub quantity: i32,
}

/// A PlaceOrder request whose own fields are valid.
#[derive(Debug, Clone)]
pub struct PlaceOrder {
    /// The idempotency key.
    pub request_id: Option<RequestId>,
    /// Who orders.
    pub customer_id: String,
    /// What, each SKU once.
    pub lines: Vec<LineRequest>,
    /// Where to.
    pub address: Address,
}

/// Checks the fields of `request` that need no other service; the card is checked by payments.
pub fn parse_place_order(
    request: &pb::PlaceOrderRequest,
) -> Result<PlaceOrder, Vec<FieldViolation>> {
    let mut violations = Vec::new();
    let request_id = RequestId::parse_optional(&request.request_id, "request_id")
        .map_err(|violation| violations.push(violation))
        .ok()
        .flatten();
    if let Err(violation) = check_id(&request.customer_id, "customer_id") {
        violations.push(violation);
    }
    let lines = parse_lines(&request.lines, &mut violations);
    match &request.shipping_address {
        Some(address) => violations.extend(address_violations(address, "shipping_address")),
        None => violations.push(FieldViolation::new("shipping_address", "is required")),
    }
    if request.card.is_none() {
        violations.push(FieldViolation::new("card", "is required"));
    }
    if !violations.is_empty() {
        return Err(violations);
    }
    Ok(PlaceOrder {
        request_id,
        customer_id: request.customer_id.clone(),
        lines,
        address: request.shipping_address.clone().unwrap_or_default(),
    })
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
        if line.sku.is_empty() {
            violations.push(FieldViolation::new(
                format!("lines[{index}].sku"),
                "is required",
            ));
        } else if !seen.insert(line.sku.as_str()) {
            violations.push(FieldViolation::new(
                format!("lines[{index}].sku"),
                format!(
                    "{} appears on more than one line; put its whole quantity on one",
                    line.sku
                ),
            ));
        }
        if !(1..=MAX_QUANTITY).contains(&line.quantity) {
            violations.push(FieldViolation::new(
                format!("lines[{index}].quantity"),
                format!("must be between 1 and {MAX_QUANTITY}"),
            ));
        }
        parsed.push(LineRequest {
            sku: line.sku.clone(),
            quantity: line.quantity,
        });
    }
    parsed
}

/// The problems of a shipping address, with field paths under `prefix` (the one definition in
/// `crowdcrunch-proto`, shared with fulfillment).
pub fn address_violations(address: &Address, prefix: &str) -> Vec<FieldViolation> {
    address
        .problems(prefix)
        .into_iter()
        .map(|(field, description)| FieldViolation::new(field, description))
        .collect()
}

/// Checks the shape of an id field.
pub fn check_id(id: &str, field: &str) -> Result<(), FieldViolation> {
    if id.is_empty() {
        return Err(FieldViolation::new(field, "is required"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(FieldViolation::new(field, "is not an id"));
    }
    Ok(())
}

/// Statuses an order never leaves.
pub fn is_final(status: pb::OrderStatus) -> bool {
    matches!(
        status,
        pb::OrderStatus::Rejected
            | pb::OrderStatus::PaymentDeclined
            | pb::OrderStatus::Cancelled
            | pb::OrderStatus::Delivered
    )
}
