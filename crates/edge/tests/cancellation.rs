//! A subscriber that goes away cancels the upstream gRPC stream. In its own test binary: it
//! counts the finished WatchEvents calls in the process's metrics, which no other test may touch.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::spawn_system;

/// How many WatchEvents calls the process's servers have finished, whatever their code.
fn finished_watches() -> u64 {
    crowdcrunch_runtime::metrics::handle()
        .render()
        .lines()
        .filter(|line| {
            line.starts_with("grpc_server_requests_total") && line.contains("WatchEvents")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_the_upstream_stream() {
    let system = spawn_system().await;
    let before = finished_watches();
    let mut ws = support::WsClient::connect(&system.app).await;
    ws.subscribe("all", "subscription { events { sequence } }", Value::Null)
        .await;
    // Let the stream reach the ledger, then go away without a word.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(finished_watches(), before, "the stream is open");
    drop(ws);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while finished_watches() == before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the ledger's WatchEvents stream outlived its client"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    system.relay.trigger();
    system.app.stop().await;
}
