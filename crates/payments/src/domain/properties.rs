//! Property tests of the payment rules at the boundary: arbitrary AuthorizePayment, RefundPayment
//! and TokenizeCard requests never panic the parsing; every refusal names fields of the request;
//! a valid request comes back as it was sent (a card reduced to its last four digits); and a
//! number of no known brand, such as all zeros, is never accepted. Case counts are bounded, so
//! these run in seconds.

use proptest::prelude::*;

use super::*;

/// Cases per property: enough to find the edges, few enough for CI.
const CASES: u32 = 256;

/// The month the expiry dates are checked against.
const TODAY: YearMonth = YearMonth {
    year: 2026,
    month: 6,
};

/// Any text, with control characters, non-ASCII and lengths around every limit.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,70}",
        "[ -~]{0,70}",
        "[a-f0-9-]{1,36}"
    ]
}

fn any_money() -> impl Strategy<Value = Option<types::Money>> {
    let minor_units = prop_oneof![
        any::<i64>(),
        -2..=2_i64,
        Just(crowdcrunch_proto::MAX_MINOR_UNITS + 1),
        Just(6_148_914_691_236_517_206),
    ];
    proptest::option::of(
        (prop_oneof!["[A-Z]{3}", any_text()], minor_units)
            .prop_map(|(currency_code, minor_units)| money(&currency_code, minor_units)),
    )
}

/// `digits` with the Luhn check digit appended.
fn with_check_digit(digits: &str) -> String {
    (0..=9)
        .map(|check| format!("{digits}{check}"))
        .find(|number| passes_luhn(number))
        .unwrap_or_default()
}

/// Card numbers: any digits, any text, all zeros, and valid numbers of each known brand.
fn any_number() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{0,22}",
        any_text(),
        (12..=19_usize).prop_map(|len| "0".repeat(len)),
        ("4|5[1-5]|3[47]|2221|2720", "[0-9]{14}")
            .prop_map(|(prefix, rest)| with_check_digit(&format!("{prefix}{rest}")[..15])),
    ]
}

/// Whether every violation names one of `fields`, or a field under it.
fn named_among(violations: &[FieldViolation], fields: &[&str]) -> bool {
    violations.iter().all(|violation| {
        let top = violation.field.split('.').next().unwrap_or_default();
        fields.contains(&top) && !violation.description.is_empty()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn authorize_payment_names_its_fields_or_comes_back_as_sent(
        order_id in any_text(),
        customer_id in any_text(),
        amount in any_money(),
        card_token in any_text(),
        request_id in any_text(),
    ) {
        let request = pb::AuthorizePaymentRequest {
            order_id,
            customer_id,
            amount,
            card_token,
            request_id,
        };
        match NewPayment::try_from(&request) {
            Ok(payment) => {
                prop_assert_eq!(payment.order_id.as_str(), request.order_id.as_str());
                prop_assert_eq!(payment.customer_id.as_str(), request.customer_id.as_str());
                prop_assert_eq!(payment.card_token.as_str(), request.card_token.as_str());
                let amount = payment.amount;
                prop_assert_eq!(
                    Some(money(&amount.currency_code, amount.minor_units)),
                    request.amount
                );
                prop_assert!((1..=crowdcrunch_proto::MAX_MINOR_UNITS).contains(&amount.minor_units));
            }
            Err(violations) => {
                prop_assert!(!violations.is_empty());
                prop_assert!(
                    named_among(
                        &violations,
                        &["order_id", "customer_id", "amount", "card_token", "request_id"]
                    ),
                    "{:?}", violations
                );
            }
        }
    }

    #[test]
    fn refund_payment_names_its_fields(
        id in any_text(),
        amount in any_money(),
        reason in any_text(),
        request_id in any_text(),
    ) {
        let request = pb::RefundPaymentRequest { id, amount, reason, request_id };
        match NewRefund::try_from(&request) {
            Ok(refund) => {
                prop_assert_eq!(refund.payment_id.as_str(), request.id.as_str());
                prop_assert_eq!(refund.reason, request.reason);
            }
            Err(violations) => {
                prop_assert!(!violations.is_empty());
                prop_assert!(
                    named_among(&violations, &["id", "amount", "reason", "request_id"]),
                    "{:?}", violations
                );
            }
        }
    }

    #[test]
    fn a_card_is_reduced_to_its_last_four_or_refused_by_field(
        number in any_number(),
        exp_month in prop_oneof![any::<i32>(), 1..=12_i32],
        exp_year in prop_oneof![any::<i32>(), 2020..=2040_i32],
        cvc in prop_oneof!["[0-9]{3,4}", any_text()],
    ) {
        let request = pb::TokenizeCardRequest {
            card: Some(types::PaymentCard { number, exp_month, exp_year, cvc }),
            request_id: String::new(),
        };
        let number = request.card.as_ref().map(|card| card.number.clone()).unwrap_or_default();
        match NewCardToken::parse(&request, TODAY) {
            Ok(token) => {
                prop_assert!(passes_luhn(&number));
                prop_assert_eq!(Some(token.card.brand), Brand::of(&number));
                prop_assert_eq!(&token.card.last4, &number[number.len() - 4..]);
                prop_assert!(!number.bytes().all(|digit| digit == b'0'));
                prop_assert_eq!(token.card.exp_month, exp_month);
                prop_assert_eq!(token.card.exp_year, exp_year);
                let kept = format!("{:?}", token.fingerprint());
                prop_assert!(!kept.contains(&number), "the number is kept: {}", kept);
            }
            Err(violations) => {
                prop_assert!(!violations.is_empty());
                prop_assert!(named_among(&violations, &["card"]), "{:?}", violations);
            }
        }
    }
}
