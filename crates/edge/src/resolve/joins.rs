//! Join fields: where `Order.customer` (ONE), `Order.payments` (MANY) and `Customer.orders`
//! (CONNECTION) resolve. A ONE or MANY join asks the request's loader for its parent's key, so
//! the keys of every parent go in one BatchGet or List; a connection's first page comes, for
//! every parent at once, from one call of its `batch_rpc` (`OrderService.BatchListOrders`,
//! `LedgerService.BatchListEvents`), and later pages from the List itself. What a join loaded
//! prefetches the joins its own selection asks for.

use async_graphql::dynamic::{FieldFuture, FieldValue, ResolverContext};
use prost_reflect::DynamicMessage;

use super::page::{self, Page};
use super::prefetch::{prefetch_joins, prefetch_page};
use super::{SharedItem, parent_message, plan_and_scope};
use crate::access;
use crate::errors::InputRoot;
use crate::fault::Fault;
use crate::loader::{JoinKey, RequestScope};
use crate::plan::{JoinPlan, Plan};

/// A ONE join (`one`: the first item, or null) or a MANY join (every item).
pub(super) fn one_or_many(ctx: ResolverContext<'_>, index: usize, one: bool) -> FieldFuture<'_> {
    FieldFuture::new(async move {
        let (plan, scope, parent, join_plan) = join_context(&ctx, index)?;
        let key = parent_key(join_plan, parent)?;
        if key.is_empty() {
            // An unset reference: nothing to load.
            return Ok(if one {
                None
            } else {
                Some(FieldValue::list(Vec::<FieldValue>::new()))
            });
        }
        let items = scope.loader.load_one(JoinKey::new(index, key)).await?;
        let selection: Vec<_> = ctx.ctx.field().selection_set().collect();
        prefetch_joins(plan, scope, &selection, items.iter()).await;
        let mut shared = SharedItem::each(&items);
        Ok(if one {
            shared.next().map(FieldValue::owned_any)
        } else {
            Some(FieldValue::list(shared.map(FieldValue::owned_any)))
        })
    })
}

/// A CONNECTION join: a page of the parent's items.
pub(super) fn connection(ctx: ResolverContext<'_>, index: usize) -> FieldFuture<'_> {
    FieldFuture::new(async move {
        let (plan, scope, parent, join_plan) = join_context(&ctx, index)?;
        let paging = join_plan.paging.as_ref().ok_or_else(|| Fault::Misplanned {
            join: join_plan.join.field.clone(),
            what: "a connection without paging",
        })?;
        let key = parent_key(join_plan, parent)?;
        let (first, after) = page::arguments(&ctx, plan.max_page_size)?;
        // The first page of every parent comes from one call of the batch RPC; later pages, and
        // every page without one, from the List per parent.
        if after.is_none() && join_plan.batch_rpc.is_some() {
            if key.is_empty() {
                return Ok(Some(FieldValue::owned_any(Page::empty())));
            }
            let loaded = scope
                .loader
                .load_one(JoinKey::first_page(index, key, first.max(1)))
                .await?;
            let response = loaded
                .first()
                .cloned()
                .ok_or(Fault::LoaderLostKey("a first page"))?;
            let page = Page::first_of(paging, response, first);
            prefetch_page(&ctx, plan, scope, &page).await;
            return Ok(Some(FieldValue::owned_any(page)));
        }
        let mut request = DynamicMessage::new(join_plan.join.method.input());
        let key = prost_reflect::Value::String(key);
        let key = if join_plan.join.request_field.is_list() {
            prost_reflect::Value::List(vec![key])
        } else {
            key
        };
        request.set_field(&join_plan.join.request_field, key);
        let source = page::PageSource {
            rpc: &join_plan.rpc,
            paging,
            root: InputRoot::None,
            mask: None,
        };
        let page = page::fetch(scope, source, request, first, after.as_deref()).await?;
        prefetch_page(&ctx, plan, scope, &page).await;
        Ok(Some(FieldValue::owned_any(page)))
    })
}

/// What a join field needs: the plan, the request scope, the parent message and the join's plan;
/// once the caller is admitted to the join, before any call.
fn join_context<'a>(
    ctx: &ResolverContext<'a>,
    index: usize,
) -> async_graphql::Result<(&'a Plan, &'a RequestScope, &'a DynamicMessage, &'a JoinPlan)> {
    let (plan, scope) = plan_and_scope(ctx)?;
    let parent = parent_message(ctx, "the message of a join")?;
    let join_plan = plan.joins.get(index).ok_or(Fault::UnknownJoin(index))?;
    access::admit(
        &scope.call.credentials,
        &join_plan.join.field,
        join_plan.rpcs(),
    )?;
    Ok((plan, scope, parent, join_plan))
}

/// The parent's key for the join (empty when the reference is not set).
fn parent_key(join_plan: &JoinPlan, parent: &DynamicMessage) -> Result<String, Fault> {
    join_plan
        .key_of(parent)
        .ok_or_else(|| Fault::NotAString(join_plan.join.key.full_name().to_owned()))
}
