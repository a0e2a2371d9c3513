//! `google.protobuf.Struct` ↔ JSON, for event payloads: the producers build them as JSON, the
//! ledger stores them as JSON text and serves them as `Struct`.
//!
//! Numbers in a `Struct` are doubles: an integral number that a double holds exactly (up to 2^53)
//! comes back as a JSON integer, anything else as a JSON float.

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};

/// The largest integer a double holds exactly.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_992.0;

/// A JSON object as a `Struct`. Anything but an object is wrapped as `{"value": ...}`, and `null`
/// is the empty `Struct`.
pub fn struct_from_json(json: serde_json::Value) -> Struct {
    match json {
        serde_json::Value::Object(fields) => Struct {
            fields: fields
                .into_iter()
                .map(|(name, value)| (name, value_from_json(value)))
                .collect(),
        },
        serde_json::Value::Null => Struct::default(),
        other => Struct {
            fields: [("value".to_owned(), value_from_json(other))].into(),
        },
    }
}

/// A `Struct` as a JSON object.
pub fn json_from_struct(message: &Struct) -> serde_json::Value {
    serde_json::Value::Object(
        message
            .fields
            .iter()
            .map(|(name, value)| (name.clone(), json_from_value(value)))
            .collect(),
    )
}

fn value_from_json(json: serde_json::Value) -> Value {
    let kind = match json {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(flag) => Kind::BoolValue(flag),
        serde_json::Value::Number(number) => Kind::NumberValue(number.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(text) => Kind::StringValue(text),
        serde_json::Value::Array(items) => Kind::ListValue(ListValue {
            values: items.into_iter().map(value_from_json).collect(),
        }),
        object @ serde_json::Value::Object(_) => Kind::StructValue(struct_from_json(object)),
    };
    Value { kind: Some(kind) }
}

fn json_from_value(value: &Value) -> serde_json::Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(flag)) => serde_json::Value::Bool(*flag),
        Some(Kind::NumberValue(number)) => json_number(*number),
        Some(Kind::StringValue(text)) => serde_json::Value::String(text.clone()),
        Some(Kind::ListValue(list)) => {
            serde_json::Value::Array(list.values.iter().map(json_from_value).collect())
        }
        Some(Kind::StructValue(message)) => json_from_struct(message),
    }
}

// The cast below is exact: the value is checked integral and within ±2^53 first.
fn json_number(number: f64) -> serde_json::Value {
    if number.fract() == 0.0 && number.abs() <= MAX_SAFE_INTEGER {
        serde_json::Value::from(number as i64)
    } else {
        // NaN and infinities have no JSON form.
        serde_json::Number::from_f64(number).map_or(serde_json::Value::Null, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_round_trip() {
        let json = serde_json::json!({
            "sku": "MUG",
            "quantity": 3,
            "price": {"currency_code": "USD", "minor_units": 1299},
            "ratio": 0.5,
            "active": true,
            "lines": [{"sku": "A", "quantity": 1}, null],
            "note": null,
        });
        assert_eq!(json_from_struct(&struct_from_json(json.clone())), json);
    }

    #[test]
    fn non_objects_are_wrapped() {
        assert_eq!(
            json_from_struct(&struct_from_json(serde_json::json!([1, 2]))),
            serde_json::json!({"value": [1, 2]})
        );
        assert_eq!(struct_from_json(serde_json::Value::Null), Struct::default());
    }
}
