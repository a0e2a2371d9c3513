//! Subscriptions over graphql-transport-ws against the real ledger, fed by the customers
//! service's outbox relay: events arrive live and carry the trace id of the request that caused
//! them.

mod support;

use crowdcrunch_runtime::edge::EdgeSettings;
use serde_json::json;
use support::spawn_system_with;

const CREATE: &str =
    "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }";

#[tokio::test]
async fn events_stream_live_with_the_trace_of_the_request_that_caused_them() {
    // Behind a trusted proxy, which the client's trace context comes through.
    let system = spawn_system_with(EdgeSettings {
        trusted_proxy: true,
        ..EdgeSettings::default()
    })
    .await;
    let app = &system.app;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let created = app
        .post(
            &json!({"query": CREATE, "variables": {"input": {"customer": {"email": "live@example.com"}}}}),
            &[("traceparent", &format!("00-{trace_id}-00f067aa0ba902b7-01"))],
        )
        .await
        .json();
    let id = created["data"]["createCustomer"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();

    let mut ws = support::WsClient::connect(app).await;
    ws.subscribe(
        "events",
        "subscription($subject: String) { events(subject: $subject) { sequence type subject traceId data } }",
        json!({"subject": id}),
    )
    .await;
    // The stored event first (the relay may take a moment to deliver it)...
    let first = ws.receive().await;
    assert_eq!(first["type"], "next", "{first}");
    let event = &first["payload"]["data"]["events"];
    assert_eq!(event["subject"], id.as_str());
    assert_eq!(event["type"], "CustomerCreated", "{event}");
    assert_eq!(
        event["traceId"], trace_id,
        "the client's trace reached the ledger"
    );
    assert!(event["sequence"].is_string(), "Int64 is a string: {event}");

    // ...then new ones as they happen.
    let updated = app
        .graphql(
            "mutation($input: UpdateCustomerInput!) { updateCustomer(input: $input) { id } }",
            json!({"input": {"customer": {"id": id, "displayName": "Live"}}}),
        )
        .await;
    assert!(updated["errors"].is_null(), "{updated}");
    let second = ws.receive().await;
    assert_eq!(
        second["payload"]["data"]["events"]["subject"],
        id.as_str(),
        "{second}"
    );
    assert_ne!(
        second["payload"]["data"]["events"]["sequence"],
        event["sequence"]
    );

    // The same history, as a query and as a connection.
    let listed = app
        .graphql(
            "query($subject: [String!]) { events(subject: $subject) { nodes { type } } }",
            json!({"subject": id}),
        )
        .await;
    assert_eq!(
        listed["data"]["events"]["nodes"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
    ws.close().await;
    system.relay.trigger();
    system.app.stop().await;
}
