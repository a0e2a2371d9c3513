//! `LedgerService` over real gRPC against a real server, on SQLite and (when
//! `CROWDCRUNCH_TEST_DATABASE_URL` is set) on PostgreSQL.

use std::time::Duration;

use crowdcrunch_proto::ledger::v1 as pb;
use crowdcrunch_proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use crowdcrunch_runtime::auth::Grant;
use crowdcrunch_runtime::client::GrpcChannel;
use crowdcrunch_runtime::storage::{now_micros, timestamp_from_micros};
use crowdcrunch_runtime::testing::{
    TestDatabase, TestServer, all_pages, databases, violated_fields,
};
use tonic::Code;
use tonic_types::StatusExt as _;

/// How long a test waits for events it expects before it fails.
const PATIENCE: Duration = Duration::from_secs(60);

/// The service the tests append as: every event they send names it as its source.
const SOURCE: &str = "orders";

/// A ledger server over a fresh database, and clients to it.
struct App {
    server: TestServer,
    /// Calls as the service [`SOURCE`]: appends and watches.
    client: LedgerServiceClient<GrpcChannel>,
    /// Calls as staff, who read every event.
    staff: LedgerServiceClient<GrpcChannel>,
}

async fn spawn_app(database: &TestDatabase) -> App {
    let database = database.connect(&crowdcrunch_ledger::MIGRATOR).await;
    let server =
        TestServer::start_with(|shutdown| crowdcrunch_ledger::service(database, shutdown)).await;
    let client = LedgerServiceClient::new(server.channel_as_peer(SOURCE).await);
    let staff = LedgerServiceClient::new(server.channel().await);
    App {
        server,
        client,
        staff,
    }
}

/// An event about `subject` whose payload says `n`.
fn event(id: &str, subject: &str, n: i64) -> pb::Event {
    pb::Event {
        id: id.into(),
        r#type: "ThingHappened".into(),
        source: SOURCE.into(),
        subject: subject.into(),
        time: Some(timestamp_from_micros(now_micros())),
        data: Some(crowdcrunch_proto::json::struct_from_json(
            serde_json::json!({ "n": n, "tags": ["a", "b"] }),
        )),
        trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
        sequence: 0,
        customer_id: String::new(),
    }
}

async fn append(
    client: &mut LedgerServiceClient<GrpcChannel>,
    events: Vec<pb::Event>,
) -> Vec<pb::Event> {
    client
        .append_events(pb::AppendEventsRequest { events })
        .await
        .expect("append events")
        .into_inner()
        .events
}

async fn list_all(
    client: &mut LedgerServiceClient<GrpcChannel>,
    subjects: &[&str],
    page_size: i32,
) -> Vec<Vec<pb::Event>> {
    let subjects: Vec<String> = subjects
        .iter()
        .map(|subject| (*subject).to_owned())
        .collect();
    all_pages(|page_token| {
        let mut client = client.clone();
        let subjects = subjects.clone();
        async move {
            let page = client
                .list_events(pb::ListEventsRequest {
                    page_size,
                    page_token,
                    subjects,
                })
                .await
                .expect("list events")
                .into_inner();
            (page.events, page.next_page_token)
        }
    })
    .await
}

fn sequences(events: &[pb::Event]) -> Vec<i64> {
    events.iter().map(|event| event.sequence).collect()
}

/// The next `count` events of a watch stream.
async fn take(stream: &mut tonic::Streaming<pb::Event>, count: usize) -> Vec<pb::Event> {
    let mut events = Vec::with_capacity(count);
    tokio::time::timeout(PATIENCE, async {
        while events.len() < count {
            let event = stream.message().await.expect("a watched event");
            events.push(event.expect("the stream stays open"));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} of {count} events arrived", events.len()));
    events
}

async fn watch(
    client: &mut LedgerServiceClient<GrpcChannel>,
    after_sequence: i64,
    subject: Option<&str>,
) -> tonic::Streaming<pb::Event> {
    client
        .watch_events(pb::WatchEventsRequest {
            after_sequence,
            subject: subject.map(str::to_owned),
        })
        .await
        .expect("watch events")
        .into_inner()
}

#[tokio::test]
async fn appends_get_gap_free_sequences_and_list_in_pages_by_subject() {
    for database in databases("ledger") {
        let App {
            server,
            mut client,
            mut staff,
        } = spawn_app(&database).await;
        let sent = vec![event("e1", "order-1", 1), event("e2", "order-2", 2)];
        let first = append(&mut client, sent.clone()).await;
        let second = append(
            &mut client,
            vec![
                event("e3", "SKU-1", 3),
                event("e4", "order-1", 4),
                event("e5", "order-1", 5),
            ],
        )
        .await;
        assert_eq!(sequences(&first), [1, 2], "{}", database.backend);
        assert_eq!(sequences(&second), [3, 4, 5]);
        let stored = pb::Event {
            sequence: 1,
            time: first[0].time,
            ..sent[0].clone()
        };
        assert_eq!(
            first[0], stored,
            "the event is stored as sent, at the time it arrived"
        );

        let pages = list_all(&mut staff, &[], 2).await;
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
        assert_eq!(pages.concat(), [first.clone(), second.clone()].concat());
        let order_1 = list_all(&mut staff, &["order-1"], 0).await.concat();
        assert_eq!(sequences(&order_1), [1, 4, 5], "one subject");
        let several = list_all(&mut staff, &["order-1", "SKU-1"], 1)
            .await
            .concat();
        assert_eq!(sequences(&several), [1, 3, 4, 5], "several subjects");
        assert!(
            list_all(&mut staff, &["nobody"], 10)
                .await
                .concat()
                .is_empty()
        );

        let token = staff
            .list_events(pb::ListEventsRequest {
                page_size: 1,
                page_token: String::new(),
                subjects: vec!["order-1".into()],
            })
            .await
            .expect("first page")
            .into_inner()
            .next_page_token;
        let status = staff
            .list_events(pb::ListEventsRequest {
                page_size: 1,
                page_token: token,
                subjects: vec!["order-2".into()],
            })
            .await
            .expect_err("a token used with other subjects");
        assert_eq!(violated_fields(&status), ["page_token"]);
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn an_event_appended_again_is_recorded_once() {
    for database in databases("ledger") {
        let App {
            server,
            mut client,
            mut staff,
        } = spawn_app(&database).await;
        let first = append(&mut client, vec![event("a", "s", 1), event("b", "s", 2)]).await;
        // A retry that overlaps the first call, with a changed payload under an old id.
        let retry = append(&mut client, vec![event("b", "s", 99), event("c", "s", 3)]).await;
        assert_eq!(
            retry[0], first[1],
            "{}: the stored event answers",
            database.backend
        );
        assert_eq!(retry[1].sequence, 3);
        let again = append(&mut client, vec![event("a", "s", 1)]).await;
        assert_eq!(again, [first[0].clone()]);
        let stored = list_all(&mut staff, &[], 100).await.concat();
        assert_eq!(sequences(&stored), [1, 2, 3]);
        // Nothing was assigned to the replays: the next event follows without a gap.
        let next = append(&mut client, vec![event("d", "s", 4)]).await;
        assert_eq!(sequences(&next), [4]);
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn bad_input_is_refused_with_field_violations() {
    for database in databases("ledger") {
        let App {
            server,
            mut client,
            mut staff,
        } = spawn_app(&database).await;
        let with = |change: fn(&mut pb::Event)| {
            let mut event = event("x", "s", 1);
            change(&mut event);
            vec![event]
        };
        let cases: Vec<(Vec<pb::Event>, Vec<&str>)> = vec![
            (vec![], vec!["events"]),
            (with(|event| event.id.clear()), vec!["events[0].id"]),
            (
                with(|event| event.r#type = "thing happened".into()),
                vec!["events[0].type"],
            ),
            (
                with(|event| event.subject.clear()),
                vec!["events[0].subject"],
            ),
            (
                with(|event| event.trace_id = "XYZ".into()),
                vec!["events[0].trace_id"],
            ),
            (
                vec![event("same", "s", 1), event("same", "s", 2)],
                vec!["events[1].id"],
            ),
            (
                (0..1001).map(|n| event(&format!("e{n}"), "s", n)).collect(),
                vec!["events"],
            ),
        ];
        for (events, fields) in cases {
            let status = client
                .append_events(pb::AppendEventsRequest { events })
                .await
                .expect_err("bad input must fail");
            assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
            assert_eq!(violated_fields(&status), fields, "{}", database.backend);
        }
        let status = staff
            .list_events(pb::ListEventsRequest {
                page_size: -1,
                ..Default::default()
            })
            .await
            .expect_err("negative page size");
        assert_eq!(violated_fields(&status), ["page_size"]);
        let status = staff
            .list_events(pb::ListEventsRequest {
                subjects: vec![String::new()],
                ..Default::default()
            })
            .await
            .expect_err("an empty subject");
        assert_eq!(violated_fields(&status), ["subjects[0]"]);
        let status = client
            .watch_events(pb::WatchEventsRequest {
                after_sequence: -1,
                subject: None,
            })
            .await
            .expect_err("negative after_sequence");
        assert_eq!(violated_fields(&status), ["after_sequence"]);
        assert!(list_all(&mut staff, &[], 10).await.concat().is_empty());
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn concurrent_appends_get_gap_free_contiguous_sequences() {
    for database in databases("ledger") {
        let App { server, client, .. } = spawn_app(&database).await;
        let batches = futures::future::join_all((0..20).map(|batch| {
            let mut client = client.clone();
            async move {
                let events = (0..5)
                    .map(|n| event(&format!("b{batch}-{n}"), "s", n))
                    .collect();
                append(&mut client, events).await
            }
        }))
        .await;
        let mut all = Vec::new();
        for batch in &batches {
            let numbers = sequences(batch);
            let contiguous: Vec<i64> = (numbers[0]..numbers[0] + 5).collect();
            assert_eq!(
                numbers, contiguous,
                "{}: a batch is appended atomically",
                database.backend
            );
            all.extend(numbers);
        }
        all.sort_unstable();
        assert_eq!(all, (1..=100).collect::<Vec<_>>(), "no gap, no repeat");
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn watchers_get_the_backlog_then_live_events_in_order_while_one_reads_nothing() {
    const BACKLOG: usize = 10;
    const LIVE_BATCHES: usize = 25;
    const BATCH: usize = 100;
    const TOTAL: usize = BACKLOG + LIVE_BATCHES * BATCH;
    // Big enough that the silent watcher's HTTP/2 windows and queues fill up and it lags behind.
    let padding = "x".repeat(4096);
    for database in databases("ledger") {
        let App {
            server, mut client, ..
        } = spawn_app(&database).await;
        let backlog = (0..BACKLOG)
            .map(|n| event(&format!("old-{n}"), "s", 0))
            .collect();
        append(&mut client, backlog).await;

        let mut silent = watch(&mut client, 0, None).await;
        let readers: Vec<_> = [0, 0, 5]
            .into_iter()
            .map(|after| {
                let mut client = client.clone();
                tokio::spawn(async move {
                    let mut stream = watch(&mut client, after, None).await;
                    let count = TOTAL - usize::try_from(after).expect("small");
                    (after, take(&mut stream, count).await)
                })
            })
            .collect();

        let appending = async {
            for batch in 0..LIVE_BATCHES {
                let events = (0..BATCH)
                    .map(|n| {
                        let mut event = event(&format!("new-{batch}-{n}"), "s", 1);
                        event.data = Some(crowdcrunch_proto::json::struct_from_json(
                            serde_json::json!({ "padding": padding }),
                        ));
                        event
                    })
                    .collect();
                append(&mut client, events).await;
            }
        };
        tokio::time::timeout(PATIENCE, appending)
            .await
            .expect("a silent watcher never blocks the appenders");

        for reader in readers {
            let (after, events) = reader.await.expect("reader");
            let expected: Vec<i64> = (after + 1..=i64::try_from(TOTAL).expect("small")).collect();
            assert_eq!(
                sequences(&events),
                expected,
                "{}: after {after}",
                database.backend
            );
        }
        // The silent watcher lost nothing either: it catches up, in order, once it reads.
        let late = take(&mut silent, TOTAL).await;
        assert_eq!(
            sequences(&late),
            (1..=i64::try_from(TOTAL).expect("small")).collect::<Vec<_>>()
        );
        drop(silent);
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn a_watch_filters_by_subject_and_resumes_after_a_sequence() {
    for database in databases("ledger") {
        let App {
            server, mut client, ..
        } = spawn_app(&database).await;
        append(
            &mut client,
            vec![event("1", "a", 1), event("2", "b", 2), event("3", "a", 3)],
        )
        .await;
        let mut only_a = watch(&mut client, 0, Some("a")).await;
        let mut resumed = watch(&mut client, 2, None).await;
        assert_eq!(sequences(&take(&mut only_a, 2).await), [1, 3]);
        assert_eq!(sequences(&take(&mut resumed, 1).await), [3]);

        append(&mut client, vec![event("4", "b", 4)]).await;
        append(&mut client, vec![event("5", "a", 5)]).await;
        assert_eq!(
            sequences(&take(&mut only_a, 1).await),
            [5],
            "{}: live, filtered",
            database.backend
        );
        assert_eq!(sequences(&take(&mut resumed, 2).await), [4, 5]);
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn the_log_survives_a_restart_and_sequences_continue() {
    for database in databases("ledger") {
        let App {
            server, mut client, ..
        } = spawn_app(&database).await;
        let before = append(&mut client, vec![event("1", "a", 1), event("2", "a", 2)]).await;
        server.stop().await.expect("drain");

        let App {
            server,
            mut client,
            mut staff,
        } = spawn_app(&database).await;
        assert_eq!(
            list_all(&mut staff, &[], 10).await.concat(),
            before,
            "{}",
            database.backend
        );
        let after = append(&mut client, vec![event("3", "a", 3), event("1", "a", 1)]).await;
        assert_eq!(
            sequences(&after),
            [3, 1],
            "the id stays known across the restart"
        );
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn open_watches_end_when_the_server_shuts_down() {
    for database in databases("ledger") {
        let App {
            server, mut client, ..
        } = spawn_app(&database).await;
        let mut stream = watch(&mut client, 0, None).await;
        // The drain grace is 10 s: a drain that waited on the stream would take that long.
        tokio::time::timeout(Duration::from_secs(5), server.stop())
            .await
            .expect("the drain does not wait for the watch")
            .expect("drain");
        match stream.message().await {
            Err(status) => assert_eq!(status.code(), Code::Unavailable, "{}", database.backend),
            Ok(None) => {}
            Ok(Some(event)) => panic!("no event was appended, got {event:?}"),
        }
    }
}

#[tokio::test]
async fn batch_list_events_answers_each_request_as_list_events_would() {
    for database in databases("ledger") {
        let App {
            server,
            mut client,
            mut staff,
        } = spawn_app(&database).await;
        append(
            &mut client,
            vec![
                event("a", "order-1", 1),
                event("b", "order-2", 2),
                event("c", "order-1", 3),
                event("d", "order-1", 4),
            ],
        )
        .await;
        let list = |subject: &str, page_size: i32| pb::ListEventsRequest {
            page_size,
            page_token: String::new(),
            subjects: vec![subject.to_owned()],
        };
        let requests = vec![list("order-1", 2), list("order-2", 2), list("nobody", 2)];
        let batch = staff
            .batch_list_events(pb::BatchListEventsRequest {
                requests: requests.clone(),
            })
            .await
            .expect("batch list")
            .into_inner();
        assert_eq!(batch.responses.len(), 3, "{}", database.backend);
        for (request, response) in requests.into_iter().zip(&batch.responses) {
            let single = staff.list_events(request).await.expect("list").into_inner();
            assert_eq!(response, &single, "{}", database.backend);
        }
        assert_eq!(sequences(&batch.responses[0].events), [1, 3]);
        assert_eq!(sequences(&batch.responses[1].events), [2]);
        assert!(batch.responses[2].events.is_empty());
        // The batch's page token continues with ListEvents.
        let rest = staff
            .list_events(pb::ListEventsRequest {
                page_token: batch.responses[0].next_page_token.clone(),
                ..list("order-1", 2)
            })
            .await
            .expect("next page")
            .into_inner();
        assert_eq!(sequences(&rest.events), [4]);

        let status = staff
            .batch_list_events(pb::BatchListEventsRequest {
                requests: vec![list("order-1", 2), list("", 2), list("order-2", -1)],
            })
            .await
            .expect_err("bad requests");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            violated_fields(&status),
            ["requests[1].subjects[0]", "requests[2].page_size"]
        );
        server.stop().await.expect("drain");
    }
}

/// An event's source is the service that appends it and its time the moment the ledger received
/// it: a body naming another service is refused and stores nothing, an empty source is the
/// caller's, and a backdated time is not kept.
#[tokio::test]
async fn the_source_is_the_caller_and_the_time_is_when_the_ledger_received_it() {
    for database in databases("ledger") {
        let App {
            server,
            mut client,
            mut staff,
        } = spawn_app(&database).await;
        let disguised = pb::Event {
            source: "payments".into(),
            ..event("disguised", "order-1", 1)
        };
        let status = client
            .append_events(pb::AppendEventsRequest {
                events: vec![event("honest", "order-1", 0), disguised],
            })
            .await
            .expect_err("an event in another service's name");
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "{}: {}",
            database.backend,
            status.message()
        );
        assert_eq!(
            status.get_details_error_info().map(|info| info.reason),
            Some("SOURCE_NOT_CALLER".to_owned())
        );
        assert!(
            list_all(&mut staff, &[], 10).await.concat().is_empty(),
            "nothing of a refused append is stored"
        );

        let before = now_micros();
        let backdated = pb::Event {
            source: String::new(),
            time: Some(timestamp_from_micros(946_684_800_000_000)),
            ..event("backdated", "order-1", 1)
        };
        let stored = append(&mut client, vec![backdated]).await;
        assert_eq!(stored[0].source, SOURCE, "an empty source is the caller's");
        let time = stored[0].time.expect("a stored event has a time");
        let received = time.seconds * 1_000_000 + i64::from(time.nanos / 1000);
        assert!(
            received >= before,
            "the stored time is when the ledger received the event, not the body's 2000-01-01"
        );

        let mut as_staff = LedgerServiceClient::new(server.channel().await);
        let status = as_staff
            .append_events(pb::AppendEventsRequest {
                events: vec![event("by-staff", "order-1", 2)],
            })
            .await
            .expect_err("staff do not append");
        assert_eq!(status.code(), Code::PermissionDenied);
        server.stop().await.expect("drain");
    }
}

/// A customer reads only the events about them (their customer id), in lists, batch lists and
/// watches, while staff read every event.
#[tokio::test]
async fn a_customer_reads_only_the_events_about_them() {
    for database in databases("ledger") {
        let App {
            server,
            mut client,
            mut staff,
        } = spawn_app(&database).await;
        let about = |id: &str, customer_id: &str| pb::Event {
            customer_id: customer_id.into(),
            ..event(id, &format!("order-of-{customer_id}"), 0)
        };
        let appended = append(
            &mut client,
            vec![
                about("a1", "alice"),
                about("b1", "bob"),
                event("stock", "SKU-1", 0),
                about("a2", "alice"),
            ],
        )
        .await;
        let mut alice =
            LedgerServiceClient::new(server.channel_as(&Grant::Customer("alice".into())).await);
        let ids = |events: &[pb::Event]| -> Vec<String> {
            events.iter().map(|event| event.id.clone()).collect()
        };

        assert_eq!(
            ids(&list_all(&mut alice, &[], 1).await.concat()),
            ["a1", "a2"],
            "{}",
            database.backend
        );
        assert!(
            list_all(&mut alice, &["order-of-bob"], 10)
                .await
                .concat()
                .is_empty(),
            "a filter naming bob's subject lists nothing"
        );
        let batch = alice
            .batch_list_events(pb::BatchListEventsRequest {
                requests: vec![
                    pb::ListEventsRequest::default(),
                    pb::ListEventsRequest {
                        subjects: vec!["order-of-bob".into(), "order-of-alice".into()],
                        ..Default::default()
                    },
                ],
            })
            .await
            .expect("batch list")
            .into_inner();
        for response in &batch.responses {
            assert_eq!(ids(&response.events), ["a1", "a2"]);
        }

        let mut watched = watch(&mut alice, 0, None).await;
        assert_eq!(ids(&take(&mut watched, 2).await), ["a1", "a2"]);
        append(&mut client, vec![about("b2", "bob"), about("a3", "alice")]).await;
        assert_eq!(
            ids(&take(&mut watched, 1).await),
            ["a3"],
            "a live event about bob is not watched by alice"
        );

        let everything = list_all(&mut staff, &[], 10).await.concat();
        assert_eq!(everything[..4], appended[..]);
        assert_eq!(
            ids(&everything[4..]),
            ["b2", "a3"],
            "staff read every event"
        );
        drop(watched);
        server.stop().await.expect("drain");
    }
}
