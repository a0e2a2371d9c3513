//! Who may do what, at the edge, over real HTTP and WebSocket: the real customers, inventory and
//! ledger services behind it, each admitting calls by the real rules, and an issuer of this test's
//! own (an ES256 key whose JWKS is served over real HTTP on 127.0.0.1), so that it can also sign
//! what no good issuer would: an expired token.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use crowdcrunch_runtime::access::{AccessRules, Gatekeeper};
use crowdcrunch_runtime::auth::{
    AuthSettings, Grant, JwksUrl, SIGNING_KEY_FILE, SigningKey, TokenRules, Verifier,
};
use crowdcrunch_runtime::client::{Endpoints, ServiceToken};
use crowdcrunch_runtime::edge::EdgeSettings;
use crowdcrunch_runtime::testing::{TestDatabase, TestServer, databases};
use crowdcrunch_runtime::{ServerSettings, Shutdown};
use serde_json::{Value, json};
use support::{App, WsClient, codes};

/// This test's issuer: its key, the settings that verify its tokens, and a key it does not
/// publish.
struct Issuer {
    key: SigningKey,
    private: jsonwebtoken::EncodingKey,
    settings: AuthSettings,
    stranger: SigningKey,
    _dir: tempfile::TempDir,
}

impl Issuer {
    /// Generates the keys and serves the JWKS of the first on a free port of 127.0.0.1.
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let key = SigningKey::generate(&dir.path().join("issuer")).expect("a signing key");
        let pem = std::fs::read(dir.path().join("issuer").join(SIGNING_KEY_FILE)).expect("the key");
        let private = jsonwebtoken::EncodingKey::from_ec_pem(&pem).expect("an EC key");
        let stranger = SigningKey::generate(&dir.path().join("stranger")).expect("a signing key");
        let jwks = serde_json::to_string(&key.jwks()).expect("a JWKS");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the JWKS server");
        let issuer = format!("http://{}", listener.local_addr().expect("an address"));
        let routes = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                std::future::ready(([(http::header::CONTENT_TYPE, "application/json")], jwks))
            }),
        );
        tokio::spawn(axum::serve(listener, routes).into_future());
        let url = JwksUrl::parse(&format!("{issuer}/.well-known/jwks.json")).expect("a URL");
        Self {
            key,
            private,
            settings: AuthSettings::new(issuer, "crowdcrunch", url),
            stranger,
            _dir: dir,
        }
    }

    fn rules(&self) -> &TokenRules {
        &self.settings.rules
    }

    /// A verifier of this issuer's tokens, with its keys fetched.
    async fn verifier(&self) -> Verifier {
        let verifier = Verifier::start(self.settings.clone()).expect("a verifier");
        let mut fetches = verifier.jwks_fetches();
        fetches
            .wait_for(|fetched| *fetched > 0)
            .await
            .expect("the JWKS is fetched");
        verifier
    }

    /// `Bearer <token>` for `grant`, valid for an hour.
    fn bearer(&self, grant: &Grant) -> String {
        self.signed_by(&self.key, grant)
    }

    /// `Bearer <token>` for `grant`, valid for an hour, signed with `key`.
    fn signed_by(&self, key: &SigningKey, grant: &Grant) -> String {
        let token = key
            .mint(self.rules(), grant, Duration::from_secs(3600))
            .expect("a token");
        format!("Bearer {token}")
    }

    /// `Bearer <token>` for a customer, signed by this issuer's key, that expired an hour ago.
    fn expired(&self, customer_id: &str) -> String {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = json!({
            "iss": self.rules().issuer,
            "aud": self.rules().audience,
            "sub": customer_id,
            "iat": now - 7200,
            "nbf": now - 7200,
            "exp": now - 3600,
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.key.key_id().to_owned());
        let token = jsonwebtoken::encode(&header, &claims, &self.private).expect("a token");
        format!("Bearer {token}")
    }

    /// `Bearer <token>` for `grant`, signed with a key the JWKS does not hold.
    fn foreign(&self, grant: &Grant) -> String {
        self.signed_by(&self.stranger, grant)
    }
}

/// The shop: customers, inventory and the ledger (fed by the customers' outbox), each admitting
/// by the real rules and this test's issuer; the edge in front.
struct Shop {
    app: App,
    issuer: Issuer,
    relay: Shutdown,
    ledger_shutdown: Shutdown,
}

impl Shop {
    async fn start() -> Self {
        let issuer = Issuer::start().await;
        let rules = AccessRules::from_descriptor_set(crowdcrunch_proto::FILE_DESCRIPTOR_SET)
            .expect("the access rules");
        let gatekeeper = || async { Gatekeeper::new(rules.clone(), issuer.verifier().await) };
        let settings = || ServerSettings::new(([127, 0, 0, 1], 0).into());
        let (customers_db, inventory_db, ledger_db): (TestDatabase, TestDatabase, TestDatabase) = (
            databases("customers").remove(0),
            databases("inventory").remove(0),
            databases("ledger").remove(0),
        );

        let ledger_shutdown = Shutdown::new();
        let database = ledger_db.connect(&crowdcrunch_ledger::MIGRATOR).await;
        let ledger = TestServer::spawn_admitting(
            settings(),
            gatekeeper().await,
            crowdcrunch_ledger::service(database, ledger_shutdown.clone()),
        )
        .await;
        let ledger_endpoints = Endpoints::parse(&ledger.url()).expect("a URL");

        let database = customers_db.connect(&crowdcrunch_customers::MIGRATOR).await;
        let outbox = crowdcrunch_outbox::Outbox::open(&database, "customers")
            .await
            .expect("the outbox");
        // The relay calls the ledger as the customers service.
        let service_token = issuer.bearer(&Grant::Service("customers".to_owned()));
        let service_token = service_token.trim_start_matches("Bearer ");
        let channel = crowdcrunch_runtime::client::channel(&ledger_endpoints, None)
            .expect("a channel")
            .carrying(ServiceToken::new(service_token).expect("a token"));
        let relay = Shutdown::new();
        tokio::spawn(outbox.relay(channel).run(relay.clone()));
        let customers = TestServer::spawn_admitting(
            settings(),
            gatekeeper().await,
            crowdcrunch_customers::service(database, outbox),
        )
        .await;

        let database = inventory_db.connect(&crowdcrunch_inventory::MIGRATOR).await;
        let outbox = crowdcrunch_outbox::Outbox::open(&database, "inventory")
            .await
            .expect("the outbox");
        let inventory = TestServer::spawn_admitting(
            settings(),
            gatekeeper().await,
            crowdcrunch_inventory::service(database, outbox),
        )
        .await;

        let mut endpoints = HashMap::new();
        let mut backends = HashMap::new();
        for (name, server) in [
            ("customers", customers),
            ("inventory", inventory),
            ("ledger", ledger),
        ] {
            endpoints.insert(
                name.to_owned(),
                Endpoints::parse(&server.url()).expect("a URL"),
            );
            backends.insert(name.to_owned(), server);
        }
        let mut app = support::spawn_edge_verifying(
            EdgeSettings::default(),
            &endpoints,
            backends,
            issuer.verifier().await,
        )
        .await;
        app.databases
            .extend([customers_db, inventory_db, ledger_db]);
        Self {
            app,
            issuer,
            relay,
            ledger_shutdown,
        }
    }

    fn staff(&self) -> String {
        self.issuer.bearer(&Grant::Staff("sam".to_owned()))
    }

    fn customer(&self, id: &str) -> String {
        self.issuer.bearer(&Grant::Customer(id.to_owned()))
    }

    /// POSTs `query` with `variables` as `authorization` (no token when `None`), asking for
    /// `application/graphql-response+json`.
    async fn post(
        &self,
        authorization: Option<&str>,
        query: &str,
        variables: Value,
    ) -> support::Answer {
        let mut headers = vec![("accept", "application/graphql-response+json")];
        if let Some(authorization) = authorization {
            headers.push(("authorization", authorization));
        }
        self.app
            .post_exactly(&json!({"query": query, "variables": variables}), &headers)
            .await
    }

    /// Every backend call the edge made so far.
    fn calls(&self) -> u64 {
        self.app.edge.backend_calls().values().sum()
    }

    async fn stop(self) {
        self.relay.trigger();
        self.ledger_shutdown.trigger();
        self.app.stop().await;
    }
}

const CREATE_PRODUCT: &str = "mutation($sku: String!) {
  createProduct(input: {product: {sku: $sku, title: \"Mug\", price: {currencyCode: \"USD\", minorUnits: 1299}}, initialStock: 5}) { sku }
}";

const CREATE_CUSTOMER: &str = "mutation($email: String!) {
  createCustomer(input: {customer: {email: $email}}) { id }
}";

/// Creates a customer as staff and answers their id.
async fn create_customer(shop: &Shop, email: &str) -> String {
    let answer = shop
        .post(
            Some(&shop.staff()),
            CREATE_CUSTOMER,
            json!({"email": email}),
        )
        .await;
    let body = answer.json();
    assert_eq!(answer.status, 200, "{body}");
    body["data"]["createCustomer"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("staff create customers: {body}"))
        .to_owned()
}

#[tokio::test]
async fn anyone_reads_the_catalog_and_staff_run_the_back_office() {
    let shop = Shop::start().await;
    let staff = shop.staff();
    let created = shop
        .post(Some(&staff), CREATE_PRODUCT, json!({"sku": "MUG-1"}))
        .await
        .json();
    assert!(created["errors"].is_null(), "{created}");
    assert_eq!(created["data"]["createProduct"]["sku"], "MUG-1");
    let listed = shop
        .post(Some(&staff), "{ customers { nodes { id } } }", Value::Null)
        .await
        .json();
    assert!(listed["errors"].is_null(), "{listed}");

    let answer = shop
        .post(
            None,
            "{ products { nodes { sku title stock { onHand } } } }",
            Value::Null,
        )
        .await;
    let body = answer.json();
    assert_eq!(answer.status, 200, "{body}");
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(body["data"]["products"]["nodes"][0]["sku"], "MUG-1");
    assert_eq!(body["data"]["products"]["nodes"][0]["stock"]["onHand"], 5);
    shop.stop().await;
}

#[tokio::test]
async fn no_token_where_one_is_needed_is_401_before_any_backend_call() {
    let shop = Shop::start().await;
    let operations = [
        ("a staff root", "{ customers { nodes { id } } }"),
        (
            "beside an open field",
            "{ products { nodes { sku } } customer(id: \"cus_1\") { id } }",
        ),
        (
            "through a fragment",
            "{ ...Everyone } fragment Everyone on Query { products { nodes { sku } } customers { nodes { id } } }",
        ),
        (
            "through an inline fragment",
            "{ ... on Query { order(id: \"ord_1\") { id } } }",
        ),
        (
            "a staff mutation",
            "mutation { adjustStock(input: {sku: \"MUG-1\", delta: 1, reason: \"found\"}) { onHand } }",
        ),
    ];
    for (what, query) in operations {
        for accept in ["application/graphql-response+json", "application/json"] {
            let before = shop.calls();
            let answer = shop
                .app
                .post_exactly(&json!({"query": query}), &[("accept", accept)])
                .await;
            assert_eq!(answer.status, 401, "{what} ({accept}): {}", answer.json());
            assert_eq!(
                answer.headers.get("www-authenticate").map(|v| v.as_bytes()),
                Some(&b"Bearer"[..]),
                "{what}"
            );
            assert!(answer.content_type().starts_with(accept), "{what}");
            let body = answer.json();
            assert_eq!(codes(&body), ["UNAUTHENTICATED"], "{what}: {body}");
            assert!(body.get("data").is_none(), "{what}: {body}");
            assert_eq!(shop.calls(), before, "{what}: no backend was called");
        }
    }
    shop.stop().await;
}

#[tokio::test]
async fn a_bad_token_is_401_invalid_token_even_where_anyone_may_read() {
    let shop = Shop::start().await;
    let issuer = &shop.issuer;
    let tokens = [
        ("not a JWT", "Bearer not-a-jwt".to_owned()),
        ("not Bearer", "Basic YWxhZGRpbjpvcGVu".to_owned()),
        ("expired", issuer.expired("cus_1")),
        (
            "signed with a key the JWKS does not hold",
            issuer.foreign(&Grant::Customer("cus_1".to_owned())),
        ),
        (
            "a peer service's, from the internet",
            issuer.bearer(&Grant::Service("orders".to_owned())),
        ),
    ];
    for (what, authorization) in &tokens {
        let before = shop.calls();
        let answer = shop
            .post(
                Some(authorization),
                "{ products { nodes { sku } } }",
                Value::Null,
            )
            .await;
        assert_eq!(answer.status, 401, "{what}: {}", answer.json());
        let challenge = answer
            .headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            challenge.starts_with(r#"Bearer error="invalid_token""#),
            "{what}: {challenge}"
        );
        let body = answer.json();
        assert_eq!(codes(&body), ["UNAUTHENTICATED"], "{what}: {body}");
        assert_eq!(shop.calls(), before, "{what}: no backend was called");
    }
    shop.stop().await;
}

#[tokio::test]
async fn a_customer_without_the_role_gets_forbidden_on_that_field_and_the_rest_as_usual() {
    let shop = Shop::start().await;
    let ada = create_customer(&shop, "ada@example.com").await;
    let customer = shop.customer(&ada);

    // A staff mutation: null with FORBIDDEN, and no call.
    let before = shop.app.edge.backend_calls();
    let answer = shop
        .post(Some(&customer), CREATE_PRODUCT, json!({"sku": "MUG-2"}))
        .await;
    let body = answer.json();
    assert_eq!(answer.status, 200, "{body}");
    assert_eq!(body["data"]["createProduct"], Value::Null, "{body}");
    assert_eq!(codes(&body), ["FORBIDDEN"], "{body}");
    assert_eq!(body["errors"][0]["path"], json!(["createProduct"]));
    assert_eq!(body["errors"][0]["extensions"]["required"], "staff");

    // A staff read beside what the customer may read: the rest resolves.
    let answer = shop
        .post(
            Some(&customer),
            "query($id: ID!) { me: customer(id: $id) { id } products { nodes { sku } } customers { nodes { id } } }",
            json!({"id": ada}),
        )
        .await;
    let body = answer.json();
    assert_eq!(answer.status, 200, "{body}");
    assert_eq!(codes(&body), ["FORBIDDEN"], "{body}");
    assert_eq!(body["errors"][0]["path"], json!(["customers"]));
    assert_eq!(body["data"]["customers"], Value::Null);
    assert_eq!(body["data"]["me"]["id"], ada.as_str(), "{body}");
    assert!(body["data"]["products"]["nodes"].is_array(), "{body}");
    let after = shop.app.edge.backend_calls();
    for rpc in [
        "crowdcrunch.inventory.v1.InventoryService.CreateProduct",
        "crowdcrunch.customers.v1.CustomerService.ListCustomers",
    ] {
        assert_eq!(after.get(rpc), before.get(rpc), "{rpc} was not called");
    }
    shop.stop().await;
}

#[tokio::test]
async fn the_service_judges_the_forwarded_token_again_and_another_customers_record_is_not_found() {
    let shop = Shop::start().await;
    let ada = create_customer(&shop, "ada@example.com").await;
    let bob = create_customer(&shop, "bob@example.com").await;
    let query = "query($id: ID!) { customer(id: $id) { id email } }";

    // The customers service admits Ada only because the edge forwarded her token.
    let own = shop
        .post(Some(&shop.customer(&ada)), query, json!({"id": ada}))
        .await
        .json();
    assert!(own["errors"].is_null(), "{own}");
    assert_eq!(own["data"]["customer"]["email"], "ada@example.com");

    // Bob's record is, to Ada, a record that does not exist.
    let other = shop
        .post(Some(&shop.customer(&ada)), query, json!({"id": bob}))
        .await
        .json();
    assert_eq!(other["data"]["customer"], Value::Null, "{other}");
    assert_eq!(codes(&other), ["NOT_FOUND"], "{other}");
    let missing = shop
        .post(
            Some(&shop.customer(&ada)),
            query,
            json!({"id": "cus_0000000000000000000000000"}),
        )
        .await
        .json();
    assert_eq!(codes(&missing), codes(&other), "{missing}");
    shop.stop().await;
}

#[tokio::test]
async fn websocket_callers_are_judged_at_connection_init_and_at_subscribe() {
    let shop = Shop::start().await;
    let issuer = &shop.issuer;

    // A bad token, or a service's, closes the socket with 4403.
    for authorization in [
        "Bearer not-a-jwt".to_owned(),
        issuer.expired("cus_1"),
        issuer.bearer(&Grant::Service("orders".to_owned())),
    ] {
        let mut ws = WsClient::open(&shop.app).await;
        ws.send(json!({"type": "connection_init", "payload": {"authorization": authorization}}))
            .await;
        let (code, _) = ws.closed().await.expect("a close frame");
        assert_eq!(code, 4403, "{authorization}");
    }

    // No token: the connection opens, and a subscription that needs one is refused.
    let mut ws = WsClient::open(&shop.app).await;
    ws.send(json!({"type": "connection_init"})).await;
    assert_eq!(ws.receive().await["type"], "connection_ack");
    let before = shop.calls();
    ws.subscribe("anonymous", "subscription { events { type } }", Value::Null)
        .await;
    let refused = ws.receive().await;
    assert_eq!(refused["id"], "anonymous", "{refused}");
    let errors = json!({"errors": refused["payload"].as_array().map_or_else(
        || refused["payload"]["errors"].clone(),
        |errors| Value::Array(errors.clone()),
    )});
    assert_eq!(codes(&errors), ["UNAUTHENTICATED"], "{refused}");
    assert_eq!(shop.calls(), before, "no backend was called");
    ws.close().await;

    // A good token subscribes; the ledger admits the forwarded token and streams.
    let ada = create_customer(&shop, "ada@example.com").await;
    let mut ws = WsClient::open(&shop.app).await;
    ws.send(json!({"type": "connection_init", "payload": {"authorization": shop.staff()}}))
        .await;
    assert_eq!(ws.receive().await["type"], "connection_ack");
    ws.subscribe(
        "staff",
        "subscription($subject: String) { events(subject: $subject) { type subject } }",
        json!({"subject": ada}),
    )
    .await;
    let next = ws.receive().await;
    assert_eq!(next["type"], "next", "{next}");
    assert_eq!(
        next["payload"]["data"]["events"]["subject"],
        ada.as_str(),
        "{next}"
    );
    ws.close().await;
    shop.stop().await;
}
