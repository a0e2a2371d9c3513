//! Who may select what. Each root and join field calls RPCs whose `(crowdcrunch.access.v1.rule)`
//! the catalog read at start (deny by default: an RPC without one stops the edge from starting);
//! a request's [`Credentials`] are the caller the edge verified and the `authorization` value it
//! forwards on every backend call, so each service judges the caller again (zero trust).
//!
//! The edge judges twice, before any backend call: over the whole operation, where a caller
//! without a token who selects a field that needs one is refused with HTTP 401
//! (`request::access`); and per field, where a caller whose role a field's rule lacks gets that
//! field null with `FORBIDDEN` ([`admit`]), the rest of the response as usual.

use async_graphql::ErrorExtensionValues;
use crowdcrunch_runtime::access::{Admission, Rule};
use crowdcrunch_runtime::auth::{AuthError, Identity, Verifier, bearer_challenge};
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue, StatusCode};
use tonic::metadata::AsciiMetadataValue;

use crate::grpc::Rpc;

/// The `WWW-Authenticate` value refusing a peer service's token.
const SERVICE_TOKEN_CHALLENGE: &str =
    r#"Bearer error="invalid_token", error_description="service tokens are not accepted here""#;

/// Why a request is refused before execution: it must say who it is, or say it properly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unauthenticated {
    /// The token (or the `authorization` value) gives no identity.
    #[error(transparent)]
    Token(#[from] AuthError),
    /// A peer service's token: service identities never come from the internet.
    #[error("the token is a service's; clients cannot call as a service")]
    ServiceToken,
    /// No token, and the operation selects a field whose rule needs one.
    #[error("{field} needs a bearer token: it is for {rule}")]
    Anonymous {
        /// The field, as `Type.field`.
        field: String,
        /// Who it is for.
        rule: String,
    },
}

impl Unauthenticated {
    /// The HTTP status: 401, or 503 while the issuer's keys are unavailable.
    pub fn http_status(&self) -> StatusCode {
        match self {
            Self::Token(error) => error.http_status(),
            Self::ServiceToken | Self::Anonymous { .. } => StatusCode::UNAUTHORIZED,
        }
    }

    /// The `WWW-Authenticate` value (RFC 6750 §3): `error="invalid_token"` for a bad token, the
    /// bare challenge when none was sent; none with a 503.
    pub fn www_authenticate(&self) -> Option<HeaderValue> {
        match self {
            Self::Token(error) => error.www_authenticate(),
            Self::ServiceToken => Some(HeaderValue::from_static(SERVICE_TOKEN_CHALLENGE)),
            Self::Anonymous { .. } => Some(bearer_challenge()),
        }
    }

    /// The `extensions.code`: `UNAUTHENTICATED`, or `UNAVAILABLE` while the keys are.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Token(AuthError::KeysUnavailable) => "UNAVAILABLE",
            Self::Token(_) | Self::ServiceToken | Self::Anonymous { .. } => "UNAUTHENTICATED",
        }
    }
}

/// The caller of one request: their verified identity, and the `authorization` value forwarded
/// on every backend call the request makes.
#[derive(Debug, Clone)]
pub struct Credentials {
    identity: Identity,
    authorization: Option<AsciiMetadataValue>,
}

impl Credentials {
    /// The caller of an HTTP request, from its `Authorization: Bearer` header.
    pub async fn of_headers(
        verifier: &Verifier,
        headers: &HeaderMap,
    ) -> Result<Self, Unauthenticated> {
        let identity = verifier.identify(headers).await?;
        let value = headers.get(AUTHORIZATION).map(HeaderValue::as_bytes);
        Self::verified(identity, value)
    }

    /// The caller of a graphql-transport-ws connection, from the `authorization` field of its
    /// `connection_init` payload.
    pub async fn of_value(
        verifier: &Verifier,
        authorization: Option<&str>,
    ) -> Result<Self, Unauthenticated> {
        let identity = verifier.identify_authorization(authorization).await?;
        Self::verified(identity, authorization.map(str::as_bytes))
    }

    fn verified(identity: Identity, authorization: Option<&[u8]>) -> Result<Self, Unauthenticated> {
        if matches!(identity, Identity::Peer { .. }) {
            return Err(Unauthenticated::ServiceToken);
        }
        // The verifier read the value as visible ASCII: it is valid metadata.
        let authorization = authorization
            .map(AsciiMetadataValue::try_from)
            .transpose()
            .map_err(|_| AuthError::MalformedAuthorization("not visible ASCII"))?;
        Ok(Self {
            identity,
            authorization,
        })
    }

    /// Who the caller is.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The `authorization` value to forward, when the caller sent one.
    pub fn authorization(&self) -> Option<&AsciiMetadataValue> {
        self.authorization.as_ref()
    }
}

/// Admits the caller to the field named `field`, which calls `rpcs`, or answers its error:
/// `FORBIDDEN` for a caller without the role a rule needs, `UNAUTHENTICATED` for one without a
/// token. Called before the field makes any backend call.
pub fn admit<'r>(
    credentials: &Credentials,
    field: &str,
    rpcs: impl IntoIterator<Item = &'r Rpc>,
) -> Result<(), async_graphql::Error> {
    let Some((rule, refusal)) = refusal(credentials, rpcs) else {
        return Ok(());
    };
    let mut extensions = ErrorExtensionValues::default();
    extensions.set(
        "code",
        match refusal {
            Admission::Unauthenticated => "UNAUTHENTICATED",
            Admission::Admitted | Admission::Forbidden => "FORBIDDEN",
        },
    );
    extensions.set("required", rule.required());
    Err(async_graphql::Error {
        message: format!(
            "{field} is for {rule}; the caller is {}",
            credentials.identity
        ),
        source: None,
        extensions: Some(extensions),
    })
}

/// Whether the caller may use a field that calls `rpcs`.
pub fn admits<'r>(credentials: &Credentials, rpcs: impl IntoIterator<Item = &'r Rpc>) -> bool {
    refusal(credentials, rpcs).is_none()
}

/// The first rule among those of `rpcs` that refuses the caller, and how.
fn refusal<'r>(
    credentials: &Credentials,
    rpcs: impl IntoIterator<Item = &'r Rpc>,
) -> Option<(&'r Rule, Admission)> {
    rpcs.into_iter()
        .find_map(|rpc| match rpc.rule.admits(&credentials.identity) {
            Admission::Admitted => None,
            refused => Some((&rpc.rule, refused)),
        })
}

/// The last line of a root or join field's description: who may select it.
pub fn description_line(rule: &Rule) -> String {
    format!("Access: {rule}.")
}
