//! The GraphQL spec's "Single root field" validation (§5.2.3.1), which async-graphql does not
//! make: every subscription operation of a document selects exactly one root field, counted by
//! response key through inline fragments and fragment spreads, and that field is not an
//! introspection field.

use std::collections::HashSet;

use async_graphql::Response;
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};

use super::error_response;

/// The refusal of the first subscription operation of `document` that does not select exactly
/// one root field (`GRAPHQL_VALIDATION_FAILED`, naming the fields it selects), if any.
pub(super) fn single_root_field_refusal(document: &ExecutableDocument) -> Option<Box<Response>> {
    document
        .operations
        .iter()
        .filter(|(_, operation)| operation.node.ty == OperationType::Subscription)
        .find_map(|(name, operation)| {
            let mut keys = Vec::new();
            let mut spread = HashSet::new();
            collect_response_keys(
                document,
                &operation.node.selection_set.node,
                &mut spread,
                &mut keys,
            );
            let subscription = name.map_or_else(
                || "the subscription".to_owned(),
                |name| format!("subscription {name}"),
            );
            match keys.as_slice() {
                [key] if key.starts_with("__") => Some(format!(
                    "{subscription} selects the introspection field {key}; it must select one \
                     field of Subscription"
                )),
                [_] => None,
                keys => Some(format!(
                    "{subscription} must select exactly one root field; it selects {} ({})",
                    keys.len(),
                    keys.join(", ")
                )),
            }
        })
        .map(|message| error_response("GRAPHQL_VALIDATION_FAILED", message))
}

/// The distinct response keys (alias, else name) that `set` selects at its own level, in order,
/// with fragments expanded (each named fragment once, so a cycle ends).
fn collect_response_keys<'a>(
    document: &'a ExecutableDocument,
    set: &'a SelectionSet,
    spread: &mut HashSet<&'a str>,
    keys: &mut Vec<String>,
) {
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) => {
                let key = field.node.response_key().node.as_str();
                if !keys.iter().any(|known| known == key) {
                    keys.push(key.to_owned());
                }
            }
            Selection::InlineFragment(fragment) => {
                collect_response_keys(document, &fragment.node.selection_set.node, spread, keys);
            }
            Selection::FragmentSpread(fragment_spread) => {
                let name = fragment_spread.node.fragment_name.node.as_str();
                if spread.insert(name)
                    && let Some(fragment) = document.fragments.get(name)
                {
                    collect_response_keys(
                        document,
                        &fragment.node.selection_set.node,
                        spread,
                        keys,
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(query: &str) -> Option<String> {
        let document = async_graphql::parser::parse_query(query).expect("a document");
        single_root_field_refusal(&document).map(|response| response.errors[0].message.clone())
    }

    #[test]
    fn a_subscription_selects_exactly_one_root_field() {
        assert_eq!(refusal("subscription { events { sequence } }"), None);
        assert_eq!(
            refusal("subscription { a: events { sequence } }"),
            None,
            "an alias is still one field"
        );
        assert_eq!(
            refusal("subscription { events { sequence } ... { events { type } } }"),
            None,
            "the same response key twice is one field"
        );
        assert_eq!(refusal("{ a: customers { id } b: customers { id } }"), None);
        let two = refusal("subscription S { a: events { sequence } b: events { sequence } }")
            .expect("refused");
        assert!(
            two.contains("subscription S") && two.contains("2 (a, b)"),
            "{two}"
        );
        let through_fragments = refusal(
            "subscription { ...F } fragment F on Subscription { events { sequence } ... on \
             Subscription { other: events { sequence } } ...F }",
        )
        .expect("refused");
        assert!(
            through_fragments.contains("(events, other)"),
            "{through_fragments}"
        );
        let introspection = refusal("subscription { __typename }").expect("refused");
        assert!(introspection.contains("__typename"), "{introspection}");
        assert!(refusal("subscription { __typename events { sequence } }").is_some());
    }
}
