//! AIP-158 pagination: `page_size` 0 means the default, a size over the maximum is coerced to it,
//! a negative size is INVALID_ARGUMENT; `page_token` is opaque (a keyset cursor) and an empty
//! `next_page_token` is the only end of a list. A token is bound to the list's filter fields: one
//! returned under other filter values is refused.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use std::num::NonZeroU32;

use crate::status::FieldViolation;

/// Page size when the client asks for none.
pub const DEFAULT_PAGE_SIZE: NonZeroU32 = NonZeroU32::new(50).expect("50 is not zero");
/// The largest page served; larger requests are coerced to it.
pub const MAX_PAGE_SIZE: NonZeroU32 = NonZeroU32::new(1000).expect("1000 is not zero");

const TOKEN_PREFIX: &str = "v1:";

/// A validated page request: how many items, after which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Items to return: at least one.
    pub size: NonZeroU32,
    /// The last key of the previous page; `None` on the first page.
    pub after: Option<String>,
    /// Fingerprint of the filter values the tokens are bound to.
    filter: String,
}

impl PageRequest {
    /// Validates `page_size` and `page_token` of a List request without filter fields.
    pub fn parse(page_size: i32, page_token: &str) -> Result<Self, FieldViolation> {
        Self::parse_filtered(page_size, page_token, "")
    }

    /// Validates `page_size` and `page_token` of a List request whose other fields filter it;
    /// `filter` is any text that names their values (e.g. `active=true`). A token returned under
    /// other filter values is refused, and the next token is bound to these.
    pub fn parse_filtered(
        page_size: i32,
        page_token: &str,
        filter: &str,
    ) -> Result<Self, FieldViolation> {
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
            let bad_token =
                || FieldViolation::new("page_token", "is not a token this list returned");
            let bytes = URL_SAFE_NO_PAD
                .decode(page_token)
                .map_err(|_| bad_token())?;
            let text = String::from_utf8(bytes).map_err(|_| bad_token())?;
            let rest = text.strip_prefix(TOKEN_PREFIX).ok_or_else(bad_token)?;
            let (bound_to, key) = rest.split_once(':').ok_or_else(bad_token)?;
            if bound_to != filter {
                return Err(FieldViolation::new(
                    "page_token",
                    "was returned for other filter values; send the filters of the call that returned it",
                ));
            }
            Some(key.to_owned())
        };
        Ok(Self {
            size,
            after,
            filter,
        })
    }

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
        self.encode_token(&key(&items[size - 1]))
    }

    fn encode_token(&self, key: &str) -> String {
        URL_SAFE_NO_PAD.encode(format!("{TOKEN_PREFIX}{}:{key}", self.filter))
    }
}

/// 64-bit FNV-1a of `text` in hex: stable across builds and versions, unlike `std`'s hasher.
fn fingerprint(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
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
    match PageRequest::parse_filtered(page_size, page_token, &format!("{field}={filter}")) {
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

    #[test]
    fn sizes_follow_aip_158() {
        let cases = [
            (0, Some(DEFAULT_PAGE_SIZE.get())),
            (7, Some(7)),
            (5000, Some(MAX_PAGE_SIZE.get())),
            (-1, None),
        ];
        for (asked, expected) in cases {
            let parsed = PageRequest::parse(asked, "")
                .ok()
                .map(|page| page.size.get());
            assert_eq!(parsed, expected, "page_size {asked}");
        }
    }

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        let page = PageRequest::parse(2, "").expect("first page");
        let mut items = vec!["a", "b", "c"];
        let token = page.finish(&mut items, |item| (*item).to_owned());
        assert_eq!(items, ["a", "b"]);
        let next = PageRequest::parse(2, &token).expect("token parses");
        assert_eq!(next.after.as_deref(), Some("b"));
        assert!(PageRequest::parse(2, "not-a-token").is_err());
        let mut last = vec!["c"];
        assert_eq!(next.finish(&mut last, |item| (*item).to_owned()), "");
    }

    #[test]
    fn tokens_are_bound_to_the_filter() {
        let page = PageRequest::parse_filtered(1, "", "active=true").expect("first page");
        let token = page.finish(&mut vec!["a", "b"], |item| (*item).to_owned());
        let same = PageRequest::parse_filtered(1, &token, "active=true").expect("same filter");
        assert_eq!(same.after.as_deref(), Some("a"));
        let other = PageRequest::parse_filtered(1, &token, "active=false").expect_err("other");
        assert_eq!(other.field, "page_token");
        assert!(
            PageRequest::parse(1, &token).is_err(),
            "no filter is another filter"
        );
    }
}
