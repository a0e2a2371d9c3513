//! A backend can be replaced under load: the edge balances over a list of endpoints and retries
//! an idempotent call once on UNAVAILABLE, so stopping one of two replicas loses no request.

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use crowdcrunch_runtime::client::Endpoints;
use crowdcrunch_runtime::edge::EdgeSettings;
use crowdcrunch_runtime::testing::{TestServer, databases};
use serde_json::{Value, json};

#[tokio::test]
async fn stopping_one_of_two_replicas_under_load_loses_no_request() {
    let database = databases("customers").remove(0);
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let db = database.connect(&crowdcrunch_customers::MIGRATOR).await;
        let outbox = crowdcrunch_outbox::Outbox::open(&db, "customers")
            .await
            .expect("open the outbox");
        replicas.push(TestServer::start(crowdcrunch_customers::service(db, outbox)).await);
    }
    let list = replicas
        .iter()
        .map(TestServer::url)
        .collect::<Vec<_>>()
        .join(",");
    let endpoints = HashMap::from([(
        "customers".to_owned(),
        Endpoints::parse(&list).expect("endpoints"),
    )]);
    let app =
        Arc::new(support::spawn_edge(EdgeSettings::default(), &endpoints, HashMap::new()).await);
    let query = "{ customers(first: 1) { pageInfo { hasNextPage } } }";
    assert!(app.graphql(query, Value::Null).await["errors"].is_null());

    let load: Vec<_> = (0..8)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                let mut failures = Vec::new();
                for _ in 0..60 {
                    let response = app.graphql(query, json!({})).await;
                    if !response["errors"].is_null() {
                        failures.push(response);
                    }
                }
                failures
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let stopped = replicas.remove(0);
    stopped.stop().await.expect("the replica drains");
    let mut failures = Vec::new();
    for worker in load {
        failures.extend(worker.await.expect("a load worker"));
    }
    assert!(
        failures.is_empty(),
        "{} requests failed: {:?}",
        failures.len(),
        failures.first()
    );
}
