//! Customer rules, applied where requests enter: emails are checked and compared ignoring case,
//! display names are bounded, update masks name only fields a client may change.

use crowdcrunch_proto::customers::v1 as pb;
use crowdcrunch_proto::rules;
use crowdcrunch_runtime::idempotency::RequestId;
use crowdcrunch_runtime::status::FieldViolation;

/// The longest email accepted (RFC 5321's path limit).
const MAX_EMAIL_LEN: usize = 254;
/// The longest display name accepted, in characters.
const MAX_DISPLAY_NAME_LEN: usize = 200;

/// A checked email address, as given, with the key that makes it unique ignoring case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    address: String,
    key: String,
}

impl Email {
    /// Checks `raw` as the value of `field`: one `@`, text on both sides, a dot in the domain, no
    /// spaces, at most 254 characters.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldViolation> {
        let invalid = |why: &str| FieldViolation::new(field, why);
        if raw.is_empty() {
            return Err(invalid("is required"));
        }
        if raw.len() > MAX_EMAIL_LEN {
            return Err(invalid("must be at most 254 characters"));
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("must not contain spaces"));
        }
        let Some((local, domain)) = raw.split_once('@') else {
            return Err(invalid("must contain an @"));
        };
        if local.is_empty() || domain.is_empty() || domain.contains('@') {
            return Err(invalid(
                "must be one name, an @ and a domain, like ada@example.com",
            ));
        }
        if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
            return Err(invalid("must have a domain like example.com after the @"));
        }
        Ok(Self {
            address: raw.to_owned(),
            key: raw.to_lowercase(),
        })
    }

    /// The address as the customer wrote it.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The lower-cased address that must be unique.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// A checked display name: at most 200 characters, no control characters; may be empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Checks `raw` as the value of `field`.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldViolation> {
        if raw.chars().count() > MAX_DISPLAY_NAME_LEN {
            return Err(FieldViolation::new(field, "must be at most 200 characters"));
        }
        if raw.chars().any(char::is_control) {
            return Err(FieldViolation::new(
                field,
                "must not contain control characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A customer id as given; only its shape is checked (an unknown id is NOT_FOUND later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerId(String);

impl CustomerId {
    /// Checks `raw` as the value of `field`.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldViolation> {
        FieldViolation::check(field, rules::id_problem(raw))?;
        Ok(Self(raw.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A valid CreateCustomer request.
#[derive(Debug)]
pub struct NewCustomer {
    /// The email.
    pub email: Email,
    /// The display name.
    pub display_name: DisplayName,
    /// The idempotency key, if the client sent one.
    pub request_id: Option<RequestId>,
}

impl TryFrom<&pb::CreateCustomerRequest> for NewCustomer {
    type Error = Vec<FieldViolation>;

    fn try_from(request: &pb::CreateCustomerRequest) -> Result<Self, Self::Error> {
        let mut violations = Vec::new();
        let request_id = RequestId::parse_optional(&request.request_id, "request_id")
            .map_err(|violation| violations.push(violation))
            .ok()
            .flatten();
        let Some(customer) = &request.customer else {
            violations.push(FieldViolation::new("customer", "is required"));
            return Err(violations);
        };
        let email = Email::parse(&customer.email, "customer.email")
            .map_err(|v| violations.push(v))
            .ok();
        let display_name = DisplayName::parse(&customer.display_name, "customer.display_name")
            .map_err(|v| violations.push(v))
            .ok();
        match (email, display_name) {
            (Some(email), Some(display_name)) if violations.is_empty() => Ok(Self {
                email,
                display_name,
                request_id,
            }),
            _ => Err(violations),
        }
    }
}

/// A valid UpdateCustomer request: the customer and the fields to change.
#[derive(Debug)]
pub struct CustomerPatch {
    /// Which customer.
    pub id: CustomerId,
    /// The new email, when it changes.
    pub email: Option<Email>,
    /// The new display name, when it changes.
    pub display_name: Option<DisplayName>,
}

/// Fields an update may name.
const UPDATABLE: [&str; 2] = ["email", "display_name"];

impl TryFrom<&pb::UpdateCustomerRequest> for CustomerPatch {
    type Error = Vec<FieldViolation>;

    fn try_from(request: &pb::UpdateCustomerRequest) -> Result<Self, Self::Error> {
        let Some(customer) = &request.customer else {
            return Err(vec![FieldViolation::new("customer", "is required")]);
        };
        let mut violations = Vec::new();
        let id = CustomerId::parse(&customer.id, "customer.id")
            .map_err(|v| violations.push(v))
            .ok();
        let paths: Vec<&str> = match &request.update_mask {
            Some(mask) if !mask.paths.is_empty() => mask.paths.iter().map(String::as_str).collect(),
            // No mask: every updatable field that is set.
            _ => UPDATABLE
                .into_iter()
                .filter(|field| match *field {
                    "email" => !customer.email.is_empty(),
                    _ => !customer.display_name.is_empty(),
                })
                .collect(),
        };
        let (mut change_email, mut change_display_name) = (false, false);
        for path in paths {
            match path {
                "*" => (change_email, change_display_name) = (true, true),
                "email" => change_email = true,
                "display_name" => change_display_name = true,
                other => violations.push(FieldViolation::new(
                    "update_mask",
                    format!(
                        "{other:?} cannot be updated; updatable fields are email and display_name"
                    ),
                )),
            }
        }
        let email = change_email
            .then(|| Email::parse(&customer.email, "customer.email"))
            .transpose()
            .map_err(|v| violations.push(v))
            .ok()
            .flatten();
        let display_name = change_display_name
            .then(|| DisplayName::parse(&customer.display_name, "customer.display_name"))
            .transpose()
            .map_err(|v| violations.push(v))
            .ok()
            .flatten();
        match id {
            Some(id) if violations.is_empty() => Ok(Self {
                id,
                email,
                display_name,
            }),
            _ => Err(violations),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_and_keyed_ignoring_case() {
        let cases = [
            ("Ada@Example.com", Some("ada@example.com")),
            ("", None),
            ("ada", None),
            ("@example.com", None),
            ("ada@", None),
            ("ada@example", None),
            ("ada@@example.com", None),
            ("a da@example.com", None),
        ];
        for (raw, key) in cases {
            let parsed = Email::parse(raw, "email").ok();
            assert_eq!(parsed.as_ref().map(Email::key), key, "email {raw:?}");
        }
    }
}
