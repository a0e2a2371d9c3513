//! The real binary as an operator and a newcomer meet it: `--help`, bad configuration, `serve`
//! draining on SIGTERM, its access log when it is switched on, and `dev` starting from an empty
//! directory and again over its own data.

#[expect(
    dead_code,
    reason = "this test uses a part of the shared support module"
)]
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crowdcrunch_proto::customers::v1 as customers;
use crowdcrunch_proto::orders::v1 as orders;
use support::{Process, binary};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

#[test]
fn help_is_there_for_every_command() {
    for args in [&["--help"][..], &["serve", "--help"], &["dev", "--help"]] {
        let output = binary().args(args).output().expect("run --help");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{args:?}: {text}");
        assert!(text.contains("Usage"), "{args:?}: {text}");
    }
    let serve_help = binary()
        .args(["serve", "--help"])
        .output()
        .expect("run --help");
    assert!(String::from_utf8_lossy(&serve_help.stdout).contains("CROWDCRUNCH_DRAIN_GRACE"));
}

#[test]
fn bad_configuration_ends_with_one_clear_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to occupy");
    let taken_addr = taken.local_addr().expect("address").to_string();
    let data_dir = tempfile::tempdir().expect("temp dir");
    let data_dir = data_dir.path().to_str().expect("UTF-8 path").to_owned();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--listen", &taken_addr], "cannot listen on"),
        (
            vec!["--data-dir", "/proc/crowdcrunch"],
            "cannot use data dir /proc/crowdcrunch",
        ),
        (
            vec![
                "--tls-cert",
                "/nonexistent.pem",
                "--tls-key",
                "/nonexistent.key",
            ],
            "CROWDCRUNCH_TLS_CERT",
        ),
        (
            vec!["--tls-cert", "/nonexistent.pem"],
            "must be set together",
        ),
        (
            vec!["--database-url", "mysql://nope"],
            "CROWDCRUNCH_DATABASE_URL",
        ),
        (
            vec!["--page-token-key", "c2hvcnQ="],
            "CROWDCRUNCH_PAGE_TOKEN_KEY: the page-token key has 5 bytes, fewer than 32",
        ),
        (
            vec!["--concurrency-limit", "0"],
            "CROWDCRUNCH_CONCURRENCY_LIMIT",
        ),
    ];
    for (flags, expected) in cases {
        let mut command = binary();
        command
            .args(["serve", "customers", "--metrics-listen", "127.0.0.1:0"])
            .args(["--ledger-endpoints", "http://127.0.0.1:1"])
            .envs(support::auth_settings())
            .envs(support::page_token_key())
            .args(&flags);
        if !flags.contains(&"--data-dir") {
            command.args(["--data-dir", &data_dir]);
        }
        let output = command.output().expect("run serve");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{flags:?} succeeded");
        let lines: Vec<_> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{flags:?}: one line, got:\n{stderr}");
        assert!(lines[0].contains(expected), "{flags:?}: {stderr}");
        let causes: Vec<&str> = lines[0].split(": ").collect();
        assert!(
            causes.windows(2).all(|pair| pair[0] != pair[1]),
            "{flags:?}: a cause said twice: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{flags:?}: {stderr}");
    }
    drop(taken);
}

/// The one line on stderr of a run that must fail.
#[track_caller]
fn one_failing_line(command: &mut std::process::Command) -> String {
    let output = command.output().expect("run the binary");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "succeeded: {stderr}");
    assert!(output.stdout.is_empty(), "printed to stdout: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line, got:\n{stderr}");
    lines[0].to_owned()
}

#[test]
fn serve_without_auth_settings_and_token_without_a_key_say_so_in_one_line() {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let line = one_failing_line(
        binary()
            .args(["serve", "customers", "--metrics-listen", "127.0.0.1:0"])
            .args(["--ledger-endpoints", "http://127.0.0.1:1"])
            .arg("--data-dir")
            .arg(data_dir.path())
            .env_remove("CROWDCRUNCH_AUTH_ISSUER"),
    );
    assert!(
        line.contains("CROWDCRUNCH_AUTH_ISSUER must be set"),
        "{line}"
    );
    let line = one_failing_line(
        binary()
            .args(["token", "--staff", "bob", "--data-dir"])
            .arg(data_dir.path()),
    );
    assert!(line.contains("no signing key in"), "{line}");
}

/// A health Watch stream on `addr`, with its first status.
async fn watch_health(
    addr: SocketAddr,
) -> (
    tonic::Streaming<tonic_health::pb::HealthCheckResponse>,
    ServingStatus,
) {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("a URL")
        .connect()
        .await
        .expect("connect");
    let mut client = HealthClient::new(channel);
    let mut stream = client
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch")
        .into_inner();
    let first = stream
        .message()
        .await
        .expect("status")
        .expect("a first status");
    (stream, first.status())
}

/// `serve customers` on free ports over `data_dir`, verifying the test issuer's tokens. The
/// ledger is not running: the outbox keeps the events, serving is unaffected.
fn serve_customers(data_dir: &std::path::Path) -> std::process::Command {
    let mut command = binary();
    command
        .args([
            "serve",
            "customers",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--ledger-endpoints",
            "http://127.0.0.1:1",
            "--data-dir",
        ])
        .arg(data_dir)
        .envs(support::auth_settings())
        .envs(support::page_token_key());
    command
}

/// Pretty logs are coloured only on a terminal: written to a pipe (a container's log, a file),
/// they are plain text, without the escape codes that colour them.
#[test]
fn pretty_logs_to_a_pipe_are_plain_text() {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut process = Process::start({
        let mut command = serve_customers(data_dir.path());
        command.env("CROWDCRUNCH_LOG_FORMAT", "pretty");
        command
    });
    let line = process.wait_for_line("serving gRPC");
    process.terminate();
    let (status, lines) = process.wait();
    assert!(status.success());
    assert!(line.contains("local_addr="), "{line:?}");
    for line in &lines {
        assert!(!line.contains('\u{1b}'), "an escape code in {line:?}");
    }
}

/// The process runs without transparent huge pages, whose 2 MiB pages count whole in its memory
/// as soon as mimalloc touches a byte of them (recent kernels report it as `THP_enabled` in
/// `/proc/PID/status`; this machine's does).
#[test]
fn serve_runs_without_transparent_huge_pages() {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut process = Process::start(serve_customers(data_dir.path()));
    process.wait_for_grpc_addr("CustomerService");
    let status = std::fs::read_to_string(format!("/proc/{}/status", process.id()))
        .expect("the process's status");
    let thp = status
        .lines()
        .find_map(|line| line.strip_prefix("THP_enabled:"))
        .map(str::trim);
    process.terminate();
    assert!(process.wait().0.success());
    match thp {
        Some(enabled) => assert_eq!(enabled, "0", "transparent huge pages are on"),
        None => eprintln!("this kernel does not report THP_enabled; nothing to check"),
    }
}

#[tokio::test]
async fn serve_drains_on_sigterm_and_exits_zero_even_with_a_stream_open() {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut process = Process::start({
        let mut command = serve_customers(data_dir.path());
        command.args(["--drain-grace", "2s"]);
        command
    });
    let addr = process.wait_for_grpc_addr("CustomerService");
    let (mut watch, first) = watch_health(addr).await;
    assert_eq!(first, ServingStatus::Serving);

    process.terminate();
    let next = watch
        .message()
        .await
        .expect("status")
        .expect("a status on drain");
    assert_eq!(next.status(), ServingStatus::NotServing);
    // The watch stays open on purpose: the process must still exit, within its grace.
    let (status, output) = tokio::task::spawn_blocking(move || process.wait())
        .await
        .expect("wait");
    assert!(
        status.success(),
        "exit status {status:?}; output:\n{}",
        output.join("\n")
    );
    assert!(
        output.iter().any(|line| line.contains("draining")),
        "{}",
        output.join("\n")
    );
    drop(watch);
}

#[tokio::test]
async fn the_access_log_is_a_setting_with_one_line_per_call_in_its_trace() {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut process = Process::start({
        let mut command = serve_customers(data_dir.path());
        command.env("CROWDCRUNCH_ACCESS_LOG", "true");
        command
    });
    let addr = process.wait_for_grpc_addr("CustomerService");
    let anonymous = list_customers(addr, None).await;
    assert_eq!(
        anonymous.expect_err("no token").code(),
        tonic::Code::Unauthenticated
    );
    let line = process.wait_for_line("call finished");
    let line: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["code"], "UNAUTHENTICATED", "{line}");
    assert!(
        line["trace_id"].as_str().is_some_and(|id| id.len() == 32),
        "{line}"
    );
    assert!(line["duration_ms"].as_f64().is_some(), "{line}");

    // The edge's own: one line per GraphQL request.
    let mut edge = Process::start({
        let mut command = binary();
        command
            .args([
                "serve",
                "edge",
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
            ])
            .env("CROWDCRUNCH_ACCESS_LOG", "true")
            .envs(support::auth_settings());
        command
    });
    let serving = edge.wait_for_line("serving HTTP");
    let serving: serde_json::Value = serde_json::from_str(&serving).expect("a JSON line");
    let addr: SocketAddr = serving["local_addr"]
        .as_str()
        .expect("local_addr")
        .parse()
        .expect("an address");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let body = r#"{"query":"query Probe { __typename }"}"#;
    let request = format!(
        "POST /graphql HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .expect("send");
    let line = edge.wait_for_line("request finished");
    let line: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(line["operation"], "Probe", "{line}");
    assert_eq!(line["outcome"], "ok", "{line}");
    assert!(
        line["request_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{line}"
    );
}

/// `ListCustomers` on the customers service at `addr`, with `token` when there is one.
async fn list_customers(
    addr: SocketAddr,
    token: Option<&str>,
) -> Result<Vec<customers::Customer>, tonic::Status> {
    let url = format!("http://{addr}");
    let mut client = customers::customer_service_client::CustomerServiceClient::connect(url)
        .await
        .expect("connect to customers");
    let request = customers::ListCustomersRequest {
        page_size: 100,
        page_token: String::new(),
    };
    let request = match token {
        Some(token) => as_caller(request, token),
        None => tonic::Request::new(request),
    };
    Ok(client.list_customers(request).await?.into_inner().customers)
}

/// `request` with `token` as its bearer token.
fn as_caller<T>(request: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(request);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ASCII"),
    );
    request
}

/// Places an order of one demo mug for `customer_id`, calling with `token`; its id.
async fn place_order(addr: SocketAddr, token: &str, customer_id: &str) -> String {
    use crowdcrunch_proto::r#type::v1::{Address, PaymentCard};
    let mut client =
        orders::order_service_client::OrderServiceClient::connect(format!("http://{addr}"))
            .await
            .expect("connect to orders");
    let request = orders::PlaceOrderRequest {
        request_id: "process-test-order".into(),
        customer_id: customer_id.into(),
        lines: vec![orders::OrderLine {
            sku: "MUG-CERAMIC".into(),
            quantity: 1,
            ..Default::default()
        }],
        card: Some(PaymentCard {
            number: "4242424242424242".into(),
            exp_month: 12,
            exp_year: 2031,
            cvc: "123".into(),
        }),
        shipping_address: Some(Address {
            recipient: "Ada Lovelace".into(),
            line1: "12 St James's Square".into(),
            city: "London".into(),
            postal_code: "SW1Y 4JH".into(),
            country_code: "GB".into(),
            ..Default::default()
        }),
    };
    client
        .place_order(as_caller(request, token))
        .await
        .expect("the customer places their own order")
        .into_inner()
        .id
}

/// `GetOrder` of `id` on the orders service at `addr`, calling with `token`.
async fn get_order(
    addr: SocketAddr,
    token: &str,
    id: &str,
) -> Result<orders::Order, tonic::Status> {
    let mut client =
        orders::order_service_client::OrderServiceClient::connect(format!("http://{addr}"))
            .await
            .expect("connect to orders");
    let request = orders::GetOrderRequest { id: id.into() };
    Ok(client
        .get_order(as_caller(request, token))
        .await?
        .into_inner())
}

/// Customers listed (as staff) by the customers service at `addr`, once `count` of them exist.
async fn customers_when(
    addr: SocketAddr,
    data_dir: &std::path::Path,
    count: usize,
) -> Vec<customers::Customer> {
    let staff = support::token(data_dir, &["--staff", "process-test"]);
    let deadline = Instant::now() + support::PATIENCE;
    loop {
        let listed = list_customers(addr, Some(&staff))
            .await
            .expect("list customers");
        if listed.len() >= count || Instant::now() > deadline {
            return listed;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `crowdcrunch dev` with every server on a free port, so that tests run side by side.
fn dev(data_dir: &std::path::Path) -> Process {
    Process::start(support::dev(data_dir))
}

#[tokio::test]
async fn dev_starts_from_an_empty_dir_and_again_over_its_own_data() {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let data_dir = data_dir.path().join("fresh");

    let mut first = dev(&data_dir);
    let addr = first.wait_for_table_addr("customers");
    let orders_addr = first.wait_for_table_addr("orders");
    first.wait_for_line("demo data seeded");
    let seeded = customers_when(addr, &data_dir, 3).await;
    assert_eq!(seeded.len(), 3, "the demo customers");
    // A call straight to a service is judged as one through the edge.
    let anonymous = list_customers(addr, None).await.expect_err("no identity");
    assert_eq!(
        anonymous.code(),
        tonic::Code::Unauthenticated,
        "{anonymous:?}"
    );
    let customer = support::token(&data_dir, &["--customer", &seeded[0].id]);
    let forbidden = list_customers(addr, Some(&customer))
        .await
        .expect_err("a customer on a staff RPC");
    assert_eq!(
        forbidden.code(),
        tonic::Code::PermissionDenied,
        "{forbidden:?}"
    );
    // Customer B asking for customer A's order is answered as for an order that does not exist.
    let order = place_order(orders_addr, &customer, &seeded[0].id).await;
    let other = support::token(&data_dir, &["--customer", &seeded[1].id]);
    let hidden = get_order(orders_addr, &other, &order)
        .await
        .expect_err("another customer's order");
    assert_eq!(hidden.code(), tonic::Code::NotFound, "{hidden:?}");
    let unknown = "01a2aaaa-0000-7000-8000-000000000000";
    let missing = get_order(orders_addr, &other, unknown)
        .await
        .expect_err("an order that does not exist");
    assert_eq!(
        (hidden.code(), hidden.message().replace(&order, unknown)),
        (missing.code(), missing.message().to_owned()),
        "another's order answers exactly as a missing one"
    );
    get_order(orders_addr, &customer, &order)
        .await
        .expect("the owner reads their order");
    first.terminate();
    let (status, output) = tokio::task::spawn_blocking(move || first.wait())
        .await
        .expect("wait");
    assert!(status.success(), "{}", output.join("\n"));

    let mut second = dev(&data_dir);
    let addr = second.wait_for_table_addr("customers");
    let again = customers_when(addr, &data_dir, 3).await;
    assert_eq!(again, seeded, "the data survived and was not seeded again");
    second.terminate();
    let (status, output) = tokio::task::spawn_blocking(move || second.wait())
        .await
        .expect("wait");
    assert!(status.success(), "{}", output.join("\n"));
    assert!(
        !output.iter().any(|line| line.contains("demo data seeded")),
        "seeded again over existing data:\n{}",
        output.join("\n")
    );
}
