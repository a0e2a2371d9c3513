//! Prefetching: the join keys a selection will ask for, on the messages a field just loaded
//! (through nested objects too), loaded in one batch before the fields below resolve. See the
//! module doc of `resolve` for why.

use async_graphql::SelectionField;
use async_graphql::dynamic::ResolverContext;
use prost_reflect::{DynamicMessage, ReflectMessage as _};

use super::page::{self, Page};
use crate::access;
use crate::loader::{JoinKey, RequestScope};
use crate::plan::{Plan, Prefetch};

/// How deep below a loaded message prefetching follows nested objects.
const MAX_DEPTH: usize = 4;

/// The join keys that `selection` on `message` will ask for (through nested objects too).
fn prefetch_keys(
    plan: &Plan,
    message: &DynamicMessage,
    selection: &[SelectionField<'_>],
    keys: &mut Vec<JoinKey>,
    depth: usize,
) {
    let Some(fields) = plan.prefetch.get(message.descriptor().full_name()) else {
        return;
    };
    for field in selection {
        match fields.get(field.name()) {
            Some(Prefetch::Join(index)) => {
                // An unknown join or a key that is no string is left for the join field to
                // report as the edge's fault; an unset key has nothing to load.
                if let Some(join) = plan.joins.get(*index)
                    && let Some(key) = join.key_of(message)
                    && !key.is_empty()
                {
                    keys.push(JoinKey::new(*index, key));
                }
            }
            Some(Prefetch::Object(descriptor)) if depth < MAX_DEPTH => {
                if !message.has_field(descriptor) && !descriptor.is_list() {
                    continue;
                }
                let children: Vec<SelectionField<'_>> = field.selection_set().collect();
                match message.get_field(descriptor).as_ref() {
                    prost_reflect::Value::Message(child) => {
                        prefetch_keys(plan, child, &children, keys, depth + 1);
                    }
                    prost_reflect::Value::List(items) => {
                        for child in items.iter().filter_map(prost_reflect::Value::as_message) {
                            prefetch_keys(plan, child, &children, keys, depth + 1);
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

/// Prefetches the joins that the selection of a connection's nodes (`edges { node }` and
/// `nodes`) asks for, on every node of `page`.
pub(super) async fn prefetch_page(
    ctx: &ResolverContext<'_>,
    plan: &Plan,
    scope: &RequestScope,
    page: &Page,
) {
    prefetch_joins(plan, scope, &page::node_selection(ctx), page.nodes()).await;
}

/// Loads, in one batch, the joins that `selection` asks for on each of `messages`; a join the
/// caller may not use is left to its field, which answers why.
pub(super) async fn prefetch_joins<'m>(
    plan: &Plan,
    scope: &RequestScope,
    selection: &[SelectionField<'_>],
    messages: impl IntoIterator<Item = &'m DynamicMessage>,
) {
    let mut keys = Vec::new();
    for message in messages {
        prefetch_keys(plan, message, selection, &mut keys, 0);
    }
    keys.retain(|key| {
        plan.joins
            .get(key.join)
            .is_some_and(|join| access::admits(&scope.call.credentials, join.rpcs()))
    });
    scope.loader.prefetch(keys).await;
}
