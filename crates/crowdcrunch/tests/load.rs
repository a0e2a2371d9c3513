//! `crowdcrunch load` against `crowdcrunch dev`, both as real processes over real HTTP and
//! WebSocket: a templated `placeOrder` sent with `-H` headers creates one order per request, each
//! with its own request id and counter; and the shop scenario reports every operation and orders
//! reaching CONFIRMED. No timing is asserted.

#[expect(
    dead_code,
    reason = "this test uses a part of the shared support module"
)]
mod support;

use std::collections::HashSet;
use std::net::SocketAddr;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use serde_json::{Value, json};
use support::{Process, binary};

/// `crowdcrunch dev` on free ports.
struct Dev {
    _process: Process,
    data_dir: tempfile::TempDir,
    edge: SocketAddr,
    customers: SocketAddr,
}

impl Dev {
    fn start() -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut process = Process::start(support::dev(data_dir.path()));
        let customers = process.wait_for_table_addr("customers");
        let edge = process.wait_for_table_addr("edge");
        process.wait_for_line("demo data seeded");
        Self {
            _process: process,
            data_dir,
            edge,
            customers,
        }
    }

    fn graphql_url(&self) -> String {
        format!("http://{}/graphql", self.edge)
    }

    /// A GraphQL request as `authorization` that must succeed; its `data`.
    async fn data(&self, authorization: &str, query: &str, variables: Value) -> Value {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        let body = json!({"query": query, "variables": variables}).to_string();
        let request = http::Request::post(self.graphql_url())
            .header("content-type", "application/json")
            .header("authorization", authorization)
            .body(Full::new(Bytes::from(body)))
            .expect("a request");
        let response = client.request(request).await.expect("the edge answers");
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        let answer: Value = serde_json::from_slice(&body).expect("JSON");
        assert!(answer["errors"].is_null(), "{answer}");
        answer["data"].clone()
    }
}

/// Runs `crowdcrunch load` with `args` to its end; its report (stdout and stderr lines).
async fn load(args: Vec<String>) -> Vec<String> {
    let mut command = binary();
    command.arg("load").args(&args);
    let process = Process::start(command);
    let (status, output) = tokio::task::spawn_blocking(move || process.wait())
        .await
        .expect("wait for crowdcrunch load");
    assert!(
        status.success(),
        "crowdcrunch load {args:?} failed:\n{}",
        output.join("\n")
    );
    output
}

/// The numbers after `label` on the report line that starts with it.
fn numbers_after(report: &[String], label: &str) -> Vec<f64> {
    let line = report
        .iter()
        .find_map(|line| line.trim().strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} line in the report:\n{}", report.join("\n")));
    line.split(|c: char| c.is_whitespace() || c == '(')
        .map(|word| word.trim_end_matches([',', ')']).trim_end_matches("/s"))
        .map_while(|word| {
            if word.is_empty() {
                Some(None)
            } else {
                word.parse::<f64>().ok().map(Some)
            }
        })
        .flatten()
        .collect()
}

const PLACE_ORDER: &str =
    "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id status } }";

#[tokio::test]
async fn a_templated_mutation_with_headers_places_one_order_per_request() {
    let dev = Dev::start();
    let staff = format!(
        "Bearer {}",
        support::token(dev.data_dir.path(), &["--staff", "load-test"])
    );
    let created = dev
        .data(
            &staff,
            "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }",
            json!({"input": {"customer": {"email": "load@example.com"}}}),
        )
        .await;
    let customer = created["createCustomer"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let as_customer = format!(
        "Bearer {}",
        support::token(dev.data_dir.path(), &["--customer", &customer])
    );
    let skus = dev.data_dir.path().join("skus.txt");
    std::fs::write(&skus, "MUG-CERAMIC\n\nPEN-SET\n").expect("write the SKU file");

    let variables = json!({"input": {
        "requestId": "load-test-{{uuid}}",
        "customerId": customer,
        "lines": [{"sku": format!("{{{{file:{}}}}}", skus.display()), "quantity": 1}],
        "card": {"number": "{{pick:4242424242424242,5555555555554444}}", "expMonth": 12,
                 "expYear": 2031, "cvc": "123"},
        "shippingAddress": {"recipient": "Shopper {{counter}}", "line1": "1 Main St",
                            "city": "London", "countryCode": "GB"},
    }});
    let requests = 40;
    let report = load(vec![
        dev.graphql_url(),
        "-c".into(),
        "4".into(),
        "-n".into(),
        requests.to_string(),
        "-H".into(),
        format!("authorization: {as_customer}"),
        "-H".into(),
        "x-load-test: templated".into(),
        "--query".into(),
        PLACE_ORDER.into(),
        "--variables".into(),
        variables.to_string(),
    ])
    .await;
    assert_eq!(
        numbers_after(&report, "requests")[0],
        f64::from(requests),
        "{report:#?}"
    );
    assert_eq!(numbers_after(&report, "errors"), [0.0], "{report:#?}");

    // Each request placed its own order (a repeated request id would have answered the first
    // order again), each with its own counter value and one of the file's SKUs.
    let orders = dev
        .data(
            &as_customer,
            "query($id: ID!) { customer(id: $id) { orders(first: 100) { edges { node {
                id shippingAddress { recipient } lines { sku } } } } } }",
            json!({"id": customer}),
        )
        .await;
    let orders = orders["customer"]["orders"]["edges"]
        .as_array()
        .expect("a page of orders")
        .clone();
    assert_eq!(orders.len(), 40, "{orders:#?}");
    let recipients: HashSet<String> = orders
        .iter()
        .map(|edge| {
            edge["node"]["shippingAddress"]["recipient"]
                .as_str()
                .expect("a recipient")
                .to_owned()
        })
        .collect();
    let expected: HashSet<String> = (1..=requests).map(|n| format!("Shopper {n}")).collect();
    assert_eq!(recipients, expected);
    assert!(
        orders.iter().all(|edge| {
            ["MUG-CERAMIC", "PEN-SET"]
                .contains(&edge["node"]["lines"][0]["sku"].as_str().unwrap_or(""))
        }),
        "{orders:#?}"
    );

    // gRPC alike: the customer's token as metadata, the id picked by a placeholder; without the
    // header every call would be UNAUTHENTICATED.
    let report = load(vec![
        format!("http://{}", dev.customers),
        "-c".into(),
        "2".into(),
        "-n".into(),
        "10".into(),
        "-H".into(),
        format!("authorization: {as_customer}"),
        "--grpc-method".into(),
        "crowdcrunch.customers.v1.CustomerService/GetCustomer".into(),
        "--data".into(),
        json!({"id": format!("{{{{pick:{customer}}}}}")}).to_string(),
    ])
    .await;
    assert_eq!(numbers_after(&report, "requests")[0], 10.0, "{report:#?}");
    assert_eq!(numbers_after(&report, "errors"), [0.0], "{report:#?}");
}

#[test]
fn a_bad_placeholder_is_refused_before_any_request() {
    let mut command = binary();
    command.args([
        "load",
        "http://127.0.0.1:1/graphql",
        "-n",
        "1",
        "--query",
        PLACE_ORDER,
        "--variables",
        r#"{"input": {"requestId": "{{uuid"}}"#,
    ]);
    let (status, output) = Process::start(command).wait();
    assert!(!status.success(), "{output:#?}");
    assert!(
        output
            .iter()
            .any(|line| line.contains("--variables has a bad placeholder")
                && line.contains("a `{{` without its `}}`")),
        "{output:#?}"
    );
}

#[tokio::test]
async fn the_shop_scenario_reports_every_operation_and_confirmed_orders() {
    let dev = Dev::start();
    let report = load(vec![
        dev.graphql_url(),
        "--scenario".into(),
        "shop".into(),
        "--shoppers".into(),
        "4".into(),
        "-d".into(),
        "5s".into(),
        "--mix".into(),
        "browse=20,order=30,cancel=25,return=25".into(),
        "--data-dir".into(),
        dev.data_dir.path().display().to_string(),
        "-H".into(),
        "x-load-test: shop".into(),
    ])
    .await;
    for operation in ["browse", "place", "follow", "cancel", "ship", "return"] {
        let [requests, rate, errors] = numbers_after(&report, operation)[..3] else {
            panic!("{operation}: no requests, req/s and errors:\n{report:#?}");
        };
        assert!(requests > 0.0 && rate > 0.0, "{operation}: {report:#?}");
        assert_eq!(errors, 0.0, "{operation}: {report:#?}");
    }
    let confirmed = numbers_after(&report, "orders to CONFIRMED");
    assert!(
        confirmed[0] > 0.0 && confirmed[1] > 0.0,
        "orders/s to CONFIRMED: {report:#?}"
    );
    assert!(
        report
            .iter()
            .any(|line| line.contains("orders CONFIRMED (")),
        "a progress line while it runs: {report:#?}"
    );
}
