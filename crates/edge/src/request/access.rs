//! The check over a whole operation, before execution and so before any backend call: a caller
//! without a token who selects a root or join field whose rule needs one (anywhere in the
//! operation, through fragments too) is refused as a whole, with HTTP 401. A caller with a token
//! is judged per field as the fields resolve (`crate::access::admit`).

use std::collections::HashSet;

use async_graphql::parser::types::{
    ExecutableDocument, OperationDefinition, OperationType, Selection, SelectionSet,
};
use async_graphql::registry::{MetaTypeName, Registry};

use crate::access::Unauthenticated;
use crate::plan::Plan;

/// The first field of `operation` that a caller without a token may not select, as the refusal.
pub(super) fn anonymous_refusal(
    registry: &Registry,
    plan: &Plan,
    document: &ExecutableDocument,
    operation: &OperationDefinition,
) -> Option<Unauthenticated> {
    let root = match operation.ty {
        OperationType::Query => &registry.query_type,
        OperationType::Mutation => registry.mutation_type.as_ref()?,
        OperationType::Subscription => registry.subscription_type.as_ref()?,
    };
    let mut walk = Walk {
        registry,
        plan,
        document,
        fragments_seen: HashSet::new(),
    };
    walk.selection_set(&operation.selection_set.node, root)
}

/// A walk over the selections of one operation, with the types they select on.
struct Walk<'a> {
    registry: &'a Registry,
    plan: &'a Plan,
    document: &'a ExecutableDocument,
    /// Fragments already walked (validation, which forbids cycles, runs later).
    fragments_seen: HashSet<&'a str>,
}

impl<'a> Walk<'a> {
    fn selection_set(&mut self, set: &'a SelectionSet, type_name: &str) -> Option<Unauthenticated> {
        set.items
            .iter()
            .find_map(|selection| match &selection.node {
                Selection::Field(field) => {
                    let name = field.node.name.node.as_str();
                    let refusing = self
                        .plan
                        .guarded
                        .get(type_name)
                        .and_then(|fields| fields.get(name))
                        .and_then(|rpcs| rpcs.iter().find(|rpc| !rpc.rule.admits_anyone()));
                    if let Some(rpc) = refusing {
                        return Some(Unauthenticated::Anonymous {
                            field: format!("{type_name}.{name}"),
                            rule: rpc.rule.to_string(),
                        });
                    }
                    // An unknown field is left for validation to report.
                    let child = self
                        .registry
                        .types
                        .get(type_name)
                        .and_then(|meta| meta.field_by_name(name))
                        .map(|meta| MetaTypeName::concrete_typename(&meta.ty).to_owned())?;
                    self.selection_set(&field.node.selection_set.node, &child)
                }
                Selection::InlineFragment(fragment) => {
                    let on = fragment
                        .node
                        .type_condition
                        .as_ref()
                        .map_or(type_name, |condition| condition.node.on.node.as_str());
                    self.selection_set(&fragment.node.selection_set.node, on)
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if !self.fragments_seen.insert(name) {
                        return None;
                    }
                    let fragment = self.document.fragments.get(name)?;
                    let on = fragment.node.type_condition.node.on.node.as_str();
                    self.selection_set(&fragment.node.selection_set.node, on)
                }
            })
    }
}
