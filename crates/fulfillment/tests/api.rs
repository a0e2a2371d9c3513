//! `FulfillmentService` over real gRPC against a real server, on SQLite and (when
//! `CROWDCRUNCH_TEST_DATABASE_URL` is set) on PostgreSQL.

use std::time::Duration;

use crowdcrunch_outbox::Outbox;
use crowdcrunch_proto::fulfillment::v1 as pb;
use crowdcrunch_proto::fulfillment::v1::fulfillment_service_client::FulfillmentServiceClient;
use crowdcrunch_proto::ledger::v1 as ledger_pb;
use crowdcrunch_proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use crowdcrunch_proto::r#type::v1::Address;
use crowdcrunch_runtime::auth::Grant;
use crowdcrunch_runtime::client::GrpcChannel;
use crowdcrunch_runtime::testing::{
    TestDatabase, TestServer, all_pages, assert_answered_as_missing, assert_invalid_argument,
    databases, failed_precondition, violated_fields,
};
use pb::ShipmentStatus::{self, Cancelled, Delivered, Packed, Pending, Shipped};
use tonic::Code;

/// A fulfillment server over a fresh database, and clients to it.
struct App {
    server: TestServer,
    /// Calls as the orders service: creates, moves and lists shipments.
    client: FulfillmentServiceClient<GrpcChannel>,
    /// Calls as staff, who read every shipment.
    staff: FulfillmentServiceClient<GrpcChannel>,
}

async fn spawn_app(database: &TestDatabase) -> App {
    let database = database.connect(&crowdcrunch_fulfillment::MIGRATOR).await;
    let outbox = Outbox::open(&database, crowdcrunch_fulfillment::DATABASE_NAME)
        .await
        .expect("open the outbox");
    let server = TestServer::start(crowdcrunch_fulfillment::service(database, outbox)).await;
    let client = FulfillmentServiceClient::new(server.channel_as_peer("orders").await);
    let staff = FulfillmentServiceClient::new(server.channel().await);
    App {
        server,
        client,
        staff,
    }
}

fn address() -> Address {
    Address {
        recipient: "Ada Lovelace".into(),
        line1: "12 St James's Square".into(),
        line2: String::new(),
        city: "London".into(),
        region: String::new(),
        postal_code: "SW1Y 4JH".into(),
        country_code: "GB".into(),
    }
}

fn line(sku: &str, quantity: i32) -> pb::ShipmentLine {
    pb::ShipmentLine {
        sku: sku.into(),
        quantity,
    }
}

/// The customer every shipment of these tests goes to.
const CUSTOMER: &str = "0190b6e2-7c1a-7d4e-9f00-1a2b3c4d5e6f";

fn new_shipment(order_id: &str, return_id: &str, request_id: &str) -> pb::CreateShipmentRequest {
    pb::CreateShipmentRequest {
        shipment: Some(pb::Shipment {
            order_id: order_id.into(),
            customer_id: CUSTOMER.into(),
            return_id: return_id.into(),
            lines: vec![line("TSHIRT-BLK-M", 2), line("MUG-01", 1)],
            address: Some(address()),
            ..Default::default()
        }),
        request_id: request_id.into(),
    }
}

async fn create(
    client: &mut FulfillmentServiceClient<GrpcChannel>,
    order_id: &str,
) -> pb::Shipment {
    client
        .create_shipment(new_shipment(order_id, "", ""))
        .await
        .expect("create shipment")
        .into_inner()
}

fn move_request(id: &str, status: ShipmentStatus) -> pb::UpdateShipmentStatusRequest {
    pb::UpdateShipmentStatusRequest {
        id: id.into(),
        status: status.into(),
        tracking_number: if status == Shipped {
            "1Z999AA10123456784".into()
        } else {
            String::new()
        },
        request_id: String::new(),
    }
}

async fn move_to(
    client: &mut FulfillmentServiceClient<GrpcChannel>,
    id: &str,
    status: ShipmentStatus,
) -> Result<pb::Shipment, tonic::Status> {
    client
        .update_shipment_status(move_request(id, status))
        .await
        .map(tonic::Response::into_inner)
}

async fn get(client: &mut FulfillmentServiceClient<GrpcChannel>, id: &str) -> pb::Shipment {
    client
        .get_shipment(pb::GetShipmentRequest { id: id.into() })
        .await
        .expect("get shipment")
        .into_inner()
}

async fn list_all(
    client: &mut FulfillmentServiceClient<GrpcChannel>,
    page_size: i32,
    order_ids: &[&str],
) -> Vec<Vec<pb::Shipment>> {
    let order_ids: Vec<String> = order_ids.iter().map(|id| (*id).to_owned()).collect();
    all_pages(|page_token| {
        let mut client = client.clone();
        let order_ids = order_ids.clone();
        async move {
            let page = client
                .list_shipments(pb::ListShipmentsRequest {
                    page_size,
                    page_token,
                    order_ids,
                })
                .await
                .expect("list shipments")
                .into_inner();
            (page.shipments, page.next_page_token)
        }
    })
    .await
}

#[tokio::test]
async fn a_shipment_is_created_pending_and_read_back() {
    for database in databases("fulfillment") {
        let App {
            server,
            mut client,
            mut staff,
        } = spawn_app(&database).await;
        let created = create(&mut client, "order-1").await;
        assert!(!created.id.is_empty());
        assert_eq!(created.status(), Pending, "{}", database.backend);
        assert_eq!(created.order_id, "order-1");
        assert_eq!(created.return_id, "");
        assert_eq!(created.tracking_number, "");
        assert_eq!(
            created.lines,
            [line("TSHIRT-BLK-M", 2), line("MUG-01", 1)],
            "lines in the order given"
        );
        assert_eq!(created.address, Some(address()));
        assert_eq!(created.create_time, created.update_time);
        assert_eq!(get(&mut staff, &created.id).await, created);

        let replacement = client
            .create_shipment(new_shipment("order-1", "return-7", ""))
            .await
            .expect("an exchange's replacement")
            .into_inner();
        assert_eq!(replacement.return_id, "return-7");

        let ids = vec![
            replacement.id.clone(),
            created.id.clone(),
            replacement.id.clone(),
        ];
        let batch = staff
            .batch_get_shipments(pb::BatchGetShipmentsRequest { ids })
            .await
            .expect("batch get")
            .into_inner();
        assert_eq!(
            batch.shipments,
            [replacement.clone(), created.clone(), replacement]
        );
        let status = staff
            .batch_get_shipments(pb::BatchGetShipmentsRequest {
                ids: vec![created.id.clone(), "no-such-shipment".into()],
            })
            .await
            .expect_err("one unknown id");
        assert_eq!(status.code(), Code::NotFound);
        let status = staff
            .get_shipment(pb::GetShipmentRequest {
                id: "no-such-shipment".into(),
            })
            .await
            .expect_err("unknown");
        assert_eq!(status.code(), Code::NotFound);
        let status = move_to(&mut client, "no-such-shipment", Packed)
            .await
            .expect_err("unknown");
        assert_eq!(status.code(), Code::NotFound);
        server.stop().await.expect("drain");
    }
}

/// What asking a shipment in one status for another does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// It moves.
    Moves,
    /// It already has the status: returned unchanged.
    Unchanged,
    /// FAILED_PRECONDITION.
    Refused,
}

/// The moves that bring a new shipment to `status`.
fn path_to(status: ShipmentStatus) -> &'static [ShipmentStatus] {
    match status {
        Pending | ShipmentStatus::Unspecified => &[],
        Packed => &[Packed],
        Shipped => &[Packed, Shipped],
        Delivered => &[Packed, Shipped, Delivered],
        Cancelled => &[Cancelled],
    }
}

#[tokio::test]
async fn a_shipment_moves_only_forward_one_step_at_a_time() {
    use Expect::{Moves, Refused, Unchanged};
    let cases = [
        (Pending, Pending, Unchanged),
        (Pending, Packed, Moves),
        (Pending, Shipped, Refused),
        (Pending, Delivered, Refused),
        (Pending, Cancelled, Moves),
        (Packed, Pending, Refused),
        (Packed, Packed, Unchanged),
        (Packed, Shipped, Moves),
        (Packed, Delivered, Refused),
        (Packed, Cancelled, Moves),
        (Shipped, Pending, Refused),
        (Shipped, Packed, Refused),
        (Shipped, Shipped, Unchanged),
        (Shipped, Delivered, Moves),
        (Shipped, Cancelled, Refused),
        (Delivered, Pending, Refused),
        (Delivered, Packed, Refused),
        (Delivered, Shipped, Refused),
        (Delivered, Delivered, Unchanged),
        (Delivered, Cancelled, Refused),
        (Cancelled, Pending, Refused),
        (Cancelled, Packed, Refused),
        (Cancelled, Shipped, Refused),
        (Cancelled, Delivered, Refused),
        (Cancelled, Cancelled, Unchanged),
    ];
    for database in databases("fulfillment") {
        let App {
            server,
            mut client,
            mut staff,
        } = spawn_app(&database).await;
        for (from, to, expect) in cases {
            let case = format!("{}: {from:?} → {to:?}", database.backend);
            let shipment = create(&mut client, "order-1").await;
            let mut before = shipment;
            for step in path_to(from) {
                before = move_to(&mut client, &before.id, *step)
                    .await
                    .unwrap_or_else(|status| panic!("{case}: setting up: {status:?}"));
            }
            assert_eq!(before.status(), from, "{case}");
            let answer = move_to(&mut client, &before.id, to).await;
            match (expect, answer) {
                (Moves, Ok(moved)) => {
                    assert_eq!(moved.status(), to, "{case}");
                    assert_ne!(moved.update_time, before.update_time, "{case}");
                    assert_eq!(moved.lines, before.lines, "{case}");
                }
                (Unchanged, Ok(same)) => assert_eq!(same, before, "{case}"),
                (Refused, Err(status)) => {
                    assert_eq!(status.code(), Code::FailedPrecondition, "{case}");
                    let (reason, violations) = failed_precondition(&status);
                    assert_eq!(reason, "SHIPMENT_STATUS", "{case}");
                    let subjects: Vec<_> =
                        violations.into_iter().map(|(_, subject)| subject).collect();
                    assert_eq!(subjects, [before.id.clone()], "{case}");
                    assert_eq!(get(&mut staff, &before.id).await, before, "{case}");
                }
                (expect, answer) => panic!("{case}: expected {expect:?}, got {answer:?}"),
            }
        }
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn shipping_needs_a_tracking_number() {
    for database in databases("fulfillment") {
        let App {
            server,
            mut client,
            mut staff,
        } = spawn_app(&database).await;
        let shipment = create(&mut client, "order-1").await;
        let packed = move_to(&mut client, &shipment.id, Packed)
            .await
            .expect("pack");
        assert_eq!(
            packed.tracking_number, "",
            "no tracking number before SHIPPED"
        );
        for tracking_number in ["", "   ", "has space", &"x".repeat(65)] {
            let status = client
                .update_shipment_status(pb::UpdateShipmentStatusRequest {
                    tracking_number: tracking_number.into(),
                    ..move_request(&shipment.id, Shipped)
                })
                .await
                .expect_err("a bad tracking number");
            assert_eq!(status.code(), Code::InvalidArgument, "{tracking_number:?}");
            assert_eq!(violated_fields(&status), ["tracking_number"]);
        }
        assert_eq!(get(&mut staff, &shipment.id).await, packed, "still PACKED");

        let shipped = move_to(&mut client, &shipment.id, Shipped)
            .await
            .expect("ship");
        assert_eq!(shipped.tracking_number, "1Z999AA10123456784");
        let again = client
            .update_shipment_status(pb::UpdateShipmentStatusRequest {
                tracking_number: "ANOTHER-NUMBER".into(),
                ..move_request(&shipment.id, Shipped)
            })
            .await
            .expect("a repeat")
            .into_inner();
        assert_eq!(
            again, shipped,
            "{}: the first answer stands",
            database.backend
        );
        let delivered = move_to(&mut client, &shipment.id, Delivered)
            .await
            .expect("deliver");
        assert_eq!(delivered.tracking_number, "1Z999AA10123456784");
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn a_replayed_request_id_creates_or_moves_once() {
    for database in databases("fulfillment") {
        let App {
            server, mut client, ..
        } = spawn_app(&database).await;
        let backend = database.backend;
        let request = new_shipment("order-1", "", "order-1:ship");
        let first = client
            .create_shipment(request.clone())
            .await
            .expect("first")
            .into_inner();
        let replay = client
            .create_shipment(request)
            .await
            .expect("replay")
            .into_inner();
        assert_eq!(first, replay, "{backend}");

        // Concurrent first uses of one id: one shipment, one answer.
        let racing = new_shipment("order-2", "", "order-2:ship");
        let answers = futures::future::join_all((0..8).map(|_| {
            let mut client = client.clone();
            let request = racing.clone();
            async move {
                client
                    .create_shipment(request)
                    .await
                    .map(tonic::Response::into_inner)
            }
        }))
        .await;
        let ids: std::collections::HashSet<_> = answers
            .into_iter()
            .map(|answer| answer.expect("every racer gets the answer").id)
            .collect();
        assert_eq!(ids.len(), 1, "{backend}: one shipment for one request id");
        assert_eq!(list_all(&mut client, 10, &[]).await.concat().len(), 2);

        let status = client
            .create_shipment(new_shipment("order-3", "", "order-1:ship"))
            .await
            .expect_err("a request id reused for another shipment");
        assert_eq!(violated_fields(&status), ["request_id"]);

        let pack = pb::UpdateShipmentStatusRequest {
            request_id: "pack-1".into(),
            ..move_request(&first.id, Packed)
        };
        let packed = client
            .update_shipment_status(pack.clone())
            .await
            .expect("pack");
        let replay = client.update_shipment_status(pack).await.expect("replay");
        assert_eq!(packed.get_ref(), replay.get_ref(), "{backend}");
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn shipments_are_listed_by_order_in_pages() {
    for database in databases("fulfillment") {
        let App {
            server, mut client, ..
        } = spawn_app(&database).await;
        let mut created = Vec::new();
        for (order_id, return_id) in [
            ("order-a", ""),
            ("order-b", ""),
            ("order-a", "return-1"),
            ("order-c", ""),
            ("order-a", "return-2"),
        ] {
            let shipment = client
                .create_shipment(new_shipment(order_id, return_id, ""))
                .await
                .expect("create")
                .into_inner();
            created.push(shipment);
        }
        let cases: [(&[&str], i32, &[usize]); 5] = [
            (&[], 0, &[5]),
            (&[], 2, &[2, 2, 1]),
            (&["order-a"], 2, &[2, 1]),
            (&["order-c", "order-b", "order-c"], 1, &[1, 1]),
            (&["order-none"], 10, &[0]),
        ];
        for (order_ids, page_size, sizes) in cases {
            let pages = list_all(&mut client, page_size, order_ids).await;
            let page_sizes: Vec<_> = pages.iter().map(Vec::len).collect();
            assert_eq!(page_sizes, sizes, "{}: {order_ids:?}", database.backend);
            let expected: Vec<_> = created
                .iter()
                .filter(|shipment| {
                    order_ids.is_empty() || order_ids.contains(&shipment.order_id.as_str())
                })
                .cloned()
                .collect();
            assert_eq!(pages.concat(), expected, "creation order, lines included");
        }
        let first = client
            .list_shipments(pb::ListShipmentsRequest {
                page_size: 1,
                page_token: String::new(),
                order_ids: vec!["order-a".into()],
            })
            .await
            .expect("first page")
            .into_inner();
        let status = client
            .list_shipments(pb::ListShipmentsRequest {
                page_size: 1,
                page_token: first.next_page_token,
                order_ids: vec![],
            })
            .await
            .expect_err("a token of another filter");
        assert_eq!(violated_fields(&status), ["page_token"]);
        server.stop().await.expect("drain");
    }
}

/// A customer reads their own shipments only: another's is answered exactly as an unknown id, a
/// list holds only theirs, while staff read everyone's.
#[tokio::test]
async fn a_customer_sees_only_their_own_shipments() {
    for database in databases("fulfillment") {
        let App {
            server,
            mut client,
            mut staff,
        } = spawn_app(&database).await;
        let mine = create(&mut client, "order-mine").await;
        let mut request = new_shipment("order-theirs", "", "");
        if let Some(shipment) = request.shipment.as_mut() {
            shipment.customer_id = "another-customer".into();
        }
        let theirs = client
            .create_shipment(request)
            .await
            .expect("a shipment to another customer")
            .into_inner();
        let unknown = "no-such-shipment";
        let mut customer = FulfillmentServiceClient::new(
            server.channel_as(&Grant::Customer(CUSTOMER.into())).await,
        );

        assert_eq!(
            get(&mut customer, &mine.id).await,
            mine,
            "{}",
            database.backend
        );
        let get_status = async |client: &mut FulfillmentServiceClient<GrpcChannel>, id: &str| {
            client
                .get_shipment(pb::GetShipmentRequest { id: id.into() })
                .await
                .expect_err("hidden or missing")
        };
        let hidden = get_status(&mut customer, &theirs.id).await;
        let missing = get_status(&mut customer, unknown).await;
        assert_eq!(missing.code(), Code::NotFound);
        assert_answered_as_missing(&hidden, &theirs.id, &missing, unknown);

        let batch = |ids: &[&str]| pb::BatchGetShipmentsRequest {
            ids: ids.iter().map(|id| (*id).to_owned()).collect(),
        };
        let hidden = customer
            .batch_get_shipments(batch(&[&mine.id, &theirs.id]))
            .await
            .expect_err("another's shipment in a batch");
        let missing = customer
            .batch_get_shipments(batch(&[&mine.id, unknown]))
            .await
            .expect_err("an unknown shipment in a batch");
        assert_answered_as_missing(&hidden, &theirs.id, &missing, unknown);

        assert_eq!(
            list_all(&mut customer, 10, &[]).await.concat(),
            std::slice::from_ref(&mine)
        );
        assert!(
            list_all(&mut customer, 10, &["order-theirs"])
                .await
                .concat()
                .is_empty(),
            "a filter naming another's order lists nothing"
        );
        assert_eq!(
            list_all(&mut staff, 10, &[]).await.concat(),
            [mine, theirs],
            "staff list everyone's"
        );
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn bad_input_is_refused_with_field_violations() {
    for database in databases("fulfillment") {
        let App {
            server, mut client, ..
        } = spawn_app(&database).await;
        let with = |change: &dyn Fn(&mut pb::Shipment)| {
            let mut request = new_shipment("order-1", "", "");
            if let Some(shipment) = request.shipment.as_mut() {
                change(shipment);
            }
            request
        };
        let with_address = |change: &dyn Fn(&mut Address)| {
            with(&|shipment: &mut pb::Shipment| {
                if let Some(address) = shipment.address.as_mut() {
                    change(address);
                }
            })
        };
        let create_cases: Vec<(pb::CreateShipmentRequest, Vec<&str>)> = vec![
            (
                pb::CreateShipmentRequest {
                    shipment: None,
                    request_id: String::new(),
                },
                vec!["shipment"],
            ),
            (
                with(&|shipment| shipment.order_id.clear()),
                vec!["shipment.order_id"],
            ),
            (
                with(&|shipment| shipment.customer_id.clear()),
                vec!["shipment.customer_id"],
            ),
            (
                with(&|shipment| shipment.return_id = "r".repeat(65)),
                vec!["shipment.return_id"],
            ),
            (
                with(&|shipment| shipment.lines.clear()),
                vec!["shipment.lines"],
            ),
            (
                with(&|shipment| {
                    shipment.lines = vec![line("", 1), line("A B", 1), line("OK", 0)];
                }),
                vec![
                    "shipment.lines[0].sku",
                    "shipment.lines[1].sku",
                    "shipment.lines[2].quantity",
                ],
            ),
            (
                with(&|shipment| shipment.lines = vec![line("MUG-01", 1), line("MUG-01", 2)]),
                vec!["shipment.lines[1].sku"],
            ),
            (
                with(&|shipment| shipment.address = None),
                vec!["shipment.address"],
            ),
            (
                with_address(&|address| *address = Address::default()),
                vec![
                    "shipment.address.recipient",
                    "shipment.address.line1",
                    "shipment.address.city",
                    "shipment.address.country_code",
                ],
            ),
            (
                with_address(&|address| address.country_code = "gb".into()),
                vec!["shipment.address.country_code"],
            ),
            (
                with_address(&|address| address.line2 = "x".repeat(201)),
                vec!["shipment.address.line2"],
            ),
        ];
        for (request, fields) in create_cases {
            let status = client
                .create_shipment(request)
                .await
                .expect_err("bad input must fail");
            assert_invalid_argument(&status, "fulfillment.crowdcrunch.dev", &fields);
        }

        let shipment = create(&mut client, "order-1").await;
        let move_cases: [(i32, &[&str]); 2] = [(0, &["status"]), (99, &["status"])];
        for (status, fields) in move_cases {
            let answer = client
                .update_shipment_status(pb::UpdateShipmentStatusRequest {
                    status,
                    ..move_request(&shipment.id, Packed)
                })
                .await
                .expect_err("not a status");
            assert_eq!(violated_fields(&answer), fields);
        }
        let status = move_to(&mut client, "", Packed).await.expect_err("no id");
        assert_eq!(violated_fields(&status), ["id"]);
        let status = client
            .list_shipments(pb::ListShipmentsRequest {
                page_size: -1,
                page_token: String::new(),
                order_ids: vec!["x".into(); 1001],
            })
            .await
            .expect_err("too much");
        assert_eq!(violated_fields(&status), ["order_ids", "page_size"]);
        assert_eq!(
            list_all(&mut client, 10, &[]).await.concat(),
            [shipment],
            "bad input created nothing"
        );
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn a_restart_loses_nothing() {
    for database in databases("fulfillment") {
        let App {
            server, mut client, ..
        } = spawn_app(&database).await;
        let shipment = create(&mut client, "order-1").await;
        move_to(&mut client, &shipment.id, Packed)
            .await
            .expect("pack");
        let shipped = move_to(&mut client, &shipment.id, Shipped)
            .await
            .expect("ship");
        server.stop().await.expect("drain");

        let App {
            server,
            mut client,
            mut staff,
        } = spawn_app(&database).await;
        assert_eq!(
            get(&mut staff, &shipment.id).await,
            shipped,
            "{}",
            database.backend
        );
        let delivered = move_to(&mut client, &shipment.id, Delivered)
            .await
            .expect("the shipment goes on where it was");
        assert_eq!(delivered.status(), Delivered);
        server.stop().await.expect("drain");
    }
}

/// The next `count` events about `subject` in the ledger, waiting for the relay to deliver them.
async fn ledger_events(
    ledger: &mut LedgerServiceClient<GrpcChannel>,
    subject: &str,
    count: usize,
) -> Vec<ledger_pb::Event> {
    let mut stream = ledger
        .watch_events(ledger_pb::WatchEventsRequest {
            after_sequence: 0,
            subject: Some(subject.into()),
        })
        .await
        .expect("watch the ledger")
        .into_inner();
    let mut events = Vec::new();
    while events.len() < count {
        let next = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .unwrap_or_else(|_| panic!("only {} events about {subject} arrived", events.len()));
        events.push(next.expect("the stream works").expect("the stream goes on"));
    }
    events
}

/// The text field `name` of an event's data, if it has one.
fn text<'a>(event: &'a ledger_pb::Event, name: &str) -> Option<&'a str> {
    match event.data.as_ref()?.fields.get(name)?.kind.as_ref()? {
        prost_types::value::Kind::StringValue(text) => Some(text),
        _ => None,
    }
}

#[tokio::test]
async fn the_events_of_a_shipment_reach_the_ledger_about_its_order() {
    for (database, ledger_database) in databases("fulfillment")
        .into_iter()
        .zip(databases("ledger"))
    {
        let ledger_db = ledger_database.connect(&crowdcrunch_ledger::MIGRATOR).await;
        let ledger =
            TestServer::start_with(|shutdown| crowdcrunch_ledger::service(ledger_db, shutdown))
                .await;
        let database = database.connect(&crowdcrunch_fulfillment::MIGRATOR).await;
        let outbox = Outbox::open(&database, crowdcrunch_fulfillment::DATABASE_NAME)
            .await
            .expect("open the outbox");
        let channel = ledger.channel_as_peer("fulfillment").await;
        let stop = crowdcrunch_runtime::Shutdown::new();
        let relay = tokio::spawn(outbox.relay(channel).run(stop.clone()));
        let server = TestServer::start(crowdcrunch_fulfillment::service(database, outbox)).await;
        let mut client = FulfillmentServiceClient::new(server.channel_as_peer("orders").await);
        let mut ledger_client = LedgerServiceClient::new(ledger.channel().await);

        let own = create(&mut client, "order-1").await;
        for status in [Packed, Shipped, Shipped, Delivered] {
            move_to(&mut client, &own.id, status).await.expect("move");
        }
        let replacement = client
            .create_shipment(new_shipment("order-1", "return-1", ""))
            .await
            .expect("create a replacement")
            .into_inner();
        move_to(&mut client, &replacement.id, Cancelled)
            .await
            .expect("cancel");

        let events = ledger_events(&mut ledger_client, "order-1", 6).await;
        let story: Vec<_> = events
            .iter()
            .map(|event| {
                (
                    event.r#type.as_str(),
                    text(event, "shipment_id") == Some(own.id.as_str()),
                    text(event, "return_id"),
                    text(event, "status").unwrap_or_default(),
                    text(event, "tracking_number"),
                )
            })
            .collect();
        let tracking = Some("1Z999AA10123456784");
        assert_eq!(
            story,
            [
                (
                    "ShipmentCreated",
                    true,
                    None,
                    "SHIPMENT_STATUS_PENDING",
                    None
                ),
                ("ShipmentPacked", true, None, "SHIPMENT_STATUS_PACKED", None),
                (
                    "ShipmentShipped",
                    true,
                    None,
                    "SHIPMENT_STATUS_SHIPPED",
                    tracking
                ),
                (
                    "ShipmentDelivered",
                    true,
                    None,
                    "SHIPMENT_STATUS_DELIVERED",
                    tracking
                ),
                (
                    "ShipmentCreated",
                    false,
                    Some("return-1"),
                    "SHIPMENT_STATUS_PENDING",
                    None
                ),
                (
                    "ShipmentCancelled",
                    false,
                    Some("return-1"),
                    "SHIPMENT_STATUS_CANCELLED",
                    None
                ),
            ],
            "{}: one event per change, none for the repeated SHIPPED",
            ledger_database.backend
        );
        for event in &events {
            assert_eq!(event.source, "fulfillment");
            assert_eq!(text(event, "order_id"), Some("order-1"));
        }
        assert_eq!(
            text(&events[5], "shipment_id"),
            Some(replacement.id.as_str())
        );

        server.stop().await.expect("drain");
        stop.trigger();
        relay.await.expect("the relay ends");
        ledger.stop().await.expect("drain the ledger");
    }
}
