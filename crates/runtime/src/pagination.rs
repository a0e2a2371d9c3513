//! AIP-158 pagination: `page_size` 0 means the default, a size over the maximum is coerced to it,
//! a negative size is INVALID_ARGUMENT; `page_token` is opaque (a keyset cursor) and an empty
//! `next_page_token` is the only end of a list. A token is bound to the list's filter fields: one
//! returned under other filter values is refused.
//!
//! Tokens are authenticated: each carries an HMAC-SHA256 of its content under the server's
//! [`PageTokens`] key, so a token that was changed in any way (a byte flipped, bytes appended,
//! another key's) is refused as `page_token` INVALID_ARGUMENT, and a client can never make up a
//! cursor. Every replica of a service must hold the same key, so that a token one replica returns
//! the next one accepts (and across a rolling upgrade).

use std::fmt;
use std::io::Write as _;
use std::num::NonZeroU32;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::hmac;
use ring::rand::{SecureRandom as _, SystemRandom};

use crate::status::FieldViolation;

/// Page size when the client asks for none.
pub const DEFAULT_PAGE_SIZE: NonZeroU32 = NonZeroU32::new(50).expect("50 is not zero");
/// The largest page served; larger requests are coerced to it.
pub const MAX_PAGE_SIZE: NonZeroU32 = NonZeroU32::new(1000).expect("1000 is not zero");

/// The shortest page-token key, in bytes (HMAC-SHA256's output length).
pub const MIN_KEY_BYTES: usize = 32;

/// The file in `dev`'s data dir that keeps its page-token key, so that tokens survive a restart.
pub const PAGE_TOKEN_KEY_FILE: &str = "page-token-key";

/// The longest `page_token` looked at, in characters; the longest real one is far shorter.
const MAX_TOKEN_LEN: usize = 512;

/// The version of the token layout, inside the authenticated part.
const TOKEN_PREFIX: &str = "v2:";

/// Why a page-token key cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum PageTokenKeyError {
    /// The key is not base64.
    #[error("the page-token key is not base64")]
    NotBase64,
    /// The key is too short to authenticate anything.
    #[error("the page-token key has {0} bytes, fewer than {MIN_KEY_BYTES}")]
    TooShort(usize),
    /// The key file cannot be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The key file holds no usable key.
    #[error("{}: {reason}", path.display())]
    BadFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with what it holds.
        reason: Box<PageTokenKeyError>,
    },
    /// The system's random source failed.
    #[error("the system random source failed while generating a page-token key")]
    Random,
}

/// The key that signs the page tokens a server returns and checks those it is sent (HMAC-SHA256).
/// Cheap to clone; `Debug` never prints the key.
#[derive(Clone)]
pub struct PageTokens {
    key: hmac::Key,
}

impl fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PageTokens([redacted])")
    }
}

impl PageTokens {
    /// Tokens signed with `secret`, which must be at least [`MIN_KEY_BYTES`] long.
    pub fn new(secret: &[u8]) -> Result<Self, PageTokenKeyError> {
        if secret.len() < MIN_KEY_BYTES {
            return Err(PageTokenKeyError::TooShort(secret.len()));
        }
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        })
    }

    /// Tokens signed with the key `encoded` in standard base64 (what `openssl rand -base64 32`
    /// prints); surrounding whitespace is ignored.
    pub fn from_base64(encoded: &str) -> Result<Self, PageTokenKeyError> {
        let secret = STANDARD
            .decode(encoded.trim())
            .map_err(|_| PageTokenKeyError::NotBase64)?;
        Self::new(&secret)
    }

    /// Tokens signed with a fresh random key: valid only while this value lives (a test server,
    /// or a server alone).
    pub fn generate() -> Result<Self, PageTokenKeyError> {
        Self::new(&random_secret()?)
    }

    /// The key kept in `dir` ([`PAGE_TOKEN_KEY_FILE`], mode 0600), generated there on first use
    /// (`dev`, whose tokens then survive a restart).
    pub fn load_or_generate(dir: &Path) -> Result<Self, PageTokenKeyError> {
        let path = dir.join(PAGE_TOKEN_KEY_FILE);
        let io_error = |source| PageTokenKeyError::Io {
            path: path.clone(),
            source,
        };
        let from_file = |encoded: &str| {
            Self::from_base64(encoded).map_err(|reason| PageTokenKeyError::BadFile {
                path: path.clone(),
                reason: Box::new(reason),
            })
        };
        match std::fs::read_to_string(&path) {
            Ok(encoded) => return from_file(&encoded),
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_error(error));
            }
            Err(_) => {}
        }
        let encoded = STANDARD.encode(random_secret()?);
        std::fs::create_dir_all(dir).map_err(io_error)?;
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path);
        match created {
            Ok(mut file) => {
                file.write_all(encoded.as_bytes()).map_err(io_error)?;
                file.sync_all().map_err(io_error)?;
                Self::from_base64(&encoded)
            }
            // Another process created it meanwhile: use theirs.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                from_file(&std::fs::read_to_string(&path).map_err(io_error)?)
            }
            Err(error) => Err(io_error(error)),
        }
    }

    /// Validates `page_size` and `page_token` of a List request without filter fields.
    pub fn parse(&self, page_size: i32, page_token: &str) -> Result<PageRequest, FieldViolation> {
        self.parse_filtered(page_size, page_token, "")
    }

    /// Validates `page_size` and `page_token` of a List request whose other fields filter it;
    /// `filter` is any text that names their values (e.g. `active=true`). A token this key did
    /// not sign, or returned under other filter values, is refused, and the next token is bound
    /// to these.
    pub fn parse_filtered(
        &self,
        page_size: i32,
        page_token: &str,
        filter: &str,
    ) -> Result<PageRequest, FieldViolation> {
        let size = match u32::try_from(page_size) {
            Err(_) => return Err(FieldViolation::new("page_size", "must not be negative")),
            Ok(size) => {
                NonZeroU32::new(size).map_or(DEFAULT_PAGE_SIZE, |size| size.min(MAX_PAGE_SIZE))
            }
        };
        let filter = fingerprint(filter);
        let after = if page_token.is_empty() {
            None
        } else {
            let (bound_to, key) = self.open(page_token).ok_or_else(|| {
                FieldViolation::new("page_token", "is not a token this list returned")
            })?;
            if bound_to != filter {
                return Err(FieldViolation::new(
                    "page_token",
                    "was returned for other filter values; send the filters of the call that returned it",
                ));
            }
            Some(key)
        };
        Ok(PageRequest {
            size,
            after,
            filter,
            tokens: self.clone(),
        })
    }

    /// A token for the page after `key` under the filter `fingerprint`: its content, then the
    /// MAC of the content.
    fn seal(&self, fingerprint: &str, key: &str) -> String {
        let mut token = format!("{TOKEN_PREFIX}{fingerprint}:{key}").into_bytes();
        let tag = hmac::sign(&self.key, &token);
        token.extend_from_slice(tag.as_ref());
        URL_SAFE_NO_PAD.encode(token)
    }

    /// The filter fingerprint and the key of a token this key sealed; `None` for anything else.
    fn open(&self, token: &str) -> Option<(String, String)> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        let content_len = bytes
            .len()
            .checked_sub(hmac::HMAC_SHA256.digest_algorithm().output_len())?;
        let (content, tag) = bytes.split_at(content_len);
        hmac::verify(&self.key, content, tag).ok()?;
        let content = std::str::from_utf8(content).ok()?;
        let (bound_to, key) = content.strip_prefix(TOKEN_PREFIX)?.split_once(':')?;
        Some((bound_to.to_owned(), key.to_owned()))
    }
}

/// [`MIN_KEY_BYTES`] random bytes.
fn random_secret() -> Result<[u8; MIN_KEY_BYTES], PageTokenKeyError> {
    let mut secret = [0; MIN_KEY_BYTES];
    SystemRandom::new()
        .fill(&mut secret)
        .map_err(|_| PageTokenKeyError::Random)?;
    Ok(secret)
}

/// A validated page request: how many items, after which key.
#[derive(Debug, Clone)]
pub struct PageRequest {
    /// Items to return: at least one.
    pub size: NonZeroU32,
    /// The last key of the previous page; `None` on the first page.
    pub after: Option<String>,
    /// Fingerprint of the filter values the tokens are bound to.
    filter: String,
    /// The key the next token is signed with.
    tokens: PageTokens,
}

impl PageRequest {
    /// The SQL `LIMIT` to use: one more than the page, to learn whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.size.get()) + 1
    }

    /// Trims a fetched batch (of up to [`Self::fetch_limit`] items) to the page and returns the
    /// `next_page_token`: the key of the page's last item when more follow, else empty.
    pub fn finish<T>(&self, items: &mut Vec<T>, key: impl Fn(&T) -> String) -> String {
        let size = self.size.get() as usize;
        if items.len() <= size {
            return String::new();
        }
        items.truncate(size);
        // `size` is at least one, so the page has a last item.
        self.tokens.seal(&self.filter, &key(&items[size - 1]))
    }
}

/// The first 128 bits of SHA-256 of `text`, in hex: a filter no other filter can be made to
/// share, stable across builds and versions.
fn fingerprint(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref()[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The most ids one call may name: a BatchGet, or a "one or many" filter of a List.
pub const MAX_IDS: usize = 1000;

/// Parses the id list `field` of a request: at most [`MAX_IDS`], each by `parse` (given the id and
/// its field path, `field[i]`); every bad id is a violation.
pub fn parse_ids<T>(
    ids: &[String],
    field: &str,
    parse: impl Fn(&str, &str) -> Result<T, FieldViolation>,
) -> Result<Vec<T>, Vec<FieldViolation>> {
    if ids.len() > MAX_IDS {
        return Err(vec![FieldViolation::new(
            field,
            format!("at most {MAX_IDS} ids per call"),
        )]);
    }
    let mut parsed = Vec::with_capacity(ids.len());
    let mut violations = Vec::new();
    for (index, id) in ids.iter().enumerate() {
        match parse(id, &format!("{field}[{index}]")) {
            Ok(id) => parsed.push(id),
            Err(violation) => violations.push(violation),
        }
    }
    if violations.is_empty() {
        Ok(parsed)
    } else {
        Err(violations)
    }
}

/// Parses the `requests` of a batch of List calls (a `BatchList*` RPC): at most [`MAX_IDS`],
/// each by `parse`; the violations of request `i` are named under `requests[i].`.
pub fn parse_batch<R, T>(
    requests: &[R],
    parse: impl Fn(&R) -> Result<T, Vec<FieldViolation>>,
) -> Result<Vec<T>, Vec<FieldViolation>> {
    if requests.len() > MAX_IDS {
        return Err(vec![FieldViolation::new(
            "requests",
            format!("at most {MAX_IDS} requests per call"),
        )]);
    }
    let mut parsed = Vec::with_capacity(requests.len());
    let mut violations = Vec::new();
    for (index, request) in requests.iter().enumerate() {
        match parse(request) {
            Ok(request) => parsed.push(request),
            Err(found) => violations.extend(found.into_iter().map(|violation| {
                FieldViolation::new(
                    format!("requests[{index}].{}", violation.field),
                    violation.description,
                )
            })),
        }
    }
    if violations.is_empty() {
        Ok(parsed)
    } else {
        Err(violations)
    }
}

/// A List request filtered by "one or many" ids (`order_ids`): the ids parsed as [`parse_ids`]
/// does, sorted and without repeats (every order's items when empty), and the page, its token
/// bound to those ids.
pub fn parse_id_filtered_page<T: Ord>(
    tokens: &PageTokens,
    page_size: i32,
    page_token: &str,
    field: &str,
    ids: &[String],
    parse: impl Fn(&str, &str) -> Result<T, FieldViolation>,
    as_str: impl Fn(&T) -> &str,
) -> Result<(PageRequest, Vec<T>), Vec<FieldViolation>> {
    let mut violations = Vec::new();
    let mut parsed = parse_ids(ids, field, parse).unwrap_or_else(|mut bad| {
        violations.append(&mut bad);
        Vec::new()
    });
    parsed.sort();
    parsed.dedup();
    let filter = parsed.iter().map(&as_str).collect::<Vec<_>>().join(",");
    match tokens.parse_filtered(page_size, page_token, &format!("{field}={filter}")) {
        Ok(page) if violations.is_empty() => Ok((page, parsed)),
        Ok(_) => Err(violations),
        Err(violation) => {
            violations.push(violation);
            Err(violations)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> PageTokens {
        PageTokens::generate().expect("a random key")
    }

    /// The token after `a` of a list of `a`, `b` under `filter`.
    fn token_after_a(tokens: &PageTokens, filter: &str) -> String {
        let page = tokens.parse_filtered(1, "", filter).expect("first page");
        page.finish(&mut vec!["a", "b"], |item| (*item).to_owned())
    }

    fn refused(tokens: &PageTokens, token: &str, filter: &str) -> bool {
        match tokens.parse_filtered(1, token, filter) {
            Ok(_) => false,
            Err(violation) => {
                assert_eq!(violation.field, "page_token");
                true
            }
        }
    }

    #[test]
    fn sizes_follow_aip_158() {
        let cases = [
            (0, Some(DEFAULT_PAGE_SIZE.get())),
            (7, Some(7)),
            (5000, Some(MAX_PAGE_SIZE.get())),
            (-1, None),
        ];
        for (asked, expected) in cases {
            let parsed = tokens().parse(asked, "").ok().map(|page| page.size.get());
            assert_eq!(parsed, expected, "page_size {asked}");
        }
    }

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        let tokens = tokens();
        let page = tokens.parse(2, "").expect("first page");
        let mut items = vec!["a", "b", "c"];
        let token = page.finish(&mut items, |item| (*item).to_owned());
        assert_eq!(items, ["a", "b"]);
        let next = tokens.parse(2, &token).expect("token parses");
        assert_eq!(next.after.as_deref(), Some("b"));
        assert!(tokens.parse(2, "not-a-token").is_err());
        let mut last = vec!["c"];
        assert_eq!(next.finish(&mut last, |item| (*item).to_owned()), "");
    }

    #[test]
    fn tokens_are_bound_to_the_filter() {
        let tokens = tokens();
        let token = token_after_a(&tokens, "active=true");
        let same = tokens
            .parse_filtered(1, &token, "active=true")
            .expect("same filter");
        assert_eq!(same.after.as_deref(), Some("a"));
        assert!(refused(&tokens, &token, "active=false"));
        assert!(refused(&tokens, &token, ""), "no filter is another filter");
    }

    #[test]
    fn a_modified_token_is_refused() {
        let tokens = tokens();
        let token = token_after_a(&tokens, "");
        assert!(!refused(&tokens, &token, ""));
        for appended in ["A", "AAAA", "x", "_-"] {
            assert!(
                refused(&tokens, &format!("{token}{appended}"), ""),
                "{appended}"
            );
        }
        assert!(refused(&tokens, &token[..token.len() - 1], ""), "truncated");
        let bytes = URL_SAFE_NO_PAD.decode(&token).expect("base64");
        for index in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[index] ^= 0x01;
            assert!(
                refused(&tokens, &URL_SAFE_NO_PAD.encode(&flipped), ""),
                "byte {index} flipped"
            );
        }
        // A token made up without the key: the old unauthenticated layout, or a forged MAC.
        let forged = URL_SAFE_NO_PAD.encode(format!("v1:{}:a", fingerprint("")));
        assert!(refused(&tokens, &forged, ""));
        let mut forged = format!("{TOKEN_PREFIX}{}:z", fingerprint("")).into_bytes();
        forged.extend_from_slice(&[0; 32]);
        assert!(refused(&tokens, &URL_SAFE_NO_PAD.encode(forged), ""));
        assert!(refused(&tokens, &"A".repeat(MAX_TOKEN_LEN + 4), ""));
    }

    #[test]
    fn a_token_of_another_key_is_refused() {
        let (ours, theirs) = (tokens(), tokens());
        let token = token_after_a(&theirs, "");
        assert!(refused(&ours, &token, ""));
        let shared = [7; MIN_KEY_BYTES];
        let replica_a = PageTokens::new(&shared).expect("a key");
        let replica_b = PageTokens::new(&shared).expect("a key");
        let token = token_after_a(&replica_a, "");
        assert!(!refused(&replica_b, &token, ""), "replicas share the key");
    }

    #[test]
    fn keys_are_base64_of_at_least_32_bytes() {
        let key = STANDARD.encode([1; MIN_KEY_BYTES]);
        assert!(PageTokens::from_base64(&format!("{key}\n")).is_ok());
        assert!(matches!(
            PageTokens::from_base64(&STANDARD.encode([1; 31])),
            Err(PageTokenKeyError::TooShort(31))
        ));
        assert!(matches!(
            PageTokens::from_base64("not base64!"),
            Err(PageTokenKeyError::NotBase64)
        ));
        assert_eq!(format!("{:?}", tokens()), "PageTokens([redacted])");
    }

    #[test]
    fn a_kept_key_signs_the_same_tokens_after_a_restart() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let first = PageTokens::load_or_generate(dir.path()).expect("generated");
        let token = token_after_a(&first, "");
        let again = PageTokens::load_or_generate(dir.path()).expect("loaded");
        assert!(!refused(&again, &token, ""));
        let mode = std::fs::metadata(dir.path().join(PAGE_TOKEN_KEY_FILE))
            .expect("the key file")
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        std::fs::write(dir.path().join(PAGE_TOKEN_KEY_FILE), "c2hvcnQ=").expect("overwrite");
        let error = PageTokens::load_or_generate(dir.path()).expect_err("a 5-byte key");
        assert_eq!(
            error.to_string(),
            format!(
                "{}: the page-token key has 5 bytes, fewer than 32",
                dir.path().join(PAGE_TOKEN_KEY_FILE).display()
            )
        );
    }
}
