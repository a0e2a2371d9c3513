//! Fetching a JWKS over http:// or https:// and turning it into the keys a token may name.

use std::collections::HashMap;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Bytes;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::settings::JwksSettings;
use crate::config::ConfigError;

/// The largest JWKS document read; real ones are a few kilobytes.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// The RSA algorithms a JWK without `alg` may verify.
const RSA_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// Why a fetch of the JWKS gave no keys (logged; callers see [`super::AuthError::KeysUnavailable`]).
#[derive(Debug, thiserror::Error)]
pub(super) enum JwksError {
    #[error("GET {url} failed: {source}")]
    Request {
        url: http::Uri,
        source: hyper_util::client::legacy::Error,
    },
    #[error("GET {url} answered {status}")]
    Status {
        url: http::Uri,
        status: http::StatusCode,
    },
    #[error("GET {url}: reading the body failed (over {MAX_JWKS_BYTES} bytes?): {message}")]
    Body { url: http::Uri, message: String },
    #[error("GET {url} took longer than {}", humantime::format_duration(*.timeout))]
    TimedOut { url: http::Uri, timeout: Duration },
    #[error("{url} is not a JWKS: {source}")]
    NotJwks {
        url: http::Uri,
        source: serde_json::Error,
    },
    #[error("{url} holds no usable signing key")]
    NoUsableKey { url: http::Uri },
}

/// One key of the JWKS and the algorithms it may verify.
pub(super) struct VerificationKey {
    pub(super) key: DecodingKey,
    pub(super) algorithms: Vec<Algorithm>,
}

/// The keys of one fetched JWKS by `kid`.
pub(super) type KeySet = HashMap<String, Arc<VerificationKey>>;

/// An HTTP(S) client for one JWKS URL.
pub(super) struct JwksClient {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    settings: JwksSettings,
}

impl JwksClient {
    /// A client for `settings.url`; https:// trusts `settings.trusted_ca`, else the system's CAs.
    pub(super) fn new(settings: JwksSettings) -> Result<Self, ConfigError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(ConfigError::from_display)?;
        let builder = match (&settings.trusted_ca, settings.url.uri().scheme_str()) {
            (Some(trusted_ca), _) => {
                let mut roots = rustls::RootCertStore::empty();
                for certificate in trusted_ca.certificates() {
                    roots.add(certificate.clone()).map_err(|error| {
                        ConfigError::from_display(format_args!(
                            "CROWDCRUNCH_AUTH_JWKS_CA: not a usable CA certificate: {error}"
                        ))
                    })?;
                }
                HttpsConnectorBuilder::new()
                    .with_tls_config(tls.with_root_certificates(roots).with_no_client_auth())
            }
            (None, Some("https")) => HttpsConnectorBuilder::new()
                .with_provider_and_native_roots(provider)
                .map_err(|error| {
                    ConfigError::from_display(format_args!(
                        "CROWDCRUNCH_AUTH_JWKS_URL is https:// but no trusted CA certificate \
                         could be loaded from this system (set CROWDCRUNCH_AUTH_JWKS_CA): {error}"
                    ))
                })?,
            // Plain http: the TLS configuration is never used.
            (None, _) => HttpsConnectorBuilder::new().with_tls_config(
                tls.with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            ),
        };
        let connector = builder.https_or_http().enable_http1().build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            settings,
        })
    }

    /// Fetches and parses the key set.
    pub(super) async fn fetch(&self) -> Result<KeySet, JwksError> {
        let url = self.settings.url.uri().clone();
        let timeout = self.settings.timeout;
        let body = tokio::time::timeout(timeout, self.fetch_body(&url))
            .await
            .map_err(|_| JwksError::TimedOut {
                url: url.clone(),
                timeout,
            })??;
        let document: JwksDocument =
            serde_json::from_slice(&body).map_err(|source| JwksError::NotJwks {
                url: url.clone(),
                source,
            })?;
        let keys: KeySet = document.keys.into_iter().filter_map(usable_key).collect();
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey { url });
        }
        Ok(keys)
    }

    async fn fetch_body(&self, url: &http::Uri) -> Result<Bytes, JwksError> {
        let mut request = http::Request::new(Empty::new());
        *request.uri_mut() = url.clone();
        request.headers_mut().insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static("application/json"),
        );
        let response = self
            .client
            .request(request)
            .await
            .map_err(|source| JwksError::Request {
                url: url.clone(),
                source,
            })?;
        if response.status() != http::StatusCode::OK {
            return Err(JwksError::Status {
                url: url.clone(),
                status: response.status(),
            });
        }
        let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|error| JwksError::Body {
                url: url.clone(),
                message: error.to_string(),
            })?;
        Ok(body.to_bytes())
    }
}

/// The document; each key is parsed alone so that one unknown key does not hide the others.
#[derive(serde::Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

/// The key of one JWKS entry, when it is a signing key this verifier can use; others are skipped
/// (encryption keys, symmetric keys, keys without `kid`, unknown algorithms), with a debug line.
fn usable_key(entry: serde_json::Value) -> Option<(String, Arc<VerificationKey>)> {
    let jwk: Jwk = match serde_json::from_value(entry) {
        Ok(jwk) => jwk,
        Err(error) => {
            tracing::debug!(%error, "JWKS entry skipped: not a JWK");
            return None;
        }
    };
    let kid = jwk.common.key_id.clone()?;
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let algorithms = match (jwk.common.key_algorithm, &jwk.algorithm) {
        (Some(declared), AlgorithmParameters::RSA(_) | AlgorithmParameters::EllipticCurve(_)) => {
            let algorithm = Algorithm::from_str(&declared.to_string()).ok()?;
            vec![algorithm]
        }
        (None, AlgorithmParameters::RSA(_)) => RSA_ALGORITHMS.to_vec(),
        (None, AlgorithmParameters::EllipticCurve(params)) => match params.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return None,
        },
        _ => return None,
    };
    let key = match DecodingKey::from_jwk(&jwk) {
        Ok(key) => key,
        Err(error) => {
            tracing::debug!(%error, kid, "JWKS entry skipped: not a usable key");
            return None;
        }
    };
    if algorithms
        .iter()
        .any(|algorithm| algorithm.family() != key.family())
    {
        return None;
    }
    Some((kid, Arc::new(VerificationKey { key, algorithms })))
}
