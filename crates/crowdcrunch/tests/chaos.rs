//! The proof: invariants under chaos. Every service runs as its own `crowdcrunch serve` process;
//! many concurrent clients place orders (good cards, declines, out-of-stock), cancel some, ship,
//! return and exchange others, while the orders process and others are SIGKILLed and restarted at
//! random moments. Clients that get no answer retry with the same request id. After recovery:
//! every order is terminal; per order, captured − refunded is what the customer owes; stock is
//! conserved with nothing oversold or left reserved; the ledger holds every event exactly once.
//! Runs on SQLite, and on PostgreSQL when `CROWDCRUNCH_TEST_DATABASE_URL` is set.

#[expect(
    dead_code,
    reason = "this test uses a part of the shared support module"
)]
mod support;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crowdcrunch_proto::customers::v1 as customers;
use crowdcrunch_proto::exchanges::v1 as exchanges;
use crowdcrunch_proto::fulfillment::v1 as fulfillment;
use crowdcrunch_proto::inventory::v1 as inventory;
use crowdcrunch_proto::ledger::v1 as ledger;
use crowdcrunch_proto::orders::v1 as orders;
use crowdcrunch_proto::payments::v1 as payments;
use crowdcrunch_proto::r#type::v1::{Address, Money, PaymentCard};
use crowdcrunch_runtime::auth::Grant;
use crowdcrunch_runtime::client::{Endpoints, GrpcChannel, ServiceToken};
use crowdcrunch_runtime::testing::{reserved_addr, token};
use support::{Process, binary};
use tokio::sync::Mutex;

/// Every service, in start order (as the roster lists them).
fn services() -> impl Iterator<Item = &'static str> {
    crowdcrunch::roster::SERVICES
        .iter()
        .map(|service| service.name)
}
/// The services killed besides orders (always killed).
const ALSO_KILLED: [&str; 4] = ["payments", "inventory", "fulfillment", "exchanges"];
const SKUS: [&str; 4] = ["CHAOS-A", "CHAOS-B", "CHAOS-C", "CHAOS-D"];
const INITIAL_STOCK: i32 = 40;
const PRICE: i64 = 1500;
const ORDERS: usize = 48;
const KILLS: usize = 6;
/// How long an operation is retried before the test gives up on it.
const PATIENCE: Duration = Duration::from_secs(90);

/// The system as separate processes on fixed loopback ports (restarts reuse them).
struct Cluster {
    binary_args: HashMap<&'static str, Vec<String>>,
    database_url: Option<String>,
    processes: Mutex<HashMap<&'static str, Process>>,
    addrs: HashMap<&'static str, SocketAddr>,
}

impl Cluster {
    fn new(data_dir: &Path, database_url: Option<String>) -> Self {
        let addrs: HashMap<&'static str, SocketAddr> = services()
            .map(|service| (service, reserved_addr()))
            .collect();
        let mut binary_args = HashMap::new();
        for service in services() {
            let mut args = vec![
                "serve".to_owned(),
                service.to_owned(),
                "--listen".to_owned(),
                addrs[service].to_string(),
                "--metrics-listen".to_owned(),
                "127.0.0.1:0".to_owned(),
                "--drain-grace".to_owned(),
                "2s".to_owned(),
                "--data-dir".to_owned(),
                data_dir.display().to_string(),
            ];
            for upstream in services().filter(|upstream| *upstream != service) {
                args.push(format!("--{upstream}-endpoints"));
                args.push(format!("http://{}", addrs[upstream]));
            }
            // Each process calls the others as itself, with a token from a file.
            let token_file = data_dir.join(format!("{service}.token"));
            std::fs::write(&token_file, token(&Grant::Service(service.to_owned())))
                .expect("write the service's token");
            args.push("--service-token-file".to_owned());
            args.push(token_file.display().to_string());
            binary_args.insert(service, args);
        }
        Self {
            binary_args,
            database_url,
            processes: Mutex::new(HashMap::new()),
            addrs,
        }
    }

    fn spawn(&self, service: &'static str) -> Process {
        let mut command = binary();
        command
            .args(&self.binary_args[service])
            .envs(support::auth_settings())
            .envs(support::page_token_key())
            .env("RUST_LOG", "warn,crowdcrunch=info");
        if let Some(url) = &self.database_url {
            command.env("CROWDCRUNCH_DATABASE_URL", url);
        }
        let mut process = Process::start(command);
        process.wait_for_line("serving gRPC");
        process
    }

    async fn start_all(&self) {
        for service in services() {
            let process = tokio::task::block_in_place(|| self.spawn(service));
            self.processes.lock().await.insert(service, process);
        }
    }

    /// SIGKILLs `service` and starts it again on the same port and data.
    async fn kill_and_restart(&self, service: &'static str) {
        let killed = self.processes.lock().await.remove(service);
        drop(killed); // `Process` kills (SIGKILL) on drop and reaps.
        let process = tokio::task::block_in_place(|| self.spawn(service));
        self.processes.lock().await.insert(service, process);
    }

    /// A lazily connected channel to `service`, calling as staff (the test reads everything
    /// and runs the back office).
    async fn channel(&self, service: &str) -> GrpcChannel {
        let endpoints =
            Endpoints::parse(&format!("http://{}", self.addrs[service])).expect("a URL");
        let staff =
            ServiceToken::new(&token(&Grant::Staff("chaos-test".to_owned()))).expect("a token");
        crowdcrunch_runtime::client::channel(&endpoints, None)
            .expect("a channel")
            .carrying(staff)
    }
}

/// Retries `call` (same request, same request id) until it answers, or gives up after PATIENCE.
async fn retry<T, F, Fut>(what: &str, mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        match call().await {
            Ok(answer) => return Ok(answer),
            Err(status)
                if crowdcrunch_runtime::client::is_transient(&status)
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            Err(status) => {
                if Instant::now() >= deadline {
                    panic!("{what}: no answer within {PATIENCE:?}: {status:?}");
                }
                return Err(status);
            }
        }
    }
}

fn usd(cents: i64) -> Money {
    Money {
        currency_code: "USD".into(),
        minor_units: cents,
    }
}

/// What one client does with its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Keep,
    Declined,
    OutOfStock,
    Cancel,
    Return,
    Exchange,
}

fn plan(n: usize) -> Plan {
    match n % 8 {
        0 => Plan::Declined,
        1 => Plan::OutOfStock,
        2 => Plan::Cancel,
        3 => Plan::Return,
        4 => Plan::Exchange,
        _ => Plan::Keep,
    }
}

async fn client_run(
    cluster: Arc<Cluster>,
    customer_id: String,
    n: usize,
    placed: Arc<AtomicUsize>,
) -> (Plan, String) {
    let orders_channel = cluster.channel("orders").await;
    let mut orders_client = orders::order_service_client::OrderServiceClient::new(orders_channel);
    let plan = plan(n);
    let sku = SKUS[n % SKUS.len()];
    let quantity = if plan == Plan::OutOfStock {
        INITIAL_STOCK * 10
    } else {
        1 + (n % 2) as i32
    };
    let number = if plan == Plan::Declined {
        "4000000000000002"
    } else {
        "4242424242424242"
    };
    let request = orders::PlaceOrderRequest {
        request_id: format!("chaos-order-{n}"),
        customer_id,
        lines: vec![orders::OrderLine {
            sku: sku.into(),
            quantity,
            ..Default::default()
        }],
        card: Some(PaymentCard {
            number: number.into(),
            exp_month: 12,
            exp_year: 2031,
            cvc: "123".into(),
        }),
        shipping_address: Some(Address {
            recipient: "Chaos Monkey".into(),
            line1: "1 Random Way".into(),
            city: "Entropy".into(),
            country_code: "US".into(),
            ..Default::default()
        }),
    };
    let order = retry("place order", || {
        let mut client = orders_client.clone();
        let request = request.clone();
        async move {
            client
                .place_order(request)
                .await
                .map(tonic::Response::into_inner)
        }
    })
    .await
    .expect("a valid order is accepted");
    placed.fetch_add(1, Ordering::Relaxed);
    let order = wait_while_pending(&mut orders_client, &order.id).await;
    if order.status() != orders::OrderStatus::Confirmed {
        return (plan, order.id);
    }
    match plan {
        Plan::Cancel => {
            let request = orders::CancelOrderRequest {
                id: order.id.clone(),
                reason: "chaos".into(),
                request_id: format!("chaos-cancel-{n}"),
            };
            let _ = retry("cancel", || {
                let mut client = orders_client.clone();
                let request = request.clone();
                async move { client.cancel_order(request).await }
            })
            .await;
        }
        Plan::Return | Plan::Exchange => {
            deliver(&cluster, &order.id).await;
            let kind = if plan == Plan::Return {
                exchanges::ReturnKind::Return
            } else {
                exchanges::ReturnKind::Exchange
            };
            returned(&cluster, &order, kind, n).await;
        }
        _ => {}
    }
    (plan, order.id)
}

async fn wait_while_pending(
    client: &mut orders::order_service_client::OrderServiceClient<GrpcChannel>,
    id: &str,
) -> orders::Order {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let order = retry("get order", || {
            let mut client = client.clone();
            let id = id.to_owned();
            async move {
                client
                    .get_order(orders::GetOrderRequest { id })
                    .await
                    .map(tonic::Response::into_inner)
            }
        })
        .await
        .expect("the order exists");
        if order.status() != orders::OrderStatus::Pending || Instant::now() > deadline {
            return order;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Moves the order's shipment to DELIVERED.
async fn deliver(cluster: &Cluster, order_id: &str) {
    let client = fulfillment::fulfillment_service_client::FulfillmentServiceClient::new(
        cluster.channel("fulfillment").await,
    );
    let shipments = retry("list shipments", || {
        let mut client = client.clone();
        let request = fulfillment::ListShipmentsRequest {
            order_ids: vec![order_id.into()],
            ..Default::default()
        };
        async move {
            client
                .list_shipments(request)
                .await
                .map(tonic::Response::into_inner)
        }
    })
    .await
    .expect("shipments");
    let Some(shipment) = shipments
        .shipments
        .into_iter()
        .find(|shipment| shipment.return_id.is_empty())
    else {
        return;
    };
    for status in [
        fulfillment::ShipmentStatus::Packed,
        fulfillment::ShipmentStatus::Shipped,
        fulfillment::ShipmentStatus::Delivered,
    ] {
        let request = fulfillment::UpdateShipmentStatusRequest {
            id: shipment.id.clone(),
            status: status.into(),
            tracking_number: "CHAOS-TRACK".into(),
            request_id: format!("{}:{}", shipment.id, status.as_str_name()),
        };
        retry("move shipment", || {
            let mut client = client.clone();
            let request = request.clone();
            async move { client.update_shipment_status(request).await }
        })
        .await
        .expect("the shipment moves forward");
    }
    // Wait until orders has followed the shipment (through the ledger).
    let mut orders_client =
        orders::order_service_client::OrderServiceClient::new(cluster.channel("orders").await);
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        let order = wait_while_pending(&mut orders_client, order_id).await;
        if order.status() == orders::OrderStatus::Delivered {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn returned(cluster: &Cluster, order: &orders::Order, kind: exchanges::ReturnKind, n: usize) {
    let client = exchanges::exchange_service_client::ExchangeServiceClient::new(
        cluster.channel("exchanges").await,
    );
    let request = exchanges::RequestReturnRequest {
        request_id: format!("chaos-return-{n}"),
        order_id: order.id.clone(),
        kind: kind.into(),
        lines: vec![exchanges::ReturnLine {
            sku: order.lines[0].sku.clone(),
            quantity: 1,
        }],
        reason: "chaos".into(),
    };
    let Ok(requested) = retry("request return", || {
        let mut client = client.clone();
        let request = request.clone();
        async move {
            client
                .request_return(request)
                .await
                .map(tonic::Response::into_inner)
        }
    })
    .await
    else {
        return;
    };
    retry("approve", || {
        let mut client = client.clone();
        let request = exchanges::ApproveReturnRequest {
            id: requested.id.clone(),
            request_id: String::new(),
        };
        async move { client.approve_return(request).await }
    })
    .await
    .expect("approve");
    let _ = retry("receive", || {
        let mut client = client.clone();
        let request = exchanges::ReceiveReturnRequest {
            id: requested.id.clone(),
            request_id: format!("chaos-receive-{n}"),
        };
        async move { client.receive_return(request).await }
    })
    .await;
}

/// Reads every page of a List RPC.
macro_rules! list_all {
    ($client:expr, $method:ident, $request:ty, $items:ident) => {{
        let mut items = Vec::new();
        let mut page_token = String::new();
        loop {
            type Request = $request;
            let request = Request {
                page_size: 1000,
                page_token,
                ..Default::default()
            };
            let page = retry(stringify!($method), || {
                let mut client = $client.clone();
                let request = request.clone();
                async move {
                    client
                        .$method(request)
                        .await
                        .map(tonic::Response::into_inner)
                }
            })
            .await
            .expect(stringify!($method));
            items.extend(page.$items);
            if page.next_page_token.is_empty() {
                break items;
            }
            page_token = page.next_page_token;
        }
    }};
}

async fn run_chaos(database_url: Option<String>, backend: &str) {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let cluster = Arc::new(Cluster::new(data_dir.path(), database_url));
    cluster.start_all().await;

    let customers_client = customers::customer_service_client::CustomerServiceClient::new(
        cluster.channel("customers").await,
    );
    let customer = retry("create customer", || {
        let mut client = customers_client.clone();
        let request = customers::CreateCustomerRequest {
            customer: Some(customers::Customer {
                email: "chaos@example.com".into(),
                ..Default::default()
            }),
            request_id: "chaos-customer".into(),
        };
        async move {
            client
                .create_customer(request)
                .await
                .map(tonic::Response::into_inner)
        }
    })
    .await
    .expect("customer");
    let inventory_client = inventory::inventory_service_client::InventoryServiceClient::new(
        cluster.channel("inventory").await,
    );
    for sku in SKUS {
        retry("create product", || {
            let mut client = inventory_client.clone();
            let request = inventory::CreateProductRequest {
                product: Some(inventory::Product {
                    sku: sku.into(),
                    title: sku.into(),
                    price: Some(usd(PRICE)),
                    active: true,
                    ..Default::default()
                }),
                initial_stock: INITIAL_STOCK,
                request_id: format!("chaos-product-{sku}"),
            };
            async move { client.create_product(request).await }
        })
        .await
        .expect("product");
    }

    // The workload, and the chaos beside it.
    let placed = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..ORDERS)
        .map(|n| {
            tokio::spawn(client_run(
                cluster.clone(),
                customer.id.clone(),
                n,
                placed.clone(),
            ))
        })
        .collect();
    let chaos = {
        let cluster = cluster.clone();
        tokio::spawn(async move {
            let mut kills = 0;
            for round in 0..KILLS {
                tokio::time::sleep(Duration::from_millis(400 + (round as u64 * 337) % 700)).await;
                let victim = if round % 2 == 0 {
                    "orders"
                } else {
                    ALSO_KILLED[(round / 2) % ALSO_KILLED.len()]
                };
                cluster.kill_and_restart(victim).await;
                kills += 1;
            }
            kills
        })
    };
    let mut plans = HashMap::new();
    for client in clients {
        let (plan, order_id) = client.await.expect("a client task panicked");
        plans.insert(order_id, plan);
    }
    let kills = chaos.await.expect("the chaos task panicked");

    // Recovery, then the invariants. A cancellation the orders service accepted may still be
    // compensating (an order is CONFIRMED until its money and stock are back), slower the busier
    // the machine: recovery waits for those too.
    let orders_client =
        orders::order_service_client::OrderServiceClient::new(cluster.channel("orders").await);
    let deadline = Instant::now() + PATIENCE;
    let all_orders = loop {
        let all: Vec<orders::Order> = list_all!(
            orders_client,
            list_orders,
            orders::ListOrdersRequest,
            orders
        );
        let settled = |order: &orders::Order| match order.status() {
            orders::OrderStatus::Pending => false,
            orders::OrderStatus::Confirmed => plans.get(&order.id) != Some(&Plan::Cancel),
            _ => true,
        };
        if all.iter().all(settled) || Instant::now() > deadline {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut violations: Vec<String> = Vec::new();
    for order in &all_orders {
        if order.status() == orders::OrderStatus::Pending {
            violations.push(format!("order {} is stuck in PENDING", order.id));
        }
    }

    let payments_client = payments::payment_service_client::PaymentServiceClient::new(
        cluster.channel("payments").await,
    );
    let all_payments: Vec<payments::Payment> = list_all!(
        payments_client,
        list_payments,
        payments::ListPaymentsRequest,
        payments
    );
    let exchanges_client = exchanges::exchange_service_client::ExchangeServiceClient::new(
        cluster.channel("exchanges").await,
    );
    let all_returns: Vec<exchanges::ReturnRequest> = list_all!(
        exchanges_client,
        list_returns,
        exchanges::ListReturnsRequest,
        returns
    );

    // Each client's plan ends where it must: the chaos may delay an order, never change its fate.
    for order in &all_orders {
        let Some(plan) = plans.get(&order.id) else {
            violations.push(format!("order {} belongs to no client", order.id));
            continue;
        };
        let received = all_returns.iter().any(|request| {
            request.order_id == order.id && request.status() == exchanges::ReturnStatus::Received
        });
        let expected_ok = match plan {
            Plan::Keep => order.status() == orders::OrderStatus::Confirmed,
            Plan::Declined => order.status() == orders::OrderStatus::PaymentDeclined,
            Plan::OutOfStock => order.status() == orders::OrderStatus::Rejected,
            Plan::Cancel => order.status() == orders::OrderStatus::Cancelled,
            Plan::Return | Plan::Exchange => {
                order.status() == orders::OrderStatus::Delivered && received
            }
        };
        if !expected_ok {
            violations.push(format!(
                "order {} ({plan:?}) ended {:?} (received return: {received}): {}",
                order.id,
                order.status(),
                order.failure_reason
            ));
        }
    }

    let mut expected_on_hand: HashMap<String, i64> = SKUS
        .iter()
        .map(|sku| ((*sku).to_owned(), i64::from(INITIAL_STOCK)))
        .collect();
    for order in &all_orders {
        let money = |money: &Option<Money>| money.as_ref().map_or(0, |money| money.minor_units);
        let received: Vec<_> = all_returns
            .iter()
            .filter(|request| {
                request.order_id == order.id
                    && request.status() == exchanges::ReturnStatus::Received
            })
            .collect();
        let owed = match order.status() {
            orders::OrderStatus::Confirmed
            | orders::OrderStatus::Shipped
            | orders::OrderStatus::Delivered => {
                money(&order.total)
                    - received
                        .iter()
                        .map(|request| money(&request.refund_amount))
                        .sum::<i64>()
            }
            _ => 0,
        };
        let paid: i64 = all_payments
            .iter()
            .filter(|payment| payment.order_id == order.id)
            .map(|payment| money(&payment.captured) - money(&payment.refunded))
            .sum();
        if paid != owed {
            violations.push(format!(
                "order {} ({:?}): captured − refunded = {paid}, owes {owed}",
                order.id,
                order.status()
            ));
        }
        if matches!(
            order.status(),
            orders::OrderStatus::Confirmed
                | orders::OrderStatus::Shipped
                | orders::OrderStatus::Delivered
        ) {
            for line in &order.lines {
                *expected_on_hand.entry(line.sku.clone()).or_default() -= i64::from(line.quantity);
            }
            for request in &received {
                if request.kind() == exchanges::ReturnKind::Return {
                    for line in &request.lines {
                        *expected_on_hand.entry(line.sku.clone()).or_default() +=
                            i64::from(line.quantity);
                    }
                }
            }
        }
    }
    for sku in SKUS {
        let level = retry("get stock", || {
            let mut client = inventory_client.clone();
            async move {
                client
                    .get_stock(inventory::GetStockRequest { sku: sku.into() })
                    .await
                    .map(tonic::Response::into_inner)
            }
        })
        .await
        .expect("stock");
        if i64::from(level.on_hand) != expected_on_hand[sku]
            || level.reserved != 0
            || level.on_hand < 0
        {
            violations.push(format!(
                "{sku}: on hand {} reserved {}, expected on hand {} and nothing reserved",
                level.on_hand, level.reserved, expected_on_hand[sku]
            ));
        }
    }

    // The ledger: every event once. Outboxes drain asynchronously: wait until the count settles.
    let ledger_client =
        ledger::ledger_service_client::LedgerServiceClient::new(cluster.channel("ledger").await);
    let mut events: Vec<ledger::Event>;
    let mut last_count = usize::MAX;
    let deadline = Instant::now() + PATIENCE;
    loop {
        events = list_all!(
            ledger_client,
            list_events,
            ledger::ListEventsRequest,
            events
        );
        if events.len() == last_count || Instant::now() > deadline {
            break;
        }
        last_count = events.len();
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let mut ids = HashSet::new();
    let mut facts: HashMap<(String, String), usize> = HashMap::new();
    for event in &events {
        if !ids.insert(event.id.clone()) {
            violations.push(format!("event {} recorded twice", event.id));
        }
        *facts
            .entry((event.subject.clone(), event.r#type.clone()))
            .or_default() += 1;
    }
    // The facts every order's story must hold exactly once, by how it ended.
    for order in &all_orders {
        let once: &[&str] = match order.status() {
            orders::OrderStatus::Confirmed
            | orders::OrderStatus::Shipped
            | orders::OrderStatus::Delivered => &[
                "OrderPlaced",
                "StockReserved",
                "PaymentAuthorized",
                "PaymentCaptured",
                "OrderConfirmed",
            ],
            orders::OrderStatus::Rejected => &["OrderPlaced", "OrderRejected"],
            orders::OrderStatus::PaymentDeclined => &[
                "OrderPlaced",
                "StockReserved",
                "PaymentDeclined",
                "ReservationReleased",
                "OrderPaymentDeclined",
            ],
            orders::OrderStatus::Cancelled => &[
                "OrderPlaced",
                "PaymentCaptured",
                "RefundIssued",
                "OrderCancelled",
            ],
            _ => &["OrderPlaced"],
        };
        for event_type in once {
            let count = facts
                .get(&(order.id.clone(), (*event_type).to_owned()))
                .copied()
                .unwrap_or(0);
            if count != 1 {
                violations.push(format!(
                    "order {} ({:?}): {event_type} recorded {count} times",
                    order.id,
                    order.status()
                ));
            }
        }
    }

    let statuses = all_orders
        .iter()
        .fold(HashMap::<&str, usize>::new(), |mut counts, order| {
            *counts.entry(order.status().as_str_name()).or_default() += 1;
            counts
        });
    {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "chaos [{backend}]: {} orders ({} placed by clients), {kills} kills, {} payments, {} returns, {} ledger events, \
             statuses {statuses:?}, {} violations",
            all_orders.len(),
            placed.load(Ordering::Relaxed),
            all_payments.len(),
            all_returns.len(),
            events.len(),
            violations.len()
        );
    }
    assert_eq!(all_orders.len(), ORDERS, "every client's order exists once");
    assert!(
        violations.is_empty(),
        "invariants violated on {backend}:\n{}",
        violations.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invariants_hold_under_chaos_on_sqlite() {
    run_chaos(None, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invariants_hold_under_chaos_on_postgres() {
    let Ok(url) = std::env::var("CROWDCRUNCH_TEST_DATABASE_URL") else {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "skipping chaos on PostgreSQL: CROWDCRUNCH_TEST_DATABASE_URL is not set"
        );
        return;
    };
    let url = fresh_database(&url).await;
    run_chaos(Some(url), "postgres").await;
}

/// A new, empty database next to the one `url` names (each service then makes its own schema).
async fn fresh_database(url: &str) -> String {
    use sqlx::Connection as _;
    let name = format!("chaos_{}", std::process::id());
    let mut connection = sqlx::PgConnection::connect(url)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut connection)
        .await
        .expect("drop");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut connection)
        .await
        .expect("create database");
    let (base, _) = url.rsplit_once('/').expect("a URL with a database name");
    format!("{base}/{name}")
}
