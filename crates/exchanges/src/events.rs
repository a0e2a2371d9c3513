//! The events exchanges' changes produce. A return's events are the story of its order, so their
//! subject is the order id; each names the return and its order, and kinds are the API's enum
//! names (`RETURN_KIND_RETURN`).

use crowdcrunch_outbox::Event;
use serde_json::json;

use crate::domain::{Decision, PaymentId, Return, ShipmentId};

/// A return was requested: its kind, its lines and what it will refund.
pub fn return_requested(requested: &Return) -> Event {
    let lines: Vec<_> = requested
        .lines
        .iter()
        .map(|line| json!({ "sku": line.sku.as_str(), "quantity": line.quantity.get() }))
        .collect();
    let data = json!({
        "return_id": requested.id.as_str(),
        "order_id": requested.order_id.as_str(),
        "kind": requested.kind.to_proto().as_str_name(),
        "lines": lines,
        "refund_minor": requested.refund.minor_units,
        "currency_code": requested.refund.currency_code,
    });
    Event::new("ReturnRequested", requested.order_id.as_str(), data)
        .about_customer(&requested.customer_id)
}

/// Staff decided on a return: `ReturnApproved`, or `ReturnRejected` with the reason (empty for an
/// approval).
pub fn return_decided(decided: &Return, decision: &Decision) -> Event {
    let event_type = match decision {
        Decision::Approve => "ReturnApproved",
        Decision::Reject { .. } => "ReturnRejected",
    };
    let data = json!({
        "return_id": decided.id.as_str(),
        "order_id": decided.order_id.as_str(),
        "reason": decision.rejection_reason(),
    });
    Event::new(event_type, decided.order_id.as_str(), data).about_customer(&decided.customer_id)
}

/// A return's goods arrived and were restocked, then refunded (the payment refunded) or replaced
/// (the replacement's shipment); the id it did not produce is empty.
pub fn return_received(received: &Return) -> Event {
    let data = json!({
        "return_id": received.id.as_str(),
        "order_id": received.order_id.as_str(),
        "kind": received.kind.to_proto().as_str_name(),
        "refund_minor": received.refund.minor_units,
        "refund_payment_id": received.refund_payment_id.as_ref().map_or("", PaymentId::as_str),
        "replacement_shipment_id": received
            .replacement_shipment_id
            .as_ref()
            .map_or("", ShipmentId::as_str),
    });
    Event::new("ReturnReceived", received.order_id.as_str(), data)
        .about_customer(&received.customer_id)
}
