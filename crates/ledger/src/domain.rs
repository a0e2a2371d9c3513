//! Ledger rules, applied where requests enter: an event has an id, a type and a subject; its source
//! is the calling service and its time the moment the ledger received it, whatever the body says;
//! a batch holds 1 to 1000 events with distinct ids; filters are bounded, and a customer reads only
//! the events about them.

use std::collections::HashSet;

use crowdcrunch_proto::ledger::v1 as pb;
use crowdcrunch_runtime::status::FieldViolation;

/// The most events one AppendEvents may carry.
const MAX_EVENTS: usize = 1000;
/// The most subjects one ListEvents may filter by.
const MAX_SUBJECTS: usize = 1000;
/// The longest event id, type or source accepted.
const MAX_NAME_LEN: usize = 128;
/// The longest subject accepted.
const MAX_SUBJECT_LEN: usize = 256;

/// A checked event, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Producer-chosen unique id.
    pub id: String,
    /// What happened, PascalCase.
    pub event_type: String,
    /// The producing service: the caller, never the body.
    pub source: String,
    /// What it is about.
    pub subject: String,
    /// The payload as JSON text, when there is one.
    pub data: Option<String>,
    /// W3C trace id, or empty.
    pub trace_id: String,
    /// The customer it is about, or empty.
    pub customer_id: String,
}

/// A valid AppendEvents request.
#[derive(Debug)]
pub struct NewEvents(pub Vec<NewEvent>);

impl NewEvents {
    /// Checks `request`, an append by the service `source`: its events' `source` is empty or
    /// `source` (the caller checks that), and is stored as `source`.
    pub fn parse(
        request: &pb::AppendEventsRequest,
        source: &str,
    ) -> Result<Self, Vec<FieldViolation>> {
        if request.events.is_empty() {
            return Err(vec![FieldViolation::new("events", "at least one event")]);
        }
        if request.events.len() > MAX_EVENTS {
            return Err(vec![FieldViolation::new(
                "events",
                format!("at most {MAX_EVENTS} events per call"),
            )]);
        }
        let mut violations = Vec::new();
        let mut seen = HashSet::new();
        let mut events = Vec::with_capacity(request.events.len());
        for (index, event) in request.events.iter().enumerate() {
            match NewEvent::parse(event, source, &format!("events[{index}]")) {
                Ok(event) if !seen.insert(event.id.clone()) => {
                    violations.push(FieldViolation::new(
                        format!("events[{index}].id"),
                        "repeats the id of an earlier event in this call",
                    ))
                }
                Ok(event) => events.push(event),
                Err(mut bad) => violations.append(&mut bad),
            }
        }
        if violations.is_empty() {
            Ok(Self(events))
        } else {
            Err(violations)
        }
    }
}

impl NewEvent {
    fn parse(event: &pb::Event, source: &str, path: &str) -> Result<Self, Vec<FieldViolation>> {
        let mut violations = Vec::new();
        let mut check = |field: &str, value: &str, rule: fn(&str) -> Option<&'static str>| {
            if let Some(problem) = rule(value) {
                violations.push(FieldViolation::new(format!("{path}.{field}"), problem));
            }
        };
        check("id", &event.id, name_problem);
        check("type", &event.r#type, type_problem);
        check("subject", &event.subject, subject_problem);
        check("trace_id", &event.trace_id, trace_id_problem);
        check("customer_id", &event.customer_id, customer_id_problem);
        if violations.is_empty() {
            Ok(Self {
                id: event.id.clone(),
                event_type: event.r#type.clone(),
                source: source.to_owned(),
                subject: event.subject.clone(),
                data: event
                    .data
                    .as_ref()
                    .map(|data| crowdcrunch_proto::json::json_from_struct(data).to_string()),
                trace_id: event.trace_id.clone(),
                customer_id: event.customer_id.clone(),
            })
        } else {
            Err(violations)
        }
    }
}

fn name_problem(value: &str) -> Option<&'static str> {
    if value.is_empty() {
        Some("is required")
    } else if value.len() > MAX_NAME_LEN || !value.bytes().all(|b| b.is_ascii_graphic()) {
        Some("must be at most 128 visible ASCII characters")
    } else {
        None
    }
}

fn type_problem(value: &str) -> Option<&'static str> {
    name_problem(value).or_else(|| {
        let pascal = value.starts_with(|c: char| c.is_ascii_uppercase())
            && value.chars().all(|c| c.is_ascii_alphanumeric());
        (!pascal).then_some("must be PascalCase letters and digits, like StockReserved")
    })
}

fn subject_problem(value: &str) -> Option<&'static str> {
    check_subject(value).err()
}

fn check_subject(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        Err("is required")
    } else if value.len() > MAX_SUBJECT_LEN || value.chars().any(char::is_control) {
        Err("must be at most 256 bytes without control characters")
    } else {
        Ok(())
    }
}

/// Empty, or a customer id by the one id rule.
fn customer_id_problem(value: &str) -> Option<&'static str> {
    if value.is_empty() {
        None
    } else {
        crowdcrunch_proto::rules::id_problem(value)
    }
}

fn trace_id_problem(value: &str) -> Option<&'static str> {
    let valid = value.is_empty()
        || (value.len() == 32
            && value
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    (!valid).then_some("must be empty or 32 lower-case hex digits")
}

/// A valid ListEvents or WatchEvents subject filter: empty means every event.
#[derive(Debug, Clone, Default)]
pub struct Subjects(pub Vec<String>);

impl Subjects {
    /// Checks the `subjects` of a ListEvents request.
    pub fn parse(subjects: &[String]) -> Result<Self, FieldViolation> {
        if subjects.len() > MAX_SUBJECTS {
            return Err(FieldViolation::new(
                "subjects",
                format!("at most {MAX_SUBJECTS} subjects"),
            ));
        }
        for (index, subject) in subjects.iter().enumerate() {
            check_subject(subject)
                .map_err(|problem| FieldViolation::new(format!("subjects[{index}]"), problem))?;
        }
        Ok(Self(subjects.to_vec()))
    }

    /// The filter of a WatchEvents request.
    pub fn parse_one(subject: Option<&String>) -> Result<Self, FieldViolation> {
        match subject {
            None => Ok(Self::default()),
            Some(subject) => check_subject(subject)
                .map(|()| Self(vec![subject.clone()]))
                .map_err(|problem| FieldViolation::new("subject", problem)),
        }
    }

    /// Whether an event about `subject` passes the filter.
    fn admit(&self, subject: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|wanted| wanted == subject)
    }
}

/// The events one reader sees: those about its subjects (every subject when none), and, for a
/// customer, only those about that customer.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// The subjects asked for.
    pub subjects: Subjects,
    /// The customer the reader is, when the reader is one (their owner scope).
    pub customer_id: Option<String>,
}

impl EventFilter {
    /// Whether `event` passes the filter.
    pub fn admit(&self, event: &pb::Event) -> bool {
        self.subjects.admit(&event.subject)
            && self
                .customer_id
                .as_ref()
                .is_none_or(|customer_id| *customer_id == event.customer_id)
    }
}

/// A checked `after_sequence`.
pub fn after_sequence(value: i64) -> Result<i64, FieldViolation> {
    if value < 0 {
        Err(FieldViolation::new(
            "after_sequence",
            "must not be negative",
        ))
    } else {
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_pascal_case() {
        for (value, ok) in [
            ("StockReserved", true),
            ("A1", true),
            ("stockReserved", false),
            ("Stock Reserved", false),
            ("Stock.Reserved", false),
            ("", false),
        ] {
            assert_eq!(type_problem(value).is_none(), ok, "{value:?}");
        }
    }
}
