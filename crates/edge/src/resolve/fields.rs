//! Fields read out of their parent message: scalars as the protobuf JSON mapping writes them
//! (null when a field with presence is not set, the zero value otherwise), lists element by
//! element, messages passed on as the next parent, maps as entry lists, oneofs as unions.

use std::borrow::Cow;

use async_graphql::Value;
use async_graphql::dynamic::{FieldFuture, FieldValue, ResolverContext};
use prost_reflect::{DynamicMessage, FieldDescriptor};

use super::{fail, parent_message, unshowable};
use crate::convert::{Shape, output, shape_of};
use crate::fault::Fault;
use crate::scalars;

/// An entry of a protobuf map, as the parent of its entry object.
struct MapEntry {
    key: Value,
    value: prost_reflect::Value,
}

/// The value of `field` in its parent.
pub(super) fn field<'a>(
    ctx: ResolverContext<'a>,
    field: &FieldDescriptor,
    shape: &Shape,
) -> FieldFuture<'a> {
    match parent_message(&ctx, "the message of a field") {
        Ok(parent) => field_value(parent, field, shape),
        Err(fault) => fail(fault),
    }
}

/// A map field as its entries, sorted by key.
pub(super) fn map<'a>(ctx: ResolverContext<'a>, field: &FieldDescriptor) -> FieldFuture<'a> {
    let parent = match parent_message(&ctx, "the message of a map") {
        Ok(parent) => parent,
        Err(fault) => return fail(fault),
    };
    let Some(key_field) = field
        .kind()
        .as_message()
        .map(|entry| entry.map_entry_key_field())
    else {
        return fail(Fault::Unwired("the entries of a map"));
    };
    let key_shape = shape_of(&key_field.kind());
    let mut entries = Vec::new();
    if let prost_reflect::Value::Map(map) = parent.get_field(field).as_ref() {
        let mut sorted: Vec<_> = map.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        for (key, value) in sorted {
            let key = prost_reflect::Value::from(key.clone());
            let key = match output(&key_shape, &key) {
                Ok(key) => key,
                Err(error) => return fail(unshowable(error)),
            };
            entries.push(FieldValue::owned_any(MapEntry {
                key,
                value: value.clone(),
            }));
        }
    }
    FieldFuture::Value(Some(FieldValue::list(entries)))
}

/// The key of a map entry.
pub(super) fn entry_key(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    match ctx.parent_value.downcast_ref::<MapEntry>() {
        Some(entry) => FieldFuture::from_value(Some(entry.key.clone())),
        None => fail(Fault::Unwired("the entry of a map key")),
    }
}

/// The value of a map entry.
pub(super) fn entry_value<'a>(ctx: ResolverContext<'a>, shape: &Shape) -> FieldFuture<'a> {
    match ctx.parent_value.downcast_ref::<MapEntry>() {
        Some(entry) => single(&entry.value, shape),
        None => fail(Fault::Unwired("the entry of a map value")),
    }
}

/// The member of a oneof that is set, as its union member (null when none is).
pub(super) fn oneof<'a>(
    ctx: ResolverContext<'a>,
    members: &[(FieldDescriptor, String, bool)],
) -> FieldFuture<'a> {
    let parent = match parent_message(&ctx, "the message of a oneof") {
        Ok(parent) => parent,
        Err(fault) => return fail(fault),
    };
    for (member, type_name, wrapped) in members {
        if !parent.has_field(member) {
            continue;
        }
        let value = if *wrapped {
            FieldValue::borrowed_any(parent)
        } else {
            match parent.get_field(member) {
                Cow::Borrowed(prost_reflect::Value::Message(message)) => {
                    FieldValue::borrowed_any(message)
                }
                _ => return fail(Fault::Unwired("the message of a oneof member")),
            }
        };
        return FieldFuture::Value(Some(value.with_type(type_name.clone())));
    }
    FieldFuture::Value(None)
}

/// `Money.amount`: `minor_units` of `currency_code` as a decimal string.
pub(super) fn money_amount<'a>(
    ctx: ResolverContext<'a>,
    currency_code: &FieldDescriptor,
    minor_units: &FieldDescriptor,
) -> FieldFuture<'a> {
    let money = match parent_message(&ctx, "the Money of an amount") {
        Ok(money) => money,
        Err(fault) => return fail(fault),
    };
    // Both fields were checked for their kinds when the schema was built.
    let code = money.get_field(currency_code);
    let minor = money.get_field(minor_units);
    match (code.as_str(), minor.as_i64()) {
        (Some(code), Some(minor)) => {
            FieldFuture::from_value(Some(Value::String(scalars::money_amount(code, minor))))
        }
        _ => fail(Fault::Unwired(
            "the currency_code and minor_units of a Money",
        )),
    }
}

/// The value of `field` in `parent`: null when a field with presence is not set, the zero value
/// otherwise; lists element by element; messages passed on as the next parent.
fn field_value<'a>(
    parent: &'a DynamicMessage,
    field: &FieldDescriptor,
    shape: &Shape,
) -> FieldFuture<'a> {
    if !field.is_list() && field.supports_presence() && !parent.has_field(field) {
        return FieldFuture::Value(None);
    }
    match parent.get_field(field) {
        Cow::Borrowed(value) => match value {
            prost_reflect::Value::List(items) => {
                let mut values = Vec::with_capacity(items.len());
                for item in items {
                    match single_value(item, shape) {
                        Ok(value) => values.push(value),
                        Err(error) => return fail(error),
                    }
                }
                FieldFuture::Value(Some(FieldValue::list(values)))
            }
            value => single(value, shape),
        },
        Cow::Owned(value) => match (value, shape) {
            (prost_reflect::Value::List(_), _) => {
                FieldFuture::Value(Some(FieldValue::list(Vec::<FieldValue>::new())))
            }
            (value, Shape::Object) => match value {
                prost_reflect::Value::Message(message) => {
                    FieldFuture::Value(Some(FieldValue::owned_any(message)))
                }
                _ => fail(Fault::Unwired("the message of an object field")),
            },
            (value, shape) => match output(shape, &value) {
                Ok(value) => FieldFuture::from_value(Some(value)),
                Err(error) => fail(unshowable(error)),
            },
        },
    }
}

fn single<'a>(value: &'a prost_reflect::Value, shape: &Shape) -> FieldFuture<'a> {
    match single_value(value, shape) {
        Ok(value) => FieldFuture::Value(Some(value)),
        Err(error) => fail(error),
    }
}

fn single_value<'a>(
    value: &'a prost_reflect::Value,
    shape: &Shape,
) -> Result<FieldValue<'a>, async_graphql::Error> {
    match (shape, value) {
        (Shape::Object, prost_reflect::Value::Message(message)) => {
            Ok(FieldValue::borrowed_any(message))
        }
        (Shape::Object, _) => Err(Fault::Unwired("the message of an object field").into()),
        (shape, value) => output(shape, value)
            .map(FieldValue::value)
            .map_err(unshowable),
    }
}
