//! Inventory rules, applied where requests enter: SKUs, titles, prices, quantities and
//! reservation ids are checked, and every bad field of a request is reported at once.

use std::collections::HashSet;

use crowdcrunch_proto::inventory::v1 as pb;
use crowdcrunch_proto::r#type::v1 as types;
use crowdcrunch_proto::{AmountRule, rules};
use crowdcrunch_runtime::idempotency::RequestId;
use crowdcrunch_runtime::status::FieldViolation;

/// The most SKUs one batch call may ask for.
pub const MAX_BATCH: usize = 1000;
/// The most lines one reservation may hold.
const MAX_LINES: usize = 1000;
const MAX_TITLE_LEN: usize = 200;
const MAX_DESCRIPTION_LEN: usize = 5000;
const MAX_REASON_LEN: usize = 500;

/// The violations found while a request's fields are parsed.
#[derive(Default)]
struct Violations(Vec<FieldViolation>);

impl Violations {
    /// The parsed value, or `None` with its violation kept.
    fn take<T>(&mut self, parsed: Result<T, FieldViolation>) -> Option<T> {
        parsed.map_err(|violation| self.0.push(violation)).ok()
    }

    /// `value` when nothing was violated, else every violation.
    fn finish<T>(self, value: Option<T>) -> Result<T, Vec<FieldViolation>> {
        match value {
            Some(value) if self.0.is_empty() => Ok(value),
            _ => Err(self.0),
        }
    }
}

/// A stock-keeping unit, by the one SKU rule (`crowdcrunch_proto::rules::sku_problem`): 1 to 64
/// letters, digits, `-`, `_` and `.`; case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sku(String);

impl Sku {
    /// Checks `raw` as the value of `field`.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldViolation> {
        FieldViolation::check(field, rules::sku_problem(raw))?;
        Ok(Self(raw.to_owned()))
    }

    /// The SKU.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// SKUs of a batch call: at most 1000, each checked.
pub fn parse_skus(skus: &[String]) -> Result<Vec<Sku>, Vec<FieldViolation>> {
    if skus.len() > MAX_BATCH {
        return Err(vec![FieldViolation::new(
            "skus",
            format!("at most {MAX_BATCH} SKUs per call"),
        )]);
    }
    let mut violations = Violations::default();
    let parsed: Vec<Option<Sku>> = skus
        .iter()
        .enumerate()
        .map(|(index, sku)| violations.take(Sku::parse(sku, &format!("skus[{index}]"))))
        .collect();
    violations.finish(parsed.into_iter().collect())
}

/// A checked price: an ISO 4217 code of three upper-case letters and a non-negative amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    /// ISO 4217 code.
    pub currency_code: String,
    /// Amount in the currency's minor unit.
    pub minor_units: i64,
}

impl Money {
    /// Checks the required money field `field`.
    pub fn parse(money: Option<&types::Money>, field: &str) -> Result<Self, FieldViolation> {
        let Some(money) = money else {
            return Err(FieldViolation::new(field, "is required"));
        };
        let first_problem = money
            .problems(field, AmountRule::NonNegative)
            .into_iter()
            .next();
        if let Some((path, description)) = first_problem {
            return Err(FieldViolation::new(path, description));
        }
        Ok(Self {
            currency_code: money.currency_code.clone(),
            minor_units: money.minor_units,
        })
    }
}

/// Checks free text: at most `max` characters, no control characters but line breaks and tabs
/// where `multiline`, and not empty where `required`.
fn text(
    raw: &str,
    field: &str,
    max: usize,
    required: bool,
    multiline: bool,
) -> Result<String, FieldViolation> {
    if required && raw.trim().is_empty() {
        return Err(FieldViolation::new(field, "is required"));
    }
    if raw.chars().count() > max {
        return Err(FieldViolation::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    let allowed = |c: char| !c.is_control() || (multiline && matches!(c, '\n' | '\r' | '\t'));
    if !raw.chars().all(allowed) {
        return Err(FieldViolation::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(raw.to_owned())
}

fn title(raw: &str, field: &str) -> Result<String, FieldViolation> {
    text(raw, field, MAX_TITLE_LEN, true, false)
}

fn description(raw: &str, field: &str) -> Result<String, FieldViolation> {
    text(raw, field, MAX_DESCRIPTION_LEN, false, true)
}

fn request_id(raw: &str) -> Result<Option<RequestId>, FieldViolation> {
    RequestId::parse_optional(raw, "request_id")
}

/// A count of units that must be at least 1.
fn positive(value: i32, field: &str) -> Result<i64, FieldViolation> {
    if value < 1 {
        return Err(FieldViolation::new(field, "must be at least 1"));
    }
    Ok(i64::from(value))
}

/// A valid CreateProduct request.
#[derive(Debug)]
pub struct NewProduct {
    /// The SKU.
    pub sku: Sku,
    /// The title.
    pub title: String,
    /// The description; may be empty.
    pub description: String,
    /// The unit price.
    pub price: Money,
    /// Whether it is on sale.
    pub active: bool,
    /// Units on hand to start with.
    pub initial_stock: i64,
    /// The idempotency key, if the client sent one.
    pub request_id: Option<RequestId>,
}

impl TryFrom<&pb::CreateProductRequest> for NewProduct {
    type Error = Vec<FieldViolation>;

    fn try_from(request: &pb::CreateProductRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::default();
        let request_id = violations.take(request_id(&request.request_id));
        let initial_stock = violations.take(if request.initial_stock < 0 {
            Err(FieldViolation::new("initial_stock", "must not be negative"))
        } else {
            Ok(i64::from(request.initial_stock))
        });
        let Some(product) = &request.product else {
            violations
                .0
                .push(FieldViolation::new("product", "is required"));
            return Err(violations.0);
        };
        let sku = violations.take(Sku::parse(&product.sku, "product.sku"));
        let title = violations.take(title(&product.title, "product.title"));
        let description = violations.take(description(&product.description, "product.description"));
        let price = violations.take(Money::parse(product.price.as_ref(), "product.price"));
        let value = (|| {
            Some(Self {
                sku: sku?,
                title: title?,
                description: description?,
                price: price?,
                active: product.active,
                initial_stock: initial_stock?,
                request_id: request_id?,
            })
        })();
        violations.finish(value)
    }
}

/// A valid UpdateProduct request: the product and the fields to change.
#[derive(Debug)]
pub struct ProductPatch {
    /// Which product.
    pub sku: Sku,
    /// The new title, when it changes.
    pub title: Option<String>,
    /// The new description, when it changes.
    pub description: Option<String>,
    /// The new price, when it changes.
    pub price: Option<Money>,
    /// The new active flag, when it changes.
    pub active: Option<bool>,
}

/// Fields an update may name.
const UPDATABLE: [&str; 4] = ["title", "description", "price", "active"];

impl TryFrom<&pb::UpdateProductRequest> for ProductPatch {
    type Error = Vec<FieldViolation>;

    fn try_from(request: &pb::UpdateProductRequest) -> Result<Self, Self::Error> {
        let Some(product) = &request.product else {
            return Err(vec![FieldViolation::new("product", "is required")]);
        };
        let mut violations = Violations::default();
        let sku = violations.take(Sku::parse(&product.sku, "product.sku"));
        let paths: Vec<&str> = match &request.update_mask {
            Some(mask) if !mask.paths.is_empty() => mask.paths.iter().map(String::as_str).collect(),
            // No mask: every updatable field that is set.
            _ => UPDATABLE
                .into_iter()
                .filter(|field| match *field {
                    "title" => !product.title.is_empty(),
                    "description" => !product.description.is_empty(),
                    "price" => product.price.is_some(),
                    _ => product.active,
                })
                .collect(),
        };
        let mut change = HashSet::new();
        for path in paths {
            match path {
                "*" => change.extend(UPDATABLE),
                path if UPDATABLE.contains(&path) => {
                    change.insert(path);
                }
                other => violations.0.push(FieldViolation::new(
                    "update_mask",
                    format!(
                        "{other:?} cannot be updated; updatable fields are title, description, \
                         price and active"
                    ),
                )),
            }
        }
        // A wanted field that does not parse leaves a violation, so `finish` refuses the patch.
        let wanted = |field: &str| change.contains(field);
        let title = wanted("title")
            .then(|| violations.take(title(&product.title, "product.title")))
            .flatten();
        let description = wanted("description")
            .then(|| violations.take(description(&product.description, "product.description")))
            .flatten();
        let price = wanted("price")
            .then(|| violations.take(Money::parse(product.price.as_ref(), "product.price")))
            .flatten();
        let value = (|| {
            Some(Self {
                sku: sku?,
                title,
                description,
                price,
                active: wanted("active").then_some(product.active),
            })
        })();
        violations.finish(value)
    }
}

/// A valid AdjustStock or Restock request: a change of the units on hand.
#[derive(Debug)]
pub struct StockChange {
    /// Which product.
    pub sku: Sku,
    /// Units to add (negative: to take away).
    pub delta: i64,
    /// Why, for the audit trail.
    pub reason: String,
    /// The idempotency key, if the client sent one.
    pub request_id: Option<RequestId>,
}

impl StockChange {
    fn parse(
        sku: &str,
        delta: Result<i64, FieldViolation>,
        reason: &str,
        raw_request_id: &str,
    ) -> Result<Self, Vec<FieldViolation>> {
        let mut violations = Violations::default();
        let sku = violations.take(Sku::parse(sku, "sku"));
        let delta = violations.take(delta);
        let reason = violations.take(text(reason, "reason", MAX_REASON_LEN, false, false));
        let request_id = violations.take(request_id(raw_request_id));
        let value = (|| {
            Some(Self {
                sku: sku?,
                delta: delta?,
                reason: reason?,
                request_id: request_id?,
            })
        })();
        violations.finish(value)
    }
}

impl TryFrom<&pb::AdjustStockRequest> for StockChange {
    type Error = Vec<FieldViolation>;

    fn try_from(request: &pb::AdjustStockRequest) -> Result<Self, Self::Error> {
        let delta = match request.delta {
            0 => Err(FieldViolation::new("delta", "must not be zero")),
            delta => Ok(i64::from(delta)),
        };
        Self::parse(&request.sku, delta, &request.reason, &request.request_id)
    }
}

impl TryFrom<&pb::RestockRequest> for StockChange {
    type Error = Vec<FieldViolation>;

    fn try_from(request: &pb::RestockRequest) -> Result<Self, Self::Error> {
        let delta = positive(request.quantity, "quantity");
        Self::parse(&request.sku, delta, &request.reason, &request.request_id)
    }
}

/// A reservation id: the order id (or return id), by the one id rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationId(String);

impl ReservationId {
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

/// Units of one SKU to hold.
#[derive(Debug, Clone)]
pub struct Line {
    /// The SKU.
    pub sku: Sku,
    /// Units, at least 1.
    pub quantity: i64,
}

/// A valid ReserveStock request.
#[derive(Debug)]
pub struct NewReservation {
    /// The reservation (order) id.
    pub id: ReservationId,
    /// What to hold, in the client's order, each SKU once.
    pub lines: Vec<Line>,
    /// The idempotency key, if the client sent one.
    pub request_id: Option<RequestId>,
}

impl TryFrom<&pb::ReserveStockRequest> for NewReservation {
    type Error = Vec<FieldViolation>;

    fn try_from(request: &pb::ReserveStockRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::default();
        let id = violations.take(ReservationId::parse(
            &request.reservation_id,
            "reservation_id",
        ));
        let request_id = violations.take(request_id(&request.request_id));
        if request.lines.is_empty() {
            violations
                .0
                .push(FieldViolation::new("lines", "at least one line"));
        } else if request.lines.len() > MAX_LINES {
            violations.0.push(FieldViolation::new(
                "lines",
                format!("at most {MAX_LINES} lines"),
            ));
        }
        let mut seen = HashSet::new();
        let mut lines = Vec::with_capacity(request.lines.len());
        for (index, line) in request.lines.iter().enumerate() {
            let field = format!("lines[{index}].sku");
            let sku = violations.take(Sku::parse(&line.sku, &field).and_then(|sku| {
                if seen.insert(sku.clone()) {
                    Ok(sku)
                } else {
                    Err(FieldViolation::new(
                        &field,
                        "repeats the SKU of an earlier line",
                    ))
                }
            }));
            let quantity =
                violations.take(positive(line.quantity, &format!("lines[{index}].quantity")));
            if let (Some(sku), Some(quantity)) = (sku, quantity) {
                lines.push(Line { sku, quantity });
            }
        }
        let value = (|| {
            Some(Self {
                id: id?,
                lines,
                request_id: request_id?,
            })
        })();
        violations.finish(value)
    }
}

/// The filter of ListProducts, as the text its page tokens are bound to.
pub fn active_filter(active: Option<bool>) -> &'static str {
    match active {
        None => "",
        Some(true) => "active=true",
        Some(false) => "active=false",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus_are_checked() {
        let cases = [
            ("TSHIRT-BLK-M", true),
            ("a.b_c-1", true),
            ("", false),
            ("has space", false),
            ("slash/no", false),
            (&"x".repeat(65), false),
        ];
        for (raw, ok) in cases {
            assert_eq!(Sku::parse(raw, "sku").is_ok(), ok, "{raw:?}");
        }
    }

    #[test]
    fn money_needs_a_currency_and_a_bounded_non_negative_amount() {
        let money = |code: &str, minor_units| types::Money {
            currency_code: code.into(),
            minor_units,
        };
        let field = |money: Option<&types::Money>| {
            Money::parse(money, "price")
                .err()
                .map(|violation| violation.field)
        };
        assert_eq!(field(Some(&money("USD", 1999))), None);
        assert_eq!(field(Some(&money("USD", 0))), None);
        assert_eq!(field(None).as_deref(), Some("price"));
        assert_eq!(
            field(Some(&money("usd", 1))).as_deref(),
            Some("price.currency_code")
        );
        assert_eq!(
            field(Some(&money("USD", -1))).as_deref(),
            Some("price.minor_units")
        );
        assert_eq!(
            field(Some(&money("USD", 6_148_914_691_236_517_206))).as_deref(),
            Some("price.minor_units")
        );
    }
}
