//! The static cost of an operation, known before it runs, so an operation too costly is refused
//! before any backend call and each caller's budget is charged what it asks for.
//!
//! Each field costs 1, plus what its selection costs. A list field costs that once per item it
//! may hold:
//! - the page size its parent set: the `first` of a connection (a root's or a join's, coerced to
//!   the largest page as the resolver coerces it; the largest page when it is not given) for its
//!   `nodes` and `edges`, and the number of ids (or SKUs) of a batch get for its items;
//! - for a list its parent does not size that calls a backend of its own (a MANY join such as
//!   `Order.payments`), the largest page, [`Plan::max_page_size`], as for a connection without
//!   `first`. The descriptors declare no bound of a MANY join per parent, and its loader reads
//!   every item of its parents (within its bound on work per batch, thousands of items), so
//!   this is the page a parent is expected to stay within, not a guarantee: a parent with more
//!   items costs more to answer than its price;
//! - for a repeated field of a message already fetched (an order's `lines`), the estimate
//!   [`EMBEDDED_LIST_ITEMS`];
//! - for the lists of introspection's types (`__Schema.types`, `__Type.fields`), 1: the schema in
//!   memory answers them, with no backend call, and the depth limit bounds their nesting.
//!
//! Fragments are priced where they are spread, every time they are spread, and aliases are fields
//! like any other. The arguments are read with the request's variables, so one document costs
//! what each request asks for. The arithmetic saturates: a cost past `u64::MAX` is `u64::MAX`.
//!
//! Every response of an operation that was priced carries its cost as `extensions.cost`,
//! refusals for its cost (`QUERY_TOO_COSTLY`) or for the caller's budget (`RATE_LIMITED`)
//! included. A document that could not be parsed, whose variables do not coerce or whose caller
//! must authenticate first has no operation priced, and a document that fails validation did
//! not run: their responses carry no cost.

use std::collections::HashMap;

use async_graphql::parser::types::{
    ExecutableDocument, Field, OperationDefinition, OperationType, Selection, SelectionSet,
};
use async_graphql::registry::{MetaField, MetaTypeName, Registry};
use async_graphql::{Name, Value, Variables};

use crate::plan::Plan;

/// The deepest selection priced; a deeper one (which the depth limit refuses anyway) costs
/// `u64::MAX`.
const MAX_DEPTH: usize = 256;

/// The items a repeated field of a message already fetched is priced at, such as an order's
/// `lines` or a shipment's: the edge cannot know how many there are before the call (each
/// service sets its own bound, up to 100 lines an order and 1,000 a shipment), and they cost no
/// backend call of their own, only their share of a response. 10 is a generous order's worth:
/// selecting them costs like a small page, not like one field.
pub(super) const EMBEDDED_LIST_ITEMS: u64 = 10;

/// The static cost of `operation` in `document` with `variables`, with the joins and the largest
/// page (the page of a connection whose `first` is not given, the most any `first` can ask for,
/// and the page of a MANY join) of `plan`.
pub(super) fn cost(
    registry: &Registry,
    plan: &Plan,
    document: &ExecutableDocument,
    operation: &OperationDefinition,
    variables: &Variables,
) -> u64 {
    let root = match operation.ty {
        OperationType::Query => Some(registry.query_type.as_str()),
        OperationType::Mutation => registry.mutation_type.as_deref(),
        OperationType::Subscription => registry.subscription_type.as_deref(),
    };
    let mut pricing = Pricing {
        registry,
        document,
        operation,
        variables,
        plan,
        max_page_size: u64::try_from(plan.max_page_size).unwrap_or(0),
        fragments: HashMap::new(),
        spreading: Vec::new(),
    };
    pricing.selection_set(&operation.selection_set.node, root, None, 0)
}

/// One operation being priced, with what is known of its fragments.
struct Pricing<'a> {
    registry: &'a Registry,
    document: &'a ExecutableDocument,
    operation: &'a OperationDefinition,
    variables: &'a Variables,
    /// The joins: a list field that calls a backend is one of `plan.guarded`.
    plan: &'a Plan,
    max_page_size: u64,
    /// The cost of each fragment already priced, by its name and the page size it was spread
    /// under: a fragment spread many times is priced once per page size.
    fragments: HashMap<(&'a str, Option<u64>), u64>,
    /// The fragments being spread (a cycle, which validation refuses, costs nothing more).
    spreading: Vec<&'a str>,
}

impl<'a> Pricing<'a> {
    /// The cost of `set`, selected on `type_name` (`None` when unknown: validation reports it),
    /// where a list field holds `page` items (`None` when its parent field sets no page).
    fn selection_set(
        &mut self,
        set: &'a SelectionSet,
        type_name: Option<&'a str>,
        page: Option<u64>,
        depth: usize,
    ) -> u64 {
        if depth > MAX_DEPTH {
            return u64::MAX;
        }
        set.items.iter().fold(0, |total, selection| {
            let cost = match &selection.node {
                Selection::Field(field) => self.field(&field.node, type_name, page, depth),
                Selection::InlineFragment(fragment) => {
                    let on = fragment
                        .node
                        .type_condition
                        .as_ref()
                        .map(|condition| condition.node.on.node.as_str())
                        .or(type_name);
                    self.selection_set(&fragment.node.selection_set.node, on, page, depth + 1)
                }
                Selection::FragmentSpread(spread) => {
                    self.fragment(spread.node.fragment_name.node.as_str(), page, depth)
                }
            };
            total.saturating_add(cost)
        })
    }

    /// The cost of `field` of `type_name`, where a list field holds `page` items.
    fn field(
        &mut self,
        field: &'a Field,
        type_name: Option<&'a str>,
        page: Option<u64>,
        depth: usize,
    ) -> u64 {
        let meta = type_name
            .and_then(|name| self.registry.types.get(name))
            .and_then(|meta| meta.field_by_name(&field.name.node));
        let children = &field.selection_set.node;
        let (Some(type_name), Some(meta)) = (type_name, meta) else {
            return 1u64.saturating_add(self.selection_set(children, None, None, depth + 1));
        };
        let items = if MetaTypeName::create(&meta.ty).unwrap_non_null().is_list() {
            page.unwrap_or_else(|| self.unsized_list_items(type_name, &meta.name))
        } else {
            1
        };
        let child_type = MetaTypeName::concrete_typename(&meta.ty);
        let child_page = self.page_of(field, meta);
        let selection = self.selection_set(children, Some(child_type), child_page, depth + 1);
        items.saturating_mul(selection.saturating_add(1))
    }

    /// The items of the list field `field` of `type_name` whose parent sets no page: a join's
    /// page, introspection's one, or an embedded list's estimate.
    fn unsized_list_items(&self, type_name: &str, field: &str) -> u64 {
        if type_name.starts_with("__") {
            return 1;
        }
        let calls_a_backend = self
            .plan
            .guarded
            .get(type_name)
            .is_some_and(|fields| fields.contains_key(field));
        if calls_a_backend {
            self.max_page_size
        } else {
            EMBEDDED_LIST_ITEMS
        }
    }

    /// The cost of spreading fragment `name` where a list holds `page` items.
    fn fragment(&mut self, name: &'a str, page: Option<u64>, depth: usize) -> u64 {
        if let Some(cost) = self.fragments.get(&(name, page)) {
            return *cost;
        }
        let Some(fragment) = self.document.fragments.get(name) else {
            return 0;
        };
        if self.spreading.contains(&name) {
            return 0;
        }
        self.spreading.push(name);
        let on = fragment.node.type_condition.node.on.node.as_str();
        let cost = self.selection_set(&fragment.node.selection_set.node, Some(on), page, depth + 1);
        self.spreading.pop();
        self.fragments.insert((name, page), cost);
        cost
    }

    /// How many items the lists that `field` answers hold: its `first` (a connection), the
    /// number of items of its non-null list argument (a batch get's ids), or `None` when its
    /// arguments do not say.
    fn page_of(&self, field: &'a Field, meta: &MetaField) -> Option<u64> {
        if meta.args.contains_key("first") {
            return Some(match self.argument(field, "first") {
                Some(Value::Number(first)) => first.as_i64().map_or(self.max_page_size, |first| {
                    u64::try_from(first).map_or(0, |first| first.min(self.max_page_size))
                }),
                // Not given, null, or not a number (which validation refuses).
                _ => self.max_page_size,
            });
        }
        let list = meta
            .args
            .values()
            .find(|input| input.ty.starts_with('[') && input.ty.ends_with('!'))?;
        Some(match self.argument(field, &list.name) {
            Some(Value::List(items)) => u64::try_from(items.len()).unwrap_or(u64::MAX),
            None | Some(Value::Null) => 0,
            // A single value stands for a list of one.
            Some(_) => 1,
        })
    }

    /// The value of `field`'s argument `name`, its variables replaced by their values.
    fn argument(&self, field: &'a Field, name: &str) -> Option<Value> {
        let (_, value) = field
            .arguments
            .iter()
            .find(|(argument, _)| argument.node == name)?;
        value
            .node
            .clone()
            .into_const_with(|variable| {
                Ok::<_, std::convert::Infallible>(
                    self.variable(&variable).cloned().unwrap_or(Value::Null),
                )
            })
            .ok()
    }

    /// The value of variable `name`: the request's, or its declared default.
    fn variable(&self, name: &Name) -> Option<&'a Value> {
        self.variables.get(name).or_else(|| {
            self.operation
                .variable_definitions
                .iter()
                .find(|definition| definition.node.name.node == *name)
                .and_then(|definition| definition.node.default_value.as_ref())
                .map(|default| &default.node)
        })
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::dynamic::Schema;
    use crowdcrunch_runtime::edge::EdgeSettings;
    use serde_json::json;

    use std::sync::Arc;

    use super::*;
    use crate::request::documents::operation;
    use crate::request::fuzz::gateway;

    /// The largest page in these tests.
    const MAX_PAGE: u64 = 100;

    /// The schema and the plan of the production descriptors.
    struct Edge {
        schema: Schema,
        plan: Arc<Plan>,
    }

    fn edge() -> Edge {
        let settings = EdgeSettings {
            introspection: true,
            ..EdgeSettings::default()
        };
        let (_runtime, gateway) = gateway(settings);
        assert_eq!(
            u64::try_from(gateway.0.plan.max_page_size).ok(),
            Some(MAX_PAGE)
        );
        Edge {
            schema: gateway.0.schema.clone(),
            plan: gateway.0.plan.clone(),
        }
    }

    fn cost_of(edge: &Edge, query: &str, variables: serde_json::Value) -> u64 {
        let document = async_graphql::parser::parse_query(query).expect("parses");
        let operation = operation(&document, None).expect("one operation");
        let variables = Variables::from_json(variables);
        cost(
            edge.schema.registry(),
            &edge.plan,
            &document,
            operation,
            &variables,
        )
    }

    #[test]
    fn each_field_costs_one_and_a_page_multiplies_its_items() {
        let edge = edge();
        assert_eq!(cost_of(&edge, "{ __typename }", json!({})), 1);
        // customers + 10 × (nodes + id)
        let page = "{ customers(first: 10) { nodes { id } } }";
        assert_eq!(cost_of(&edge, page, json!({})), 1 + 10 * 2);
        // pageInfo is one object, whatever the page.
        let info =
            "{ customers(first: 10) { pageInfo { hasNextPage } edges { cursor node { id } } } }";
        assert_eq!(cost_of(&edge, info, json!({})), 1 + 2 + 10 * 4);
        // Without `first`, the largest page; above it, coerced to it.
        let absent = "{ customers { nodes { id } } }";
        assert_eq!(cost_of(&edge, absent, json!({})), 1 + MAX_PAGE * 2);
        let above = "{ customers(first: 5000) { nodes { id } } }";
        assert_eq!(cost_of(&edge, above, json!({})), 1 + MAX_PAGE * 2);
        let variable = "query($n: Int) { customers(first: $n) { nodes { id } } }";
        assert_eq!(cost_of(&edge, variable, json!({"n": 3})), 1 + 3 * 2);
        assert_eq!(cost_of(&edge, variable, json!({})), 1 + MAX_PAGE * 2);
        let default = "query($n: Int = 7) { customers(first: $n) { nodes { id } } }";
        assert_eq!(cost_of(&edge, default, json!({})), 1 + 7 * 2);
    }

    #[test]
    fn a_batch_get_multiplies_by_its_ids_literal_or_variable() {
        let edge = edge();
        let literal = r#"{ batchGetCustomers(ids: ["a", "b", "a"]) { customers { id email } } }"#;
        assert_eq!(cost_of(&edge, literal, json!({})), 1 + 3 * 3);
        let variable = "query($ids: [ID!]!) { batchGetCustomers(ids: $ids) { customers { id } } }";
        let ids: Vec<String> = (0..500).map(|i| i.to_string()).collect();
        assert_eq!(cost_of(&edge, variable, json!({ "ids": ids })), 1 + 500 * 2);
    }

    #[test]
    fn joins_pages_multiply_all_the_way_down() {
        let edge = edge();
        let nested = "{ customers(first: 100) { nodes { orders(first: 100) { nodes { customer { \
                      orders(first: 100) { nodes { events(first: 100) { nodes { id } } } } } } } } } }";
        assert!(cost_of(&edge, nested, json!({})) > 100_000_000);
    }

    #[test]
    fn a_many_join_multiplies_by_the_largest_page_and_embedded_lists_by_their_estimate() {
        let edge = edge();
        let without = r#"{ order(id: "o") { id } }"#;
        assert_eq!(cost_of(&edge, without, json!({})), 2);
        // order + id + 100 × (payments + id): a join's page, as a connection's without `first`.
        let join = r#"{ order(id: "o") { id payments { id } } }"#;
        assert_eq!(cost_of(&edge, join, json!({})), 2 + MAX_PAGE * 2);
        let joins = r#"{ order(id: "o") { payments { id } shipments { id } returns { id } } }"#;
        assert_eq!(cost_of(&edge, joins, json!({})), 1 + 3 * MAX_PAGE * 2);
        // Under a page of orders, once per order.
        let paged = "{ orders(first: 20) { nodes { payments { id } } } }";
        assert_eq!(
            cost_of(&edge, paged, json!({})),
            1 + 20 * (1 + MAX_PAGE * 2)
        );
        // An order's lines come with it: an estimate of them, not a page.
        let lines = r#"{ order(id: "o") { lines { sku quantity } } }"#;
        assert_eq!(
            cost_of(&edge, lines, json!({})),
            1 + EMBEDDED_LIST_ITEMS * 3
        );
        // Through a fragment or an alias alike.
        let spread = r#"{ order(id: "o") { ...P } } fragment P on Order { p: payments { id } }"#;
        assert_eq!(cost_of(&edge, spread, json!({})), 1 + MAX_PAGE * 2);
    }

    #[test]
    fn the_benchmark_queries_stay_far_below_the_limit() {
        let edge = edge();
        let limit = EdgeSettings::default().max_cost;
        let order = r#"{ order(id: "o") { id status total { minorUnits } } }"#;
        assert_eq!(cost_of(&edge, order, json!({})), 5);
        let orders = "{ orders(first: 20) { edges { node { id status customer { email } } } } }";
        let cost = cost_of(&edge, orders, json!({}));
        // orders + 20 × (edges + node + id + status + customer + email)
        assert_eq!(cost, 1 + 20 * 6);
        assert!(cost < limit / 100, "{cost}");
    }

    #[test]
    fn a_fragment_costs_every_time_it_is_spread() {
        let edge = edge();
        let once =
            "{ a: customers(first: 10) { nodes { ...F } } } fragment F on Customer { id email }";
        let twice = "{ a: customers(first: 10) { nodes { ...F } } b: customers(first: 20) { nodes { ...F } } } \
                     fragment F on Customer { id email }";
        assert_eq!(cost_of(&edge, once, json!({})), 1 + 10 * 3);
        assert_eq!(cost_of(&edge, twice, json!({})), 1 + 10 * 3 + 1 + 20 * 3);
        let inline = "{ customers(first: 10) { nodes { ... on Customer { id email } } } }";
        assert_eq!(cost_of(&edge, inline, json!({})), 1 + 10 * 3);
    }

    #[test]
    fn fragments_spread_exponentially_saturate_without_walking_each_spread() {
        let edge = edge();
        let mut query = "{ customer(id: \"a\") { ...F0 } }".to_owned();
        for level in 0..80 {
            query.push_str(&format!(
                " fragment F{level} on Customer {{ ...F{next} ...F{next} }}",
                next = level + 1
            ));
        }
        query.push_str(" fragment F80 on Customer { id }");
        assert_eq!(cost_of(&edge, &query, json!({})), u64::MAX);
        let cycle = "{ customer(id: \"a\") { ...A } } fragment A on Customer { id ...B } \
                     fragment B on Customer { email ...A }";
        assert_eq!(cost_of(&edge, cycle, json!({})), 3);
    }

    #[test]
    fn graphiql_introspection_query_is_cheap() {
        let edge = edge();
        let introspection = include_str!("../../tests/introspection.graphql");
        let document = async_graphql::parser::parse_query(introspection).expect("parses");
        let operation = operation(&document, Some("IntrospectionQuery"))
            .or_else(|| operation(&document, None))
            .expect("one operation");
        let cost = cost(
            edge.schema.registry(),
            &edge.plan,
            &document,
            operation,
            &Variables::default(),
        );
        let settings = crowdcrunch_runtime::edge::EdgeSettings::default();
        assert!(cost < settings.max_cost / 10, "{cost}");
    }
}
