//! `crowdcrunch load`: drives one GraphQL operation (or, for comparison, one gRPC method) at a
//! given concurrency for a duration or a number of requests, against any URL, and prints
//! requests/s, errors and latency percentiles from an HDR histogram, with a progress line while
//! it runs.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use hyper::body::Bytes;
use prost_reflect::{DescriptorPool, DynamicMessage};

use crowdcrunch_runtime::client::{Endpoints, GrpcChannel, ServiceToken};

use crate::http_client::HttpClient;

/// Flags of `crowdcrunch load`.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// What to load: a GraphQL endpoint (`http://127.0.0.1:8080/graphql`) with --query, or a gRPC
    /// server (`http://127.0.0.1:50053`) with --grpc-method.
    url: http::Uri,
    /// The GraphQL document to send.
    #[arg(long, required_unless_present = "grpc_method")]
    query: Option<String>,
    /// The document's variables, as a JSON object.
    #[arg(long, requires = "query")]
    variables: Option<String>,
    /// A gRPC method to call instead, e.g. `crowdcrunch.orders.v1.OrderService/GetOrder`.
    #[arg(long, conflicts_with = "query", requires = "data")]
    grpc_method: Option<String>,
    /// The gRPC request in the protobuf JSON mapping, e.g. `{"id": "..."}`.
    #[arg(long)]
    data: Option<String>,
    /// A file holding the bearer token to call with (`crowdcrunch token … > FILE`).
    #[arg(long, value_name = "PATH")]
    token_file: Option<std::path::PathBuf>,
    /// Requests in flight at once.
    #[arg(long, short = 'c', default_value_t = 16)]
    concurrency: usize,
    /// How long to run, e.g. `10s`, `1m` (ignored with --requests).
    #[arg(long, short = 'd', default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Stop after this many requests instead.
    #[arg(long, short = 'n')]
    requests: Option<u64>,
}

/// What one request does.
#[derive(Clone)]
enum Target {
    Graphql {
        client: HttpClient,
        uri: http::Uri,
        body: Bytes,
        authorization: Option<http::HeaderValue>,
    },
    Grpc {
        grpc: tonic::client::Grpc<GrpcChannel>,
        path: http::uri::PathAndQuery,
        codec: crowdcrunch_edge::DynamicCodec,
        request: DynamicMessage,
    },
}

impl Target {
    fn new(args: &LoadArgs) -> anyhow::Result<Self> {
        let token = args
            .token_file
            .as_deref()
            .map(ServiceToken::from_file)
            .transpose()?;
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
            let data = args.data.as_deref().unwrap_or("{}");
            let mut deserializer = serde_json::Deserializer::from_str(data);
            let request = DynamicMessage::deserialize(method.input(), &mut deserializer)
                .context("--data is not a valid request")?;
            let channel = crowdcrunch_runtime::client::channel(
                &Endpoints::single(args.url.to_string().parse()?),
                None,
            )?;
            let channel = match token {
                Some(token) => channel.carrying(token),
                None => channel,
            };
            return Ok(Self::Grpc {
                grpc: tonic::client::Grpc::new(channel),
                path: format!("/{service}/{name}").parse()?,
                codec: crowdcrunch_edge::DynamicCodec::new(method.output()),
                request,
            });
        }
        let query = args
            .query
            .clone()
            .context("give --query or --grpc-method")?;
        let variables: serde_json::Value = match &args.variables {
            Some(text) => serde_json::from_str(text).context("--variables is not JSON")?,
            None => serde_json::Value::Null,
        };
        let body =
            serde_json::to_vec(&serde_json::json!({"query": query, "variables": variables}))?;
        Ok(Self::Graphql {
            client: HttpClient::new(args.concurrency),
            uri: args.url.clone(),
            body: Bytes::from(body),
            authorization: token.map(|token| token.authorization()),
        })
    }

    /// One request; an error says why it failed.
    async fn once(&mut self) -> Result<(), String> {
        match self {
            Self::Graphql {
                client,
                uri,
                body,
                authorization,
            } => {
                let (status, body) = client
                    .post_json(uri, body.clone(), authorization.as_ref())
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
                request,
            } => {
                grpc.ready().await.map_err(|error| error.to_string())?;
                grpc.unary(
                    tonic::Request::new(request.clone()),
                    path.clone(),
                    codec.clone(),
                )
                .await
                .map(drop)
                .map_err(|status| format!("{:?}: {}", status.code(), status.message()))
            }
        }
    }
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

/// Runs the load and prints the report.
#[expect(clippy::print_stdout, reason = "the report is the command's output")]
pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    let target = Target::new(&args)?;
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
                let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                    .expect("valid histogram bounds");
                while !stop.load(Ordering::Relaxed) {
                    if let Some(limit) = limit
                        && counters.started.fetch_add(1, Ordering::Relaxed) >= limit
                    {
                        break;
                    }
                    let sent = Instant::now();
                    let result = target.once().await;
                    let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                    histogram.saturating_record(micros.max(1));
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

    let progress = tokio::spawn({
        let counters = counters.clone();
        let stop = stop.clone();
        let duration = args.duration;
        async move {
            let terminal = std::io::stderr().is_terminal();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let elapsed = start.elapsed();
                let done = counters.done.load(Ordering::Relaxed);
                let errors = counters.errors.load(Ordering::Relaxed);
                let line = format!(
                    "{:>5.1}s  {done} requests  {:.0}/s  {errors} errors",
                    elapsed.as_secs_f64(),
                    done as f64 / elapsed.as_secs_f64()
                );
                let mut stderr = std::io::stderr();
                let _ = if terminal {
                    write!(stderr, "\r{line}   ")
                } else {
                    writeln!(stderr, "{line}")
                };
                if limit.is_none() && elapsed >= duration {
                    stop.store(true, Ordering::Relaxed);
                }
            }
        }
    });
    if limit.is_none() {
        tokio::time::sleep(args.duration).await;
        stop.store(true, Ordering::Relaxed);
    }
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for worker in workers {
        histogram.add(worker.await.context("a load worker panicked")?)?;
    }
    let elapsed = start.elapsed();
    progress.abort();
    if std::io::stderr().is_terminal() {
        eprintln!();
    }

    let done = counters.done.load(Ordering::Relaxed);
    let errors = counters.errors.load(Ordering::Relaxed);
    let ms = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
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
    println!(
        "  latency   p50 {:.2}ms  p90 {:.2}ms  p99 {:.2}ms  p99.9 {:.2}ms  max {:.2}ms",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        histogram.max() as f64 / 1000.0
    );
    if let Some(error) = first_error
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
    {
        println!("  first error: {error}");
    }
    Ok(())
}
