//! The signing key of `crowdcrunch dev` and `crowdcrunch token`: an ES256 (P-256) key pair kept in
//! the data dir as PKCS#8 PEM (mode 0600), published as a JWKS, and used to mint tokens.

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::{Map, Value};

use super::settings::TokenRules;
use super::{SERVICE_ROLE, STAFF_ROLE};

/// The file in the data dir that holds the signing key.
pub const SIGNING_KEY_FILE: &str = "auth-signing-key.pem";

/// Why the signing key cannot be had or used.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    /// The data dir holds no key.
    #[error("no signing key in {}: `crowdcrunch dev --data-dir {}` creates one", .0.display(), .0.display())]
    Missing(PathBuf),
    /// The key file cannot be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// Other users may read the key file, so anyone on the machine could mint tokens.
    #[error("{} is readable by other users (mode {mode:o}); run `chmod 600 {}`", path.display(), path.display())]
    Exposed {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is not a P-256 private key in PKCS#8 PEM.
    #[error("{} holds no P-256 (ES256) private key in PKCS#8 PEM", .0.display())]
    NotAnEs256Key(PathBuf),
    /// The system's random source failed.
    #[error("the system random source failed while generating a key")]
    Random,
    /// Signing a token failed.
    #[error("cannot sign the token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// Whom a minted token is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// A customer, by customer id (set as `sub` and as the customer claim).
    Customer(String),
    /// A member of staff, by name (set as `sub` and `preferred_username`, with the `staff` role).
    Staff(String),
    /// A peer service, by its name (set as `sub`, with the `service` role): its own identity on
    /// its calls to other services.
    Service(String),
}

/// An ES256 signing key with its public JWK. `Debug` never prints the private key.
pub struct SigningKey {
    private_key: EncodingKey,
    public_jwk: Jwk,
    key_id: String,
}

impl SigningKey {
    /// Generates a new key and stores it in `dir` (created if needed) with mode 0600; refuses to
    /// replace a key that is there.
    pub fn generate(dir: &Path) -> Result<Self, SigningKeyError> {
        let path = dir.join(SIGNING_KEY_FILE);
        let io_error = |source| SigningKeyError::Io {
            path: path.clone(),
            source,
        };
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| SigningKeyError::Random)?;
        let pem = pkcs8_pem(pkcs8.as_ref());
        std::fs::create_dir_all(dir).map_err(io_error)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_error)?;
        file.write_all(pem.as_bytes()).map_err(io_error)?;
        file.sync_all().map_err(io_error)?;
        Self::from_pem(&path, pem.as_bytes())
    }

    /// Loads the key of `dir`; [`SigningKeyError::Missing`] when there is none.
    pub fn load(dir: &Path) -> Result<Self, SigningKeyError> {
        let path = dir.join(SIGNING_KEY_FILE);
        let io_error = |source| SigningKeyError::Io {
            path: path.clone(),
            source,
        };
        let metadata = match std::fs::metadata(&path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(SigningKeyError::Missing(dir.to_owned()));
            }
            Err(error) => return Err(io_error(error)),
        };
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SigningKeyError::Exposed { path, mode });
        }
        let pem = std::fs::read(&path).map_err(io_error)?;
        Self::from_pem(&path, &pem)
    }

    /// Loads the key of `dir`, generating it on first use (`dev`).
    pub fn load_or_generate(dir: &Path) -> Result<Self, SigningKeyError> {
        match Self::load(dir) {
            Err(SigningKeyError::Missing(_)) => match Self::generate(dir) {
                // Another process created it meanwhile.
                Err(SigningKeyError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists =>
                {
                    Self::load(dir)
                }
                generated => generated,
            },
            loaded => loaded,
        }
    }

    fn from_pem(path: &Path, pem: &[u8]) -> Result<Self, SigningKeyError> {
        super::ring_provider::install();
        let not_es256 = || SigningKeyError::NotAnEs256Key(path.to_owned());
        let private_key = EncodingKey::from_ec_pem(pem).map_err(|_| not_es256())?;
        let key_pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            private_key.as_bytes(),
            &SystemRandom::new(),
        )
        .map_err(|_| not_es256())?;
        // An uncompressed P-256 point: 0x04, then x and y of 32 bytes each.
        let point = key_pair.public_key().as_ref();
        let (x, y) = point
            .get(1..)
            .filter(|coordinates| coordinates.len() == 64)
            .map(|coordinates| coordinates.split_at(32))
            .ok_or_else(not_es256)?;
        let mut public_jwk = Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(KeyAlgorithm::ES256),
                ..CommonParameters::default()
            },
            algorithm: AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                key_type: EllipticCurveKeyType::EC,
                curve: EllipticCurve::P256,
                x: URL_SAFE_NO_PAD.encode(x),
                y: URL_SAFE_NO_PAD.encode(y),
            }),
        };
        // The RFC 7638 thumbprint: the same key always has the same id.
        let key_id = public_jwk.thumbprint(ThumbprintHash::SHA256)?;
        public_jwk.common.key_id = Some(key_id.clone());
        Ok(Self {
            private_key,
            public_jwk,
            key_id,
        })
    }

    /// The key id (`kid`): the RFC 7638 thumbprint of the public key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key as a JWKS (`{"keys": [{"kty": "EC", "kid": …, "alg": "ES256", "use": "sig", …}]}`).
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.public_jwk.clone()],
        }
    }

    /// A token for `grant` that satisfies `rules` (issuer, audience, claim paths), valid from now
    /// for `ttl`.
    pub fn mint(
        &self,
        rules: &TokenRules,
        grant: &Grant,
        ttl: Duration,
    ) -> Result<String, SigningKeyError> {
        let now = jsonwebtoken::get_current_timestamp();
        let mut claims = Map::new();
        claims.insert("iss".to_owned(), Value::from(rules.issuer.clone()));
        claims.insert("aud".to_owned(), Value::from(rules.audience.clone()));
        claims.insert("iat".to_owned(), Value::from(now));
        claims.insert("nbf".to_owned(), Value::from(now));
        claims.insert(
            "exp".to_owned(),
            Value::from(now.saturating_add(ttl.as_secs())),
        );
        match grant {
            Grant::Customer(customer_id) => {
                claims.insert("sub".to_owned(), Value::from(customer_id.clone()));
                rules
                    .customer_claim
                    .insert(&mut claims, Value::from(customer_id.clone()));
            }
            Grant::Staff(name) => {
                claims.insert("sub".to_owned(), Value::from(name.clone()));
                claims.insert("preferred_username".to_owned(), Value::from(name.clone()));
                rules
                    .roles_claim
                    .insert(&mut claims, Value::from(vec![STAFF_ROLE]));
            }
            Grant::Service(name) => {
                claims.insert("sub".to_owned(), Value::from(name.clone()));
                rules
                    .roles_claim
                    .insert(&mut claims, Value::from(vec![SERVICE_ROLE]));
            }
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        Ok(jsonwebtoken::encode(&header, &claims, &self.private_key)?)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// PKCS#8 DER as PEM (`PRIVATE KEY`, 64 base64 characters a line).
fn pkcs8_pem(der: &[u8]) -> String {
    let base64 = STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in base64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}
