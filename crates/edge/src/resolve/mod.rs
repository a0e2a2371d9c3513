//! Resolution: what each field does at request time, decided when the schema is built (a
//! [`Resolver`] per field) and run by async-graphql's dynamic schema. `fields` reads a value out
//! of its parent message; `roots` builds a root field's request, calls its RPC and answers the
//! response (a page for a List, a stream for a subscription); `joins` resolves the fields between
//! services through the request's loader (`Customer.orders`, `Order.customer`, ...); `prefetch`
//! gathers the join keys a selection will ask for; `page` makes connection pages out of AIP-158
//! pages.
//!
//! **Why prefetching.** async-graphql's dynamic schema resolves the fields of a nested object one
//! after the other, so the join fields of a page's N items would reach the loader one at a time,
//! a round trip each. Root fields, and join fields for what they loaded, therefore collect the
//! join keys their selection asks for (through nested objects too) and load them in one batch
//! before their children resolve; the join fields then find their items in the request's loader.
//!
//! A failure is the backend's (`errors::from_status`, naming the service), the client's
//! (`BAD_USER_INPUT`), or the edge's own ([`Fault`]): a resolver that finds its wiring broken
//! never blames a backend.

mod fields;
mod joins;
pub mod page;
mod prefetch;
mod roots;

use std::sync::Arc;

use async_graphql::Value;
use async_graphql::dynamic::{FieldFuture, ResolverContext};
use prost_reflect::{DynamicMessage, FieldDescriptor};

use crate::convert::Shape;
use crate::errors::{self, InputRoot};
use crate::fault::{self, Fault};
use crate::grpc::Rpc;
use crate::loader::RequestScope;
use crate::plan::{Paging, Plan};
pub use roots::subscribe;

/// What a field does, decided when the schema is built.
#[derive(Clone)]
pub enum Resolver {
    /// A field of the parent message, shown in `Shape`.
    Field(FieldDescriptor, Shape),
    /// A map field of the parent message, as a list of entries sorted by key.
    Map(FieldDescriptor),
    /// The key of a map entry.
    EntryKey,
    /// The value of a map entry.
    EntryValue(Shape),
    /// A real oneof as a union: each member with its GraphQL type, and whether that type is a
    /// wrapper object around the parent.
    Oneof(Arc<Vec<(FieldDescriptor, String, bool)>>),
    /// `Money.amount`, from its two fields.
    MoneyAmount {
        /// `currency_code`.
        currency_code: FieldDescriptor,
        /// `minor_units`.
        minor_units: FieldDescriptor,
    },
    /// A ONE join, by index.
    JoinOne(usize),
    /// A MANY join, by index.
    JoinMany(usize),
    /// A CONNECTION join, by index.
    JoinConnection(usize),
    /// A root field that calls a unary RPC.
    RootUnary {
        /// The RPC.
        rpc: Arc<Rpc>,
        /// The key of its request's input plan.
        key: String,
        /// How its response is shown.
        shape: Shape,
        /// Where the request's fields are in the operation.
        root: InputRoot,
    },
    /// A root field that pages through a List RPC.
    RootConnection {
        /// The RPC.
        rpc: Arc<Rpc>,
        /// The key of its request's input plan.
        key: String,
        /// Its paging fields.
        paging: Arc<Paging>,
    },
}

impl Resolver {
    /// Resolves the field in `ctx`.
    pub fn resolve<'a>(&self, ctx: ResolverContext<'a>) -> FieldFuture<'a> {
        match self {
            Self::Field(field, shape) => fields::field(ctx, field, shape),
            Self::Map(field) => fields::map(ctx, field),
            Self::EntryKey => fields::entry_key(ctx),
            Self::EntryValue(shape) => fields::entry_value(ctx, shape),
            Self::Oneof(members) => fields::oneof(ctx, members),
            Self::MoneyAmount {
                currency_code,
                minor_units,
            } => fields::money_amount(ctx, currency_code, minor_units),
            Self::JoinOne(index) => joins::one_or_many(ctx, *index, true),
            Self::JoinMany(index) => joins::one_or_many(ctx, *index, false),
            Self::JoinConnection(index) => joins::connection(ctx, *index),
            Self::RootUnary {
                rpc,
                key,
                shape,
                root,
            } => roots::unary(ctx, rpc.clone(), key.clone(), shape.clone(), *root),
            Self::RootConnection { rpc, key, paging } => {
                roots::connection(ctx, rpc.clone(), key.clone(), paging.clone())
            }
        }
    }
}

/// A field that fails with `error`.
fn fail<'a>(error: impl Into<async_graphql::Error>) -> FieldFuture<'a> {
    let error = error.into();
    FieldFuture::new(async move { Err::<Option<Value>, _>(error) })
}

/// A value the backend answered that its GraphQL type cannot show (an enum left unset, a
/// timestamp out of range): an internal error that says which.
fn unshowable(message: impl Into<String>) -> async_graphql::Error {
    errors::coded(fault::INTERNAL, message)
}

/// One of the items a join loaded, as the parent of its fields: shared with every other field that
/// asks for the same key (twenty orders of one customer hold one decoded customer), never copied.
struct SharedItem {
    items: Arc<Vec<DynamicMessage>>,
    index: usize,
}

impl SharedItem {
    /// Each of `items`, as a parent value.
    fn each(items: &Arc<Vec<DynamicMessage>>) -> impl Iterator<Item = Self> + use<> {
        let items = Arc::clone(items);
        (0..items.len()).map(move |index| Self {
            items: Arc::clone(&items),
            index,
        })
    }
}

/// The message a field's parent is: one a resolver passed on, or an item a join loaded.
fn parent_message<'a>(
    ctx: &ResolverContext<'a>,
    what: &'static str,
) -> Result<&'a DynamicMessage, Fault> {
    let parent = ctx.parent_value;
    parent
        .downcast_ref::<DynamicMessage>()
        .or_else(|| {
            parent
                .downcast_ref::<SharedItem>()
                .and_then(|shared| shared.items.get(shared.index))
        })
        .ok_or(Fault::Unwired(what))
}

/// The plan and the request scope every call-making resolver reads.
fn plan_and_scope<'a>(ctx: &ResolverContext<'a>) -> Result<(&'a Plan, &'a RequestScope), Fault> {
    let plan = ctx
        .data::<Arc<Plan>>()
        .map_err(|_| Fault::Unwired("the plan"))?;
    let scope = ctx
        .data::<RequestScope>()
        .map_err(|_| Fault::Unwired("the request scope"))?;
    Ok((plan, scope))
}
