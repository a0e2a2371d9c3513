//! `OrderService` over real gRPC against a real server, with the real services it calls
//! (customers, inventory, payments, fulfillment, the ledger), each on a port 0 of its own over a
//! fresh database, every outbox relay delivering to the ledger: on SQLite and (when
//! `CROWDCRUNCH_TEST_DATABASE_URL` is set) on PostgreSQL.

use std::time::Duration;

use crowdcrunch_outbox::Outbox;
use crowdcrunch_proto::MAX_MINOR_UNITS;
use crowdcrunch_proto::customers::v1 as customers;
use crowdcrunch_proto::customers::v1::customer_service_client::CustomerServiceClient;
use crowdcrunch_proto::fulfillment::v1 as fulfillment;
use crowdcrunch_proto::fulfillment::v1::fulfillment_service_client::FulfillmentServiceClient;
use crowdcrunch_proto::inventory::v1 as inventory;
use crowdcrunch_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use crowdcrunch_proto::ledger::v1 as ledger;
use crowdcrunch_proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use crowdcrunch_proto::orders::v1 as pb;
use crowdcrunch_proto::orders::v1::order_service_client::OrderServiceClient;
use crowdcrunch_proto::payments::v1 as payments;
use crowdcrunch_proto::payments::v1::payment_service_client::PaymentServiceClient;
use crowdcrunch_proto::r#type::v1::{Address, Money, PaymentCard};
use crowdcrunch_runtime::auth::Grant;
use crowdcrunch_runtime::client::GrpcChannel;
use crowdcrunch_runtime::metrics::sample_sum;
use crowdcrunch_runtime::server::{GrpcService, ServiceDefinition};
use crowdcrunch_runtime::testing::{
    TestDatabase, TestServer, all_pages, assert_answered_as_missing, assert_invalid_argument,
    databases, failed_precondition,
};
use crowdcrunch_runtime::{Database, Shutdown};
use pb::OrderStatus;
use sqlx::migrate::Migrator;
use tonic::Code;

/// The `ErrorInfo.domain` of orders' errors.
const DOMAIN: &str = "orders.crowdcrunch.dev";
/// A card the simulated network approves.
const APPROVED: &str = "4242424242424242";
/// A card the simulated network declines.
const DECLINED: &str = "4000000000000002";
/// How long a test waits for what the system does in the background (the saga, the relays, the
/// ledger following) before it fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// An orders server and the real services it calls, with a client to each, and the orders
/// database itself.
struct App {
    backend: &'static str,
    orders: OrderServiceClient<GrpcChannel>,
    customers: CustomerServiceClient<GrpcChannel>,
    inventory: InventoryServiceClient<GrpcChannel>,
    payments: PaymentServiceClient<GrpcChannel>,
    fulfillment: FulfillmentServiceClient<GrpcChannel>,
    ledger: LedgerServiceClient<GrpcChannel>,
    database: Database,
    /// The orders server, for channels with other identities.
    orders_server: TestServer,
    /// Kept so that the servers serve as long as the test runs.
    _servers: Vec<TestServer>,
}

/// The fresh database of `service` beside the test's own `database`, migrated.
async fn open(database: &TestDatabase, service: &str, migrator: &Migrator) -> Database {
    let name = format!("{}_{service}", database.name);
    Database::connect(&database.settings, &name, migrator)
        .await
        .unwrap_or_else(|error| panic!("cannot open the {service} test database: {error}"))
}

/// Serves `service` over its database, with its outbox relay delivering to `ledger` as `service`.
async fn serve<S: GrpcService>(
    database: &TestDatabase,
    service: &'static str,
    migrator: &Migrator,
    ledger: &TestServer,
    make: impl FnOnce(Database, Outbox, Shutdown) -> ServiceDefinition<S>,
) -> (TestServer, Database) {
    let opened = open(database, service, migrator).await;
    let outbox = Outbox::open(&opened, service)
        .await
        .expect("open the outbox");
    // The relay runs as long as the test: the ledger must see every event.
    let to_ledger = ledger.channel_as_peer(service).await;
    tokio::spawn(outbox.relay(to_ledger).run(Shutdown::new()));
    let for_service = opened.clone();
    let server = TestServer::start_with(|shutdown| make(for_service, outbox, shutdown)).await;
    (server, opened)
}

async fn spawn_app(database: &TestDatabase) -> App {
    let ledger_database = open(
        database,
        crowdcrunch_ledger::DATABASE_NAME,
        &crowdcrunch_ledger::MIGRATOR,
    )
    .await;
    let ledger =
        TestServer::start_with(|shutdown| crowdcrunch_ledger::service(ledger_database, shutdown))
            .await;
    let (customers, _) = serve(
        database,
        crowdcrunch_customers::DATABASE_NAME,
        &crowdcrunch_customers::MIGRATOR,
        &ledger,
        |db, outbox, _| crowdcrunch_customers::service(db, outbox),
    )
    .await;
    let (inventory, _) = serve(
        database,
        crowdcrunch_inventory::DATABASE_NAME,
        &crowdcrunch_inventory::MIGRATOR,
        &ledger,
        |db, outbox, _| crowdcrunch_inventory::service(db, outbox),
    )
    .await;
    let (payments, _) = serve(
        database,
        crowdcrunch_payments::DATABASE_NAME,
        &crowdcrunch_payments::MIGRATOR,
        &ledger,
        |db, outbox, _| crowdcrunch_payments::service(db, outbox),
    )
    .await;
    let (fulfillment, _) = serve(
        database,
        crowdcrunch_fulfillment::DATABASE_NAME,
        &crowdcrunch_fulfillment::MIGRATOR,
        &ledger,
        |db, outbox, _| crowdcrunch_fulfillment::service(db, outbox),
    )
    .await;
    // Orders calls them all with its own identity.
    let orders_peer = "orders";
    let clients = crowdcrunch_orders::Clients {
        customers: CustomerServiceClient::new(customers.channel_as_peer(orders_peer).await),
        inventory: InventoryServiceClient::new(inventory.channel_as_peer(orders_peer).await),
        payments: PaymentServiceClient::new(payments.channel_as_peer(orders_peer).await),
        fulfillment: FulfillmentServiceClient::new(fulfillment.channel_as_peer(orders_peer).await),
        ledger: LedgerServiceClient::new(ledger.channel_as_peer(orders_peer).await),
    };
    let (orders, orders_database) = serve(
        database,
        crowdcrunch_orders::DATABASE_NAME,
        &crowdcrunch_orders::MIGRATOR,
        &ledger,
        |db, outbox, shutdown| crowdcrunch_orders::service(db, outbox, clients, shutdown),
    )
    .await;
    App {
        backend: database.backend,
        orders: OrderServiceClient::new(orders.channel().await),
        customers: CustomerServiceClient::new(customers.channel().await),
        inventory: InventoryServiceClient::new(inventory.channel().await),
        payments: PaymentServiceClient::new(payments.channel().await),
        fulfillment: FulfillmentServiceClient::new(fulfillment.channel().await),
        ledger: LedgerServiceClient::new(ledger.channel().await),
        database: orders_database,
        orders_server: orders,
        _servers: vec![ledger, customers, inventory, payments, fulfillment],
    }
}

fn usd(minor_units: i64) -> Money {
    Money {
        currency_code: "USD".into(),
        minor_units,
    }
}

fn address() -> Address {
    Address {
        recipient: "Ada Lovelace".into(),
        line1: "12 St James's Square".into(),
        city: "London".into(),
        postal_code: "SW1Y 4JH".into(),
        country_code: "GB".into(),
        ..Default::default()
    }
}

fn card(number: &str) -> PaymentCard {
    PaymentCard {
        number: number.into(),
        exp_month: 12,
        exp_year: 2099,
        cvc: "123".into(),
    }
}

fn place_request(customer_id: &str, lines: &[(&str, i32)], number: &str) -> pb::PlaceOrderRequest {
    pb::PlaceOrderRequest {
        request_id: String::new(),
        customer_id: customer_id.into(),
        lines: lines
            .iter()
            .map(|(sku, quantity)| pb::OrderLine {
                sku: (*sku).into(),
                quantity: *quantity,
                ..Default::default()
            })
            .collect(),
        card: Some(card(number)),
        shipping_address: Some(address()),
    }
}

impl App {
    /// A client of orders calling as the customer `customer_id`.
    async fn orders_as(&self, customer_id: &str) -> OrderServiceClient<GrpcChannel> {
        OrderServiceClient::new(
            self.orders_server
                .channel_as(&Grant::Customer(customer_id.to_owned()))
                .await,
        )
    }

    async fn customer(&self) -> String {
        let request = customers::CreateCustomerRequest {
            customer: Some(customers::Customer {
                email: format!("{}@example.com", uuid::Uuid::now_v7().simple()),
                display_name: "Ada".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        };
        self.customers
            .clone()
            .create_customer(request)
            .await
            .expect("create a customer")
            .into_inner()
            .id
    }

    async fn product(&self, sku: &str, cents: i64, stock: i32) {
        let request = inventory::CreateProductRequest {
            product: Some(inventory::Product {
                sku: sku.into(),
                title: format!("Product {sku}"),
                price: Some(usd(cents)),
                active: true,
                ..Default::default()
            }),
            initial_stock: stock,
            request_id: String::new(),
        };
        self.inventory
            .clone()
            .create_product(request)
            .await
            .expect("create a product");
    }

    /// (on hand, reserved) of `sku`.
    async fn stock(&self, sku: &str) -> (i32, i32) {
        let level = self
            .inventory
            .clone()
            .get_stock(inventory::GetStockRequest { sku: sku.into() })
            .await
            .expect("get stock")
            .into_inner();
        (level.on_hand, level.reserved)
    }

    async fn place(&self, request: pb::PlaceOrderRequest) -> Result<pb::Order, tonic::Status> {
        self.orders
            .clone()
            .place_order(request)
            .await
            .map(tonic::Response::into_inner)
    }

    /// Watches order `id` until it is in `status` (the saga and the shipments move it in the
    /// background).
    async fn order_in(&self, id: &str, status: OrderStatus) -> pb::Order {
        let mut watch = self
            .orders
            .clone()
            .watch_order(pb::WatchOrderRequest { id: id.into() })
            .await
            .expect("watch the order")
            .into_inner();
        loop {
            let order = tokio::time::timeout(PATIENCE, watch.message())
                .await
                .unwrap_or_else(|_| panic!("order {id} never became {status:?}"))
                .expect("the watch works")
                .unwrap_or_else(|| panic!("order {id} ended before it became {status:?}"));
            if order.status() == status {
                return order;
            }
        }
    }

    /// Places an order of `lines` for `customer` with `number` and waits until it is in `status`.
    async fn order(
        &self,
        customer: &str,
        lines: &[(&str, i32)],
        number: &str,
        status: OrderStatus,
    ) -> pb::Order {
        let placed = self
            .place(place_request(customer, lines, number))
            .await
            .expect("place an order");
        self.order_in(&placed.id, status).await
    }

    async fn get(&self, id: &str) -> Result<pb::Order, tonic::Status> {
        self.orders
            .clone()
            .get_order(pb::GetOrderRequest { id: id.into() })
            .await
            .map(tonic::Response::into_inner)
    }

    async fn cancel(&self, id: &str, request_id: &str) -> Result<pb::Order, tonic::Status> {
        self.orders
            .clone()
            .cancel_order(pb::CancelOrderRequest {
                id: id.into(),
                reason: "changed my mind".into(),
                request_id: request_id.into(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    async fn payments_of(&self, order_id: &str) -> Vec<payments::Payment> {
        self.payments
            .clone()
            .list_payments(payments::ListPaymentsRequest {
                order_ids: vec![order_id.into()],
                ..Default::default()
            })
            .await
            .expect("list payments")
            .into_inner()
            .payments
    }

    async fn shipments_of(&self, order_id: &str) -> Vec<fulfillment::Shipment> {
        self.fulfillment
            .clone()
            .list_shipments(fulfillment::ListShipmentsRequest {
                order_ids: vec![order_id.into()],
                ..Default::default()
            })
            .await
            .expect("list shipments")
            .into_inner()
            .shipments
    }

    /// The first `count` events the ledger holds about `subject`, waiting for the relays.
    async fn events_of(&self, subject: &str, count: usize) -> Vec<ledger::Event> {
        let mut stream = self
            .ledger
            .clone()
            .watch_events(ledger::WatchEventsRequest {
                after_sequence: 0,
                subject: Some(subject.into()),
            })
            .await
            .expect("watch the ledger")
            .into_inner();
        let mut events = Vec::new();
        while events.len() < count {
            let event = tokio::time::timeout(PATIENCE, stream.message())
                .await
                .unwrap_or_else(|_| panic!("only {events:?} reached the ledger"))
                .expect("the ledger streams")
                .expect("the stream goes on");
            events.push(event);
        }
        events
    }

    /// Every page of the orders of `customer_id`, `page_size` at a time.
    async fn list_all(&self, customer_id: &str, page_size: i32) -> Vec<Vec<pb::Order>> {
        all_pages(|page_token| {
            let mut orders = self.orders.clone();
            let request = pb::ListOrdersRequest {
                page_size,
                page_token,
                customer_id: Some(customer_id.into()),
                status: None,
            };
            async move {
                let page = orders
                    .list_orders(request)
                    .await
                    .expect("list orders")
                    .into_inner();
                (page.orders, page.next_page_token)
            }
        })
        .await
    }
}

/// A customer places, reads, lists, watches and cancels only their own orders: another customer's
/// order, or an order for another customer, is answered exactly as an unknown one, and nothing
/// of it changes; staff place orders for anyone (a phone order) and read everyone's.
#[tokio::test]
async fn a_customer_sees_and_acts_on_only_their_own_orders() {
    for database in databases("orders") {
        let app = spawn_app(&database).await;
        app.product("OWN-PEN", 150, 10).await;
        let alice = app.customer().await;
        let bob = app.customer().await;
        let unknown = uuid::Uuid::now_v7().to_string();
        let mut as_alice = app.orders_as(&alice).await;

        let placed = as_alice
            .place_order(place_request(&alice, &[("OWN-PEN", 1)], APPROVED))
            .await
            .expect("alice orders for herself")
            .into_inner();
        let mine = app.order_in(&placed.id, OrderStatus::Confirmed).await;
        let phone_order = pb::PlaceOrderRequest {
            request_id: "phone-order-1".into(),
            ..place_request(&bob, &[("OWN-PEN", 1)], APPROVED)
        };
        let placed = app
            .place(phone_order.clone())
            .await
            .expect("staff order for bob");
        let theirs = app.order_in(&placed.id, OrderStatus::Confirmed).await;

        let for_bob = as_alice
            .place_order(place_request(&bob, &[("OWN-PEN", 1)], APPROVED))
            .await
            .expect_err("alice orders for bob");
        let for_nobody = as_alice
            .place_order(place_request(&unknown, &[("OWN-PEN", 1)], APPROVED))
            .await
            .expect_err("an order for an unknown customer");
        assert_invalid_argument(&for_nobody, DOMAIN, &["customer_id"]);
        assert_answered_as_missing(&for_bob, &bob, &for_nobody, &unknown);
        let replayed = as_alice
            .place_order(pb::PlaceOrderRequest {
                customer_id: alice.clone(),
                ..phone_order
            })
            .await
            .expect_err("bob's request id replayed by alice");
        assert_invalid_argument(&replayed, DOMAIN, &["request_id"]);
        assert!(
            !replayed.message().contains(&theirs.id),
            "{}",
            replayed.message()
        );

        let get = |id: &str| pb::GetOrderRequest { id: id.to_owned() };
        assert_eq!(
            as_alice
                .get_order(get(&mine.id))
                .await
                .expect("alice reads her order")
                .into_inner(),
            mine,
            "{}",
            app.backend
        );
        let hidden = as_alice
            .get_order(get(&theirs.id))
            .await
            .expect_err("bob's order");
        let missing = as_alice
            .get_order(get(&unknown))
            .await
            .expect_err("an unknown order");
        assert_eq!(missing.code(), Code::NotFound);
        assert_answered_as_missing(&hidden, &theirs.id, &missing, &unknown);

        let batch = |ids: &[&str]| pb::BatchGetOrdersRequest {
            ids: ids.iter().map(|id| (*id).to_owned()).collect(),
        };
        let hidden = as_alice
            .batch_get_orders(batch(&[&mine.id, &theirs.id]))
            .await
            .expect_err("bob's order in a batch");
        let missing = as_alice
            .batch_get_orders(batch(&[&mine.id, &unknown]))
            .await
            .expect_err("an unknown order in a batch");
        assert_answered_as_missing(&hidden, &theirs.id, &missing, &unknown);

        let list = |customer_id: Option<&str>| pb::ListOrdersRequest {
            customer_id: customer_id.map(str::to_owned),
            ..Default::default()
        };
        let ids = |orders: &[pb::Order]| -> Vec<String> {
            orders.iter().map(|order| order.id.clone()).collect()
        };
        for (filter, expected) in [
            (None, vec![mine.id.clone()]),
            (Some(alice.as_str()), vec![mine.id.clone()]),
            (Some(bob.as_str()), vec![]),
            (Some(unknown.as_str()), vec![]),
        ] {
            let page = as_alice
                .list_orders(list(filter))
                .await
                .expect("alice lists orders")
                .into_inner();
            assert_eq!(ids(&page.orders), expected, "filter {filter:?}");
        }
        let pages = as_alice
            .batch_list_orders(pb::BatchListOrdersRequest {
                requests: vec![list(Some(&bob)), list(Some(&alice)), list(None)],
            })
            .await
            .expect("alice batch-lists orders")
            .into_inner()
            .responses;
        let listed: Vec<Vec<String>> = pages.iter().map(|page| ids(&page.orders)).collect();
        assert_eq!(
            listed,
            [vec![], vec![mine.id.clone()], vec![mine.id.clone()]]
        );

        let watch = |id: &str| pb::WatchOrderRequest { id: id.to_owned() };
        let hidden = as_alice
            .watch_order(watch(&theirs.id))
            .await
            .expect_err("bob's order is not watched");
        let missing = as_alice
            .watch_order(watch(&unknown))
            .await
            .expect_err("an unknown order is not watched");
        assert_answered_as_missing(&hidden, &theirs.id, &missing, &unknown);

        let cancel = |id: &str| pb::CancelOrderRequest {
            id: id.to_owned(),
            reason: "not mine".into(),
            request_id: String::new(),
        };
        let hidden = as_alice
            .cancel_order(cancel(&theirs.id))
            .await
            .expect_err("bob's order is not cancelled");
        let missing = as_alice
            .cancel_order(cancel(&unknown))
            .await
            .expect_err("an unknown order is not cancelled");
        assert_answered_as_missing(&hidden, &theirs.id, &missing, &unknown);
        assert_eq!(
            app.get(&theirs.id).await.expect("staff read bob's order"),
            theirs,
            "bob's order is unchanged"
        );

        let everyone = app
            .orders
            .clone()
            .list_orders(list(None))
            .await
            .expect("staff list every order")
            .into_inner();
        assert_eq!(ids(&everyone.orders), [mine.id, theirs.id]);
    }
}

#[tokio::test]
async fn bad_requests_name_every_bad_field_and_create_nothing() {
    for database in databases("orders") {
        let app = spawn_app(&database).await;
        let customer = app.customer().await;
        app.product("BAD-PEN", 150, 5).await;
        // Priced at the bound: one unit is the most an order may cost.
        app.product("GOLD", MAX_MINOR_UNITS, 5).await;
        // Priced so that three units wrap an i64 past zero (issue 14) were it not under the bound.
        app.product("THIRD", MAX_MINOR_UNITS / 3 + 1, 5).await;
        let good = || place_request(&customer, &[("BAD-PEN", 1)], APPROVED);
        let with_lines = |lines: &[(&str, i32)]| place_request(&customer, lines, APPROVED);
        let place_cases: Vec<(pb::PlaceOrderRequest, &[&str])> = vec![
            (
                pb::PlaceOrderRequest::default(),
                &["customer_id", "lines", "shipping_address", "card"],
            ),
            (
                pb::PlaceOrderRequest {
                    request_id: "not one".into(),
                    ..good()
                },
                &["request_id"],
            ),
            (
                pb::PlaceOrderRequest {
                    customer_id: "c".repeat(65),
                    ..good()
                },
                &["customer_id"],
            ),
            (with_lines(&[("", 1)]), &["lines[0].sku"]),
            (with_lines(&[("BAD PEN", 1)]), &["lines[0].sku"]),
            (
                with_lines(&[("BAD-PEN", 1), ("BAD-PEN", 2)]),
                &["lines[1].sku"],
            ),
            (
                with_lines(&[("BAD-PEN", 0), ("OTHER", 1001)]),
                &["lines[0].quantity", "lines[1].quantity"],
            ),
            (
                pb::PlaceOrderRequest {
                    shipping_address: Some(Address {
                        city: String::new(),
                        country_code: "gb".into(),
                        ..address()
                    }),
                    ..good()
                },
                &["shipping_address.city", "shipping_address.country_code"],
            ),
            (
                pb::PlaceOrderRequest {
                    shipping_address: None,
                    card: None,
                    ..good()
                },
                &["shipping_address", "card"],
            ),
            // What only the other services know: the customer, the SKU, the card.
            (
                pb::PlaceOrderRequest {
                    customer_id: "no-such-customer".into(),
                    ..good()
                },
                &["customer_id"],
            ),
            (with_lines(&[("NO-SUCH-SKU", 1)]), &["lines[0].sku"]),
            (
                pb::PlaceOrderRequest {
                    card: Some(card("4242424242424241")),
                    ..good()
                },
                &["card.number"],
            ),
            (
                pb::PlaceOrderRequest {
                    card: Some(card("0000000000000000")),
                    ..good()
                },
                &["card.number"],
            ),
            // Money never wraps: a line or a total over the bound is refused.
            (with_lines(&[("GOLD", 2)]), &["lines[0].quantity"]),
            (with_lines(&[("THIRD", 3)]), &["lines[0].quantity"]),
            (with_lines(&[("BAD-PEN", 1), ("GOLD", 1)]), &["lines"]),
            (
                with_lines(&[("THIRD", 2), ("GOLD", 1000)]),
                &["lines[1].quantity"],
            ),
        ];
        for (request, fields) in place_cases {
            let status = app
                .place(request.clone())
                .await
                .expect_err("a bad PlaceOrder");
            assert_invalid_argument(&status, DOMAIN, fields);
        }
        assert_eq!(
            app.list_all(&customer, 0).await,
            [Vec::<pb::Order>::new()],
            "{}: no order was created",
            app.backend
        );
        assert_eq!(app.stock("BAD-PEN").await, (5, 0), "nothing was reserved");

        let mut orders = app.orders.clone();
        for id in ["", "not an id", &"o".repeat(65)] {
            let status = app.get(id).await.expect_err("a bad GetOrder");
            assert_invalid_argument(&status, DOMAIN, &["id"]);
            let status = app.cancel(id, "").await.expect_err("a bad CancelOrder");
            assert_invalid_argument(&status, DOMAIN, &["id"]);
            let status = orders
                .watch_order(pb::WatchOrderRequest { id: id.into() })
                .await
                .expect_err("a bad WatchOrder");
            assert_invalid_argument(&status, DOMAIN, &["id"]);
        }
        let status = app
            .cancel("some-order", "not one")
            .await
            .expect_err("a bad request id");
        assert_invalid_argument(&status, DOMAIN, &["request_id"]);
        let status = orders
            .batch_get_orders(pb::BatchGetOrdersRequest {
                ids: vec!["some-order".into(), String::new(), "a b".into()],
            })
            .await
            .expect_err("a bad BatchGetOrders");
        assert_invalid_argument(&status, DOMAIN, &["ids[1]", "ids[2]"]);
        let list_cases: [(pb::ListOrdersRequest, &[&str]); 4] = [
            (
                pb::ListOrdersRequest {
                    status: Some(99),
                    ..Default::default()
                },
                &["status"],
            ),
            (
                pb::ListOrdersRequest {
                    status: Some(OrderStatus::Unspecified.into()),
                    ..Default::default()
                },
                &["status"],
            ),
            (
                pb::ListOrdersRequest {
                    customer_id: Some("not an id".into()),
                    status: Some(99),
                    ..Default::default()
                },
                &["customer_id", "status"],
            ),
            (
                pb::ListOrdersRequest {
                    page_size: -1,
                    ..Default::default()
                },
                &["page_size"],
            ),
        ];
        for (request, fields) in list_cases {
            let status = orders
                .list_orders(request)
                .await
                .expect_err("a bad ListOrders");
            assert_invalid_argument(&status, DOMAIN, fields);
        }
    }
}

#[tokio::test]
async fn orders_are_read_one_by_one_in_batches_and_in_pages() {
    for database in databases("orders") {
        let app = spawn_app(&database).await;
        let busy = app.customer().await;
        let once = app.customer().await;
        app.product("READ-MUG", 700, 50).await;
        let mut placed = Vec::new();
        for customer in [&busy, &busy, &busy, &once] {
            let order = app
                .order(
                    customer,
                    &[("READ-MUG", 2)],
                    APPROVED,
                    OrderStatus::Confirmed,
                )
                .await;
            placed.push(order);
        }
        let first = &placed[0];
        assert_eq!(first.customer_id, busy);
        assert_eq!(first.total, Some(usd(1400)));
        assert_eq!(first.lines[0].unit_price, Some(usd(700)));
        assert_eq!(first.lines[0].line_total, Some(usd(1400)));
        assert_eq!(first.card_last4, "4242");
        assert_eq!(
            app.get(&first.id).await.expect("get the order"),
            *first,
            "{}: GetOrder answers the order as it is",
            app.backend
        );

        let mut orders = app.orders.clone();
        let ids = vec![
            placed[2].id.clone(),
            placed[0].id.clone(),
            placed[2].id.clone(),
        ];
        let batch = orders
            .batch_get_orders(pb::BatchGetOrdersRequest { ids: ids.clone() })
            .await
            .expect("batch get")
            .into_inner();
        let answered: Vec<_> = batch.orders.iter().map(|order| order.id.clone()).collect();
        assert_eq!(
            answered, ids,
            "in the order asked, repeats answered in place"
        );

        let unknown = "0190b6e2-7c1a-7d4e-9f00-1a2b3c4d5e6f";
        let status = app.get(unknown).await.expect_err("an unknown order");
        assert_eq!(status.code(), Code::NotFound, "{}", status.message());
        let status = orders
            .batch_get_orders(pb::BatchGetOrdersRequest {
                ids: vec![placed[1].id.clone(), unknown.into()],
            })
            .await
            .expect_err("a batch with an unknown order");
        assert_eq!(status.code(), Code::NotFound, "{}", status.message());
        assert!(status.message().contains(unknown), "{}", status.message());

        let pages = app.list_all(&busy, 2).await;
        let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 1], "{}", app.backend);
        let listed: Vec<&str> = pages
            .iter()
            .flatten()
            .map(|order| order.id.as_str())
            .collect();
        let busy_orders: Vec<&str> = placed[..3].iter().map(|order| order.id.as_str()).collect();
        assert_eq!(listed, busy_orders, "in creation order");

        let confirmed = orders
            .list_orders(pb::ListOrdersRequest {
                status: Some(OrderStatus::Confirmed.into()),
                ..Default::default()
            })
            .await
            .expect("list by status")
            .into_inner();
        assert_eq!(confirmed.orders.len(), 4);
        let cancelled = orders
            .list_orders(pb::ListOrdersRequest {
                status: Some(OrderStatus::Cancelled.into()),
                ..Default::default()
            })
            .await
            .expect("list by status")
            .into_inner();
        assert!(cancelled.orders.is_empty());

        let list = |customer: &str| pb::ListOrdersRequest {
            customer_id: Some(customer.to_owned()),
            page_size: 2,
            ..Default::default()
        };
        let batch = orders
            .batch_list_orders(pb::BatchListOrdersRequest {
                requests: vec![list(&busy), list(&once)],
            })
            .await
            .expect("batch list")
            .into_inner();
        let sizes: Vec<usize> = batch
            .responses
            .iter()
            .map(|page| page.orders.len())
            .collect();
        assert_eq!(sizes, [2, 1]);
        assert_eq!(batch.responses[1].orders[0].id, placed[3].id);
    }
}

#[tokio::test]
async fn a_placed_order_is_reserved_paid_committed_and_shipped_into_confirmed() {
    for database in databases("orders") {
        let app = spawn_app(&database).await;
        let customer = app.customer().await;
        app.product("GOOD-LAMP", 4000, 5).await;
        let order = app
            .order(
                &customer,
                &[("GOOD-LAMP", 2)],
                APPROVED,
                OrderStatus::Confirmed,
            )
            .await;
        assert!(order.failure_reason.is_empty(), "{}", order.failure_reason);
        let payments = app.payments_of(&order.id).await;
        assert_eq!(payments.len(), 1, "{}", app.backend);
        assert_eq!(order.payment_id, payments[0].id);
        assert_eq!(payments[0].captured, Some(usd(8000)));
        assert_eq!(app.stock("GOOD-LAMP").await, (3, 0), "the stock was sold");
        let shipments = app.shipments_of(&order.id).await;
        assert_eq!(shipments.len(), 1);
        assert_eq!(shipments[0].status(), fulfillment::ShipmentStatus::Pending);

        let story = app.events_of(&order.id, 7).await;
        let mut types: Vec<&str> = story.iter().map(|event| event.r#type.as_str()).collect();
        let ours: Vec<&str> = story
            .iter()
            .filter(|event| event.source == crowdcrunch_orders::DATABASE_NAME)
            .map(|event| event.r#type.as_str())
            .collect();
        assert_eq!(ours, ["OrderPlaced", "OrderConfirmed"], "{}", app.backend);
        types.sort_unstable();
        assert_eq!(
            types,
            [
                "OrderConfirmed",
                "OrderPlaced",
                "PaymentAuthorized",
                "PaymentCaptured",
                "ReservationCommitted",
                "ShipmentCreated",
                "StockReserved",
            ]
        );
    }
}

#[tokio::test]
async fn a_declined_card_ends_in_payment_declined_with_the_stock_released() {
    for database in databases("orders") {
        let app = spawn_app(&database).await;
        let customer = app.customer().await;
        app.product("DECLINED-LAMP", 4000, 5).await;
        let declined = [("outcome", "declined")];
        let card_declined = [("result", "declined"), ("reason", "card_declined")];
        let released = [("step", "release")];
        let before = (
            sample_sum("orders_total", &declined),
            sample_sum("payments_authorizations_total", &card_declined),
            sample_sum("saga_compensations_total", &released),
        );
        let order = app
            .order(
                &customer,
                &[("DECLINED-LAMP", 2)],
                DECLINED,
                OrderStatus::PaymentDeclined,
            )
            .await;
        assert!(
            order.failure_reason.contains("card_declined"),
            "{}: {}",
            app.backend,
            order.failure_reason
        );
        assert!(
            order.payment_id.is_empty(),
            "a declined payment is not the order's"
        );
        let payments = app.payments_of(&order.id).await;
        assert_eq!(payments.len(), 1);
        assert_eq!(payments[0].status(), payments::PaymentStatus::Declined);
        assert_eq!(payments[0].captured, Some(usd(0)), "nothing charged");
        assert_eq!(
            app.stock("DECLINED-LAMP").await,
            (5, 0),
            "the reservation was released"
        );
        assert!(app.shipments_of(&order.id).await.is_empty());
        // The operator sees the decline, its reason and the stock given back.
        metric_grows("orders_total", &declined, before.0).await;
        metric_grows("payments_authorizations_total", &card_declined, before.1).await;
        metric_grows("saga_compensations_total", &released, before.2).await;
    }
}

#[tokio::test]
async fn too_little_stock_rejects_the_order_and_charges_nothing() {
    for database in databases("orders") {
        let app = spawn_app(&database).await;
        let customer = app.customer().await;
        app.product("SCARCE-LAMP", 4000, 1).await;
        app.product("PLENTY-LAMP", 4000, 10).await;
        let rejected = [("outcome", "rejected")];
        let before = sample_sum("orders_total", &rejected);
        let order = app
            .order(
                &customer,
                &[("PLENTY-LAMP", 1), ("SCARCE-LAMP", 2)],
                APPROVED,
                OrderStatus::Rejected,
            )
            .await;
        assert!(
            order.failure_reason.contains("SCARCE-LAMP"),
            "{}: names the short SKU: {}",
            app.backend,
            order.failure_reason
        );
        assert_eq!(order.total, Some(usd(12_000)));
        assert!(
            app.payments_of(&order.id).await.is_empty(),
            "nothing charged"
        );
        assert_eq!(app.stock("SCARCE-LAMP").await, (1, 0));
        assert_eq!(app.stock("PLENTY-LAMP").await, (10, 0));
        let status = app.cancel(&order.id, "").await.expect_err("a failed order");
        let (reason, violations) = failed_precondition(&status);
        assert_eq!(reason, "ORDER_NOT_CANCELLABLE");
        assert_eq!(violations, [("ORDER_STATUS".to_owned(), order.id.clone())]);
        metric_grows("orders_total", &rejected, before).await;
    }
}

/// Waits (at most [`PATIENCE`]) until the metric `name` with `labels` is above `before`: the
/// saga counts an outcome just after it commits it, so a client may see the status first.
async fn metric_grows(name: &str, labels: &[(&str, &str)], before: f64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let now = sample_sum(name, labels);
        if now > before {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}{labels:?} stayed at {now}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_cancelled_order_shows_the_reason_it_was_given_within_bounds() {
    for database in databases("orders") {
        let app = spawn_app(&database).await;
        let customer = app.customer().await;
        app.product("REASON-VASE", 700, 5).await;
        let order = app
            .order(
                &customer,
                &[("REASON-VASE", 1)],
                APPROVED,
                OrderStatus::Confirmed,
            )
            .await;
        assert_eq!(order.cancellation_reason, "", "none asked for");
        let cancel = |reason: String| pb::CancelOrderRequest {
            id: order.id.clone(),
            reason,
            request_id: String::new(),
        };
        for bad in [
            "x".repeat(501),
            "found\u{7}it".to_owned(),
            "a\nb".to_owned(),
        ] {
            let refused = app
                .orders
                .clone()
                .cancel_order(cancel(bad.clone()))
                .await
                .expect_err("a bad reason");
            assert_invalid_argument(&refused, DOMAIN, &["reason"]);
            assert_eq!(
                app.get(&order.id).await.expect("get").status(),
                OrderStatus::Confirmed,
                "{bad:?}: not cancelled"
            );
        }
        let reason = format!("found it cheaper elsewhere {}", "é".repeat(473));
        let cancelled = app
            .orders
            .clone()
            .cancel_order(cancel(reason.clone()))
            .await
            .expect("cancel with 500 characters of reason")
            .into_inner();
        assert_eq!(
            cancelled.status(),
            OrderStatus::Cancelled,
            "{}",
            app.backend
        );
        assert_eq!(cancelled.cancellation_reason, reason);
        assert_eq!(
            app.get(&order.id).await.expect("get").cancellation_reason,
            reason,
            "{}: stored",
            app.backend
        );
    }
}

#[tokio::test]
async fn a_cancelled_order_gives_back_money_stock_and_shipment_until_it_ships() {
    for database in databases("orders") {
        let app = spawn_app(&database).await;
        let customer = app.customer().await;
        app.product("CANCEL-LAMP", 4000, 5).await;
        let order = app
            .order(
                &customer,
                &[("CANCEL-LAMP", 3)],
                APPROVED,
                OrderStatus::Confirmed,
            )
            .await;
        let cancelled = app
            .cancel(&order.id, "cancel-1")
            .await
            .expect("cancel a confirmed order");
        assert_eq!(
            cancelled.status(),
            OrderStatus::Cancelled,
            "{}",
            app.backend
        );
        let payment = app.payments_of(&order.id).await.remove(0);
        assert_eq!(
            (payment.captured, payment.refunded),
            (Some(usd(12_000)), Some(usd(12_000))),
            "refunded in full"
        );
        assert_eq!(app.stock("CANCEL-LAMP").await, (5, 0), "restocked");
        assert_eq!(
            app.shipments_of(&order.id).await[0].status(),
            fulfillment::ShipmentStatus::Cancelled
        );
        let again = app
            .cancel(&order.id, "cancel-2")
            .await
            .expect("cancelling again");
        assert_eq!(again, cancelled, "a cancelled order is answered as it is");

        // Once its shipment has left, an order follows it and can no longer be cancelled.
        let order = app
            .order(
                &customer,
                &[("CANCEL-LAMP", 1)],
                APPROVED,
                OrderStatus::Confirmed,
            )
            .await;
        let shipment = app.shipments_of(&order.id).await.remove(0);
        for status in [
            fulfillment::ShipmentStatus::Packed,
            fulfillment::ShipmentStatus::Shipped,
        ] {
            app.fulfillment
                .clone()
                .update_shipment_status(fulfillment::UpdateShipmentStatusRequest {
                    id: shipment.id.clone(),
                    status: status.into(),
                    tracking_number: "1Z999AA10123456784".into(),
                    request_id: String::new(),
                })
                .await
                .expect("move the shipment");
        }
        app.order_in(&order.id, OrderStatus::Shipped).await;
        let status = app
            .cancel(&order.id, "")
            .await
            .expect_err("a shipped order");
        let (reason, violations) = failed_precondition(&status);
        assert_eq!(reason, "ORDER_NOT_CANCELLABLE", "{}", status.message());
        assert_eq!(violations, [("ORDER_STATUS".to_owned(), order.id.clone())]);
        assert_eq!(
            app.payments_of(&order.id).await[0].refunded,
            Some(usd(0)),
            "nothing given back"
        );
    }
}

#[tokio::test]
async fn placing_again_with_the_same_request_id_answers_the_first_order() {
    for database in databases("orders") {
        let app = spawn_app(&database).await;
        let customer = app.customer().await;
        app.product("ONCE-MUG", 900, 10).await;
        let request = pb::PlaceOrderRequest {
            request_id: "place-once".into(),
            ..place_request(&customer, &[("ONCE-MUG", 2)], APPROVED)
        };
        let first = app.place(request.clone()).await.expect("place");
        let first = app.order_in(&first.id, OrderStatus::Confirmed).await;
        let replayed = app.place(request).await.expect("replay");
        assert_eq!(
            replayed, first,
            "{}: the first order, as it is",
            app.backend
        );
        assert_eq!(app.list_all(&customer, 0).await[0].len(), 1);
        assert_eq!(app.payments_of(&first.id).await.len(), 1, "paid once");
        assert_eq!(app.stock("ONCE-MUG").await, (8, 0), "sold once");
    }
}

#[tokio::test]
async fn a_placing_request_id_is_bound_to_its_request_and_its_caller() {
    for database in databases("orders") {
        let app = spawn_app(&database).await;
        let customer = app.customer().await;
        let other = app.customer().await;
        app.product("BOUND-CUP", 400, 10).await;
        let request = pb::PlaceOrderRequest {
            request_id: "place-bound".into(),
            ..place_request(&customer, &[("BOUND-CUP", 1)], APPROVED)
        };
        let first = app.place(request.clone()).await.expect("place");
        let first = app.order_in(&first.id, OrderStatus::Confirmed).await;

        let more = place_request(&customer, &[("BOUND-CUP", 3)], APPROVED);
        let other_customer = place_request(&other, &[("BOUND-CUP", 1)], APPROVED);
        for (what, changed) in [
            ("another quantity", more),
            ("another customer", other_customer),
        ] {
            let refused = app
                .place(pb::PlaceOrderRequest {
                    request_id: request.request_id.clone(),
                    ..changed
                })
                .await
                .expect_err(what);
            assert_invalid_argument(&refused, DOMAIN, &["request_id"]);
            assert!(
                !refused.message().contains(&first.id),
                "{}",
                refused.message()
            );
        }
        let by_the_customer = app
            .orders_as(&customer)
            .await
            .place_order(request.clone())
            .await
            .expect_err("the same request by another caller");
        assert_invalid_argument(&by_the_customer, DOMAIN, &["request_id"]);

        let replayed = app
            .place(request)
            .await
            .expect("the same request by staff again");
        assert_eq!(
            replayed, first,
            "{}: the first order, as it is",
            app.backend
        );
        assert_eq!(app.list_all(&customer, 0).await[0].len(), 1);
        assert!(
            app.list_all(&other, 0).await.concat().is_empty(),
            "nothing for the other customer"
        );
        assert_eq!(app.stock("BOUND-CUP").await, (9, 0), "sold once");
    }
}

#[tokio::test]
async fn a_corrupt_stored_order_is_an_internal_error_never_a_default() {
    for database in databases("orders") {
        let app = spawn_app(&database).await;
        let customer = app.customer().await;
        app.product("CORRUPT-MUG", 900, 10).await;
        let order = app
            .order(
                &customer,
                &[("CORRUPT-MUG", 1)],
                APPROVED,
                OrderStatus::Confirmed,
            )
            .await;
        let corruptions = [
            "UPDATE orders SET status = 42 WHERE id = $1",
            "UPDATE orders SET status = 4, captured = 2 WHERE id = $1",
            "UPDATE orders SET captured = 1, payment_id = '' WHERE id = $1",
            "UPDATE orders SET payment_id = 'p', compensate_to = 4 WHERE id = $1",
        ];
        for corruption in corruptions {
            sqlx::query(corruption)
                .bind(&order.id)
                .execute(&mut *app.database.acquire().await.expect("connection"))
                .await
                .expect("corrupt the row");
            let status = app.get(&order.id).await.expect_err("a corrupt order");
            assert_eq!(
                status.code(),
                Code::Internal,
                "{} after {corruption:?}: {}",
                app.backend,
                status.message()
            );
            let status = app
                .orders
                .clone()
                .list_orders(pb::ListOrdersRequest {
                    customer_id: Some(customer.clone()),
                    ..Default::default()
                })
                .await
                .expect_err("a page with a corrupt order");
            assert_eq!(status.code(), Code::Internal, "{}", status.message());
        }
    }
}
