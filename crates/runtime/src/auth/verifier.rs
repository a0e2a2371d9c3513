//! The verifier: tokens checked against the issuer's JWKS, the keys kept fresh in the background,
//! and each verified token remembered until it expires.

use std::str::FromStr as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, Weak};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, Validation};
use lru::LruCache;
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::jwks::{JwksClient, KeySet, VerificationKey};
use super::peer::{FORWARDED_CLIENT_CERT, certificate_service, mesh_service};
use super::settings::{AuthSettings, JwksSettings, MeshIdentity, TokenRules};
use super::{AuthError, Identity, SERVICE_ROLE, STAFF_ROLE, bearer_token, bearer_token_from_value};
use crate::config::ConfigError;

/// Verifies bearer tokens; cheap to clone (clones share keys and cache).
///
/// Keys: the JWKS is fetched in the background at start and every refresh interval, and again when
/// a token names an unknown `kid`, never more often than the minimum refresh interval (so a flood
/// of made-up key ids cannot hammer the issuer). A fetch that fails keeps the keys there are.
///
/// Unreachable issuer at start: the process starts anyway (its port, health and the catalog work),
/// every token is refused with [`AuthError::KeysUnavailable`] (503 / UNAVAILABLE, so clients retry)
/// and the fetch is retried every minimum refresh interval until it succeeds. Calls without a token
/// are anonymous and unaffected.
///
/// Cache: a verified token maps to its [`Identity`] until its `exp` (plus the leeway), in an LRU
/// of the configured size; a refresh that removes a key empties it, so a withdrawn key's tokens are
/// refused from then on.
#[derive(Clone)]
pub struct Verifier {
    shared: Arc<Shared>,
    _refresher: Arc<DropGuard>,
}

struct Shared {
    rules: TokenRules,
    jwks: JwksSettings,
    client: JwksClient,
    /// `None` until the first successful fetch.
    keys: RwLock<Option<Arc<KeySet>>>,
    /// When the last fetch started; held across a fetch, so fetches never overlap.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    tokens: Mutex<LruCache<String, Remembered>>,
    fetched: watch::Sender<u64>,
    counts: Counts,
    mesh_identity: Option<MeshIdentity>,
}

/// What the verifier has done so far (for metrics and tests).
#[derive(Debug, Default)]
struct Counts {
    cache_hits: AtomicU64,
    signature_checks: AtomicU64,
}

/// Counts of a [`Verifier`]'s work since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifierCounts {
    /// Tokens answered from the cache of verified tokens.
    pub cache_hits: u64,
    /// Tokens whose signature was checked against a JWKS key (whatever the outcome).
    pub signature_checks: u64,
}

struct Remembered {
    identity: Identity,
    /// Unix seconds after which the token is expired (its `exp` plus the leeway).
    valid_until: u64,
}

impl Verifier {
    /// Starts a verifier for `settings`: spawns the background refresh (so it needs a Tokio
    /// runtime) and returns at once, before the first fetch.
    pub fn start(settings: AuthSettings) -> Result<Self, ConfigError> {
        super::ring_provider::install();
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            ConfigError::from_display("the token verifier needs a running Tokio runtime")
        })?;
        let shared = Arc::new(Shared {
            client: JwksClient::new(settings.jwks.clone())?,
            rules: settings.rules,
            jwks: settings.jwks,
            keys: RwLock::new(None),
            last_fetch: tokio::sync::Mutex::new(None),
            tokens: Mutex::new(LruCache::new(settings.token_cache_size)),
            fetched: watch::Sender::new(0),
            counts: Counts::default(),
            mesh_identity: settings.mesh_identity,
        });
        let stop = CancellationToken::new();
        runtime.spawn(refresh_periodically(Arc::downgrade(&shared), stop.clone()));
        Ok(Self {
            shared,
            _refresher: Arc::new(stop.drop_guard()),
        })
    }

    /// The identity of a request with these headers (HTTP, or gRPC metadata via `as_ref()`):
    /// anonymous without `authorization`, else the verified token's.
    pub async fn identify(&self, headers: &HeaderMap) -> Result<Identity, AuthError> {
        match bearer_token(headers)? {
            None => Ok(Identity::Anonymous),
            Some(token) => self.verify(token).await,
        }
    }

    /// The identity of a gRPC call with these headers over a connection whose client presented
    /// `client_certificate` (DER). Its bearer token's identity when it carries one (a peer service
    /// by its `service` role, or the end user): the edge forwards the user's token over its own
    /// mTLS connection, and the user is then the caller. Without a token, the peer service its
    /// transport names: the client certificate of native mTLS, else Istio's
    /// `x-forwarded-client-cert` where the mesh is trusted. Else anonymous.
    pub async fn identify_call(
        &self,
        headers: &HeaderMap,
        client_certificate: Option<&[u8]>,
    ) -> Result<Identity, AuthError> {
        if let Some(token) = bearer_token(headers)? {
            return self.verify(token).await;
        }
        let transport_peer = client_certificate
            .and_then(certificate_service)
            .or_else(|| {
                let mesh = self.shared.mesh_identity.as_ref()?;
                let xfcc = headers.get(FORWARDED_CLIENT_CERT)?.to_str().ok()?;
                mesh_service(xfcc, mesh)
            });
        Ok(transport_peer.map_or(Identity::Anonymous, |service| Identity::Peer { service }))
    }

    /// The identity of an optional `authorization` value (the graphql-transport-ws
    /// `connection_init` payload's `authorization` field).
    pub async fn identify_authorization(
        &self,
        authorization: Option<&str>,
    ) -> Result<Identity, AuthError> {
        match authorization {
            None => Ok(Identity::Anonymous),
            Some(value) => self.verify(bearer_token_from_value(value)?).await,
        }
    }

    /// Verifies one compact JWT and returns the identity it carries.
    pub async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(identity) = self.remembered(token, now) {
            self.shared
                .counts
                .cache_hits
                .fetch_add(1, Ordering::Relaxed);
            return Ok(identity);
        }
        let header = UnverifiedHeader::parse(token)?;
        let key = self.key_for(&header.kid).await?;
        self.shared
            .counts
            .signature_checks
            .fetch_add(1, Ordering::Relaxed);
        let (identity, valid_until) = self.shared.rules.verify(token, &header, &key)?;
        lock(&self.shared.tokens).put(
            token.to_owned(),
            Remembered {
                identity: identity.clone(),
                valid_until,
            },
        );
        Ok(identity)
    }

    /// The number of successful JWKS fetches so far, as a watch: a readiness check or a test
    /// awaits a fetch with it instead of sleeping.
    pub fn jwks_fetches(&self) -> watch::Receiver<u64> {
        self.shared.fetched.subscribe()
    }

    /// What this verifier (and its clones) has done so far.
    pub fn counts(&self) -> VerifierCounts {
        VerifierCounts {
            cache_hits: self.shared.counts.cache_hits.load(Ordering::Relaxed),
            signature_checks: self.shared.counts.signature_checks.load(Ordering::Relaxed),
        }
    }

    fn remembered(&self, token: &str, now: u64) -> Option<Identity> {
        let mut tokens = lock(&self.shared.tokens);
        match tokens.get(token) {
            Some(remembered) if now <= remembered.valid_until => Some(remembered.identity.clone()),
            Some(_) => {
                tokens.pop(token);
                None
            }
            None => None,
        }
    }

    async fn key_for(&self, kid: &str) -> Result<Arc<VerificationKey>, AuthError> {
        if let Some(key) = self.current_key(kid) {
            return Ok(key);
        }
        self.shared
            .refresh(self.shared.jwks.min_refresh_interval)
            .await;
        match self.shared.current_keys() {
            None => Err(AuthError::KeysUnavailable),
            Some(keys) => keys
                .get(kid)
                .cloned()
                .ok_or_else(|| AuthError::UnknownKey(kid.to_owned())),
        }
    }

    fn current_key(&self, kid: &str) -> Option<Arc<VerificationKey>> {
        self.shared.current_keys()?.get(kid).cloned()
    }
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.shared.rules.issuer)
            .field("jwks_url", &self.shared.jwks.url)
            .finish_non_exhaustive()
    }
}

/// Fetches at start, then every refresh interval (every minimum refresh interval while no fetch
/// has succeeded yet), until the last [`Verifier`] clone is dropped.
async fn refresh_periodically(shared: Weak<Shared>, stop: CancellationToken) {
    loop {
        let wait = {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            shared.refresh(shared.jwks.min_refresh_interval).await;
            if shared.current_keys().is_some() {
                shared.jwks.refresh_interval
            } else {
                shared.jwks.min_refresh_interval
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

impl Shared {
    fn current_keys(&self) -> Option<Arc<KeySet>> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Fetches the JWKS unless a fetch started less than `min_gap` ago (or is under way).
    async fn refresh(&self, min_gap: Duration) {
        let mut last_fetch = self.last_fetch.lock().await;
        if last_fetch.is_some_and(|started| started.elapsed() < min_gap) {
            return;
        }
        *last_fetch = Some(Instant::now());
        match self.client.fetch().await {
            Ok(keys) => self.install(keys),
            Err(error) => tracing::warn!(%error, "JWKS refresh failed; keeping the keys there are"),
        }
    }

    fn install(&self, keys: KeySet) {
        let keys = Arc::new(keys);
        let previous = self
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(Arc::clone(&keys));
        let removed =
            previous.is_some_and(|previous| previous.keys().any(|kid| !keys.contains_key(kid)));
        if removed {
            // Some remembered tokens may be signed with a key that is gone.
            lock(&self.tokens).clear();
        }
        self.fetched.send_modify(|fetches| *fetches += 1);
        tracing::debug!(keys = keys.len(), removed, "JWKS fetched");
    }
}

/// Locks the token cache. A panic while it was held cannot have left it half-written (the LRU's
/// operations do not panic midway), so a poisoned lock is used as it is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The JOSE header of a token, read before any verification to refuse what must never verify.
struct UnverifiedHeader {
    algorithm: Algorithm,
    kid: String,
}

impl UnverifiedHeader {
    fn parse(token: &str) -> Result<Self, AuthError> {
        #[derive(serde::Deserialize)]
        struct RawHeader {
            alg: String,
            kid: Option<String>,
        }

        let mut parts = token.split('.');
        let (Some(header), Some(_claims), Some(_signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::MalformedToken("not three dot-separated parts"));
        };
        let header = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| AuthError::MalformedToken("the header is not base64url"))?;
        let header: RawHeader = serde_json::from_slice(&header)
            .map_err(|_| AuthError::MalformedToken("the header is not a JSON object with `alg`"))?;
        if header.alg.eq_ignore_ascii_case("none") {
            return Err(AuthError::AlgorithmNone);
        }
        let algorithm = Algorithm::from_str(&header.alg)
            .map_err(|_| AuthError::UnsupportedAlgorithm(header.alg.clone()))?;
        match algorithm.family() {
            AlgorithmFamily::Rsa | AlgorithmFamily::Ec => {}
            AlgorithmFamily::Hmac => return Err(AuthError::HmacAlgorithm(header.alg)),
            _ => return Err(AuthError::UnsupportedAlgorithm(header.alg)),
        }
        let kid = header.kid.ok_or(AuthError::MissingKeyId)?;
        Ok(Self { algorithm, kid })
    }
}

impl TokenRules {
    /// Checks signature and claims of `token` with `key`; returns its identity and when it expires.
    fn verify(
        &self,
        token: &str,
        header: &UnverifiedHeader,
        key: &VerificationKey,
    ) -> Result<(Identity, u64), AuthError> {
        if !key.algorithms.contains(&header.algorithm) {
            return Err(AuthError::KeyAlgorithmMismatch(header.kid.clone()));
        }
        let mut validation = Validation::new(header.algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.leeway.as_secs();
        let claims = jsonwebtoken::decode::<Value>(token, &key.key, &validation)
            .map_err(|error| refusal(error.into_kind(), &header.kid))?
            .claims;
        let expires = claims
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or_else(|| AuthError::MissingClaim("exp".to_owned()))?;
        Ok((
            self.identity(&claims)?,
            expires.saturating_add(validation.leeway),
        ))
    }

    /// A peer service when the roles include `service` (named by `sub`), staff when they include
    /// `staff`, else the customer of the customer claim.
    fn identity(&self, claims: &Value) -> Result<Identity, AuthError> {
        let has_role = |wanted: &str| match self.roles_claim.lookup(claims) {
            Some(Value::Array(roles)) => roles.iter().any(|role| role == wanted),
            Some(Value::String(roles)) => roles.split_whitespace().any(|role| role == wanted),
            _ => false,
        };
        let subject = || {
            non_empty_string(claims.get("sub"))
                .ok_or_else(|| AuthError::MissingClaim("sub".to_owned()))
        };
        if has_role(SERVICE_ROLE) {
            return Ok(Identity::Peer {
                service: subject()?.to_owned(),
            });
        }
        if has_role(STAFF_ROLE) {
            let subject = subject()?;
            let name = non_empty_string(claims.get("preferred_username")).unwrap_or(subject);
            return Ok(Identity::Staff {
                subject: subject.to_owned(),
                name: name.to_owned(),
            });
        }
        let customer_id = non_empty_string(self.customer_claim.lookup(claims))
            .ok_or_else(|| AuthError::MissingClaim(self.customer_claim.to_string()))?;
        Ok(Identity::Customer {
            customer_id: customer_id.to_owned(),
        })
    }
}

fn non_empty_string(value: Option<&Value>) -> Option<&str> {
    value
        .and_then(Value::as_str)
        .filter(|value| !value.is_empty())
}

/// The refusal for a `jsonwebtoken` error about a token signed (it says) with key `kid`.
fn refusal(kind: ErrorKind, kid: &str) -> AuthError {
    match kind {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) | ErrorKind::InvalidClaimFormat(claim) => {
            AuthError::MissingClaim(claim)
        }
        ErrorKind::InvalidAlgorithm => AuthError::KeyAlgorithmMismatch(kid.to_owned()),
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => AuthError::MalformedToken("the claims are not base64url JSON"),
        // Signature mismatch, and keys that the JWKS published but that cannot verify.
        _ => AuthError::BadSignature(kid.to_owned()),
    }
}
