//! AIP-158 pagination: `page_size` 0 means the default, a size over the maximum is coerced to it,
//! a negative size is INVALID_ARGUMENT; `page_token` is opaque (a keyset cursor) and an empty
//! `next_page_token` is the only end of a list.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::status::FieldViolation;

/// Page size when the client asks for none.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// The largest page served; larger requests are coerced to it.
pub const MAX_PAGE_SIZE: u32 = 1000;

const TOKEN_PREFIX: &str = "v1:";

/// A validated page request: how many items, after which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Items to return.
    pub size: u32,
    /// The last key of the previous page; `None` on the first page.
    pub after: Option<String>,
}

impl PageRequest {
    /// Validates `page_size` and `page_token` of a List request.
    pub fn parse(page_size: i32, page_token: &str) -> Result<Self, FieldViolation> {
        let size = match u32::try_from(page_size) {
            Err(_) => return Err(FieldViolation::new("page_size", "must not be negative")),
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(size) => size.min(MAX_PAGE_SIZE),
        };
        let after = if page_token.is_empty() {
            None
        } else {
            let bad_token =
                || FieldViolation::new("page_token", "is not a token this list returned");
            let bytes = URL_SAFE_NO_PAD
                .decode(page_token)
                .map_err(|_| bad_token())?;
            let text = String::from_utf8(bytes).map_err(|_| bad_token())?;
            let key = text.strip_prefix(TOKEN_PREFIX).ok_or_else(bad_token)?;
            Some(key.to_owned())
        };
        Ok(Self { size, after })
    }

    /// The SQL `LIMIT` to use: one more than the page, to learn whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.size) + 1
    }

    /// Trims a fetched batch (of up to [`Self::fetch_limit`] items) to the page and returns the
    /// `next_page_token`: the key of the page's last item when more follow, else empty.
    pub fn finish<T>(&self, items: &mut Vec<T>, key: impl Fn(&T) -> String) -> String {
        let size = self.size as usize;
        if items.len() > size {
            items.truncate(size);
            items
                .last()
                .map(|item| encode_token(&key(item)))
                .unwrap_or_default()
        } else {
            String::new()
        }
    }
}

fn encode_token(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{TOKEN_PREFIX}{key}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_aip_158() {
        let cases = [
            (0, Some(DEFAULT_PAGE_SIZE)),
            (7, Some(7)),
            (5000, Some(MAX_PAGE_SIZE)),
            (-1, None),
        ];
        for (asked, expected) in cases {
            let parsed = PageRequest::parse(asked, "").ok().map(|page| page.size);
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
}
