//! `crowdcrunch dev`: every service in one process, each on its own port on 127.0.0.1, talking
//! real gRPC to each other, with embedded SQLite under `--data-dir` and demo data seeded on the
//! first start only. Identities are on, as everywhere: `dev` keeps a signing key in the data dir,
//! publishes its JWKS on the edge's port, gives every service a token of its own for its calls,
//! and prints a customer's and a staff member's token to start with. The key of the services'
//! page tokens is kept in the data dir too, so that a page token survives a restart.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use crowdcrunch::roster::{self, Service, UpstreamArgs};
use crowdcrunch::services::{BoundService, Upstreams};
use crowdcrunch_proto::customers::v1 as customers;
use crowdcrunch_proto::inventory::v1 as inventory;
use crowdcrunch_runtime::access::Gatekeeper;
use crowdcrunch_runtime::auth::{AuthSettings, Grant, JwksUrl, SigningKey, TokenRules, Verifier};
use crowdcrunch_runtime::client::{Endpoints, GrpcChannel, ServiceToken};
use crowdcrunch_runtime::config::TelemetryArgs;
use crowdcrunch_runtime::edge::{EdgeSettings, Origin};
use crowdcrunch_runtime::http::HttpServer;
use crowdcrunch_runtime::metrics::MetricsServer;
use crowdcrunch_runtime::pagination::PageTokens;
use crowdcrunch_runtime::telemetry::ServiceName;
use crowdcrunch_runtime::{ServerSettings, Shutdown, StorageSettings};
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;

use crate::edge::BoundEdge;

/// The file whose presence in the data dir says the demo data was seeded once already.
const SEEDED_MARKER: &str = ".demo-seeded";

/// The issuer (`iss`) of `dev`'s tokens: the edge's default address, where its JWKS is.
pub const DEV_ISSUER: &str = "http://127.0.0.1:8080";

/// The audience (`aud`) of `dev`'s tokens.
pub const DEV_AUDIENCE: &str = "crowdcrunch";

/// Where the edge publishes `dev`'s JWKS.
const JWKS_PATH: &str = "/.well-known/jwks.json";

/// How long the services' own tokens last: as long as a `dev` session plausibly runs.
const SERVICE_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// How long the printed tokens last.
const PRINTED_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The demo customer whose token `dev` prints.
const DEMO_CUSTOMER_EMAIL: &str = "ada@example.com";

/// The claims `dev`'s tokens carry and its services check (`crowdcrunch token` mints the same).
pub fn dev_token_rules() -> TokenRules {
    TokenRules::new(DEV_ISSUER, DEV_AUDIENCE)
}

/// Flags of `crowdcrunch dev`.
#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// Directory of the embedded databases (created when missing).
    #[arg(long, default_value = "./data", value_name = "DIR")]
    data_dir: PathBuf,
    /// Address every server listens on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// The port of each service.
    #[command(flatten)]
    ports: ServicePorts,
    /// Port of the GraphQL edge (GraphiQL at `/`, the API at `/graphql`).
    #[arg(long, default_value_t = roster::EDGE_PORT)]
    edge_port: u16,
    /// Port of the Prometheus `/metrics` endpoint.
    #[arg(long, default_value_t = 9090)]
    metrics_port: u16,
    #[command(flatten)]
    telemetry: TelemetryArgs,
}

/// The port of each service in `dev`: one `--<name>-port` flag per row of the roster, its
/// default port by default.
#[derive(Debug, Clone, Default)]
struct ServicePorts(BTreeMap<&'static str, u16>);

impl ServicePorts {
    fn flag(service: &Service) -> String {
        format!("{}-port", service.name)
    }

    fn port(&self, service: &Service) -> u16 {
        self.0
            .get(service.name)
            .copied()
            .unwrap_or(service.default_port)
    }
}

impl clap::FromArgMatches for ServicePorts {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut ports = Self::default();
        ports.update_from_arg_matches(matches)?;
        Ok(ports)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        for service in &roster::SERVICES {
            if let Some(port) = matches.get_one::<u16>(&Self::flag(service)) {
                self.0.insert(service.name, *port);
            }
        }
        Ok(())
    }
}

impl clap::Args for ServicePorts {
    fn augment_args(command: clap::Command) -> clap::Command {
        roster::by_port()
            .into_iter()
            .fold(command, |command, service| {
                command.arg(
                    clap::Arg::new(Self::flag(service))
                        .long(Self::flag(service))
                        .value_name(format!("{}_PORT", service.name.to_uppercase()))
                        .value_parser(clap::value_parser!(u16))
                        .default_value(service.default_port.to_string())
                        .help(format!("Port of the {} service", service.name)),
                )
            })
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

/// Runs the whole system until Ctrl-C or SIGTERM.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let telemetry = args.telemetry.settings()?;
    let _telemetry = crowdcrunch_runtime::telemetry::init(ServiceName::new("dev"), &telemetry)?;
    let storage = StorageSettings::Sqlite {
        data_dir: args.data_dir.clone(),
    };
    let first_start = !args.data_dir.join(SEEDED_MARKER).exists();

    let metrics_addr = SocketAddr::new(args.host, args.metrics_port);
    let metrics = MetricsServer::bind(metrics_addr)
        .await
        .with_context(|| format!("cannot listen on {metrics_addr} for metrics"))?;
    let key = SigningKey::load_or_generate(&args.data_dir)?;
    // Kept beside the signing key, so that page tokens survive a restart of `dev`.
    let page_tokens = PageTokens::load_or_generate(&args.data_dir)?;
    let rules = crowdcrunch::services::access_rules()?;
    // The edge's port is bound first: the JWKS that every verifier here fetches is served there.
    let edge_server = HttpServer::bind(SocketAddr::new(args.host, args.edge_port))
        .await
        .context("cannot start the edge")?;
    let jwks_url = format!("{}{JWKS_PATH}", local_url(edge_server.local_addr()));
    let mut auth = AuthSettings::new(
        DEV_ISSUER,
        DEV_AUDIENCE,
        JwksUrl::parse(&jwks_url).map_err(|error| anyhow::anyhow!("{jwks_url}: {error}"))?,
    );
    // The first fetch may come before the edge serves; on this machine, try again a second later.
    auth.jwks.min_refresh_interval = Duration::from_secs(1);
    let verifier = Verifier::start(auth)?;
    let token_rules = dev_token_rules();
    // Each service calls the ones bound before it at the addresses they really got, as itself.
    let mut upstream = UpstreamArgs::default();
    let mut services = Vec::new();
    for service in &roster::SERVICES {
        let settings = ServerSettings::new(SocketAddr::new(args.host, args.ports.port(service)))
            .with_page_tokens(page_tokens.clone());
        let own_token = ServiceToken::new(&key.mint(
            &token_rules,
            &Grant::Service(service.name.to_owned()),
            SERVICE_TOKEN_TTL,
        )?)?;
        let upstreams = Upstreams::resolve(service, &upstream, None, Some(&own_token))?;
        let gatekeeper = Gatekeeper::new(rules.clone(), verifier.clone());
        let bound =
            crowdcrunch::services::bind(service, settings, &storage, &upstreams, gatekeeper)
                .await?;
        upstream.set(service.name, local_endpoints(bound.addr())?)?;
        services.push(bound);
    }
    services.sort_by_key(|bound| bound.service().default_port);
    // The edge calls every service bound above, and publishes the JWKS.
    // GraphiQL's page is served by the edge itself, under either name of this machine.
    let edge_port = edge_server.local_addr().port();
    let edge_origins = [
        local_url(edge_server.local_addr()),
        format!("http://localhost:{edge_port}"),
    ]
    .iter()
    .map(|origin| Origin::parse(origin))
    .collect::<Result<Vec<_>, _>>()?;
    let edge = BoundEdge::on(
        edge_server,
        EdgeSettings::development(edge_origins),
        &crate::edge::endpoints(&upstream),
        None,
        verifier.clone(),
        Duration::from_secs(10),
    )?
    .with_routes(jwks_routes(&key));
    let metrics_addr = metrics
        .local_addr()
        .with_context(|| format!("cannot read the address bound for {metrics_addr}"))?;
    let edge_addr = edge.addr();
    print_table(&services, edge_addr, metrics_addr, &args.data_dir);
    let addr_of = |name: &str| {
        services
            .iter()
            .find(|bound| bound.service().name == name)
            .map(BoundService::addr)
            .with_context(|| format!("{name} is not running"))
    };
    let customers_addr = addr_of("customers")?;
    let inventory_addr = addr_of("inventory")?;

    let shutdown = Shutdown::on_signals();
    let mut running: FuturesUnordered<_> = services
        .into_iter()
        .map(|service| tokio::spawn(service.serve(shutdown.clone())))
        .collect();
    running.push(tokio::spawn(edge.serve(shutdown.clone())));
    running.push(tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            metrics
                .serve(shutdown)
                .await
                .context("metrics server failed")
        }
    }));

    // Seeding calls as staff, which needs the keys the edge now publishes.
    let mut fetches = verifier.jwks_fetches();
    tokio::time::timeout(
        Duration::from_secs(10),
        fetches.wait_for(|fetches| *fetches > 0),
    )
    .await
    .map_err(|_| anyhow::anyhow!("the services cannot fetch dev's JWKS at {jwks_url}"))?
    .context("the token verifier stopped")?;
    let staff_token = key.mint(
        &token_rules,
        &Grant::Staff("dev".to_owned()),
        PRINTED_TOKEN_TTL,
    )?;
    let staff = ServiceToken::new(&staff_token)?;
    let staff_channel = |addr: SocketAddr| -> anyhow::Result<GrpcChannel> {
        Ok(
            crowdcrunch_runtime::client::channel(&local_endpoints(addr)?, None)?
                .carrying(staff.clone()),
        )
    };
    let customers_channel = staff_channel(customers_addr)?;
    if first_start {
        seed_customers(customers_channel.clone(), &shutdown)
            .await
            .context("cannot seed the demo customers")?;
        seed_catalog(staff_channel(inventory_addr)?, &shutdown)
            .await
            .context("cannot seed the demo catalog")?;
        std::fs::write(args.data_dir.join(SEEDED_MARKER), b"demo data seeded\n").with_context(
            || {
                format!(
                    "cannot write {}",
                    args.data_dir.join(SEEDED_MARKER).display()
                )
            },
        )?;
        tracing::info!("demo data seeded");
    }
    // A stop during start-up ends the listing with the servers: then there is nothing to print.
    let demo_customer = tokio::select! {
        biased;
        () = shutdown.cancelled() => None,
        found = demo_customer_id(customers_channel) => Some(found?),
    };
    if let Some(demo_customer) = demo_customer {
        let customer_token = key.mint(
            &token_rules,
            &Grant::Customer(demo_customer.clone()),
            PRINTED_TOKEN_TTL,
        )?;
        print_tokens(edge_addr, &demo_customer, &customer_token, &staff_token);
    }

    let mut result = Ok(());
    while let Some(finished) = running.next().await {
        let outcome = finished
            .context("a server task panicked")
            .and_then(|outcome| outcome);
        if let Err(error) = outcome {
            // One server failing stops the others: a half-running system misleads.
            shutdown.trigger();
            result = result.and(Err(error));
        }
    }
    result
}

/// How the other services reach a service bound at `addr`.
fn local_endpoints(addr: SocketAddr) -> anyhow::Result<Endpoints> {
    Ok(Endpoints::single(
        local_url(addr).parse().context("a local URL")?,
    ))
}

/// The `http://` URL of a server bound at `addr`, on loopback when it listens everywhere.
fn local_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => IpAddr::from([127, 0, 0, 1]),
        ip if ip.is_unspecified() => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// The route of `dev`'s JWKS (its signing key's public half), merged into the edge's.
fn jwks_routes(key: &SigningKey) -> axum::Router {
    let jwks = axum::Json(key.jwks());
    axum::Router::new().route(
        JWKS_PATH,
        axum::routing::get(move || std::future::ready(jwks.clone())),
    )
}

/// The id of the demo customer whose token `dev` prints.
async fn demo_customer_id(channel: GrpcChannel) -> anyhow::Result<String> {
    let mut client = customers::customer_service_client::CustomerServiceClient::new(channel);
    let mut page_token = String::new();
    loop {
        let page = client
            .list_customers(customers::ListCustomersRequest {
                page_token,
                ..Default::default()
            })
            .await
            .context("cannot list the customers")?
            .into_inner();
        if let Some(customer) = page
            .customers
            .into_iter()
            .find(|customer| customer.email == DEMO_CUSTOMER_EMAIL)
        {
            return Ok(customer.id);
        }
        if page.next_page_token.is_empty() {
            anyhow::bail!("the demo customer {DEMO_CUSTOMER_EMAIL} is not in the data dir");
        }
        page_token = page.next_page_token;
    }
}

#[expect(
    clippy::print_stdout,
    reason = "the table of addresses is what `dev` shows its user"
)]
fn print_table(
    services: &[BoundService],
    edge_addr: SocketAddr,
    metrics_addr: SocketAddr,
    data_dir: &Path,
) {
    println!("CrowdCrunch dev: every service on its own port (Ctrl-C drains and stops)");
    println!("  {:<12} {:<22} PROTOCOL", "SERVICE", "ADDRESS");
    for service in services {
        println!(
            "  {:<12} {:<22} gRPC (reflection, health)",
            service.service().name,
            service.addr()
        );
    }
    println!(
        "  {:<12} {:<22} GraphQL over HTTP and WebSocket (/graphql; GraphiQL at /)",
        "edge", edge_addr
    );
    println!(
        "  {:<12} {:<22} Prometheus /metrics",
        "metrics", metrics_addr
    );
    println!("  data dir: {}", data_dir.display());
}

#[expect(
    clippy::print_stdout,
    reason = "the tokens are what `dev` gives its user to call with"
)]
fn print_tokens(edge_addr: SocketAddr, customer_id: &str, customer: &str, staff: &str) {
    let graphql = format!("{}/graphql", local_url(edge_addr));
    let example = |token: &str, query: &str| {
        format!(
            "curl -s {graphql} -H \"Authorization: Bearer ${token}\" \\\n      \
             -H 'Content-Type: application/json' -d '{{\"query\":\"{query}\"}}'"
        )
    };
    println!("Tokens, valid for an hour (`crowdcrunch token --help` mints more):");
    println!("  # the demo customer {customer_id} ({DEMO_CUSTOMER_EMAIL})");
    println!("  export CUSTOMER_TOKEN={customer}");
    println!(
        "  {}",
        example(
            "CUSTOMER_TOKEN",
            "{ orders(first: 10) { edges { node { id status } } } }"
        )
    );
    println!("  # staff (the back office)");
    println!("  export STAFF_TOKEN={staff}");
    println!(
        "  {}",
        example(
            "STAFF_TOKEN",
            "{ customers(first: 10) { edges { node { id email } } } }"
        )
    );
    println!("  GraphiQL: paste {{\"Authorization\": \"Bearer <token>\"}} into its Headers tab.");
}

/// Demo customers, created through the real gRPC API with fixed request ids.
async fn seed_customers(channel: GrpcChannel, shutdown: &Shutdown) -> anyhow::Result<()> {
    let mut client = customers::customer_service_client::CustomerServiceClient::new(channel);
    let demo = [
        ("ada@example.com", "Ada Lovelace"),
        ("grace@example.com", "Grace Hopper"),
        ("alan@example.com", "Alan Turing"),
    ];
    for (index, (email, display_name)) in demo.into_iter().enumerate() {
        if shutdown.is_triggered() {
            break;
        }
        client
            .create_customer(customers::CreateCustomerRequest {
                customer: Some(customers::Customer {
                    email: email.to_owned(),
                    display_name: display_name.to_owned(),
                    ..Default::default()
                }),
                request_id: format!("demo-customer-{index}"),
            })
            .await
            .with_context(|| format!("creating demo customer {email}"))?;
    }
    Ok(())
}

/// The demo catalogue: SKU, title, price in US cents, units in stock.
const CATALOG: [(&str, &str, i64, i32); 14] = [
    ("TSHIRT-BLK-M", "T-shirt, black, M", 1999, 40),
    ("TSHIRT-WHT-M", "T-shirt, white, M", 1999, 40),
    ("HOODIE-GRY-L", "Hoodie, grey, L", 4999, 25),
    ("CAP-NAVY", "Cap, navy", 2499, 30),
    ("BEANIE-BLK", "Beanie, black", 1799, 30),
    ("SOCKS-3PK", "Socks, pack of 3", 1299, 60),
    ("MUG-CERAMIC", "Ceramic mug", 1299, 50),
    ("BOTTLE-STEEL", "Steel water bottle", 2999, 35),
    ("TOTE-CANVAS", "Canvas tote bag", 1599, 45),
    ("BACKPACK-20L", "Backpack, 20 l", 7999, 20),
    ("NOTEBOOK-A5", "Notebook, A5, dotted", 999, 80),
    ("PEN-SET", "Pen set of 4", 899, 70),
    ("STICKER-PACK", "Sticker pack", 499, 100),
    ("POSTER-A2", "Poster, A2", 1499, 25),
];

/// The demo catalogue, in stock, created through the real gRPC API with fixed request ids.
async fn seed_catalog(channel: GrpcChannel, shutdown: &Shutdown) -> anyhow::Result<()> {
    let mut client = inventory::inventory_service_client::InventoryServiceClient::new(channel);
    for (sku, title, cents, units) in CATALOG {
        if shutdown.is_triggered() {
            break;
        }
        client
            .create_product(inventory::CreateProductRequest {
                product: Some(inventory::Product {
                    sku: sku.to_owned(),
                    title: title.to_owned(),
                    price: Some(crowdcrunch_proto::r#type::v1::Money {
                        currency_code: "USD".to_owned(),
                        minor_units: cents,
                    }),
                    active: true,
                    ..Default::default()
                }),
                initial_stock: units,
                request_id: format!("demo-product-{sku}"),
            })
            .await
            .with_context(|| format!("creating demo product {sku}"))?;
    }
    Ok(())
}
