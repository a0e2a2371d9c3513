//! Why a caller has no identity: one variant per refusal, with the one mapping to gRPC
//! (UNAUTHENTICATED with `ErrorInfo`) and what HTTP needs (401 with `WWW-Authenticate`).

use http::{HeaderValue, StatusCode};
use tonic::Code;

use crate::status;

/// The `ErrorInfo.domain` of authentication errors.
pub const DOMAIN: &str = "auth.crowdcrunch.dev";

/// A token (or `authorization` value) that gives no identity, or keys that cannot be had.
///
/// Messages never echo a token; a key id from a token is printed escaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The `authorization` value is not `Bearer <token>` (or there is more than one).
    #[error("the authorization value is not `Bearer <token>`: {0}")]
    MalformedAuthorization(&'static str),
    /// The token is not a JWS compact serialization with a JSON header and claims.
    #[error("the token is not a well-formed JWT: {0}")]
    MalformedToken(&'static str),
    /// The token says `alg: none`: it is unsigned.
    #[error("the token is unsigned (`alg: none`)")]
    AlgorithmNone,
    /// The token names an HMAC algorithm (HS256/384/512), which a JWKS of public keys cannot verify
    /// and which would let anyone holding the public key forge tokens.
    #[error("the token uses the symmetric algorithm {0}; only public-key algorithms are accepted")]
    HmacAlgorithm(String),
    /// The token names an algorithm this verifier does not accept.
    #[error("the token's algorithm {0:?} is not accepted (RS*, PS*, ES256 and ES384 are)")]
    UnsupportedAlgorithm(String),
    /// The token's header has no `kid`, so no key of the JWKS can be chosen.
    #[error("the token's header names no key (`kid`)")]
    MissingKeyId,
    /// The token's `kid` is not in the JWKS, even after a refresh.
    #[error("the token is signed with key {0:?}, which the JWKS does not hold")]
    UnknownKey(String),
    /// The JWKS key of the token's `kid` is not for the token's algorithm.
    #[error("the token's algorithm is not the one of key {0:?}")]
    KeyAlgorithmMismatch(String),
    /// The signature does not verify with the JWKS key of the token's `kid`.
    #[error("the token's signature does not verify with key {0:?}")]
    BadSignature(String),
    /// `exp` has passed (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is still in the future (beyond the leeway).
    #[error("the token is not valid yet (`nbf` is in the future)")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("the token's issuer (`iss`) is not the one this service trusts")]
    WrongIssuer,
    /// `aud` does not include the configured audience.
    #[error("the token's audience (`aud`) does not include this service's")]
    WrongAudience,
    /// A claim that is needed is absent, empty or of the wrong type.
    #[error("the token has no usable `{0}` claim")]
    MissingClaim(String),
    /// No JWKS has been fetched yet (the issuer is unreachable), so no token can be verified now.
    #[error("the token cannot be verified now: the issuer's keys are unavailable")]
    KeysUnavailable,
}

impl AuthError {
    /// The `ErrorInfo.reason`, stable for machines.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MalformedAuthorization(_) => "MALFORMED_AUTHORIZATION",
            Self::MalformedToken(_) => "MALFORMED_TOKEN",
            Self::AlgorithmNone => "UNSIGNED_TOKEN",
            Self::HmacAlgorithm(_) => "SYMMETRIC_ALGORITHM",
            Self::UnsupportedAlgorithm(_) => "UNSUPPORTED_ALGORITHM",
            Self::MissingKeyId => "MISSING_KEY_ID",
            Self::UnknownKey(_) => "UNKNOWN_KEY",
            Self::KeyAlgorithmMismatch(_) => "KEY_ALGORITHM_MISMATCH",
            Self::BadSignature(_) => "BAD_SIGNATURE",
            Self::Expired => "TOKEN_EXPIRED",
            Self::NotYetValid => "TOKEN_NOT_YET_VALID",
            Self::WrongIssuer => "WRONG_ISSUER",
            Self::WrongAudience => "WRONG_AUDIENCE",
            Self::MissingClaim(_) => "MISSING_CLAIM",
            Self::KeysUnavailable => "KEYS_UNAVAILABLE",
        }
    }

    /// The HTTP status: 401, or 503 while the keys are unavailable.
    pub fn http_status(&self) -> StatusCode {
        match self {
            Self::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The `WWW-Authenticate` value of the 401 answer (RFC 6750 §3):
    /// `Bearer error="invalid_token", error_description="…"`; `None` for a 503.
    pub fn www_authenticate(&self) -> Option<HeaderValue> {
        match self {
            Self::KeysUnavailable => None,
            _ => Some(HeaderValue::from_static(self.challenge())),
        }
    }

    /// The challenge per reason; the description is fixed text, never a value from the token.
    fn challenge(&self) -> &'static str {
        match self {
            Self::MalformedAuthorization(_) => {
                r#"Bearer error="invalid_token", error_description="malformed authorization""#
            }
            Self::MalformedToken(_) => {
                r#"Bearer error="invalid_token", error_description="malformed token""#
            }
            Self::Expired => r#"Bearer error="invalid_token", error_description="token expired""#,
            Self::NotYetValid => {
                r#"Bearer error="invalid_token", error_description="token not valid yet""#
            }
            Self::WrongIssuer | Self::WrongAudience => {
                r#"Bearer error="invalid_token", error_description="token not for this service""#
            }
            Self::MissingClaim(_) => {
                r#"Bearer error="invalid_token", error_description="token lacks a needed claim""#
            }
            Self::AlgorithmNone
            | Self::HmacAlgorithm(_)
            | Self::UnsupportedAlgorithm(_)
            | Self::MissingKeyId
            | Self::UnknownKey(_)
            | Self::KeyAlgorithmMismatch(_)
            | Self::BadSignature(_)
            | Self::KeysUnavailable => {
                r#"Bearer error="invalid_token", error_description="token signature not trusted""#
            }
        }
    }
}

/// The `WWW-Authenticate` value of a 401 for a request that carries no token (RFC 6750 §3.1:
/// no error code when no credentials were sent).
pub fn bearer_challenge() -> HeaderValue {
    HeaderValue::from_static("Bearer")
}

impl From<AuthError> for tonic::Status {
    fn from(error: AuthError) -> Self {
        let code = match error {
            AuthError::KeysUnavailable => Code::Unavailable,
            _ => Code::Unauthenticated,
        };
        status::with_reason(code, DOMAIN, error.reason(), error.to_string())
    }
}
