//! What a hostile client sends the services of `crowdcrunch dev` straight over gRPC: a body that
//! is not protobuf, to every RPC of every service (read from the descriptors, so a new RPC is
//! covered without editing this test), is INVALID_ARGUMENT; and a page token is authenticated
//! with the key `dev` keeps in its data dir, so a changed token is refused on `page_token` while
//! a token as returned survives a restart of `dev`.

#[expect(
    dead_code,
    reason = "this test uses a part of the shared support module"
)]
mod support;

use std::net::SocketAddr;

use crowdcrunch_proto::customers::v1 as customers;
use crowdcrunch_proto::customers::v1::customer_service_client::CustomerServiceClient;
use crowdcrunch_runtime::client::{Endpoints, GrpcChannel, ServiceToken};
use crowdcrunch_runtime::testing::{call_with_raw_body, violated_fields};
use prost_reflect::DescriptorPool;
use support::{Process, dev, token};
use tonic::Code;

/// Not protobuf: field 1 of wire type 2 whose length runs past the end of the body.
const GARBAGE: [u8; 4] = [0x0a, 0xff, 0x01, 0x41];

/// A channel to the server at `addr` that calls with `token`.
fn channel(addr: SocketAddr, token: &str) -> GrpcChannel {
    let endpoints = Endpoints::single(format!("http://{addr}").parse().expect("a URI"));
    crowdcrunch_runtime::client::channel(&endpoints, None)
        .expect("a channel")
        .carrying(ServiceToken::new(token).expect("a header value"))
}

/// Starts `dev` over `data_dir` and waits for its table and tokens.
fn start_dev(data_dir: &std::path::Path) -> Process {
    let mut process = Process::start(dev(data_dir));
    process.wait_for_line("Tokens, valid for");
    process
}

/// The address `dev`'s table gives `service`.
fn table_addr(process: &Process, service: &str) -> SocketAddr {
    let row = format!("  {service} ");
    let line = process
        .seen
        .iter()
        .find(|line| line.starts_with(&row))
        .unwrap_or_else(|| panic!("no row for {service} in dev's table"));
    let addr = line.split_whitespace().nth(1).expect("an address column");
    addr.parse().expect("an address")
}

#[tokio::test]
async fn every_rpc_answers_a_body_that_is_not_protobuf_with_invalid_argument() {
    let data_dir = tempfile::tempdir().expect("a temp dir");
    let process = start_dev(data_dir.path());
    // Whoever an RPC admits: staff, a customer, or one of the services.
    let mut callers = vec![
        token(data_dir.path(), &["--staff", "wire"]),
        token(
            data_dir.path(),
            &["--customer", "0190b6e2-7c1a-7d4e-9f00-1a2b3c4d5e6f"],
        ),
    ];
    for service in &crowdcrunch::roster::SERVICES {
        callers.push(token(data_dir.path(), &["--service", service.name]));
    }

    let pool = DescriptorPool::decode(crowdcrunch_proto::FILE_DESCRIPTOR_SET).expect("descriptors");
    let mut checked = 0;
    let mut failures = Vec::new();
    for service in pool.services() {
        // `crowdcrunch.orders.v1.OrderService` is served by the `orders` service.
        let name = service.package_name().split('.').nth(1).expect("a package");
        let addr = table_addr(&process, name);
        for method in service.methods() {
            let path = format!("/{}/{}", service.full_name(), method.name());
            let mut answer = None;
            for caller in &callers {
                let status = call_with_raw_body(channel(addr, caller), &path, GARBAGE.to_vec())
                    .await
                    .err();
                let refused = status.as_ref().is_some_and(|status| {
                    matches!(
                        status.code(),
                        Code::Unauthenticated | Code::PermissionDenied
                    )
                });
                answer = Some(status);
                if !refused {
                    break;
                }
            }
            let fine = answer.as_ref().is_some_and(|status| {
                status.as_ref().is_some_and(|status| {
                    status.code() == Code::InvalidArgument
                        && status
                            .message()
                            .starts_with("the request is not valid protobuf: ")
                })
            });
            if !fine {
                failures.push(format!("{path}: {answer:?}"));
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked > 30, "only {checked} RPCs were checked");
    process.terminate();
}

async fn list_customers(
    client: &mut CustomerServiceClient<GrpcChannel>,
    page_token: &str,
) -> Result<customers::ListCustomersResponse, tonic::Status> {
    client
        .list_customers(customers::ListCustomersRequest {
            page_size: 1,
            page_token: page_token.to_owned(),
        })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn dev_keeps_its_page_token_key_so_a_token_survives_a_restart() {
    let data_dir = tempfile::tempdir().expect("a temp dir");
    let first_run = start_dev(data_dir.path());
    let staff = token(data_dir.path(), &["--staff", "pages"]);
    let mut client =
        CustomerServiceClient::new(channel(table_addr(&first_run, "customers"), &staff));
    let first = list_customers(&mut client, "")
        .await
        .expect("the first page");
    let page_token = first.next_page_token;
    assert!(
        !page_token.is_empty(),
        "the demo customers fill more than one page"
    );
    let second = list_customers(&mut client, &page_token)
        .await
        .expect("the next page");
    let changed = list_customers(&mut client, &format!("{page_token}AAAA"))
        .await
        .expect_err("a token with bytes appended");
    assert_eq!(changed.code(), Code::InvalidArgument, "{changed:?}");
    assert_eq!(violated_fields(&changed), ["page_token"]);
    first_run.terminate();
    let (status, output) = first_run.wait();
    assert!(status.success(), "dev stops cleanly: {}", output.join("\n"));

    let second_run = start_dev(data_dir.path());
    let mut client =
        CustomerServiceClient::new(channel(table_addr(&second_run, "customers"), &staff));
    let again = list_customers(&mut client, &page_token)
        .await
        .expect("the token of the first run");
    assert_eq!(again.customers, second.customers);
    second_run.terminate();
}
