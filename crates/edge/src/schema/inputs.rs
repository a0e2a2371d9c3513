//! Input types: an input object per request message (named after the request, `Request` →
//! `Input`) or nested message, a `PatchInput` for the resource of an update (its given fields
//! make the request's FieldMask), `@oneOf` inputs for oneofs, entry inputs for maps. Alongside
//! each, the [`InputPlan`] that turns the GraphQL value into the request message.

use std::collections::HashSet;

use async_graphql::Name;
use async_graphql::dynamic::{InputObject, InputValue, TypeRef};
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};

use super::{Builder, type_name};
use crate::convert::{
    InputField, InputKind, InputPlan, InputTarget, MaskPlan, Shape, message_shape,
};
use crate::plan::catalog::{CatalogError, camel_case, pascal_case};

/// The mode an input message is read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Mode {
    /// An RPC's request.
    Request,
    /// A message being created: REQUIRED fields are non-null; IDENTIFIER fields are left out.
    Create,
    /// The resource of an update: every field nullable but the ones that name it; the supplied
    /// fields make the FieldMask.
    Patch,
}

/// The GraphQL fields of an input plan: name, type and description, for input objects and
/// root field arguments alike.
#[derive(Clone)]
pub(super) struct PlanFields {
    pub(super) fields: Vec<(String, TypeRef, Option<String>)>,
}

impl Builder<'_> {
    pub(super) fn input_type_name(&self, message: &MessageDescriptor, mode: Mode) -> String {
        let base = type_name(message.full_name(), message.package_name());
        match mode {
            Mode::Request => match base.strip_suffix("Request") {
                Some(rpc) if !rpc.is_empty() => format!("{rpc}Input"),
                _ => format!("{base}Input"),
            },
            Mode::Create => format!("{base}Input"),
            Mode::Patch => format!("{base}PatchInput"),
        }
    }

    /// The input plan of `message` read in `mode`, computed once; its key.
    pub(super) fn input_plan(
        &mut self,
        message: &MessageDescriptor,
        mode: Mode,
    ) -> Result<String, CatalogError> {
        let key = format!("{}#{mode:?}", message.full_name());
        if self.input_plans.contains_key(&key) || !self.in_progress.insert(key.clone()) {
            return Ok(key);
        }
        let mask_field = (mode == Mode::Request)
            .then(|| {
                message.fields().find(|field| {
                    field
                        .kind()
                        .as_message()
                        .is_some_and(|m| m.full_name() == "google.protobuf.FieldMask")
                })
            })
            .flatten();
        // The resource an update patches, with its message.
        let patched = mask_field.as_ref().and_then(|_| {
            message.fields().find_map(|field| {
                let resource = field.kind().as_message().cloned()?;
                (!field.is_list() && matches!(message_shape(&resource), Shape::Object))
                    .then_some((field, resource))
            })
        });
        let patch_field = patched.as_ref().map(|(field, _)| field.clone());
        let mut fields = Vec::new();
        let mut described = Vec::new();
        let mut seen_oneofs = HashSet::new();
        for field in message.fields() {
            let behavior = self.catalog.behavior(&field);
            if behavior.output_only
                || (mode == Mode::Create && behavior.identifier)
                || mask_field.as_ref() == Some(&field)
            {
                continue;
            }
            if let Some(oneof) = field
                .containing_oneof()
                .filter(|oneof| !oneof.is_synthetic())
            {
                if seen_oneofs.insert(oneof.name().to_owned())
                    && let Some((input, type_ref, doc)) = self.oneof_input(message, &oneof)?
                {
                    described.push((input.name.to_string(), type_ref, doc));
                    fields.push(input);
                }
                continue;
            }
            let field_mode = if patch_field.as_ref() == Some(&field) {
                Mode::Patch
            } else {
                Mode::Create
            };
            let Some((kind, base)) = self.input_kind(message, &field, field_mode)? else {
                continue;
            };
            let non_null = match mode {
                Mode::Patch => behavior.identifier || (behavior.required && behavior.immutable),
                Mode::Request | Mode::Create => behavior.required,
            };
            let type_ref = match (field.is_list() || field.is_map(), non_null) {
                (true, true) => TypeRef::named_nn_list_nn(base),
                (true, false) => TypeRef::named_nn_list(base),
                (false, true) => TypeRef::named_nn(base),
                (false, false) => TypeRef::named(base),
            };
            let name = self.catalog.field_name(&field);
            described.push((name.clone(), type_ref, self.catalog.field_doc(&field)));
            fields.push(InputField {
                name: Name::new(name),
                target: InputTarget::Field { field, kind },
            });
        }
        let mask = match (mask_field, patched) {
            (Some(mask_field), Some((patch_field, resource))) => {
                let keys = resource
                    .fields()
                    .filter(|field| {
                        let behavior = self.catalog.behavior(field);
                        behavior.identifier || (behavior.required && behavior.immutable)
                    })
                    .map(|field| field.name().to_owned())
                    .collect();
                Some(MaskPlan {
                    patch_name: Name::new(self.catalog.field_name(&patch_field)),
                    mask_field,
                    patch_field,
                    keys,
                })
            }
            _ => None,
        };
        self.input_plans.insert(
            key.clone(),
            InputPlan {
                message: message.clone(),
                fields,
                mask,
            },
        );
        self.plan_fields
            .insert(key.clone(), PlanFields { fields: described });
        self.in_progress.remove(&key);
        Ok(key)
    }

    /// How a field converts on input and its GraphQL base type; `None` when it has nothing to
    /// input (a message of output-only fields).
    pub(super) fn input_kind(
        &mut self,
        parent: &MessageDescriptor,
        field: &FieldDescriptor,
        mode: Mode,
    ) -> Result<Option<(InputKind, String)>, CatalogError> {
        if field.is_map() {
            let entry = field
                .kind()
                .as_message()
                .cloned()
                .ok_or_else(|| CatalogError("map without entry".to_owned()))?;
            let key = entry.map_entry_key_field();
            let value = entry.map_entry_value_field();
            let Some((value_kind, value_type)) = self.input_kind(&entry, &value, Mode::Create)?
            else {
                return Ok(None);
            };
            let (key_type, key_shape) = self.output_kind(&key.kind(), None)?;
            let name = format!(
                "{}{}EntryInput",
                type_name(parent.full_name(), parent.package_name()),
                pascal_case(field.name())
            );
            if !self.inputs.contains_key(&name) {
                self.claim(&name, &format!("{}#input", entry.full_name()))?;
                let value_ref = if value.kind().as_message().is_some() {
                    TypeRef::named(value_type)
                } else {
                    TypeRef::named_nn(value_type)
                };
                self.inputs.insert(
                    name.clone(),
                    InputObject::new(&name)
                        .description(format!(
                            "One entry of the map {}.",
                            self.catalog.field_name(field)
                        ))
                        .field(InputValue::new("key", TypeRef::named_nn(key_type)))
                        .field(InputValue::new("value", value_ref)),
                );
            }
            return Ok(Some((
                InputKind::Map {
                    key: key_shape,
                    value: Box::new(value_kind),
                },
                name,
            )));
        }
        let kind = field.kind();
        match &kind {
            Kind::Message(message) if matches!(message_shape(message), Shape::Object) => {
                let Some(name) = self.input_object(message, mode)? else {
                    return Ok(None);
                };
                let key = self.input_plan(message, mode)?;
                Ok(Some((InputKind::Message(key), name)))
            }
            _ => {
                let (name, shape) = self.output_kind(&kind, Some(field))?;
                Ok(Some((InputKind::Scalar(shape), name)))
            }
        }
    }

    /// The input object of `message` in `mode` (registered on first use); `None` when empty.
    pub(super) fn input_object(
        &mut self,
        message: &MessageDescriptor,
        mode: Mode,
    ) -> Result<Option<String>, CatalogError> {
        let name = self.input_type_name(message, mode);
        if self.inputs.contains_key(&name) {
            return Ok(Some(name));
        }
        let key = format!("{}#{mode:?}", message.full_name());
        if self.in_progress.contains(&key) {
            return Ok(Some(name));
        }
        let key = self.input_plan(message, mode)?;
        let Some(fields) = self.plan_fields.get(&key).map(|plan| plan.fields.clone()) else {
            return Ok(Some(name));
        };
        if fields.is_empty() {
            return Ok(None);
        }
        self.claim(&name, &key)?;
        let mut input = InputObject::new(&name);
        let doc = match mode {
            Mode::Request => self
                .catalog
                .message_doc(message)
                .map(|doc| doc.replace("Request for", "Input of")),
            Mode::Create => self.catalog.message_doc(message),
            Mode::Patch => Some(format!(
                "The changes to a {}: every field given (null included) is changed, the others are kept.",
                message.name()
            )),
        };
        if let Some(doc) = doc {
            input = input.description(doc);
        }
        for (field, type_ref, doc) in &fields {
            let mut value = InputValue::new(field, type_ref.clone());
            if let Some(doc) = doc {
                value = value.description(doc);
            }
            input = input.field(value);
        }
        self.inputs.insert(name.clone(), input);
        Ok(Some(name))
    }

    pub(super) fn oneof_input(
        &mut self,
        parent: &MessageDescriptor,
        oneof: &prost_reflect::OneofDescriptor,
    ) -> Result<Option<(InputField, TypeRef, Option<String>)>, CatalogError> {
        let name = format!(
            "{}{}Input",
            type_name(parent.full_name(), parent.package_name()),
            pascal_case(oneof.name())
        );
        let mut members = Vec::new();
        let mut input = InputObject::new(&name).oneof();
        if let Some(doc) = self.catalog.oneof_doc(oneof) {
            input = input.description(doc);
        }
        for member in oneof.fields() {
            if self.catalog.behavior(&member).output_only {
                continue;
            }
            let Some((kind, base)) = self.input_kind(parent, &member, Mode::Create)? else {
                continue;
            };
            let member_name = self.catalog.field_name(&member);
            let mut value = InputValue::new(&member_name, TypeRef::named(base));
            if let Some(doc) = self.catalog.field_doc(&member) {
                value = value.description(doc);
            }
            input = input.field(value);
            members.push((Name::new(member_name), member, kind));
        }
        if members.is_empty() {
            return Ok(None);
        }
        self.claim(&name, &format!("{}#input", oneof.full_name()))?;
        self.inputs.insert(name.clone(), input);
        let field_name = camel_case(oneof.name());
        Ok(Some((
            InputField {
                name: Name::new(&field_name),
                target: InputTarget::Oneof(members),
            },
            TypeRef::named(name),
            self.catalog.oneof_doc(oneof),
        )))
    }
}
