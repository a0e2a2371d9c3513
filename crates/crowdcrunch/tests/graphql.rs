//! The whole story through GraphQL, over real HTTP and WebSocket against `crowdcrunch dev` (every
//! service and the edge on free ports): customers and products are created, an order is placed
//! and read nested, its status changes arrive on a subscription while the shipment advances, a
//! return is received and refunded. And pages of orders and of customers with their orders cost
//! a small, fixed number of gRPC calls whatever their size, counted on the process's metrics.

#[expect(
    dead_code,
    reason = "this test uses a part of the shared support module"
)]
mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crowdcrunch_runtime::client::{Endpoints, ServiceToken};
use futures::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use serde_json::{Value, json};
use support::Process;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

/// `crowdcrunch dev` on free ports, and an HTTP client to its edge.
struct System {
    process: Process,
    data_dir: tempfile::TempDir,
    edge: SocketAddr,
    metrics: SocketAddr,
    payments: SocketAddr,
    /// `Bearer <token>` of a member of staff, who may do everything the story does.
    authorization: String,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
}

impl System {
    async fn start() -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let command = support::dev(data_dir.path());
        let mut process = Process::start(command);
        let payments = process.wait_for_table_addr("payments");
        let edge = process.wait_for_table_addr("edge");
        let metrics = process.wait_for_table_addr("metrics");
        process.wait_for_line("demo data seeded");
        let staff = support::token(data_dir.path(), &["--staff", "graphql-test"]);
        Self {
            process,
            data_dir,
            edge,
            metrics,
            payments,
            authorization: format!("Bearer {staff}"),
            client: hyper_util::client::legacy::Client::builder(
                hyper_util::rt::TokioExecutor::new(),
            )
            .build_http(),
        }
    }

    async fn http(&self, request: http::Request<Full<Bytes>>) -> (u16, Bytes) {
        let response = self
            .client
            .request(request)
            .await
            .expect("the edge answers");
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        (status, body)
    }

    /// A GraphQL request as staff; the JSON response.
    async fn graphql(&self, query: &str, variables: Value) -> Value {
        self.graphql_as(&self.authorization, query, variables).await
    }

    /// A GraphQL request with this `authorization`; the JSON response.
    async fn graphql_as(&self, authorization: &str, query: &str, variables: Value) -> Value {
        let body =
            serde_json::to_vec(&json!({"query": query, "variables": variables})).expect("json");
        let request = http::Request::post(format!("http://{}/graphql", self.edge))
            .header("content-type", "application/json")
            .header("accept", "application/graphql-response+json")
            .header("authorization", authorization)
            .body(Full::new(Bytes::from(body)))
            .expect("a request");
        let (status, body) = self.http(request).await;
        let json: Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(status, 200, "{json}");
        json
    }

    /// A GraphQL request that must succeed; its `data`.
    async fn data(&self, query: &str, variables: Value) -> Value {
        let response = self.graphql(query, variables).await;
        assert!(response["errors"].is_null(), "{response}");
        response["data"].clone()
    }

    /// The data of `query` with `$first` set, and the gRPC calls it cost the edge, by method.
    /// Waits first for the sagas and outbox relays to settle, so only the query is counted.
    async fn cost_of(&self, query: &str, first: i64) -> (Value, HashMap<String, u64>) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = self.grpc_calls().await;
        let data = self.data(query, json!({ "first": first })).await;
        let after = self.grpc_calls().await;
        let cost = after
            .into_iter()
            .filter_map(|(method, count)| {
                let spent = count - before.get(&method).copied().unwrap_or(0);
                (spent > 0).then_some((method, spent))
            })
            .collect();
        (data, cost)
    }

    /// The gRPC calls the edge made, by method, from the process's `/metrics`.
    async fn grpc_calls(&self) -> HashMap<String, u64> {
        let request = http::Request::get(format!("http://{}/metrics", self.metrics))
            .body(Full::new(Bytes::new()))
            .expect("a request");
        let (_, body) = self.http(request).await;
        let mut calls = HashMap::new();
        for line in String::from_utf8_lossy(&body).lines() {
            if !line.starts_with("edge_backend_calls_total{") {
                continue;
            }
            let method = line
                .split("rpc=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .and_then(|rpc| rpc.rsplit('.').next())
                .unwrap_or_else(|| panic!("{line}: a backend call metric names its rpc"))
                .to_owned();
            let count: u64 = line
                .rsplit(' ')
                .next()
                .and_then(|value| value.parse::<f64>().ok())
                .map_or(0, |value| value as u64);
            *calls.entry(method).or_default() += count;
        }
        calls
    }
}

const CREATE_CUSTOMER: &str =
    "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id email } }";
const CREATE_PRODUCT: &str = "mutation($input: CreateProductInput!) { createProduct(input: $input) { sku price { amount currencyCode minorUnits } stock { available } } }";
const PLACE_ORDER: &str = "mutation($input: PlaceOrderInput!) {
  placeOrder(input: $input) { id status failureReason total { amount currencyCode minorUnits } }
}";
const APPROVED: &str = "4242424242424242";
const DECLINED: &str = "4000000000000002";

/// Calls by method, as `System::cost_of` counts them.
fn calls(counts: &[(&str, u64)]) -> HashMap<String, u64> {
    counts
        .iter()
        .map(|(method, count)| ((*method).to_owned(), *count))
        .collect()
}

fn place_input(customer: &str, lines: &[(&str, i32)], card: &str) -> Value {
    json!({"input": {
        "customerId": customer,
        "lines": lines.iter().map(|(sku, quantity)| json!({"sku": sku, "quantity": quantity})).collect::<Vec<_>>(),
        "card": {"number": card, "expMonth": 12, "expYear": 2031, "cvc": "123"},
        "shippingAddress": {
            "recipient": "Ada Lovelace", "line1": "12 St James's Square", "city": "London",
            "postalCode": "SW1Y 4JH", "countryCode": "GB"
        }
    }})
}

async fn create_customer(system: &System, email: &str) -> String {
    let data = system
        .data(
            CREATE_CUSTOMER,
            json!({"input": {"customer": {"email": email, "displayName": "Ada"}}}),
        )
        .await;
    data["createCustomer"]["id"]
        .as_str()
        .expect("an id")
        .to_owned()
}

async fn create_product(system: &System, sku: &str, cents: i64, stock: i32) -> Value {
    let data = system
        .data(
            CREATE_PRODUCT,
            json!({"input": {
                "product": {"sku": sku, "title": format!("Product {sku}"), "active": true,
                            "price": {"currencyCode": "USD", "minorUnits": cents}},
                "initialStock": stock
            }}),
        )
        .await;
    data["createProduct"].clone()
}

/// Waits (bounded) until `order(id)` is in `status`.
async fn order_in(system: &System, id: &str, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let data = system
            .data(
                "query($id: ID!) { order(id: $id) { status } }",
                json!({"id": id}),
            )
            .await;
        if data["order"]["status"] == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "order {id} never became {status}: {data}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn subscribe(system: &System, query: &str, variables: Value) -> Socket {
    subscribe_as(system, &system.authorization, query, variables).await
}

async fn subscribe_as(
    system: &System,
    authorization: &str,
    query: &str,
    variables: Value,
) -> Socket {
    let mut request = format!("ws://{}/graphql", system.edge)
        .into_client_request()
        .expect("a request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        http::HeaderValue::from_static("graphql-transport-ws"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgrade");
    socket
        .send(Message::text(
            json!({"type": "connection_init", "payload": {"authorization": authorization}})
                .to_string(),
        ))
        .await
        .expect("send");
    assert_eq!(receive(&mut socket).await["type"], "connection_ack");
    socket
        .send(Message::text(
            json!({"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}})
                .to_string(),
        ))
        .await
        .expect("send");
    socket
}

async fn receive(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .expect("a message within 30s")
            .expect("an open socket")
            .expect("a frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).expect("JSON");
        }
    }
}

#[tokio::test]
async fn the_whole_story_through_graphql() {
    let system = System::start().await;
    let customer = create_customer(&system, "story@example.com").await;
    let shirt = create_product(&system, "STORY-SHIRT", 1999, 10).await;
    assert_eq!(
        shirt,
        json!({"sku": "STORY-SHIRT", "price": {"amount": "19.99", "currencyCode": "USD", "minorUnits": "1999"},
               "stock": {"available": 10}})
    );
    create_product(&system, "STORY-MUG", 850, 5).await;

    let placed = system
        .data(
            PLACE_ORDER,
            place_input(&customer, &[("STORY-SHIRT", 2), ("STORY-MUG", 1)], APPROVED),
        )
        .await;
    let order = placed["placeOrder"]["id"]
        .as_str()
        .expect("an order id")
        .to_owned();
    assert_eq!(placed["placeOrder"]["total"]["amount"], "48.48");
    order_in(&system, &order, "CONFIRMED").await;

    // Nested: the order, its customer, lines with products, payments, shipments and events.
    let nested = system
        .data(
            "query($id: ID!) { order(id: $id) {
               status total { amount }
               customer { email }
               lines { sku quantity unitPrice { amount } lineTotal { amount } product { title stock { available } } }
               payments { status amount { amount } }
               shipments { id status }
               events(first: 50) { edges { cursor node { type source } } pageInfo { hasNextPage } }
             } }",
            json!({"id": order}),
        )
        .await;
    let read = &nested["order"];
    assert_eq!(read["customer"]["email"], "story@example.com");
    assert_eq!(read["lines"][0]["product"]["title"], "Product STORY-SHIRT");
    assert_eq!(read["lines"][0]["lineTotal"]["amount"], "39.98");
    assert_eq!(read["lines"][0]["product"]["stock"]["available"], 8);
    assert_eq!(read["payments"][0]["status"], "CAPTURED", "{read}");
    assert_eq!(read["payments"][0]["amount"]["amount"], "48.48");
    let shipment = read["shipments"][0]["id"]
        .as_str()
        .expect("a shipment")
        .to_owned();
    let events: Vec<&str> = read["events"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .filter_map(|edge| edge["node"]["type"].as_str())
        .collect();
    assert!(events.contains(&"OrderPlaced"), "{events:?}");

    // Every status change arrives while the shipment advances.
    let mut socket = subscribe(
        &system,
        "subscription($id: ID!) { orderUpdated(id: $id) { status } }",
        json!({"id": order}),
    )
    .await;
    let first = receive(&mut socket).await;
    assert_eq!(
        first["payload"]["data"]["orderUpdated"]["status"], "CONFIRMED",
        "{first}"
    );
    for (status, tracking) in [
        ("PACKED", ""),
        ("SHIPPED", "1Z999AA10123456784"),
        ("DELIVERED", ""),
    ] {
        let moved = system
            .data(
                "mutation($input: UpdateShipmentStatusInput!) { updateShipmentStatus(input: $input) { status trackingNumber } }",
                json!({"input": {"id": shipment, "status": status, "trackingNumber": tracking}}),
            )
            .await;
        assert_eq!(moved["updateShipmentStatus"]["status"], status);
    }
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("DELIVERED") {
        let next = receive(&mut socket).await;
        assert_eq!(next["type"], "next", "{next}");
        seen.push(
            next["payload"]["data"]["orderUpdated"]["status"]
                .as_str()
                .expect("a status")
                .to_owned(),
        );
    }
    assert_eq!(seen, ["SHIPPED", "DELIVERED"]);
    drop(socket);

    // A return, received and refunded.
    let requested = system
        .data(
            "mutation($input: RequestReturnInput!) { requestReturn(input: $input) { id status refundAmount { amount } order { id } } }",
            json!({"input": {"orderId": order, "kind": "RETURN", "reason": "wrong size",
                             "lines": [{"sku": "STORY-MUG", "quantity": 1}]}}),
        )
        .await;
    let return_id = requested["requestReturn"]["id"]
        .as_str()
        .expect("a return")
        .to_owned();
    assert_eq!(requested["requestReturn"]["refundAmount"]["amount"], "8.50");
    assert_eq!(requested["requestReturn"]["order"]["id"], order.as_str());
    for mutation in ["approveReturn", "receiveReturn"] {
        let input = format!("{}{}Input", mutation[..1].to_uppercase(), &mutation[1..]);
        system
            .data(
                &format!("mutation($input: {input}!) {{ {mutation}(input: $input) {{ status }} }}"),
                json!({"input": {"id": return_id}}),
            )
            .await;
    }
    let refunded = system
        .data(
            "query($id: ID!) { returnRequest(id: $id) { status refundPaymentId
               order { payments { status refunded { amount } } returns { status } } } }",
            json!({"id": return_id}),
        )
        .await;
    let returned = &refunded["returnRequest"];
    assert_eq!(returned["status"], "RECEIVED", "{returned}");
    assert_eq!(returned["order"]["returns"][0]["status"], "RECEIVED");
    assert_eq!(
        returned["order"]["payments"][0]["status"],
        "PARTIALLY_REFUNDED"
    );
    assert_eq!(
        returned["order"]["payments"][0]["refunded"]["amount"],
        "8.50"
    );

    // Business outcomes are statuses; bad input is BAD_USER_INPUT.
    let declined = system
        .data(
            PLACE_ORDER,
            place_input(&customer, &[("STORY-SHIRT", 1)], DECLINED),
        )
        .await;
    let declined_id = declined["placeOrder"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    order_in(&system, &declined_id, "PAYMENT_DECLINED").await;
    let short = system
        .data(
            PLACE_ORDER,
            place_input(&customer, &[("STORY-MUG", 500)], APPROVED),
        )
        .await;
    let short_id = short["placeOrder"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    order_in(&system, &short_id, "REJECTED").await;
    let bad = system
        .graphql(
            PLACE_ORDER,
            place_input(&customer, &[("STORY-MUG", 0)], APPROVED),
        )
        .await;
    assert_eq!(
        bad["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{bad}"
    );
    assert!(
        bad["errors"][0]["extensions"]["fieldViolations"][0]["path"][0] == "input",
        "{bad}"
    );

    system.process.terminate();
}

#[tokio::test]
async fn joins_cost_a_fixed_number_of_calls_whatever_the_page_size() {
    let system = System::start().await;
    let mut skus = Vec::new();
    for n in 0..5 {
        let sku = format!("NPLUS1-{n}");
        create_product(&system, &sku, 100 + n, 1000).await;
        skus.push(sku);
    }
    let mut last = String::new();
    for n in 0..50 {
        let customer = create_customer(&system, &format!("nplus1-{n}@example.com")).await;
        let lines = [(skus[n % 5].as_str(), 1), (skus[(n + 1) % 5].as_str(), 2)];
        let placed = system
            .data(PLACE_ORDER, place_input(&customer, &lines, APPROVED))
            .await;
        last = placed["placeOrder"]["id"]
            .as_str()
            .expect("an id")
            .to_owned();
    }
    order_in(&system, &last, "CONFIRMED").await;
    let orders = "query($first: Int) { orders(first: $first) { edges { node {
        id status customer { email }
        lines { quantity product { title price { amount } } }
        payments { status amount { amount } }
        events(first: 2) { edges { node { type subject } } pageInfo { hasNextPage } }
    } } } }";
    for first in [5, 50] {
        let (data, cost) = system.cost_of(orders, first).await;
        let edges = data["orders"]["edges"].as_array().expect("edges");
        assert_eq!(edges.len(), usize::try_from(first).expect("small"));
        let mut events_seen = 0;
        for edge in edges {
            let order = &edge["node"];
            assert!(order["customer"]["email"].is_string(), "{order}");
            // The ledger receives events through the outbox relays: some may still be on the way.
            let events = order["events"]["edges"].as_array().expect("events");
            assert!(events.len() <= 2, "{order}");
            assert!(
                events
                    .iter()
                    .all(|event| event["node"]["subject"] == order["id"])
            );
            events_seen += events.len();
        }
        assert!(events_seen > 0, "{data}");
        let expected = calls(&[
            ("ListOrders", 1),
            ("BatchGetCustomers", 1),
            ("BatchGetProducts", 1),
            ("ListPayments", 1),
            ("BatchListEvents", 1),
        ]);
        assert_eq!(cost, expected, "the calls of {first} orders");
    }
    // Customers with their orders: the first page of every customer's orders comes from one
    // BatchListOrders, and the joins of those orders (reached through a join) in one batch each.
    let customers = "query($first: Int) { customers(first: $first) { edges { node {
        email
        orders(first: 2) { edges { node { id status payments { status } customer { email } } } }
    } } } }";
    for first in [5, 50] {
        let (data, cost) = system.cost_of(customers, first).await;
        let edges = data["customers"]["edges"].as_array().expect("edges");
        assert_eq!(edges.len(), usize::try_from(first).expect("small"));
        let orders: Vec<&Value> = edges
            .iter()
            .flat_map(|edge| {
                edge["node"]["orders"]["edges"]
                    .as_array()
                    .expect("orders")
                    .iter()
            })
            .collect();
        assert!(!orders.is_empty(), "{data}");
        for edge in &edges[..] {
            for order in edge["node"]["orders"]["edges"].as_array().expect("orders") {
                assert_eq!(
                    order["node"]["customer"]["email"], edge["node"]["email"],
                    "an order's customer is the customer listing it"
                );
                assert_eq!(
                    order["node"]["payments"][0]["status"], "CAPTURED",
                    "{order}"
                );
            }
        }
        let expected = calls(&[
            ("ListCustomers", 1),
            ("BatchListOrders", 1),
            ("BatchGetCustomers", 1),
            ("ListPayments", 1),
        ]);
        assert_eq!(
            cost, expected,
            "the calls of {first} customers with their orders"
        );
    }
    system.process.terminate();
}

#[tokio::test]
async fn a_dangling_reference_fails_only_its_own_field() {
    use crowdcrunch_proto::payments::v1 as payments;
    let system = System::start().await;
    let customer = create_customer(&system, "dangling@example.com").await;
    create_product(&system, "DANGLING-CUP", 900, 10).await;
    let placed = system
        .data(
            PLACE_ORDER,
            place_input(&customer, &[("DANGLING-CUP", 1)], APPROVED),
        )
        .await;
    let order = placed["placeOrder"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    order_in(&system, &order, "CONFIRMED").await;
    let paid = system
        .data(
            "query($id: ID!) { order(id: $id) { payments { id } } }",
            json!({ "id": order }),
        )
        .await;
    let paid = paid["order"]["payments"][0]["id"]
        .as_str()
        .expect("a payment")
        .to_owned();

    // A payment for an order that does not exist, made behind the edge's back.
    // As the only service payments admits there: orders.
    let orders_token = support::token(system.data_dir.path(), &["--service", "orders"]);
    let endpoints = Endpoints::parse(&format!("http://{}", system.payments)).expect("a URL");
    let channel = crowdcrunch_runtime::client::channel(&endpoints, None)
        .expect("a channel to payments")
        .carrying(ServiceToken::new(&orders_token).expect("a token"));
    let mut client = payments::payment_service_client::PaymentServiceClient::new(channel);
    let token = client
        .tokenize_card(payments::TokenizeCardRequest {
            card: Some(crowdcrunch_proto::r#type::v1::PaymentCard {
                number: APPROVED.into(),
                exp_month: 12,
                exp_year: 2099,
                cvc: "123".into(),
            }),
            request_id: String::new(),
        })
        .await
        .expect("tokenize")
        .into_inner();
    let dangling = client
        .authorize_payment(payments::AuthorizePaymentRequest {
            request_id: String::new(),
            order_id: "no-such-order".into(),
            customer_id: "no-such-customer".into(),
            amount: Some(crowdcrunch_proto::r#type::v1::Money {
                currency_code: "USD".into(),
                minor_units: 100,
            }),
            card_token: token.token,
        })
        .await
        .expect("authorize")
        .into_inner();

    // Both payments' orders are asked for in one batch: the unknown one fails alone.
    let response = system
        .graphql(
            "query($paid: ID!, $dangling: ID!) {
                paid: payment(id: $paid) { id order { id } }
                dangling: payment(id: $dangling) { id order { id } }
            }",
            json!({ "paid": paid, "dangling": dangling.id }),
        )
        .await;
    assert_eq!(
        response["data"]["paid"]["order"]["id"],
        json!(order),
        "{response}"
    );
    assert_eq!(
        response["data"]["dangling"]["id"],
        json!(dangling.id),
        "{response}"
    );
    assert_eq!(
        response["data"]["dangling"]["order"],
        Value::Null,
        "{response}"
    );
    let errors = response["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{response}");
    assert_eq!(errors[0]["path"], json!(["dangling", "order"]));
    assert_eq!(errors[0]["extensions"]["code"], "NOT_FOUND");
    system.process.terminate();
}

/// The ids in `data[field].edges[].node.id`.
fn node_ids(data: &Value, field: &str) -> Vec<String> {
    data[field]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{field} is a connection: {data}"))
        .iter()
        .map(|edge| edge["node"]["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// The error code and message of a response's only error, with `id` blanked out.
fn sole_error(response: &Value, id: &str) -> (Value, String) {
    let errors = response["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{response}");
    let message = errors[0]["message"].as_str().expect("a message");
    (
        errors[0]["extensions"]["code"].clone(),
        message.replace(id, "<id>"),
    )
}

#[tokio::test]
async fn a_customer_sees_only_their_own_through_every_path() {
    let system = System::start().await;
    create_product(&system, "ISO-SHIRT", 1500, 10).await;
    let mut customers = Vec::new();
    for email in ["iso-a@example.com", "iso-b@example.com"] {
        let id = create_customer(&system, email).await;
        let token = support::token(system.data_dir.path(), &["--customer", &id]);
        customers.push((id, format!("Bearer {token}")));
    }
    let [(a, as_a), (b, as_b)] = <[_; 2]>::try_from(customers).expect("two customers");

    // Each places an order as themselves; placing one for the other is what an unknown
    // customer gets.
    let mut orders = Vec::new();
    for (customer, authorization) in [(&a, &as_a), (&b, &as_b)] {
        let placed = system
            .graphql_as(
                authorization,
                PLACE_ORDER,
                place_input(customer, &[("ISO-SHIRT", 1)], APPROVED),
            )
            .await;
        let id = placed["data"]["placeOrder"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{placed}"))
            .to_owned();
        order_in(&system, &id, "CONFIRMED").await;
        orders.push(id);
    }
    let (a_order, b_order) = (&orders[0], &orders[1]);
    let for_a = system
        .graphql_as(
            &as_b,
            PLACE_ORDER,
            place_input(&a, &[("ISO-SHIRT", 1)], APPROVED),
        )
        .await;
    let for_nobody = system
        .graphql_as(
            &as_b,
            PLACE_ORDER,
            place_input(
                "0190b6e2-0000-7000-8000-000000000000",
                &[("ISO-SHIRT", 1)],
                APPROVED,
            ),
        )
        .await;
    assert!(for_a["data"]["placeOrder"].is_null(), "{for_a}");
    assert_eq!(
        sole_error(&for_a, &a),
        sole_error(&for_nobody, "0190b6e2-0000-7000-8000-000000000000"),
        "an order for another customer is answered as one for no customer"
    );

    // Lists, and every nested join, hold only B's.
    let listed = system
        .graphql_as(
            &as_b,
            "{ orders(first: 50) { edges { node { id customer { id }
                 payments { customerId } shipments { customerId }
                 events(first: 50) { edges { node { customerId } } } } } }
               payments(first: 50) { edges { node { id customerId } } }
               shipments(first: 50) { edges { node { id customerId } } } }",
            json!({}),
        )
        .await;
    assert!(listed["errors"].is_null(), "{listed}");
    let data = &listed["data"];
    assert_eq!(
        node_ids(data, "orders"),
        std::slice::from_ref(b_order),
        "{data}"
    );
    let order = &data["orders"]["edges"][0]["node"];
    assert_eq!(order["customer"]["id"], b.as_str());
    for join in ["payments", "shipments"] {
        let owners: Vec<_> = order[join].as_array().expect("a list").iter().collect();
        assert!(!owners.is_empty(), "{join}: {order}");
        assert!(
            owners.iter().all(|item| item["customerId"] == b.as_str()),
            "{order}"
        );
    }
    let events = order["events"]["edges"].as_array().expect("events");
    assert!(!events.is_empty(), "{order}");
    assert!(
        events
            .iter()
            .all(|edge| edge["node"]["customerId"] == b.as_str()),
        "{order}"
    );
    for list in ["payments", "shipments"] {
        let nodes = data[list]["edges"].as_array().expect("a connection");
        assert!(!nodes.is_empty(), "{list}: {data}");
        assert!(
            nodes
                .iter()
                .all(|edge| edge["node"]["customerId"] == b.as_str()),
            "{list}: {data}"
        );
    }

    // A's order and A's record are answered exactly as ones that do not exist.
    let unknown = "0190b6e2-ffff-7fff-bfff-ffffffffffff";
    for (query, id) in [
        (
            "query($id: ID!) { order(id: $id) { id } }",
            a_order.as_str(),
        ),
        ("query($id: ID!) { customer(id: $id) { id } }", a.as_str()),
    ] {
        let theirs = system.graphql_as(&as_b, query, json!({"id": id})).await;
        let nobodys = system
            .graphql_as(&as_b, query, json!({"id": unknown}))
            .await;
        assert_eq!(theirs["data"], nobodys["data"], "{theirs}");
        assert_eq!(sole_error(&theirs, id), sole_error(&nobodys, unknown));
    }

    // Subscriptions: A's order cannot be followed by B, and B's replay of the ledger holds
    // only events about B, also ones appended after A's while B watches.
    let mut follow = subscribe_as(
        &system,
        &as_b,
        "subscription($id: ID!) { orderUpdated(id: $id) { status } }",
        json!({"id": a_order}),
    )
    .await;
    let refused = receive(&mut follow).await;
    assert_eq!(refused["type"], "next", "{refused}");
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{refused}"
    );
    let mut watch = subscribe_as(
        &system,
        &as_b,
        "subscription { events(afterSequence: 0) { type customerId subject } }",
        json!({}),
    )
    .await;
    let rename = "mutation($input: UpdateCustomerInput!) { updateCustomer(input: $input) { id } }";
    for (customer, authorization, name) in [(&a, &as_a, "A, renamed"), (&b, &as_b, "B, renamed")] {
        let renamed = system
            .graphql_as(
                authorization,
                rename,
                json!({"input": {"customer": {"id": customer, "displayName": name}}}),
            )
            .await;
        assert!(renamed["errors"].is_null(), "{renamed}");
    }
    loop {
        let event = receive(&mut watch).await;
        let event = &event["payload"]["data"]["events"];
        assert_eq!(
            event["customerId"],
            b.as_str(),
            "B saw an event not about B: {event}"
        );
        if event["type"] == "CustomerUpdated" {
            break;
        }
    }
}
