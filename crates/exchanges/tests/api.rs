//! `ExchangeService` over real gRPC against a real server, with the real services it calls
//! (orders, inventory, payments, fulfillment) and those they need (customers, the ledger), each on
//! a port 0 of its own over a fresh database, the outbox relays delivering to the ledger: on SQLite
//! and (when `CROWDCRUNCH_TEST_DATABASE_URL` is set) on PostgreSQL.

use std::time::Duration;

use crowdcrunch_outbox::Outbox;
use crowdcrunch_proto::customers::v1 as customers;
use crowdcrunch_proto::customers::v1::customer_service_client::CustomerServiceClient;
use crowdcrunch_proto::exchanges::v1 as pb;
use crowdcrunch_proto::exchanges::v1::exchange_service_client::ExchangeServiceClient;
use crowdcrunch_proto::fulfillment::v1 as fulfillment;
use crowdcrunch_proto::fulfillment::v1::fulfillment_service_client::FulfillmentServiceClient;
use crowdcrunch_proto::inventory::v1 as inventory;
use crowdcrunch_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use crowdcrunch_proto::ledger::v1 as ledger;
use crowdcrunch_proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use crowdcrunch_proto::orders::v1 as orders;
use crowdcrunch_proto::orders::v1::order_service_client::OrderServiceClient;
use crowdcrunch_proto::payments::v1 as payments;
use crowdcrunch_proto::payments::v1::payment_service_client::PaymentServiceClient;
use crowdcrunch_proto::r#type::v1::{Address, Money, PaymentCard};
use crowdcrunch_runtime::auth::Grant;
use crowdcrunch_runtime::client::GrpcChannel;
use crowdcrunch_runtime::server::{GrpcService, ServiceDefinition};
use crowdcrunch_runtime::testing::{
    TestDatabase, TestServer, all_pages, assert_answered_as_missing, assert_invalid_argument,
    databases, failed_precondition,
};
use crowdcrunch_runtime::{Database, Shutdown};
use pb::{ReturnKind, ReturnStatus};
use tokio::task::JoinHandle;
use tonic::Code;

/// The `ErrorInfo.domain` of exchanges' errors.
const DOMAIN: &str = "exchanges.crowdcrunch.dev";
/// A card the simulated network approves.
const APPROVED: &str = "4242424242424242";
/// How long a test waits for something the system does in the background (the saga, the ledger
/// following, the relays) before it fails.
const PATIENCE: Duration = Duration::from_secs(30);
/// The services of one system, in start order: each after those it calls.
const SERVICES: [&str; 7] = [
    crowdcrunch_ledger::DATABASE_NAME,
    crowdcrunch_customers::DATABASE_NAME,
    crowdcrunch_inventory::DATABASE_NAME,
    crowdcrunch_payments::DATABASE_NAME,
    crowdcrunch_fulfillment::DATABASE_NAME,
    crowdcrunch_orders::DATABASE_NAME,
    crowdcrunch_exchanges::DATABASE_NAME,
];

/// Every service exchanges works with, each serving on its own port over its own database, with a
/// client to each.
struct System {
    /// Which backend, for messages.
    backend: &'static str,
    /// The exchanges service's own database, to break what it stores.
    exchanges_database: Database,
    /// The servers, in start order.
    servers: Vec<TestServer>,
    /// Stops the outbox relays.
    relays_stop: Shutdown,
    relays: Vec<JoinHandle<()>>,
    exchanges: ExchangeServiceClient<GrpcChannel>,
    orders: OrderServiceClient<GrpcChannel>,
    customers: CustomerServiceClient<GrpcChannel>,
    inventory: InventoryServiceClient<GrpcChannel>,
    payments: PaymentServiceClient<GrpcChannel>,
    fulfillment: FulfillmentServiceClient<GrpcChannel>,
    ledger: LedgerServiceClient<GrpcChannel>,
}

/// For each backend available here, a fresh database for every service of [`SERVICES`], in
/// that order.
fn backends() -> Vec<Vec<TestDatabase>> {
    let mut per_service: Vec<_> = SERVICES
        .iter()
        .map(|service| databases(service).into_iter())
        .collect();
    let mut backends = Vec::new();
    while let Some(databases) = per_service.iter_mut().map(Iterator::next).collect() {
        backends.push(databases);
    }
    backends
}

impl System {
    /// Runs `sql` (with `$1` = `id`) on the exchanges database, behind the service's back. The
    /// connection goes back before this returns: on SQLite it is the service's only one.
    async fn write_behind_its_back(&self, sql: &str, id: &str) {
        let mut connection = self.exchanges_database.acquire().await.expect("connection");
        sqlx::query(sql)
            .bind(id)
            .execute(&mut *connection)
            .await
            .expect(sql);
    }

    /// Starts every service over `databases` (one per service of [`SERVICES`], in that order).
    async fn start(databases: Vec<TestDatabase>) -> Self {
        let backend = databases[0].backend;
        let [
            ledger_db,
            customers_db,
            inventory_db,
            payments_db,
            fulfillment_db,
            orders_db,
            exchanges_db,
        ] = <[TestDatabase; 7]>::try_from(databases)
            .unwrap_or_else(|_| panic!("one database per service"));
        let ledger_database = ledger_db.connect(&crowdcrunch_ledger::MIGRATOR).await;
        let ledger = TestServer::start_with(|shutdown| {
            crowdcrunch_ledger::service(ledger_database, shutdown)
        })
        .await;
        let mut system = Starting {
            ledger: &ledger,
            relays_stop: Shutdown::new(),
            relays: Vec::new(),
        };
        let (customers, _) = system
            .start(
                crowdcrunch_customers::DATABASE_NAME,
                &customers_db,
                &crowdcrunch_customers::MIGRATOR,
                |db, outbox, _| crowdcrunch_customers::service(db, outbox),
            )
            .await;
        let (inventory, _) = system
            .start(
                crowdcrunch_inventory::DATABASE_NAME,
                &inventory_db,
                &crowdcrunch_inventory::MIGRATOR,
                |db, outbox, _| crowdcrunch_inventory::service(db, outbox),
            )
            .await;
        let (payments, _) = system
            .start(
                crowdcrunch_payments::DATABASE_NAME,
                &payments_db,
                &crowdcrunch_payments::MIGRATOR,
                |db, outbox, _| crowdcrunch_payments::service(db, outbox),
            )
            .await;
        let (fulfillment, _) = system
            .start(
                crowdcrunch_fulfillment::DATABASE_NAME,
                &fulfillment_db,
                &crowdcrunch_fulfillment::MIGRATOR,
                |db, outbox, _| crowdcrunch_fulfillment::service(db, outbox),
            )
            .await;
        // Orders and exchanges call their upstreams with their own identities.
        let as_orders = "orders";
        let order_clients = crowdcrunch_orders::Clients {
            customers: CustomerServiceClient::new(customers.channel_as_peer(as_orders).await),
            inventory: InventoryServiceClient::new(inventory.channel_as_peer(as_orders).await),
            payments: PaymentServiceClient::new(payments.channel_as_peer(as_orders).await),
            fulfillment: FulfillmentServiceClient::new(
                fulfillment.channel_as_peer(as_orders).await,
            ),
            ledger: LedgerServiceClient::new(ledger.channel_as_peer(as_orders).await),
        };
        let (orders, _) = system
            .start(
                crowdcrunch_orders::DATABASE_NAME,
                &orders_db,
                &crowdcrunch_orders::MIGRATOR,
                |db, outbox, shutdown| {
                    crowdcrunch_orders::service(db, outbox, order_clients, shutdown)
                },
            )
            .await;
        let as_exchanges = "exchanges";
        let exchange_clients = crowdcrunch_exchanges::Clients {
            orders: OrderServiceClient::new(orders.channel_as_peer(as_exchanges).await),
            inventory: InventoryServiceClient::new(inventory.channel_as_peer(as_exchanges).await),
            payments: PaymentServiceClient::new(payments.channel_as_peer(as_exchanges).await),
            fulfillment: FulfillmentServiceClient::new(
                fulfillment.channel_as_peer(as_exchanges).await,
            ),
        };
        let (exchanges, exchanges_database) = system
            .start(
                crowdcrunch_exchanges::DATABASE_NAME,
                &exchanges_db,
                &crowdcrunch_exchanges::MIGRATOR,
                |db, outbox, _| crowdcrunch_exchanges::service(db, outbox, exchange_clients),
            )
            .await;
        let Starting {
            relays_stop,
            relays,
            ..
        } = system;
        Self {
            backend,
            exchanges_database,
            exchanges: ExchangeServiceClient::new(exchanges.channel().await),
            orders: OrderServiceClient::new(orders.channel().await),
            customers: CustomerServiceClient::new(customers.channel().await),
            inventory: InventoryServiceClient::new(inventory.channel().await),
            payments: PaymentServiceClient::new(payments.channel().await),
            fulfillment: FulfillmentServiceClient::new(fulfillment.channel().await),
            ledger: LedgerServiceClient::new(ledger.channel().await),
            servers: vec![
                ledger,
                customers,
                inventory,
                payments,
                fulfillment,
                orders,
                exchanges,
            ],
            relays_stop,
            relays,
        }
    }

    /// Drains every server, callers first, then stops the relays.
    async fn stop(mut self) {
        while let Some(server) = self.servers.pop() {
            server.stop().await.expect("the server drains");
        }
        self.relays_stop.trigger();
        for relay in self.relays {
            relay.await.expect("the relay ends");
        }
    }

    /// A client of exchanges calling as the customer `customer_id` (exchanges starts last).
    async fn exchanges_as(&self, customer_id: &str) -> ExchangeServiceClient<GrpcChannel> {
        let exchanges = self.servers.last().expect("exchanges serves");
        ExchangeServiceClient::new(
            exchanges
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

    /// Places an order of `lines` for a new customer and waits until the saga confirms it.
    async fn confirmed_order(&self, lines: &[(&str, i32)]) -> orders::Order {
        let request = orders::PlaceOrderRequest {
            request_id: String::new(),
            customer_id: self.customer().await,
            lines: lines
                .iter()
                .map(|(sku, quantity)| orders::OrderLine {
                    sku: (*sku).into(),
                    quantity: *quantity,
                    ..Default::default()
                })
                .collect(),
            card: Some(PaymentCard {
                number: APPROVED.into(),
                exp_month: 12,
                exp_year: 2099,
                cvc: "123".into(),
            }),
            shipping_address: Some(address()),
        };
        let placed = self
            .orders
            .clone()
            .place_order(request)
            .await
            .expect("place an order")
            .into_inner();
        self.order_in(&placed.id, orders::OrderStatus::Confirmed)
            .await
    }

    /// An order of `lines` that was confirmed, shipped and delivered.
    async fn delivered_order(&self, lines: &[(&str, i32)]) -> orders::Order {
        let order = self.confirmed_order(lines).await;
        let shipment = self.shipments_of(&order.id).await.remove(0);
        for status in [
            fulfillment::ShipmentStatus::Packed,
            fulfillment::ShipmentStatus::Shipped,
            fulfillment::ShipmentStatus::Delivered,
        ] {
            self.fulfillment
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
        self.order_in(&order.id, orders::OrderStatus::Delivered)
            .await
    }

    /// Watches order `id` until it is in `status` (the orders service follows the saga and the
    /// shipments in the background).
    async fn order_in(&self, id: &str, status: orders::OrderStatus) -> orders::Order {
        let mut watch = self
            .orders
            .clone()
            .watch_order(orders::WatchOrderRequest { id: id.into() })
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

    async fn payment_of(&self, order_id: &str) -> payments::Payment {
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
            .remove(0)
    }

    async fn request(
        &self,
        request: pb::RequestReturnRequest,
    ) -> Result<pb::ReturnRequest, tonic::Status> {
        self.exchanges
            .clone()
            .request_return(request)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn approve(&self, id: &str) -> Result<pb::ReturnRequest, tonic::Status> {
        self.exchanges
            .clone()
            .approve_return(pb::ApproveReturnRequest {
                id: id.into(),
                request_id: String::new(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    async fn reject(&self, id: &str, reason: &str) -> Result<pb::ReturnRequest, tonic::Status> {
        self.exchanges
            .clone()
            .reject_return(pb::RejectReturnRequest {
                id: id.into(),
                reason: reason.into(),
                request_id: String::new(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    async fn receive(&self, id: &str) -> Result<pb::ReturnRequest, tonic::Status> {
        self.exchanges
            .clone()
            .receive_return(pb::ReceiveReturnRequest {
                id: id.into(),
                request_id: String::new(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    async fn get(&self, id: &str) -> Result<pb::ReturnRequest, tonic::Status> {
        self.exchanges
            .clone()
            .get_return(pb::GetReturnRequest { id: id.into() })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Every page of ListReturns of `order_ids`, `page_size` at a time.
    async fn list_all(&self, page_size: i32, order_ids: &[&str]) -> Vec<Vec<pb::ReturnRequest>> {
        let order_ids: Vec<String> = order_ids.iter().map(|id| (*id).to_owned()).collect();
        all_pages(|page_token| {
            let mut client = self.exchanges.clone();
            let order_ids = order_ids.clone();
            async move {
                let page = client
                    .list_returns(pb::ListReturnsRequest {
                        page_size,
                        page_token,
                        order_ids,
                    })
                    .await
                    .expect("list returns")
                    .into_inner();
                (page.returns, page.next_page_token)
            }
        })
        .await
    }

    /// The first `count` events exchanges recorded about `order_id`, as the ledger has them (the
    /// relay delivers them in the background).
    async fn exchange_events(&self, order_id: &str, count: usize) -> Vec<ledger::Event> {
        let mut stream = self
            .ledger
            .clone()
            .watch_events(ledger::WatchEventsRequest {
                after_sequence: 0,
                subject: Some(order_id.into()),
            })
            .await
            .expect("watch the ledger")
            .into_inner();
        let mut events = Vec::new();
        while events.len() < count {
            let event = tokio::time::timeout(PATIENCE, stream.message())
                .await
                .unwrap_or_else(|_| panic!("only {} events of exchanges came", events.len()))
                .expect("the stream works")
                .expect("the stream goes on");
            if event.source == crowdcrunch_exchanges::DATABASE_NAME {
                events.push(event);
            }
        }
        events
    }
}

/// A system being started: the ledger's channel, and the relays started so far.
struct Starting<'a> {
    ledger: &'a TestServer,
    relays_stop: Shutdown,
    relays: Vec<JoinHandle<()>>,
}

impl Starting<'_> {
    /// Serves the service `make` builds over `database` and its outbox (events from `name`), whose
    /// relay delivers to the ledger as `name`; the server, and the database it serves.
    async fn start<S: GrpcService>(
        &mut self,
        name: &'static str,
        database: &TestDatabase,
        migrator: &'static sqlx::migrate::Migrator,
        make: impl FnOnce(Database, Outbox, Shutdown) -> ServiceDefinition<S>,
    ) -> (TestServer, Database) {
        let connected = database.connect(migrator).await;
        let outbox = Outbox::open(&connected, name)
            .await
            .expect("open the outbox");
        let relay = outbox
            .relay(self.ledger.channel_as_peer(name).await)
            .run(self.relays_stop.clone());
        self.relays.push(tokio::spawn(relay));
        let database = connected.clone();
        let server = TestServer::start_with(|shutdown| make(connected, outbox, shutdown)).await;
        (server, database)
    }
}

fn usd(cents: i64) -> Money {
    Money {
        currency_code: "USD".into(),
        minor_units: cents,
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

fn line(sku: &str, quantity: i32) -> pb::ReturnLine {
    pb::ReturnLine {
        sku: sku.into(),
        quantity,
    }
}

/// A RequestReturn of `kind` for `lines` of `order_id`.
fn return_of(order_id: &str, kind: ReturnKind, lines: &[(&str, i32)]) -> pb::RequestReturnRequest {
    pb::RequestReturnRequest {
        request_id: String::new(),
        order_id: order_id.into(),
        kind: kind.into(),
        lines: lines
            .iter()
            .map(|(sku, quantity)| line(sku, *quantity))
            .collect(),
        reason: "wrong size".into(),
    }
}

/// Asserts FAILED_PRECONDITION with reason `reason` about `subject`.
#[track_caller]
fn assert_precondition(status: &tonic::Status, reason: &str, subject: &str) {
    let (actual, violations) = failed_precondition(status);
    assert_eq!(actual, reason, "{}", status.message());
    let subjects: Vec<_> = violations.into_iter().map(|(_, subject)| subject).collect();
    assert_eq!(subjects, [subject], "{}", status.message());
}

#[tokio::test]
async fn bad_requests_name_every_bad_field() {
    for databases in backends() {
        let system = System::start(databases).await;
        system.product("MUG", 1250, 10).await;
        let order = system.delivered_order(&[("MUG", 2)]).await;
        let good = return_of(&order.id, ReturnKind::Return, &[("MUG", 1)]);
        let cases: Vec<(pb::RequestReturnRequest, &[&str])> = vec![
            (
                pb::RequestReturnRequest {
                    order_id: String::new(),
                    kind: ReturnKind::Unspecified.into(),
                    lines: Vec::new(),
                    ..good.clone()
                },
                &["order_id", "kind", "lines"],
            ),
            (
                pb::RequestReturnRequest {
                    order_id: "an order".into(),
                    request_id: "x".repeat(200),
                    reason: "x".repeat(1001),
                    ..good.clone()
                },
                &["request_id", "order_id", "reason"],
            ),
            (
                pb::RequestReturnRequest {
                    lines: vec![line("MUG", 1), line("MUG", 0), line("MUG/1", 1)],
                    ..good.clone()
                },
                &["lines[1].sku", "lines[1].quantity", "lines[2].sku"],
            ),
            (
                pb::RequestReturnRequest {
                    order_id: "no-such-order".into(),
                    ..good.clone()
                },
                &["order_id"],
            ),
            (
                return_of(&order.id, ReturnKind::Return, &[("TEE", 1)]),
                &["lines[0].sku"],
            ),
            (
                return_of(&order.id, ReturnKind::Exchange, &[("MUG", 3)]),
                &["lines[0].quantity"],
            ),
        ];
        for (request, fields) in cases {
            let refused = system.request(request).await.expect_err("bad input");
            assert_invalid_argument(&refused, DOMAIN, fields);
        }

        let bad_id = "a return";
        let refused = system.approve(bad_id).await.expect_err("bad id");
        assert_invalid_argument(&refused, DOMAIN, &["id"]);
        let refused = system.reject("", " ").await.expect_err("bad reject");
        assert_invalid_argument(&refused, DOMAIN, &["reason", "id"]);
        let refused = system.receive(bad_id).await.expect_err("bad id");
        assert_invalid_argument(&refused, DOMAIN, &["id"]);
        let refused = system.get(&"r".repeat(65)).await.expect_err("bad id");
        assert_invalid_argument(&refused, DOMAIN, &["id"]);
        let refused = system
            .exchanges
            .clone()
            .batch_get_returns(pb::BatchGetReturnsRequest {
                ids: vec!["fine".into(), String::new()],
            })
            .await
            .expect_err("bad ids");
        assert_invalid_argument(&refused, DOMAIN, &["ids[1]"]);
        let refused = system
            .exchanges
            .clone()
            .list_returns(pb::ListReturnsRequest {
                page_size: -1,
                page_token: String::new(),
                order_ids: vec!["bad id".into()],
            })
            .await
            .expect_err("bad list");
        assert_invalid_argument(&refused, DOMAIN, &["order_ids[0]", "page_size"]);
        assert!(
            system.list_all(0, &[]).await.concat().is_empty(),
            "{}: nothing was created",
            system.backend
        );
        system.stop().await;
    }
}

#[tokio::test]
async fn a_return_is_approved_received_refunded_and_restocked() {
    for databases in backends() {
        let system = System::start(databases).await;
        system.product("MUG", 1250, 10).await;
        system.product("TEE", 1999, 10).await;
        let order = system.delivered_order(&[("MUG", 2), ("TEE", 1)]).await;
        assert_eq!(system.stock("MUG").await, (8, 0), "sold");

        let asked = pb::RequestReturnRequest {
            request_id: "return-1".into(),
            ..return_of(&order.id, ReturnKind::Return, &[("MUG", 2)])
        };
        let requested = system.request(asked.clone()).await.expect("request");
        assert_eq!(requested.status(), ReturnStatus::Requested);
        assert_eq!(requested.order_id, order.id);
        assert_eq!(requested.lines, [line("MUG", 2)]);
        assert_eq!(requested.reason, "wrong size");
        assert_eq!(
            requested.refund_amount,
            Some(usd(2 * 1250)),
            "what the mugs cost"
        );
        assert_eq!(requested.create_time, requested.update_time);
        let replay = system.request(asked).await.expect("replay");
        assert_eq!(
            replay, requested,
            "a replayed request id answers the first return"
        );
        let all = system.list_all(0, &[&order.id]).await.concat();
        assert_eq!(
            all,
            std::slice::from_ref(&requested),
            "{}: created once",
            system.backend
        );
        let claimed = system
            .request(return_of(&order.id, ReturnKind::Return, &[("MUG", 1)]))
            .await
            .expect_err("both mugs are claimed");
        assert_invalid_argument(&claimed, DOMAIN, &["lines[0].quantity"]);

        let refused = system
            .receive(&requested.id)
            .await
            .expect_err("not approved");
        assert_precondition(&refused, "RETURN_NOT_APPROVED", &requested.id);
        let approved = system.approve(&requested.id).await.expect("approve");
        assert_eq!(approved.status(), ReturnStatus::Approved);
        assert_eq!(
            system.approve(&requested.id).await.expect("approve again"),
            approved,
            "approving an approved return changes nothing"
        );

        let received = system.receive(&requested.id).await.expect("receive");
        assert_eq!(received.status(), ReturnStatus::Received);
        let payment = system.payment_of(&order.id).await;
        assert_eq!(received.refund_payment_id, payment.id);
        assert!(received.replacement_shipment_id.is_empty());
        assert_eq!(payment.refunded, Some(usd(2 * 1250)));
        assert_eq!(payment.status(), payments::PaymentStatus::PartiallyRefunded);
        assert_eq!(system.stock("MUG").await, (10, 0), "restocked");

        let again = system.receive(&requested.id).await.expect("receive again");
        assert_eq!(
            again, received,
            "receiving a received return changes nothing"
        );
        assert_eq!(
            system.payment_of(&order.id).await.refunded,
            Some(usd(2 * 1250)),
            "refunded once"
        );
        assert_eq!(system.stock("MUG").await, (10, 0), "restocked once");
        let rejected = system
            .reject(&requested.id, "too late")
            .await
            .expect_err("received is final");
        assert_precondition(&rejected, "RETURN_STATUS", &requested.id);

        let events = system.exchange_events(&order.id, 3).await;
        let types: Vec<_> = events.iter().map(|event| event.r#type.as_str()).collect();
        assert_eq!(
            types,
            ["ReturnRequested", "ReturnApproved", "ReturnReceived"],
            "{}",
            system.backend
        );
        let received_event = events[2].data.as_ref().expect("data");
        let text = |key: &str| match received_event.fields.get(key).and_then(|v| v.kind.as_ref()) {
            Some(prost_types::value::Kind::StringValue(text)) => text.clone(),
            other => panic!("{key} is not text: {other:?}"),
        };
        assert_eq!(text("return_id"), requested.id);
        assert_eq!(text("kind"), "RETURN_KIND_RETURN");
        assert_eq!(text("refund_payment_id"), payment.id);
        system.stop().await;
    }
}

#[tokio::test]
async fn a_return_the_payment_cannot_refund_is_refused_before_restocking_and_may_be_rejected() {
    for databases in backends() {
        let system = System::start(databases).await;
        system.product("PLATE", 1250, 10).await;
        system.product("BOWL", 1999, 10).await;
        let order = system.delivered_order(&[("PLATE", 2), ("BOWL", 1)]).await;
        let payment = system.payment_of(&order.id).await;
        system
            .payments
            .clone()
            .refund_payment(payments::RefundPaymentRequest {
                id: payment.id.clone(),
                amount: Some(usd(1000)),
                reason: "goodwill".into(),
                request_id: String::new(),
            })
            .await
            .expect("staff refund part of the payment");

        let plates = system
            .request(return_of(&order.id, ReturnKind::Return, &[("PLATE", 2)]))
            .await
            .expect("request the plates back");
        system
            .approve(&plates.id)
            .await
            .expect("approve the plates");
        let received = system
            .receive(&plates.id)
            .await
            .expect("what is left covers the plates");
        assert_eq!(received.status(), ReturnStatus::Received);
        assert_eq!(
            system.payment_of(&order.id).await.refunded,
            Some(usd(1000 + 2500))
        );

        let bowl = system
            .request(return_of(&order.id, ReturnKind::Return, &[("BOWL", 1)]))
            .await
            .expect("request the bowl back");
        system.approve(&bowl.id).await.expect("approve the bowl");
        let stock = system.stock("BOWL").await;
        for attempt in ["receive", "receive again"] {
            let refused = system.receive(&bowl.id).await.expect_err(attempt);
            assert_precondition(&refused, "REFUND_REFUSED", &bowl.id);
            assert_eq!(
                system.stock("BOWL").await,
                stock,
                "{attempt}: nothing restocked"
            );
            assert_eq!(
                system.get(&bowl.id).await.expect("get").status(),
                ReturnStatus::Approved,
                "{attempt}"
            );
        }
        let refunded = system.payment_of(&order.id).await;
        assert_eq!(
            refunded.refunded,
            Some(usd(3500)),
            "{}: no more refunded",
            system.backend
        );
        let rejected = system
            .reject(&bowl.id, "refunded by other means")
            .await
            .expect("staff end it");
        assert_eq!(rejected.status(), ReturnStatus::Rejected);
        assert_eq!(system.stock("BOWL").await, stock);
        system.stop().await;
    }
}

#[tokio::test]
async fn a_rejected_return_frees_its_units_and_is_never_received() {
    for databases in backends() {
        let system = System::start(databases).await;
        system.product("MUG", 1250, 10).await;
        let order = system.delivered_order(&[("MUG", 2)]).await;
        let requested = system
            .request(return_of(&order.id, ReturnKind::Return, &[("MUG", 2)]))
            .await
            .expect("request");
        let rejected = system.reject(&requested.id, "used").await.expect("reject");
        assert_eq!(rejected.status(), ReturnStatus::Rejected);
        assert_eq!(rejected.rejection_reason, "used");
        assert_eq!(
            system.reject(&requested.id, "used").await.expect("again"),
            rejected,
            "rejecting a rejected return changes nothing"
        );
        let refused = system.approve(&requested.id).await.expect_err("final");
        assert_precondition(&refused, "RETURN_STATUS", &requested.id);
        let refused = system.receive(&requested.id).await.expect_err("final");
        assert_precondition(&refused, "RETURN_NOT_APPROVED", &requested.id);
        assert_eq!(system.get(&requested.id).await.expect("get"), rejected);
        assert_eq!(system.stock("MUG").await, (8, 0), "nothing restocked");

        let asked_again = system
            .request(return_of(&order.id, ReturnKind::Return, &[("MUG", 2)]))
            .await
            .expect("a rejected return claims nothing");
        assert_ne!(asked_again.id, requested.id);
        let events = system.exchange_events(&order.id, 3).await;
        let types: Vec<_> = events.iter().map(|event| event.r#type.as_str()).collect();
        assert_eq!(
            types,
            ["ReturnRequested", "ReturnRejected", "ReturnRequested"],
            "{}",
            system.backend
        );
        system.stop().await;
    }
}

#[tokio::test]
async fn an_exchange_ships_a_replacement_at_no_charge() {
    for databases in backends() {
        let system = System::start(databases).await;
        system.product("TEE", 1999, 5).await;
        let order = system.delivered_order(&[("TEE", 2)]).await;
        let requested = system
            .request(return_of(&order.id, ReturnKind::Exchange, &[("TEE", 1)]))
            .await
            .expect("request");
        assert_eq!(requested.kind(), ReturnKind::Exchange);
        assert_eq!(
            requested.refund_amount,
            Some(usd(0)),
            "an exchange refunds nothing"
        );
        system.approve(&requested.id).await.expect("approve");
        let received = system.receive(&requested.id).await.expect("receive");
        assert_eq!(received.status(), ReturnStatus::Received);
        assert!(received.refund_payment_id.is_empty());

        let shipments = system.shipments_of(&order.id).await;
        let replacement = shipments
            .iter()
            .find(|shipment| shipment.id == received.replacement_shipment_id)
            .expect("the replacement shipment, of the order");
        assert_eq!(replacement.return_id, requested.id);
        assert_eq!(
            replacement.lines,
            [fulfillment::ShipmentLine {
                sku: "TEE".into(),
                quantity: 1
            }]
        );
        assert_eq!(
            replacement.address,
            Some(address()),
            "to the order's address"
        );
        assert_eq!(
            system.stock("TEE").await,
            (3, 0),
            "the returned tee restocked, the replacement taken"
        );
        let payment = system.payment_of(&order.id).await;
        assert_eq!(payment.refunded, Some(usd(0)), "{}", system.backend);
        assert_eq!(
            system.receive(&requested.id).await.expect("again"),
            received,
            "receiving again ships nothing more"
        );
        assert_eq!(system.shipments_of(&order.id).await.len(), shipments.len());
        system.stop().await;
    }
}

#[tokio::test]
async fn only_a_shipped_order_can_be_returned() {
    for databases in backends() {
        let system = System::start(databases).await;
        system.product("MUG", 1250, 10).await;
        let order = system.confirmed_order(&[("MUG", 1)]).await;
        let refused = system
            .request(return_of(&order.id, ReturnKind::Return, &[("MUG", 1)]))
            .await
            .expect_err("not shipped yet");
        assert_precondition(&refused, "ORDER_NOT_SHIPPED", &order.id);
        assert!(
            system.list_all(0, &[&order.id]).await.concat().is_empty(),
            "{}",
            system.backend
        );
        system.stop().await;
    }
}

/// A customer returns and reads only their own: a return of another's order is answered exactly as
/// one of an unknown order, another's return as an unknown id, and a list holds only theirs,
/// while staff act for anyone and read everyone's.
#[tokio::test]
async fn a_customer_returns_and_reads_only_their_own() {
    for databases in backends() {
        let system = System::start(databases).await;
        system.product("CUP", 800, 10).await;
        let alices_order = system.delivered_order(&[("CUP", 2)]).await;
        let bobs_order = system.delivered_order(&[("CUP", 2)]).await;
        let alice = alices_order.customer_id.clone();
        let mut as_alice = system.exchanges_as(&alice).await;
        let unknown = uuid::Uuid::now_v7().to_string();
        let cup = [("CUP", 1)];

        let of_bobs = as_alice
            .request_return(return_of(&bobs_order.id, ReturnKind::Return, &cup))
            .await
            .expect_err("alice returns bob's order");
        let of_nothing = as_alice
            .request_return(return_of(&unknown, ReturnKind::Return, &cup))
            .await
            .expect_err("a return of an unknown order");
        assert_invalid_argument(&of_nothing, DOMAIN, &["order_id"]);
        assert_answered_as_missing(&of_bobs, &bobs_order.id, &of_nothing, &unknown);

        let mine = as_alice
            .request_return(return_of(&alices_order.id, ReturnKind::Return, &cup))
            .await
            .expect("alice returns her own order")
            .into_inner();
        assert_eq!(mine.customer_id, alice, "{}", system.backend);
        let theirs = system
            .request(return_of(&bobs_order.id, ReturnKind::Return, &cup))
            .await
            .expect("staff record bob's return");
        assert_eq!(
            theirs.customer_id, bobs_order.customer_id,
            "the order's customer"
        );

        let get = |id: &str| pb::GetReturnRequest { id: id.to_owned() };
        assert_eq!(
            as_alice
                .get_return(get(&mine.id))
                .await
                .expect("alice reads her return")
                .into_inner(),
            mine
        );
        let hidden = as_alice
            .get_return(get(&theirs.id))
            .await
            .expect_err("bob's return");
        let missing = as_alice
            .get_return(get(&unknown))
            .await
            .expect_err("an unknown return");
        assert_eq!(missing.code(), Code::NotFound);
        assert_answered_as_missing(&hidden, &theirs.id, &missing, &unknown);

        let batch = |ids: &[&str]| pb::BatchGetReturnsRequest {
            ids: ids.iter().map(|id| (*id).to_owned()).collect(),
        };
        let hidden = as_alice
            .batch_get_returns(batch(&[&mine.id, &theirs.id]))
            .await
            .expect_err("bob's return in a batch");
        let missing = as_alice
            .batch_get_returns(batch(&[&mine.id, &unknown]))
            .await
            .expect_err("an unknown return in a batch");
        assert_answered_as_missing(&hidden, &theirs.id, &missing, &unknown);

        let list = |order_ids: &[&str]| pb::ListReturnsRequest {
            order_ids: order_ids.iter().map(|id| (*id).to_owned()).collect(),
            ..Default::default()
        };
        for (order_ids, expected) in [
            (vec![], vec![mine.clone()]),
            (vec![bobs_order.id.as_str()], vec![]),
            (
                vec![bobs_order.id.as_str(), alices_order.id.as_str()],
                vec![mine.clone()],
            ),
        ] {
            let listed = as_alice
                .list_returns(list(&order_ids))
                .await
                .expect("alice lists returns")
                .into_inner()
                .returns;
            assert_eq!(listed, expected, "orders {order_ids:?}");
        }
        assert_eq!(
            system.list_all(10, &[]).await.concat(),
            [mine, theirs],
            "staff list everyone's"
        );
        system.stop().await;
    }
}

#[tokio::test]
async fn returns_are_read_alone_in_batches_and_in_pages() {
    for databases in backends() {
        let system = System::start(databases).await;
        system.product("MUG", 1250, 10).await;
        let first = system.delivered_order(&[("MUG", 3)]).await;
        let second = system.delivered_order(&[("MUG", 1)]).await;
        let mut created = Vec::new();
        for order in [&first, &first, &second, &first] {
            let requested = system
                .request(return_of(&order.id, ReturnKind::Return, &[("MUG", 1)]))
                .await
                .expect("request");
            created.push(requested);
        }

        assert_eq!(system.get(&created[1].id).await.expect("get"), created[1]);
        let unknown = system.get("no-such-return").await.expect_err("unknown");
        assert_eq!(unknown.code(), Code::NotFound, "{}", unknown.message());

        let batch = system
            .exchanges
            .clone()
            .batch_get_returns(pb::BatchGetReturnsRequest {
                ids: vec![
                    created[2].id.clone(),
                    created[0].id.clone(),
                    created[2].id.clone(),
                ],
            })
            .await
            .expect("batch get")
            .into_inner()
            .returns;
        assert_eq!(
            batch,
            [created[2].clone(), created[0].clone(), created[2].clone()],
            "in the order asked, duplicates in place"
        );
        let unknown = system
            .exchanges
            .clone()
            .batch_get_returns(pb::BatchGetReturnsRequest {
                ids: vec![created[0].id.clone(), "no-such-return".into()],
            })
            .await
            .expect_err("one unknown");
        assert_eq!(unknown.code(), Code::NotFound, "{}", unknown.message());

        let pages = system.list_all(3, &[]).await;
        assert_eq!(
            pages.iter().map(Vec::len).collect::<Vec<_>>(),
            [3, 1],
            "{}",
            system.backend
        );
        assert_eq!(pages.concat(), created, "in creation order");
        let of_first = system.list_all(2, &[&first.id]).await.concat();
        let expected: Vec<_> = created
            .iter()
            .filter(|requested| requested.order_id == first.id)
            .cloned()
            .collect();
        assert_eq!(of_first, expected, "only the first order's");
        let of_both = system.list_all(1, &[&second.id, &first.id]).await.concat();
        assert_eq!(of_both, created, "{}", system.backend);
        system.stop().await;
    }
}

#[tokio::test]
async fn a_stored_return_that_breaks_the_rules_is_an_error_never_a_default() {
    for databases in backends() {
        let system = System::start(databases).await;
        system.product("MUG", 1250, 10).await;
        let order = system.delivered_order(&[("MUG", 2)]).await;
        for sql in [
            "UPDATE returns SET status = 99 WHERE id = $1",
            "UPDATE returns SET kind = 0 WHERE id = $1",
            "UPDATE return_lines SET quantity = 0 WHERE return_id = $1",
            "DELETE FROM return_lines WHERE return_id = $1",
        ] {
            let requested = system
                .request(return_of(&order.id, ReturnKind::Return, &[("MUG", 1)]))
                .await
                .expect("request");
            system.write_behind_its_back(sql, &requested.id).await;
            let refused = system.get(&requested.id).await.expect_err(sql);
            assert_eq!(
                refused.code(),
                Code::Internal,
                "{sql}: {}",
                refused.message()
            );
            // Rejected, it claims nothing, so the next case can ask for the same mug.
            system
                .write_behind_its_back("UPDATE returns SET status = 3 WHERE id = $1", &requested.id)
                .await;
        }
        let refused = system
            .exchanges
            .clone()
            .list_returns(pb::ListReturnsRequest::default())
            .await
            .expect_err("a page with the broken returns");
        assert_eq!(refused.code(), Code::Internal, "{}", system.backend);
        system.stop().await;
    }
}
