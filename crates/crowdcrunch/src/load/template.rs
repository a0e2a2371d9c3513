//! Templated requests: placeholders inside the JSON string values of `--variables` and `--data`
//! that take a fresh value on every request, so that mutations (a `requestId` each) can be
//! measured honestly.
//!
//! | placeholder | value |
//! | --- | --- |
//! | `{{uuid}}` | a fresh UUID (v7) at every occurrence |
//! | `{{counter}}` | the request's number: 1, 2, 3… over the whole run, the same at every occurrence in one request |
//! | `{{pick:a,b,c}}` | one of the comma-separated values, at random |
//! | `{{file:PATH}}` | one line of the file at PATH (read once at start; blank lines skipped), at random |
//!
//! A string that is exactly `"{{counter}}"` becomes a JSON number; everywhere else a placeholder
//! is spliced into the string. Object keys are never templated. `{{` always opens a placeholder:
//! an unknown name, an unclosed `{{`, an empty pick list or an unreadable or empty file is an
//! error at start, naming the placeholder.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

/// Why a template cannot be used; found at start, before any request is sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    /// A `{{` without its `}}`.
    #[error("{string:?}: a `{{{{` without its `}}}}`")]
    Unclosed {
        /// The string value that holds it.
        string: String,
    },
    /// A placeholder name this generator does not know.
    #[error(
        "unknown placeholder {{{{{placeholder}}}}}: use {{{{uuid}}}}, {{{{counter}}}}, {{{{pick:a,b,c}}}} or {{{{file:PATH}}}}"
    )]
    Unknown {
        /// What stood between the braces.
        placeholder: String,
    },
    /// `{{pick:}}` with an empty value in its list.
    #[error("{{{{pick:{list}}}}}: every comma-separated value must be non-empty")]
    EmptyPick {
        /// The list as written.
        list: String,
    },
    /// `{{file:PATH}}` whose file cannot be read.
    #[error("{{{{file:{}}}}}: cannot read the file: {reason}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// `{{file:PATH}}` whose file holds no non-blank line.
    #[error("{{{{file:{}}}}}: the file has no non-blank line to pick", path.display())]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
}

/// A JSON value with placeholders, parsed once and rendered afresh for each request.
#[derive(Debug)]
pub struct Template {
    root: Node,
    /// The last request number handed out by `{{counter}}`.
    counter: AtomicU64,
}

#[derive(Debug)]
enum Node {
    /// A value without placeholders.
    Fixed(Value),
    /// A string with placeholders in it.
    Text(Vec<Piece>),
    /// A string that is exactly `{{counter}}`: a number.
    Counter,
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

#[derive(Debug)]
enum Piece {
    Literal(String),
    Uuid,
    Counter,
    /// `pick:` values or a `file:`'s lines.
    OneOf(Arc<[String]>),
}

impl Template {
    /// Parses the placeholders in `value`'s string values (reading any `{{file:…}}` now).
    pub fn parse(value: Value) -> Result<Self, TemplateError> {
        Ok(Self {
            root: Node::parse(value)?,
            counter: AtomicU64::new(0),
        })
    }

    /// Whether every request gets the same value (no placeholder anywhere).
    pub fn is_fixed(&self) -> bool {
        self.root.is_fixed()
    }

    /// A value as a request would get it, without counting a request (`{{counter}}` is 0):
    /// to check the rendered shape at start.
    pub fn sample(&self, random: &mut fastrand::Rng) -> Value {
        self.root.render(0, random)
    }

    /// The value for the next request.
    pub fn render(&self, random: &mut fastrand::Rng) -> Value {
        let request = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        self.root.render(request, random)
    }
}

impl Node {
    fn parse(value: Value) -> Result<Self, TemplateError> {
        let node = match value {
            Value::String(string) if string.contains("{{") => {
                let pieces = pieces(&string)?;
                match pieces.as_slice() {
                    [Piece::Counter] => Self::Counter,
                    _ => Self::Text(pieces),
                }
            }
            Value::Array(items) => {
                let items = items
                    .into_iter()
                    .map(Self::parse)
                    .collect::<Result<Vec<_>, _>>()?;
                if items.iter().all(Self::is_fixed) {
                    Self::Fixed(Value::Array(
                        items.into_iter().filter_map(Self::fixed_value).collect(),
                    ))
                } else {
                    Self::Array(items)
                }
            }
            Value::Object(fields) => {
                let fields = fields
                    .into_iter()
                    .map(|(key, value)| Ok((key, Self::parse(value)?)))
                    .collect::<Result<Vec<_>, TemplateError>>()?;
                if fields.iter().all(|(_, node)| node.is_fixed()) {
                    Self::Fixed(Value::Object(
                        fields
                            .into_iter()
                            .filter_map(|(key, node)| Some((key, node.fixed_value()?)))
                            .collect(),
                    ))
                } else {
                    Self::Object(fields)
                }
            }
            fixed => Self::Fixed(fixed),
        };
        Ok(node)
    }

    fn is_fixed(&self) -> bool {
        matches!(self, Self::Fixed(_))
    }

    /// The value of a fixed node.
    fn fixed_value(self) -> Option<Value> {
        match self {
            Self::Fixed(value) => Some(value),
            _ => None,
        }
    }

    fn render(&self, request: u64, random: &mut fastrand::Rng) -> Value {
        match self {
            Self::Fixed(value) => value.clone(),
            Self::Counter => Value::from(request),
            Self::Text(pieces) => {
                let mut text = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Literal(literal) => text.push_str(literal),
                        Piece::Uuid => text.push_str(&uuid::Uuid::now_v7().to_string()),
                        Piece::Counter => text.push_str(&request.to_string()),
                        Piece::OneOf(values) => {
                            text.push_str(&values[random.usize(..values.len())]);
                        }
                    }
                }
                Value::String(text)
            }
            Self::Array(items) => items
                .iter()
                .map(|item| item.render(request, random))
                .collect(),
            Self::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(key, node)| (key.clone(), node.render(request, random)))
                    .collect(),
            ),
        }
    }
}

/// The literal text and placeholders of one string value.
fn pieces(string: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut rest = string;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            pieces.push(Piece::Literal(rest[..open].to_owned()));
        }
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or_else(|| TemplateError::Unclosed {
            string: string.to_owned(),
        })?;
        pieces.push(placeholder(after[..close].trim())?);
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Literal(rest.to_owned()));
    }
    Ok(pieces)
}

fn placeholder(inside: &str) -> Result<Piece, TemplateError> {
    match inside.split_once(':') {
        None if inside == "uuid" => Ok(Piece::Uuid),
        None if inside == "counter" => Ok(Piece::Counter),
        Some(("pick", list)) => {
            let values: Vec<String> = list
                .split(',')
                .map(|value| value.trim().to_owned())
                .collect();
            if values.iter().any(String::is_empty) {
                return Err(TemplateError::EmptyPick {
                    list: list.to_owned(),
                });
            }
            Ok(Piece::OneOf(values.into()))
        }
        Some(("file", path)) => {
            let path = PathBuf::from(path.trim());
            let text =
                std::fs::read_to_string(&path).map_err(|error| TemplateError::Unreadable {
                    path: path.clone(),
                    reason: error.to_string(),
                })?;
            let lines: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .map(str::to_owned)
                .collect();
            if lines.is_empty() {
                return Err(TemplateError::EmptyFile { path });
            }
            Ok(Piece::OneOf(lines.into()))
        }
        _ => Err(TemplateError::Unknown {
            placeholder: inside.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::io::Write as _;

    use serde_json::json;

    use super::{Template, TemplateError};

    fn parse(value: serde_json::Value) -> Result<Template, TemplateError> {
        Template::parse(value)
    }

    #[test]
    fn a_value_without_placeholders_is_fixed() {
        let value = json!({"input": {"id": "a{b}c", "n": 3, "list": ["x", null]}});
        let template = parse(value.clone()).expect("valid");
        assert!(template.is_fixed());
        assert_eq!(template.render(&mut fastrand::Rng::with_seed(1)), value);
    }

    #[test]
    fn every_request_gets_fresh_values() {
        let template = parse(json!({"input": {
            "requestId": "order-{{uuid}}",
            "n": "{{counter}}",
            "email": "shopper-{{counter}}@example.com",
            "sku": "{{pick:A, B,C}}",
            "fixed": [1, "two"],
        }}))
        .expect("valid");
        assert!(!template.is_fixed());
        let mut random = fastrand::Rng::with_seed(7);
        let mut request_ids = HashSet::new();
        for expected in 1..=50_u64 {
            let value = template.render(&mut random);
            let input = &value["input"];
            assert_eq!(
                input["n"],
                json!(expected),
                "a whole {{{{counter}}}} is a number"
            );
            assert_eq!(input["email"], format!("shopper-{expected}@example.com"));
            assert!(["A", "B", "C"].contains(&input["sku"].as_str().expect("a string")));
            assert_eq!(input["fixed"], json!([1, "two"]));
            let request_id = input["requestId"].as_str().expect("a string");
            assert!(request_id.starts_with("order-"), "{request_id}");
            assert_eq!(request_id.len(), "order-".len() + 36, "{request_id}");
            request_ids.insert(request_id.to_owned());
        }
        assert_eq!(request_ids.len(), 50, "each request id is fresh");
    }

    #[test]
    fn a_file_placeholder_picks_its_non_blank_lines() {
        let mut file = tempfile::NamedTempFile::new().expect("a temp file");
        writeln!(file, "alpha\n\n  beta  \n").expect("write");
        let path = file.path().display().to_string();
        let template = parse(json!([format!("{{{{file:{path}}}}}")])).expect("valid");
        let mut random = fastrand::Rng::with_seed(3);
        let seen: HashSet<String> = (0..100)
            .map(|_| {
                template.render(&mut random)[0]
                    .as_str()
                    .expect("a string")
                    .to_owned()
            })
            .collect();
        assert_eq!(seen, HashSet::from(["alpha".to_owned(), "beta".to_owned()]));
    }

    #[test]
    fn bad_placeholders_are_clear_errors() {
        let empty = tempfile::NamedTempFile::new().expect("a temp file");
        let empty_path = empty.path().display().to_string();
        let cases = [
            (
                json!({"a": "x{{uuid"}),
                "\"x{{uuid\": a `{{` without its `}}`",
            ),
            (
                json!(["{{uid}}"]),
                "unknown placeholder {{uid}}: use {{uuid}}, {{counter}}, {{pick:a,b,c}} or {{file:PATH}}",
            ),
            (
                json!({"a": {"b": "{{pick:a,,b}}"}}),
                "{{pick:a,,b}}: every comma-separated value must be non-empty",
            ),
            (
                json!("{{file:/no/such/file}}"),
                "{{file:/no/such/file}}: cannot read the file: No such file or directory (os error 2)",
            ),
            (
                json!(format!("{{{{file:{empty_path}}}}}")),
                &format!("{{{{file:{empty_path}}}}}: the file has no non-blank line to pick"),
            ),
        ];
        for (value, message) in cases {
            let error = parse(value.clone()).expect_err("invalid");
            assert_eq!(error.to_string(), message, "{value}");
        }
    }
}
