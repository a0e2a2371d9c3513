//! The document's bounds, checked before it is parsed: its size in bytes and its number of
//! lexical tokens, counted by a cheap pass of the GraphQL lexer (punctuators, names, numbers,
//! strings and block strings; whitespace, commas and comments are ignored, as the spec's
//! Ignored tokens are). Parsing allocates a node per token and far more than the text's size, so
//! what the parser is given is bounded before it runs.

/// How a document exceeds its bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum TooLarge {
    /// Its text is longer than allowed.
    #[error("the document is {bytes} bytes long; at most {limit} are allowed")]
    Bytes {
        /// Its length.
        bytes: usize,
        /// The most allowed.
        limit: usize,
    },
    /// It holds more tokens than allowed.
    #[error("the document holds more than {limit} tokens")]
    Tokens {
        /// The most allowed.
        limit: usize,
    },
}

/// How many tokens `document` holds, when it is at most `max_bytes` long and holds at most
/// `max_tokens` tokens (the count stops past the limit).
pub(super) fn within_bounds(
    document: &str,
    max_bytes: usize,
    max_tokens: usize,
) -> Result<usize, TooLarge> {
    if document.len() > max_bytes {
        return Err(TooLarge::Bytes {
            bytes: document.len(),
            limit: max_bytes,
        });
    }
    let mut lexer = Lexer {
        bytes: document.as_bytes(),
        at: 0,
    };
    let mut count = 0;
    while lexer.next_token() {
        count += 1;
        if count > max_tokens {
            return Err(TooLarge::Tokens { limit: max_tokens });
        }
    }
    Ok(count)
}

/// The name of the document's first operation (`query Products { ... }` → `Products`), without
/// parsing it; `None` for an anonymous operation or a document that names none. A document of one
/// operation is parsed without its name, which the metrics want.
pub(crate) fn operation_name(document: &str) -> Option<&str> {
    let mut lexer = Lexer {
        bytes: document.as_bytes(),
        at: 0,
    };
    let mut depth = 0_usize;
    let mut in_fragment = false;
    let mut next_is_name = false;
    loop {
        lexer.skip_ignored();
        let start = lexer.at;
        if !lexer.next_token() {
            return None;
        }
        let token = document.get(start..lexer.at)?;
        if next_is_name {
            let is_name = token
                .bytes()
                .next()
                .is_some_and(|byte| byte == b'_' || byte.is_ascii_alphabetic());
            return is_name.then_some(token);
        }
        match token {
            // A selection set at the top that no fragment opened: the anonymous shorthand.
            "{" if depth == 0 && !in_fragment => return None,
            "{" => {
                depth += 1;
                in_fragment = false;
            }
            "}" => depth = depth.saturating_sub(1),
            "fragment" if depth == 0 => in_fragment = true,
            "query" | "mutation" | "subscription" if depth == 0 && !in_fragment => {
                next_is_name = true;
            }
            _ => {}
        }
    }
}

/// A lexer that only finds where each token ends. A character no token starts with counts as a
/// token of its own: the parser refuses it later.
struct Lexer<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Lexer<'_> {
    fn peek(&self, offset: usize) -> Option<u8> {
        self.bytes.get(self.at + offset).copied()
    }

    /// Skips ignored text, then one token; false at the end of the document.
    fn next_token(&mut self) -> bool {
        self.skip_ignored();
        let Some(first) = self.peek(0) else {
            return false;
        };
        match first {
            b'"' if self.bytes[self.at..].starts_with(b"\"\"\"") => self.block_string(),
            b'"' => self.string(),
            b'.' if self.bytes[self.at..].starts_with(b"...") => self.at += 3,
            b'_' | b'A'..=b'Z' | b'a'..=b'z' => self.word(),
            b'-' | b'0'..=b'9' => {
                self.at += 1;
                self.number();
            }
            _ => self.at += 1,
        }
        true
    }

    /// Whitespace, line terminators, commas, comments and a byte order mark.
    fn skip_ignored(&mut self) {
        while let Some(byte) = self.peek(0) {
            match byte {
                b' ' | b'\t' | b'\n' | b'\r' | b',' => self.at += 1,
                b'#' => {
                    while self
                        .peek(0)
                        .is_some_and(|byte| byte != b'\n' && byte != b'\r')
                    {
                        self.at += 1;
                    }
                }
                0xEF if self.bytes[self.at..].starts_with("\u{feff}".as_bytes()) => self.at += 3,
                _ => return,
            }
        }
    }

    fn word(&mut self) {
        while self
            .peek(0)
            .is_some_and(|byte| byte == b'_' || byte.is_ascii_alphanumeric())
        {
            self.at += 1;
        }
    }

    /// The rest of an integer or float: digits, a fraction, an exponent with its sign.
    fn number(&mut self) {
        while let Some(byte) = self.peek(0) {
            let exponent_sign = matches!(byte, b'+' | b'-')
                && self.at > 0
                && matches!(self.bytes[self.at - 1], b'e' | b'E');
            if byte.is_ascii_alphanumeric() || byte == b'.' || exponent_sign {
                self.at += 1;
            } else {
                return;
            }
        }
    }

    /// A string: to its closing quote, past escapes, or to the end of its line.
    fn string(&mut self) {
        self.at += 1;
        while let Some(byte) = self.peek(0) {
            self.at += 1;
            match byte {
                b'\\' => self.at += 1,
                b'"' | b'\n' | b'\r' => return,
                _ => {}
            }
        }
        self.at = self.at.min(self.bytes.len());
    }

    /// A block string: to its closing `"""`, past escaped `\"""`.
    fn block_string(&mut self) {
        self.at += 3;
        while self.at < self.bytes.len() {
            let rest = &self.bytes[self.at..];
            if rest.starts_with(b"\\\"\"\"") {
                self.at += 4;
            } else if rest.starts_with(b"\"\"\"") {
                self.at += 3;
                return;
            } else {
                self.at += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(document: &str) -> usize {
        within_bounds(document, usize::MAX, usize::MAX).expect("within bounds")
    }

    #[test]
    fn the_first_operation_is_named_without_parsing() {
        assert_eq!(
            operation_name("query Products { products { sku } }"),
            Some("Products")
        );
        assert_eq!(
            operation_name("# a comment\n mutation PlaceOrder($input: I!) { placeOrder }"),
            Some("PlaceOrder")
        );
        assert_eq!(
            operation_name("fragment F on Order { id } query Mine { orders { ...F } }"),
            Some("Mine")
        );
        assert_eq!(operation_name("{ query { id } }"), None);
        assert_eq!(operation_name("query { products { sku } }"), None);
        assert_eq!(
            operation_name("query ($id: ID!) { order(id: $id) { id } }"),
            None
        );
        assert_eq!(operation_name(""), None);
    }

    #[test]
    fn tokens_are_counted_as_the_lexer_reads_them() {
        assert_eq!(tokens("{ a }"), 3);
        assert_eq!(tokens("query Q($id: ID!) { customer(id: $id) { id } }"), 21);
        assert_eq!(tokens("{ ...F } fragment F on T { a }"), 11);
        assert_eq!(tokens("{ a(x: -1.5e+3, y: 12) }"), 11);
        assert_eq!(tokens("{ a(s: \"x \\\" } y\") }"), 8);
        assert_eq!(tokens("{ a(s: \"\"\"x \\\"\"\" }\n\"\"\") }"), 8);
        assert_eq!(tokens("# { a b c }\n,,, { a } # done"), 3);
        assert_eq!(tokens("\u{feff}{ a }"), 3);
        assert_eq!(tokens(""), 0);
        assert_eq!(tokens("\"unterminated"), 1);
        assert_eq!(tokens("\"\"\"unterminated"), 1);
    }

    #[test]
    fn a_document_past_its_bounds_is_refused_before_parsing() {
        assert_eq!(
            within_bounds("{ a }", 4, 100),
            Err(TooLarge::Bytes { bytes: 5, limit: 4 })
        );
        assert_eq!(
            within_bounds("{ a b c }", 100, 4),
            Err(TooLarge::Tokens { limit: 4 })
        );
        assert_eq!(within_bounds("{ a b }", 100, 4), Ok(4));
    }

    #[test]
    fn graphiql_introspection_query_is_within_the_default_bounds() {
        let settings = crowdcrunch_runtime::edge::EdgeSettings::default();
        let introspection = include_str!("../../tests/introspection.graphql");
        let count = within_bounds(
            introspection,
            settings.max_document_bytes,
            settings.max_tokens,
        )
        .expect("within bounds");
        assert!(count > 100, "{count}");
    }
}
