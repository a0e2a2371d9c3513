//! Values across the edge, as the protobuf JSON mapping writes them: the [`Shape`] of each
//! protobuf value in GraphQL, protobuf values (prost-reflect) to GraphQL output values here, and
//! GraphQL input values to protobuf messages in `input`, by plans computed once when the schema
//! is built.

mod input;

pub use input::{
    InputError, InputFailure, InputField, InputKind, InputPlan, InputPlans, InputTarget, MaskPlan,
};

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::{Name, Value};
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor, ReflectMessage as _};

use crate::scalars;

/// How one protobuf value is written in GraphQL (everything but objects, which resolvers pass
/// on as the parent value of the next level).
#[derive(Debug, Clone)]
pub enum Shape {
    /// `bool` → `Boolean`.
    Bool,
    /// `int32`, `sint32`, `sfixed32` → `Int`.
    Int32,
    /// `uint32`, `fixed32` → `UInt32`.
    UInt32,
    /// `int64`, `sint64`, `sfixed64` → `Int64` (a string).
    Int64,
    /// `uint64`, `fixed64` → `UInt64` (a string).
    UInt64,
    /// `float`, `double` → `Float`.
    Float,
    /// `string` → `String` or `ID`.
    String,
    /// `bytes` → `Bytes` (base64).
    Bytes,
    /// An enum, without its prefix and without UNSPECIFIED.
    Enum(Arc<EnumNames>),
    /// A message shown as an object type.
    Object,
    /// `google.protobuf.Timestamp` → `DateTime`.
    Timestamp,
    /// `google.protobuf.Duration` → `Duration`.
    Duration,
    /// `google.protobuf.Struct`, `Value`, `ListValue`, `Any` → `JSON`.
    Json,
    /// `google.protobuf.Empty` → `Boolean` (always true).
    Empty,
    /// `google.protobuf.FieldMask` → `String` (comma-separated paths).
    FieldMask,
    /// `google.protobuf.*Value` → the nullable scalar of its `value`.
    Wrapper(Box<Shape>),
}

/// The GraphQL names of an enum's values.
#[derive(Debug)]
pub struct EnumNames {
    /// The GraphQL enum type.
    pub type_name: String,
    by_number: HashMap<i32, Name>,
    by_name: HashMap<String, i32>,
}

impl EnumNames {
    /// The names of `enum_`'s values: `ORDER_STATUS_PENDING` → `PENDING`; the zero
    /// `*_UNSPECIFIED` value is left out.
    pub fn new(enum_: &prost_reflect::EnumDescriptor) -> Self {
        let prefix = format!("{}_", screaming_snake(enum_.name()));
        let mut by_number = HashMap::new();
        let mut by_name = HashMap::new();
        for value in enum_.values() {
            if value.number() == 0 && value.name().ends_with("_UNSPECIFIED") {
                continue;
            }
            let name = value.name();
            let short = name
                .strip_prefix(&prefix)
                .filter(|rest| rest.starts_with(|c: char| c.is_ascii_alphabetic()))
                .unwrap_or(name);
            by_number
                .entry(value.number())
                .or_insert_with(|| Name::new(short));
            by_name.insert(short.to_owned(), value.number());
        }
        Self {
            type_name: enum_.name().to_owned(),
            by_number,
            by_name,
        }
    }

    /// The enum's GraphQL values in declaration order, each number once.
    pub fn items(
        &self,
        enum_: &prost_reflect::EnumDescriptor,
    ) -> Vec<(Name, prost_reflect::EnumValueDescriptor)> {
        let mut seen = std::collections::HashSet::new();
        enum_
            .values()
            .filter_map(|value| {
                let name = self.by_number.get(&value.number())?;
                seen.insert(value.number()).then(|| (name.clone(), value))
            })
            .collect()
    }
}

/// `OrderStatus` → `ORDER_STATUS`.
fn screaming_snake(name: &str) -> String {
    let mut out = String::new();
    for (index, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && index > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Whether a string field is shown as `ID`: `id`, `ids` and every `*_id` and `*_ids`.
pub fn is_id(field: &FieldDescriptor) -> bool {
    let name = field.name();
    name == "id" || name.ends_with("_id") || name == "ids" || name.ends_with("_ids")
}

/// The shape of a field's values (of one element, for repeated fields).
pub fn shape_of(kind: &Kind) -> Shape {
    match kind {
        Kind::Bool => Shape::Bool,
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Shape::Int32,
        Kind::Uint32 | Kind::Fixed32 => Shape::UInt32,
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Shape::Int64,
        Kind::Uint64 | Kind::Fixed64 => Shape::UInt64,
        Kind::Float | Kind::Double => Shape::Float,
        Kind::String => Shape::String,
        Kind::Bytes => Shape::Bytes,
        Kind::Enum(enum_) => Shape::Enum(Arc::new(EnumNames::new(enum_))),
        Kind::Message(message) => message_shape(message),
    }
}

/// The shape of a message: a well-known type's scalar, or an object.
pub fn message_shape(message: &MessageDescriptor) -> Shape {
    match message.full_name() {
        "google.protobuf.Timestamp" => Shape::Timestamp,
        "google.protobuf.Duration" => Shape::Duration,
        "google.protobuf.Struct"
        | "google.protobuf.Value"
        | "google.protobuf.ListValue"
        | "google.protobuf.Any" => Shape::Json,
        "google.protobuf.Empty" => Shape::Empty,
        "google.protobuf.FieldMask" => Shape::FieldMask,
        "google.protobuf.DoubleValue"
        | "google.protobuf.FloatValue"
        | "google.protobuf.Int64Value"
        | "google.protobuf.UInt64Value"
        | "google.protobuf.Int32Value"
        | "google.protobuf.UInt32Value"
        | "google.protobuf.BoolValue"
        | "google.protobuf.StringValue"
        | "google.protobuf.BytesValue" => match message.get_field_by_name("value") {
            Some(value) => Shape::Wrapper(Box::new(shape_of(&value.kind()))),
            None => Shape::Object,
        },
        _ => Shape::Object,
    }
}

/// A protobuf value as a GraphQL value, checked against its scalar. `Object` shapes are not
/// handled here.
pub fn output(shape: &Shape, value: &prost_reflect::Value) -> Result<Value, String> {
    use prost_reflect::Value as P;
    Ok(match (shape, value) {
        (Shape::Bool, P::Bool(b)) => Value::Boolean(*b),
        (Shape::Int32, P::I32(n)) => Value::Number((*n).into()),
        (Shape::UInt32, P::U32(n)) => Value::Number((*n).into()),
        (Shape::Int64, P::I64(n)) => scalars::int64(*n),
        (Shape::UInt64, P::U64(n)) => scalars::uint64(*n),
        (Shape::Float, P::F32(n)) => float(f64::from(*n))?,
        (Shape::Float, P::F64(n)) => float(*n)?,
        (Shape::String, P::String(text)) => Value::String(text.clone()),
        (Shape::Bytes, P::Bytes(bytes)) => scalars::bytes(bytes),
        (Shape::Enum(names), P::EnumNumber(number)) => match names.by_number.get(number) {
            Some(name) => Value::Enum(name.clone()),
            None if *number == 0 => {
                return Err(format!("the {} was not set", names.type_name));
            }
            None => return Err(format!("{} has no value {number}", names.type_name)),
        },
        (Shape::Timestamp, P::Message(message)) => {
            scalars::timestamp(&message.transcode_to().map_err(|e| e.to_string())?)?
        }
        (Shape::Duration, P::Message(message)) => {
            scalars::duration(&message.transcode_to().map_err(|e| e.to_string())?)?
        }
        (Shape::Json, P::Message(message)) => {
            let json = serde_json::to_value(message).map_err(|e| e.to_string())?;
            Value::from_json(json).map_err(|e| e.to_string())?
        }
        (Shape::Empty, _) => Value::Boolean(true),
        (Shape::FieldMask, P::Message(message)) => {
            let mask: prost_types::FieldMask = message.transcode_to().map_err(|e| e.to_string())?;
            Value::String(mask.paths.join(","))
        }
        (Shape::Wrapper(inner), P::Message(message)) => {
            let field = message
                .descriptor()
                .get_field_by_name("value")
                .ok_or("a wrapper without value")?;
            output(inner, &message.get_field(&field))?
        }
        (shape, value) => return Err(format!("cannot show {value:?} as {shape:?}")),
    })
}

fn float(value: f64) -> Result<Value, String> {
    serde_json::Number::from_f64(value)
        .map(Value::Number)
        .ok_or_else(|| format!("{value} is not a finite number"))
}
