//! graphql-transport-ws by the book, over real WebSockets: each way the protocol is broken
//! closes the socket with the code PROTOCOL.md gives it, a subscription selects one root field,
//! subscriptions are limited per connection and per caller (released however they end), every
//! operation over the socket obeys the rules of a POST, and only allowed origins may open one.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use crowdcrunch_proto::ledger::v1 as pb;
use crowdcrunch_proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use crowdcrunch_runtime::client::Endpoints;
use crowdcrunch_runtime::edge::{EdgeSettings, Origin};
use crowdcrunch_runtime::testing::{TestDatabase, TestServer, databases};
use serde_json::{Value, json};
use support::{App, WsClient, codes, spawn_app, spawn_edge};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

/// A subscription that stays open: every event of the ledger, live.
const EVENTS: &str = "subscription { events { sequence } }";

/// The ledger holding one event, and the edge in front of it.
async fn spawn_ledger_app(settings: EdgeSettings) -> (App, TestDatabase) {
    let database = databases("ledger").remove(0);
    let ledger_database = database.connect(&crowdcrunch_ledger::MIGRATOR).await;
    let ledger =
        TestServer::start_with(|shutdown| crowdcrunch_ledger::service(ledger_database, shutdown))
            .await;
    LedgerServiceClient::new(ledger.channel_as_peer("orders").await)
        .append_events(pb::AppendEventsRequest {
            events: vec![pb::Event {
                id: "first".into(),
                r#type: "ThingHappened".into(),
                subject: "thing".into(),
                ..pb::Event::default()
            }],
        })
        .await
        .expect("append an event");
    let endpoints = HashMap::from([(
        "ledger".to_owned(),
        Endpoints::parse(&ledger.url()).expect("url"),
    )]);
    let backends = HashMap::from([("ledger".to_owned(), ledger)]);
    (spawn_edge(settings, &endpoints, backends).await, database)
}

/// Subscribes with `id` to every event, and answers the first message about it.
async fn subscribe_to_events(ws: &mut WsClient, id: &str) -> Value {
    ws.subscribe(id, EVENTS, Value::Null).await;
    let message = ws.receive().await;
    assert_eq!(message["id"], id, "{message}");
    message
}

/// Whether `message` is the first event of a live subscription.
fn is_event(message: &Value) -> bool {
    message["type"] == "next" && message["payload"]["data"]["events"]["sequence"] == "1"
}

/// The `extensions.code`s of an `error` message.
fn error_codes(message: &Value) -> Vec<String> {
    assert_eq!(message["type"], "error", "{message}");
    codes(&json!({ "errors": message["payload"] }))
}

/// Opens a socket with `headers` besides the upgrade's own; the handshake's outcome.
async fn upgrade(app: &App, headers: &[(&str, &str)]) -> Result<WsClient, tungstenite::Error> {
    let mut request = format!("ws://{}/graphql", app.addr)
        .into_client_request()
        .expect("a WebSocket request");
    for (name, value) in headers {
        request.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            http::HeaderValue::from_str(value).expect("a header value"),
        );
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(stream, _)| WsClient::from_stream(stream))
}

#[tokio::test]
async fn a_socket_that_sends_no_connection_init_is_closed_with_4408() {
    let settings = EdgeSettings {
        connection_init_timeout: Duration::from_millis(300),
        ..EdgeSettings::default()
    };
    let app = spawn_app(settings, &[]).await;
    let mut ws = WsClient::open(&app).await;
    let closed = tokio::time::timeout(Duration::from_secs(5), ws.closed())
        .await
        .expect("closed within seconds");
    assert_eq!(
        closed,
        Some((4408, "Connection initialisation timeout".to_owned()))
    );
    // A client that says who it is in time is served.
    let mut ws = WsClient::connect(&app).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.receive().await, json!({"type": "pong"}));
    app.stop().await;
}

#[tokio::test]
async fn breaking_the_protocol_closes_the_socket_with_its_code() {
    let app = spawn_app(EdgeSettings::default(), &[]).await;

    let mut ws = WsClient::open(&app).await;
    ws.subscribe("1", "{ customers { nodes { id } } }", Value::Null)
        .await;
    assert_eq!(ws.closed().await, Some((4401, "Unauthorized".to_owned())));

    let mut ws = WsClient::connect(&app).await;
    ws.send(json!({"type": "connection_init"})).await;
    assert_eq!(
        ws.closed().await,
        Some((4429, "Too many initialisation requests".to_owned()))
    );

    for invalid in [
        json!({"type": "start", "id": "1", "payload": {"query": "{ a }"}}),
        json!({"type": "subscribe", "payload": {"query": "{ a }"}}),
        json!({"type": "complete"}),
        json!("connection_init"),
    ] {
        let mut ws = WsClient::connect(&app).await;
        ws.send(invalid.clone()).await;
        let (code, reason) = ws.closed().await.expect("a close frame");
        assert_eq!(code, 4400, "{invalid}: {reason}");
        assert!(!reason.is_empty(), "{invalid}: the reason says why");
    }

    let (app, _database) = spawn_ledger_app(EdgeSettings::default()).await;
    let mut ws = WsClient::connect(&app).await;
    assert!(is_event(&subscribe_to_events(&mut ws, "live").await));
    ws.subscribe("live", EVENTS, Value::Null).await;
    assert_eq!(
        ws.closed().await,
        Some((4409, "Subscriber for live already exists".to_owned()))
    );
    // An id is free again once its operation completes.
    let mut ws = WsClient::connect(&app).await;
    assert!(is_event(&subscribe_to_events(&mut ws, "again").await));
    ws.send(json!({"type": "complete", "id": "again"})).await;
    assert!(is_event(&subscribe_to_events(&mut ws, "again").await));
    ws.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_subscription_selects_exactly_one_root_field() {
    let (app, _database) = spawn_ledger_app(EdgeSettings::default()).await;
    let mut ws = WsClient::connect(&app).await;
    let fields: String = (0..30)
        .map(|n| format!("e{n}: events {{ sequence }} "))
        .collect();
    for (id, query) in [
        (
            "two",
            "subscription { a: events { sequence } b: events { sequence } }".to_owned(),
        ),
        ("thirty", format!("subscription {{ {fields} }}")),
        (
            "fragments",
            "subscription { ...F } fragment F on Subscription { events { sequence } ... on \
             Subscription { again: events { sequence } } }"
                .to_owned(),
        ),
        ("introspection", "subscription { __typename }".to_owned()),
    ] {
        ws.subscribe(id, &query, Value::Null).await;
        let message = ws.receive().await;
        assert_eq!(message["id"], id, "{message}");
        assert_eq!(
            error_codes(&message),
            ["GRAPHQL_VALIDATION_FAILED"],
            "{id}: {message}"
        );
    }
    // A field the backend refuses is a result like any other: `next` with its error, then
    // `complete` (as the protocol's reference server answers it).
    ws.subscribe(
        "negative",
        "subscription { events(afterSequence: -1) { sequence } }",
        Value::Null,
    )
    .await;
    let refused = ws.receive().await;
    assert_eq!(refused["type"], "next", "{refused}");
    assert_eq!(codes(&refused["payload"]), ["BAD_USER_INPUT"], "{refused}");
    assert_eq!(
        ws.receive().await,
        json!({"type": "complete", "id": "negative"})
    );
    // One field, however it is spelled, is a subscription.
    assert!(is_event(&subscribe_to_events(&mut ws, "one").await));
    ws.close().await;
    app.stop().await;
}

#[tokio::test]
async fn subscriptions_are_limited_per_connection_and_per_caller_until_they_end() {
    let settings = EdgeSettings {
        max_subscriptions_per_connection: 2,
        max_subscriptions_per_caller: 3,
        ..EdgeSettings::default()
    };
    let (app, _database) = spawn_ledger_app(settings).await;
    let mut first = WsClient::connect(&app).await;
    assert!(is_event(&subscribe_to_events(&mut first, "a1").await));
    assert!(is_event(&subscribe_to_events(&mut first, "a2").await));
    let over = subscribe_to_events(&mut first, "a3").await;
    assert_eq!(error_codes(&over), ["TOO_MANY_SUBSCRIPTIONS"], "{over}");
    // A subscription the client completes gives its place back.
    first.send(json!({"type": "complete", "id": "a1"})).await;
    assert!(is_event(&subscribe_to_events(&mut first, "a3").await));

    // The same caller on another connection: three in all.
    let mut second = WsClient::connect(&app).await;
    assert!(is_event(&subscribe_to_events(&mut second, "b1").await));
    let over = subscribe_to_events(&mut second, "b2").await;
    assert_eq!(error_codes(&over), ["TOO_MANY_SUBSCRIPTIONS"], "{over}");

    // A closed socket gives back all it held.
    first.close().await;
    let freed = tokio::time::timeout(Duration::from_secs(10), async {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let answer = subscribe_to_events(&mut second, &format!("retry{attempt}")).await;
            if is_event(&answer) {
                break;
            }
            assert_eq!(error_codes(&answer), ["TOO_MANY_SUBSCRIPTIONS"], "{answer}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        freed.is_ok(),
        "the closed socket's subscriptions were released"
    );
    second.close().await;
    app.stop().await;
}

#[tokio::test]
async fn an_operation_over_the_socket_obeys_the_rules_of_a_post() {
    let settings = EdgeSettings {
        max_aliases: 2,
        max_cost: 50,
        ..EdgeSettings::default()
    };
    let app = spawn_app(settings, &[]).await;
    let mutation =
        "mutation { createCustomer(input: {customer: {email: \"ws@example.com\"}}) { id } }";
    let costly = "{ customers(first: 100) { nodes { id email } } }";
    let aliased = "{ a: customers { nodes { id } } b: customers { nodes { id } } c: customers { nodes { id } } }";

    // Without a token.
    let mut anonymous = WsClient::open(&app).await;
    anonymous
        .send(json!({"type": "connection_init", "payload": {}}))
        .await;
    assert_eq!(anonymous.receive().await["type"], "connection_ack");
    let posted = app.post_exactly(&json!({ "query": mutation }), &[]).await;
    assert_eq!(posted.status, 401);
    anonymous.subscribe("m", mutation, Value::Null).await;
    let refused = anonymous.receive().await;
    assert_eq!(error_codes(&refused), codes(&posted.json()), "{refused}");
    assert_eq!(error_codes(&refused), ["UNAUTHENTICATED"], "{refused}");
    anonymous.close().await;

    // As staff: what a POST refuses before execution, the socket refuses with the same code.
    let mut ws = WsClient::connect(&app).await;
    for (id, query, code) in [
        ("costly", costly, "QUERY_TOO_COSTLY"),
        ("aliased", aliased, "QUERY_TOO_COMPLEX"),
    ] {
        let posted = app.post(&json!({ "query": query }), &[]).await;
        assert_eq!(codes(&posted.json()), [code], "{id}");
        ws.subscribe(id, query, Value::Null).await;
        let refused = ws.receive().await;
        assert_eq!(refused["id"], id, "{refused}");
        assert_eq!(error_codes(&refused), [code], "{id}: {refused}");
    }
    // And what a POST runs, the socket runs: the mutation, then `complete`.
    ws.subscribe("create", mutation, Value::Null).await;
    let created = ws.receive().await;
    assert_eq!(created["type"], "next", "{created}");
    assert!(
        created["payload"]["data"]["createCustomer"]["id"].is_string(),
        "{created}"
    );
    assert_eq!(
        ws.receive().await,
        json!({"type": "complete", "id": "create"})
    );
    ws.close().await;
    app.stop().await;
}

#[tokio::test]
async fn only_allowed_origins_may_open_a_socket() {
    let settings = EdgeSettings {
        allowed_origins: vec![Origin::parse("https://shop.example.com").expect("an origin")],
        ..EdgeSettings::default()
    };
    let app = spawn_app(settings, &[]).await;
    let protocol = ("sec-websocket-protocol", "graphql-transport-ws");
    for origin in [
        "https://evil.example.com",
        "null",
        "https://shop.example.com.evil.com",
    ] {
        match upgrade(&app, &[protocol, ("origin", origin)]).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 403, "{origin}");
            }
            Err(error) => panic!("{origin}: {error}"),
            Ok(_) => panic!("{origin} opened a socket"),
        }
    }
    let mut allowed = upgrade(&app, &[protocol, ("origin", "https://shop.example.com")])
        .await
        .expect("the allowed origin opens a socket");
    allowed.send(json!({"type": "ping"})).await;
    assert_eq!(allowed.receive().await, json!({"type": "pong"}));
    // A client that is not a browser sends no Origin.
    let mut ws = WsClient::connect(&app).await;
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.receive().await, json!({"type": "pong"}));

    // A client that does not offer graphql-transport-ws is told so.
    let mut unspoken = upgrade(&app, &[]).await.expect("the upgrade");
    assert_eq!(
        unspoken.closed().await,
        Some((4406, "Subprotocol not acceptable".to_owned()))
    );
    app.stop().await;
}
