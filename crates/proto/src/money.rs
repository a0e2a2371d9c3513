//! The one definition of valid money, used by every service that takes an amount (inventory's
//! prices, payments' authorisations and refunds), so the same currency rule has the same words
//! everywhere.

use crate::r#type::v1::Money;

/// The most minor units any amount may come to: a price, a line, an order's total, a charge, a
/// refund (10^12, ten billion dollars in cents). Far inside `i64`, so that bounded amounts can be
/// added and compared in SQL without overflow, and every product or sum over it is refused instead
/// of wrapping.
pub const MAX_MINOR_UNITS: i64 = 1_000_000_000_000;

/// `unit_minor × quantity`, when it is at most [`MAX_MINOR_UNITS`] (`None` when over it or when it
/// overflows).
pub fn bounded_product(unit_minor: i64, quantity: i64) -> Option<i64> {
    unit_minor
        .checked_mul(quantity)
        .filter(|product| *product <= MAX_MINOR_UNITS)
}

/// `a + b`, when it is at most [`MAX_MINOR_UNITS`] (`None` when over it or when it overflows).
pub fn bounded_sum(a: i64, b: i64) -> Option<i64> {
    a.checked_add(b).filter(|sum| *sum <= MAX_MINOR_UNITS)
}

/// Which amounts a field takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountRule {
    /// Zero or more minor units (a price: a free sample costs nothing).
    NonNegative,
    /// More than zero minor units (an amount moved: a charge, a refund).
    Positive,
}

impl Money {
    /// What is wrong with this money as the value of `prefix`, as (field path, description) pairs;
    /// empty when it is valid. The currency is an ISO 4217 code of three upper-case letters; the
    /// amount is integer minor units as `rule` says, and at most [`MAX_MINOR_UNITS`].
    pub fn problems(&self, prefix: &str, rule: AmountRule) -> Vec<(String, &'static str)> {
        let mut problems = Vec::new();
        let code = &self.currency_code;
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            problems.push((
                format!("{prefix}.currency_code"),
                "must be an ISO 4217 code of three upper-case letters, such as USD",
            ));
        }
        let amount = match rule {
            AmountRule::NonNegative if self.minor_units < 0 => Some("must not be negative"),
            AmountRule::Positive if self.minor_units <= 0 => Some("must be more than zero"),
            _ if self.minor_units > MAX_MINOR_UNITS => {
                Some("must be at most 1000000000000 (10^12) minor units")
            }
            AmountRule::NonNegative | AmountRule::Positive => None,
        };
        if let Some(description) = amount {
            problems.push((format!("{prefix}.minor_units"), description));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(currency_code: &str, minor_units: i64) -> Money {
        Money {
            currency_code: currency_code.into(),
            minor_units,
        }
    }

    fn fields(money: &Money, rule: AmountRule) -> Vec<String> {
        money
            .problems("price", rule)
            .into_iter()
            .map(|(path, _)| path)
            .collect()
    }

    #[test]
    fn the_currency_and_the_amount_are_named_apart() {
        assert!(fields(&money("USD", 0), AmountRule::NonNegative).is_empty());
        assert_eq!(
            fields(&money("USD", 0), AmountRule::Positive),
            ["price.minor_units"]
        );
        assert_eq!(
            fields(&money("usd", -1), AmountRule::NonNegative),
            ["price.currency_code", "price.minor_units"]
        );
        assert_eq!(
            fields(&money("EURO", 5), AmountRule::Positive),
            ["price.currency_code"]
        );
        assert!(fields(&money("USD", MAX_MINOR_UNITS), AmountRule::Positive).is_empty());
        for rule in [AmountRule::NonNegative, AmountRule::Positive] {
            for too_much in [MAX_MINOR_UNITS + 1, 6_148_914_691_236_517_206, i64::MAX] {
                assert_eq!(fields(&money("USD", too_much), rule), ["price.minor_units"]);
            }
        }
    }

    #[test]
    fn products_and_sums_over_the_bound_are_refused_not_wrapped() {
        assert_eq!(bounded_product(500, 3), Some(1500));
        assert_eq!(bounded_product(MAX_MINOR_UNITS, 1), Some(MAX_MINOR_UNITS));
        assert_eq!(bounded_product(MAX_MINOR_UNITS, 2), None);
        assert_eq!(bounded_product(6_148_914_691_236_517_206, 3), None);
        assert_eq!(bounded_sum(MAX_MINOR_UNITS - 1, 1), Some(MAX_MINOR_UNITS));
        assert_eq!(bounded_sum(MAX_MINOR_UNITS, 1), None);
        assert_eq!(bounded_sum(i64::MAX, 1), None);
    }
}
