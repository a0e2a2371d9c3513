//! The outbox end to end, over real gRPC: the customers and inventory services record their
//! changes in their outboxes, and their relays deliver them to a real ledger: in order, with the
//! right subjects, once, also when the ledger is down for a while or a service restarts meanwhile.
//! On SQLite and (when `CROWDCRUNCH_TEST_DATABASE_URL` is set) on PostgreSQL.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crowdcrunch_outbox::Outbox;
use crowdcrunch_proto::customers::v1 as customers;
use crowdcrunch_proto::customers::v1::customer_service_client::CustomerServiceClient;
use crowdcrunch_proto::inventory::v1 as inventory;
use crowdcrunch_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use crowdcrunch_proto::ledger::v1 as ledger;
use crowdcrunch_proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use crowdcrunch_runtime::auth::Grant;
use crowdcrunch_runtime::client::{Endpoints, GrpcChannel, ServiceToken, channel};
use crowdcrunch_runtime::testing::{
    TestDatabase, TestServer, all_pages, databases, reserved_addr, token,
};
use crowdcrunch_runtime::{Database, ServerSettings};
use tokio::task::JoinHandle;

/// How long a test waits for events to reach the ledger before it fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// The databases of one backend: one per service, as in production.
struct Backend {
    name: &'static str,
    customers: TestDatabase,
    inventory: TestDatabase,
    ledger: TestDatabase,
}

fn backends() -> Vec<Backend> {
    databases("customers")
        .into_iter()
        .zip(databases("inventory"))
        .zip(databases("ledger"))
        .map(|((customers, inventory), ledger)| Backend {
            name: customers.backend,
            customers,
            inventory,
            ledger,
        })
        .collect()
}

/// A ledger server on `addr` (port 0 for any), and a client to it.
async fn start_ledger(
    database: &TestDatabase,
    addr: SocketAddr,
) -> (TestServer, LedgerServiceClient<GrpcChannel>) {
    let database = database.connect(&crowdcrunch_ledger::MIGRATOR).await;
    let server = TestServer::spawn_with(ServerSettings::new(addr), |shutdown| {
        crowdcrunch_ledger::service(database, shutdown)
    })
    .await;
    let client = LedgerServiceClient::new(server.channel().await);
    (server, client)
}

/// A service with its relay delivering to the ledger at `ledger`, served or not.
struct Running {
    server: TestServer,
    relay: JoinHandle<()>,
}

impl Running {
    async fn start<S: crowdcrunch_runtime::server::GrpcService>(
        database: Database,
        source: &'static str,
        ledger: SocketAddr,
        service: impl FnOnce(Database, Outbox) -> crowdcrunch_runtime::server::ServiceDefinition<S>,
    ) -> Self {
        let outbox = Outbox::open(&database, source)
            .await
            .expect("open the outbox");
        let endpoints = Endpoints::parse(&format!("http://{ledger}")).expect("a ledger URL");
        // The relay calls the ledger as its service, as `serve` and `dev` run it.
        let identity = ServiceToken::new(&token(&Grant::Service(source.to_owned())))
            .expect("a token is a header value");
        let to_ledger = channel(&endpoints, None)
            .expect("a ledger channel")
            .carrying(identity);
        let relay = outbox.relay(to_ledger);
        let server = TestServer::start(service(database, outbox)).await;
        let relay = tokio::spawn(relay.run(server.shutdown.clone()));
        Self { server, relay }
    }

    async fn stop(self) {
        self.server.stop().await.expect("drain");
        self.relay.await.expect("the relay ends");
    }
}

async fn start_customers(database: &TestDatabase, ledger: SocketAddr) -> Running {
    let database = database.connect(&crowdcrunch_customers::MIGRATOR).await;
    Running::start(
        database,
        "customers",
        ledger,
        crowdcrunch_customers::service,
    )
    .await
}

async fn start_inventory(database: &TestDatabase, ledger: SocketAddr) -> Running {
    let database = database.connect(&crowdcrunch_inventory::MIGRATOR).await;
    Running::start(
        database,
        "inventory",
        ledger,
        crowdcrunch_inventory::service,
    )
    .await
}

async fn inventory_client(running: &Running) -> InventoryServiceClient<GrpcChannel> {
    InventoryServiceClient::new(running.server.channel().await)
}

/// A client of inventory calling as the orders service, which reserves and restocks.
async fn inventory_as_orders(running: &Running) -> InventoryServiceClient<GrpcChannel> {
    InventoryServiceClient::new(running.server.channel_as_peer("orders").await)
}

async fn customers_client(running: &Running) -> CustomerServiceClient<GrpcChannel> {
    CustomerServiceClient::new(running.server.channel().await)
}

/// Every event in the ledger.
async fn all_events(client: &mut LedgerServiceClient<GrpcChannel>) -> Vec<ledger::Event> {
    let pages = all_pages(|page_token| {
        let mut client = client.clone();
        async move {
            let page = client
                .list_events(ledger::ListEventsRequest {
                    page_size: 1000,
                    page_token,
                    subjects: Vec::new(),
                })
                .await
                .expect("list events")
                .into_inner();
            (page.events, page.next_page_token)
        }
    })
    .await;
    pages.concat()
}

/// The ledger's events once every subject in `sentinels` is there. A relay delivers its outbox in
/// order, so a change made after all the others of its service arrives after all of them (and
/// after any repeated delivery of them).
async fn events_through(
    client: &mut LedgerServiceClient<GrpcChannel>,
    sentinels: &[&str],
) -> Vec<ledger::Event> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let events = all_events(client).await;
        let arrived = |subject: &&str| events.iter().any(|event| event.subject == *subject);
        if sentinels.iter().all(arrived) {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "the events through {sentinels:?} did not reach the ledger; it has {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn create_product(sku: &str, stock: i32, request_id: &str) -> inventory::CreateProductRequest {
    inventory::CreateProductRequest {
        product: Some(inventory::Product {
            sku: sku.into(),
            title: format!("Product {sku}"),
            price: Some(crowdcrunch_proto::r#type::v1::Money {
                currency_code: "USD".into(),
                minor_units: 1000,
            }),
            active: true,
            ..Default::default()
        }),
        initial_stock: stock,
        request_id: request_id.into(),
    }
}

fn reserve(id: &str, sku: &str, quantity: i32) -> inventory::ReserveStockRequest {
    inventory::ReserveStockRequest {
        reservation_id: id.into(),
        lines: vec![inventory::ReservationLine {
            sku: sku.into(),
            quantity,
        }],
        request_id: String::new(),
    }
}

fn create_customer(email: &str, request_id: &str) -> customers::CreateCustomerRequest {
    customers::CreateCustomerRequest {
        customer: Some(customers::Customer {
            email: email.into(),
            display_name: "Someone".into(),
            ..Default::default()
        }),
        request_id: request_id.into(),
    }
}

/// (source, type, subject) of each event.
fn facts(events: &[ledger::Event]) -> Vec<(String, String, String)> {
    events
        .iter()
        .map(|event| {
            (
                event.source.clone(),
                event.r#type.clone(),
                event.subject.clone(),
            )
        })
        .collect()
}

fn fact(source: &str, event_type: &str, subject: &str) -> (String, String, String) {
    (source.into(), event_type.into(), subject.into())
}

fn assert_unique_ids(events: &[ledger::Event], backend: &str) {
    let ids: HashSet<_> = events.iter().map(|event| event.id.as_str()).collect();
    assert_eq!(
        ids.len(),
        events.len(),
        "{backend}: an event recorded twice"
    );
}

#[tokio::test]
async fn every_change_reaches_the_ledger_once_in_order_with_its_subject() {
    for backend in backends() {
        let (ledger_server, mut ledger) = start_ledger(&backend.ledger, reserved_addr()).await;
        let customers_service = start_customers(&backend.customers, ledger_server.addr).await;
        let inventory_service = start_inventory(&backend.inventory, ledger_server.addr).await;
        let mut customers = customers_client(&customers_service).await;
        let mut inventory = inventory_client(&inventory_service).await;
        let mut as_orders = inventory_as_orders(&inventory_service).await;

        let request = create_customer("ada@example.com", "create-ada");
        let ada = customers
            .create_customer(request.clone())
            .await
            .expect("create")
            .into_inner();
        customers.create_customer(request).await.expect("a replay");
        customers
            .update_customer(customers::UpdateCustomerRequest {
                customer: Some(customers::Customer {
                    id: ada.id.clone(),
                    display_name: "Ada Lovelace".into(),
                    ..Default::default()
                }),
                update_mask: None,
            })
            .await
            .expect("update");

        let request = create_product("MUG", 10, "create-mug");
        inventory
            .create_product(request.clone())
            .await
            .expect("create");
        inventory.create_product(request).await.expect("a replay");
        inventory
            .update_product(inventory::UpdateProductRequest {
                product: Some(inventory::Product {
                    sku: "MUG".into(),
                    title: "Mug, large".into(),
                    ..Default::default()
                }),
                update_mask: None,
            })
            .await
            .expect("update");
        inventory
            .adjust_stock(inventory::AdjustStockRequest {
                sku: "MUG".into(),
                delta: -1,
                reason: "chipped".into(),
                request_id: String::new(),
            })
            .await
            .expect("adjust");
        as_orders
            .restock(inventory::RestockRequest {
                sku: "MUG".into(),
                quantity: 2,
                reason: "returned".into(),
                request_id: String::new(),
            })
            .await
            .expect("restock");
        as_orders
            .reserve_stock(reserve("order-1", "MUG", 2))
            .await
            .expect("reserve");
        as_orders
            .reserve_stock(reserve("order-1", "MUG", 2))
            .await
            .expect("a repeat");
        as_orders
            .reserve_stock(reserve("order-2", "MUG", 100))
            .await
            .expect_err("a failed reservation changes nothing");
        as_orders
            .commit_reservation(inventory::CommitReservationRequest {
                reservation_id: "order-1".into(),
            })
            .await
            .expect("commit");
        as_orders
            .reserve_stock(reserve("order-3", "MUG", 1))
            .await
            .expect("reserve");
        as_orders
            .release_reservation(inventory::ReleaseReservationRequest {
                reservation_id: "order-3".into(),
            })
            .await
            .expect("release");
        as_orders
            .release_reservation(inventory::ReleaseReservationRequest {
                reservation_id: "order-3".into(),
            })
            .await
            .expect("a repeat");

        // The relay wakes on commit: a change normally reaches the ledger within a second.
        let mut watch = ledger
            .watch_events(ledger::WatchEventsRequest {
                after_sequence: 0,
                subject: Some("SENTINEL".into()),
            })
            .await
            .expect("watch")
            .into_inner();
        let changed = Instant::now();
        inventory
            .create_product(create_product("SENTINEL", 1, ""))
            .await
            .expect("create");
        let sentinel = tokio::time::timeout(Duration::from_secs(1), watch.message())
            .await
            .expect("delivered within a second")
            .expect("the stream")
            .expect("an event");
        assert_eq!(sentinel.r#type, "ProductCreated");
        report_latency(changed.elapsed());

        let last = customers
            .create_customer(create_customer("last@example.com", ""))
            .await
            .expect("create")
            .into_inner();
        let events = events_through(&mut ledger, &["SENTINEL", &last.id]).await;
        assert_unique_ids(&events, backend.name);
        let (mine, theirs): (Vec<_>, Vec<_>) = events
            .iter()
            .cloned()
            .partition(|event| event.source == "customers");
        assert_eq!(
            facts(&mine),
            [
                fact("customers", "CustomerCreated", &ada.id),
                fact("customers", "CustomerUpdated", &ada.id),
                fact("customers", "CustomerCreated", &last.id),
            ],
            "{}",
            backend.name
        );
        assert_eq!(
            facts(&theirs),
            [
                fact("inventory", "ProductCreated", "MUG"),
                fact("inventory", "ProductUpdated", "MUG"),
                fact("inventory", "StockAdjusted", "MUG"),
                fact("inventory", "StockRestocked", "MUG"),
                fact("inventory", "StockReserved", "order-1"),
                fact("inventory", "ReservationCommitted", "order-1"),
                fact("inventory", "StockReserved", "order-3"),
                fact("inventory", "ReservationReleased", "order-3"),
                fact("inventory", "ProductCreated", "SENTINEL"),
            ],
            "{}",
            backend.name
        );
        assert!(
            mine.iter().all(|event| event.customer_id == event.subject),
            "{}: a customer's events are about that customer: {mine:?}",
            backend.name
        );
        assert!(
            theirs.iter().all(|event| event.customer_id.is_empty()),
            "{}: catalog and stock events are about no customer: {theirs:?}",
            backend.name
        );
        let reserved =
            crowdcrunch_proto::json::json_from_struct(theirs[4].data.as_ref().expect("a payload"));
        assert_eq!(
            reserved["lines"],
            serde_json::json!([{"sku": "MUG", "quantity": 2}])
        );
        let restocked =
            crowdcrunch_proto::json::json_from_struct(theirs[3].data.as_ref().expect("a payload"));
        assert_eq!(restocked["stock"]["on_hand"], 11);
        assert!(
            events
                .iter()
                .all(|event| event.trace_id.len() == 32 && event.time.is_some()),
            "each event carries its request's trace id and time: {events:?}"
        );

        inventory_service.stop().await;
        customers_service.stop().await;
        ledger_server.stop().await.expect("drain");
    }
}

/// Shown with `--nocapture`: how long the sentinel took.
fn report_latency(latency: Duration) {
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "a change reached the ledger in {latency:?}"
    );
}

#[tokio::test]
async fn events_written_while_the_ledger_is_down_arrive_exactly_once() {
    for backend in backends() {
        let ledger_addr = reserved_addr();
        let customers_service = start_customers(&backend.customers, ledger_addr).await;
        let inventory_service = start_inventory(&backend.inventory, ledger_addr).await;
        let mut customers = customers_client(&customers_service).await;
        let mut inventory = inventory_client(&inventory_service).await;
        let mut as_orders = inventory_as_orders(&inventory_service).await;

        for n in 0..5 {
            inventory
                .create_product(create_product(&format!("SKU-{n}"), 5, ""))
                .await
                .expect("create");
            as_orders
                .reserve_stock(reserve(&format!("order-{n}"), &format!("SKU-{n}"), 1))
                .await
                .expect("reserve");
            customers
                .create_customer(create_customer(&format!("user{n}@example.com"), ""))
                .await
                .expect("create");
        }

        // The ledger comes up where the relays have been failing to reach it.
        let (ledger_server, mut ledger) = start_ledger(&backend.ledger, ledger_addr).await;
        inventory
            .create_product(create_product("SENTINEL", 1, ""))
            .await
            .expect("create");
        let last = customers
            .create_customer(create_customer("last@example.com", ""))
            .await
            .expect("create")
            .into_inner();
        let events = events_through(&mut ledger, &["SENTINEL", &last.id]).await;

        assert_unique_ids(&events, backend.name);
        let count = |event_type: &str| {
            events
                .iter()
                .filter(|event| event.r#type == event_type)
                .count()
        };
        assert_eq!(
            (
                count("ProductCreated"),
                count("StockReserved"),
                count("CustomerCreated")
            ),
            (6, 5, 6),
            "{}: every event, once",
            backend.name
        );
        assert_eq!(events.len(), 17);

        inventory_service.stop().await;
        customers_service.stop().await;
        ledger_server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn undelivered_events_survive_a_restart_of_their_service() {
    for backend in backends() {
        let ledger_addr = reserved_addr();
        let inventory_service = start_inventory(&backend.inventory, ledger_addr).await;
        let mut inventory = inventory_client(&inventory_service).await;
        for n in 0..3 {
            inventory
                .create_product(create_product(&format!("SKU-{n}"), 5, ""))
                .await
                .expect("create");
        }
        // Stopped with the ledger still down: the last delivery attempt fails.
        inventory_service.stop().await;

        let (ledger_server, mut ledger) = start_ledger(&backend.ledger, ledger_addr).await;
        let inventory_service = start_inventory(&backend.inventory, ledger_addr).await;
        let mut inventory = inventory_client(&inventory_service).await;
        inventory
            .create_product(create_product("SENTINEL", 1, ""))
            .await
            .expect("create");
        let events = events_through(&mut ledger, &["SENTINEL"]).await;
        assert_unique_ids(&events, backend.name);
        let subjects: Vec<_> = events.iter().map(|event| event.subject.as_str()).collect();
        assert_eq!(
            subjects,
            ["SKU-0", "SKU-1", "SKU-2", "SENTINEL"],
            "{}: in order, none lost",
            backend.name
        );

        inventory_service.stop().await;
        ledger_server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn a_backlog_that_waits_for_a_ledger_that_is_down_shows_in_the_metrics() {
    // A source of its own: the gauges are per source, and other tests' relays run beside it.
    const SOURCE: &str = "customers-backlog";
    let labels = [("source", SOURCE)];
    for backend in backends() {
        let database = backend
            .customers
            .connect(&crowdcrunch_customers::MIGRATOR)
            .await;
        let service = Running::start(
            database,
            SOURCE,
            reserved_addr(),
            crowdcrunch_customers::service,
        )
        .await;
        let mut customers = customers_client(&service).await;
        for n in 0..3 {
            customers
                .create_customer(create_customer(&format!("waiting{n}@example.com"), ""))
                .await
                .expect("create");
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let backlog =
                crowdcrunch_runtime::metrics::sample_sum("outbox_backlog_events", &labels);
            let age = crowdcrunch_runtime::metrics::sample_sum(
                "outbox_oldest_undelivered_age_seconds",
                &labels,
            );
            if backlog >= 3.0 && age > 0.0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: backlog {backlog}, oldest age {age}",
                backend.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        service.stop().await;
    }
}
