//! The one definition of valid money, used by every service that takes an amount (inventory's
//! prices, payments' authorisations and refunds), so the same currency rule has the same words
//! everywhere.

use crate::r#type::v1::Money;

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
    /// amount is integer minor units as `rule` says.
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
    }
}
