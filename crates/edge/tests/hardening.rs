//! Production's defaults over real HTTP: introspection, GraphiQL and field suggestions off
//! unless enabled; security headers on every answer; CORS by the allow-list with correct
//! preflights; request ids and trace headers from outside believed only behind a trusted proxy.

mod support;

use std::time::Duration;

use crowdcrunch_runtime::edge::{EdgeSettings, Origin};
use http_body_util::Full;
use hyper::body::Bytes;
use serde_json::{Value, json};
use support::{Answer, App, spawn_app, spawn_app_recording};

const SHOP: &str = "https://shop.example.com";
const OTHER: &str = "https://evil.example.net";

fn header<'a>(answer: &'a Answer, name: &str) -> Option<&'a str> {
    answer
        .headers
        .get(name)
        .map(|value| value.to_str().expect("ascii header"))
}

/// Every `Vary` value of `answer`, lower-cased.
fn vary(answer: &Answer) -> String {
    answer
        .headers
        .get_all(http::header::VARY)
        .iter()
        .map(|value| value.to_str().expect("ascii").to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn options(app: &App, origin: &str) -> Answer {
    app.send(
        http::Request::options(format!("http://{}/graphql", app.addr))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type, authorization",
            )
            .body(Full::new(Bytes::new()))
            .expect("request"),
    )
    .await
}

#[tokio::test]
async fn graphiql_introspection_and_suggestions_are_off_unless_enabled() {
    let production = spawn_app(EdgeSettings::default(), &[]).await;
    for path in [
        "/",
        "/graphiql/graphiql.min.js",
        "/graphiql/graphiql-init.js",
    ] {
        let answer = production.get(path, &[("accept", "text/html")]).await;
        assert_eq!(answer.status, 404, "{path} is served in production");
    }
    let page = production.get("/graphql", &[("accept", "text/html")]).await;
    assert!(
        !String::from_utf8_lossy(&page.body).contains("graphiql"),
        "GraphiQL is served at /graphql in production"
    );
    let typo = production
        .graphql("{ customerz(first: 1) { nodes { id } } }", Value::Null)
        .await;
    assert!(!typo["errors"].is_null(), "{typo}");
    assert!(
        !typo.to_string().contains("Did you mean"),
        "suggestions in production: {typo}"
    );
    let introspection = production
        .graphql("{ __schema { queryType { name } } }", Value::Null)
        .await;
    assert!(
        introspection["data"]["__schema"].is_null(),
        "{introspection}"
    );
    production.stop().await;

    let development = spawn_app(EdgeSettings::development(Vec::new()), &[]).await;
    let page = development.get("/", &[("accept", "text/html")]).await;
    assert_eq!(page.status, 200);
    let csp = header(&page, "content-security-policy").expect("GraphiQL's CSP");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-eval"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let html = String::from_utf8_lossy(&page.body);
    assert!(
        !html.contains("<script>"),
        "an inline script would be blocked by script-src 'self': {html}"
    );
    for script in html.split("<script src=\"").skip(1) {
        let path = script.split('"').next().expect("a quoted path");
        let asset = development.get(path, &[]).await;
        assert_eq!(asset.status, 200, "{path}");
        assert_eq!(header(&asset, "content-type"), Some("text/javascript"));
    }
    let typo = development
        .graphql("{ customerz(first: 1) { nodes { id } } }", Value::Null)
        .await;
    assert!(typo.to_string().contains("Did you mean"), "{typo}");
    let introspection = development
        .graphql("{ __schema { queryType { name } } }", Value::Null)
        .await;
    assert_eq!(
        introspection["data"]["__schema"]["queryType"]["name"], "Query",
        "{introspection}"
    );
    development.stop().await;
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let app = spawn_app(EdgeSettings::default(), &[]).await;
    let query = json!({"query": "{ customers(first: 1) { nodes { id } } }"});
    let answers = [
        ("a GraphQL answer", app.post(&query, &[]).await),
        (
            "a refused GraphQL request",
            app.post(&json!({"query": "{"}), &[]).await,
        ),
        (
            "a GraphQL GET",
            app.get("/graphql?query=%7B__typename%7D", &[]).await,
        ),
        ("a probe", app.get("/healthz", &[]).await),
        ("a missing page", app.get("/nowhere", &[]).await),
    ];
    for (what, answer) in &answers {
        assert_eq!(
            header(answer, "x-content-type-options"),
            Some("nosniff"),
            "{what}"
        );
        let csp = header(answer, "content-security-policy").unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp:?}");
        assert_eq!(
            header(answer, "referrer-policy"),
            Some("no-referrer"),
            "{what}"
        );
    }
    for (what, answer) in &answers[..3] {
        assert_eq!(
            header(answer, "cache-control"),
            Some("no-store"),
            "{what} carries personal data"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn cors_admits_the_allowed_origins_and_no_other() {
    let settings = EdgeSettings {
        allowed_origins: vec![Origin::parse(SHOP).expect("origin")],
        ..EdgeSettings::default()
    };
    let app = spawn_app(settings, &[]).await;

    let preflight = options(&app, SHOP).await;
    assert_eq!(preflight.status, 204, "{preflight:?}");
    assert_eq!(
        header(&preflight, "access-control-allow-origin"),
        Some(SHOP)
    );
    assert!(vary(&preflight).contains("origin"), "{preflight:?}");
    let methods = header(&preflight, "access-control-allow-methods").expect("methods");
    assert!(
        methods.contains("GET") && methods.contains("POST"),
        "{methods}"
    );
    let allowed = header(&preflight, "access-control-allow-headers")
        .expect("headers")
        .to_ascii_lowercase();
    for name in ["content-type", "authorization"] {
        assert!(allowed.contains(name), "{allowed}");
    }
    let max_age: u32 = header(&preflight, "access-control-max-age")
        .expect("max age")
        .parse()
        .expect("seconds");
    assert!(max_age > 0);

    let refused = options(&app, OTHER).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(
        refused
            .headers
            .keys()
            .all(|name| !name.as_str().starts_with("access-control-")),
        "no CORS headers for another origin: {refused:?}"
    );

    let query = json!({"query": "{ __typename }"});
    let simple = app.post(&query, &[("origin", SHOP)]).await;
    assert_eq!(simple.status, 200);
    assert_eq!(header(&simple, "access-control-allow-origin"), Some(SHOP));
    assert!(vary(&simple).contains("origin"));
    let foreign = app.post(&query, &[("origin", OTHER)]).await;
    assert!(
        foreign
            .headers
            .keys()
            .all(|name| !name.as_str().starts_with("access-control-")),
        "{foreign:?}"
    );
    app.stop().await;
}

/// A trace the client claims to belong to, with Envoy's headers.
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const OUTSIDE_REQUEST_ID: &str = "req-from-outside";

fn forged_headers() -> Vec<(&'static str, String)> {
    vec![
        ("traceparent", format!("00-{TRACE_ID}-b7ad6b7169203331-01")),
        ("tracestate", "congo=t61rcWkgMzE".to_owned()),
        ("x-request-id", OUTSIDE_REQUEST_ID.to_owned()),
        (
            "x-b3-traceid",
            "80f198ee56343ba864fe8b2a57d3eff7".to_owned(),
        ),
        ("x-b3-spanid", "e457b5a2e4d86bd1".to_owned()),
        (
            "b3",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1".to_owned(),
        ),
    ]
}

/// The answer and the headers the backend received for one query sent with `headers`.
async fn query_with(
    app: &App,
    recorded: &support::RecordedCalls,
    headers: &[(&'static str, String)],
) -> (Answer, http::HeaderMap) {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    let answer = app
        .post(
            &json!({"query": "{ customers(first: 1) { nodes { id } } }"}),
            &headers,
        )
        .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(answer.json()["errors"].is_null(), "{}", answer.json());
    let call = recorded
        .lock()
        .expect("lock")
        .iter()
        .rev()
        .find(|call| call["x-recorded-path"] != "/grpc.health.v1.Health/Check")
        .cloned()
        .expect("the backend was called");
    (answer, call)
}

fn is_uuid_v7(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok_and(|id| id.get_version_num() == 7)
}

#[tokio::test]
async fn trace_headers_and_request_ids_from_outside_are_believed_only_behind_a_trusted_proxy() {
    let (app, recorded) = spawn_app_recording(EdgeSettings::default(), Duration::ZERO).await;
    let (answer, call) = query_with(&app, &recorded, &forged_headers()).await;
    let traceparent = call["traceparent"].to_str().expect("ascii");
    assert!(
        !traceparent.contains(TRACE_ID),
        "the edge starts its own trace: {traceparent}"
    );
    assert!(
        call.get("tracestate").is_none_or(|state| state.is_empty()),
        "{call:?}"
    );
    for name in ["x-b3-traceid", "x-b3-spanid", "b3"] {
        assert!(call.get(name).is_none(), "{name} reached the backend");
    }
    let minted = header(&answer, "x-request-id").expect("a request id");
    assert_ne!(minted, OUTSIDE_REQUEST_ID);
    assert!(is_uuid_v7(minted), "{minted}");
    assert_eq!(
        call["x-request-id"], minted,
        "the backend sees the id the client is told"
    );

    // None sent: one is minted all the same.
    let (answer, call) = query_with(&app, &recorded, &[]).await;
    let minted = header(&answer, "x-request-id").expect("a request id");
    assert!(is_uuid_v7(minted), "{minted}");
    assert_eq!(call["x-request-id"], minted);
    app.stop().await;

    let trusted = EdgeSettings {
        trusted_proxy: true,
        ..EdgeSettings::default()
    };
    let (app, recorded) = spawn_app_recording(trusted, Duration::ZERO).await;
    let (answer, call) = query_with(&app, &recorded, &forged_headers()).await;
    let traceparent = call["traceparent"].to_str().expect("ascii");
    assert!(traceparent.contains(TRACE_ID), "{traceparent}");
    assert_eq!(call["tracestate"], "congo=t61rcWkgMzE");
    assert_eq!(call["x-b3-traceid"], "80f198ee56343ba864fe8b2a57d3eff7");
    assert_eq!(header(&answer, "x-request-id"), Some(OUTSIDE_REQUEST_ID));
    assert_eq!(call["x-request-id"], OUTSIDE_REQUEST_ID);
    let (answer, call) = query_with(&app, &recorded, &[]).await;
    let minted = header(&answer, "x-request-id").expect("a request id");
    assert!(is_uuid_v7(minted), "{minted}");
    assert_eq!(call["x-request-id"], minted);
    app.stop().await;
}
