//! Chart checks: render `chart/` with `helm template` for each values case (the defaults,
//! `chart/ci/all-on-values.yaml`, and Istio off) and assert the facts the deployment depends
//! on: native gRPC probes (HTTP for the edge), zero-unavailable rollouts with a drain that fits
//! the grace period, hardened non-root pods, protocol-tagged Service ports, config/secret
//! checksums, STRICT mTLS, tokens validated by every workload and by Istio (the identity
//! provider of the values), HTTPS at the Gateway, and AuthorizationPolicies that admit exactly
//! the call graph, per RPC as the protos' access rules say.
//!
//! The services, their call graph (each caller's `CROWDCRUNCH_<CALLEE>_ENDPOINTS`, each callee's
//! admitted callers) and the edge's port are compared against the binary's roster
//! (`crowdcrunch::roster`), never against a copy of it.
//!
//! Who may call each RPC is the protos' access rules (`crowdcrunch_runtime::access`): the chart
//! renders its per-RPC AuthorizationPolicies from `chart/files/access.yaml`, which
//! [`the_checked_in_access_rules_match_the_protos`] regenerates from the real descriptors and
//! compares, and [`authorization_policies_follow_the_access_rules`] holds the rendered policies
//! against the rules themselves.
//!
//! Schema validation of the rendered objects is `.ci/chart-check`'s job; this test reads the
//! rendered objects for meaning. Helm is taken from `PATH` or from `<repo>/.tools/bin/helm`
//! (where `.ci/chart-check` installs it); without helm every check prints one line and passes,
//! so `cargo test` still works on a fresh machine (`.ci/run` sets `CROWDCRUNCH_REQUIRE_TOOLS`,
//! under which a missing helm fails instead).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crowdcrunch::roster;
use crowdcrunch_runtime::access::{AccessRules, Rule};
use serde::Deserialize as _;
use serde_norway::Value;

/// Release name used for every render.
const RELEASE: &str = "release";
/// Namespace used for every render; AuthorizationPolicy principals name it.
const NAMESPACE: &str = "crowdcrunch";
/// Kubernetes version passed to `helm template`, so the result does not depend on helm's own.
const KUBE_VERSION: &str = "1.33.0";

/// The edge's name in the chart. It is a process but not a row of the roster: it calls every
/// service.
const EDGE: &str = "edge";

/// Every process of the system: the edge and the services of the roster.
fn processes() -> BTreeSet<&'static str> {
    std::iter::once(EDGE).chain(service_names()).collect()
}

/// The names of the roster's services, the one list of the services (`crowdcrunch::roster`).
fn service_names() -> impl Iterator<Item = &'static str> {
    roster::SERVICES.iter().map(|service| service.name)
}

/// Headline facts of the authorization graph, stated on their own so a wrong roster cannot
/// hide a wrong chart.
const HEADLINE_CALLERS: &[(&str, &[&str])] = &[
    ("payments", &["edge", "exchanges", "orders"]),
    (
        "ledger",
        &[
            "customers",
            "edge",
            "exchanges",
            "fulfillment",
            "inventory",
            "orders",
            "payments",
        ],
    ),
    ("edge", &[]),
];

/// The port every gRPC service listens on in its pod (`CROWDCRUNCH_LISTEN_ADDR`).
const GRPC_PORT: u16 = 50051;

/// Port-name prefixes from which Istio infers a protocol.
const ISTIO_PORT_PROTOCOLS: &[&str] = &[
    "grpc", "http", "http2", "https", "mongo", "mysql", "redis", "tcp", "tls", "udp",
];

/// The identity provider a values case names (`auth.*`), as each workload must receive it.
struct IdentityProvider {
    /// `auth.issuer`.
    issuer: &'static str,
    /// `auth.audience`.
    audience: &'static str,
    /// `auth.jwksUrl`.
    jwks_url: &'static str,
    /// `auth.customerClaim`.
    customer_claim: &'static str,
    /// `auth.rolesClaim`.
    roles_claim: &'static str,
}

/// `chart/ci/keycloak-values.yaml`: the defaults plus a Keycloak realm.
const KEYCLOAK: IdentityProvider = IdentityProvider {
    issuer: "https://id.example.com/realms/shop",
    audience: "crowdcrunch",
    jwks_url: "https://id.example.com/realms/shop/protocol/openid-connect/certs",
    customer_claim: "customer_id",
    roles_claim: "realm_access.roles",
};

/// The identity provider of `chart/ci/all-on-values.yaml` (Dex).
const DEX: IdentityProvider = IdentityProvider {
    issuer: "https://dex.example.com",
    audience: "crowdcrunch-api",
    jwks_url: "https://dex.example.com/keys",
    customer_claim: "sub",
    roles_claim: "groups",
};

/// One set of values to render.
struct Case {
    /// Name shown in assertion messages.
    name: &'static str,
    /// Extra `helm template` arguments, relative to the repository root.
    args: &'static [&'static str],
    /// Whether the Istio objects are expected.
    istio: bool,
    /// The identity provider the values name.
    idp: IdentityProvider,
    /// The Gateway's TLS Secret the values name.
    tls_secret: &'static str,
}

/// The values cases, as `.ci/chart-check` validates them.
const CASES: &[Case] = &[
    Case {
        name: "defaults",
        args: &["-f", "chart/ci/keycloak-values.yaml"],
        istio: true,
        idp: KEYCLOAK,
        tls_secret: "crowdcrunch-tls",
    },
    Case {
        name: "all-on",
        args: &["-f", "chart/ci/all-on-values.yaml"],
        istio: true,
        idp: DEX,
        tls_secret: "crowdcrunch-example-com-tls",
    },
    Case {
        name: "istio-off",
        args: &[
            "-f",
            "chart/ci/keycloak-values.yaml",
            "--set",
            "istio.enabled=false",
        ],
        istio: false,
        idp: KEYCLOAK,
        tls_secret: "crowdcrunch-tls",
    },
];

/// The rendered objects of one case.
struct Rendered {
    /// The values case.
    case: &'static Case,
    /// Every non-empty document of the `helm template` output.
    docs: Vec<Value>,
}

impl Rendered {
    /// Documents of one kind.
    fn of_kind(&self, kind: &'static str) -> impl Iterator<Item = &Value> {
        self.docs
            .iter()
            .filter(move |d| str_at(d, &["kind"]) == Some(kind))
    }

    /// The document of a kind and name, if rendered.
    fn named(&self, kind: &'static str, name: &str) -> Option<&Value> {
        self.of_kind(kind).find(|d| name_of(d) == name)
    }

    /// Deployments keyed by their `app` label (the service name).
    fn deployments(&self) -> BTreeMap<&str, &Value> {
        self.of_kind("Deployment")
            .map(|d| {
                let app = str_at(d, &["spec", "template", "metadata", "labels", "app"])
                    .unwrap_or_else(|| {
                        panic!("[{}] {} has no app label", self.case.name, name_of(d))
                    });
                (app, d)
            })
            .collect()
    }

    /// Service accounts by name, mapped to their `app` label.
    fn service_accounts(&self) -> BTreeMap<&str, &str> {
        self.of_kind("ServiceAccount")
            .filter_map(|sa| Some((name_of(sa), str_at(sa, &["metadata", "labels", "app"])?)))
            .collect()
    }

    /// Every pod spec with a description: Deployments, StatefulSets and bare Pods (helm test).
    fn pod_specs(&self) -> Vec<(String, &Value)> {
        let mut specs = Vec::new();
        for kind in ["Deployment", "StatefulSet"] {
            for d in self.of_kind(kind) {
                specs.push((
                    format!("[{}] {kind} {}", self.case.name, name_of(d)),
                    at(d, &["spec", "template", "spec"]),
                ));
            }
        }
        for p in self.of_kind("Pod") {
            specs.push((
                format!("[{}] Pod {}", self.case.name, name_of(p)),
                at(p, &["spec"]),
            ));
        }
        specs
    }
}

/// The repository root (the chart lives in `chart/` there).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Helm from `PATH`, else from `<repo>/.tools/bin/helm`.
fn find_helm() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("helm"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([repo_root().join(".tools/bin/helm")])
        .find(|candidate| candidate.is_file())
}

/// Renders one case and parses the multi-document output.
fn render(helm: &Path, case: &'static Case) -> Rendered {
    let output = Command::new(helm)
        .current_dir(repo_root())
        .args(["template", RELEASE, "chart", "--namespace", NAMESPACE])
        .args(["--kube-version", KUBE_VERSION])
        .args(case.args)
        .output()
        .unwrap_or_else(|e| panic!("running {} failed: {e}", helm.display()));
    assert!(
        output.status.success(),
        "[{}] helm template failed:\n{}",
        case.name,
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("helm template prints UTF-8");
    let docs = serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("helm template output is valid YAML"))
        .filter(|doc| !doc.is_null())
        .collect();
    Rendered { case, docs }
}

/// Every case rendered once per test run, or `None` (after one printed line) without helm.
fn rendered() -> Option<&'static [Rendered]> {
    static RENDERED: OnceLock<Option<Vec<Rendered>>> = OnceLock::new();
    RENDERED
        .get_or_init(|| match find_helm() {
            Some(helm) => Some(CASES.iter().map(|case| render(&helm, case)).collect()),
            None => {
                assert!(
                    std::env::var_os("CROWDCRUNCH_REQUIRE_TOOLS").is_none(),
                    "helm is required (.ci/chart-check installs it)"
                );
                // Straight to stderr, past the test harness's capture, so it is seen.
                let _ = writeln!(
                    std::io::stderr(),
                    "skipping chart checks: helm not found (run .ci/chart-check to install it)"
                );
                None
            }
        })
        .as_deref()
}

/// The value at a path of mapping keys, or null.
fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    static NULL: Value = Value::Null;
    path.iter()
        .try_fold(v, |v, key| v.get(*key))
        .unwrap_or(&NULL)
}

/// The string at a path, if it is one.
fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).as_str()
}

/// The sequence at a path, or an empty one.
fn seq_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path)
        .as_sequence()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// `metadata.name` of a document.
fn name_of(doc: &Value) -> &str {
    str_at(doc, &["metadata", "name"]).expect("every rendered object has a name")
}

/// Whether a `matchLabels` selector (null: everything) selects a pod with these labels.
fn selects(match_labels: &Value, labels: &Value) -> bool {
    match match_labels.as_mapping() {
        None => true,
        Some(wanted) => wanted
            .iter()
            .all(|(k, v)| k.as_str().is_some_and(|k| labels.get(k) == Some(v))),
    }
}

/// The processes that call `service`, according to the roster.
fn callers_of(service: &str) -> BTreeSet<&'static str> {
    processes()
        .into_iter()
        .filter(|caller| callees_of(caller).contains(service))
        .collect()
}

/// The services `process` calls, according to the roster (the edge calls every service).
fn callees_of(process: &str) -> BTreeSet<&'static str> {
    if process == EDGE {
        return service_names().collect();
    }
    roster::service(process)
        .unwrap_or_else(|| panic!("{process} is not in the roster"))
        .calls
        .iter()
        .copied()
        .collect()
}

/// The port a process's API listens on in its pod: the edge's own port (as `serve edge`
/// defaults to), and one port for every gRPC service.
fn api_port(process: &str) -> u16 {
    if process == EDGE {
        roster::EDGE_PORT
    } else {
        GRPC_PORT
    }
}

/// The container of a Deployment that runs `service`.
fn app_container<'a>(deployment: &'a Value, service: &str) -> &'a Value {
    seq_at(deployment, &["spec", "template", "spec", "containers"])
        .iter()
        .find(|c| str_at(c, &["name"]) == Some(service))
        .unwrap_or_else(|| {
            panic!(
                "Deployment {} has no container {service}",
                name_of(deployment)
            )
        })
}

/// A container's environment: `env` values over the ConfigMaps of `envFrom`.
fn container_env<'a>(r: &'a Rendered, container: &'a Value) -> BTreeMap<&'a str, &'a Value> {
    let mut env = BTreeMap::new();
    for source in seq_at(container, &["envFrom"]) {
        let name = str_at(source, &["configMapRef", "name"]).expect("envFrom names a ConfigMap");
        let cm = r
            .named("ConfigMap", name)
            .unwrap_or_else(|| panic!("[{}] ConfigMap {name} is not rendered", r.case.name));
        let data = at(cm, &["data"])
            .as_mapping()
            .expect("the ConfigMap has data");
        for (k, v) in data {
            env.insert(k.as_str().expect("env names are strings"), v);
        }
    }
    for var in seq_at(container, &["env"]) {
        env.insert(str_at(var, &["name"]).expect("env entries have names"), var);
    }
    env
}

/// Which probe a container must have, and of what kind.
enum ExpectedProbe {
    /// Native gRPC probe of `grpc.health.v1.Health` (whole server) on this port.
    Grpc(u64),
    /// HTTP GET of this path.
    Http(&'static str),
}

/// The startup, readiness and liveness probes a service must have.
fn expected_probes(service: &str) -> [(&'static str, ExpectedProbe); 3] {
    if service == EDGE {
        [
            ("startupProbe", ExpectedProbe::Http("/healthz")),
            ("readinessProbe", ExpectedProbe::Http("/readyz")),
            ("livenessProbe", ExpectedProbe::Http("/healthz")),
        ]
    } else {
        [
            ("startupProbe", ExpectedProbe::Grpc(GRPC_PORT.into())),
            ("readinessProbe", ExpectedProbe::Grpc(GRPC_PORT.into())),
            ("livenessProbe", ExpectedProbe::Grpc(GRPC_PORT.into())),
        ]
    }
}

/// The edge and all seven services are deployed, probed natively, rolled out without losing
/// capacity, and drained within their grace period; their env follows the call graph.
#[test]
fn every_service_is_probed_rolled_and_drained() {
    let Some(all) = rendered() else { return };
    for r in all {
        let deployments = r.deployments();
        assert_eq!(
            deployments.keys().copied().collect::<BTreeSet<_>>(),
            processes(),
            "[{}] one Deployment per service",
            r.case.name
        );
        for (service, d) in deployments {
            let ctx = format!("[{}] Deployment {}", r.case.name, name_of(d));
            let pod = at(d, &["spec", "template", "spec"]);
            let c = app_container(d, service);

            for (probe, expected) in expected_probes(service) {
                let p = at(c, &[probe]);
                match expected {
                    ExpectedProbe::Grpc(port) => {
                        assert_eq!(
                            at(p, &["grpc", "port"]).as_u64(),
                            Some(port),
                            "{ctx}: {probe} is gRPC"
                        );
                        assert!(
                            matches!(str_at(p, &["grpc", "service"]), None | Some("")),
                            "{ctx}: {probe} checks the whole server (service \"\")"
                        );
                    }
                    ExpectedProbe::Http(path) => {
                        assert_eq!(
                            str_at(p, &["httpGet", "path"]),
                            Some(path),
                            "{ctx}: {probe} path"
                        );
                    }
                }
            }

            assert_eq!(
                str_at(d, &["spec", "strategy", "type"]),
                Some("RollingUpdate"),
                "{ctx}"
            );
            let max_unavailable = at(d, &["spec", "strategy", "rollingUpdate", "maxUnavailable"]);
            assert!(
                max_unavailable.as_u64() == Some(0)
                    || matches!(max_unavailable.as_str(), Some("0" | "0%")),
                "{ctx}: maxUnavailable must be 0, is {max_unavailable:?}"
            );

            let sleep = at(c, &["lifecycle", "preStop", "sleep", "seconds"])
                .as_u64()
                .unwrap_or_else(|| panic!("{ctx}: preStop must be a sleep handler"));
            let env = container_env(r, c);
            let drain = env
                .get("CROWDCRUNCH_DRAIN_GRACE")
                .and_then(|v| v.as_str())
                .unwrap_or_else(|| panic!("{ctx}: CROWDCRUNCH_DRAIN_GRACE is set"));
            let drain = humantime::parse_duration(drain)
                .unwrap_or_else(|e| panic!("{ctx}: CROWDCRUNCH_DRAIN_GRACE {drain:?}: {e}"));
            let grace = at(pod, &["terminationGracePeriodSeconds"])
                .as_u64()
                .unwrap_or_else(|| panic!("{ctx}: terminationGracePeriodSeconds is set"));
            assert!(
                Duration::from_secs(grace) > Duration::from_secs(sleep) + drain,
                "{ctx}: terminationGracePeriodSeconds {grace}s must exceed preStop {sleep}s + drain {drain:?}"
            );

            let endpoints: BTreeMap<String, &str> = env
                .iter()
                .filter_map(|(k, v)| {
                    let callee = k.strip_prefix("CROWDCRUNCH_")?.strip_suffix("_ENDPOINTS")?;
                    Some((callee.to_lowercase(), v.as_str()?))
                })
                .collect();
            assert_eq!(
                endpoints
                    .keys()
                    .map(String::as_str)
                    .collect::<BTreeSet<_>>(),
                callees_of(service),
                "{ctx}: CROWDCRUNCH_<CALLEE>_ENDPOINTS follow the call graph"
            );
            for (callee, url) in endpoints {
                let (host, port) = url
                    .strip_prefix("http://")
                    .and_then(|rest| rest.split_once(':'))
                    .unwrap_or_else(|| panic!("{ctx}: endpoint {url} is http://host:port"));
                assert_eq!(
                    port,
                    api_port(&callee).to_string(),
                    "{ctx}: endpoint {url} is {callee}'s API port"
                );
                let svc = r
                    .named("Service", host)
                    .unwrap_or_else(|| panic!("{ctx}: endpoint {url} names no rendered Service"));
                assert_eq!(
                    str_at(svc, &["spec", "selector", "app.kubernetes.io/component"]),
                    Some(callee.as_str()),
                    "{ctx}: endpoint {url} reaches {callee}"
                );
            }

            let database = env.get("CROWDCRUNCH_DATABASE_URL");
            if service == EDGE {
                assert!(database.is_none(), "{ctx}: the edge has no database");
            } else {
                let from_secret = database.map(|v| at(v, &["valueFrom", "secretKeyRef", "name"]));
                assert!(
                    from_secret.is_some_and(|name| name.as_str().is_some()),
                    "{ctx}: CROWDCRUNCH_DATABASE_URL comes from a Secret"
                );
            }
            let page_token_key = env
                .get("CROWDCRUNCH_PAGE_TOKEN_KEY")
                .map(|v| str_at(v, &["valueFrom", "secretKeyRef", "name"]));
            if service == EDGE {
                assert!(
                    page_token_key.is_none(),
                    "{ctx}: the edge signs no page token"
                );
            } else {
                let secret = page_token_key.flatten().unwrap_or_else(|| {
                    panic!("{ctx}: CROWDCRUNCH_PAGE_TOKEN_KEY comes from a Secret")
                });
                assert!(
                    r.named("Secret", secret).is_some(),
                    "{ctx}: the chart renders the page-token Secret {secret}"
                );
            }
        }
    }
}

/// Every pod runs non-root on a read-only root filesystem, with no privilege escalation, no
/// capabilities and the runtime's default seccomp profile.
#[test]
fn every_pod_is_hardened() {
    let Some(all) = rendered() else { return };
    for r in all {
        let specs = r.pod_specs();
        assert!(!specs.is_empty(), "[{}] no pods rendered", r.case.name);
        for (ctx, pod) in specs {
            let pod_sc = at(pod, &["securityContext"]);
            for c in seq_at(pod, &["containers"]) {
                let ctx = format!("{ctx} container {}", str_at(c, &["name"]).unwrap_or("?"));
                let sc = at(c, &["securityContext"]);
                // Container settings win over the pod's.
                let effective = |path: &[&str]| {
                    let own = at(sc, path);
                    if own.is_null() { at(pod_sc, path) } else { own }
                };
                assert_eq!(
                    effective(&["runAsNonRoot"]).as_bool(),
                    Some(true),
                    "{ctx}: runAsNonRoot"
                );
                assert!(
                    effective(&["runAsUser"])
                        .as_u64()
                        .is_none_or(|uid| uid != 0),
                    "{ctx}: runAsUser is not root"
                );
                assert_eq!(
                    at(sc, &["readOnlyRootFilesystem"]).as_bool(),
                    Some(true),
                    "{ctx}: readOnlyRootFilesystem"
                );
                assert_eq!(
                    at(sc, &["allowPrivilegeEscalation"]).as_bool(),
                    Some(false),
                    "{ctx}: allowPrivilegeEscalation"
                );
                assert!(
                    seq_at(sc, &["capabilities", "drop"])
                        .iter()
                        .any(|cap| cap.as_str() == Some("ALL")),
                    "{ctx}: capabilities drop ALL"
                );
                assert_eq!(
                    effective(&["seccompProfile", "type"]).as_str(),
                    Some("RuntimeDefault"),
                    "{ctx}: seccomp RuntimeDefault"
                );
            }
        }
    }
}

/// A changed ConfigMap or database Secret rolls the pods: their templates carry checksums.
#[test]
fn pods_carry_config_and_secret_checksums() {
    let Some(all) = rendered() else { return };
    let is_sha256 = |v: Option<&str>| {
        v.is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    for r in all {
        for (service, d) in r.deployments() {
            let ctx = format!("[{}] Deployment {}", r.case.name, name_of(d));
            let annotations = at(d, &["spec", "template", "metadata", "annotations"]);
            assert!(
                is_sha256(str_at(annotations, &["checksum/config"])),
                "{ctx}: checksum/config"
            );
            let uses_secret = seq_at(app_container(d, service), &["env"])
                .iter()
                .any(|var| !at(var, &["valueFrom", "secretKeyRef"]).is_null());
            if uses_secret {
                assert!(
                    is_sha256(str_at(annotations, &["checksum/secret"])),
                    "{ctx}: checksum/secret"
                );
            }
        }
    }
}

/// Every Service port tells Istio its protocol, by name prefix and by appProtocol.
#[test]
fn every_service_port_is_protocol_tagged() {
    let Some(all) = rendered() else { return };
    for r in all {
        for svc in r.of_kind("Service") {
            for port in seq_at(svc, &["spec", "ports"]) {
                let ctx = format!(
                    "[{}] Service {} port {:?}",
                    r.case.name,
                    name_of(svc),
                    at(port, &["port"])
                );
                let name = str_at(port, &["name"]).unwrap_or_else(|| panic!("{ctx}: unnamed"));
                let protocol = name.split('-').next().unwrap_or(name);
                assert!(
                    ISTIO_PORT_PROTOCOLS.contains(&protocol),
                    "{ctx}: name {name:?} has no protocol prefix"
                );
                assert!(
                    str_at(port, &["appProtocol"]).is_some(),
                    "{ctx}: appProtocol is set"
                );
            }
        }
        for (service, d) in r.deployments() {
            let svc = r
                .of_kind("Service")
                .find(|s| {
                    selects(
                        at(s, &["spec", "selector"]),
                        at(d, &["spec", "template", "metadata", "labels"]),
                    )
                })
                .unwrap_or_else(|| panic!("[{}] no Service selects {service}", r.case.name));
            let names: BTreeSet<&str> = seq_at(svc, &["spec", "ports"])
                .iter()
                .filter_map(|p| str_at(p, &["name"]))
                .collect();
            let api = if service == EDGE { "http" } else { "grpc" };
            assert!(
                names.contains(api) && names.contains("http-metrics"),
                "[{}] {service} ports: {names:?}",
                r.case.name
            );
        }
    }
}

/// With Istio on, every pod of the release is under STRICT mutual TLS; with it off, nothing of
/// Istio is rendered at all.
#[test]
fn mesh_mtls_is_strict_or_absent() {
    let Some(all) = rendered() else { return };
    for r in all {
        let istio_docs: Vec<&Value> = r
            .docs
            .iter()
            .filter(|d| str_at(d, &["apiVersion"]).is_some_and(|api| api.contains("istio.io/")))
            .collect();
        if !r.case.istio {
            assert!(
                istio_docs.is_empty(),
                "[{}] Istio objects rendered with Istio off",
                r.case.name
            );
            let pod_metadata = r
                .of_kind("Deployment")
                .chain(r.of_kind("StatefulSet"))
                .map(|d| (name_of(d), at(d, &["spec", "template", "metadata"])))
                .chain(r.of_kind("Pod").map(|p| (name_of(p), at(p, &["metadata"]))));
            for (name, meta) in pod_metadata {
                for key in ["labels", "annotations"] {
                    let keys = at(meta, &[key])
                        .as_mapping()
                        .into_iter()
                        .flatten()
                        .filter_map(|(k, _)| k.as_str());
                    for k in keys {
                        assert!(
                            !k.contains("istio.io"),
                            "[{}] {name} has {k} with Istio off",
                            r.case.name
                        );
                    }
                }
            }
            continue;
        }
        let strict: Vec<&Value> = r
            .of_kind("PeerAuthentication")
            .filter(|pa| str_at(pa, &["spec", "mtls", "mode"]) == Some("STRICT"))
            .collect();
        assert!(
            !strict.is_empty(),
            "[{}] a PeerAuthentication with mtls STRICT",
            r.case.name
        );
        for (service, d) in r.deployments() {
            let labels = at(d, &["spec", "template", "metadata", "labels"]);
            assert!(
                strict
                    .iter()
                    .any(|pa| selects(at(pa, &["spec", "selector", "matchLabels"]), labels)),
                "[{}] {service} is not under STRICT mTLS",
                r.case.name
            );
            let annotations = at(d, &["spec", "template", "metadata", "annotations"]);
            assert_eq!(
                str_at(annotations, &["sidecar.istio.io/rewriteAppHTTPProbers"]),
                Some("true"),
                "[{}] {service}: probes are rewritten to the sidecar agent",
                r.case.name
            );
            let proxy_config = str_at(annotations, &["proxy.istio.io/config"])
                .unwrap_or_else(|| panic!("[{}] {service}: no proxy config", r.case.name));
            assert!(
                proxy_config.contains("\"holdApplicationUntilProxyStarts\":true"),
                "[{}] {service}: the app waits for the sidecar",
                r.case.name
            );
        }
        for dr in r.of_kind("DestinationRule") {
            assert_eq!(
                str_at(dr, &["spec", "trafficPolicy", "tls", "mode"]),
                Some("ISTIO_MUTUAL"),
                "[{}] DestinationRule {}",
                r.case.name,
                name_of(dr)
            );
        }
    }
}

/// A default deny exists, and each service admits exactly the service accounts of its callers
/// on its API port (per RPC: see [`authorization_policies_follow_the_access_rules`]); only the
/// edge admits anyone else (the ingress gateway, the helm test).
#[test]
fn authorization_policies_admit_exactly_the_call_graph() {
    let Some(all) = rendered() else { return };
    for r in all.iter().filter(|r| r.case.istio) {
        let case = r.case.name;
        let policies: Vec<&Value> = r.of_kind("AuthorizationPolicy").collect();
        let is_deny_all = |p: &Value| {
            seq_at(p, &["spec", "rules"]).is_empty()
                && matches!(str_at(p, &["spec", "action"]), None | Some("ALLOW"))
        };
        let deployments = r.deployments();
        let deny_all: Vec<&Value> = policies
            .iter()
            .copied()
            .filter(|p| is_deny_all(p))
            .collect();
        assert!(
            deny_all
                .iter()
                .any(|p| deployments.values().all(|d| selects(
                    at(p, &["spec", "selector", "matchLabels"]),
                    at(d, &["spec", "template", "metadata", "labels"])
                ))),
            "[{case}] an allow-nothing (default deny) AuthorizationPolicy covers every service"
        );

        let accounts = r.service_accounts();
        let mut admitted: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (&service, d) in &deployments {
            let labels = at(d, &["spec", "template", "metadata", "labels"]);
            let api_port = api_port(service).to_string();
            let mut callers = BTreeSet::new();
            let mut others = BTreeSet::new();
            for p in policies.iter().copied().filter(|p| !is_deny_all(p)) {
                if !selects(at(p, &["spec", "selector", "matchLabels"]), labels) {
                    continue;
                }
                let ctx = format!("[{case}] AuthorizationPolicy {} for {service}", name_of(p));
                assert_eq!(
                    str_at(p, &["spec", "action"]),
                    Some("ALLOW"),
                    "{ctx}: only ALLOW policies"
                );
                for rule in seq_at(p, &["spec", "rules"]) {
                    let ports: BTreeSet<&str> = seq_at(rule, &["to"])
                        .iter()
                        .flat_map(|to| seq_at(to, &["operation", "ports"]))
                        .filter_map(Value::as_str)
                        .collect();
                    for source in seq_at(rule, &["from"]).iter().map(|f| at(f, &["source"])) {
                        let principals = seq_at(source, &["principals"]);
                        if principals.is_empty() {
                            // Only the optional metrics-scrape rule admits by namespace.
                            assert_eq!(
                                ports,
                                BTreeSet::from(["9090"]),
                                "{ctx}: a non-principal source beyond metrics"
                            );
                            continue;
                        }
                        assert_eq!(
                            ports,
                            BTreeSet::from([api_port.as_str()]),
                            "{ctx}: callers reach the API port only"
                        );
                        for principal in principals.iter().filter_map(Value::as_str) {
                            let (ns, sa) = principal
                                .split_once("/ns/")
                                .and_then(|(_, rest)| rest.split_once("/sa/"))
                                .unwrap_or_else(|| {
                                    panic!("{ctx}: principal {principal} is <td>/ns/<ns>/sa/<sa>")
                                });
                            match accounts
                                .get(sa)
                                .filter(|app| ns == NAMESPACE && processes().contains(*app))
                            {
                                Some(app) => callers.insert(*app),
                                None => others.insert(principal),
                            };
                        }
                    }
                }
            }
            assert_eq!(
                callers,
                callers_of(service),
                "[{case}] {service} admits exactly its callers"
            );
            if service == EDGE {
                if r.of_kind("Gateway").next().is_some() {
                    assert!(
                        others
                            .iter()
                            .any(|p| p.ends_with("/sa/istio-ingressgateway-service-account")),
                        "[{case}] the edge admits the ingress gateway: {others:?}"
                    );
                }
                let smoke = r
                    .of_kind("Pod")
                    .find_map(|p| str_at(p, &["spec", "serviceAccountName"]));
                if let Some(sa) = smoke {
                    assert!(
                        others.contains(format!("cluster.local/ns/{NAMESPACE}/sa/{sa}").as_str()),
                        "[{case}] the edge admits the helm test pod: {others:?}"
                    );
                }
            } else {
                assert!(
                    others.is_empty(),
                    "[{case}] {service} admits non-callers: {others:?}"
                );
            }
            admitted.insert(service, callers);
        }
        for (service, expected) in HEADLINE_CALLERS {
            assert_eq!(
                admitted.get(service),
                Some(&expected.iter().copied().collect()),
                "[{case}] {service}'s admitted callers"
            );
        }
    }
}

/// The ingress Gateway exposes the edge and nothing else.
#[test]
fn only_the_edge_is_exposed() {
    let Some(all) = rendered() else { return };
    for r in all.iter().filter(|r| r.case.istio) {
        let edge_host = r
            .of_kind("Service")
            .find(|s| str_at(s, &["metadata", "labels", "app"]) == Some(EDGE))
            .map(name_of)
            .unwrap_or_else(|| panic!("[{}] the edge Service is rendered", r.case.name));
        let exposed: Vec<&Value> = r
            .of_kind("VirtualService")
            .filter(|vs| !seq_at(vs, &["spec", "gateways"]).is_empty())
            .collect();
        assert_eq!(
            exposed.is_empty(),
            r.of_kind("Gateway").next().is_none(),
            "[{}] a Gateway comes with its VirtualService",
            r.case.name
        );
        for vs in exposed {
            for route in seq_at(vs, &["spec", "http"]) {
                for dest in seq_at(route, &["route"]) {
                    assert_eq!(
                        str_at(dest, &["destination", "host"]),
                        Some(edge_host),
                        "[{}] VirtualService {} routes outside traffic to the edge only",
                        r.case.name,
                        name_of(vs)
                    );
                }
            }
        }
    }
}

/// `helm test` runs `crowdcrunch smoke` against the edge's GraphQL endpoint.
#[test]
fn helm_test_runs_a_smoke_query_through_the_edge() {
    let Some(all) = rendered() else { return };
    for r in all {
        let edge_host = r
            .of_kind("Service")
            .find(|s| str_at(s, &["metadata", "labels", "app"]) == Some(EDGE))
            .map(name_of)
            .unwrap_or_else(|| panic!("[{}] the edge Service is rendered", r.case.name));
        let hook = r
            .of_kind("Pod")
            .find(|p| str_at(p, &["metadata", "annotations", "helm.sh/hook"]) == Some("test"))
            .unwrap_or_else(|| panic!("[{}] a helm test Pod is rendered", r.case.name));
        let args: Vec<&str> = seq_at(hook, &["spec", "containers"])
            .iter()
            .flat_map(|c| seq_at(c, &["args"]))
            .filter_map(Value::as_str)
            .collect();
        let url = format!("http://{edge_host}:{}/graphql", roster::EDGE_PORT);
        assert_eq!(
            args,
            ["smoke", "--url", url.as_str()],
            "[{}] smoke test args",
            r.case.name
        );
    }
}

/// `values.schema.json` admits exactly the roster's services (and the edge) as `services` and
/// as callees, so a service added to the roster and not to the chart fails here.
#[test]
fn the_values_schema_names_exactly_the_roster() {
    let path = repo_root().join("chart/values.schema.json");
    let text = std::fs::read_to_string(&path).expect("read chart/values.schema.json");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("the schema is JSON");
    let names = |value: &serde_json::Value| -> BTreeSet<String> {
        value
            .as_array()
            .expect("a list of names")
            .iter()
            .map(|name| name.as_str().expect("a name").to_owned())
            .collect()
    };
    let owned = |names: BTreeSet<&str>| -> BTreeSet<String> {
        names.into_iter().map(str::to_owned).collect()
    };
    assert_eq!(
        names(&schema["definitions"]["serviceName"]["enum"]),
        owned(service_names().collect()),
        "the callees the schema admits"
    );
    let services = &schema["properties"]["services"];
    assert_eq!(
        names(&services["required"]),
        owned(processes()),
        "the services the schema requires"
    );
    let properties: BTreeSet<String> = services["properties"]
        .as_object()
        .expect("the services' properties")
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        properties,
        owned(processes()),
        "the services the schema admits"
    );
}

/// Where the chart reads who may call each RPC (`templates/istio-authorizationpolicy.yaml`).
fn access_file() -> PathBuf {
    repo_root().join("chart/files/access.yaml")
}

/// Set to rewrite `chart/files/access.yaml` from the protos.
const UPDATE_ACCESS: &str = "CROWDCRUNCH_UPDATE_CHART_ACCESS";

/// The first lines of `chart/files/access.yaml`.
const ACCESS_HEADER: &str = "\
# Who may call each RPC of each service, from the protos' (crowdcrunch.access.v1.rule) options.
# Generated: do not edit. After changing a rule in proto/, run
#   CROWDCRUNCH_UPDATE_CHART_ACCESS=1 cargo test -p crowdcrunch --test chart
# templates/istio-authorizationpolicy.yaml renders one AuthorizationPolicy rule per RPC:
#   endUsers: anyone - the edge, with a token or without (ROLE_ANONYMOUS);
#             token  - the edge, with a valid token (a request principal; customers, staff);
#             none   - no end user.
#   peers:    the services that call with their own mesh identity.
";

/// The access rules of the real descriptors, which every process enforces.
fn access_rules() -> AccessRules {
    AccessRules::from_descriptor_set(crowdcrunch_proto::FILE_DESCRIPTOR_SET)
        .unwrap_or_else(|e| panic!("the protos' access rules: {e}"))
}

/// The service that serves a rule's RPC: the one named by its package, `crowdcrunch.<service>.v1`.
fn service_of(rule: &Rule) -> &str {
    let service = rule
        .rpc
        .split('.')
        .nth(1)
        .unwrap_or_else(|| panic!("{} is not in a crowdcrunch.<service>.v1 package", rule.rpc));
    assert!(
        roster::service(service).is_some(),
        "{} is in the package of {service}, which is not in the roster",
        rule.rpc
    );
    service
}

/// Which end users the edge may bring to an RPC, as `access.yaml` names it.
fn end_users(rule: &Rule) -> &'static str {
    if rule.admits_anyone() {
        "anyone"
    } else if rule.roles.is_empty() {
        "none"
    } else {
        "token"
    }
}

/// The text of `chart/files/access.yaml` for these rules: by service, then by path.
fn access_yaml(rules: &AccessRules) -> String {
    let mut by_service: BTreeMap<&str, BTreeMap<&str, &Rule>> = BTreeMap::new();
    for rule in rules.iter() {
        by_service
            .entry(service_of(rule))
            .or_default()
            .insert(rule.path.as_str(), rule);
    }
    let mut out = String::from(ACCESS_HEADER);
    for (service, rules) in by_service {
        let _ = writeln!(out, "{service}:");
        for (path, rule) in rules {
            let peers: BTreeSet<&str> = rule.peers.iter().map(String::as_str).collect();
            let peers: Vec<&str> = peers.into_iter().collect();
            let _ = writeln!(out, "  - path: {path}");
            let _ = writeln!(out, "    endUsers: {}", end_users(rule));
            let _ = writeln!(out, "    peers: [{}]", peers.join(", "));
        }
    }
    out
}

/// The chart's copy of the access rules is the protos': a new RPC, or a changed role or peer,
/// fails here until `chart/files/access.yaml` is regenerated.
#[test]
fn the_checked_in_access_rules_match_the_protos() {
    let generated = access_yaml(&access_rules());
    if std::env::var_os(UPDATE_ACCESS).is_some() {
        std::fs::write(access_file(), &generated).expect("write chart/files/access.yaml");
    }
    // A missing file compares unequal, and the assertion says how to write it.
    let on_disk = std::fs::read_to_string(access_file()).unwrap_or_default();
    assert!(
        on_disk == generated,
        "chart/files/access.yaml is out of date with the access rules in proto/ \
         (the Istio AuthorizationPolicies render from it): {}; run\n  \
         {UPDATE_ACCESS}=1 cargo test -p crowdcrunch --test chart\nand review the diff",
        first_difference(&on_disk, &generated)
    );
}

/// Where `on_disk` first departs from `generated`, with the RPC it is about.
fn first_difference(on_disk: &str, generated: &str) -> String {
    let (disk, wanted): (Vec<&str>, Vec<&str>) =
        (on_disk.lines().collect(), generated.lines().collect());
    let Some(index) = (0..disk.len().max(wanted.len())).find(|&i| disk.get(i) != wanted.get(i))
    else {
        return "they differ only in line endings".to_owned();
    };
    let rpc = wanted[..index.min(wanted.len())]
        .iter()
        .rev()
        .find_map(|line| line.trim().strip_prefix("- path: "))
        .unwrap_or("the start");
    format!(
        "at line {} (after {rpc}) the chart has {:?} where the protos give {:?}",
        index + 1,
        disk.get(index).copied().unwrap_or("the end of the file"),
        wanted.get(index).copied().unwrap_or("the end of the file"),
    )
}

/// Who a rendered policy, or a rule, admits to one RPC: the process (or, for a principal that
/// is no process of the release, the principal), and whether a valid token is required.
type Admitted = BTreeSet<(String, bool)>;

/// RPCs whose admission is stated on its own, so a wrong generator cannot hide a wrong chart.
const HEADLINE_RPCS: &[(&str, &[(&str, bool)])] = &[
    (
        "/crowdcrunch.payments.v1.PaymentService/RefundPayment",
        &[("edge", true), ("exchanges", false), ("orders", false)],
    ),
    (
        "/crowdcrunch.orders.v1.OrderService/PlaceOrder",
        &[("edge", true)],
    ),
    (
        "/crowdcrunch.inventory.v1.InventoryService/ListProducts",
        &[("edge", false)],
    ),
    (
        "/crowdcrunch.payments.v1.PaymentService/AuthorizePayment",
        &[("orders", false)],
    ),
];

/// The prefixes of the paths every gRPC server serves beside its API: open to its callers.
const SERVER_PATHS: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// Per service and RPC path, the AuthorizationPolicies admit what the protos' access rules say:
/// the peers a rule names by their mesh principals, the edge for end users (with a valid request
/// principal wherever a token is needed, without one where anyone may call), no one else; every
/// rule names its paths. The service's callers reach its health and reflection.
#[test]
fn authorization_policies_follow_the_access_rules() {
    let Some(all) = rendered() else { return };
    let rules = access_rules();
    let mut expected: BTreeMap<&str, BTreeMap<String, Admitted>> = BTreeMap::new();
    for rule in rules.iter() {
        let mut admitted = Admitted::new();
        if end_users(rule) != "none" {
            admitted.insert((EDGE.to_owned(), end_users(rule) == "token"));
        }
        for peer in &rule.peers {
            assert!(
                roster::service(peer).is_some(),
                "{} names the peer {peer}, which is not in the roster",
                rule.rpc
            );
            admitted.insert((peer.clone(), false));
        }
        expected
            .entry(service_of(rule))
            .or_default()
            .insert(rule.path.clone(), admitted);
    }
    for (path, headline) in HEADLINE_RPCS {
        let rule = rules
            .rule(path)
            .unwrap_or_else(|| panic!("{path} is an RPC of the protos"));
        let admitted: Admitted = headline
            .iter()
            .map(|(who, token)| ((*who).to_owned(), *token))
            .collect();
        assert_eq!(
            expected[service_of(rule)][*path],
            admitted,
            "{path}: who the access rule admits"
        );
    }

    for r in all.iter().filter(|r| r.case.istio) {
        let case = r.case.name;
        let accounts = r.service_accounts();
        let deployments = r.deployments();
        for service in service_names() {
            let labels = at(
                deployments[service],
                &["spec", "template", "metadata", "labels"],
            );
            let mut by_path: BTreeMap<String, Admitted> = BTreeMap::new();
            let mut server_paths: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
            let policies = r
                .of_kind("AuthorizationPolicy")
                .filter(|p| selects(at(p, &["spec", "selector", "matchLabels"]), labels));
            for p in policies {
                let ctx = format!("[{case}] AuthorizationPolicy {} for {service}", name_of(p));
                for rule in seq_at(p, &["spec", "rules"]) {
                    let sources: Vec<&Value> = seq_at(rule, &["from"])
                        .iter()
                        .map(|f| at(f, &["source"]))
                        .filter(|source| !seq_at(source, &["principals"]).is_empty())
                        .collect();
                    if sources.is_empty() {
                        continue;
                    }
                    let paths: Vec<&str> = seq_at(rule, &["to"])
                        .iter()
                        .flat_map(|to| seq_at(to, &["operation", "paths"]))
                        .filter_map(Value::as_str)
                        .collect();
                    assert!(
                        !paths.is_empty(),
                        "{ctx}: a rule admits principals to every path of the service"
                    );
                    for path in paths {
                        let server = SERVER_PATHS
                            .iter()
                            .find(|prefix| path.starts_with(**prefix));
                        for source in &sources {
                            let principals = seq_at(source, &["principals"])
                                .iter()
                                .filter_map(Value::as_str);
                            let request_principals: Vec<&str> =
                                seq_at(source, &["requestPrincipals"])
                                    .iter()
                                    .filter_map(Value::as_str)
                                    .collect();
                            assert!(
                                matches!(request_principals.as_slice(), [] | ["*"]),
                                "{ctx}: {path} requires any valid token or none, not {request_principals:?}"
                            );
                            for principal in principals {
                                let who = principal
                                    .rsplit_once("/sa/")
                                    .and_then(|(_, sa)| accounts.get(sa))
                                    .map_or(principal, |app| *app);
                                match server {
                                    Some(prefix) => {
                                        assert!(
                                            path.ends_with('*') && request_principals.is_empty(),
                                            "{ctx}: {path} is open to its callers under {prefix}*"
                                        );
                                        server_paths.entry(*prefix).or_default().insert(who);
                                    }
                                    None => {
                                        by_path.entry(path.to_owned()).or_default().insert((
                                            who.to_owned(),
                                            !request_principals.is_empty(),
                                        ));
                                    }
                                }
                            }
                        }
                    }
                }
            }
            assert_eq!(
                by_path,
                expected.get(service).cloned().unwrap_or_default(),
                "[{case}] {service}: the AuthorizationPolicies admit to each RPC exactly what its \
                 access rule says (regenerate chart/files/access.yaml with {UPDATE_ACCESS}=1 \
                 cargo test -p crowdcrunch --test chart if the protos changed)"
            );
            let callers = callers_of(service);
            for prefix in SERVER_PATHS {
                assert_eq!(
                    server_paths.get(prefix).cloned().unwrap_or_default(),
                    callers,
                    "[{case}] {service}'s callers reach {prefix}*"
                );
            }
        }
    }
}

/// Every workload verifies tokens of the identity provider the values name, and, under STRICT
/// mTLS only, knows its peers by their mesh principal: its own service account is
/// `<CROWDCRUNCH_AUTH_MESH_ACCOUNT_PREFIX><service>`, one per service.
#[test]
fn every_workload_knows_the_identity_provider_and_its_peers() {
    let Some(all) = rendered() else { return };
    for r in all {
        let idp = &r.case.idp;
        let accounts = r.service_accounts();
        for (service, d) in r.deployments() {
            let ctx = format!("[{}] Deployment {}", r.case.name, name_of(d));
            let env = container_env(r, app_container(d, service));
            let var = |name: &str| env.get(name).and_then(|v| v.as_str());
            for (name, value) in [
                ("CROWDCRUNCH_AUTH_ISSUER", idp.issuer),
                ("CROWDCRUNCH_AUTH_AUDIENCE", idp.audience),
                ("CROWDCRUNCH_AUTH_JWKS_URL", idp.jwks_url),
                ("CROWDCRUNCH_AUTH_CUSTOMER_CLAIM", idp.customer_claim),
                ("CROWDCRUNCH_AUTH_ROLES_CLAIM", idp.roles_claim),
            ] {
                assert_eq!(var(name), Some(value), "{ctx}: {name}");
            }
            let trusted = if r.case.istio { "true" } else { "false" };
            assert_eq!(
                var("CROWDCRUNCH_AUTH_TRUST_MESH_IDENTITY"),
                Some(trusted),
                "{ctx}: the mesh identity is trusted exactly under Istio's STRICT mTLS"
            );
            let prefix = var("CROWDCRUNCH_AUTH_MESH_ACCOUNT_PREFIX")
                .unwrap_or_else(|| panic!("{ctx}: CROWDCRUNCH_AUTH_MESH_ACCOUNT_PREFIX is set"));
            let account = str_at(d, &["spec", "template", "spec", "serviceAccountName"])
                .unwrap_or_else(|| panic!("{ctx}: a service account"));
            assert_eq!(
                account.strip_prefix(prefix),
                Some(service),
                "{ctx}: its service account {account} is the prefix {prefix:?} and its name"
            );
            assert_eq!(
                accounts.get(account),
                Some(&service),
                "{ctx}: its ServiceAccount {account} is rendered, for it alone"
            );
        }
        let per_service = accounts
            .values()
            .filter(|app| processes().contains(**app))
            .count();
        assert_eq!(
            per_service,
            processes().len(),
            "[{}] one ServiceAccount per service",
            r.case.name
        );
    }
}

/// Istio validates tokens of the configured provider at the ingress gateway and in front of
/// every workload, and forwards the original token, which each service verifies again.
#[test]
fn istio_validates_tokens_at_the_gateway_and_every_workload() {
    let Some(all) = rendered() else { return };
    for r in all.iter().filter(|r| r.case.istio) {
        let idp = &r.case.idp;
        let check = |ra: &Value, ctx: &str| {
            let rules = seq_at(ra, &["spec", "jwtRules"]);
            let [rule] = rules else {
                panic!("{ctx}: one jwtRule, not {}", rules.len())
            };
            assert_eq!(str_at(rule, &["issuer"]), Some(idp.issuer), "{ctx}: issuer");
            assert_eq!(
                str_at(rule, &["jwksUri"]),
                Some(idp.jwks_url),
                "{ctx}: jwksUri"
            );
            let audiences: Vec<&str> = seq_at(rule, &["audiences"])
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert_eq!(audiences, [idp.audience], "{ctx}: audiences");
            assert_eq!(
                at(rule, &["forwardOriginalToken"]).as_bool(),
                Some(true),
                "{ctx}: the original token reaches the app"
            );
        };
        let in_namespace =
            |ra: &&Value, ns: &str| str_at(ra, &["metadata", "namespace"]) == Some(ns);
        for (service, d) in r.deployments() {
            let labels = at(d, &["spec", "template", "metadata", "labels"]);
            let ctx = format!("[{}] {service}'s RequestAuthentication", r.case.name);
            let ra = r
                .of_kind("RequestAuthentication")
                .filter(|ra| in_namespace(ra, NAMESPACE))
                .find(|ra| {
                    let selector = at(ra, &["spec", "selector", "matchLabels"]);
                    !selector.is_null() && selects(selector, labels)
                })
                .unwrap_or_else(|| panic!("{ctx} is rendered"));
            check(ra, &ctx);
        }
        for gateway in r.of_kind("Gateway") {
            let selector = at(gateway, &["spec", "selector"]);
            let ctx = format!(
                "[{}] the ingress gateway's RequestAuthentication",
                r.case.name
            );
            let ra = r
                .of_kind("RequestAuthentication")
                .filter(|ra| in_namespace(ra, "istio-system"))
                .find(|ra| at(ra, &["spec", "selector", "matchLabels"]) == selector)
                .unwrap_or_else(|| panic!("{ctx} is rendered in istio-system"));
            check(ra, &ctx);
        }
    }
}

/// The Gateway serves HTTPS (mode SIMPLE, the certificate from the values' Secret) on 443, and
/// plain HTTP on 80 only redirects there.
#[test]
fn the_gateway_serves_https_and_redirects_http() {
    let Some(all) = rendered() else { return };
    for r in all.iter().filter(|r| r.case.istio) {
        let gateways: Vec<&Value> = r.of_kind("Gateway").collect();
        assert_eq!(gateways.len(), 1, "[{}] one Gateway", r.case.name);
        for gateway in gateways {
            let ctx = format!("[{}] Gateway {}", r.case.name, name_of(gateway));
            let server = |protocol: &str| {
                seq_at(gateway, &["spec", "servers"])
                    .iter()
                    .find(|s| str_at(s, &["port", "protocol"]) == Some(protocol))
                    .unwrap_or_else(|| panic!("{ctx}: an {protocol} server"))
            };
            let https = server("HTTPS");
            assert_eq!(at(https, &["port", "number"]).as_u64(), Some(443), "{ctx}");
            assert_eq!(str_at(https, &["tls", "mode"]), Some("SIMPLE"), "{ctx}");
            assert_eq!(
                str_at(https, &["tls", "credentialName"]),
                Some(r.case.tls_secret),
                "{ctx}: the TLS Secret from the values"
            );
            let http = server("HTTP");
            assert_eq!(at(http, &["port", "number"]).as_u64(), Some(80), "{ctx}");
            assert_eq!(
                at(http, &["tls", "httpsRedirect"]).as_bool(),
                Some(true),
                "{ctx}: plain HTTP redirects to HTTPS"
            );
            assert_eq!(
                at(http, &["hosts"]),
                at(https, &["hosts"]),
                "{ctx}: both servers serve the same hosts"
            );
        }
    }
}
