//! The auth settings every process takes: flags and `CROWDCRUNCH_AUTH_*` variables in
//! [`AuthArgs`], validated once into [`AuthSettings`].
//!
//! There is no switch that turns authentication off. [`AuthArgs::settings`] refuses to produce
//! settings without an issuer, an audience and a JWKS URL, so a process that verifies tokens cannot
//! start unconfigured by accident; `dev` builds its [`AuthSettings`] from its own signing key instead
//! (its issuer, its audience and the URL where it publishes its JWKS).

use std::fmt;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use crate::config::ConfigError;

/// The longest clock leeway accepted: more would keep expired tokens alive for long.
const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// How this process verifies bearer tokens (flattened into every command that serves).
#[derive(Debug, Clone, clap::Args)]
pub struct AuthArgs {
    /// The issuer (`iss`) that every token must carry, e.g. `https://id.example.com/realms/shop`.
    #[arg(long, env = "CROWDCRUNCH_AUTH_ISSUER", value_name = "ISSUER")]
    pub auth_issuer: Option<String>,
    /// The audience (`aud`) that every token must include.
    #[arg(long, env = "CROWDCRUNCH_AUTH_AUDIENCE", value_name = "AUDIENCE")]
    pub auth_audience: Option<String>,
    /// The http:// or https:// URL of the issuer's JSON Web Key Set.
    #[arg(long, env = "CROWDCRUNCH_AUTH_JWKS_URL", value_name = "URL")]
    pub auth_jwks_url: Option<String>,
    /// PEM CA certificate(s) that an https:// JWKS server must chain to, instead of the system's
    /// trusted CAs (an issuer behind a private CA).
    #[arg(long, env = "CROWDCRUNCH_AUTH_JWKS_CA", value_name = "PATH")]
    pub auth_jwks_ca: Option<PathBuf>,
    /// The claim (a dotted path) that holds the customer id of a customer's token.
    #[arg(
        long,
        env = "CROWDCRUNCH_AUTH_CUSTOMER_CLAIM",
        default_value = "sub",
        value_name = "PATH"
    )]
    pub auth_customer_claim: String,
    /// The claim (a dotted path, e.g. Keycloak's `realm_access.roles`) that holds the roles.
    #[arg(
        long,
        env = "CROWDCRUNCH_AUTH_ROLES_CLAIM",
        default_value = "roles",
        value_name = "PATH"
    )]
    pub auth_roles_claim: String,
    /// Clock skew allowed when checking `exp` and `nbf`.
    #[arg(long, env = "CROWDCRUNCH_AUTH_LEEWAY", default_value = "30s", value_parser = humantime::parse_duration)]
    pub auth_leeway: Duration,
    /// How often the JWKS is fetched again, so a key rotation needs no restart.
    #[arg(long, env = "CROWDCRUNCH_AUTH_JWKS_REFRESH_INTERVAL", default_value = "5m", value_parser = humantime::parse_duration)]
    pub auth_jwks_refresh_interval: Duration,
    /// The shortest time between two fetches of the JWKS, however many unknown key ids arrive.
    #[arg(long, env = "CROWDCRUNCH_AUTH_JWKS_MIN_REFRESH_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub auth_jwks_min_refresh_interval: Duration,
    /// The longest one fetch of the JWKS may take.
    #[arg(long, env = "CROWDCRUNCH_AUTH_JWKS_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub auth_jwks_timeout: Duration,
    /// Verified tokens remembered (each until it expires), so a token is verified once.
    #[arg(
        long,
        env = "CROWDCRUNCH_AUTH_TOKEN_CACHE_SIZE",
        default_value_t = 10_000
    )]
    pub auth_token_cache_size: usize,
    /// Take a peer service's identity from the `x-forwarded-client-cert` header that Istio's
    /// sidecar sets from the caller's mTLS certificate. Only inside the mesh, where the sidecar
    /// sets the header and drops one a client sent; anywhere else a client could forge it.
    #[arg(long, env = "CROWDCRUNCH_AUTH_TRUST_MESH_IDENTITY")]
    pub auth_trust_mesh_identity: bool,
    /// The prefix of the services' Kubernetes service accounts: the service account minus it is
    /// the service's name.
    #[arg(
        long,
        env = "CROWDCRUNCH_AUTH_MESH_ACCOUNT_PREFIX",
        default_value = "crowdcrunch-",
        value_name = "PREFIX"
    )]
    pub auth_mesh_account_prefix: String,
}

/// The default of `--auth-token-cache-size`.
const DEFAULT_TOKEN_CACHE_SIZE: NonZeroUsize = NonZeroUsize::new(10_000).expect("not zero");

impl AuthArgs {
    /// Validates the flags; every missing or bad value is a one-line error naming its variable.
    pub fn settings(&self) -> Result<AuthSettings, ConfigError> {
        let issuer = required(&self.auth_issuer, "CROWDCRUNCH_AUTH_ISSUER", "the `iss`")?;
        let audience = required(
            &self.auth_audience,
            "CROWDCRUNCH_AUTH_AUDIENCE",
            "the `aud`",
        )?;
        let jwks_url = required(
            &self.auth_jwks_url,
            "CROWDCRUNCH_AUTH_JWKS_URL",
            "the JWKS URL",
        )?;
        let url = JwksUrl::parse(&jwks_url)
            .map_err(|error| error.for_setting("CROWDCRUNCH_AUTH_JWKS_URL"))?;
        let trusted_ca = self
            .auth_jwks_ca
            .as_ref()
            .map(|path| TrustedCa::read(path, &url))
            .transpose()
            .map_err(|error| error.for_setting("CROWDCRUNCH_AUTH_JWKS_CA"))?;
        let settings = AuthSettings {
            rules: TokenRules {
                issuer,
                audience,
                customer_claim: ClaimPath::parse(&self.auth_customer_claim)
                    .map_err(|error| error.for_setting("CROWDCRUNCH_AUTH_CUSTOMER_CLAIM"))?,
                roles_claim: ClaimPath::parse(&self.auth_roles_claim)
                    .map_err(|error| error.for_setting("CROWDCRUNCH_AUTH_ROLES_CLAIM"))?,
                leeway: self.auth_leeway,
            },
            jwks: JwksSettings {
                url,
                trusted_ca,
                refresh_interval: self.auth_jwks_refresh_interval,
                min_refresh_interval: self.auth_jwks_min_refresh_interval,
                timeout: self.auth_jwks_timeout,
            },
            token_cache_size: NonZeroUsize::new(self.auth_token_cache_size).ok_or_else(|| {
                ConfigError::from_display("CROWDCRUNCH_AUTH_TOKEN_CACHE_SIZE must be at least 1")
            })?,
            mesh_identity: self.auth_trust_mesh_identity.then(|| MeshIdentity {
                account_prefix: self.auth_mesh_account_prefix.clone(),
            }),
        };
        settings.check_limits()?;
        Ok(settings)
    }
}

fn required(value: &Option<String>, setting: &str, what: &str) -> Result<String, ConfigError> {
    match value.as_deref().map(str::trim) {
        Some(value) if !value.is_empty() => Ok(value.to_owned()),
        Some(_) => Err(ConfigError::from_display(format_args!(
            "{setting} must not be empty: it names {what} that every token must match"
        ))),
        None => Err(ConfigError::from_display(format_args!(
            "{setting} must be set: it names {what} that every token must match \
             (authentication cannot be turned off)"
        ))),
    }
}

/// Validated auth settings of one process.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// What a token must say, and where its claims are.
    pub rules: TokenRules,
    /// Where the keys come from and how often they are fetched.
    pub jwks: JwksSettings,
    /// Verified tokens remembered until they expire.
    pub token_cache_size: NonZeroUsize,
    /// Whether (and how) a peer's mesh identity is trusted; `None` outside a mesh.
    pub mesh_identity: Option<MeshIdentity>,
}

/// How a peer service is named by its Istio identity, trusted only where a mesh sidecar sets
/// `x-forwarded-client-cert` (`CROWDCRUNCH_AUTH_TRUST_MESH_IDENTITY=true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshIdentity {
    /// Removed from the SPIFFE id's service account to give the service's name.
    pub account_prefix: String,
}

impl AuthSettings {
    /// Settings with the defaults of [`AuthArgs`] for tokens of `issuer` for `audience`, verified
    /// with the keys at `jwks_url` (what `dev` and tests build).
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, jwks_url: JwksUrl) -> Self {
        Self {
            rules: TokenRules::new(issuer, audience),
            jwks: JwksSettings {
                url: jwks_url,
                trusted_ca: None,
                refresh_interval: Duration::from_secs(300),
                min_refresh_interval: Duration::from_secs(30),
                timeout: Duration::from_secs(5),
            },
            token_cache_size: DEFAULT_TOKEN_CACHE_SIZE,
            mesh_identity: None,
        }
    }

    fn check_limits(&self) -> Result<(), ConfigError> {
        if self.rules.leeway > MAX_LEEWAY {
            return Err(ConfigError::from_display(format_args!(
                "CROWDCRUNCH_AUTH_LEEWAY must be at most {}, not {}",
                humantime::format_duration(MAX_LEEWAY),
                humantime::format_duration(self.rules.leeway)
            )));
        }
        for (setting, interval) in [
            (
                "CROWDCRUNCH_AUTH_JWKS_REFRESH_INTERVAL",
                self.jwks.refresh_interval,
            ),
            (
                "CROWDCRUNCH_AUTH_JWKS_MIN_REFRESH_INTERVAL",
                self.jwks.min_refresh_interval,
            ),
            ("CROWDCRUNCH_AUTH_JWKS_TIMEOUT", self.jwks.timeout),
        ] {
            if interval.is_zero() {
                return Err(ConfigError::from_display(format_args!(
                    "{setting} must be longer than zero"
                )));
            }
        }
        if self.jwks.min_refresh_interval > self.jwks.refresh_interval {
            return Err(ConfigError::from_display(
                "CROWDCRUNCH_AUTH_JWKS_MIN_REFRESH_INTERVAL must not be longer than \
                 CROWDCRUNCH_AUTH_JWKS_REFRESH_INTERVAL",
            ));
        }
        Ok(())
    }
}

/// What a token must say (issuer, audience, time window) and where its claims are. Verifying and
/// minting tokens ([`super::SigningKey::mint`]) read the same rules.
#[derive(Debug, Clone)]
pub struct TokenRules {
    /// The required `iss`.
    pub issuer: String,
    /// The audience that `aud` must include.
    pub audience: String,
    /// Where the customer id is.
    pub customer_claim: ClaimPath,
    /// Where the roles are (an array of strings, or one space-separated string).
    pub roles_claim: ClaimPath,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
}

impl TokenRules {
    /// Rules for `issuer` and `audience` with the default claims (`sub`, `roles`) and 30 s leeway.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            customer_claim: ClaimPath::single("sub"),
            roles_claim: ClaimPath::single("roles"),
            leeway: Duration::from_secs(30),
        }
    }
}

/// Where the JWKS is and how it is kept fresh.
#[derive(Debug, Clone)]
pub struct JwksSettings {
    /// The URL of the key set.
    pub url: JwksUrl,
    /// The CAs an https:// URL's server must chain to; `None`: the system's trusted CAs.
    pub trusted_ca: Option<TrustedCa>,
    /// The periodic refresh.
    pub refresh_interval: Duration,
    /// The least time between two fetches (bounds the refreshes that unknown key ids cause).
    pub min_refresh_interval: Duration,
    /// The longest one fetch may take.
    pub timeout: Duration,
}

/// A setting value that does not parse; [`SettingError::for_setting`] names the setting.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SettingError(String);

impl SettingError {
    fn for_setting(self, setting: &str) -> ConfigError {
        ConfigError::from_display(format_args!("{setting}: {}", self.0))
    }
}

/// The http:// or https:// URL of a JWKS.
#[derive(Clone, PartialEq, Eq)]
pub struct JwksUrl(http::Uri);

impl JwksUrl {
    /// Parses `url`, which must be absolute http:// or https:// with a host.
    pub fn parse(url: &str) -> Result<Self, SettingError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|error| SettingError(format!("`{url}` is not a URL: {error}")))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => {
                return Err(SettingError(format!(
                    "`{url}` must be an http:// or https:// URL"
                )));
            }
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(SettingError(format!("`{url}` names no host")));
        }
        Ok(Self(uri))
    }

    /// The URL as an `http::Uri`.
    pub fn uri(&self) -> &http::Uri {
        &self.0
    }
}

impl fmt::Display for JwksUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for JwksUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JwksUrl({})", self.0)
    }
}

/// CA certificates that an https:// JWKS server's certificate must chain to.
#[derive(Clone)]
pub struct TrustedCa(Vec<CertificateDer<'static>>);

impl TrustedCa {
    /// The certificates of a PEM bundle; at least one.
    pub fn from_pem(pem: &[u8]) -> Result<Self, SettingError> {
        let certificates = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| SettingError(format!("not PEM certificates: {error}")))?;
        if certificates.is_empty() {
            return Err(SettingError("holds no PEM certificate".to_owned()));
        }
        Ok(Self(certificates))
    }

    fn read(path: &std::path::Path, url: &JwksUrl) -> Result<Self, SettingError> {
        if url.uri().scheme_str() != Some("https") {
            return Err(SettingError(format!(
                "is for an https:// JWKS URL, not `{url}`"
            )));
        }
        let pem = std::fs::read(path)
            .map_err(|error| SettingError(format!("cannot read {}: {error}", path.display())))?;
        Self::from_pem(&pem)
            .map_err(|error| SettingError(format!("{}: {}", path.display(), error.0)))
    }

    /// The certificates, DER-encoded.
    pub fn certificates(&self) -> &[CertificateDer<'static>] {
        &self.0
    }
}

impl fmt::Debug for TrustedCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustedCa({} certificates)", self.0.len())
    }
}

/// A dotted path into a token's claims: `sub`, `roles`, `realm_access.roles`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath {
    parents: Vec<String>,
    leaf: String,
}

impl ClaimPath {
    /// Parses a dotted path; empty segments (`a..b`, `.a`, ``) are refused.
    pub fn parse(path: &str) -> Result<Self, SettingError> {
        let mut parents: Vec<String> = path.split('.').map(str::to_owned).collect();
        match parents.pop() {
            Some(leaf) if !leaf.is_empty() && !parents.iter().any(String::is_empty) => {
                Ok(Self { parents, leaf })
            }
            _ => Err(SettingError(format!(
                "`{path}` is not a claim path (names separated by single dots)"
            ))),
        }
    }

    fn single(claim: &str) -> Self {
        Self {
            parents: Vec::new(),
            leaf: claim.to_owned(),
        }
    }

    /// The value at this path in `claims`, if every step exists.
    pub fn lookup<'a>(&self, claims: &'a serde_json::Value) -> Option<&'a serde_json::Value> {
        self.parents
            .iter()
            .try_fold(claims, |value, segment| value.get(segment))?
            .get(&self.leaf)
    }

    /// Sets `value` at this path in `claims`, making (or replacing by) objects on the way.
    pub(super) fn insert(
        &self,
        claims: &mut serde_json::Map<String, serde_json::Value>,
        value: serde_json::Value,
    ) {
        let mut object = claims;
        for segment in &self.parents {
            let child = object
                .entry(segment.clone())
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            if !child.is_object() {
                *child = serde_json::Value::Object(serde_json::Map::new());
            }
            let serde_json::Value::Object(child) = child else {
                // Made an object just above.
                return;
            };
            object = child;
        }
        object.insert(self.leaf.clone(), value);
    }
}

impl fmt::Display for ClaimPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for parent in &self.parents {
            write!(f, "{parent}.")?;
        }
        f.write_str(&self.leaf)
    }
}
