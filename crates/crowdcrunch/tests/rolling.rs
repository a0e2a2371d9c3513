//! A rolling upgrade as Kubernetes does it, proven on loopback without a cluster.
//!
//! The edge and two customers instances run as real `crowdcrunch serve` processes. Between them
//! stands what a Kubernetes Service is to a client: one address whose new connections go to the
//! ready endpoints only (a small TCP proxy here, kube-proxy in a cluster). While `crowdcrunch load`
//! keeps GraphQL queries running through the edge, each instance is replaced the Kubernetes way:
//! start the new one, wait until it is ready, withdraw the old one from the endpoints (the
//! `preStop` pause), SIGTERM it. Not one request may fail.

#[expect(
    dead_code,
    reason = "this test uses a part of the shared support module"
)]
mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crowdcrunch_proto::customers::v1 as customers;
use crowdcrunch_runtime::auth::Grant;
use crowdcrunch_runtime::testing::{reserved_addr, token};
use support::{Process, binary};
use tokio::net::{TcpListener, TcpStream};

/// The ready endpoints behind one stable address, like a Kubernetes Service.
#[derive(Clone, Default)]
struct Endpoints(Arc<Mutex<Vec<SocketAddr>>>);

impl Endpoints {
    fn set(&self, endpoints: Vec<SocketAddr>) {
        *self.0.lock().expect("endpoints lock") = endpoints;
    }

    fn pick(&self, n: usize) -> Option<SocketAddr> {
        let endpoints = self.0.lock().expect("endpoints lock");
        (!endpoints.is_empty()).then(|| endpoints[n % endpoints.len()])
    }
}

/// Forwards each new connection on `listener` to one of `endpoints`, round robin.
async fn service_proxy(listener: TcpListener, endpoints: Endpoints) {
    let mut n = 0;
    while let Ok((mut inbound, _)) = listener.accept().await {
        n += 1;
        let Some(target) = endpoints.pick(n) else {
            continue;
        };
        tokio::spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

fn customers_instance(addr: SocketAddr, data_dir: &std::path::Path) -> Process {
    let mut command = binary();
    command.args(["serve", "customers", "--listen", &addr.to_string()]);
    command.args(["--metrics-listen", "127.0.0.1:0", "--drain-grace", "5s"]);
    // No ledger here: the outbox keeps the events; serving is unaffected.
    command
        .args(["--ledger-endpoints", "http://127.0.0.1:1", "--data-dir"])
        .arg(data_dir)
        .envs(support::auth_settings())
        .envs(support::page_token_key());
    let mut process = Process::start(command);
    process.wait_for_line("serving gRPC");
    process
}

/// SIGTERMs `process` and waits for its exit, which must be clean.
async fn terminate(process: Process) {
    process.terminate();
    let (status, output) = tokio::task::spawn_blocking(move || process.wait())
        .await
        .expect("wait");
    assert!(
        status.success(),
        "an old instance did not exit 0:\n{}",
        output.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_every_instance_under_load_fails_no_request() {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let (old_a, old_b, new_a, new_b) = (
        reserved_addr(),
        reserved_addr(),
        reserved_addr(),
        reserved_addr(),
    );
    let first = customers_instance(old_a, data_dir.path());
    let second = customers_instance(old_b, data_dir.path());

    let endpoints = Endpoints::default();
    endpoints.set(vec![old_a, old_b]);
    let proxy = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the service address");
    let service_addr = proxy.local_addr().expect("address");
    tokio::spawn(service_proxy(proxy, endpoints.clone()));

    // The load runs as staff, who may list the customers.
    let staff = token(&Grant::Staff("rolling-test".to_owned()));
    let token_file = data_dir.path().join("staff.token");
    std::fs::write(&token_file, &staff).expect("write the token");
    let mut client = customers::customer_service_client::CustomerServiceClient::connect(format!(
        "http://{service_addr}"
    ))
    .await
    .expect("connect through the service address");
    let mut create = tonic::Request::new(customers::CreateCustomerRequest {
        customer: Some(customers::Customer {
            email: "rolling@example.com".into(),
            ..Default::default()
        }),
        request_id: "rolling".into(),
    });
    create.metadata_mut().insert(
        "authorization",
        format!("Bearer {staff}").parse().expect("ASCII"),
    );
    client
        .create_customer(create)
        .await
        .expect("create a customer");

    let edge_addr = reserved_addr();
    let mut edge = {
        let mut command = binary();
        command.args([
            "serve",
            "edge",
            "--listen",
            &edge_addr.to_string(),
            "--metrics-listen",
            "127.0.0.1:0",
        ]);
        command.args(["--customers-endpoints", &format!("http://{service_addr}")]);
        command.envs(support::auth_settings());
        Process::start(command)
    };
    edge.wait_for_line("serving HTTP");

    let load = {
        let mut command = binary();
        command.args([
            "load",
            &format!("http://{edge_addr}/graphql"),
            "-c",
            "8",
            "-d",
            "12s",
        ]);
        command.arg("--token-file").arg(&token_file);
        command.args([
            "--query",
            "{ customers(first: 5) { edges { node { id email displayName } } } }",
        ]);
        Process::start(command)
    };
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Replace each old instance: new one up and ready, old one withdrawn, then SIGTERM.
    let replacement_a = customers_instance(new_a, data_dir.path());
    endpoints.set(vec![old_b, new_a]);
    tokio::time::sleep(Duration::from_millis(500)).await; // the preStop pause
    terminate(first).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let replacement_b = customers_instance(new_b, data_dir.path());
    endpoints.set(vec![new_a, new_b]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    terminate(second).await;

    let (status, output) = tokio::task::spawn_blocking(move || load.wait())
        .await
        .expect("wait");
    let report = output.join("\n");
    assert!(status.success(), "the load run failed:\n{report}");
    let number_after = |label: &str| {
        output
            .iter()
            .find_map(|line| line.trim().strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|number| number.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {label:?} in the report:\n{report}"))
    };
    let requests = number_after("requests");
    let errors = number_after("errors");
    {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "rolling upgrade: {requests} GraphQL requests through the edge while both instances were replaced, {errors} failed"
        );
    }
    edge.terminate();
    let (edge_status, edge_output) = tokio::task::spawn_blocking(move || edge.wait())
        .await
        .expect("wait");
    assert!(
        edge_status.success(),
        "the edge did not exit 0:\n{}",
        edge_output.join("\n")
    );
    drop((replacement_a, replacement_b));
    assert!(requests > 100, "the load ran: {report}");
    assert_eq!(
        errors, 0,
        "requests failed during the rolling upgrade:\n{report}"
    );
}
