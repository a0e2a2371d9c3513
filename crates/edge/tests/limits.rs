//! The edge's bounds against a hostile client, over real HTTP in front of the real customers
//! service: documents past their size or tokens refused before parsing (memory under many bad
//! documents is `document_memory.rs`); a static cost that sees pages, batch gets and every
//! fragment spread, refused over the limit before any backend call and answered in
//! `extensions.cost`; each caller's budget per minute (429 with `Retry-After`); and a batch get
//! asking the backend for each distinct id once.

mod support;

use crowdcrunch_runtime::auth::Grant;
use crowdcrunch_runtime::edge::EdgeSettings;
use crowdcrunch_runtime::testing::token;
use serde_json::{Value, json};
use support::{App, codes, spawn_app};

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// Every backend call the edge made so far.
fn backend_calls(app: &App) -> u64 {
    app.edge.backend_calls().values().sum()
}

/// POSTs `body` as staff, asking for `application/graphql-response+json`.
async fn post(app: &App, body: &Value) -> support::Answer {
    app.post(body, &[("accept", GRAPHQL_RESPONSE)]).await
}

/// POSTs `query` as staff, asking for `application/graphql-response+json`; the JSON answer,
/// once its status is `status`.
async fn answered(app: &App, query: &str, status: u16) -> Value {
    let answer = post(app, &json!({ "query": query })).await;
    let body = String::from_utf8_lossy(&answer.body);
    assert_eq!(answer.status, status, "{}", &body[..body.len().min(2000)]);
    answer.json()
}

#[tokio::test]
async fn a_document_past_its_size_or_its_tokens_is_refused_before_parsing() {
    let app = spawn_app(EdgeSettings::default(), &[]).await;
    let settings = app.edge.settings().clone();

    let long = format!(
        "{{ customers {{ nodes {{ id }} }} }} # {}",
        "x".repeat(settings.max_document_bytes)
    );
    let body = answered(&app, &long, 400).await;
    assert_eq!(codes(&body), ["QUERY_TOO_LARGE"]);
    assert_eq!(
        body["errors"][0]["extensions"]["maxBytes"],
        settings.max_document_bytes
    );

    // Short enough, but more tokens than allowed.
    let many = format!("{{ {} }}", "a ".repeat(settings.max_tokens));
    assert!(many.len() < settings.max_document_bytes);
    let body = answered(&app, &many, 400).await;
    assert_eq!(codes(&body), ["QUERY_TOO_LARGE"]);
    assert_eq!(
        body["errors"][0]["extensions"]["maxTokens"],
        settings.max_tokens
    );

    // Neither was validated, nor is either kept.
    assert_eq!(app.edge.validations(), 0);
    assert_eq!(app.edge.cached_documents().documents.entries, 0);

    // GraphiQL's introspection query is within every limit.
    let introspecting = spawn_app(
        EdgeSettings {
            introspection: true,
            ..EdgeSettings::default()
        },
        &[],
    )
    .await;
    let body = answered(&introspecting, include_str!("introspection.graphql"), 200).await;
    assert!(body["errors"].is_null(), "{body}");
    assert!(body["data"]["__schema"]["types"].is_array());
    introspecting.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn nested_pages_are_too_costly_before_any_backend_call() {
    let app = spawn_app(EdgeSettings::default(), &["orders", "ledger"]).await;
    let query = "{ customers(first: 100) { nodes { orders(first: 100) { nodes { customer { \
                 orders(first: 100) { nodes { events(first: 100) { nodes { id type } } } } } } } } } }";
    assert!(query.len() < 300);
    let body = answered(&app, query, 400).await;
    assert_eq!(codes(&body), ["QUERY_TOO_COSTLY"]);
    let extensions = &body["errors"][0]["extensions"];
    assert_eq!(extensions["limit"], 50_000);
    assert!(extensions["cost"].as_u64().expect("a number") > 100_000_000);
    assert_eq!(backend_calls(&app), 0);
    app.stop().await;
}

#[tokio::test]
async fn every_spread_of_a_fragment_and_every_alias_is_priced() {
    let app = spawn_app(EdgeSettings::default(), &["orders", "ledger"]).await;
    // 25 aliases in all, within the limit of 30, each fragment written once and spread many
    // times: 5 pages of 10 customers, each with 10 pages of 10 orders, each with 10 pages of
    // events.
    let events: Vec<String> = (0..10)
        .map(|n| format!("e{n}: events(first: 100) {{ nodes {{ id }} }}"))
        .collect();
    let orders: Vec<String> = (0..10)
        .map(|n| format!("o{n}: orders(first: 10) {{ nodes {{ ...G }} }}"))
        .collect();
    let customers: Vec<String> = (0..5)
        .map(|n| format!("c{n}: customers(first: 10) {{ nodes {{ ...F }} }}"))
        .collect();
    let query = format!(
        "{{ {} }} fragment F on Customer {{ {} }} fragment G on Order {{ {} }}",
        customers.join(" "),
        orders.join(" "),
        events.join(" ")
    );
    let body = answered(&app, &query, 400).await;
    assert_eq!(codes(&body), ["QUERY_TOO_COSTLY"]);
    // G: 10 × (events + 100 × (nodes + id)); F: 10 × (orders + 10 × (nodes + G));
    // each root: customers + 10 × (nodes + F).
    let g = 10 * (1 + 100 * 2);
    let f = 10 * (1 + 10 * (1 + g));
    let root = 1 + 10 * (1 + f);
    assert_eq!(body["errors"][0]["extensions"]["cost"], 5 * root);
    assert_eq!(backend_calls(&app), 0);
    app.stop().await;
}

#[tokio::test]
async fn every_response_carries_its_cost() {
    let app = spawn_app(EdgeSettings::default(), &[]).await;
    let answer = post(
        &app,
        &json!({ "query": "{ customers(first: 5) { nodes { id email } } }" }),
    )
    .await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(
        body["extensions"]["cost"],
        json!({ "requestedQueryCost": 1 + 5 * 3, "maximumAvailable": 50_000 })
    );

    // A request that ran and failed carries it too.
    let answer = post(
        &app,
        &json!({ "query": "{ customer(id: \"00000000-0000-0000-0000-000000000000\") { id } }" }),
    )
    .await;
    let body = answer.json();
    assert_eq!(codes(&body), ["NOT_FOUND"], "{body}");
    assert_eq!(body["extensions"]["cost"]["requestedQueryCost"], 2);
    app.stop().await;
}

/// The edge with a budget of 100 points a minute per caller (two queries of 41), in front of
/// the customers service and the `extra` backends, which are not running.
async fn spawn_with_budget(extra: &[&str]) -> App {
    let settings = EdgeSettings {
        cost_budget_per_minute: 100,
        ..EdgeSettings::default()
    };
    spawn_app(settings, extra).await
}

/// The `extensions.cost` of `body`'s operation, checked against the default limit.
fn reported_cost(body: &Value) -> u64 {
    let cost = &body["extensions"]["cost"];
    assert_eq!(cost["maximumAvailable"], 50_000, "{body}");
    cost["requestedQueryCost"].as_u64().expect("a cost")
}

#[tokio::test]
async fn a_join_without_first_multiplies_its_selection_by_its_page() {
    let app = spawn_app(
        EdgeSettings::default(),
        &["orders", "payments", "fulfillment"],
    )
    .await;
    let bound = u64::try_from(app.edge.settings().max_page_size).expect("a page size");
    let order = "\"00000000-0000-0000-0000-000000000000\"";
    let cost = |selection: String| {
        let app = &app;
        async move {
            // The order is not found (its backend is down): it ran, and says its cost.
            reported_cost(&post(app, &json!({ "query": selection })).await.json())
        }
    };
    let without = cost(format!("{{ order(id: {order}) {{ id }} }}")).await;
    // Each payment: the field once per item, and its id and status.
    let each = 3;
    for with in [
        format!("{{ order(id: {order}) {{ id payments {{ id status }} }} }}"),
        format!("{{ order(id: {order}) {{ id shipments {{ id status }} }} }}"),
        format!(
            "{{ order(id: {order}) {{ id ...P }} }} \
             fragment P on Order {{ paid: payments {{ id status }} }}"
        ),
    ] {
        assert_eq!(cost(with.clone()).await - without, bound * each, "{with}");
    }
    app.stop().await;
}

#[tokio::test]
async fn refusals_for_cost_or_budget_carry_the_cost_and_unpriced_documents_none() {
    let app = spawn_with_budget(&["orders", "ledger"]).await;
    let costly = "{ customers(first: 100) { nodes { orders(first: 100) { nodes { events(first: 100) \
                  { nodes { id } } } } } } }";
    let body = answered(&app, costly, 400).await;
    assert_eq!(codes(&body), ["QUERY_TOO_COSTLY"]);
    assert_eq!(
        reported_cost(&body),
        body["errors"][0]["extensions"]["cost"]
            .as_u64()
            .expect("a cost")
    );

    // 1 + 20 × (nodes + id): 41 points, twice within the budget of 100, then refused.
    let query = "{ customers(first: 20) { nodes { id } } }";
    for _ in 0..2 {
        assert_eq!(reported_cost(&answered(&app, query, 200).await), 41);
    }
    for accept in [GRAPHQL_RESPONSE, "application/json"] {
        let answer = app
            .post(&json!({ "query": query }), &[("accept", accept)])
            .await;
        assert_eq!(answer.status, 429);
        let body = answer.json();
        assert_eq!(codes(&body), ["RATE_LIMITED"]);
        assert_eq!(reported_cost(&body), 41);
    }

    // A document that does not parse has no cost; one that does not validate did not run.
    for query in [
        "{ customers(first: 1) {",
        "{ customers(first: 1) { nodes { nope } } }",
    ] {
        let body = answered(&app, query, 400).await;
        assert!(body["extensions"]["cost"].is_null(), "{body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_caller_past_their_budget_is_told_when_to_come_back() {
    let app = spawn_with_budget(&["inventory"]).await;
    // 1 + 20 × (nodes + id): 41 points.
    let query = "{ customers(first: 20) { nodes { id } } }";
    for _ in 0..2 {
        answered(&app, query, 200).await;
    }
    let calls = backend_calls(&app);
    let query = json!({ "query": query });
    let answer = post(&app, &query).await;
    assert_eq!(answer.status, 429);
    assert_eq!(codes(&answer.json()), ["RATE_LIMITED"]);
    let retry_after: u64 = answer
        .headers
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(
        backend_calls(&app),
        calls,
        "refused before any backend call"
    );
    // Under application/json too.
    let answer = app.post(&query, &[("accept", "application/json")]).await;
    assert_eq!(answer.status, 429);

    // Another caller has a budget of their own.
    let customer = format!("Bearer {}", token(&Grant::Customer("cus_1".to_owned())));
    let mine = json!({ "query": "{ customer(id: \"cus_1\") { id } }" });
    let answer = app
        .post(
            &mine,
            &[("authorization", &customer), ("accept", GRAPHQL_RESPONSE)],
        )
        .await;
    assert_ne!(answer.status, 429);

    // Callers without a token are charged by their address (not by a forwarded one, from a
    // client the edge does not trust).
    for (forwarded, expected) in [("192.0.2.1", 200), ("192.0.2.2", 200), ("192.0.2.3", 429)] {
        assert_eq!(ask(&app, forwarded).await, expected);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_batch_get_asks_the_backend_for_each_distinct_id_once() {
    let app = spawn_app(EdgeSettings::default(), &[]).await;
    let mut ids = Vec::new();
    for name in ["ada", "bob"] {
        let created = app
            .graphql(
                "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }",
                json!({"input": {"customer": {"email": format!("{name}@example.com"), "displayName": name}}}),
            )
            .await;
        ids.push(
            created["data"]["createCustomer"]["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    let (ada, bob) = (&ids[0], &ids[1]);
    let query = "query($ids: [ID!]!) { batchGetCustomers(ids: $ids) { customers { id } } }";

    // Answered in the order asked, duplicates in place.
    let response = app
        .graphql(query, json!({ "ids": [ada, bob, ada, ada] }))
        .await;
    assert!(response["errors"].is_null(), "{response}");
    let answered: Vec<&str> = response["data"]["batchGetCustomers"]["customers"]
        .as_array()
        .expect("customers")
        .iter()
        .map(|customer| customer["id"].as_str().expect("id"))
        .collect();
    assert_eq!(answered, [ada, bob, ada, ada]);

    // 1,001 copies of one id: the backend, which answers at most 1,000 ids per call, is asked
    // for one.
    let many = vec![ada.clone(); 1001];
    let response = app.graphql(query, json!({ "ids": many })).await;
    assert!(response["errors"].is_null(), "{response}");
    let customers = response["data"]["batchGetCustomers"]["customers"]
        .as_array()
        .expect("customers");
    assert_eq!(customers.len(), 1001);
    assert!(
        customers
            .iter()
            .all(|customer| customer["id"] == json!(ada))
    );
    app.stop().await;
}

/// The status of a catalog query from `client` (by `X-Forwarded-For`) without a token: 41 points.
async fn ask(app: &App, client: &str) -> u16 {
    let catalog = json!({ "query": "{ products(first: 20) { nodes { sku } } }" });
    app.post_exactly(
        &catalog,
        &[("accept", "application/json"), ("x-forwarded-for", client)],
    )
    .await
    .status
}

#[tokio::test]
async fn behind_a_trusted_proxy_callers_without_a_token_are_told_apart_by_x_forwarded_for() {
    let settings = EdgeSettings {
        cost_budget_per_minute: 100,
        trusted_proxy: true,
        ..EdgeSettings::default()
    };
    let app = spawn_app(settings, &["inventory"]).await;
    // The proxy appends the address it saw; what comes before is the client's own say.
    for expected in [200, 200, 429] {
        assert_eq!(ask(&app, "203.0.113.1, 198.51.100.7").await, expected);
    }
    assert_eq!(
        ask(&app, "192.0.2.99, 198.51.100.7").await,
        429,
        "a forged first entry does not buy a fresh budget"
    );
    assert_eq!(ask(&app, "198.51.100.8").await, 200);
    app.stop().await;
}
