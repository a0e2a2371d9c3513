//! Root fields: `Query` for Get, BatchGet and List RPCs (a List as a connection), `Mutation` for
//! every other unary RPC (its request as one `input` argument), `Subscription` for
//! server-streaming RPCs.

use std::sync::Arc;

use async_graphql::dynamic::{Field, InputValue, SubscriptionField, TypeRef};
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};

use super::Builder;
use super::connections::{AFTER_DOC, FIRST_DOC};
use super::inputs::Mode;
use crate::convert::{Shape, message_shape};
use crate::errors::InputRoot;
use crate::plan::Paging;
use crate::plan::catalog::CatalogError;
use crate::resolve::{Resolver, subscribe};

impl Builder<'_> {
    pub(super) fn root_output(
        &mut self,
        message: &MessageDescriptor,
    ) -> Result<(String, Shape), CatalogError> {
        let shape = message_shape(message);
        if matches!(shape, Shape::Object) {
            let name = self.object_type(message)?;
            let shape = if name == TypeRef::BOOLEAN {
                Shape::Empty
            } else {
                Shape::Object
            };
            Ok((name, shape))
        } else {
            self.output_kind(&Kind::Message(message.clone()), None)
        }
    }

    pub(super) fn root_field(
        &mut self,
        method: &prost_reflect::MethodDescriptor,
        name: &str,
        mutation: bool,
    ) -> Result<Field, CatalogError> {
        let rpc = self.rpc(method)?;
        let request = method.input();
        let key = self.input_plan(&request, Mode::Request)?;
        let paging = (!mutation).then(|| Paging::of(method)).flatten();
        let mut field = if let Some(paging) = paging {
            let item = paging.items.kind();
            let item = item
                .as_message()
                .cloned()
                .ok_or_else(|| CatalogError("list of non-messages".to_owned()))?;
            let node = self.object_type(&item)?;
            let connection = self.connection_type(&node);
            let resolver = Resolver::RootConnection {
                rpc,
                key: key.clone(),
                paging: Arc::new(paging),
            };
            let mut field = Field::new(name, TypeRef::named(connection), move |ctx| {
                resolver.resolve(ctx)
            });
            field = self.arguments(
                field,
                &key,
                &[
                    method.input().get_field_by_name("page_size"),
                    method.input().get_field_by_name("page_token"),
                ],
            );
            field
                .argument(
                    InputValue::new("first", TypeRef::named(TypeRef::INT)).description(FIRST_DOC),
                )
                .argument(
                    InputValue::new("after", TypeRef::named(TypeRef::STRING))
                        .description(AFTER_DOC),
                )
        } else {
            let (output, shape) = self.root_output(&method.output())?;
            let root = if mutation {
                InputRoot::Input
            } else {
                InputRoot::Arguments
            };
            let input = if mutation {
                self.input_object(&request, Mode::Request)?
            } else {
                None
            };
            let resolver = Resolver::RootUnary {
                rpc,
                key: key.clone(),
                shape,
                root,
            };
            let field = Field::new(name, TypeRef::named(output), move |ctx| {
                resolver.resolve(ctx)
            });
            if mutation {
                match input {
                    Some(input) => {
                        let required = self.plan_fields.get(&key).is_some_and(|plan| {
                            plan.fields
                                .iter()
                                .any(|(_, type_ref, _)| type_ref.to_string().ends_with('!'))
                        });
                        let type_ref = if required {
                            TypeRef::named_nn(input)
                        } else {
                            TypeRef::named(input)
                        };
                        field.argument(InputValue::new("input", type_ref))
                    }
                    None => field,
                }
            } else {
                self.arguments(field, &key, &[])
            }
        };
        field = field.description(self.described(self.catalog.method_doc(method), method)?);
        Ok(field)
    }

    pub(super) fn arguments(
        &self,
        mut field: Field,
        key: &str,
        skip: &[Option<FieldDescriptor>],
    ) -> Field {
        let skipped: Vec<String> = skip
            .iter()
            .flatten()
            .map(|field| self.catalog.field_name(field))
            .collect();
        if let Some(plan) = self.plan_fields.get(key) {
            for (name, type_ref, doc) in &plan.fields {
                if skipped.contains(name) {
                    continue;
                }
                let mut argument = InputValue::new(name, type_ref.clone());
                if let Some(doc) = doc {
                    argument = argument.description(doc);
                }
                field = field.argument(argument);
            }
        }
        field
    }

    pub(super) fn subscription_field(
        &mut self,
        method: &prost_reflect::MethodDescriptor,
        name: &str,
    ) -> Result<SubscriptionField, CatalogError> {
        let rpc = self.rpc(method)?;
        let key = self.input_plan(&method.input(), Mode::Request)?;
        let (output, shape) = self.root_output(&method.output())?;
        let resolver_key = key.clone();
        let mut field = SubscriptionField::new(name, TypeRef::named_nn(output), move |ctx| {
            subscribe(ctx, rpc.clone(), resolver_key.clone(), shape.clone())
        });
        if let Some(plan) = self.plan_fields.get(&key) {
            for (name, type_ref, doc) in &plan.fields {
                let mut argument = InputValue::new(name, type_ref.clone());
                if let Some(doc) = doc {
                    argument = argument.description(doc);
                }
                field = field.argument(argument);
            }
        }
        field = field.description(self.described(self.catalog.method_doc(method), method)?);
        Ok(field)
    }
}
