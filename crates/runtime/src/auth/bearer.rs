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
    // A JWT is hundreds of ASCII bytes, looked at on every call: ASCII is checked bytewise, and
    // only a token with other characters (from a WebSocket payload) is read char by char.
    let has_space = if token.is_ascii() {
        token.bytes().any(|byte| char::from(byte).is_whitespace())
    } else {
        token.contains(char::is_whitespace)
    };
    if token.is_empty() || has_space {
        return Err(AuthError::MalformedAuthorization(
            "the token is empty or has spaces",
        ));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_what_follows_the_scheme_in_any_case() {
        assert_eq!(bearer_token_from_value("Bearer abc.def"), Ok("abc.def"));
        assert_eq!(
            bearer_token_from_value("  bEARER   abc.def  "),
            Ok("abc.def")
        );
    }

    #[test]
    fn a_token_with_whitespace_anywhere_is_refused() {
        let spaced = AuthError::MalformedAuthorization("the token is empty or has spaces");
        for value in [
            "Bearer abc def",
            "Bearer abc\tdef",
            "Bearer abc\u{b}def",
            "Bearer abc\u{a0}def",
            "Bearer abc\u{2003}def",
        ] {
            assert_eq!(
                bearer_token_from_value(value),
                Err(spaced.clone()),
                "{value:?}"
            );
        }
        // Other characters than ASCII are not spaces by themselves.
        assert_eq!(bearer_token_from_value("Bearer abcé"), Ok("abcé"));
    }

    #[test]
    fn another_scheme_is_refused() {
        assert!(matches!(
            bearer_token_from_value("Basic dXNlcjpwYXNz"),
            Err(AuthError::MalformedAuthorization(
                "the scheme is not Bearer"
            ))
        ));
    }
}
