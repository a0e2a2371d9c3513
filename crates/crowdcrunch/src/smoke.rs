//! `crowdcrunch smoke`: a short check that a running edge answers and reaches every service (what
//! `helm test` runs). Each step is retried until it passes or the patience runs out.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use hyper::body::Bytes;

use crowdcrunch_runtime::client::ServiceToken;

use crate::http_client::{HttpClient, origin};

/// Flags of `crowdcrunch smoke`.
#[derive(Debug, clap::Args)]
pub struct SmokeArgs {
    /// The edge's GraphQL URL.
    #[arg(long, default_value = "http://127.0.0.1:8080/graphql")]
    url: http::Uri,
    /// A file holding a staff token. Without one, the lists that need a token are checked to be
    /// refused with 401 UNAUTHENTICATED (the edge answers and enforces), not to reach their service.
    #[arg(long, value_name = "PATH")]
    token_file: Option<std::path::PathBuf>,
    /// How long to keep retrying a step that fails.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    patience: Duration,
}

/// Runs the checks; an error names the first step that never passed.
#[expect(
    clippy::print_stdout,
    reason = "each passed step is the report `helm test` shows"
)]
pub async fn run(args: SmokeArgs) -> anyhow::Result<()> {
    let client = HttpClient::new(1);
    let authorization = args
        .token_file
        .as_deref()
        .map(ServiceToken::from_file)
        .transpose()?
        .map(|token| token.authorization());
    let base = origin(&args.url)?;
    let deadline = Instant::now() + args.patience;
    for path in ["/healthz", "/readyz"] {
        let uri: http::Uri = format!("{base}{path}").parse()?;
        retry(deadline, path, || async {
            let (status, _) = client.get(&uri).await?;
            anyhow::ensure!(status.is_success(), "{uri} answered {status}");
            Ok(())
        })
        .await?;
        println!("ok   {path}");
    }
    let queries = std::iter::once(("schema", "__typename".to_owned())).chain(
        crowdcrunch::roster::by_port().into_iter().map(|service| {
            let list = format!(
                "{}(first: 1) {{ pageInfo {{ hasNextPage }} }}",
                service.listed_by
            );
            (service.name, list)
        }),
    );
    for (name, selection) in queries {
        let query = format!("{{ {selection} }}");
        let body = Bytes::from(serde_json::to_vec(&serde_json::json!({ "query": query }))?);
        let outcome = retry(deadline, name, || async {
            let (status, body) = client
                .post_json(&args.url, body.clone(), authorization.as_ref())
                .await?;
            let json: serde_json::Value =
                serde_json::from_slice(&body).context("the answer is not JSON")?;
            if authorization.is_none()
                && status == http::StatusCode::UNAUTHORIZED
                && json["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
            {
                return Ok("refused without a token, as it must be (--token-file reaches it)");
            }
            anyhow::ensure!(
                status.is_success() && json["errors"].is_null() && json["data"].is_object(),
                "{status}: {json}"
            );
            Ok("answered")
        })
        .await?;
        println!("ok   {name}: {query}: {outcome}");
    }
    println!("smoke test passed: {}", args.url);
    Ok(())
}

async fn retry<T, F, Fut>(deadline: Instant, step: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    loop {
        match check().await {
            Ok(passed) => return Ok(passed),
            Err(error) if Instant::now() >= deadline => {
                return Err(error.context(format!("smoke step {step} failed")));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}
