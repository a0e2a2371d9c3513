//! The whole role × operation matrix over the real gRPC API of `crowdcrunch dev`: every RPC of
//! every service, read from the descriptors (so a new RPC is covered without editing this test),
//! called by an anonymous caller, a customer, staff and every service of the roster, each with
//! its own token. What each caller must get is worked out here from the raw option values of the
//! RPC's `(crowdcrunch.access.v1.rule)`, not by the runtime's code under test: refused callers get
//! UNAUTHENTICATED or PERMISSION_DENIED from admission (its `ErrorInfo` domain), admitted ones get
//! whatever the service answers an empty request, but never a refusal.

#[expect(
    dead_code,
    reason = "this test uses a part of the shared support module"
)]
mod support;

use std::collections::HashMap;
use std::net::SocketAddr;

use crowdcrunch_edge::DynamicCodec;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, Value};
use support::{Process, dev, token};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};
use tonic_types::StatusExt as _;

/// The `ErrorInfo` domain of admission's refusals.
const AUTH_DOMAIN: &str = "auth.crowdcrunch.dev";

/// A caller of the matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Caller {
    Anonymous,
    Customer,
    Staff,
    Peer(&'static str),
}

/// What a caller must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    Admitted,
    Unauthenticated,
    Forbidden,
}

/// The raw rule of one RPC: role numbers and peer names as the option holds them.
struct RawRule {
    roles: Vec<i32>,
    peers: Vec<String>,
}

impl RawRule {
    fn of(method: &MethodDescriptor, pool: &DescriptorPool) -> Self {
        let extension = pool
            .get_extension_by_name("crowdcrunch.access.v1.rule")
            .expect("the access option is defined");
        let options = method.options();
        assert!(
            options.has_extension(&extension),
            "{} declares no access rule",
            method.full_name()
        );
        let rule = options.get_extension(&extension);
        let rule = rule.as_message().expect("a message");
        let list = |name: &str| -> Vec<Value> {
            rule.get_field_by_name(name)
                .and_then(|value| value.as_list().map(<[Value]>::to_vec))
                .expect("a repeated field")
        };
        Self {
            roles: list("roles")
                .iter()
                .map(|role| role.as_enum_number().expect("an enum"))
                .collect(),
            peers: list("peers")
                .iter()
                .map(|peer| peer.as_str().expect("a string").to_owned())
                .collect(),
        }
    }

    /// 1 = ROLE_ANONYMOUS, 2 = ROLE_CUSTOMER, 3 = ROLE_STAFF (access.proto).
    fn expected(&self, caller: &Caller) -> Expected {
        let has = |role: i32| self.roles.contains(&role);
        let admitted = match caller {
            _ if has(1) => true,
            Caller::Anonymous => return Expected::Unauthenticated,
            Caller::Customer => has(2),
            Caller::Staff => has(3),
            Caller::Peer(service) => self.peers.iter().any(|peer| peer == service),
        };
        if admitted {
            Expected::Admitted
        } else {
            Expected::Forbidden
        }
    }
}

async fn call(
    channel: Channel,
    method: &MethodDescriptor,
    bearer: Option<&str>,
) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|error| tonic::Status::unavailable(error.to_string()))?;
    let mut request = tonic::Request::new(DynamicMessage::new(method.input()));
    if let Some(token) = bearer {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("ASCII"),
        );
    }
    let path = format!("/{}/{}", method.parent_service().full_name(), method.name())
        .parse()
        .expect("a path");
    let codec = DynamicCodec::new(method.output());
    if method.is_server_streaming() {
        // Admission answers before the stream starts; an admitted watch is dropped at once.
        grpc.server_streaming(request, path, codec).await.map(drop)
    } else {
        grpc.unary(request, path, codec).await.map(drop)
    }
}

#[tokio::test]
async fn every_rpc_admits_exactly_the_callers_its_rule_names() {
    let data_dir = tempfile::tempdir().expect("a temp dir");
    let mut process = Process::start(dev(data_dir.path()));
    // The table lists every service before the tokens are printed.
    process.wait_for_line("Tokens, valid for");
    let mut addrs: HashMap<&str, SocketAddr> = HashMap::new();
    for service in &crowdcrunch::roster::SERVICES {
        let row = format!("  {} ", service.name);
        let line = process
            .seen
            .iter()
            .find(|line| line.starts_with(&row))
            .unwrap_or_else(|| panic!("no row for {} in dev's table", service.name));
        let addr = line.split_whitespace().nth(1).expect("an address column");
        addrs.insert(service.name, addr.parse().expect("an address"));
    }

    let customer_id = "0190b6e2-7c1a-7d4e-9f00-1a2b3c4d5e6f";
    let mut callers: Vec<(Caller, Option<String>)> = vec![
        (Caller::Anonymous, None),
        (
            Caller::Customer,
            Some(token(data_dir.path(), &["--customer", customer_id])),
        ),
        (
            Caller::Staff,
            Some(token(data_dir.path(), &["--staff", "matrix"])),
        ),
    ];
    for service in &crowdcrunch::roster::SERVICES {
        callers.push((
            Caller::Peer(service.name),
            Some(token(data_dir.path(), &["--service", service.name])),
        ));
    }

    let pool = DescriptorPool::decode(crowdcrunch_proto::FILE_DESCRIPTOR_SET).expect("descriptors");
    let mut checked = 0;
    let mut failures = Vec::new();
    for service in pool.services() {
        // `crowdcrunch.orders.v1.OrderService` is served by the `orders` service.
        let name = service.package_name().split('.').nth(1).expect("a package");
        let addr = addrs
            .get(name)
            .unwrap_or_else(|| panic!("{} is served by no roster service", service.full_name()));
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("an endpoint")
            .connect()
            .await
            .expect("connect");
        for method in service.methods() {
            let rule = RawRule::of(&method, &pool);
            for (caller, bearer) in &callers {
                let expected = rule.expected(caller);
                let answer = call(channel.clone(), &method, bearer.as_deref()).await;
                let refusal = match &answer {
                    Err(status) => status
                        .get_details_error_info()
                        .filter(|info| info.domain == AUTH_DOMAIN)
                        .map(|_| status.code()),
                    Ok(()) => None,
                };
                let fine = match (expected, refusal) {
                    (Expected::Admitted, None) => answer
                        .as_ref()
                        .err()
                        .is_none_or(|status| status.code() != Code::Unimplemented),
                    (Expected::Unauthenticated, Some(Code::Unauthenticated))
                    | (Expected::Forbidden, Some(Code::PermissionDenied)) => true,
                    _ => false,
                };
                if !fine {
                    failures.push(format!(
                        "{} as {caller:?}: expected {expected:?}, got {answer:?}",
                        method.full_name()
                    ));
                }
                checked += 1;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked > 100, "only {checked} calls were checked");
    process.terminate();
}
