//! Reading a bearer token (RFC 6750 §2.1) from an `authorization` value: HTTP headers, gRPC
//! metadata (`MetadataMap::as_ref()` is a `HeaderMap`) and the graphql-transport-ws
//! `connection_init` payload.

use http::HeaderMap;
use http::header::AUTHORIZATION;

use super::AuthError;

/// The bearer token of `headers`: `None` without an `authorization` header; an error for a value
/// that is not `Bearer <token>` or for more than one `authorization` header.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::MalformedAuthorization(
            "more than one authorization header",
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| AuthError::MalformedAuthorization("not visible ASCII"))?;
    bearer_token_from_value(value).map(Some)
}

/// The token of one `authorization` value `Bearer <token>` (the scheme in any case).
pub fn bearer_token_from_value(value: &str) -> Result<&str, AuthError> {
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or(AuthError::MalformedAuthorization(
            "no token after the scheme",
        ))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::MalformedAuthorization(
            "the scheme is not Bearer",
        ));
    }
    let token = token.trim_start();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(AuthError::MalformedAuthorization(
            "the token is empty or has spaces",
        ));
    }
    Ok(token)
}
