//! The events orders' changes produce. Their subject is the order id and they are about its
//! customer; each names the order, and statuses are the API's enum names
//! (`ORDER_STATUS_CONFIRMED`).

use crowdcrunch_outbox::Event;
use serde_json::json;

use crate::domain::{OrderId, OrderStatus};
use crate::order::{Compensation, Order};

/// An order was placed: its customer, its priced lines and its total.
pub fn order_placed(order: &Order) -> Event {
    let lines: Vec<_> = order
        .lines
        .iter()
        .map(|line| {
            json!({
                "sku": line.sku.as_str(),
                "quantity": line.quantity.get(),
                "unit_price_minor": line.unit_price_minor,
            })
        })
        .collect();
    let data = json!({
        "order_id": order.id.as_str(),
        "customer_id": order.customer_id.as_str(),
        "currency_code": order.currency_code,
        "total_minor": order.total_minor,
        "lines": lines,
    });
    about(order, Event::new("OrderPlaced", order.id.as_str(), data))
}

/// `event`, about `order`'s customer.
fn about(order: &Order, event: Event) -> Event {
    event.about_customer(order.customer_id.as_str())
}

/// The customer asked for the order to be cancelled, for `reason`; the saga carries it out.
pub fn cancellation_requested(order: &Order, reason: &str) -> Event {
    let data = json!({ "order_id": order.id.as_str(), "reason": reason });
    about(
        order,
        Event::new("OrderCancellationRequested", order.id.as_str(), data),
    )
}

/// The cancellation cannot happen: the shipment has already left, and the order goes on.
pub fn cancellation_refused(order: &Order) -> Event {
    let data = json!({ "order_id": order.id.as_str(), "reason": "the shipment has already left" });
    about(
        order,
        Event::new("OrderCancellationRefused", order.id.as_str(), data),
    )
}

/// The saga confirmed `order`: paid, committed and handed to fulfillment.
pub fn order_confirmed(order: &Order) -> Event {
    order_ended("OrderConfirmed", order, OrderStatus::Confirmed)
}

/// The saga gave everything back and ended `order` as `compensation` says: `OrderRejected`,
/// `OrderPaymentDeclined` or `OrderCancelled`.
pub fn order_compensated(order: &Order, compensation: Compensation) -> Event {
    let event_type = match compensation {
        Compensation::Rejected => "OrderRejected",
        Compensation::PaymentDeclined => "OrderPaymentDeclined",
        Compensation::Cancelled => "OrderCancelled",
    };
    order_ended(event_type, order, compensation.status())
}

/// The saga ended `order` in `status`: why it failed (if it did), its payment and its shipment.
fn order_ended(event_type: &'static str, order: &Order, status: OrderStatus) -> Event {
    let progress = &order.progress;
    let data = json!({
        "order_id": order.id.as_str(),
        "status": status.name(),
        "failure_reason": order.failure_reason,
        "payment_id": progress.payment.as_ref().map_or("", |payment| payment.id.as_str()),
        "shipment_id": progress.shipment.as_ref().map_or("", |shipment| shipment.id.as_str()),
    });
    about(order, Event::new(event_type, order.id.as_str(), data))
}

/// The order's shipment left: the order of `customer_id` is SHIPPED.
pub fn order_shipped(order: &OrderId, customer_id: &str) -> Event {
    order_followed("OrderShipped", order, customer_id, OrderStatus::Shipped)
}

/// The order's shipment arrived: the order of `customer_id` is DELIVERED.
pub fn order_delivered(order: &OrderId, customer_id: &str) -> Event {
    order_followed("OrderDelivered", order, customer_id, OrderStatus::Delivered)
}

/// The order of `customer_id` followed its shipment into `status`.
fn order_followed(
    event_type: &'static str,
    order: &OrderId,
    customer_id: &str,
    status: OrderStatus,
) -> Event {
    let data = json!({ "order_id": order.as_str(), "status": status.name() });
    Event::new(event_type, order.as_str(), data).about_customer(customer_id)
}
