//! Relay connections over AIP-158 pages: `<Node>Connection { edges { cursor node } nodes
//! pageInfo }`, `<Node>Edge`, and the shared `PageInfo`, with `first`/`after` mapped onto
//! `page_size`/`page_token` (`crate::resolve::page` holds the pages and their cursors).

use async_graphql::Value;
use async_graphql::dynamic::{Field, FieldFuture, FieldValue, Object, ResolverContext, TypeRef};

use super::Builder;
use crate::resolve::page::{ConnectionEdge, Page};

/// The description of `first`.
pub const FIRST_DOC: &str = "How many items to return (default 50). A value above the maximum page size is treated as the maximum; a negative value is an error.";
/// The description of `after`.
pub const AFTER_DOC: &str =
    "The cursor after which to start: an edge's cursor or pageInfo.endCursor.";

impl Builder<'_> {
    /// `<node>Connection` (and its edge type), registered on first use.
    pub(super) fn connection_type(&mut self, node: &str) -> String {
        let name = format!("{node}Connection");
        if self.connections.insert(name.clone()) {
            let (connection, edge) = connection_types(node);
            self.objects.insert(name.clone(), connection);
            self.objects.insert(format!("{node}Edge"), edge);
        }
        name
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
                        .downcast_ref::<ConnectionEdge>()
                        .map(|edge| Value::String(edge.cursor.clone())),
                )
            })
            .description("Pass as `after` to continue after this item."),
        )
        .field(
            Field::new("node", TypeRef::named_nn(node), |ctx| {
                FieldFuture::Value(
                    ctx.parent_value
                        .downcast_ref::<ConnectionEdge>()
                        .map(|edge| FieldValue::borrowed_any(&edge.node)),
                )
            })
            .description("The item."),
        );
    (connection, edge)
}

/// The shared `PageInfo` type.
pub(super) fn page_info() -> Object {
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
