//! The one definition of each identifier rule every service applies at its boundary, beside
//! [`Address::problems`](crate::r#type::v1::Address::problems) and
//! [`Money::problems`](crate::r#type::v1::Money::problems), so that an id or a SKU one service
//! accepts, the next accepts too.
//!
//! Each function answers what is wrong with a value, or `None` when it is valid; the caller names
//! the field.

/// The longest id of any resource (customer, order, payment, shipment, return, reservation), in
/// bytes. The services mint UUIDs (36 characters); anything longer than this cannot exist.
pub const MAX_ID_LEN: usize = 64;

/// The longest SKU, in bytes.
pub const MAX_SKU_LEN: usize = 64;

/// What is wrong with `value` as the id of a resource: required, and 1 to [`MAX_ID_LEN`] visible
/// ASCII characters (no spaces, no control characters). Whether it exists is the owner's answer.
pub fn id_problem(value: &str) -> Option<&'static str> {
    if value.is_empty() {
        Some("is required")
    } else if value.len() > MAX_ID_LEN || !value.bytes().all(|b| b.is_ascii_graphic()) {
        Some("must be 1 to 64 visible ASCII characters")
    } else {
        None
    }
}

/// What is wrong with `value` as a stock-keeping unit: required, and 1 to [`MAX_SKU_LEN`]
/// letters, digits, `-`, `_` or `.` (case-sensitive).
pub fn sku_problem(value: &str) -> Option<&'static str> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    if value.is_empty() {
        Some("is required")
    } else if value.len() > MAX_SKU_LEN || !value.bytes().all(allowed) {
        Some("must be 1 to 64 letters, digits, '-', '_' or '.'")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_visible_ascii_of_bounded_length() {
        assert_eq!(id_problem("0190b6e2-7c1a-7d4e-9f00-1a2b3c4d5e6f"), None);
        assert_eq!(id_problem(&"a".repeat(MAX_ID_LEN)), None);
        assert_eq!(id_problem(""), Some("is required"));
        for bad in ["a b", "a\u{7}", "é", &"a".repeat(MAX_ID_LEN + 1)] {
            assert!(id_problem(bad).is_some(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn a_sku_is_letters_digits_and_three_marks() {
        for good in ["MUG-1", "tea_2.0", &"A".repeat(MAX_SKU_LEN)] {
            assert_eq!(sku_problem(good), None, "{good:?}");
        }
        assert_eq!(sku_problem(""), Some("is required"));
        for bad in ["MUG 1", "MUG/1", "MÜG", &"A".repeat(MAX_SKU_LEN + 1)] {
            assert!(sku_problem(bad).is_some(), "{bad:?} must be refused");
        }
    }
}
