//! Return rules applied where requests enter: kinds, lines, ids.

use std::collections::HashSet;

use crowdcrunch_proto::exchanges::v1 as pb;
use crowdcrunch_runtime::idempotency::RequestId;
use crowdcrunch_runtime::status::FieldViolation;

/// The longest id accepted.
const MAX_ID_LEN: usize = 64;
/// The longest reason accepted, in characters.
const MAX_REASON_LEN: usize = 1000;

/// A RequestReturn request whose own fields are valid.
#[derive(Debug, Clone)]
pub struct NewReturn {
    /// The idempotency key.
    pub request_id: Option<RequestId>,
    /// The order.
    pub order_id: String,
    /// Refund or replacement.
    pub kind: pb::ReturnKind,
    /// What comes back: (sku, quantity), each SKU once.
    pub lines: Vec<(String, i64)>,
    /// Why.
    pub reason: String,
}

/// Checks what needs no other service.
pub fn parse_new_return(
    request: &pb::RequestReturnRequest,
) -> Result<NewReturn, Vec<FieldViolation>> {
    let mut violations = Vec::new();
    let request_id = RequestId::parse_optional(&request.request_id, "request_id")
        .map_err(|violation| violations.push(violation))
        .ok()
        .flatten();
    if let Err(violation) = check_id(&request.order_id, "order_id") {
        violations.push(violation);
    }
    let kind = match pb::ReturnKind::try_from(request.kind) {
        Ok(pb::ReturnKind::Return) => pb::ReturnKind::Return,
        Ok(pb::ReturnKind::Exchange) => pb::ReturnKind::Exchange,
        _ => {
            violations.push(FieldViolation::new("kind", "must be RETURN or EXCHANGE"));
            pb::ReturnKind::Unspecified
        }
    };
    if request.lines.is_empty() {
        violations.push(FieldViolation::new(
            "lines",
            "at least one line is required",
        ));
    }
    let mut seen = HashSet::new();
    for (index, line) in request.lines.iter().enumerate() {
        if line.sku.is_empty() {
            violations.push(FieldViolation::new(
                format!("lines[{index}].sku"),
                "is required",
            ));
        } else if !seen.insert(line.sku.as_str()) {
            violations.push(FieldViolation::new(
                format!("lines[{index}].sku"),
                "appears on more than one line",
            ));
        }
        if line.quantity < 1 {
            violations.push(FieldViolation::new(
                format!("lines[{index}].quantity"),
                "must be at least 1",
            ));
        }
    }
    check_reason(&request.reason, "reason", &mut violations);
    if !violations.is_empty() {
        return Err(violations);
    }
    Ok(NewReturn {
        request_id,
        order_id: request.order_id.clone(),
        kind,
        lines: request
            .lines
            .iter()
            .map(|line| (line.sku.clone(), i64::from(line.quantity)))
            .collect(),
        reason: request.reason.clone(),
    })
}

/// Checks a free-text reason.
pub fn check_reason(reason: &str, field: &str, violations: &mut Vec<FieldViolation>) {
    if reason.chars().count() > MAX_REASON_LEN {
        violations.push(FieldViolation::new(
            field,
            format!("must be at most {MAX_REASON_LEN} characters"),
        ));
    }
}

/// Checks the shape of an id field.
pub fn check_id(id: &str, field: &str) -> Result<(), FieldViolation> {
    if id.is_empty() {
        return Err(FieldViolation::new(field, "is required"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(FieldViolation::new(field, "is not an id"));
    }
    Ok(())
}
