//! Who is calling: OAuth 2.0 bearer tokens that are JWTs (RFC 6750, RFC 7519), verified against the
//! issuer's JWKS, and the [`Identity`] they give a call.
//!
//! - [`AuthArgs`] / [`AuthSettings`]: the `CROWDCRUNCH_AUTH_*` settings (issuer, audience, JWKS
//!   URL, claim paths, leeway, refresh intervals). Authentication cannot be switched off.
//! - [`bearer_token`] / [`bearer_token_from_value`]: the token of an `authorization` header or value.
//! - [`Verifier`]: checks a token's signature (RS256/384/512, PS256/384/512, ES256, ES384; never
//!   `none` or HMAC), `iss`, `aud`, `exp` and `nbf`; keeps the JWKS fresh; remembers verified tokens
//!   until they expire.
//! - [`AuthError`]: one variant per refusal, mapped to UNAUTHENTICATED (gRPC) and 401 with
//!   `WWW-Authenticate` (HTTP); [`AuthError::KeysUnavailable`] to UNAVAILABLE / 503.
//! - [`Verifier::identify_call`]: a call's identity: its token's, else the peer service that the
//!   client certificate of native mTLS or (inside a trusted mesh) Istio's
//!   `x-forwarded-client-cert` names, else anonymous.
//! - [`SigningKey`]: the ES256 key of `dev` and `crowdcrunch token`, its JWKS, and minted tokens.

mod bearer;
mod error;
mod identity;
mod jwks;
mod peer;
mod ring_provider;
mod settings;
mod signing;
mod verifier;

pub use bearer::{bearer_token, bearer_token_from_value};
pub use error::{AuthError, DOMAIN, bearer_challenge};
pub use identity::{Identity, SERVICE_ROLE, STAFF_ROLE};
pub use peer::FORWARDED_CLIENT_CERT;
pub use settings::{
    AuthArgs, AuthSettings, ClaimPath, JwksSettings, JwksUrl, MeshIdentity, SettingError,
    TokenRules, TrustedCa,
};
pub use signing::{Grant, SIGNING_KEY_FILE, SigningKey, SigningKeyError};
pub use verifier::{Verifier, VerifierCounts};
