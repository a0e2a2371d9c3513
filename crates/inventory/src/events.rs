//! The events inventory's changes produce: product and stock events are about the SKU,
//! reservation events about the reservation id (the order id). Payloads use the protos' field
//! names.

use crowdcrunch_outbox::Event;
use crowdcrunch_proto::inventory::v1 as pb;
use serde_json::{Value, json};

use crate::domain::StockChange;

fn product_json(product: &pb::Product) -> Value {
    let price = product.price.as_ref().map(
        |price| json!({ "currency_code": price.currency_code, "minor_units": price.minor_units }),
    );
    json!({
        "sku": product.sku,
        "title": product.title,
        "description": product.description,
        "price": price,
        "active": product.active,
    })
}

fn stock_json(stock: &pb::StockLevel) -> Value {
    json!({
        "on_hand": stock.on_hand,
        "reserved": stock.reserved,
        "available": stock.available,
    })
}

/// A product was added to the catalogue, with its starting stock.
pub fn product_created(product: &pb::Product, stock: &pb::StockLevel) -> Event {
    Event::new(
        "ProductCreated",
        &product.sku,
        json!({ "product": product_json(product), "stock": stock_json(stock) }),
    )
}

/// A product's title, description, price or active flag changed.
pub fn product_updated(product: &pb::Product) -> Event {
    Event::new(
        "ProductUpdated",
        &product.sku,
        json!({ "product": product_json(product) }),
    )
}

/// Units on hand were corrected (`StockAdjusted`) or put back on the shelf (`StockRestocked`).
pub fn stock_changed(
    event_type: &'static str,
    change: &StockChange,
    stock: &pb::StockLevel,
) -> Event {
    Event::new(
        event_type,
        &stock.sku,
        json!({
            "sku": stock.sku,
            "delta": change.delta,
            "reason": change.reason,
            "stock": stock_json(stock),
        }),
    )
}

/// A reservation was made (`StockReserved`), committed or released.
pub fn reservation(reservation: &pb::Reservation) -> Event {
    let event_type = match reservation.status() {
        pb::ReservationStatus::Committed => "ReservationCommitted",
        pb::ReservationStatus::Released => "ReservationReleased",
        pb::ReservationStatus::Reserved | pb::ReservationStatus::Unspecified => "StockReserved",
    };
    let lines: Vec<Value> = reservation
        .lines
        .iter()
        .map(|line| json!({ "sku": line.sku, "quantity": line.quantity }))
        .collect();
    Event::new(
        event_type,
        &reservation.reservation_id,
        json!({
            "reservation_id": reservation.reservation_id,
            "status": reservation.status().as_str_name(),
            "lines": lines,
        }),
    )
}
