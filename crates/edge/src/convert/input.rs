//! GraphQL input values to protobuf messages, by the input plans the schema builder made: a
//! field per input field, a oneof member per `@oneOf` input, map entries from `{key, value}`
//! lists, and an update's FieldMask from the fields its patch input gives.

use std::collections::HashMap;

use async_graphql::{Name, Value};
use indexmap_like::ObjectMap;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor};

use super::{Shape, is_id};
use crate::fault::Fault;
use crate::scalars;

/// GraphQL's object map (async-graphql re-exports indexmap through `Value::Object`).
mod indexmap_like {
    /// The map of a GraphQL input object.
    pub type ObjectMap =
        async_graphql::dynamic::indexmap::IndexMap<async_graphql::Name, async_graphql::Value>;
}

/// Why an input could not become a protobuf message: the GraphQL path of the bad value.
#[derive(Debug, Clone, PartialEq)]
pub struct InputError {
    /// Path segments below the argument (field names and list indexes).
    pub path: Vec<String>,
    /// What is wrong.
    pub message: String,
}

/// Why an input could not become a protobuf message: the client's bad value, or a plan the
/// edge made wrong.
#[derive(Debug)]
pub enum InputFailure {
    /// The client's value does not fit.
    Input(InputError),
    /// The edge's own fault.
    Fault(Fault),
}

/// The fault of an input plan made wrong.
fn misplanned(what: impl Into<String>) -> InputFailure {
    InputFailure::Fault(Fault::InputMisplanned(what.into()))
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
    ) -> Result<DynamicMessage, InputFailure> {
        let plan = self
            .0
            .get(key)
            .ok_or_else(|| misplanned(format!("no input plan {key}")))?;
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
                let mask_message = mask
                    .mask_field
                    .kind()
                    .as_message()
                    .cloned()
                    .ok_or_else(|| misplanned("the update mask is not a message"))?;
                let mut dynamic = DynamicMessage::new(mask_message);
                dynamic
                    .transcode_from(&field_mask)
                    .map_err(|error| misplanned(format!("the update mask: {error}")))?;
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
    ) -> Result<prost_reflect::Value, InputFailure> {
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
                .ok_or_else(|| misplanned("a map without entries"))?;
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
    ) -> Result<prost_reflect::Value, InputFailure> {
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
            InputKind::Map { .. } => Err(misplanned("a map inside a map")),
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

/// The client's bad value at `path`.
fn error(path: &[String], message: &str) -> InputFailure {
    InputFailure::Input(InputError {
        path: path.to_vec(),
        message: message.to_owned(),
    })
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
