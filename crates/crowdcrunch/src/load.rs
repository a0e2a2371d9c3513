//! `crowdcrunch load`: drives one GraphQL operation (or, for comparison, one gRPC method) at a
//! given concurrency for a duration or a number of requests, against any URL, and prints
//! requests/s, errors and latency percentiles from an HDR histogram, with a progress line while
//! it runs. Requests carry the headers given with `-H` (a customer's or staff's token), their
//! variables or data may hold [`template`] placeholders that take a fresh value per request, and
//! `--scenario shop` simulates shoppers instead of repeating one operation ([`scenario`]).

mod scenario;
mod template;

use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use hyper::body::Bytes;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};

use crowdcrunch_runtime::client::{Endpoints, GrpcChannel, ServiceToken};

use crate::http_client::HttpClient;
use scenario::ScenarioArgs;
use template::Template;

/// Flags of `crowdcrunch load`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = TEMPLATE_HELP)]
pub struct LoadArgs {
    /// What to load: a GraphQL endpoint (`http://127.0.0.1:8080/graphql`) with --query or
    /// --scenario, or a gRPC server (`http://127.0.0.1:50053`) with --grpc-method.
    url: http::Uri,
    /// The GraphQL document to send.
    #[arg(long, required_unless_present_any = ["grpc_method", "scenario"])]
    query: Option<String>,
    /// The document's variables, as a JSON object; its string values may hold placeholders
    /// (see below).
    #[arg(long, requires = "query")]
    variables: Option<String>,
    /// A gRPC method to call instead, e.g. `crowdcrunch.orders.v1.OrderService/GetOrder`.
    #[arg(long, conflicts_with = "query", requires = "data")]
    grpc_method: Option<String>,
    /// The gRPC request in the protobuf JSON mapping, e.g. `{"id": "..."}`; its string values
    /// may hold placeholders (see below).
    #[arg(long)]
    data: Option<String>,
    /// A header to send with every request, as `NAME: VALUE` (HTTP headers for GraphQL, metadata
    /// for gRPC), e.g. `-H "authorization: Bearer $CUSTOMER_TOKEN"`. Repeatable.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    headers: Vec<Header>,
    /// A file holding the bearer token to call with (`crowdcrunch token … > FILE`): the same as
    /// `-H "authorization: Bearer <its content>"`.
    #[arg(long, value_name = "PATH")]
    token_file: Option<std::path::PathBuf>,
    /// Requests in flight at once (not with --scenario: see --shoppers).
    #[arg(long, short = 'c', default_value_t = 16)]
    concurrency: usize,
    /// How long to run, e.g. `10s`, `1m` (ignored with --requests).
    #[arg(long, short = 'd', default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Stop after this many requests instead (not with --scenario).
    #[arg(long, short = 'n', conflicts_with = "scenario")]
    requests: Option<u64>,
    #[command(flatten, next_help_heading = "Scenario")]
    scenario: ScenarioArgs,
}

/// The placeholders, at the end of `load --help`.
const TEMPLATE_HELP: &str = "\
Placeholders, in the JSON string values of --variables and --data, take a fresh value per request:
  {{uuid}}          a fresh UUID (v7) at every occurrence, e.g. \"requestId\": \"{{uuid}}\"
  {{counter}}       the request's number (1, 2, 3, ... over the run; one value per request);
                    a string that is exactly \"{{counter}}\" becomes a JSON number
  {{pick:a,b,c}}    one of the comma-separated values, at random
  {{file:PATH}}     one non-blank line of the file at PATH (read once at start), at random
They may sit inside longer strings (\"shopper-{{counter}}@example.com\"); object keys are never
templated. `{{` always opens a placeholder: a bad one is an error at start.

Example: an honest mutation benchmark as a customer, each order with its own request id:
  crowdcrunch load http://127.0.0.1:8080/graphql -c 32 -d 30s \\
    -H \"authorization: Bearer $CUSTOMER_TOKEN\" \\
    --query 'mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id } }' \\
    --variables '{\"input\": {\"requestId\": \"{{uuid}}\", \"customerId\": \"<id>\",
      \"lines\": [{\"sku\": \"{{pick:MUG-CERAMIC,PEN-SET}}\", \"quantity\": 1}],
      \"card\": {\"number\": \"4242424242424242\", \"expMonth\": 12, \"expYear\": 2031, \"cvc\": \"123\"},
      \"shippingAddress\": {\"recipient\": \"Ada\", \"line1\": \"1 Main St\", \"city\": \"London\", \"countryCode\": \"GB\"}}}'

A shop of 32 simulated shoppers for 30 s against `crowdcrunch dev` (see --scenario):
  crowdcrunch load http://127.0.0.1:8080/graphql --scenario shop --shoppers 32 -d 30s \\
    --mix browse=60,order=30,cancel=5,return=5 --data-dir ./data";

/// One `-H NAME: VALUE`.
#[derive(Debug, Clone)]
struct Header {
    name: http::HeaderName,
    value: http::HeaderValue,
}

fn parse_header(text: &str) -> Result<Header, String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not `NAME: VALUE`"))?;
    let name = http::HeaderName::try_from(name.trim())
        .map_err(|_| format!("{:?} is not a header name", name.trim()))?;
    let mut value = http::HeaderValue::try_from(value.trim())
        .map_err(|_| format!("the value of {name} must be visible ASCII"))?;
    if name == http::header::AUTHORIZATION {
        value.set_sensitive(true);
    }
    Ok(Header { name, value })
}

/// The headers every request carries: `-H`, and `--token-file` as `authorization`.
fn headers(args: &LoadArgs) -> anyhow::Result<http::HeaderMap> {
    let mut headers = http::HeaderMap::new();
    for header in &args.headers {
        headers.append(header.name.clone(), header.value.clone());
    }
    if let Some(path) = &args.token_file {
        anyhow::ensure!(
            !headers.contains_key(http::header::AUTHORIZATION),
            "give --token-file or -H 'authorization: …', not both"
        );
        let token = ServiceToken::from_file(path)?;
        headers.insert(http::header::AUTHORIZATION, token.authorization());
    }
    Ok(headers)
}

/// A histogram of latencies in microseconds, from 1 µs to a minute.
fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Records the time since `sent` in `histogram`.
fn record_latency(histogram: &mut Histogram<u64>, sent: Instant) {
    let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
    histogram.saturating_record(micros.max(1));
}

/// `p50 …ms  p90 …ms  p99 …ms  max …ms` of a latency histogram.
fn percentiles(histogram: &Histogram<u64>) -> String {
    let ms = |micros: u64| micros as f64 / 1000.0;
    format!(
        "p50 {:.2}ms  p90 {:.2}ms  p99 {:.2}ms  max {:.2}ms",
        ms(histogram.value_at_quantile(0.5)),
        ms(histogram.value_at_quantile(0.9)),
        ms(histogram.value_at_quantile(0.99)),
        ms(histogram.max())
    )
}

/// Writes `line(elapsed)` to stderr every second (in place on a terminal) until aborted;
/// [`end_progress`] ends it.
fn progress(
    start: Instant,
    line: impl Fn(Duration) -> String + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let terminal = std::io::stderr().is_terminal();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            let line = line(start.elapsed());
            let mut stderr = std::io::stderr();
            let _ = if terminal {
                write!(stderr, "\r{line}   ")
            } else {
                writeln!(stderr, "{line}")
            };
        }
    })
}

/// Stops a [`progress`] line, leaving the terminal on a fresh line.
fn end_progress(progress: &tokio::task::JoinHandle<()>) {
    progress.abort();
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
}

/// What one request does.
#[derive(Clone)]
enum Target {
    Graphql {
        client: HttpClient,
        uri: http::Uri,
        query: Arc<str>,
        variables: Arc<Template>,
        /// The body when the variables hold no placeholder.
        fixed_body: Option<Bytes>,
        headers: Arc<http::HeaderMap>,
    },
    Grpc {
        grpc: tonic::client::Grpc<GrpcChannel>,
        path: http::uri::PathAndQuery,
        codec: crowdcrunch_edge::DynamicCodec,
        input: MessageDescriptor,
        data: Arc<Template>,
        /// The request when the data holds no placeholder.
        fixed_request: Option<DynamicMessage>,
        metadata: tonic::metadata::MetadataMap,
    },
}

/// `text` as JSON with its placeholders parsed; `what` names the flag in errors.
fn template(text: Option<&str>, what: &str) -> anyhow::Result<Template> {
    let value = match text {
        Some(text) => serde_json::from_str(text).with_context(|| format!("{what} is not JSON"))?,
        None => serde_json::Value::Null,
    };
    Template::parse(value).with_context(|| format!("{what} has a bad placeholder"))
}

impl Target {
    fn new(args: &LoadArgs, headers: http::HeaderMap) -> anyhow::Result<Self> {
        if let Some(method) = &args.grpc_method {
            let pool = DescriptorPool::decode(crowdcrunch_proto::FILE_DESCRIPTOR_SET)?;
            let (service, name) = method
                .trim_start_matches('/')
                .split_once('/')
                .context("--grpc-method must be package.Service/Method")?;
            let method = pool
                .get_service_by_name(service)
                .and_then(|service| service.methods().find(|m| m.name() == name))
                .with_context(|| format!("no gRPC method {service}/{name}"))?;
            let data = template(Some(args.data.as_deref().unwrap_or("{}")), "--data")?;
            // One rendering now, so that a request the method cannot take fails at start.
            let sample =
                DynamicMessage::deserialize(method.input(), data.sample(&mut fastrand::Rng::new()))
                    .context("--data is not a valid request")?;
            let channel = crowdcrunch_runtime::client::channel(
                &Endpoints::single(args.url.to_string().parse()?),
                None,
            )?;
            return Ok(Self::Grpc {
                grpc: tonic::client::Grpc::new(channel),
                path: format!("/{service}/{name}").parse()?,
                codec: crowdcrunch_edge::DynamicCodec::new(method.output()),
                input: method.input(),
                fixed_request: data.is_fixed().then_some(sample),
                data: Arc::new(data),
                metadata: tonic::metadata::MetadataMap::from_headers(headers),
            });
        }
        let query: Arc<str> = args
            .query
            .as_deref()
            .context("give --query, --grpc-method or --scenario")?
            .into();
        let variables = template(args.variables.as_deref(), "--variables")?;
        let fixed_body = variables
            .is_fixed()
            .then(|| graphql_body(&query, &variables.sample(&mut fastrand::Rng::new())));
        Ok(Self::Graphql {
            client: HttpClient::new(args.concurrency),
            uri: args.url.clone(),
            query,
            variables: Arc::new(variables),
            fixed_body,
            headers: Arc::new(headers),
        })
    }

    /// One request; an error says why it failed.
    async fn once(&mut self, random: &mut fastrand::Rng) -> Result<(), String> {
        match self {
            Self::Graphql {
                client,
                uri,
                query,
                variables,
                fixed_body,
                headers,
            } => {
                let body = match fixed_body {
                    Some(body) => body.clone(),
                    None => graphql_body(query, &variables.render(random)),
                };
                let (status, body) = client
                    .post_json_with(uri, body, headers)
                    .await
                    .map_err(|error| error.to_string())?;
                if !status.is_success() {
                    return Err(format!("HTTP {status}"));
                }
                // A GraphQL error anywhere in the answer is an error of the request.
                if memchr(b"\"errors\"", &body) {
                    return Err(String::from_utf8_lossy(&body).chars().take(300).collect());
                }
                Ok(())
            }
            Self::Grpc {
                grpc,
                path,
                codec,
                input,
                data,
                fixed_request,
                metadata,
            } => {
                let message = match fixed_request {
                    Some(message) => message.clone(),
                    None => DynamicMessage::deserialize(input.clone(), data.render(random))
                        .map_err(|error| format!("the rendered --data is not valid: {error}"))?,
                };
                let mut request = tonic::Request::new(message);
                *request.metadata_mut() = metadata.clone();
                grpc.ready().await.map_err(|error| error.to_string())?;
                grpc.unary(request, path.clone(), codec.clone())
                    .await
                    .map(drop)
                    .map_err(|status| format!("{:?}: {}", status.code(), status.message()))
            }
        }
    }
}

/// A GraphQL request body.
fn graphql_body(query: &str, variables: &serde_json::Value) -> Bytes {
    Bytes::from(serde_json::json!({"query": query, "variables": variables}).to_string())
}

fn memchr(needle: &[u8], haystack: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[derive(Default)]
struct Counters {
    done: AtomicU64,
    errors: AtomicU64,
    started: AtomicU64,
}

/// Runs the load (or the scenario) and prints the report.
#[expect(clippy::print_stdout, reason = "the report is the command's output")]
pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let headers = headers(&args)?;
    if let Some(scenario) = args.scenario.scenario {
        return scenario::run(scenario, &args.url, headers, args.duration, &args.scenario).await;
    }
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    let target = Target::new(&args, headers)?;
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let start = Instant::now();
    let limit = args.requests;
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let mut target = target.clone();
            let counters = counters.clone();
            let stop = stop.clone();
            let first_error = first_error.clone();
            tokio::spawn(async move {
                let mut random = fastrand::Rng::new();
                let mut histogram = latency_histogram();
                while !stop.load(Ordering::Relaxed) {
                    if let Some(limit) = limit
                        && counters.started.fetch_add(1, Ordering::Relaxed) >= limit
                    {
                        break;
                    }
                    let sent = Instant::now();
                    let result = target.once(&mut random).await;
                    record_latency(&mut histogram, sent);
                    counters.done.fetch_add(1, Ordering::Relaxed);
                    if let Err(error) = result {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        first_error
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .get_or_insert(error);
                    }
                }
                histogram
            })
        })
        .collect();

    let progress = progress(start, {
        let counters = counters.clone();
        move |elapsed| {
            let done = counters.done.load(Ordering::Relaxed);
            let errors = counters.errors.load(Ordering::Relaxed);
            format!(
                "{:>5.1}s  {done} requests  {:.0}/s  {errors} errors",
                elapsed.as_secs_f64(),
                done as f64 / elapsed.as_secs_f64()
            )
        }
    });
    if limit.is_none() {
        tokio::time::sleep(args.duration).await;
        stop.store(true, Ordering::Relaxed);
    }
    let mut histogram = latency_histogram();
    for worker in workers {
        histogram.add(worker.await.context("a load worker panicked")?)?;
    }
    let elapsed = start.elapsed();
    end_progress(&progress);

    let done = counters.done.load(Ordering::Relaxed);
    let errors = counters.errors.load(Ordering::Relaxed);
    let what = match (&args.query, &args.grpc_method) {
        (_, Some(method)) => format!("gRPC {method}"),
        _ => "GraphQL".to_owned(),
    };
    println!(
        "{what} at {}: concurrency {}, {:.1}s",
        args.url,
        args.concurrency,
        elapsed.as_secs_f64()
    );
    println!(
        "  requests  {done} ({:.1}/s)",
        done as f64 / elapsed.as_secs_f64()
    );
    println!("  errors    {errors}");
    println!("  latency   {}", percentiles(&histogram));
    if let Some(error) = first_error
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
    {
        println!("  first error: {error}");
    }
    Ok(())
}
