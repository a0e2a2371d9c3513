//! Root fields: the request built from the field's arguments (or its `input`), one call of the
//! RPC, and the response as the field's value: an object (whose joins are prefetched), a scalar,
//! a connection page, or, for a subscription, a stream of them. A batch get asks the backend for
//! each distinct id once and answers the ids as requested, duplicates in place.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::Value;
use async_graphql::dynamic::{FieldFuture, FieldValue, ResolverContext, SubscriptionFieldFuture};
use futures::StreamExt as _;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, ReflectMessage as _};
use tonic::Status;

use super::page::{self, Page};
use super::plan_and_scope;
use super::prefetch::prefetch_joins;
use crate::access;
use crate::convert::{Shape, output};
use crate::errors::{self, InputRoot};
use crate::fault::Fault;
use crate::grpc::Rpc;
use crate::loader::RequestScope;
use crate::plan::catalog::list_item_field;
use crate::plan::{Paging, Plan};

/// A root field calling a unary RPC.
pub(super) fn unary<'a>(
    ctx: ResolverContext<'a>,
    rpc: Arc<Rpc>,
    key: String,
    shape: Shape,
    root: InputRoot,
) -> FieldFuture<'a> {
    FieldFuture::new(async move {
        let (plan, scope) = plan_and_scope(&ctx)?;
        admit(&ctx, scope, &rpc)?;
        let mut request = build_request(&ctx, plan, &key, root)?;
        let distinct = DistinctKeys::of(&rpc, &mut request);
        // A batch get's answer is rearranged whole; anything else is read only as selected.
        let mask = match (&shape, &distinct) {
            (Shape::Object, None) => plan
                .reads
                .mask(&rpc.method.output(), ctx.ctx.field().selection_set())
                .map(Arc::new),
            _ => None,
        };
        let mut response = scope
            .backends
            .unary_masked(&rpc, request, &scope.call, mask)
            .await
            .map_err(|status| errors::from_status(&status, &rpc.backend, root))?;
        if let Some(distinct) = distinct {
            distinct
                .answer_requested(&mut response)
                .map_err(|status| errors::from_status(&status, &rpc.backend, root))?;
        }
        if matches!(shape, Shape::Object) {
            let selection: Vec<_> = ctx.ctx.field().selection_set().collect();
            prefetch_joins(plan, scope, &selection, std::slice::from_ref(&response)).await;
        }
        root_value(response, &shape)
    })
}

/// A root field paging through a List RPC.
pub(super) fn connection<'a>(
    ctx: ResolverContext<'a>,
    rpc: Arc<Rpc>,
    key: String,
    paging: Arc<Paging>,
) -> FieldFuture<'a> {
    FieldFuture::new(async move {
        let (plan, scope) = plan_and_scope(&ctx)?;
        admit(&ctx, scope, &rpc)?;
        let request = build_request(&ctx, plan, &key, InputRoot::Arguments)?;
        let (first, after) = page::arguments(&ctx, plan.max_page_size)?;
        // What the nodes select decides both what is decoded and which joins are prefetched.
        let nodes = page::node_selection(&ctx);
        let source = page::PageSource {
            rpc: &rpc,
            paging: &paging,
            root: InputRoot::Arguments,
            mask: page::items_mask(plan, &rpc, &paging, &nodes),
        };
        let page: Page = page::fetch(scope, source, request, first, after.as_deref()).await?;
        prefetch_joins(plan, scope, &nodes, page.nodes()).await;
        Ok(Some(FieldValue::owned_any(page)))
    })
}

/// A subscription field over a server-streaming RPC: one event per message.
pub fn subscribe<'a>(
    ctx: ResolverContext<'a>,
    rpc: Arc<Rpc>,
    key: String,
    shape: Shape,
) -> SubscriptionFieldFuture<'a> {
    SubscriptionFieldFuture::new(async move {
        let (plan, scope) = plan_and_scope(&ctx)?;
        admit(&ctx, scope, &rpc)?;
        let request = build_request(&ctx, plan, &key, InputRoot::Arguments)?;
        let backend = rpc.backend.clone();
        let stream = scope
            .backends
            .server_streaming(&rpc, request, &scope.call)
            .await
            .map_err(|status| errors::from_status(&status, &backend, InputRoot::Arguments))?;
        Ok(stream.map(move |item| {
            let message = item
                .map_err(|status| errors::from_status(&status, &backend, InputRoot::Arguments))?;
            // A root's value is never None: an object, `true` for an empty message, or a scalar.
            root_value(message, &shape)?
                .ok_or_else(|| Fault::Unwired("the value of an event").into())
        }))
    })
}

/// The keys of a batch get (AIP-231: `BatchGet*`, a repeated string field of keys in, the items
/// in request order out), deduplicated before the call: the backend is asked for each distinct
/// key once, and its answer is fanned back out to the keys as the client asked for them.
struct DistinctKeys {
    /// The response's repeated item field.
    items: FieldDescriptor,
    /// For each key as requested, the index of its distinct key.
    requested: Vec<usize>,
    /// How many distinct keys were asked for.
    distinct: usize,
}

impl DistinctKeys {
    /// Leaves only the distinct keys in `request` when `rpc` is a batch get.
    fn of(rpc: &Rpc, request: &mut DynamicMessage) -> Option<Self> {
        if !rpc.method.name().starts_with("BatchGet") {
            return None;
        }
        let keys_field = rpc
            .method
            .input()
            .fields()
            .find(|field| field.is_list() && field.kind() == Kind::String)?;
        let items = list_item_field(&rpc.method.output())?;
        let prost_reflect::Value::List(keys) = request.get_field(&keys_field).into_owned() else {
            return None;
        };
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut distinct = Vec::new();
        let requested = keys
            .into_iter()
            .map(|key| {
                let text = key.as_str().unwrap_or_default().to_owned();
                *index.entry(text).or_insert_with(|| {
                    distinct.push(key);
                    distinct.len() - 1
                })
            })
            .collect();
        let count = distinct.len();
        request.set_field(&keys_field, prost_reflect::Value::List(distinct));
        Some(Self {
            items,
            requested,
            distinct: count,
        })
    }

    /// Answers every key as requested, from the backend's answer to the distinct ones.
    fn answer_requested(&self, response: &mut DynamicMessage) -> Result<(), Status> {
        let Some(prost_reflect::Value::List(items)) = response.take_field(&self.items) else {
            return Err(Status::internal("a batch get answered no list of items"));
        };
        if items.len() != self.distinct {
            // The backend broke AIP-231's contract: its failure, not the edge's.
            return Err(Status::internal(format!(
                "a batch get answered {} items for {} ids",
                items.len(),
                self.distinct
            )));
        }
        let answered = self
            .requested
            .iter()
            .filter_map(|index| items.get(*index).cloned())
            .collect();
        response.set_field(&self.items, prost_reflect::Value::List(answered));
        Ok(())
    }
}

/// Admits the caller to a root field that calls `rpc`, before any call.
fn admit(ctx: &ResolverContext<'_>, scope: &RequestScope, rpc: &Rpc) -> async_graphql::Result<()> {
    access::admit(&scope.call.credentials, ctx.field().name(), [rpc])
}

/// The request of a root field: from its `input` argument (mutations) or its arguments.
fn build_request(
    ctx: &ResolverContext<'_>,
    plan: &Plan,
    key: &str,
    root: InputRoot,
) -> async_graphql::Result<DynamicMessage> {
    let empty = async_graphql::dynamic::indexmap::IndexMap::new();
    let arguments = ctx.args.as_index_map();
    let object = match root {
        // A mutation whose input has no required field may leave `input` out.
        InputRoot::Input => match arguments.get("input") {
            Some(Value::Object(object)) => object,
            _ => &empty,
        },
        _ => arguments,
    };
    let mut message = plan
        .inputs
        .build(key, object, &mut Vec::new())
        .map_err(|failure| errors::from_input_failure(failure, root))?;
    // AIP-155: a mutation with an idempotency key the client left empty gets one, so that a
    // retry after UNAVAILABLE cannot apply it twice.
    if root == InputRoot::Input
        && let Some(field) = message.descriptor().get_field_by_name("request_id")
        && message
            .get_field(&field)
            .as_str()
            .is_some_and(str::is_empty)
    {
        message.set_field(
            &field,
            prost_reflect::Value::String(uuid::Uuid::now_v7().to_string()),
        );
    }
    Ok(message)
}

/// A root's response as its field's value.
fn root_value(
    response: DynamicMessage,
    shape: &Shape,
) -> async_graphql::Result<Option<FieldValue<'static>>> {
    match shape {
        Shape::Object => Ok(Some(FieldValue::owned_any(response))),
        Shape::Empty => Ok(Some(FieldValue::value(true))),
        shape => output(shape, &prost_reflect::Value::Message(response))
            .map(|value| Some(FieldValue::value(value)))
            .map_err(super::unshowable),
    }
}
