//! The events the customers service's changes produce, about the customer id.

use crowdcrunch_outbox::Event;
use crowdcrunch_proto::customers::v1 as pb;
use serde_json::{Value, json};

fn customer_json(customer: &pb::Customer) -> Value {
    json!({
        "id": customer.id,
        "email": customer.email,
        "display_name": customer.display_name,
    })
}

/// A customer account was created.
pub fn customer_created(customer: &pb::Customer) -> Event {
    Event::new(
        "CustomerCreated",
        &customer.id,
        json!({ "customer": customer_json(customer) }),
    )
    .about_customer(&customer.id)
}

/// A customer's email or display name changed.
pub fn customer_updated(customer: &pb::Customer) -> Event {
    Event::new(
        "CustomerUpdated",
        &customer.id,
        json!({ "customer": customer_json(customer) }),
    )
    .about_customer(&customer.id)
}
