//! Connection pages over AIP-158 pages: `first`/`after` mapped onto `page_size`/`page_token`. A
//! cursor is the page token of the page it came from and how many of that page's items precede
//! the next one, so any edge can be resumed from; the last edge of a page resumes from the next
//! page's token directly.

use async_graphql::SelectionField;
use async_graphql::dynamic::ResolverContext;
use std::sync::Arc;

use base64::Engine as _;
use prost_reflect::DynamicMessage;

use crate::errors::{self, InputRoot};
use crate::grpc::Rpc;
use crate::loader::RequestScope;
use crate::plan::reads::FieldMask;
use crate::plan::{BACKEND_MAX_PAGE, Paging, Plan};

/// `first` when it is not given.
const DEFAULT_FIRST: i32 = 50;

/// One item of a page with its cursor: a Relay edge (`<Node>Edge`).
pub struct ConnectionEdge {
    /// Where to resume after this item.
    pub cursor: String,
    /// The item.
    pub node: DynamicMessage,
}

/// One page of a connection (`<Node>Connection` and its `PageInfo`).
pub struct Page {
    /// The items, each with its cursor.
    pub edges: Vec<ConnectionEdge>,
    /// Whether more items follow.
    pub has_next_page: bool,
    /// Whether items precede this page.
    pub has_previous_page: bool,
    /// The cursor to continue from.
    pub end_cursor: Option<String>,
}

fn encode_cursor(offset: usize, token: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{offset}:{token}"))
}

fn decode_cursor(cursor: &str) -> Option<(usize, String)> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (offset, token) = text.split_once(':')?;
    Some((offset.parse().ok()?, token.to_owned()))
}

/// `first` (coerced to `max_page_size`) and `after` of a connection field.
pub fn arguments(
    ctx: &ResolverContext<'_>,
    max_page_size: i32,
) -> async_graphql::Result<(usize, Option<String>)> {
    let first = match ctx.args.get("first") {
        Some(value) if !value.is_null() => value.i64()?,
        _ => i64::from(DEFAULT_FIRST),
    };
    // Negative is the client's error; above the maximum is coerced to it (AIP-158).
    let first = usize::try_from(first.min(i64::from(max_page_size)))
        .map_err(|_| errors::coded("BAD_USER_INPUT", "first must not be negative"))?;
    let after = match ctx.args.get("after") {
        Some(value) if !value.is_null() => Some(value.string()?.to_owned()),
        _ => None,
    };
    Ok((first, after))
}

/// What a connection field selects of each of its nodes, through `edges { node }` and `nodes`.
pub fn node_selection<'a>(ctx: &'a ResolverContext<'a>) -> Vec<SelectionField<'a>> {
    let lookahead = ctx.look_ahead();
    let mut selection = Vec::new();
    for node in [
        lookahead.field("edges").field("node"),
        lookahead.field("nodes"),
    ] {
        for field in node.selection_fields() {
            selection.extend(field.selection_set());
        }
    }
    selection
}

/// What a connection field's selection reads of a List's answer: every field but the items, and
/// of each item what `nodes` (its [`node_selection`]) selects; `None` (all of it) when that is
/// not known.
pub fn items_mask(
    plan: &Plan,
    rpc: &Rpc,
    paging: &Paging,
    nodes: &[SelectionField<'_>],
) -> Option<Arc<FieldMask>> {
    let item = paging.items.kind().as_message()?.clone();
    let items = plan.reads.mask(&item, nodes.iter().copied())?;
    Some(Arc::new(FieldMask::all_but(
        &rpc.method.output(),
        &paging.items,
        items,
    )))
}

/// The List a page comes from.
pub struct PageSource<'a> {
    /// The List RPC.
    pub rpc: &'a Rpc,
    /// Its paging fields.
    pub paging: &'a Paging,
    /// Where its request's fields are in the operation.
    pub root: InputRoot,
    /// What of its answer to decode ([`items_mask`]); all of it without one.
    pub mask: Option<Arc<FieldMask>>,
}

/// Fetches the page of `first` items after `after`, with `request`'s filters. A cursor that is
/// not one is the client's error; a failed call is the backend's.
pub async fn fetch(
    scope: &RequestScope,
    source: PageSource<'_>,
    mut request: DynamicMessage,
    first: usize,
    after: Option<&str>,
) -> async_graphql::Result<Page> {
    let PageSource {
        rpc,
        paging,
        root,
        mask,
    } = source;
    let (offset, token) = match after {
        Some(cursor) => decode_cursor(cursor)
            .ok_or_else(|| errors::coded("BAD_USER_INPUT", "after is not a cursor of this list"))?,
        None => (0, String::new()),
    };
    // At most one backend page: a larger offset reads the backend's largest page.
    let size = i32::try_from(offset + first.max(1))
        .unwrap_or(BACKEND_MAX_PAGE)
        .min(BACKEND_MAX_PAGE);
    request.set_field(&paging.page_size, prost_reflect::Value::I32(size));
    request.set_field(
        &paging.page_token,
        prost_reflect::Value::String(token.clone()),
    );
    let response = scope
        .backends
        .unary_masked(rpc, request, &scope.call, mask)
        .await
        .map_err(|status| errors::from_status(&status, &rpc.backend, root))?;
    Ok(Page::of(paging, response, offset, first, &token, after))
}

impl Page {
    /// A page with no items and nothing after it.
    pub fn empty() -> Self {
        Self {
            edges: Vec::new(),
            has_next_page: false,
            has_previous_page: false,
            end_cursor: None,
        }
    }

    /// The items of the page.
    pub fn nodes(&self) -> impl Iterator<Item = &DynamicMessage> {
        self.edges.iter().map(|edge| &edge.node)
    }

    /// The page of the first `first` items of a List response to a first-page request.
    pub fn first_of(paging: &Paging, response: DynamicMessage, first: usize) -> Self {
        Self::of(paging, response, 0, first, "", None)
    }

    /// The `wanted` items after the first `offset` of `response`, the page of `token`.
    fn of(
        paging: &Paging,
        mut response: DynamicMessage,
        offset: usize,
        wanted: usize,
        token: &str,
        after: Option<&str>,
    ) -> Self {
        let next = paging.next_page_token(&response);
        let items = match response.take_field(&paging.items) {
            Some(prost_reflect::Value::List(items)) => items,
            _ => Vec::new(),
        };
        let total = items.len();
        let mut edges: Vec<ConnectionEdge> = items
            .into_iter()
            .skip(offset)
            .take(wanted)
            .filter_map(|item| match item {
                prost_reflect::Value::Message(message) => Some(message),
                _ => None,
            })
            .enumerate()
            .map(|(index, node)| ConnectionEdge {
                cursor: encode_cursor(offset + index + 1, token),
                node,
            })
            .collect();
        let consumed = offset + edges.len() >= total;
        if consumed
            && !next.is_empty()
            && let Some(last) = edges.last_mut()
        {
            last.cursor = encode_cursor(0, &next);
        }
        let has_next_page = !consumed || !next.is_empty();
        let end_cursor = match edges.last() {
            Some(last) => Some(last.cursor.clone()),
            None if consumed && !next.is_empty() => Some(encode_cursor(0, &next)),
            None => after.map(str::to_owned),
        };
        Self {
            edges,
            has_next_page,
            has_previous_page: after.is_some(),
            end_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let cursor = encode_cursor(7, "tok:en");
        assert_eq!(decode_cursor(&cursor), Some((7, "tok:en".to_owned())));
        assert_eq!(decode_cursor("not a cursor"), None);
    }
}
