//! Bearer tokens over a real JWKS server on 127.0.0.1: ES256 and RS256 accepted; every refusal with
//! its own error; Keycloak's `realm_access.roles`; key rotation without restart; the unknown-`kid`
//! refresh rate limit; the cache of verified tokens; the `dev` signing key round trip; and bad
//! settings as one-line errors.

use std::future::IntoFuture as _;
use std::os::unix::fs::PermissionsExt as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Parser as _;
use crowdcrunch_runtime::auth::{
    AuthArgs, AuthError, AuthSettings, ClaimPath, Grant, Identity, JwksUrl, SIGNING_KEY_FILE,
    SigningKey, SigningKeyError, TokenRules, TrustedCa, Verifier, bearer_challenge,
};
use http::{HeaderMap, HeaderValue, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tonic_types::StatusExt as _;

const ISSUER: &str = "https://id.test/realms/shop";
const AUDIENCE: &str = "crowdcrunch";
const RSA_KID: &str = "test-rsa-1";
const RSA_PRIVATE_PEM: &[u8] = include_bytes!("testdata/rsa-2048-private.pem");
const RSA_PUBLIC_JWK: &str = include_str!("testdata/rsa-2048-public.jwk.json");
const HOUR: Duration = Duration::from_secs(3600);

/// A JWKS server whose document the test changes, counting the fetches it answers.
#[derive(Clone)]
struct JwksServer {
    document: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
    url: JwksUrl,
}

impl JwksServer {
    /// Serves over plain HTTP.
    async fn start(keys: Vec<Value>) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the JWKS server");
        let server = Self::new(keys, "http", &listener);
        tokio::spawn(axum::serve(listener, server.app()).into_future());
        server
    }

    /// Serves over HTTPS with a certificate for 127.0.0.1 (PEM chain and key).
    async fn start_tls(keys: Vec<Value>, certificate: &str, key: &str) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the JWKS server");
        let server = Self::new(keys, "https", &listener);
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(certificate.as_bytes()).expect("certificate")],
            PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key"),
        )
        .expect("TLS configuration");
        let listener = TlsListener {
            tcp: listener,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(tls)),
        };
        tokio::spawn(axum::serve(listener, server.app()).into_future());
        server
    }

    fn new(keys: Vec<Value>, scheme: &str, listener: &tokio::net::TcpListener) -> Self {
        let address = listener.local_addr().expect("address");
        Self {
            document: Arc::new(Mutex::new(json!({ "keys": keys }))),
            fetches: Arc::new(AtomicUsize::new(0)),
            failing: Arc::new(AtomicBool::new(false)),
            url: JwksUrl::parse(&format!("{scheme}://{address}/.well-known/jwks.json"))
                .expect("JWKS URL"),
        }
    }

    fn app(&self) -> axum::Router {
        axum::Router::new()
            .route("/.well-known/jwks.json", axum::routing::get(serve_jwks))
            .with_state(self.clone())
    }

    fn publish(&self, keys: Vec<Value>) {
        *self.document.lock().expect("document") = json!({ "keys": keys });
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// A TCP listener that hands axum TLS streams (connections that fail the handshake are dropped).
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, address)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, address);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

async fn serve_jwks(State(server): State<JwksServer>) -> Response {
    server.fetches.fetch_add(1, Ordering::SeqCst);
    if server.failing.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let document = server.document.lock().expect("document").clone();
    axum::Json(document).into_response()
}

/// An ES256 key from the `dev` key store, with what tests need to sign arbitrary claims.
struct EcKey {
    key: SigningKey,
    private: EncodingKey,
    _dir: tempfile::TempDir,
}

impl EcKey {
    fn generate() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = SigningKey::generate(dir.path()).expect("generate");
        let pem = std::fs::read(dir.path().join(SIGNING_KEY_FILE)).expect("read key");
        let private = EncodingKey::from_ec_pem(&pem).expect("EC PEM");
        Self {
            key,
            private,
            _dir: dir,
        }
    }

    fn jwk(&self) -> Value {
        let jwks = serde_json::to_value(self.key.jwks()).expect("JWKS JSON");
        jwks["keys"][0].clone()
    }

    fn sign(&self, claims: &Value) -> String {
        sign(&self.private, Algorithm::ES256, self.key.key_id(), claims)
    }
}

fn rsa_private() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM).expect("RSA PEM")
}

fn rsa_jwk() -> Value {
    serde_json::from_str(RSA_PUBLIC_JWK).expect("RSA JWK")
}

fn sign(key: &EncodingKey, algorithm: Algorithm, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(algorithm);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

fn now() -> i64 {
    i64::try_from(jsonwebtoken::get_current_timestamp()).expect("time")
}

/// Valid claims for customer `customer_id`, with `changes` applied (`null` removes a claim).
fn claims(customer_id: &str, changes: Value) -> Value {
    let mut claims = json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": customer_id,
        "iat": now(),
        "exp": now() + 3600,
    });
    if let (Some(claims), Value::Object(changes)) = (claims.as_object_mut(), changes) {
        for (name, value) in changes {
            if value.is_null() {
                claims.remove(&name);
            } else {
                claims.insert(name, value);
            }
        }
    }
    claims
}

/// A token in the shape of a compact JWS, from raw header and claims JSON and signature bytes.
fn compact(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

fn settings(server: &JwksServer) -> AuthSettings {
    AuthSettings::new(ISSUER, AUDIENCE, server.url.clone())
}

fn customer(id: &str) -> Identity {
    Identity::Customer {
        customer_id: id.to_owned(),
    }
}

#[tokio::test]
async fn es256_and_rs256_tokens_are_accepted_from_headers_metadata_and_values() {
    let ec = EcKey::generate();
    let server = JwksServer::start(vec![ec.jwk(), rsa_jwk()]).await;
    let verifier = Verifier::start(settings(&server)).expect("verifier");

    let es256 = ec
        .key
        .mint(
            &TokenRules::new(ISSUER, AUDIENCE),
            &Grant::Customer("cus_es".into()),
            HOUR,
        )
        .expect("mint");
    assert_eq!(verifier.verify(&es256).await, Ok(customer("cus_es")));

    let rs256 = sign(
        &rsa_private(),
        Algorithm::RS256,
        RSA_KID,
        &claims("cus_rs", json!({})),
    );
    assert_eq!(verifier.verify(&rs256).await, Ok(customer("cus_rs")));

    let mut headers = HeaderMap::new();
    assert_eq!(
        verifier.identify(&headers).await,
        Ok(Identity::Anonymous),
        "no authorization header: anonymous"
    );
    headers.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("bearer {rs256}")).expect("header"),
    );
    assert_eq!(
        verifier.identify(&headers).await,
        Ok(customer("cus_rs")),
        "the scheme is case-insensitive"
    );
    let metadata = tonic::metadata::MetadataMap::from_headers(headers.clone());
    assert_eq!(
        verifier.identify(metadata.as_ref()).await,
        Ok(customer("cus_rs")),
        "gRPC metadata"
    );
    assert_eq!(
        verifier
            .identify_authorization(Some(&format!("Bearer {es256}")))
            .await,
        Ok(customer("cus_es")),
        "a connection_init payload's authorization"
    );
    assert_eq!(
        verifier.identify_authorization(None).await,
        Ok(Identity::Anonymous)
    );

    headers.append(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {es256}")).expect("header"),
    );
    assert!(matches!(
        verifier.identify(&headers).await,
        Err(AuthError::MalformedAuthorization(_))
    ));
    for value in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Bearer a b"] {
        assert!(
            matches!(
                verifier.identify_authorization(Some(value)).await,
                Err(AuthError::MalformedAuthorization(_))
            ),
            "{value:?} is not a bearer token"
        );
    }
}

/// A CA (PEM) and a server certificate for 127.0.0.1 that it signed (PEM chain, PEM key).
fn certificate_authority() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().expect("server key");
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("server params")
        .signed_by(&server_key, &issuer)
        .expect("server certificate");
    (ca.pem(), server.pem(), server_key.serialize_pem())
}

#[tokio::test]
async fn the_jwks_is_fetched_over_https_from_a_server_the_configured_ca_vouches_for() {
    let ec = EcKey::generate();
    let (ca, certificate, key) = certificate_authority();
    let server = JwksServer::start_tls(vec![ec.jwk()], &certificate, &key).await;
    let token = ec.sign(&claims("cus_tls", json!({})));

    let mut trusting = settings(&server);
    trusting.jwks.trusted_ca = Some(TrustedCa::from_pem(ca.as_bytes()).expect("CA"));
    let verifier = Verifier::start(trusting).expect("verifier");
    assert_eq!(verifier.verify(&token).await, Ok(customer("cus_tls")));

    let (other_ca, _, _) = certificate_authority();
    let mut distrusting = settings(&server);
    distrusting.jwks.trusted_ca = Some(TrustedCa::from_pem(other_ca.as_bytes()).expect("CA"));
    let verifier = Verifier::start(distrusting).expect("verifier");
    assert_eq!(
        verifier.verify(&token).await,
        Err(AuthError::KeysUnavailable),
        "a server that another CA vouches for is not trusted"
    );
}

#[tokio::test]
async fn every_bad_token_is_refused_with_its_own_error() {
    let ec = EcKey::generate();
    let stranger = EcKey::generate();
    let server = JwksServer::start(vec![ec.jwk(), rsa_jwk()]).await;
    let verifier = Verifier::start(settings(&server)).expect("verifier");
    let kid = ec.key.key_id().to_owned();
    let valid = claims("cus_1", json!({}));

    let public_key_bytes = serde_json::to_vec(&ec.jwk()).expect("JWK bytes");
    let hmac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &public_key_bytes);
    let hs256_header = json!({ "alg": "HS256", "typ": "JWT", "kid": kid });
    let hs256_message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(hs256_header.to_string()),
        URL_SAFE_NO_PAD.encode(valid.to_string())
    );
    let hs256_forged = format!(
        "{hs256_message}.{}",
        URL_SAFE_NO_PAD.encode(ring::hmac::sign(&hmac_key, hs256_message.as_bytes()))
    );

    let cases = [
        (
            "alg none",
            compact(&json!({ "alg": "none", "kid": kid }), &valid, b""),
            AuthError::AlgorithmNone,
        ),
        (
            "HS256 with the public key as secret",
            hs256_forged,
            AuthError::HmacAlgorithm("HS256".into()),
        ),
        (
            "EdDSA",
            compact(&json!({ "alg": "EdDSA", "kid": kid }), &valid, b"sig"),
            AuthError::UnsupportedAlgorithm("EdDSA".into()),
        ),
        (
            "no kid",
            compact(&json!({ "alg": "ES256" }), &valid, b"sig"),
            AuthError::MissingKeyId,
        ),
        (
            "a key that is not in the JWKS",
            stranger.sign(&valid),
            AuthError::UnknownKey(stranger.key.key_id().to_owned()),
        ),
        (
            "a known kid whose key does not verify",
            sign(&stranger.private, Algorithm::ES256, &kid, &valid),
            AuthError::BadSignature(kid.clone()),
        ),
        (
            "RS256 named with the kid of an ES256 key",
            sign(&rsa_private(), Algorithm::RS256, &kid, &valid),
            AuthError::KeyAlgorithmMismatch(kid.clone()),
        ),
        (
            "two parts",
            "eyJhbGciOiJFUzI1NiJ9.e30".to_owned(),
            AuthError::MalformedToken("not three dot-separated parts"),
        ),
        (
            "a header that is not JSON",
            "bm90IGpzb24.e30.c2ln".to_owned(),
            AuthError::MalformedToken("the header is not a JSON object with `alg`"),
        ),
        (
            "a header that is not base64url",
            "***.e30.c2ln".to_owned(),
            AuthError::MalformedToken("the header is not base64url"),
        ),
        (
            "expired",
            ec.sign(&claims(
                "cus_1",
                json!({ "iat": now() - 7200, "exp": now() - 3600 }),
            )),
            AuthError::Expired,
        ),
        (
            "not valid yet",
            ec.sign(&claims("cus_1", json!({ "nbf": now() + 3600 }))),
            AuthError::NotYetValid,
        ),
        (
            "another issuer",
            ec.sign(&claims("cus_1", json!({ "iss": "https://evil.test" }))),
            AuthError::WrongIssuer,
        ),
        (
            "another audience",
            ec.sign(&claims("cus_1", json!({ "aud": "someone-else" }))),
            AuthError::WrongAudience,
        ),
        (
            "no exp",
            ec.sign(&claims("cus_1", json!({ "exp": null }))),
            AuthError::MissingClaim("exp".into()),
        ),
        (
            "no customer claim",
            ec.sign(&claims("cus_1", json!({ "sub": null }))),
            AuthError::MissingClaim("sub".into()),
        ),
    ];
    for (case, token, expected) in cases {
        assert_eq!(verifier.verify(&token).await, Err(expected), "{case}");
    }
    assert_eq!(
        server.fetches(),
        1,
        "the unknown kid came right after the first fetch: no second fetch"
    );
}

#[tokio::test]
async fn a_token_within_the_leeway_is_accepted() {
    let ec = EcKey::generate();
    let server = JwksServer::start(vec![ec.jwk()]).await;
    let verifier = Verifier::start(settings(&server)).expect("verifier");
    let just_expired = ec.sign(&claims(
        "cus_1",
        json!({ "exp": now() - 5, "nbf": now() + 5 }),
    ));
    assert_eq!(verifier.verify(&just_expired).await, Ok(customer("cus_1")));
}

#[tokio::test]
async fn refusals_map_to_unauthenticated_and_401_with_a_bearer_challenge() {
    let status = tonic::Status::from(AuthError::Expired);
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let info = status
        .get_error_details()
        .error_info()
        .cloned()
        .expect("ErrorInfo");
    assert_eq!(
        (info.reason.as_str(), info.domain.as_str()),
        ("TOKEN_EXPIRED", "auth.crowdcrunch.dev")
    );

    let bad = AuthError::BadSignature("k1".into());
    assert_eq!(bad.http_status(), StatusCode::UNAUTHORIZED);
    let challenge = bad.www_authenticate().expect("a challenge");
    let challenge = challenge.to_str().expect("ASCII");
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert_eq!(bearer_challenge(), "Bearer");

    let unavailable = AuthError::KeysUnavailable;
    assert_eq!(unavailable.http_status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(unavailable.www_authenticate(), None);
    assert_eq!(
        tonic::Status::from(unavailable).code(),
        tonic::Code::Unavailable
    );
}

#[tokio::test]
async fn keycloak_roles_under_realm_access_make_staff() {
    let ec = EcKey::generate();
    let server = JwksServer::start(vec![ec.jwk(), rsa_jwk()]).await;
    let mut settings = settings(&server);
    settings.rules.roles_claim = ClaimPath::parse("realm_access.roles").expect("path");
    let verifier = Verifier::start(settings.clone()).expect("verifier");

    let keycloak = sign(
        &rsa_private(),
        Algorithm::RS256,
        RSA_KID,
        &claims(
            "4f1c2a9e-0000-4000-8000-000000000001",
            json!({
                "preferred_username": "alice",
                "realm_access": { "roles": ["offline_access", "staff"] },
            }),
        ),
    );
    assert_eq!(
        verifier.verify(&keycloak).await,
        Ok(Identity::Staff {
            subject: "4f1c2a9e-0000-4000-8000-000000000001".into(),
            name: "alice".into(),
        })
    );

    let top_level_roles = ec.sign(&claims("cus_7", json!({ "roles": ["staff"] })));
    assert_eq!(
        verifier.verify(&top_level_roles).await,
        Ok(customer("cus_7")),
        "roles elsewhere than the configured path grant nothing"
    );

    let minted = ec
        .key
        .mint(&settings.rules, &Grant::Staff("bob".into()), HOUR)
        .expect("mint");
    assert_eq!(
        verifier.verify(&minted).await,
        Ok(Identity::Staff {
            subject: "bob".into(),
            name: "bob".into(),
        }),
        "minted staff tokens follow the configured roles path"
    );
}

#[tokio::test]
async fn a_key_rotation_is_picked_up_without_restart() {
    let old = EcKey::generate();
    let new = EcKey::generate();
    let server = JwksServer::start(vec![old.jwk()]).await;
    let mut settings = settings(&server);
    settings.jwks.refresh_interval = Duration::from_millis(50);
    settings.jwks.min_refresh_interval = Duration::ZERO;
    let verifier = Verifier::start(settings).expect("verifier");
    let old_token = old.sign(&claims("cus_old", json!({})));
    let new_token = new.sign(&claims("cus_new", json!({})));
    assert_eq!(verifier.verify(&old_token).await, Ok(customer("cus_old")));

    server.publish(vec![old.jwk(), new.jwk()]);
    assert_eq!(
        verifier.verify(&new_token).await,
        Ok(customer("cus_new")),
        "an unknown kid fetches the JWKS again"
    );

    server.publish(vec![new.jwk()]);
    let mut fetches = verifier.jwks_fetches();
    let seen = *fetches.borrow_and_update();
    // The first fetch after `seen` may have started before the publish; the second cannot.
    fetches
        .wait_for(|count| *count >= seen + 2)
        .await
        .expect("periodic refresh");
    assert_eq!(
        verifier.verify(&old_token).await,
        Err(AuthError::UnknownKey(old.key.key_id().to_owned())),
        "a withdrawn key's token is refused, even though it was verified before"
    );
    assert_eq!(verifier.verify(&new_token).await, Ok(customer("cus_new")));
}

#[tokio::test]
async fn unknown_kids_refresh_the_jwks_at_most_once_per_interval() {
    let known = EcKey::generate();
    let server = JwksServer::start(vec![known.jwk()]).await;
    let verifier = Verifier::start(settings(&server)).expect("verifier");
    let mut fetches = verifier.jwks_fetches();
    fetches
        .wait_for(|count| *count >= 1)
        .await
        .expect("first fetch");

    for _ in 0..20 {
        let stranger = EcKey::generate();
        let token = stranger.sign(&claims("cus_1", json!({})));
        assert!(matches!(
            verifier.verify(&token).await,
            Err(AuthError::UnknownKey(_))
        ));
    }
    assert_eq!(
        server.fetches(),
        1,
        "twenty unknown kids within the minimum interval fetch nothing"
    );
}

#[tokio::test]
async fn a_verified_token_is_remembered_until_it_expires() {
    let ec = EcKey::generate();
    let server = JwksServer::start(vec![ec.jwk()]).await;
    let verifier = Verifier::start(settings(&server)).expect("verifier");
    let token = ec.sign(&claims("cus_1", json!({})));
    let other = ec.sign(&claims("cus_2", json!({})));

    for _ in 0..5 {
        assert_eq!(verifier.verify(&token).await, Ok(customer("cus_1")));
    }
    assert_eq!(verifier.verify(&other).await, Ok(customer("cus_2")));
    let counts = verifier.counts();
    assert_eq!(
        (counts.signature_checks, counts.cache_hits),
        (2, 4),
        "one signature check per token"
    );
    assert_eq!(server.fetches(), 1);

    let clone = verifier.clone();
    assert_eq!(clone.verify(&other).await, Ok(customer("cus_2")));
    assert_eq!(clone.counts().cache_hits, 5, "clones share the cache");
}

#[tokio::test]
async fn an_unreachable_jwks_refuses_tokens_as_unavailable_until_it_answers() {
    let ec = EcKey::generate();
    let server = JwksServer::start(vec![ec.jwk()]).await;
    server.failing.store(true, Ordering::SeqCst);
    let mut settings = settings(&server);
    settings.jwks.min_refresh_interval = Duration::from_millis(10);
    let verifier = Verifier::start(settings).expect("verifier");
    let token = ec.sign(&claims("cus_1", json!({})));

    assert_eq!(
        verifier.verify(&token).await,
        Err(AuthError::KeysUnavailable)
    );
    assert_eq!(
        verifier.identify(&HeaderMap::new()).await,
        Ok(Identity::Anonymous),
        "calls without a token are unaffected"
    );

    server.failing.store(false, Ordering::SeqCst);
    verifier
        .jwks_fetches()
        .wait_for(|count| *count >= 1)
        .await
        .expect("the background retry fetches the keys");
    assert_eq!(verifier.verify(&token).await, Ok(customer("cus_1")));
}

#[tokio::test]
async fn the_dev_signing_key_round_trips_through_its_published_jwks() {
    let dir = tempfile::tempdir().expect("temp dir");
    assert!(matches!(
        SigningKey::load(dir.path()),
        Err(SigningKeyError::Missing(_))
    ));
    let missing = SigningKey::load(dir.path())
        .expect_err("no key yet")
        .to_string();
    assert!(
        missing.starts_with("no signing key in ") && !missing.contains('\n'),
        "{missing}"
    );

    let generated = SigningKey::load_or_generate(dir.path()).expect("generate");
    let path = dir.path().join(SIGNING_KEY_FILE);
    let mode = std::fs::metadata(&path)
        .expect("key file")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let pem = std::fs::read_to_string(&path).expect("PEM");
    assert!(
        pem.starts_with("-----BEGIN PRIVATE KEY-----\n"),
        "PKCS#8 PEM"
    );

    let loaded = SigningKey::load(dir.path()).expect("load");
    assert_eq!(loaded.key_id(), generated.key_id(), "the same key");
    assert!(matches!(
        SigningKey::generate(dir.path()),
        Err(SigningKeyError::Io { .. })
    ));

    let jwks = serde_json::to_value(loaded.jwks()).expect("JWKS");
    let jwk = &jwks["keys"][0];
    assert_eq!(
        (
            &jwk["kty"],
            &jwk["crv"],
            &jwk["alg"],
            &jwk["use"],
            &jwk["kid"]
        ),
        (
            &json!("EC"),
            &json!("P-256"),
            &json!("ES256"),
            &json!("sig"),
            &json!(loaded.key_id())
        )
    );
    assert!(jwk.get("d").is_none(), "no private part");

    let server = JwksServer::start(vec![jwk.clone()]).await;
    let settings = settings(&server);
    let verifier = Verifier::start(settings.clone()).expect("verifier");
    let customer_token = loaded
        .mint(&settings.rules, &Grant::Customer("cus_42".into()), HOUR)
        .expect("mint");
    let staff_token = loaded
        .mint(&settings.rules, &Grant::Staff("carol".into()), HOUR)
        .expect("mint");
    assert_eq!(
        verifier.verify(&customer_token).await,
        Ok(customer("cus_42"))
    );
    assert_eq!(
        verifier.verify(&staff_token).await,
        Ok(Identity::Staff {
            subject: "carol".into(),
            name: "carol".into(),
        })
    );
    let expired = loaded
        .mint(
            &settings.rules,
            &Grant::Customer("cus_42".into()),
            Duration::ZERO,
        )
        .expect("mint");
    assert!(
        verifier.verify(&expired).await.is_ok(),
        "a zero TTL is still within the leeway"
    );

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let exposed = SigningKey::load(dir.path())
        .expect_err("a readable key is refused")
        .to_string();
    assert!(exposed.contains("chmod 600"), "{exposed}");
}

#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    auth: AuthArgs,
}

fn settings_error(args: &[&str]) -> String {
    let cli = Cli::try_parse_from(std::iter::once("crowdcrunch").chain(args.iter().copied()))
        .expect("flags parse");
    cli.auth
        .settings()
        .expect_err("bad settings are refused")
        .to_string()
}

#[test]
fn bad_settings_are_one_line_errors_naming_the_variable() {
    let good = [
        "--auth-issuer",
        ISSUER,
        "--auth-audience",
        AUDIENCE,
        "--auth-jwks-url",
        "https://id.test/certs",
    ];
    let cli = Cli::try_parse_from(std::iter::once("crowdcrunch").chain(good)).expect("flags");
    let settings = cli.auth.settings().expect("good settings");
    assert_eq!(settings.rules.customer_claim.to_string(), "sub");
    assert_eq!(settings.rules.roles_claim.to_string(), "roles");
    assert_eq!(settings.rules.leeway, Duration::from_secs(30));

    let with = |flag: &'static str, value: &'static str| {
        let mut args = good.to_vec();
        match args.iter().position(|arg| *arg == flag) {
            Some(index) => args[index + 1] = value,
            None => args.extend([flag, value]),
        }
        args
    };
    let cases = [
        (
            vec!["--auth-audience", AUDIENCE, "--auth-jwks-url", "http://a/b"],
            "CROWDCRUNCH_AUTH_ISSUER must be set",
        ),
        (
            with("--auth-issuer", " "),
            "CROWDCRUNCH_AUTH_ISSUER must not be empty",
        ),
        (
            with("--auth-jwks-url", "ftp://id.test/certs"),
            "CROWDCRUNCH_AUTH_JWKS_URL: `ftp://id.test/certs` must be an http:// or https:// URL",
        ),
        (
            with("--auth-jwks-url", "/certs"),
            "CROWDCRUNCH_AUTH_JWKS_URL: `/certs` must be an http:// or https:// URL",
        ),
        (
            with("--auth-roles-claim", "realm_access..roles"),
            "CROWDCRUNCH_AUTH_ROLES_CLAIM: `realm_access..roles` is not a claim path",
        ),
        (
            with("--auth-customer-claim", ""),
            "CROWDCRUNCH_AUTH_CUSTOMER_CLAIM: `` is not a claim path",
        ),
        (
            with("--auth-leeway", "10m"),
            "CROWDCRUNCH_AUTH_LEEWAY must be at most 5m",
        ),
        (
            with("--auth-jwks-min-refresh-interval", "10m"),
            "CROWDCRUNCH_AUTH_JWKS_MIN_REFRESH_INTERVAL must not be longer than",
        ),
        (
            with("--auth-jwks-refresh-interval", "0s"),
            "CROWDCRUNCH_AUTH_JWKS_REFRESH_INTERVAL must be longer than zero",
        ),
        (
            vec![
                "--auth-issuer",
                ISSUER,
                "--auth-audience",
                AUDIENCE,
                "--auth-jwks-url",
                "http://id.test/certs",
                "--auth-jwks-ca",
                "/nonexistent/ca.pem",
            ],
            "CROWDCRUNCH_AUTH_JWKS_CA: is for an https:// JWKS URL, not `http://id.test/certs`",
        ),
        (
            with("--auth-jwks-ca", "/nonexistent/ca.pem"),
            "CROWDCRUNCH_AUTH_JWKS_CA: cannot read /nonexistent/ca.pem",
        ),
        (
            with("--auth-token-cache-size", "0"),
            "CROWDCRUNCH_AUTH_TOKEN_CACHE_SIZE must be at least 1",
        ),
    ];
    for (args, expected) in cases {
        let error = settings_error(&args);
        assert!(
            error.starts_with(expected) && !error.contains('\n'),
            "{args:?}: {error}"
        );
    }
}
