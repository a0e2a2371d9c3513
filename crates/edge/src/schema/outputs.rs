//! Output types: an object type per output message (a message with nothing to show is a
//! `Boolean`), an enum per proto enum (without its prefix and without UNSPECIFIED), a union per
//! real oneof (scalar members, and members sharing a type, get a wrapper object), an entry
//! object per map, and `Money.amount` computed from the minor units.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_graphql::dynamic::{Enum, EnumItem, Field, Object, TypeRef, Union};
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};

use super::{Builder, type_name};
use crate::convert::{EnumNames, Shape, is_id, message_shape, shape_of};
use crate::plan::Prefetch;
use crate::plan::catalog::{CatalogError, camel_case, pascal_case};
use crate::plan::reads::FieldRead;
use crate::resolve::Resolver;
use crate::scalars;

/// The full name of the shared money type, which gets a computed `amount`.
const MONEY: &str = "crowdcrunch.type.v1.Money";

impl Builder<'_> {
    pub(super) fn enum_type(
        &mut self,
        enum_: &prost_reflect::EnumDescriptor,
    ) -> Result<String, CatalogError> {
        let name = type_name(enum_.full_name(), enum_.package_name());
        if self.enums.contains_key(&name) {
            return Ok(name);
        }
        self.claim(&name, enum_.full_name())?;
        let names = EnumNames::new(enum_);
        let mut graphql = Enum::new(&name);
        if let Some(doc) = self.catalog.enum_doc(enum_) {
            graphql = graphql.description(doc);
        }
        let items = names.items(enum_);
        if items.is_empty() {
            return Err(CatalogError(format!(
                "{} has no value but UNSPECIFIED",
                enum_.full_name()
            )));
        }
        for (item, value) in items {
            let mut item = EnumItem::new(item.as_str());
            if let Some(doc) = self.catalog.enum_value_doc(&value) {
                item = item.description(doc);
            }
            graphql = graphql.item(item);
        }
        self.enums.insert(name.clone(), graphql);
        Ok(name)
    }

    /// The GraphQL type of one value of `kind` in output, with its shape.
    pub(super) fn output_kind(
        &mut self,
        kind: &Kind,
        field: Option<&FieldDescriptor>,
    ) -> Result<(String, Shape), CatalogError> {
        let shape = shape_of(kind);
        let name = match (&shape, kind) {
            (Shape::Bool | Shape::Empty, _) => TypeRef::BOOLEAN.to_owned(),
            (Shape::Int32, _) => TypeRef::INT.to_owned(),
            (Shape::UInt32, _) => scalars::UINT32.to_owned(),
            (Shape::Int64, _) => scalars::INT64.to_owned(),
            (Shape::UInt64, _) => scalars::UINT64.to_owned(),
            (Shape::Float, _) => TypeRef::FLOAT.to_owned(),
            (Shape::String, _) if field.is_some_and(is_id) => TypeRef::ID.to_owned(),
            (Shape::String | Shape::FieldMask, _) => TypeRef::STRING.to_owned(),
            (Shape::Bytes, _) => scalars::BYTES.to_owned(),
            (Shape::Enum(_), Kind::Enum(enum_)) => self.enum_type(enum_)?,
            (Shape::Timestamp, _) => scalars::DATE_TIME.to_owned(),
            (Shape::Duration, _) => scalars::DURATION.to_owned(),
            (Shape::Json, _) => scalars::JSON.to_owned(),
            (Shape::Wrapper(inner), _) => scalar_name(inner).to_owned(),
            (Shape::Object, Kind::Message(message)) => {
                let name = self.object_type(message)?;
                if name == TypeRef::BOOLEAN {
                    return Ok((name, Shape::Empty));
                }
                name
            }
            _ => return Err(CatalogError(format!("cannot map {kind:?}"))),
        };
        Ok((name, shape))
    }

    /// The object type of `message` (registered on first use), or `Boolean` for a message with
    /// nothing to show.
    pub(super) fn object_type(
        &mut self,
        message: &MessageDescriptor,
    ) -> Result<String, CatalogError> {
        if let Some(name) = self.output_names.get(message.full_name()) {
            return Ok(name.clone());
        }
        let joins = self.catalog.joins(message)?;
        let shown = message
            .fields()
            .filter(|field| !self.catalog.behavior(field).input_only)
            .count();
        if shown == 0 && joins.is_empty() {
            self.output_names
                .insert(message.full_name().to_owned(), TypeRef::BOOLEAN.to_owned());
            return Ok(TypeRef::BOOLEAN.to_owned());
        }
        let name = type_name(message.full_name(), message.package_name());
        self.claim(&name, message.full_name())?;
        self.output_names
            .insert(message.full_name().to_owned(), name.clone());
        let mut object = Object::new(&name);
        if let Some(doc) = self.catalog.message_doc(message) {
            object = object.description(doc);
        }
        let mut seen_oneofs = HashSet::new();
        for field in message.fields() {
            if self.catalog.behavior(&field).input_only {
                continue;
            }
            match field.containing_oneof() {
                Some(oneof) if !oneof.is_synthetic() => {
                    if seen_oneofs.insert(oneof.name().to_owned()) {
                        object = object.field(self.oneof_output(message, &oneof)?);
                    }
                }
                _ => object = object.field(self.output_field(message, &field)?),
            }
        }
        if message.full_name() == MONEY {
            let (field, reads) = money_amount_field(message)?;
            self.reads.record(message, "amount", reads);
            object = object.field(field);
        }
        for join in joins {
            object = object.field(self.join_field(&name, join)?);
        }
        self.objects.insert(name.clone(), object);
        Ok(name)
    }

    pub(super) fn output_field(
        &mut self,
        parent: &MessageDescriptor,
        field: &FieldDescriptor,
    ) -> Result<Field, CatalogError> {
        let name = self.catalog.field_name(field);
        let (type_ref, resolver): (TypeRef, Resolver) = if field.is_map() {
            let entry_type = self.map_entry_type(parent, field)?;
            (
                TypeRef::named_nn_list_nn(entry_type),
                Resolver::Map(field.clone()),
            )
        } else {
            let (base, shape) = self.output_kind(&field.kind(), Some(field))?;
            let type_ref = if field.is_list() {
                TypeRef::named_nn_list_nn(base)
            } else if field.supports_presence() {
                TypeRef::named(base)
            } else {
                TypeRef::named_nn(base)
            };
            if matches!(shape, Shape::Object) {
                self.prefetch
                    .entry(parent.full_name().to_owned())
                    .or_default()
                    .insert(name.clone(), Prefetch::Object(field.clone()));
            }
            (type_ref, Resolver::Field(field.clone(), shape))
        };
        let read = match &resolver {
            Resolver::Field(field, Shape::Object) => FieldRead::Nested(field.clone()),
            _ => FieldRead::Whole(vec![field.number()]),
        };
        self.reads.record(parent, &name, read);
        let mut graphql = Field::new(name, type_ref, move |ctx| resolver.resolve(ctx));
        if let Some(doc) = self.catalog.field_doc(field) {
            graphql = graphql.description(doc);
        }
        Ok(graphql)
    }

    pub(super) fn map_entry_type(
        &mut self,
        parent: &MessageDescriptor,
        field: &FieldDescriptor,
    ) -> Result<String, CatalogError> {
        let entry = field.kind().as_message().cloned().ok_or_else(|| {
            CatalogError(format!("{} is a map without entries", field.full_name()))
        })?;
        let name = format!(
            "{}{}Entry",
            type_name(parent.full_name(), parent.package_name()),
            pascal_case(field.name())
        );
        if self.objects.contains_key(&name) {
            return Ok(name);
        }
        self.claim(&name, entry.full_name())?;
        let key = entry.map_entry_key_field();
        let value = entry.map_entry_value_field();
        let (key_type, _) = self.output_kind(&key.kind(), None)?;
        let (value_type, value_shape) = self.output_kind(&value.kind(), None)?;
        let value_ref = if value.kind().as_message().is_some() {
            TypeRef::named(value_type)
        } else {
            TypeRef::named_nn(value_type)
        };
        let object = Object::new(&name)
            .description(format!(
                "One entry of the map {}.",
                self.catalog.field_name(field)
            ))
            .field(Field::new("key", TypeRef::named_nn(key_type), move |ctx| {
                Resolver::EntryKey.resolve(ctx)
            }))
            .field(Field::new("value", value_ref, move |ctx| {
                Resolver::EntryValue(value_shape.clone()).resolve(ctx)
            }));
        self.objects.insert(name.clone(), object);
        Ok(name)
    }

    /// A real oneof: a union field; members that are scalars, or share a type with another
    /// member, get a wrapper object named after the member.
    pub(super) fn oneof_output(
        &mut self,
        parent: &MessageDescriptor,
        oneof: &prost_reflect::OneofDescriptor,
    ) -> Result<Field, CatalogError> {
        let parent_name = type_name(parent.full_name(), parent.package_name());
        let union_name = format!("{parent_name}{}", pascal_case(oneof.name()));
        self.claim(&union_name, oneof.full_name())?;
        let mut union = Union::new(&union_name);
        if let Some(doc) = self.catalog.oneof_doc(oneof) {
            union = union.description(doc);
        }
        let mut counts: HashMap<String, usize> = HashMap::new();
        for member in oneof.fields() {
            if let Some(message) = member.kind().as_message()
                && matches!(message_shape(message), Shape::Object)
            {
                *counts.entry(message.full_name().to_owned()).or_default() += 1;
            }
        }
        let mut members = Vec::new();
        for member in oneof.fields() {
            let direct = member.kind().as_message().is_some_and(|message| {
                matches!(message_shape(message), Shape::Object)
                    && counts.get(message.full_name()) == Some(&1)
            });
            let object_name = if direct {
                let (name, shape) = self.output_kind(&member.kind(), Some(&member))?;
                if matches!(shape, Shape::Empty) {
                    None
                } else {
                    Some(name)
                }
            } else {
                None
            };
            let (type_name, wrapped) = match object_name {
                Some(name) => (name, false),
                None => {
                    let wrapper = format!("{parent_name}{}", pascal_case(member.name()));
                    self.claim(&wrapper, member.full_name())?;
                    let field = self.output_field(parent, &member)?;
                    let mut object = Object::new(&wrapper).field(field);
                    object = object.description(format!(
                        "The {} member of {union_name}.",
                        self.catalog.field_name(&member)
                    ));
                    self.objects.insert(wrapper.clone(), object);
                    (wrapper, true)
                }
            };
            union = union.possible_type(&type_name);
            members.push((member.clone(), type_name, wrapped));
        }
        self.unions.insert(union_name.clone(), union);
        let name = camel_case(oneof.name());
        self.reads.record(
            parent,
            &name,
            FieldRead::Whole(oneof.fields().map(|member| member.number()).collect()),
        );
        let resolver = Resolver::Oneof(Arc::new(members));
        let mut field = Field::new(name, TypeRef::named(union_name), move |ctx| {
            resolver.resolve(ctx)
        });
        if let Some(doc) = self.catalog.oneof_doc(oneof) {
            field = field.description(doc);
        }
        Ok(field)
    }
}

/// The GraphQL scalar of a wrapper's value.
fn scalar_name(shape: &Shape) -> &'static str {
    match shape {
        Shape::Bool => TypeRef::BOOLEAN,
        Shape::Int32 => TypeRef::INT,
        Shape::UInt32 => scalars::UINT32,
        Shape::Int64 => scalars::INT64,
        Shape::UInt64 => scalars::UINT64,
        Shape::Float => TypeRef::FLOAT,
        Shape::Bytes => scalars::BYTES,
        _ => TypeRef::STRING,
    }
}

/// `Money.amount`: the minor units as a decimal string in the currency's major unit. The fields
/// it reads are checked here, at start.
fn money_amount_field(money: &MessageDescriptor) -> Result<(Field, FieldRead), CatalogError> {
    let field = |name: &str, kind: Kind| {
        money
            .get_field_by_name(name)
            .filter(|field| !field.is_list() && field.kind() == kind)
            .ok_or_else(|| CatalogError(format!("{MONEY} has no {kind:?} field {name}")))
    };
    let currency_code = field("currency_code", Kind::String)?;
    let minor_units = field("minor_units", Kind::Int64)?;
    let reads = FieldRead::Whole(vec![currency_code.number(), minor_units.number()]);
    let resolver = Resolver::MoneyAmount {
        currency_code,
        minor_units,
    };
    let field = Field::new("amount", TypeRef::named_nn(TypeRef::STRING), move |ctx| {
        resolver.resolve(ctx)
    })
    .description("The amount as a decimal string in the currency's major unit, e.g. \"19.99\" for 1999 USD cents or \"500\" for 500 JPY.");
    Ok((field, reads))
}
