//! The edge over real HTTP and WebSocket, in front of the real customers service.

mod support;

use crowdcrunch_runtime::edge::EdgeSettings;
use serde_json::{Value, json};
use support::{codes, spawn_app};

const CREATE: &str = "mutation($input: CreateCustomerInput!) {
  createCustomer(input: $input) { id email displayName createTime updateTime }
}";

async fn create(app: &support::App, email: &str, name: &str) -> Value {
    let response = app
        .graphql(
            CREATE,
            json!({"input": {"customer": {"email": email, "displayName": name}}}),
        )
        .await;
    assert!(response["errors"].is_null(), "{response}");
    response["data"]["createCustomer"].clone()
}

#[tokio::test]
async fn customers_are_created_read_updated_and_paged_through_graphql() {
    let app = spawn_app(EdgeSettings::default(), &[]).await;
    let ada = create(&app, "ada@example.com", "Ada").await;
    let id = ada["id"].as_str().expect("an id");
    assert_eq!(ada["displayName"], "Ada");
    assert!(
        ada["createTime"]
            .as_str()
            .expect("a DateTime")
            .ends_with('Z')
    );
    for n in 0..4 {
        create(&app, &format!("user{n}@example.com"), "").await;
    }

    // Queries take the request's fields as arguments; a zero value comes back as itself.
    let read = app
        .graphql(
            "query($id: ID!) { customer(id: $id) { id email displayName } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(read["data"]["customer"]["email"], "ada@example.com");

    // The FieldMask comes from the fields supplied: the email is kept.
    let updated = app
        .graphql(
            "mutation($input: UpdateCustomerInput!) { updateCustomer(input: $input) { email displayName } }",
            json!({"input": {"customer": {"id": id, "displayName": "Ada Lovelace"}}}),
        )
        .await;
    assert_eq!(
        updated["data"]["updateCustomer"],
        json!({"email": "ada@example.com", "displayName": "Ada Lovelace"}),
        "{updated}"
    );

    // A connection over the page tokens: 5 customers in pages of 2.
    let mut after = Value::Null;
    let mut seen = Vec::new();
    loop {
        let page = app
            .graphql(
                "query($after: String) { customers(first: 2, after: $after) {
                   edges { cursor node { email } } pageInfo { hasNextPage endCursor } } }",
                json!({"after": after}),
            )
            .await;
        let connection = &page["data"]["customers"];
        for edge in connection["edges"].as_array().expect("edges") {
            seen.push(edge["node"]["email"].as_str().expect("email").to_owned());
        }
        if !connection["pageInfo"]["hasNextPage"]
            .as_bool()
            .expect("hasNextPage")
        {
            break;
        }
        after = connection["pageInfo"]["endCursor"].clone();
        assert!(seen.len() <= 5, "the pages never end: {seen:?}");
    }
    seen.sort();
    assert_eq!(seen.len(), 5, "{seen:?}");
    app.stop().await;
}

#[tokio::test]
async fn backend_errors_become_coded_graphql_errors_with_their_details() {
    let app = spawn_app(EdgeSettings::default(), &[]).await;
    create(&app, "grace@example.com", "Grace").await;
    let cases = [
        (
            json!({"input": {"customer": {"email": "nope"}}}),
            "BAD_USER_INPUT",
            Some(json!(["input", "customer", "email"])),
        ),
        (
            json!({"input": {"customer": {"email": "GRACE@example.com"}}}),
            "ALREADY_EXISTS",
            None,
        ),
    ];
    for (variables, code, path) in cases {
        let response = app.graphql(CREATE, variables).await;
        assert_eq!(codes(&response), [code], "{response}");
        assert_eq!(response["data"]["createCustomer"], Value::Null);
        if let Some(path) = path {
            assert_eq!(
                response["errors"][0]["extensions"]["fieldViolations"][0]["path"], path,
                "{response}"
            );
        }
        assert_eq!(response["errors"][0]["extensions"]["service"], "customers");
    }
    let missing = app
        .graphql(
            "{ customer(id: \"0190b5a5-0000-7000-8000-000000000000\") { id } }",
            Value::Null,
        )
        .await;
    assert_eq!(codes(&missing), ["NOT_FOUND"], "{missing}");
    app.stop().await;
}

#[tokio::test]
async fn a_bad_cursor_is_the_clients_error_not_the_backends() {
    let app = spawn_app(EdgeSettings::default(), &[]).await;
    let response = app
        .graphql(
            "{ customers(first: 2, after: \"not a cursor\") { nodes { email } } }",
            Value::Null,
        )
        .await;
    assert_eq!(codes(&response), ["BAD_USER_INPUT"], "{response}");
    assert_eq!(response["data"]["customers"], Value::Null, "{response}");
    let extensions = &response["errors"][0]["extensions"];
    assert!(extensions.get("service").is_none(), "{response}");
    assert_eq!(
        app.edge.backend_calls()["crowdcrunch.customers.v1.CustomerService.ListCustomers"],
        0,
        "no call for a cursor the edge never made"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_backend_that_is_down_leaves_the_other_fields_resolved() {
    let app = spawn_app(EdgeSettings::default(), &["inventory"]).await;
    create(&app, "alan@example.com", "Alan").await;
    let answer = app
        .post(
            &json!({"query": "{ customers { nodes { email } } products { nodes { sku } } }"}),
            &[("accept", "application/graphql-response+json")],
        )
        .await;
    assert_eq!(answer.status, 200);
    let response = answer.json();
    assert_eq!(
        response["data"]["customers"]["nodes"],
        json!([{"email": "alan@example.com"}])
    );
    assert_eq!(codes(&response), ["UNAVAILABLE"], "{response}");
    let text = response.to_string();
    assert!(!text.contains("127.0.0.1"), "an address leaked: {text}");
    // Not configured at all is UNAVAILABLE too; a root field alone still gets its null, and a
    // join to it leaves its parent resolved.
    let answer = app
        .post(
            &json!({"query": "{ orders { nodes { id } } }"}),
            &[("accept", "application/graphql-response+json")],
        )
        .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let orders = answer.json();
    assert_eq!(codes(&orders), ["UNAVAILABLE"], "{orders}");
    assert_eq!(orders["data"], json!({"orders": null}));
    let joined = app
        .graphql(
            "{ customers { nodes { email orders { nodes { id } } } } }",
            Value::Null,
        )
        .await;
    assert_eq!(
        joined["data"]["customers"]["nodes"],
        json!([{"email": "alan@example.com", "orders": null}]),
        "{joined}"
    );
    assert_eq!(codes(&joined), ["UNAVAILABLE"]);

    let ready = app.get("/readyz", &[]).await;
    assert_eq!(ready.status, 503, "inventory is configured and down");
    assert_eq!(app.get("/healthz", &[]).await.status, 200);
    app.stop().await;
}

#[tokio::test]
async fn http_follows_the_graphql_over_http_spec() {
    let app = spawn_app(EdgeSettings::default(), &[]).await;
    let bad = json!({"query": "{ customers { nodes { nope } } }"});
    let cases: [(&str, u16, &str); 4] = [
        ("application/json", 200, "application/json"),
        (
            "application/graphql-response+json",
            400,
            "application/graphql-response+json",
        ),
        (
            "application/graphql-response+json, application/json;q=0.9",
            400,
            "application/graphql-response+json",
        ),
        ("*/*", 200, "application/json"),
    ];
    for (accept, status, media) in cases {
        let answer = app.post(&bad, &[("accept", accept)]).await;
        assert_eq!(answer.status, status, "Accept: {accept}");
        assert!(
            answer.content_type().starts_with(media),
            "Accept: {accept}: {}",
            answer.content_type()
        );
        let body = answer.json();
        assert!(
            body.get("data").is_none(),
            "a request error has no data: {body}"
        );
        assert!(body["errors"][0]["message"].is_string());
    }
    assert_eq!(
        app.post(&bad, &[("accept", "text/plain")]).await.status,
        406
    );

    // GET runs queries and refuses mutations with 405.
    let query = "/graphql?query=%7B__typename%7D";
    let answer = app.get(query, &[("accept", "application/json")]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["data"]["__typename"], "Query");
    let mutation = "/graphql?query=mutation%7BcreateCustomer(input%3A%7Bcustomer%3A%7Bemail%3A%22a%40b%22%7D%7D)%7Bid%7D%7D";
    let answer = app.get(mutation, &[("accept", "application/json")]).await;
    assert_eq!(answer.status, 405);
    assert_eq!(
        answer.headers.get("allow").map(|v| v.to_str().ok()),
        Some(Some("POST"))
    );

    // Malformed requests.
    let not_json = app
        .send(
            http::Request::post(format!("http://{}/graphql", app.addr))
                .header("content-type", "application/json")
                .body(http_body_util::Full::new(hyper::body::Bytes::from_static(
                    b"{",
                )))
                .expect("request"),
        )
        .await;
    assert_eq!(not_json.status, 400);
    let no_query = app.post(&json!({"variables": {}}), &[]).await;
    assert_eq!(no_query.status, 400);
    let wrong_type = app
        .send(
            http::Request::post(format!("http://{}/graphql", app.addr))
                .header("content-type", "text/plain")
                .body(http_body_util::Full::new(hyper::body::Bytes::from_static(
                    b"{ __typename }",
                )))
                .expect("request"),
        )
        .await;
    assert_eq!(wrong_type.status, 415);
    app.stop().await;
}

#[tokio::test]
async fn graphiql_is_served_by_the_edge_itself() {
    let settings = EdgeSettings {
        graphiql: true,
        ..EdgeSettings::default()
    };
    let app = spawn_app(settings, &[]).await;
    for path in ["/", "/graphql"] {
        let page = app.get(path, &[("accept", "text/html")]).await;
        assert_eq!(page.status, 200, "{path}");
        let html = String::from_utf8_lossy(&page.body);
        assert!(html.contains("/graphiql/graphiql.min.js"), "{path}");
        assert!(!html.contains("https://"), "GraphiQL must not need a CDN");
    }
    for asset in [
        "graphiql.min.js",
        "graphiql.min.css",
        "react.production.min.js",
        "react-dom.production.min.js",
        "graphql-ws.min.js",
        "graphiql-init.js",
    ] {
        let answer = app.get(&format!("/graphiql/{asset}"), &[]).await;
        assert_eq!(answer.status, 200, "{asset}");
        assert!(answer.body.len() > 1000, "{asset}");
    }
    app.stop().await;
}

#[tokio::test]
async fn limits_admit_real_tools_and_refuse_pathological_documents() {
    let settings = EdgeSettings {
        introspection: true,
        ..EdgeSettings::default()
    };
    let app = spawn_app(settings, &[]).await;
    let introspection = include_str!("introspection.graphql");
    let response = app.graphql(introspection, Value::Null).await;
    assert!(
        response["errors"].is_null(),
        "the full introspection query is refused: {response}"
    );
    assert!(
        response["data"]["__schema"]["types"]
            .as_array()
            .is_some_and(|types| types.len() > 50)
    );

    let deep = format!(
        "{{ {}__typename{} }}",
        "customers { nodes { orders { nodes { customer { ".repeat(4),
        " } } } } }".repeat(4)
    );
    let response = app.graphql(&deep, Value::Null).await;
    assert!(
        !codes(&response).is_empty(),
        "depth 20 is accepted: {response}"
    );

    let aliases: String = (0..300).map(|n| format!("a{n}: __typename ")).collect();
    let response = app.graphql(&format!("{{ {aliases} }}"), Value::Null).await;
    assert_eq!(codes(&response), ["QUERY_TOO_COMPLEX"], "{response}");

    let big = json!({"query": format!("{{ __typename }} # {}", "x".repeat(300 * 1024))});
    assert_eq!(app.post(&big, &[]).await.status, 413);

    let negative = app
        .graphql("{ customers(first: -1) { nodes { id } } }", Value::Null)
        .await;
    assert_eq!(codes(&negative), ["BAD_USER_INPUT"], "{negative}");
    app.stop().await;
}

#[tokio::test]
async fn introspection_is_off_by_default() {
    let app = spawn_app(EdgeSettings::default(), &[]).await;
    let response = app
        .graphql("{ __schema { queryType { name } } }", Value::Null)
        .await;
    assert!(!response["errors"].is_null(), "{response}");
    app.stop().await;
}

#[tokio::test]
async fn persisted_queries_need_only_the_hash_after_the_first_time() {
    use sha2::Digest as _;
    let app = spawn_app(EdgeSettings::default(), &[]).await;
    let query = "{ customers { nodes { id } } }";
    let hash = hex::encode(sha2::Sha256::digest(query.as_bytes()));
    let extensions = json!({"persistedQuery": {"version": 1, "sha256Hash": hash}});
    let first = app
        .post(&json!({"extensions": extensions}), &[])
        .await
        .json();
    assert_eq!(codes(&first), ["PERSISTED_QUERY_NOT_FOUND"], "{first}");
    let register = app
        .post(&json!({"query": query, "extensions": extensions}), &[])
        .await
        .json();
    assert!(register["errors"].is_null(), "{register}");
    let again = app
        .post(&json!({"extensions": extensions}), &[])
        .await
        .json();
    assert_eq!(again["data"], register["data"]);
    let wrong = app
        .post(
            &json!({"query": "{ __typename }", "extensions": extensions}),
            &[],
        )
        .await
        .json();
    assert_eq!(codes(&wrong), ["PERSISTED_QUERY_HASH_MISMATCH"]);
    app.stop().await;
}

#[tokio::test]
async fn the_graphql_http_server_audit_finds_no_must_failure() {
    let Some(node) = support::node_with_graphql() else {
        return;
    };
    // The audit's operations ask `__type`.
    let settings = EdgeSettings {
        introspection: true,
        ..EdgeSettings::default()
    };
    let app = spawn_app(settings, &[]).await;
    let url = format!("http://{}/graphql", app.addr);
    let script = support::js_dir().join("audit.mjs");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(node)
            .arg(script)
            .arg(url)
            .output()
            .expect("run node")
    })
    .await
    .expect("the audit ran");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "graphql-http audit:\n{report}");
    // The SHOULD and MAY results, for the record (`cargo test -- --nocapture`).
    eprintln!("{report}");
    app.stop().await;
}

#[tokio::test]
async fn operations_run_over_graphql_transport_ws() {
    let app = spawn_app(EdgeSettings::default(), &[]).await;
    create(&app, "ws@example.com", "Socket").await;
    let mut ws = support::WsClient::connect(&app).await;
    ws.subscribe("1", "{ customers { nodes { email } } }", Value::Null)
        .await;
    let next = ws.receive().await;
    assert_eq!(next["type"], "next", "{next}");
    assert_eq!(next["id"], "1");
    assert_eq!(
        next["payload"]["data"]["customers"]["nodes"],
        json!([{"email": "ws@example.com"}])
    );
    assert_eq!(ws.receive().await["type"], "complete");
    ws.close().await;
    app.stop().await;
}

#[tokio::test]
async fn first_above_the_maximum_page_size_is_coerced_to_it() {
    let settings = EdgeSettings {
        max_page_size: 2,
        ..EdgeSettings::default()
    };
    let app = spawn_app(settings, &[]).await;
    for n in 0..3 {
        create(&app, &format!("page{n}@example.com"), "").await;
    }
    let response = app
        .graphql(
            "{ customers(first: 1000) { nodes { email } pageInfo { hasNextPage } } }",
            Value::Null,
        )
        .await;
    assert!(response["errors"].is_null(), "{response}");
    let connection = &response["data"]["customers"];
    assert_eq!(connection["nodes"].as_array().map(Vec::len), Some(2));
    assert_eq!(connection["pageInfo"]["hasNextPage"], true);
    app.stop().await;
}

#[tokio::test]
async fn a_repeated_query_is_validated_once_and_its_variables_on_every_request() {
    let app = spawn_app(EdgeSettings::default(), &[]).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let created = create(&app, &format!("valid{n}@example.com"), "").await;
        ids.push(created["id"].as_str().expect("an id").to_owned());
    }
    const READ: &str = "query($id: ID!) { customer(id: $id) { email } }";
    let before = app.edge.validations();
    for (n, id) in ids.iter().enumerate() {
        let response = app.graphql(READ, json!({ "id": id })).await;
        assert_eq!(
            response["data"]["customer"]["email"],
            format!("valid{n}@example.com"),
            "{response}"
        );
    }
    assert_eq!(
        app.edge.validations(),
        before + 1,
        "one document, three sets of variables: one validation"
    );

    // Every request's variables are still coerced against their declared types.
    let bad_variables = [
        (READ, json!({}), "$id"),
        (READ, json!({ "id": null }), "$id"),
        (READ, json!({ "id": true }), "$id"),
        (
            "query($first: Int) { customers(first: $first) { nodes { email } } }",
            json!({ "first": "ten" }),
            "$first",
        ),
        (
            "query($first: Int) { customers(first: $first) { nodes { email } } }",
            json!({ "first": 1_u64 << 40 }),
            "$first",
        ),
        (
            CREATE,
            json!({ "input": { "customer": { "displayName": "No Email" } } }),
            "$input.customer.email",
        ),
        (
            CREATE,
            json!({ "input": { "customer": { "email": "x@example.com", "shoeSize": 9 } } }),
            "shoeSize",
        ),
    ];
    for (query, variables, named) in bad_variables {
        let answer = app
            .post(
                &json!({ "query": query, "variables": variables }),
                &[("accept", "application/graphql-response+json")],
            )
            .await;
        let response = answer.json();
        assert_eq!(answer.status, 400, "{variables}: {response}");
        assert_eq!(
            codes(&response),
            ["BAD_USER_INPUT"],
            "{variables}: {response}"
        );
        let message = response["errors"][0]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains(named), "{variables}: {message}");
        assert!(response.get("data").is_none(), "{response}");
    }
    // An integer is a valid ID, as the spec's input coercion says.
    let response = app.graphql(READ, json!({ "id": 12345 })).await;
    assert_eq!(codes(&response), ["NOT_FOUND"], "{response}");
    assert_eq!(app.edge.validations(), before + 1, "{response}");
    app.stop().await;
}
