//! Property tests of the request rules every service applies at its boundary: arbitrary ids,
//! SKUs, money and addresses never panic a rule; a valid value passes and comes back unchanged;
//! every problem names a field under the prefix it was given; and the bounded arithmetic of money
//! agrees with exact (i128) arithmetic or refuses, never wrapping. Case counts are bounded, so the
//! whole file runs in seconds.

use crowdcrunch_proto::rules::{MAX_ID_LEN, MAX_SKU_LEN, id_problem, sku_problem};
use crowdcrunch_proto::r#type::v1::{Address, Money};
use crowdcrunch_proto::{AmountRule, MAX_MINOR_UNITS, bounded_product, bounded_sum};
use proptest::prelude::*;

/// Cases per property: enough to find the edges, few enough for CI.
const CASES: u32 = 512;

/// Any text, with control characters, non-ASCII and lengths around every limit.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,80}",
        "[ -~]{0,70}",
        "[A-Za-z0-9._-]{0,70}",
        "[\u{0}-\u{1f} a\u{7f}é]{0,8}",
    ]
}

/// Any amount, weighted towards the bounds and the values that overflowed before.
fn any_minor_units() -> impl Strategy<Value = i64> {
    prop_oneof![
        any::<i64>(),
        -2..=2_i64,
        (MAX_MINOR_UNITS - 2)..=(MAX_MINOR_UNITS + 2),
        Just(6_148_914_691_236_517_206),
        Just(i64::MAX),
        Just(i64::MIN),
    ]
}

fn any_money() -> impl Strategy<Value = Money> {
    (prop_oneof!["[A-Z]{3}", any_text()], any_minor_units()).prop_map(
        |(currency_code, minor_units)| Money {
            currency_code,
            minor_units,
        },
    )
}

/// A field value an address accepts: no control characters, at most 200 characters, not blank.
fn address_field() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9 ,.'/-]{0,60}"
}

/// The fields of an address, in the order of the proto.
type AddressFields = (String, String, String, String, String, String, String);

fn address(fields: AddressFields) -> Address {
    let (recipient, line1, line2, city, region, postal_code, country_code) = fields;
    Address {
        recipient,
        line1,
        line2,
        city,
        region,
        postal_code,
        country_code,
    }
}

fn valid_address() -> impl Strategy<Value = Address> {
    (
        address_field(),
        address_field(),
        prop_oneof![Just(String::new()), address_field()],
        address_field(),
        prop_oneof![Just(String::new()), address_field()],
        prop_oneof![Just(String::new()), address_field()],
        "[A-Z]{2}",
    )
        .prop_map(address)
}

fn any_address() -> impl Strategy<Value = Address> {
    (
        any_text(),
        any_text(),
        any_text(),
        any_text(),
        any_text(),
        any_text(),
        prop_oneof!["[A-Z]{2}", any_text()],
    )
        .prop_map(address)
}

/// `result` is `exact` and within the bound, or refused because `exact` is over the bound (or
/// outside `i64` altogether).
fn exact_or_refused(result: Option<i64>, exact: i128) -> Result<(), TestCaseError> {
    match result {
        Some(value) => {
            prop_assert_eq!(i128::from(value), exact);
            prop_assert!(value <= MAX_MINOR_UNITS);
        }
        None => prop_assert!(
            exact > i128::from(MAX_MINOR_UNITS) || exact < i128::from(i64::MIN),
            "{exact} was refused"
        ),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn an_id_is_valid_exactly_when_it_is_1_to_64_visible_ascii(value in any_text()) {
        let valid = !value.is_empty()
            && value.len() <= MAX_ID_LEN
            && value.bytes().all(|byte| byte.is_ascii_graphic());
        prop_assert_eq!(id_problem(&value).is_none(), valid, "{:?}", value);
    }

    #[test]
    fn a_sku_is_valid_exactly_when_it_is_1_to_64_of_its_characters(value in any_text()) {
        let valid = !value.is_empty()
            && value.len() <= MAX_SKU_LEN
            && value
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'));
        prop_assert_eq!(sku_problem(&value).is_none(), valid, "{:?}", value);
    }

    #[test]
    fn money_problems_name_its_fields_and_only_bounded_amounts_pass(
        money in any_money(),
        positive in any::<bool>(),
    ) {
        let rule = if positive { AmountRule::Positive } else { AmountRule::NonNegative };
        let problems = money.problems("amount", rule);
        for (field, _) in &problems {
            prop_assert!(
                field == "amount.currency_code" || field == "amount.minor_units",
                "{field}"
            );
        }
        let currency_ok = money.currency_code.len() == 3
            && money.currency_code.bytes().all(|byte| byte.is_ascii_uppercase());
        let lowest = if positive { 1 } else { 0 };
        let amount_ok = (lowest..=MAX_MINOR_UNITS).contains(&money.minor_units);
        prop_assert_eq!(problems.is_empty(), currency_ok && amount_ok, "{:?}", money);
    }

    #[test]
    fn bounded_products_are_exact_or_refused(unit in any_minor_units(), quantity in any_minor_units()) {
        exact_or_refused(
            bounded_product(unit, quantity),
            i128::from(unit) * i128::from(quantity),
        )?;
    }

    #[test]
    fn bounded_sums_are_exact_or_refused(a in any_minor_units(), b in any_minor_units()) {
        exact_or_refused(bounded_sum(a, b), i128::from(a) + i128::from(b))?;
    }

    #[test]
    fn a_total_of_bounded_lines_never_wraps(
        lines in proptest::collection::vec((0..=MAX_MINOR_UNITS, 1..=10_000_i64), 1..40),
    ) {
        // What an order's total does: each line's product, then their sum, all checked.
        let total = lines.iter().try_fold(0_i64, |total, (unit, quantity)| {
            bounded_product(*unit, *quantity).and_then(|line| bounded_sum(total, line))
        });
        let exact: i128 = lines
            .iter()
            .map(|(unit, quantity)| i128::from(*unit) * i128::from(*quantity))
            .sum();
        match total {
            Some(total) => prop_assert_eq!(i128::from(total), exact),
            None => prop_assert!(exact > i128::from(MAX_MINOR_UNITS)),
        }
    }

    #[test]
    fn a_valid_address_passes_unchanged(address in valid_address()) {
        let before = address.clone();
        prop_assert_eq!(address.problems("shipping_address"), Vec::new());
        prop_assert_eq!(address, before);
    }

    #[test]
    fn every_address_problem_names_one_of_its_fields(address in any_address()) {
        const FIELDS: [&str; 7] = [
            "recipient", "line1", "line2", "city", "region", "postal_code", "country_code",
        ];
        for (field, description) in address.problems("shipping_address") {
            let name = field.strip_prefix("shipping_address.");
            prop_assert!(name.is_some_and(|name| FIELDS.contains(&name)), "{field}");
            prop_assert!(!description.is_empty());
        }
    }
}
