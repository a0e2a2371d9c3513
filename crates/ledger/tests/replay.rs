//! A thousand replays of the whole log by clients that read nothing, beside other queries, over
//! real gRPC against a real server, on SQLite and (when `CROWDCRUNCH_TEST_DATABASE_URL` is set) on
//! PostgreSQL: a replay reads in bounded pages and holds no connection while it waits on its
//! client, so the other queries keep their latency.

use std::time::{Duration, Instant};

use crowdcrunch_proto::ledger::v1 as pb;
use crowdcrunch_proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use crowdcrunch_runtime::testing::{TestServer, databases};

/// Events in the log before the watchers come.
const EVENTS: usize = 3000;
/// Watchers replaying the log from its start, none of which reads.
const WATCHERS: usize = 1000;
/// Connections the watchers share (HTTP/2 caps the streams of one connection).
const CONNECTIONS: usize = 10;
/// The slowest a list may answer beside them: generous, where the issue saw 5 s.
const BOUND: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_silent_replays_leave_the_database_to_other_queries() {
    for database in databases("ledger") {
        let ledger = database.connect(&crowdcrunch_ledger::MIGRATOR).await;
        let ledger_database = ledger.clone();
        let server =
            TestServer::start_with(|shutdown| crowdcrunch_ledger::service(ledger, shutdown)).await;
        let mut appender = LedgerServiceClient::new(server.channel_as_peer("orders").await);
        for batch in 0..EVENTS / 100 {
            let events = (0..100)
                .map(|n| pb::Event {
                    id: format!("e-{batch}-{n}"),
                    r#type: "ThingHappened".into(),
                    subject: format!("subject-{n}"),
                    data: Some(crowdcrunch_proto::json::struct_from_json(
                        serde_json::json!({ "padding": "x".repeat(200) }),
                    )),
                    ..pb::Event::default()
                })
                .collect();
            appender
                .append_events(pb::AppendEventsRequest { events })
                .await
                .expect("append events");
        }

        let mut connections = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            connections.push(LedgerServiceClient::new(server.channel().await));
        }
        let opening = (0..WATCHERS).map(|n| {
            let mut client = connections[n % CONNECTIONS].clone();
            async move {
                client
                    .watch_events(pb::WatchEventsRequest {
                        after_sequence: 0,
                        subject: None,
                    })
                    .await
                    .expect("watch events")
                    .into_inner()
            }
        });
        // Every watcher has started its replay once its stream answered; none is ever read.
        let silent = futures::future::join_all(opening).await;

        let mut reader = LedgerServiceClient::new(server.channel().await);
        let mut slowest = Duration::ZERO;
        for _ in 0..10 {
            let started = Instant::now();
            let listed = reader
                .list_events(pb::ListEventsRequest {
                    subjects: vec!["subject-7".into()],
                    page_size: 10,
                    page_token: String::new(),
                })
                .await
                .expect("list events")
                .into_inner();
            slowest = slowest.max(started.elapsed());
            assert_eq!(listed.events.len(), 10, "{}", database.backend);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            slowest < BOUND,
            "{}: beside {WATCHERS} replays a list took {slowest:?} (at most {BOUND:?})",
            database.backend
        );

        // Once the replays wait on their clients, none holds a connection: every connection is
        // idle, again and again.
        let settled = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let mut idle = true;
                for _ in 0..20 {
                    idle &= ledger_database.connections_in_use() == 0;
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                if idle {
                    break;
                }
            }
        })
        .await;
        assert!(
            settled.is_ok(),
            "{}: watchers waiting on silent clients still hold {} of {} connections",
            database.backend,
            ledger_database.connections_in_use(),
            ledger_database.max_connections()
        );
        assert_eq!(silent.len(), WATCHERS);
        drop(silent);
        server.stop().await.expect("drain");
    }
}
