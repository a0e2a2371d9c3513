//! `crowdcrunch load --scenario shop`: simulated shoppers against the GraphQL edge.
//!
//! Each shopper is a customer with their own token and runs a closed loop (no think time) until
//! the duration is up, picking its next step at random by the `--mix` weights:
//!
//! - **browse**: a page of 20 products of the catalog, with prices and stock;
//! - **order**: `placeOrder` with a fresh request id (operation `place`), then `orderUpdated`
//!   over graphql-transport-ws until the order is CONFIRMED (operation `follow`);
//! - **cancel**: `cancelOrder` of one of the shopper's confirmed orders;
//! - **return**: staff pack and ship one of the shopper's confirmed orders and the shopper sees
//!   it SHIPPED on the subscription (operation `ship`), then `requestReturn` of all its lines.
//!
//! A cancel or return when the shopper has no confirmed order left places one first. Before the
//! run, staff create the products the shoppers order (`LOAD-<run>-1` … `-4`, with stock for
//! any run), so no order is refused for stock, and, unless `--customers-file` names them, one
//! customer per shopper (`shopper-<run>-<n>@load.example`). Staff is `-H 'authorization: …'`
//! with a staff token or, with `--data-dir` of `crowdcrunch dev`, a token minted with dev's
//! key, which also gives each created customer their own token; without `--data-dir`, the
//! created customers are served by the staff token.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{SinkExt as _, StreamExt as _};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crowdcrunch_runtime::auth::{Grant, SigningKey};

use super::{end_progress, latency_histogram, percentiles, progress, record_latency};
use crate::http_client::HttpClient;

/// Flags of the scenario mode of `crowdcrunch load`.
#[derive(Debug, clap::Args)]
pub struct ScenarioArgs {
    /// Simulate shoppers instead of repeating one operation: `shop` browses the catalog, places
    /// orders with fresh request ids and follows each to CONFIRMED over a subscription, and
    /// cancels or returns a share of them; it reports each operation and orders/s to CONFIRMED.
    #[arg(long, value_enum, conflicts_with_all = ["query", "grpc_method"])]
    pub scenario: Option<Scenario>,
    /// Shoppers at once, each a customer running its own loop.
    #[arg(long, default_value_t = 32)]
    shoppers: usize,
    /// The relative weights of each shopper's next step: `browse`, `order`, `cancel`, `return`
    /// (a missing one is 0).
    #[arg(long, default_value = "browse=60,order=30,cancel=5,return=5", value_parser = Mix::parse)]
    mix: Mix,
    /// The shoppers' identities, one a line: `CUSTOMER_ID TOKEN` (a customer token,
    /// `crowdcrunch token --customer ID`); shoppers take them in turn. Without it, the scenario
    /// creates one customer per shopper.
    #[arg(long, value_name = "PATH")]
    customers_file: Option<PathBuf>,
    /// The data dir of `crowdcrunch dev`: its key signs the scenario's staff token (unless -H
    /// gives one) and a token for each customer the scenario creates.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

/// A simulation `--scenario` runs.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Scenario {
    /// Shoppers browse, order, follow their orders to CONFIRMED, cancel and return.
    Shop,
}

/// The weights of a shopper's steps.
#[derive(Debug, Clone, Copy)]
struct Mix {
    browse: u32,
    order: u32,
    cancel: u32,
    return_goods: u32,
}

/// One step of a shopper's loop.
#[derive(Debug, Clone, Copy)]
enum Step {
    Browse,
    Order,
    Cancel,
    Return,
}

impl Mix {
    fn parse(text: &str) -> Result<Self, String> {
        let mut mix = Self {
            browse: 0,
            order: 0,
            cancel: 0,
            return_goods: 0,
        };
        for part in text.split(',') {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not NAME=WEIGHT"))?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("{part:?}: the weight must be a whole number"))?;
            let slot = match name.trim() {
                "browse" => &mut mix.browse,
                "order" => &mut mix.order,
                "cancel" => &mut mix.cancel,
                "return" => &mut mix.return_goods,
                other => {
                    return Err(format!(
                        "no step {other:?}: the steps are browse, order, cancel and return"
                    ));
                }
            };
            *slot = weight;
        }
        if mix.total() == 0 {
            return Err("at least one step needs a weight above 0".to_owned());
        }
        Ok(mix)
    }

    fn total(&self) -> u32 {
        self.browse + self.order + self.cancel + self.return_goods
    }

    fn pick(&self, random: &mut fastrand::Rng) -> Step {
        let mut roll = random.u32(..self.total());
        for (weight, step) in [
            (self.browse, Step::Browse),
            (self.order, Step::Order),
            (self.cancel, Step::Cancel),
        ] {
            if roll < weight {
                return step;
            }
            roll -= weight;
        }
        Step::Return
    }
}

impl std::fmt::Display for Mix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "browse={},order={},cancel={},return={}",
            self.browse, self.order, self.cancel, self.return_goods
        )
    }
}

/// What the report counts, one row each.
#[derive(Debug, Clone, Copy)]
enum Operation {
    Browse,
    Place,
    Follow,
    Cancel,
    Ship,
    Return,
}

impl Operation {
    const ALL: [Self; 6] = [
        Self::Browse,
        Self::Place,
        Self::Follow,
        Self::Cancel,
        Self::Ship,
        Self::Return,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Browse => "browse",
            Self::Place => "place",
            Self::Follow => "follow",
            Self::Cancel => "cancel",
            Self::Ship => "ship",
            Self::Return => "return",
        }
    }
}

/// Requests, errors and latencies of one operation.
struct Tally {
    latencies: Mutex<Histogram<u64>>,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

/// Everything the report and the progress line read.
struct Stats {
    operations: [Tally; 6],
    /// Orders seen CONFIRMED on their subscription.
    confirmed: AtomicU64,
    /// From sending `placeOrder` to CONFIRMED arriving.
    to_confirmed: Mutex<Histogram<u64>>,
}

impl Stats {
    fn new() -> Self {
        Self {
            operations: Operation::ALL.map(|_| Tally {
                latencies: Mutex::new(latency_histogram()),
                errors: AtomicU64::new(0),
                first_error: Mutex::new(None),
            }),
            confirmed: AtomicU64::new(0),
            to_confirmed: Mutex::new(latency_histogram()),
        }
    }

    /// Counts one `operation` sent at `sent`; answers its value when it succeeded.
    fn record<T>(
        &self,
        operation: Operation,
        sent: Instant,
        result: Result<T, String>,
    ) -> Option<T> {
        let tally = &self.operations[operation as usize];
        record_latency(
            &mut tally
                .latencies
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
            sent,
        );
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                tally.errors.fetch_add(1, Ordering::Relaxed);
                tally
                    .first_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert(error);
                None
            }
        }
    }

    fn requests(&self) -> u64 {
        self.operations
            .iter()
            .map(|tally| {
                tally
                    .latencies
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .len()
            })
            .sum()
    }

    fn errors(&self) -> u64 {
        self.operations
            .iter()
            .map(|tally| tally.errors.load(Ordering::Relaxed))
            .sum()
    }
}

/// The GraphQL endpoint, over HTTP and WebSocket.
struct Edge {
    client: HttpClient,
    url: http::Uri,
    websocket_url: String,
    /// The `-H` headers every request carries (`authorization` is the caller's own).
    headers: http::HeaderMap,
}

impl Edge {
    /// Runs `query` as `authorization`; answers its `data`, or why it failed.
    async fn graphql(
        &self,
        authorization: &http::HeaderValue,
        query: &str,
        variables: Value,
    ) -> Result<Value, String> {
        let mut headers = self.headers.clone();
        headers.insert(http::header::AUTHORIZATION, authorization.clone());
        let body = super::graphql_body(query, &variables);
        let (status, body) = self
            .client
            .post_json_with(&self.url, body, &headers)
            .await
            .map_err(|error| error.to_string())?;
        let answer: Value = serde_json::from_slice(&body).map_err(|_| {
            format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            )
        })?;
        if !status.is_success() || answer.get("errors").is_some() {
            return Err(format!("HTTP {status}: {answer}"));
        }
        Ok(answer["data"].clone())
    }

    /// Creates `what` before the run, as staff; answers the `data`.
    async fn prepare(
        &self,
        staff: &http::HeaderValue,
        query: &str,
        variables: Value,
        what: &str,
    ) -> anyhow::Result<Value> {
        self.graphql(staff, query, variables)
            .await
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("cannot create {what} as staff"))
    }
}

/// Who a shopper is.
#[derive(Clone)]
struct Customer {
    id: String,
    authorization: http::HeaderValue,
}

/// An order a shopper saw CONFIRMED and may cancel or return.
struct Confirmed {
    id: String,
    /// Its lines as `{sku, quantity}` objects.
    lines: Value,
}

/// The most confirmed orders a shopper keeps in hand for cancels and returns.
const KEPT_ORDERS: usize = 16;

/// How long a shopper waits for an order's next status.
const FOLLOW_PATIENCE: Duration = Duration::from_secs(30);

/// The products the shoppers order, and how many units each starts with.
const PRODUCTS: usize = 4;
const STOCK: i64 = 1_000_000_000;

const BROWSE: &str = "{ products(first: 20) { edges { node { sku title price { amount currencyCode } stock { available } } } } }";
const PLACE_ORDER: &str =
    "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id status } }";
const ORDER_UPDATED: &str = "subscription($id: ID!) { orderUpdated(id: $id) { status } }";
const CANCEL_ORDER: &str =
    "mutation($input: CancelOrderInput!) { cancelOrder(input: $input) { id status } }";
const SHIPMENTS: &str = "query($id: ID!) { order(id: $id) { shipments { id } } }";
const UPDATE_SHIPMENT: &str = "mutation($input: UpdateShipmentStatusInput!) { updateShipmentStatus(input: $input) { id status } }";
const REQUEST_RETURN: &str =
    "mutation($input: RequestReturnInput!) { requestReturn(input: $input) { id status } }";

/// Runs `scenario` for `duration` and prints its report.
pub async fn run(
    scenario: Scenario,
    url: &http::Uri,
    headers: http::HeaderMap,
    duration: Duration,
    args: &ScenarioArgs,
) -> anyhow::Result<()> {
    let Scenario::Shop = scenario;
    anyhow::ensure!(args.shoppers > 0, "--shoppers must be at least 1");
    let origin = crate::http_client::origin(url)?;
    let key = args
        .data_dir
        .as_deref()
        .map(SigningKey::load)
        .transpose()
        .context("--data-dir: cannot read dev's signing key")?;
    let mint = |grant: Grant| -> anyhow::Result<http::HeaderValue> {
        let key = key.as_ref().context("no --data-dir")?;
        let token = key
            .mint(
                &crate::dev::dev_token_rules(),
                &grant,
                duration + Duration::from_secs(600),
            )
            .context("cannot sign a token")?;
        let mut value = http::HeaderValue::try_from(format!("Bearer {token}"))?;
        value.set_sensitive(true);
        Ok(value)
    };
    let staff = match (headers.get(http::header::AUTHORIZATION), &key) {
        (Some(authorization), _) => authorization.clone(),
        (None, Some(_)) => mint(Grant::Staff("crowdcrunch-load".to_owned()))?,
        (None, None) => anyhow::bail!(
            "the shop scenario needs staff, to create its products and ship orders for returns: \
             -H 'authorization: Bearer $STAFF_TOKEN', or --data-dir of `crowdcrunch dev`"
        ),
    };
    let edge = Arc::new(Edge {
        client: HttpClient::new(args.shoppers * 2),
        url: url.clone(),
        websocket_url: format!(
            "{}{}",
            origin.replacen("http://", "ws://", 1),
            url.path_and_query()
                .map_or("/graphql", |path| path.as_str())
        ),
        headers,
    });

    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let run_id = &run_id[run_id.len() - 8..];
    let skus = create_products(&edge, &staff, run_id).await?;
    let customers = match &args.customers_file {
        Some(path) => read_customers(path)?,
        None => {
            create_customers(&edge, &staff, run_id, args.shoppers, |id| match &key {
                Some(_) => mint(Grant::Customer(id.to_owned())),
                None => Ok(staff.clone()),
            })
            .await?
        }
    };

    let stats = Arc::new(Stats::new());
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let shoppers: Vec<_> = (0..args.shoppers)
        .map(|n| {
            let shopper = Shopper {
                edge: edge.clone(),
                customer: customers[n % customers.len()].clone(),
                staff: staff.clone(),
                skus: skus.clone(),
                stats: stats.clone(),
                random: fastrand::Rng::new(),
                confirmed: Vec::new(),
                socket: None,
                subscriptions: 0,
            };
            tokio::spawn(shopper.shop(args.mix, stop.clone()))
        })
        .collect();
    let progress = progress(start, {
        let stats = stats.clone();
        move |elapsed| {
            let requests = stats.requests();
            let confirmed = stats.confirmed.load(Ordering::Relaxed);
            format!(
                "{:>5.1}s  {requests} requests  {:.0}/s  {} errors  {confirmed} orders CONFIRMED ({:.1}/s)",
                elapsed.as_secs_f64(),
                requests as f64 / elapsed.as_secs_f64(),
                stats.errors(),
                confirmed as f64 / elapsed.as_secs_f64(),
            )
        }
    });
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for shopper in shoppers {
        shopper.await.context("a shopper panicked")?;
    }
    let elapsed = start.elapsed();
    end_progress(&progress);
    report(url, args, &stats, elapsed);
    Ok(())
}

#[expect(clippy::print_stdout, reason = "the report is the command's output")]
fn report(url: &http::Uri, args: &ScenarioArgs, stats: &Stats, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    println!(
        "Scenario shop at {url}: {} shoppers, mix {}, {seconds:.1}s",
        args.shoppers, args.mix
    );
    println!(
        "  {:<9} {:>8} {:>9} {:>7}  latency",
        "operation", "requests", "req/s", "errors"
    );
    for operation in Operation::ALL {
        let tally = &stats.operations[operation as usize];
        let latencies = tally
            .latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        println!(
            "  {:<9} {:>8} {:>9.1} {:>7}  {}",
            operation.name(),
            latencies.len(),
            latencies.len() as f64 / seconds,
            tally.errors.load(Ordering::Relaxed),
            percentiles(&latencies)
        );
    }
    let confirmed = stats.confirmed.load(Ordering::Relaxed);
    println!(
        "  orders to CONFIRMED  {confirmed} ({:.1}/s), placement to CONFIRMED {}",
        confirmed as f64 / seconds,
        percentiles(
            &stats
                .to_confirmed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        )
    );
    for operation in Operation::ALL {
        let tally = &stats.operations[operation as usize];
        if let Some(error) = tally
            .first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_deref()
        {
            println!("  first {} error: {error}", operation.name());
        }
    }
}

/// Creates the products the shoppers order; answers their SKUs.
async fn create_products(
    edge: &Edge,
    staff: &http::HeaderValue,
    run_id: &str,
) -> anyhow::Result<Arc<[String]>> {
    let mut skus = Vec::new();
    for n in 1..=PRODUCTS {
        let sku = format!("LOAD-{run_id}-{n}");
        let variables = json!({"input": {
            "product": {"sku": sku, "title": format!("Load test product {n}"), "active": true,
                        "price": {"currencyCode": "USD", "minorUnits": 500 * n}},
            "initialStock": STOCK,
            "requestId": format!("load-{run_id}-product-{n}"),
        }});
        edge.prepare(
            staff,
            "mutation($input: CreateProductInput!) { createProduct(input: $input) { sku } }",
            variables,
            &format!("the product {sku}"),
        )
        .await?;
        skus.push(sku);
    }
    Ok(skus.into())
}

/// Creates one customer per shopper, each with the authorization `authorize` gives its id.
async fn create_customers(
    edge: &Edge,
    staff: &http::HeaderValue,
    run_id: &str,
    shoppers: usize,
    authorize: impl Fn(&str) -> anyhow::Result<http::HeaderValue>,
) -> anyhow::Result<Vec<Customer>> {
    let mut customers = Vec::with_capacity(shoppers);
    for n in 1..=shoppers {
        let email = format!("shopper-{run_id}-{n}@load.example");
        let variables = json!({"input": {
            "customer": {"email": email, "displayName": format!("Shopper {n}")},
            "requestId": format!("load-{run_id}-customer-{n}"),
        }});
        let data = edge
            .prepare(
                staff,
                "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }",
                variables,
                &format!("the customer {email}"),
            )
            .await?;
        let id = data["createCustomer"]["id"]
            .as_str()
            .with_context(|| format!("createCustomer answered no id: {data}"))?
            .to_owned();
        let authorization = authorize(&id)?;
        customers.push(Customer { id, authorization });
    }
    Ok(customers)
}

/// The `CUSTOMER_ID TOKEN` lines of `--customers-file`.
fn read_customers(path: &std::path::Path) -> anyhow::Result<Vec<Customer>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --customers-file {}", path.display()))?;
    let mut customers = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (id, token) = line.split_once(char::is_whitespace).with_context(|| {
            format!("{}:{}: not `CUSTOMER_ID TOKEN`", path.display(), number + 1)
        })?;
        let mut authorization = http::HeaderValue::try_from(format!("Bearer {}", token.trim()))
            .with_context(|| {
                format!("{}:{}: the token is not ASCII", path.display(), number + 1)
            })?;
        authorization.set_sensitive(true);
        customers.push(Customer {
            id: id.to_owned(),
            authorization,
        });
    }
    anyhow::ensure!(
        !customers.is_empty(),
        "--customers-file {} names no customer",
        path.display()
    );
    Ok(customers)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One simulated shopper.
struct Shopper {
    edge: Arc<Edge>,
    customer: Customer,
    staff: http::HeaderValue,
    skus: Arc<[String]>,
    stats: Arc<Stats>,
    random: fastrand::Rng,
    /// Orders seen CONFIRMED, newest last, for cancels and returns.
    confirmed: Vec<Confirmed>,
    /// The shopper's graphql-transport-ws connection, opened at its first follow.
    socket: Option<Socket>,
    /// Subscriptions opened on the connection (the next one's id).
    subscriptions: u64,
}

impl Shopper {
    async fn shop(mut self, mix: Mix, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::Relaxed) {
            match mix.pick(&mut self.random) {
                Step::Browse => self.browse().await,
                Step::Order => self.order().await,
                Step::Cancel => match self.confirmed.pop() {
                    Some(order) => self.cancel(&order).await,
                    None => self.order().await,
                },
                Step::Return => match self.confirmed.pop() {
                    Some(order) => self.return_goods(&order).await,
                    None => self.order().await,
                },
            }
        }
        if let Some(mut socket) = self.socket.take() {
            let _ = socket.close(None).await;
        }
    }

    /// Runs `query` as the shopper and counts it as `operation`; answers its `data` if it
    /// succeeded.
    async fn call(&self, operation: Operation, query: &str, variables: Value) -> Option<Value> {
        let sent = Instant::now();
        let result = self
            .edge
            .graphql(&self.customer.authorization, query, variables)
            .await;
        self.stats.record(operation, sent, result)
    }

    async fn browse(&self) {
        self.call(Operation::Browse, BROWSE, json!({})).await;
    }

    /// Places an order and follows it to CONFIRMED.
    async fn order(&mut self) {
        let mut skus: Vec<&String> = self.skus.iter().collect();
        self.random.shuffle(&mut skus);
        let lines: Vec<Value> = skus[..self.random.usize(1..=2)]
            .iter()
            .map(|sku| json!({"sku": sku, "quantity": self.random.u32(1..=3)}))
            .collect();
        let lines = Value::Array(lines);
        let variables = json!({"input": {
            "requestId": uuid::Uuid::now_v7().to_string(),
            "customerId": self.customer.id,
            "lines": lines,
            "card": {"number": "4242424242424242", "expMonth": 12, "expYear": 2031, "cvc": "123"},
            "shippingAddress": {"recipient": "Load Shopper", "line1": "1 Market Street",
                                "city": "London", "postalCode": "EC1A 1BB", "countryCode": "GB"},
        }});
        let placed_at = Instant::now();
        let result = self
            .edge
            .graphql(&self.customer.authorization, PLACE_ORDER, variables)
            .await
            .and_then(|data| {
                data["placeOrder"]["id"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("placeOrder answered no id: {data}"))
            });
        let Some(id) = self.stats.record(Operation::Place, placed_at, result) else {
            return;
        };
        let sent = Instant::now();
        let result = self.follow(&id, "CONFIRMED").await;
        if self.stats.record(Operation::Follow, sent, result).is_some() {
            self.stats.confirmed.fetch_add(1, Ordering::Relaxed);
            record_latency(
                &mut self
                    .stats
                    .to_confirmed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
                placed_at,
            );
            if self.confirmed.len() == KEPT_ORDERS {
                self.confirmed.remove(0);
            }
            self.confirmed.push(Confirmed { id, lines });
        }
    }

    async fn cancel(&self, order: &Confirmed) {
        let variables = json!({"input": {
            "id": order.id, "reason": "changed my mind (load test)",
            "requestId": uuid::Uuid::now_v7().to_string(),
        }});
        self.call(Operation::Cancel, CANCEL_ORDER, variables).await;
    }

    /// Staff ship the order, the shopper sees it SHIPPED, then asks to return all its lines.
    async fn return_goods(&mut self, order: &Confirmed) {
        let sent = Instant::now();
        let shipped = self.ship(&order.id).await;
        if self.stats.record(Operation::Ship, sent, shipped).is_none() {
            return;
        }
        let variables = json!({"input": {
            "orderId": order.id, "kind": "RETURN", "lines": order.lines,
            "reason": "wrong size (load test)", "requestId": uuid::Uuid::now_v7().to_string(),
        }});
        self.call(Operation::Return, REQUEST_RETURN, variables)
            .await;
    }

    /// As staff: pack and ship the order's shipment; then wait until the order is SHIPPED.
    async fn ship(&mut self, order: &str) -> Result<(), String> {
        let data = self
            .edge
            .graphql(&self.staff, SHIPMENTS, json!({"id": order}))
            .await?;
        let shipment = data["order"]["shipments"][0]["id"]
            .as_str()
            .ok_or_else(|| format!("order {order} has no shipment: {data}"))?
            .to_owned();
        for (status, tracking) in [("PACKED", ""), ("SHIPPED", "1ZLOADTEST0000001")] {
            self.edge
                .graphql(
                    &self.staff,
                    UPDATE_SHIPMENT,
                    json!({"input": {"id": shipment, "status": status, "trackingNumber": tracking}}),
                )
                .await?;
        }
        self.follow(order, "SHIPPED").await
    }

    /// Subscribes to `orderUpdated(id: order)` and waits until it reports `wanted`; any final
    /// status other than `wanted` is an error.
    async fn follow(&mut self, order: &str, wanted: &str) -> Result<(), String> {
        let result = self.follow_on_socket(order, wanted).await;
        if let Err(FollowError::Connection(_)) = &result {
            // A broken connection is replaced at the next follow.
            self.socket = None;
        }
        result.map_err(|error| match error {
            FollowError::Connection(reason) | FollowError::Order(reason) => reason,
        })
    }

    async fn follow_on_socket(&mut self, order: &str, wanted: &str) -> Result<(), FollowError> {
        if self.socket.is_none() {
            self.socket = Some(connect(&self.edge, &self.customer.authorization).await?);
        }
        let socket = self.socket.as_mut().ok_or_else(|| {
            FollowError::Connection("the WebSocket connection is gone".to_owned())
        })?;
        self.subscriptions += 1;
        let id = self.subscriptions.to_string();
        send(
            socket,
            json!({"id": id, "type": "subscribe",
                   "payload": {"query": ORDER_UPDATED, "variables": {"id": order}}}),
        )
        .await?;
        loop {
            let message = receive(socket).await?;
            match message["type"].as_str() {
                Some("ping") => send(socket, json!({"type": "pong"})).await?,
                Some("next") if message["id"] == id.as_str() => {
                    let status = message["payload"]["data"]["orderUpdated"]["status"]
                        .as_str()
                        .ok_or_else(|| {
                            FollowError::Order(format!("order {order}: {}", message["payload"]))
                        })?;
                    let finished = status == wanted
                        || matches!(status, "REJECTED" | "PAYMENT_DECLINED" | "CANCELLED");
                    if finished {
                        send(socket, json!({"id": id, "type": "complete"})).await?;
                        return if status == wanted {
                            Ok(())
                        } else {
                            Err(FollowError::Order(format!(
                                "order {order} became {status}, not {wanted}"
                            )))
                        };
                    }
                }
                Some("error" | "complete") if message["id"] == id.as_str() => {
                    return Err(FollowError::Order(format!(
                        "order {order}: the subscription ended before {wanted}: {message}"
                    )));
                }
                _ => {}
            }
        }
    }
}

/// Why following an order failed.
enum FollowError {
    /// The WebSocket connection failed; the next follow opens another.
    Connection(String),
    /// The order or its subscription went wrong.
    Order(String),
}

/// Opens a graphql-transport-ws connection as `authorization` and waits for its ack.
async fn connect(edge: &Edge, authorization: &http::HeaderValue) -> Result<Socket, FollowError> {
    let failed = |error: &dyn std::fmt::Display| {
        FollowError::Connection(format!("WebSocket {}: {error}", edge.websocket_url))
    };
    let mut request = edge
        .websocket_url
        .as_str()
        .into_client_request()
        .map_err(|error| failed(&error))?;
    request.headers_mut().insert(
        http::header::SEC_WEBSOCKET_PROTOCOL,
        http::HeaderValue::from_static("graphql-transport-ws"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|error| failed(&error))?;
    let authorization = authorization.to_str().map_err(|error| failed(&error))?;
    send(
        &mut socket,
        json!({"type": "connection_init", "payload": {"authorization": authorization}}),
    )
    .await?;
    let ack = receive(&mut socket).await?;
    if ack["type"] != "connection_ack" {
        return Err(failed(&format_args!("no connection_ack: {ack}")));
    }
    Ok(socket)
}

async fn send(socket: &mut Socket, message: Value) -> Result<(), FollowError> {
    socket
        .send(Message::text(message.to_string()))
        .await
        .map_err(|error| FollowError::Connection(format!("WebSocket send: {error}")))
}

/// The next JSON message, within [`FOLLOW_PATIENCE`].
async fn receive(socket: &mut Socket) -> Result<Value, FollowError> {
    loop {
        let frame = tokio::time::timeout(FOLLOW_PATIENCE, socket.next())
            .await
            .map_err(|_| {
                FollowError::Connection(format!(
                    "no WebSocket message within {}",
                    humantime::format_duration(FOLLOW_PATIENCE)
                ))
            })?
            .ok_or_else(|| FollowError::Connection("the WebSocket closed".to_owned()))?
            .map_err(|error| FollowError::Connection(format!("WebSocket: {error}")))?;
        match frame {
            Message::Text(text) => {
                return serde_json::from_str(&text).map_err(|error| {
                    FollowError::Connection(format!("a message that is not JSON: {error}"))
                });
            }
            Message::Close(close) => {
                return Err(FollowError::Connection(format!(
                    "the WebSocket closed: {close:?}"
                )));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Mix;

    #[test]
    fn a_mix_names_known_steps_with_whole_weights() {
        let mix = Mix::parse("browse=60, order=30,cancel=5,return=5").expect("valid");
        assert_eq!(mix.to_string(), "browse=60,order=30,cancel=5,return=5");
        assert_eq!(
            Mix::parse("order=1").expect("valid").to_string(),
            "browse=0,order=1,cancel=0,return=0"
        );
        for (text, error) in [
            (
                "browse=1,buy=2",
                "no step \"buy\": the steps are browse, order, cancel and return",
            ),
            ("browse", "\"browse\" is not NAME=WEIGHT"),
            (
                "order=-1",
                "\"order=-1\": the weight must be a whole number",
            ),
            ("browse=0", "at least one step needs a weight above 0"),
        ] {
            assert_eq!(Mix::parse(text).expect_err(text), error);
        }
    }
}
