//! The watchers' gauges an operator reads, over real gRPC: `ledger_watchers` counts the open
//! WatchEvents streams, and `ledger_watcher_lag_seconds` grows while the slowest of them is
//! behind the newest event and falls back to 0 when no watcher is behind. A test binary of its
//! own: the gauges are the process's.

use std::time::{Duration, Instant};

use crowdcrunch_proto::ledger::v1 as pb;
use crowdcrunch_proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use crowdcrunch_runtime::metrics::sample_sum;
use crowdcrunch_runtime::storage::{now_micros, timestamp_from_micros};
use crowdcrunch_runtime::testing::{TestServer, databases};

/// How long the test waits for a gauge before it fails.
const PATIENCE: Duration = Duration::from_secs(30);

fn event(n: usize) -> pb::Event {
    pb::Event {
        id: format!("watched-{n}"),
        r#type: "ThingHappened".into(),
        source: "orders".into(),
        subject: format!("subject-{}", n % 7),
        time: Some(timestamp_from_micros(now_micros())),
        data: Some(crowdcrunch_proto::json::struct_from_json(
            serde_json::json!({ "n": n, "padding": "x".repeat(1000) }),
        )),
        trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
        sequence: 0,
        customer_id: String::new(),
    }
}

/// Waits until `holds` is true of the gauge `name`.
async fn gauge_until(name: &str, what: &str, holds: impl Fn(f64) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let value = sample_sum(name, &[]);
        if holds(value) {
            return;
        }
        assert!(Instant::now() < deadline, "{name} is {value}, not {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_gauges_show_open_watchers_and_how_far_the_slowest_is_behind() {
    // The recorder first: the hub registers its gauges when it is built.
    let _ = sample_sum("ledger_watchers", &[]);
    let database = databases("ledger").remove(0);
    let database = database.connect(&crowdcrunch_ledger::MIGRATOR).await;
    let server =
        TestServer::start_with(|shutdown| crowdcrunch_ledger::service(database, shutdown)).await;
    let mut client = LedgerServiceClient::new(server.channel_as_peer("orders").await);
    gauge_until("ledger_watchers", "0", |value| value == 0.0).await;

    let watch = || pb::WatchEventsRequest {
        after_sequence: 0,
        subject: None,
    };
    let mut reader = client
        .watch_events(watch())
        .await
        .expect("watch")
        .into_inner();
    // This one never reads: its buffers fill and it falls behind.
    let silent = client
        .watch_events(watch())
        .await
        .expect("watch")
        .into_inner();
    gauge_until("ledger_watchers", "2", |value| value == 2.0).await;

    // Over 2 MiB: more than a client connection takes before it must read.
    let total = 4000;
    for batch in (0..total).collect::<Vec<_>>().chunks(500) {
        client
            .append_events(pb::AppendEventsRequest {
                events: batch.iter().map(|n| event(*n)).collect(),
            })
            .await
            .expect("append");
    }
    let mut read = 0;
    while read < total {
        reader
            .message()
            .await
            .expect("a watched event")
            .expect("the stream stays open");
        read += 1;
    }
    gauge_until("ledger_watcher_lag_seconds", "over a second", |lag| {
        lag > 1.0
    })
    .await;

    drop(silent);
    gauge_until("ledger_watchers", "1", |value| value == 1.0).await;
    gauge_until("ledger_watcher_lag_seconds", "0", |lag| lag == 0.0).await;
    drop(reader);
    gauge_until("ledger_watchers", "0", |value| value == 0.0).await;
    server.stop().await.expect("drain");
}
