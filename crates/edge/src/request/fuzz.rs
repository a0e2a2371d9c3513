//! Property tests of the request path before execution: arbitrary queries, operation names and
//! variables through the bounds, the parser, the limits, variable coercion, the anonymous check,
//! the cost and the budget (`Gateway::prepare_from`), as a caller with a token and one without;
//! none may panic. The case count is bounded so the run takes seconds.

use std::collections::HashMap;

use async_graphql::{Request, Variables};
use crowdcrunch_runtime::auth::Grant;
use crowdcrunch_runtime::edge::EdgeSettings;
use crowdcrunch_runtime::testing::{TEST_STAFF, issuer};
use proptest::prelude::*;
use proptest::test_runner::Config;

use super::Gateway;
use crate::access::Credentials;

/// Pieces of GraphQL, joined at random into documents that are nearly valid: deep, wide,
/// aliased, fragmented, with variables, and broken in every place a piece can break them.
const PIECES: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "...",
    ":",
    "$",
    "!",
    "=",
    "@",
    "|",
    "&",
    ",",
    "query",
    "mutation",
    "subscription",
    "fragment",
    "F",
    "on",
    "Customer",
    "Query",
    "customers",
    "customer",
    "orders",
    "events",
    "nodes",
    "edges",
    "node",
    "id",
    "email",
    "pageInfo",
    "hasNextPage",
    "first",
    "after",
    "ids",
    "batchGetCustomers",
    "customers",
    "a",
    "b",
    "$v",
    "$ids",
    "100",
    "-1",
    "2147483648",
    "1e400",
    "0.5",
    "\"x\"",
    "\"\"\"block\"\"\"",
    "\"open",
    "true",
    "null",
    "ID",
    "Int",
    "[ID!]!",
    "__typename",
    "__schema",
    "types",
    "name",
    "@include(if: true)",
    "@skip(if: $v)",
    "# comment\n",
    "\u{feff}",
    "\\",
    "é",
];

fn document() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(prop::sample::select(PIECES), 0..300)
            .prop_map(|pieces| pieces.join(" ")),
        any::<String>(),
    ]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        "[a-z]{0,8}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::from),
            prop::collection::hash_map("[a-z]{1,4}", inner, 0..4)
                .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    })
}

fn variables() -> impl Strategy<Value = serde_json::Value> {
    prop::collection::hash_map(
        prop::sample::select(&["v", "ids", "n", "x"][..]),
        json_value(),
        0..4,
    )
    .prop_map(|map| {
        serde_json::Value::Object(map.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    })
}

/// A gateway with `settings` and no backend, verifying the test issuer's tokens, with the
/// runtime its verifier runs in.
pub(super) fn gateway(settings: EdgeSettings) -> (tokio::runtime::Runtime, Gateway) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let gateway = {
        let _entered = runtime.enter();
        Gateway::new(settings, &HashMap::new(), None, issuer().verifier()).expect("gateway")
    };
    (runtime, gateway)
}

#[test]
fn preparing_any_request_never_panics() {
    let settings = EdgeSettings {
        introspection: true,
        ..EdgeSettings::default()
    };
    let (runtime, gateway) = gateway(settings);
    let verifier = &gateway.0.verifier;
    let staff = issuer().token(&Grant::Staff(TEST_STAFF.to_owned()));
    let callers = [
        runtime
            .block_on(Credentials::of_value(verifier, None))
            .expect("anonymous"),
        runtime
            .block_on(Credentials::of_value(
                verifier,
                Some(&format!("Bearer {staff}")),
            ))
            .expect("staff"),
    ];
    let config = Config {
        cases: 512,
        failure_persistence: None,
        ..Config::default()
    };
    proptest!(config, |(
        query in document(),
        operation in prop::option::of(prop::sample::select(&["Q", "F", ""][..])),
        variables in variables(),
        staff in any::<bool>(),
    )| {
        let mut request = Request::new(query).variables(Variables::from_json(variables));
        if let Some(operation) = operation {
            request = request.operation_name(operation);
        }
        let credentials = &callers[usize::from(staff)];
        let _ = gateway.prepare_from(&mut request, credentials, None);
    });
}

#[test]
fn deep_nesting_within_the_token_limit_is_refused_without_overflowing_the_stack() {
    let settings = EdgeSettings::default();
    // Each level of selections is three tokens, of a list value two.
    let depth = settings.max_tokens / 3 - 1;
    let selections = format!("{}{}", "{ a ".repeat(depth), "}".repeat(depth));
    let depth = settings.max_tokens / 2 - 10;
    let values = format!("{{ a(x: {}{}) }}", "[".repeat(depth), "]".repeat(depth));
    for document in [selections, values] {
        // The stack of a tokio worker.
        let parsed = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || {
                super::documents::parse(&document, settings.max_document_bytes, settings.max_tokens)
                    .is_ok()
            })
            .expect("thread")
            .join()
            .expect("no overflow");
        assert!(!parsed, "parsed past the parser's recursion limit");
    }
}
