//! Join fields: the relationships between services that `crowdcrunch.graphql.v1.join` declares
//! (`Order.customer`, `Customer.orders`, ...). A ONE join is a nullable object from a BatchGet,
//! a MANY join a list from a List filtered by every parent's key, a CONNECTION join a Relay
//! connection from a List filtered by the parent's key. Each becomes a [`JoinPlan`] that the
//! loader batches; how they resolve is `crate::resolve::joins`.

use async_graphql::dynamic::{Field, InputValue, TypeRef};

use super::Builder;
use super::connections::{AFTER_DOC, FIRST_DOC};
use crate::plan::catalog::{Cardinality, CatalogError, Join, list_item_field};
use crate::plan::reads::FieldRead;
use crate::plan::{JoinPlan, Paging, Prefetch};
use crate::resolve::Resolver;

impl Builder<'_> {
    /// The field of `join` on the object type `parent`, with the join's plan.
    pub(super) fn join_field(&mut self, parent: &str, join: Join) -> Result<Field, CatalogError> {
        let rpc = self.rpc(&join.method)?;
        let output = join.method.output();
        let items = list_item_field(&output).ok_or_else(|| {
            CatalogError(format!(
                "join {}: {} returns no list",
                join.field,
                join.method.full_name()
            ))
        })?;
        let item = items.kind();
        let item = item
            .as_message()
            .ok_or_else(|| CatalogError(format!("join {}: items are not messages", join.field)))?;
        let target = self.object_type(item)?;
        let name = join.field.clone();
        let description = self.described(Some(join.description.clone()), &join.method)?;
        let mut guarded = vec![&join.method];
        if let Some(batch) = &join.batch {
            guarded.push(&batch.method);
        }
        self.guard(parent, &name, &guarded)?;
        let cardinality = join.cardinality;
        let paging = match cardinality {
            Cardinality::Connection => Some(Paging::of(&join.method).ok_or_else(|| {
                CatalogError(format!(
                    "join {}: {} is not paginated",
                    join.field,
                    join.method.full_name()
                ))
            })?),
            _ => None,
        };
        let index = self.joins.len();
        self.reads.record(
            join.key.parent_message(),
            &name,
            FieldRead::Whole(vec![join.key.number()]),
        );
        if cardinality != Cardinality::Connection {
            self.prefetch
                .entry(join.key.parent_message().full_name().to_owned())
                .or_default()
                .insert(name.clone(), Prefetch::Join(index));
        }
        let batch_rpc = match &join.batch {
            Some(batch) => Some(self.rpc(&batch.method)?),
            None => None,
        };
        self.joins.push(JoinPlan {
            join,
            rpc,
            items,
            paging,
            batch_rpc,
        });
        let field = match cardinality {
            Cardinality::One => Field::new(name, TypeRef::named(target), move |ctx| {
                Resolver::JoinOne(index).resolve(ctx)
            }),
            Cardinality::Many => Field::new(name, TypeRef::named_nn_list(target), move |ctx| {
                Resolver::JoinMany(index).resolve(ctx)
            }),
            Cardinality::Connection => {
                let connection = self.connection_type(&target);
                Field::new(name, TypeRef::named(connection), move |ctx| {
                    Resolver::JoinConnection(index).resolve(ctx)
                })
                .argument(
                    InputValue::new("first", TypeRef::named(TypeRef::INT)).description(FIRST_DOC),
                )
                .argument(
                    InputValue::new("after", TypeRef::named(TypeRef::STRING))
                        .description(AFTER_DOC),
                )
            }
        };
        Ok(field.description(description))
    }
}
