//! The events fulfillment's changes produce. A shipment's events are the story of its order, so
//! their subject is the order id (an exchange's replacement shipment included). Every payload has
//! `shipment_id`, `order_id` and `status` (the proto enum name, e.g. `SHIPMENT_STATUS_SHIPPED`),
//! `return_id` when the shipment is an exchange's, and `tracking_number` once it is set: the orders
//! service moves an order on `ShipmentShipped`, `ShipmentDelivered` and `ShipmentCancelled`.

use crowdcrunch_outbox::Event;
use crowdcrunch_proto::fulfillment::v1 as pb;
use serde_json::{Value, json};

fn shipment_json(shipment: &pb::Shipment) -> Value {
    let mut data = json!({
        "shipment_id": shipment.id,
        "order_id": shipment.order_id,
        "status": shipment.status().as_str_name(),
    });
    if !shipment.return_id.is_empty() {
        data["return_id"] = shipment.return_id.clone().into();
    }
    if !shipment.tracking_number.is_empty() {
        data["tracking_number"] = shipment.tracking_number.clone().into();
    }
    data
}

/// A shipment was created, PENDING, with what is in it.
pub fn shipment_created(shipment: &pb::Shipment) -> Event {
    let mut data = shipment_json(shipment);
    data["lines"] = shipment
        .lines
        .iter()
        .map(|line| json!({ "sku": line.sku, "quantity": line.quantity }))
        .collect();
    Event::new("ShipmentCreated", &shipment.order_id, data).about_customer(&shipment.customer_id)
}

/// A shipment moved to its current status: `ShipmentPacked`, `ShipmentShipped`,
/// `ShipmentDelivered` or `ShipmentCancelled`.
pub fn status_changed(shipment: &pb::Shipment) -> Event {
    let event_type = match shipment.status() {
        pb::ShipmentStatus::Packed => "ShipmentPacked",
        pb::ShipmentStatus::Shipped => "ShipmentShipped",
        pb::ShipmentStatus::Delivered => "ShipmentDelivered",
        pb::ShipmentStatus::Cancelled => "ShipmentCancelled",
        // Nothing moves to PENDING: a shipment starts there.
        pb::ShipmentStatus::Pending | pb::ShipmentStatus::Unspecified => "ShipmentCreated",
    };
    Event::new(event_type, &shipment.order_id, shipment_json(shipment))
        .about_customer(&shipment.customer_id)
}
