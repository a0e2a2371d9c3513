//! The one definition of a valid shipping address, used by every service that takes one (orders
//! at PlaceOrder, fulfillment at CreateShipment), so an address one service accepts is never
//! refused by the next.

use crate::r#type::v1::Address;

/// The longest value of any address field, in characters.
pub const MAX_FIELD_LEN: usize = 200;

impl Address {
    /// What is wrong with this address as a shipping address, as (field path under `prefix`,
    /// description) pairs; empty when it is valid. Required: `recipient`, `line1`, `city`, and
    /// `country_code` as ISO 3166-1 alpha-2 in upper case. `line2`, `region` and `postal_code` are
    /// optional (not every country has postal codes). No field is overlong or holds control
    /// characters.
    pub fn problems(&self, prefix: &str) -> Vec<(String, &'static str)> {
        let mut problems = Vec::new();
        let fields = [
            ("recipient", &self.recipient, true),
            ("line1", &self.line1, true),
            ("line2", &self.line2, false),
            ("city", &self.city, true),
            ("region", &self.region, false),
            ("postal_code", &self.postal_code, false),
        ];
        for (name, value, required) in fields {
            let path = format!("{prefix}.{name}");
            if required && value.trim().is_empty() {
                problems.push((path, "is required"));
            } else if value.chars().count() > MAX_FIELD_LEN {
                problems.push((path, "must be at most 200 characters"));
            } else if value.chars().any(char::is_control) {
                problems.push((path, "must not contain control characters"));
            }
        }
        let country = &self.country_code;
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
            problems.push((
                format!("{prefix}.country_code"),
                "must be an ISO 3166-1 alpha-2 code in upper case, such as US or DE",
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address() -> Address {
        Address {
            recipient: "Ada Lovelace".into(),
            line1: "12 St James's Square".into(),
            city: "London".into(),
            country_code: "GB".into(),
            ..Default::default()
        }
    }

    #[test]
    fn each_bad_field_is_named() {
        assert!(address().problems("a").is_empty(), "no postal code is fine");
        let cases = [
            (
                Address {
                    recipient: " ".into(),
                    ..address()
                },
                "a.recipient",
            ),
            (
                Address {
                    country_code: "gb".into(),
                    ..address()
                },
                "a.country_code",
            ),
            (
                Address {
                    country_code: "GBR".into(),
                    ..address()
                },
                "a.country_code",
            ),
            (
                Address {
                    city: String::new(),
                    ..address()
                },
                "a.city",
            ),
            (
                Address {
                    line2: "x".repeat(201),
                    ..address()
                },
                "a.line2",
            ),
            (
                Address {
                    postal_code: "SW1\n".into(),
                    ..address()
                },
                "a.postal_code",
            ),
        ];
        for (bad, field) in cases {
            let fields: Vec<_> = bad
                .problems("a")
                .into_iter()
                .map(|(path, _)| path)
                .collect();
            assert_eq!(fields, [field]);
        }
    }
}
