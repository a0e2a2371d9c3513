//! Property tests of the order rules at the boundary: arbitrary PlaceOrder and ListOrders
//! requests never panic the parsing; every refusal names fields of the request; a valid
//! PlaceOrder comes back as it was sent; and a page token returned for a key reads back as that
//! key under the same filters. Case counts are bounded, so these run in seconds.

use crowdcrunch_proto::r#type::v1::{Address, PaymentCard};
use proptest::prelude::*;

use super::*;

/// Cases per property: enough to find the edges, few enough for CI.
const CASES: u32 = 256;

/// Any text, with control characters, non-ASCII and lengths around every limit.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,70}",
        "[ -~]{0,70}",
        "[A-Z0-9-]{1,10}"
    ]
}

fn valid_address() -> Address {
    Address {
        recipient: "Ada Lovelace".into(),
        line1: "12 St James's Square".into(),
        city: "London".into(),
        country_code: "GB".into(),
        ..Default::default()
    }
}

fn any_request() -> impl Strategy<Value = pb::PlaceOrderRequest> {
    let line = (any_text(), any::<i32>()).prop_map(|(sku, quantity)| pb::OrderLine {
        sku,
        quantity,
        ..Default::default()
    });
    let address = any_text().prop_map(|text| Address {
        line1: text.clone(),
        country_code: text,
        ..valid_address()
    });
    (
        any_text(),
        any_text(),
        proptest::collection::vec(line, 0..=MAX_LINES + 3),
        proptest::option::of(address),
        proptest::option::of(Just(PaymentCard::default())),
    )
        .prop_map(|(request_id, customer_id, lines, shipping_address, card)| {
            pb::PlaceOrderRequest {
                request_id,
                customer_id,
                lines,
                card,
                shipping_address,
            }
        })
}

/// A PlaceOrder request every rule of this service accepts: distinct SKUs, quantities in range.
fn valid_request() -> impl Strategy<Value = pb::PlaceOrderRequest> {
    let lines =
        proptest::collection::btree_map("[A-Z0-9][A-Z0-9._-]{0,20}", 1..=MAX_QUANTITY, 1..8)
            .prop_map(|lines| {
                lines
                    .into_iter()
                    .map(|(sku, quantity)| pb::OrderLine {
                        sku,
                        quantity,
                        ..Default::default()
                    })
                    .collect()
            });
    ("[!-~]{0,40}", "[a-f0-9-]{1,36}", lines).prop_map(|(request_id, customer_id, lines)| {
        pb::PlaceOrderRequest {
            request_id,
            customer_id,
            lines,
            card: Some(PaymentCard::default()),
            shipping_address: Some(valid_address()),
        }
    })
}

/// The request field a violation's path starts with.
fn top_field(path: &str) -> &str {
    path.split(['.', '[']).next().unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn every_refused_place_order_names_its_fields(request in any_request()) {
        match PlaceOrder::try_from(&request) {
            Ok(order) => {
                prop_assert_eq!(order.customer_id.as_str(), request.customer_id.as_str());
                prop_assert_eq!(order.lines.len(), request.lines.len());
            }
            Err(violations) => {
                prop_assert!(!violations.is_empty());
                for violation in violations {
                    prop_assert!(
                        ["request_id", "customer_id", "lines", "shipping_address", "card"]
                            .contains(&top_field(&violation.field)),
                        "{}", violation.field
                    );
                }
            }
        }
    }

    #[test]
    fn a_valid_place_order_comes_back_as_sent(request in valid_request()) {
        let order = PlaceOrder::try_from(&request);
        prop_assert!(order.is_ok(), "{:?}", order.err());
        let Ok(order) = order else { return Ok(()) };
        prop_assert_eq!(order.customer_id.as_str(), request.customer_id.as_str());
        prop_assert_eq!(
            order.request_id.as_ref().map(RequestId::as_str).unwrap_or_default(),
            request.request_id.as_str()
        );
        let lines: Vec<_> = order
            .lines
            .iter()
            .map(|line| (line.sku.as_str().to_owned(), line.quantity.get()))
            .collect();
        let sent: Vec<_> = request
            .lines
            .iter()
            .map(|line| (line.sku.clone(), line.quantity))
            .collect();
        prop_assert_eq!(lines, sent);
        prop_assert_eq!(Some(order.address), request.shipping_address);
    }

    #[test]
    fn list_orders_names_its_fields_and_its_tokens_read_back(
        customer_id in proptest::option::of(any_text()),
        status in proptest::option::of(any::<i32>()),
        page_size in any::<i32>(),
        page_token in any_text(),
        key in any_text(),
    ) {
        let page_tokens = PageTokens::generate().expect("a random key");
        let mut request = pb::ListOrdersRequest {
            customer_id,
            status,
            page_size,
            page_token,
        };
        if let Err(violations) = OrderQuery::parse(&request, &page_tokens) {
            prop_assert!(!violations.is_empty());
            for violation in violations {
                prop_assert!(
                    ["customer_id", "status", "page_size", "page_token"]
                        .contains(&violation.field.as_str()),
                    "{}", violation.field
                );
            }
        }
        request.page_token = String::new();
        if let Ok(query) = OrderQuery::parse(&request, &page_tokens) {
            let next = query.page.finish(&mut vec![(); query.page.size.get() as usize + 1], |()| key.clone());
            request.page_token = next;
            let again = OrderQuery::parse(&request, &page_tokens);
            prop_assert!(again.is_ok(), "{:?}", again.err());
            prop_assert_eq!(again.ok().and_then(|query| query.page.after), Some(key));
        }
    }
}
