//! Memory under many distinct bad documents, over real HTTP in front of the real customers
//! service: oversized documents are refused before parsing, invalid ones are parsed and refused
//! by validation, and neither is kept in the document cache or as a persisted query, so the
//! edge's memory stays flat. A test binary of its own, so that no other test's allocations are
//! counted in the process's resident memory.

mod support;

use crowdcrunch_runtime::edge::EdgeSettings;
use serde_json::{Value, json};
use support::{App, codes, spawn_app};

/// POSTs `body` as staff, asking for `application/graphql-response+json`.
async fn post(app: &App, body: &Value) -> support::Answer {
    app.post(body, &[("accept", "application/graphql-response+json")])
        .await
}

/// The resident memory of this process (the edge runs in it), in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// A document of unknown fields `{ f<n>_0 f<n>_1 ... }`, distinct for each `n`, about `bytes`
/// long.
fn unknown_fields(n: usize, bytes: usize) -> String {
    let mut document = String::from("{");
    let mut field = 0;
    while document.len() < bytes {
        document.push_str(&format!(" f{n}_{field}"));
        field += 1;
    }
    document.push_str(" }");
    document
}

#[tokio::test]
async fn distinct_bad_documents_leave_the_caches_empty_and_memory_flat() {
    let app = spawn_app(EdgeSettings::default(), &[]).await;
    let settings = app.edge.settings().clone();
    // One of each kind first, so what the process allocates once is not counted.
    post(&app, &json!({ "query": unknown_fields(1_000, 250_000) })).await;
    post(&app, &json!({ "query": unknown_fields(1_001, 12_000) })).await;
    let before = resident_bytes();

    for n in 0..100 {
        // 250 KB, under the body limit: refused before parsing.
        let oversized = unknown_fields(n, 250_000);
        let answer = post(&app, &json!({ "query": oversized })).await;
        assert_eq!(answer.status, 400);
        assert_eq!(codes(&answer.json()), ["QUERY_TOO_LARGE"]);

        // Within the bounds, parsed, and refused by validation (unknown fields), also when it
        // asks to be persisted.
        let invalid = unknown_fields(n, 12_000);
        let hash = hex_sha256(&invalid);
        let persisted = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
        let answer = post(&app, &json!({ "query": invalid, "extensions": persisted })).await;
        assert_eq!(answer.status, 400);
        let body = answer.json();
        assert!(body.get("data").is_none());
        assert!(!codes(&body).is_empty());
        // Its hash alone is not known: it never validated.
        let answer = post(&app, &json!({ "extensions": persisted })).await;
        assert_eq!(codes(&answer.json()), ["PERSISTED_QUERY_NOT_FOUND"]);
    }

    let cached = app.edge.cached_documents();
    assert_eq!(cached.documents.entries, 0, "{cached:?}");
    assert_eq!(cached.persisted.entries, 0, "{cached:?}");
    let grown = resident_bytes().saturating_sub(before);
    assert!(
        grown < 20 * 1024 * 1024,
        "the edge grew by {grown} bytes over 200 bad documents"
    );

    // A document that validates is kept, weighed in bytes within the budget.
    let valid = "{ customers(first: 1) { nodes { id } } }";
    let answer = post(&app, &json!({ "query": valid })).await;
    assert_eq!(answer.status, 200);
    let cached = app.edge.cached_documents();
    assert_eq!(cached.documents.entries, 1);
    assert!(cached.documents.bytes > valid.len());
    assert!(cached.documents.bytes + cached.persisted.bytes <= settings.document_cache_bytes);
    app.stop().await;
}

fn hex_sha256(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}
