//! Values across the edge: protobuf values (prost-reflect) to GraphQL output values, and GraphQL
//! input values to protobuf messages, by plans computed once when the schema is built.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::{Name, Value};
use indexmap_like::ObjectMap;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage as _,
};

use crate::scalars;

/// GraphQL's object map (async-graphql re-exports indexmap through `Value::Object`).
mod indexmap_like {
    /// The map of a GraphQL input object.
    pub type ObjectMap =
        async_graphql::dynamic::indexmap::IndexMap<async_graphql::Name, async_graphql::Value>;
}

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

/// Why an input could not become a protobuf message: the GraphQL path of the bad value.
#[derive(Debug, Clone, PartialEq)]
pub struct InputError {
    /// Path segments below the argument (field names and list indexes).
    pub path: Vec<String>,
    /// What is wrong.
    pub message: String,
}

/// How to build one message from a GraphQL input object.
#[derive(Debug, Clone)]
pub struct InputPlan {
    /// The message built.
    pub message: MessageDescriptor,
    /// Its input fields.
    pub fields: Vec<InputField>,
    /// When this is an update request: the FieldMask field to fill from the supplied fields of
    /// `patch`.
    pub mask: Option<MaskPlan>,
}

/// The FieldMask derived from an update's input.
#[derive(Debug, Clone)]
pub struct MaskPlan {
    /// The request's `google.protobuf.FieldMask` field.
    pub mask_field: FieldDescriptor,
    /// The request field holding the resource.
    pub patch_field: FieldDescriptor,
    /// Its GraphQL name.
    pub patch_name: Name,
    /// Fields of the resource that name it and never go in the mask (id, sku).
    pub keys: Vec<String>,
}

/// One field of an input object.
#[derive(Debug, Clone)]
pub struct InputField {
    /// Its GraphQL name.
    pub name: Name,
    /// What it becomes.
    pub target: InputTarget,
}

/// What an input field becomes.
#[derive(Debug, Clone)]
pub enum InputTarget {
    /// A field of the message.
    Field {
        /// The field.
        field: FieldDescriptor,
        /// How each value converts.
        kind: InputKind,
    },
    /// A `@oneOf` input object whose one set member becomes one field of the oneof.
    Oneof(Vec<(Name, FieldDescriptor, InputKind)>),
}

/// How one input value converts.
#[derive(Debug, Clone)]
pub enum InputKind {
    /// A scalar or enum.
    Scalar(Shape),
    /// A message, by the key of its plan.
    Message(String),
    /// A map, as a list of `{key, value}` entries.
    Map {
        /// The key's shape.
        key: Shape,
        /// The value's conversion.
        value: Box<InputKind>,
    },
}

/// Every input plan of the schema, by key.
#[derive(Debug, Default)]
pub struct InputPlans(pub HashMap<String, InputPlan>);

impl InputPlans {
    /// Builds the message of plan `key` from `object`. `path` is where the object is.
    pub fn build(
        &self,
        key: &str,
        object: &ObjectMap,
        path: &mut Vec<String>,
    ) -> Result<DynamicMessage, InputError> {
        let plan = self.0.get(key).ok_or_else(|| InputError {
            path: path.clone(),
            message: format!("no input plan {key}"),
        })?;
        let mut message = DynamicMessage::new(plan.message.clone());
        for input in &plan.fields {
            let Some(value) = object.get(&input.name) else {
                continue;
            };
            path.push(input.name.to_string());
            match &input.target {
                InputTarget::Field { field, kind } => {
                    if !matches!(value, Value::Null) {
                        let converted = self.field_value(field, kind, value, path)?;
                        message.set_field(field, converted);
                    }
                }
                InputTarget::Oneof(members) => {
                    if let Value::Object(choice) = value {
                        for (name, field, kind) in members {
                            if let Some(member) =
                                choice.get(name).filter(|v| !matches!(v, Value::Null))
                            {
                                path.push(name.to_string());
                                let converted = self.field_value(field, kind, member, path)?;
                                path.pop();
                                message.set_field(field, converted);
                            }
                        }
                    }
                }
            }
            path.pop();
        }
        if let Some(mask) = &plan.mask
            && let Some(Value::Object(patch)) = object.get(&mask.patch_name)
        {
            let patch_plan = match plan.fields.iter().find_map(|input| match &input.target {
                InputTarget::Field {
                    field,
                    kind: InputKind::Message(key),
                } if field == &mask.patch_field => Some(key),
                _ => None,
            }) {
                Some(key) => self.0.get(key),
                None => None,
            };
            if let Some(patch_plan) = patch_plan {
                let paths: Vec<String> = patch_plan
                    .fields
                    .iter()
                    .filter(|input| patch.contains_key(&input.name))
                    .filter_map(|input| match &input.target {
                        InputTarget::Field { field, .. } => Some(field.name().to_owned()),
                        InputTarget::Oneof(_) => None,
                    })
                    .filter(|name| !mask.keys.contains(name))
                    .collect();
                let field_mask = prost_types::FieldMask { paths };
                let mut dynamic =
                    DynamicMessage::new(mask.mask_field.kind().as_message().cloned().ok_or_else(
                        || InputError {
                            path: path.clone(),
                            message: "update_mask is not a message".to_owned(),
                        },
                    )?);
                dynamic
                    .transcode_from(&field_mask)
                    .map_err(|error| InputError {
                        path: path.clone(),
                        message: error.to_string(),
                    })?;
                message.set_field(&mask.mask_field, prost_reflect::Value::Message(dynamic));
            }
        }
        Ok(message)
    }

    fn field_value(
        &self,
        field: &FieldDescriptor,
        kind: &InputKind,
        value: &Value,
        path: &mut Vec<String>,
    ) -> Result<prost_reflect::Value, InputError> {
        if let InputKind::Map {
            key,
            value: value_kind,
        } = kind
        {
            let entries = as_list(value);
            let mut map = HashMap::new();
            let entry = field.kind();
            let entry = entry
                .as_message()
                .ok_or_else(|| error(path, "a map without entries"))?;
            let value_field = entry.map_entry_value_field();
            for (index, item) in entries.iter().enumerate() {
                path.push(index.to_string());
                let Value::Object(item) = item else {
                    return Err(error(path, "a map entry must be an object"));
                };
                let key_value = item
                    .get("key")
                    .ok_or_else(|| error(path, "a map entry needs a key"))?;
                let map_key = map_key(key, key_value).ok_or_else(|| error(path, "bad map key"))?;
                let entry_value = item
                    .get("value")
                    .ok_or_else(|| error(path, "a map entry needs a value"))?;
                let converted = self.single(&value_field, value_kind, entry_value, path)?;
                map.insert(map_key, converted);
                path.pop();
            }
            return Ok(prost_reflect::Value::Map(map));
        }
        if field.is_list() {
            let mut list = Vec::new();
            for (index, item) in as_list(value).iter().enumerate() {
                path.push(index.to_string());
                list.push(self.single(field, kind, item, path)?);
                path.pop();
            }
            return Ok(prost_reflect::Value::List(list));
        }
        self.single(field, kind, value, path)
    }

    fn single(
        &self,
        field: &FieldDescriptor,
        kind: &InputKind,
        value: &Value,
        path: &mut Vec<String>,
    ) -> Result<prost_reflect::Value, InputError> {
        match kind {
            // An `ID` takes an integer too, as GraphQL's input coercion says.
            InputKind::Scalar(Shape::String)
                if is_id(field)
                    && let Value::Number(number) = value
                    && number.is_i64() =>
            {
                Ok(prost_reflect::Value::String(number.to_string()))
            }
            InputKind::Scalar(shape) => {
                input_scalar(shape, &field.kind(), value).ok_or_else(|| {
                    error(
                        path,
                        &format!(
                            "{value} is not a valid {}",
                            field.kind().as_message().map_or("value", |m| m.name())
                        ),
                    )
                })
            }
            InputKind::Message(key) => match value {
                Value::Object(object) => Ok(prost_reflect::Value::Message(
                    self.build(key, object, path)?,
                )),
                _ => Err(error(path, "expected an object")),
            },
            InputKind::Map { .. } => Err(error(path, "a map inside a map")),
        }
    }
}

fn as_list(value: &Value) -> Vec<Value> {
    match value {
        Value::List(items) => items.clone(),
        Value::Null => Vec::new(),
        // GraphQL coerces a single value to a list of one.
        other => vec![other.clone()],
    }
}

fn error(path: &[String], message: &str) -> InputError {
    InputError {
        path: path.to_vec(),
        message: message.to_owned(),
    }
}

fn map_key(shape: &Shape, value: &Value) -> Option<MapKey> {
    Some(match (shape, value) {
        (Shape::String, Value::String(text)) => MapKey::String(text.clone()),
        (Shape::Bool, Value::Boolean(b)) => MapKey::Bool(*b),
        (Shape::Int32, value) => MapKey::I32(i32::try_from(scalars::parse_i64(value)?).ok()?),
        (Shape::Int64, value) => MapKey::I64(scalars::parse_i64(value)?),
        (Shape::UInt32, value) => MapKey::U32(scalars::parse_u32(value)?),
        (Shape::UInt64, value) => MapKey::U64(scalars::parse_u64(value)?),
        _ => return None,
    })
}

/// A GraphQL scalar input as a protobuf value of `kind`.
fn input_scalar(shape: &Shape, kind: &Kind, value: &Value) -> Option<prost_reflect::Value> {
    use prost_reflect::Value as P;
    Some(match (shape, kind) {
        (Shape::Bool, _) => match value {
            Value::Boolean(b) => P::Bool(*b),
            _ => return None,
        },
        (Shape::Int32, Kind::Int32 | Kind::Sint32 | Kind::Sfixed32) => {
            P::I32(i32::try_from(scalars::parse_i64(value)?).ok()?)
        }
        (Shape::UInt32, _) => P::U32(scalars::parse_u32(value)?),
        (Shape::Int64, _) => P::I64(scalars::parse_i64(value)?),
        (Shape::UInt64, _) => P::U64(scalars::parse_u64(value)?),
        (Shape::Float, Kind::Float) => match value {
            // A `float` field holds what fits: the nearest f32, as the JSON mapping reads it.
            Value::Number(number) => P::F32(number.as_f64()? as f32),
            _ => return None,
        },
        (Shape::Float, _) => match value {
            Value::Number(number) => P::F64(number.as_f64()?),
            _ => return None,
        },
        (Shape::String, _) => match value {
            Value::String(text) => P::String(text.clone()),
            _ => return None,
        },
        (Shape::Bytes, _) => P::Bytes(scalars::parse_bytes(value)?.into()),
        (Shape::Enum(names), _) => match value {
            Value::Enum(name) => P::EnumNumber(*names.by_name.get(name.as_str())?),
            Value::String(name) => P::EnumNumber(*names.by_name.get(name.as_str())?),
            _ => return None,
        },
        (Shape::Timestamp, Kind::Message(message)) => {
            let stamp = scalars::parse_timestamp(value)?;
            let mut dynamic = DynamicMessage::new(message.clone());
            dynamic.transcode_from(&stamp).ok()?;
            P::Message(dynamic)
        }
        (Shape::Duration, Kind::Message(message)) => {
            let duration = scalars::parse_duration(value)?;
            let mut dynamic = DynamicMessage::new(message.clone());
            dynamic.transcode_from(&duration).ok()?;
            P::Message(dynamic)
        }
        (Shape::FieldMask, Kind::Message(message)) => {
            let Value::String(text) = value else {
                return None;
            };
            let mask = prost_types::FieldMask {
                paths: text
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect(),
            };
            let mut dynamic = DynamicMessage::new(message.clone());
            dynamic.transcode_from(&mask).ok()?;
            P::Message(dynamic)
        }
        (Shape::Json, Kind::Message(message)) => {
            let json = value.clone().into_json().ok()?;
            let dynamic = DynamicMessage::deserialize(message.clone(), json).ok()?;
            P::Message(dynamic)
        }
        (Shape::Empty, Kind::Message(message)) => P::Message(DynamicMessage::new(message.clone())),
        (Shape::Wrapper(inner), Kind::Message(message)) => {
            let field = message.get_field_by_name("value")?;
            let inner = input_scalar(inner, &field.kind(), value)?;
            let mut dynamic = DynamicMessage::new(message.clone());
            dynamic.set_field(&field, inner);
            P::Message(dynamic)
        }
        _ => return None,
    })
}
