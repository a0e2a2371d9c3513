//! The custom scalars, aligned with the protobuf JSON mapping: 64-bit integers as strings (a
//! JSON number is accepted on input), `DateTime` as RFC 3339, `Duration` as `"1.5s"`, `Bytes` as
//! base64, `JSON` for `google.protobuf.Struct`/`Value`/`ListValue`.
//!
//! Each scalar has one validator, used on input (by the schema) and on output (by the resolvers,
//! since the dynamic schema never checks what a resolver returns).

use async_graphql::Value;
use async_graphql::dynamic::Scalar;
use base64::Engine as _;

/// `int64`, `sint64`, `sfixed64`.
pub const INT64: &str = "Int64";
/// `uint64`, `fixed64`.
pub const UINT64: &str = "UInt64";
/// `uint32`, `fixed32` (wider than GraphQL's `Int`).
pub const UINT32: &str = "UInt32";
/// `google.protobuf.Timestamp`.
pub const DATE_TIME: &str = "DateTime";
/// `google.protobuf.Duration`.
pub const DURATION: &str = "Duration";
/// `bytes`.
pub const BYTES: &str = "Bytes";
/// `google.protobuf.Struct`, `Value`, `ListValue`, `Any`.
pub const JSON: &str = "JSON";

/// The custom scalars, for the schema.
pub fn all() -> Vec<Scalar> {
    vec![
        Scalar::new(INT64)
            .description("A signed 64-bit integer, as a decimal string (a JSON number is also accepted on input), as in the protobuf JSON mapping.")
            .validator(|value| parse_i64(value).is_some()),
        Scalar::new(UINT64)
            .description("An unsigned 64-bit integer, as a decimal string (a JSON number is also accepted on input), as in the protobuf JSON mapping.")
            .validator(|value| parse_u64(value).is_some()),
        Scalar::new(UINT32)
            .description("An unsigned 32-bit integer, 0 to 4294967295.")
            .validator(|value| parse_u32(value).is_some()),
        Scalar::new(DATE_TIME)
            .description("A point in time as an RFC 3339 string in UTC, e.g. \"2026-11-25T08:36:22.5Z\" (google.protobuf.Timestamp).")
            .specified_by_url("https://datatracker.ietf.org/doc/html/rfc3339")
            .validator(|value| parse_timestamp(value).is_some()),
        Scalar::new(DURATION)
            .description("A span of time as seconds with an \"s\" suffix, e.g. \"1.5s\" (google.protobuf.Duration).")
            .validator(|value| parse_duration(value).is_some()),
        Scalar::new(BYTES)
            .description("Binary data as a standard base64 string.")
            .validator(|value| parse_bytes(value).is_some()),
        Scalar::new(JSON)
            .description("Any JSON value (google.protobuf.Struct, Value or ListValue).")
            .validator(|_| true),
    ]
}

/// An `Int64` input: a JSON number or a decimal string.
pub fn parse_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

/// A `UInt64` input.
pub fn parse_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

/// A `UInt32` input.
pub fn parse_u32(value: &Value) -> Option<u32> {
    parse_u64(value).and_then(|number| u32::try_from(number).ok())
}

/// The seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the range of RFC 3339 and of
/// `google.protobuf.Timestamp`.
const TIMESTAMP_SECONDS: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;

/// A `DateTime` input.
pub fn parse_timestamp(value: &Value) -> Option<prost_types::Timestamp> {
    match value {
        Value::String(text) => text.parse().ok().filter(valid_timestamp),
        _ => None,
    }
}

fn valid_timestamp(value: &prost_types::Timestamp) -> bool {
    TIMESTAMP_SECONDS.contains(&value.seconds) && (0..1_000_000_000).contains(&value.nanos)
}

/// A `Duration` input.
pub fn parse_duration(value: &Value) -> Option<prost_types::Duration> {
    match value {
        Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

/// A `Bytes` input.
pub fn parse_bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::String(text) => base64::engine::general_purpose::STANDARD.decode(text).ok(),
        _ => None,
    }
}

/// The output of an `Int64`.
pub fn int64(value: i64) -> Value {
    Value::String(value.to_string())
}

/// The output of a `UInt64`.
pub fn uint64(value: u64) -> Value {
    Value::String(value.to_string())
}

/// The output of a `DateTime`, checked like an input: a timestamp outside the range RFC 3339
/// can write (years 1 to 9999) is an error, never a malformed string.
pub fn timestamp(value: &prost_types::Timestamp) -> Result<Value, String> {
    if !valid_timestamp(value) {
        return Err(format!(
            "the timestamp {}s is not a valid DateTime",
            value.seconds
        ));
    }
    let text = Value::String(value.to_string());
    parse_timestamp(&text)
        .map(|_| text)
        .ok_or_else(|| format!("the timestamp {}s is not a valid DateTime", value.seconds))
}

/// The output of a `Duration`, checked like an input.
pub fn duration(value: &prost_types::Duration) -> Result<Value, String> {
    let text = Value::String(value.to_string());
    parse_duration(&text)
        .map(|_| text)
        .ok_or_else(|| format!("the duration {}s is not a valid Duration", value.seconds))
}

/// The output of `Bytes`.
pub fn bytes(value: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(value))
}

/// The number of decimal places of a currency (ISO 4217 minor-unit exponent). Currencies not
/// listed have two, as most do.
pub fn currency_exponent(code: &str) -> u32 {
    match code {
        // No minor unit.
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        // Three decimals.
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        // Four decimals.
        "CLF" | "UYW" => 4,
        _ => 2,
    }
}

/// `minor_units` of `currency_code` as a decimal string: 1999 USD → "19.99", 500 JPY → "500".
pub fn money_amount(currency_code: &str, minor_units: i64) -> String {
    let exponent = currency_exponent(currency_code);
    if exponent == 0 {
        return minor_units.to_string();
    }
    let sign = if minor_units < 0 { "-" } else { "" };
    let magnitude = minor_units.unsigned_abs();
    let scale = 10u64.pow(exponent);
    format!(
        "{sign}{}.{:0width$}",
        magnitude / scale,
        magnitude % scale,
        width = exponent as usize
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixty_four_bit_integers_accept_numbers_and_strings_and_emit_strings() {
        let big = "9007199254740993"; // 2^53 + 1: a JSON number would lose it.
        assert_eq!(
            parse_i64(&Value::String(big.into())),
            Some(9_007_199_254_740_993)
        );
        assert_eq!(parse_i64(&Value::Number(42.into())), Some(42));
        assert_eq!(parse_i64(&Value::String("4.2".into())), None);
        assert_eq!(parse_u64(&Value::String("-1".into())), None);
        assert_eq!(int64(9_007_199_254_740_993), Value::String(big.into()));
        assert_eq!(parse_u32(&Value::Number(4_294_967_296_u64.into())), None);
    }

    #[test]
    fn times_and_durations_round_trip() {
        let stamp =
            parse_timestamp(&Value::String("2026-11-25T08:36:22.5Z".into())).expect("parse");
        assert_eq!(
            timestamp(&stamp).expect("valid"),
            Value::String("2026-11-25T08:36:22.500Z".into())
        );
        assert!(parse_timestamp(&Value::String("yesterday".into())).is_none());
        let span = parse_duration(&Value::String("1.5s".into())).expect("parse");
        assert_eq!(
            duration(&span).expect("valid"),
            Value::String("1.500s".into())
        );
        let out_of_range = prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert!(timestamp(&out_of_range).is_err());
    }

    #[test]
    fn money_amounts_use_the_currency_exponent() {
        assert_eq!(money_amount("USD", 1999), "19.99");
        assert_eq!(money_amount("EUR", 5), "0.05");
        assert_eq!(money_amount("JPY", 500), "500");
        assert_eq!(money_amount("KWD", 1234), "1.234");
        assert_eq!(money_amount("USD", 0), "0.00");
    }
}
