//! Trace context, Envoy's headers and the caller's `authorization` go from the client to every
//! backend call: the real customers service runs behind a layer that records the metadata of
//! each call it receives.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crowdcrunch_runtime::client::Endpoints;
use crowdcrunch_runtime::edge::EdgeSettings;
use crowdcrunch_runtime::testing::databases;
use serde_json::json;

type Recorded = Arc<Mutex<Vec<http::HeaderMap>>>;

/// The customers service on a free port, recording the headers of every call.
async fn recording_customers(
    database: &crowdcrunch_runtime::testing::TestDatabase,
) -> (String, Recorded) {
    let recorded: Recorded = Arc::default();
    let db = database.connect(&crowdcrunch_customers::MIGRATOR).await;
    let outbox = crowdcrunch_outbox::Outbox::open(&db, "customers")
        .await
        .expect("open the outbox");
    let definition = crowdcrunch_customers::service(db, outbox);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let record = recorded.clone();
    let layer = tower::ServiceBuilder::new().map_request(
        move |request: http::Request<tonic::body::Body>| {
            record.lock().expect("lock").push(request.headers().clone());
            request
        },
    );
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service((definition.service)(
                crowdcrunch_runtime::pagination::PageTokens::generate().expect("a page-token key"),
            ))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (url, recorded)
}

#[tokio::test]
async fn the_client_trace_context_envoy_headers_and_token_reach_the_backends() {
    let database = databases("customers").remove(0);
    let (url, recorded) = recording_customers(&database).await;
    let endpoints = HashMap::from([("customers".to_owned(), Endpoints::parse(&url).expect("url"))]);
    // Behind a trusted proxy (Istio's ingress gateway), whose headers the edge believes.
    let settings = EdgeSettings {
        trusted_proxy: true,
        ..EdgeSettings::default()
    };
    let app = support::spawn_edge(settings, &endpoints, HashMap::new()).await;
    let query = json!({"query": "{ customers { nodes { id } } }"});

    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let forwarded = [
        ("x-request-id", "req-42"),
        ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ("x-b3-parentspanid", "05e3ac9a4f6e3b90"),
        ("x-b3-sampled", "1"),
    ];
    let authorization = support::staff_authorization();
    let mut headers = vec![
        ("traceparent", format!("00-{trace_id}-b7ad6b7169203331-01")),
        ("tracestate", "congo=t61rcWkgMzE".to_owned()),
        ("authorization", authorization.clone()),
    ];
    headers.extend(
        forwarded
            .iter()
            .map(|(name, value)| (*name, (*value).to_owned())),
    );
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    let answer = app.post(&query, &headers).await;
    assert_eq!(answer.status, 200);
    assert!(answer.json()["errors"].is_null(), "{}", answer.json());

    let calls = recorded.lock().expect("lock").clone();
    let call = calls.last().expect("the backend was called");
    let traceparent = call["traceparent"].to_str().expect("ascii");
    assert!(
        traceparent.contains(trace_id),
        "the trace continues: {traceparent}"
    );
    assert!(
        !traceparent.contains("b7ad6b7169203331"),
        "the edge's own span is the parent"
    );
    assert_eq!(call["tracestate"], "congo=t61rcWkgMzE");
    assert_eq!(
        call["authorization"], authorization,
        "the caller's token, for the service to judge again"
    );
    for (name, value) in forwarded {
        assert_eq!(call[name], value, "{name}");
    }

    // Without a traceparent the edge starts a trace.
    let answer = app.post(&query, &[]).await;
    assert_eq!(answer.status, 200);
    let calls = recorded.lock().expect("lock").clone();
    let traceparent = calls.last().expect("a call")["traceparent"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(parts[1].len(), 32);
    assert_ne!(parts[1], trace_id);
    // Without an x-request-id the edge mints one.
    let minted = &calls.last().expect("a call")["x-request-id"];
    assert_ne!(minted, "req-42");
    app.stop().await;
}
