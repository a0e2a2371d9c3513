//! Relay connections over AIP-158 pages: `edges { cursor node }`, `nodes`, `pageInfo`, with
//! `first`/`after` mapped onto `page_size`/`page_token`. A cursor is the page token of the page
//! it came from and how many of that page's items precede the next one, so any edge can be
//! resumed from; the last edge of a page resumes from the next page's token directly.

use async_graphql::Value;
use async_graphql::dynamic::{Field, FieldFuture, FieldValue, Object, ResolverContext, TypeRef};
use base64::Engine as _;
use prost_reflect::{DynamicMessage, FieldDescriptor, MethodDescriptor};
use tonic::Status;

use crate::catalog::list_item_field;
use crate::errors;
use crate::grpc::Rpc;
use crate::schema::Runtime;
use crate::scope::RequestScope;

/// The description of `first`.
pub const FIRST_DOC: &str = "How many items to return (default 50). A value above the maximum page size is treated as the maximum; a negative value is an error.";
/// The description of `after`.
pub const AFTER_DOC: &str =
    "The cursor after which to start: an edge's cursor or pageInfo.endCursor.";

/// The most items one backend page may hold (AIP-158 as the services implement it).
const BACKEND_MAX_PAGE: i32 = 1000;
/// `first` when it is not given.
const DEFAULT_FIRST: i32 = 50;

/// The paging fields of a List RPC.
#[derive(Debug, Clone)]
pub struct Paging {
    page_size: FieldDescriptor,
    page_token: FieldDescriptor,
    next_page_token: FieldDescriptor,
    /// The response's repeated item field.
    pub items: FieldDescriptor,
}

impl Paging {
    /// The paging fields of `method`, when it is an AIP-158 List.
    pub fn of(method: &MethodDescriptor) -> Option<Self> {
        let request = method.input();
        let response = method.output();
        Some(Self {
            page_size: request.get_field_by_name("page_size")?,
            page_token: request.get_field_by_name("page_token")?,
            next_page_token: response.get_field_by_name("next_page_token")?,
            items: list_item_field(&response)?,
        })
    }
}

/// One edge.
pub struct Edge {
    cursor: String,
    node: DynamicMessage,
}

/// One page of a connection.
pub struct Page {
    edges: Vec<Edge>,
    has_next_page: bool,
    has_previous_page: bool,
    end_cursor: Option<String>,
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
) -> async_graphql::Result<(i32, Option<String>)> {
    let first = match ctx.args.get("first") {
        Some(value) if !value.is_null() => {
            let first = value.i64()?;
            if first < 0 {
                return Err(errors::coded(
                    "BAD_USER_INPUT",
                    "first must not be negative",
                ));
            }
            i32::try_from(first.min(i64::from(max_page_size))).unwrap_or(max_page_size)
        }
        _ => DEFAULT_FIRST.min(max_page_size),
    };
    let after = match ctx.args.get("after") {
        Some(value) if !value.is_null() => Some(value.string()?.to_owned()),
        _ => None,
    };
    Ok((first, after))
}

/// Fetches the page of `first` items after `after`, with `request`'s filters.
pub async fn fetch(
    runtime: &Runtime,
    scope: &RequestScope,
    rpc: &Rpc,
    paging: &Paging,
    mut request: DynamicMessage,
    first: i32,
    after: Option<&str>,
) -> Result<Page, Status> {
    let (offset, token) = match after {
        Some(cursor) => decode_cursor(cursor)
            .ok_or_else(|| Status::invalid_argument("after is not a cursor of this list"))?,
        None => (0, String::new()),
    };
    let wanted = usize::try_from(first).unwrap_or_default();
    let size = i32::try_from(offset + wanted.max(1))
        .unwrap_or(BACKEND_MAX_PAGE)
        .min(BACKEND_MAX_PAGE);
    request.set_field(&paging.page_size, prost_reflect::Value::I32(size));
    request.set_field(
        &paging.page_token,
        prost_reflect::Value::String(token.clone()),
    );
    let response = runtime.backends.unary(rpc, request, &scope.call).await?;
    Ok(paging.page_of(response, offset, wanted, &token, after))
}

impl Paging {
    /// Asks `request` for the first page of `page_size` items.
    pub fn first_page(&self, request: &mut DynamicMessage, page_size: i32) {
        request.set_field(
            &self.page_size,
            prost_reflect::Value::I32(page_size.clamp(1, BACKEND_MAX_PAGE)),
        );
        request.set_field(
            &self.page_token,
            prost_reflect::Value::String(String::new()),
        );
    }

    /// The connection page of `first` items of a List response to a first-page request.
    pub fn first_page_of(&self, response: DynamicMessage, first: i32) -> Page {
        let wanted = usize::try_from(first).unwrap_or_default();
        self.page_of(response, 0, wanted, "", None)
    }

    /// The `wanted` items after the first `offset` of `response`, the page of `token`.
    fn page_of(
        &self,
        mut response: DynamicMessage,
        offset: usize,
        wanted: usize,
        token: &str,
        after: Option<&str>,
    ) -> Page {
        let next = response
            .get_field(&self.next_page_token)
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let items = match response.take_field(&self.items) {
            Some(prost_reflect::Value::List(items)) => items,
            _ => Vec::new(),
        };
        let total = items.len();
        let mut edges: Vec<Edge> = items
            .into_iter()
            .skip(offset)
            .take(wanted)
            .filter_map(|item| match item {
                prost_reflect::Value::Message(message) => Some(message),
                _ => None,
            })
            .enumerate()
            .map(|(index, node)| Edge {
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
        Page {
            edges,
            has_next_page,
            has_previous_page: after.is_some(),
            end_cursor,
        }
    }
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
}

fn page<'a>(ctx: &ResolverContext<'a>) -> Option<&'a Page> {
    ctx.parent_value.downcast_ref::<Page>()
}

/// `<Node>Connection` and `<Node>Edge`.
pub fn connection_types(node: &str) -> (Object, Object) {
    let edge_name = format!("{node}Edge");
    let connection = Object::new(format!("{node}Connection"))
        .description(format!("A page of {node} items (a Relay connection)."))
        .field(
            Field::new("edges", TypeRef::named_nn_list_nn(&edge_name), |ctx| {
                FieldFuture::Value(page(&ctx).map(|page| {
                    FieldValue::list(page.edges.iter().map(|edge| FieldValue::borrowed_any(edge)))
                }))
            })
            .description("The items of this page, each with its cursor."),
        )
        .field(
            Field::new("nodes", TypeRef::named_nn_list_nn(node), |ctx| {
                FieldFuture::Value(page(&ctx).map(|page| {
                    FieldValue::list(
                        page.edges
                            .iter()
                            .map(|edge| FieldValue::borrowed_any(&edge.node)),
                    )
                }))
            })
            .description("The items of this page."),
        )
        .field(
            Field::new("pageInfo", TypeRef::named_nn("PageInfo"), |ctx| {
                FieldFuture::Value(page(&ctx).map(|page| FieldValue::borrowed_any(page)))
            })
            .description("Where this page is in the list."),
        );
    let edge = Object::new(&edge_name)
        .description(format!("One {node} in a page, with its cursor."))
        .field(
            Field::new("cursor", TypeRef::named_nn(TypeRef::STRING), |ctx| {
                FieldFuture::from_value(
                    ctx.parent_value
                        .downcast_ref::<Edge>()
                        .map(|edge| Value::String(edge.cursor.clone())),
                )
            })
            .description("Pass as `after` to continue after this item."),
        )
        .field(
            Field::new("node", TypeRef::named_nn(node), |ctx| {
                FieldFuture::Value(
                    ctx.parent_value
                        .downcast_ref::<Edge>()
                        .map(|edge| FieldValue::borrowed_any(&edge.node)),
                )
            })
            .description("The item."),
        );
    (connection, edge)
}

/// The shared `PageInfo` type.
pub fn page_info() -> Object {
    let flag = |name: &str, description: &str, read: fn(&Page) -> bool| {
        Field::new(name, TypeRef::named_nn(TypeRef::BOOLEAN), move |ctx| {
            FieldFuture::from_value(page(&ctx).map(|page| Value::Boolean(read(page))))
        })
        .description(description)
    };
    let cursor = |name: &str, description: &str, read: fn(&Page) -> Option<String>| {
        Field::new(name, TypeRef::named(TypeRef::STRING), move |ctx| {
            FieldFuture::from_value(page(&ctx).and_then(read).map(Value::String))
        })
        .description(description)
    };
    Object::new("PageInfo")
        .description("Where a page is in its list (Relay).")
        .field(flag(
            "hasNextPage",
            "Whether more items follow: false only at the end of the list.",
            |page| page.has_next_page,
        ))
        .field(flag(
            "hasPreviousPage",
            "Whether items precede this page (true when `after` was given).",
            |page| page.has_previous_page,
        ))
        .field(cursor(
            "startCursor",
            "The cursor of the first edge.",
            |page| page.edges.first().map(|edge| edge.cursor.clone()),
        ))
        .field(cursor(
            "endCursor",
            "The cursor to pass as `after` for the next page.",
            |page| page.end_cursor.clone(),
        ))
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
