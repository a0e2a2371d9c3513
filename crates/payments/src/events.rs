//! The events payments' changes produce. A payment's events are the story of its order, so their
//! subject is the order id; a card token's event is about the token and carries nothing of the
//! card. Amounts are `{currency_code, minor_units}` objects, as `Money` is in the protos.

use crowdcrunch_outbox::Event;
use crowdcrunch_proto::payments::v1 as pb;
use crowdcrunch_proto::r#type::v1::Money;
use serde_json::{Value, json};

use crate::domain::Transition;

/// `money` as `{currency_code, minor_units}`, or `null` where the payment has none.
fn money_json(money: Option<&Money>) -> Value {
    money.map_or(
        Value::Null,
        |money| json!({ "currency_code": money.currency_code, "minor_units": money.minor_units }),
    )
}

/// The payment's state, shared by every payment event.
fn payment_json(payment: &pb::Payment) -> Value {
    json!({
        "payment_id": payment.id,
        "order_id": payment.order_id,
        "status": payment.status().as_str_name(),
        "amount": money_json(payment.amount.as_ref()),
        "captured": money_json(payment.captured.as_ref()),
        "refunded": money_json(payment.refunded.as_ref()),
    })
}

/// A card was tokenized. Not an order event: its subject is the token, and it holds no card data.
pub fn card_tokenized(token: &pb::CardToken) -> Event {
    Event::new(
        "CardTokenized",
        &token.token,
        json!({ "card_token": token.token }),
    )
}

/// An authorisation was asked for: `PaymentAuthorized`, or `PaymentDeclined` with the reason.
pub fn payment_authorized(payment: &pb::Payment) -> Event {
    let mut data = payment_json(payment);
    let event_type = if payment.status() == pb::PaymentStatus::Declined {
        data["decline_reason"] = payment.decline_reason.clone().into();
        "PaymentDeclined"
    } else {
        "PaymentAuthorized"
    };
    Event::new(event_type, &payment.order_id, data).about_customer(&payment.customer_id)
}

/// The payment was captured (`PaymentCaptured`: the whole authorised amount was taken) or voided
/// (`PaymentVoided`: the authorisation was dropped).
pub fn transitioned(payment: &pb::Payment, transition: Transition) -> Event {
    let event_type = match transition {
        Transition::Capture => "PaymentCaptured",
        Transition::Void => "PaymentVoided",
    };
    Event::new(event_type, &payment.order_id, payment_json(payment))
        .about_customer(&payment.customer_id)
}

/// `refund` of the payment was given back, for `reason`; `payment` is as it is afterwards.
pub fn refund_issued(
    payment: &pb::Payment,
    refund_id: &str,
    refund: &Money,
    reason: &str,
) -> Event {
    let mut data = payment_json(payment);
    data["refund_id"] = refund_id.into();
    data["refund"] = money_json(Some(refund));
    data["reason"] = reason.into();
    Event::new("RefundIssued", &payment.order_id, data).about_customer(&payment.customer_id)
}
