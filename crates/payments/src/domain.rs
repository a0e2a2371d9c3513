//! Payment rules, applied where requests enter: a card is checked (Luhn, expiry, CVC) and at once
//! reduced to what may be kept, with the simulated card network's answer for it; amounts are
//! positive integer minor units of an ISO 4217 currency; a payment's status says which changes it
//! still allows.

use crowdcrunch_proto::payments::v1 as pb;
use crowdcrunch_proto::r#type::v1 as types;
use crowdcrunch_proto::{AmountRule, rules};
use crowdcrunch_runtime::idempotency::RequestId;
use crowdcrunch_runtime::pagination::{self, PageRequest, PageTokens};
use crowdcrunch_runtime::status::FieldViolation;

/// The longest refund reason accepted, in characters.
const MAX_REASON_LEN: usize = 500;
/// The card that the simulated network declines with `card_declined`.
const DECLINED_CARD: &str = "4000000000000002";
/// The card that the simulated network declines with `insufficient_funds`.
const INSUFFICIENT_FUNDS_CARD: &str = "4000000000009995";

/// A card brand, told by the number's prefix. A number of no brand here belongs to no network
/// that could charge it, and is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Brand {
    /// Starts with 4.
    Visa,
    /// Starts with 51 to 55, or 2221 to 2720.
    Mastercard,
    /// Starts with 34 or 37.
    Amex,
}

impl Brand {
    /// The brand of a card number (digits only), if it has one.
    fn of(number: &str) -> Option<Self> {
        let prefix = |digits: usize| number.get(..digits)?.parse::<u32>().ok();
        match (prefix(1), prefix(2), prefix(4)) {
            (Some(4), _, _) => Some(Self::Visa),
            (_, Some(51..=55), _) | (_, _, Some(2221..=2720)) => Some(Self::Mastercard),
            (_, Some(34 | 37), _) => Some(Self::Amex),
            _ => None,
        }
    }

    /// The brand as the API spells it, lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Visa => "visa",
            Self::Mastercard => "mastercard",
            Self::Amex => "amex",
        }
    }
}

/// Why the simulated card network declines a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclineReason {
    /// The issuer refuses the card.
    CardDeclined,
    /// The account cannot cover the amount.
    InsufficientFunds,
}

impl DeclineReason {
    /// The reason as the API spells it (`Payment.decline_reason`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CardDeclined => "card_declined",
            Self::InsufficientFunds => "insufficient_funds",
        }
    }
}

/// What the simulated card network answers when a card is charged. It is decided from the number
/// when the card is tokenized and kept with the token, so that a payment needs only the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The authorisation is granted.
    Approve,
    /// The authorisation is refused.
    Decline(DeclineReason),
}

impl Outcome {
    /// The network's answer for a card number: the two declining test cards decline, every other
    /// valid number is approved.
    fn of(number: &str) -> Self {
        match number {
            DECLINED_CARD => Self::Decline(DeclineReason::CardDeclined),
            INSUFFICIENT_FUNDS_CARD => Self::Decline(DeclineReason::InsufficientFunds),
            _ => Self::Approve,
        }
    }

    /// How it is stored: `approve` or the decline reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Decline(reason) => reason.as_str(),
        }
    }

    /// The outcome stored as `stored`, if it is one.
    pub fn parse(stored: &str) -> Option<Self> {
        [
            Self::Approve,
            Self::Decline(DeclineReason::CardDeclined),
            Self::Decline(DeclineReason::InsufficientFunds),
        ]
        .into_iter()
        .find(|outcome| outcome.as_str() == stored)
    }
}

/// A calendar month, to tell whether a card has expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct YearMonth {
    /// The year.
    pub year: i32,
    /// The month, 1 to 12.
    pub month: i32,
}

impl YearMonth {
    /// The current month (UTC).
    pub fn now() -> Self {
        let micros = crowdcrunch_runtime::storage::now_micros();
        Self::of_unix_day(micros.div_euclid(86_400_000_000))
    }

    /// The month of the `days`-th day after 1970-01-01 (Howard Hinnant's `civil_from_days`).
    fn of_unix_day(days: i64) -> Self {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let day_of_era = z - era * 146_097;
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let shifted_month = (5 * day_of_year + 2) / 153;
        let month = if shifted_month < 10 {
            shifted_month + 3
        } else {
            shifted_month - 9
        };
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        Self {
            year: i32::try_from(year).unwrap_or(i32::MAX),
            month: i32::try_from(month).unwrap_or(1),
        }
    }
}

/// A checked card, reduced to what may be kept: its number and CVC are gone once this exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    /// The brand.
    pub brand: Brand,
    /// The number's last four digits.
    pub last4: String,
    /// Expiry month, 1 to 12.
    pub exp_month: i32,
    /// Expiry year, four digits.
    pub exp_year: i32,
    /// What the network answers when it is charged.
    pub outcome: Outcome,
}

impl Card {
    /// Checks `card` (the value of `field`) as of `today`: a 12 to 19 digit number passing the
    /// Luhn check, of a known brand (which an all-zero number is not), a month of 1 to 12 and a four-digit year not before `today`, a 3 or 4 digit CVC.
    pub fn parse(
        card: &types::PaymentCard,
        field: &str,
        today: YearMonth,
    ) -> Result<Self, Vec<FieldViolation>> {
        let mut violations = Vec::new();
        let mut violate = |name: &str, why: &str| {
            violations.push(FieldViolation::new(format!("{field}.{name}"), why))
        };
        let number = card.number.as_str();
        let brand = Brand::of(number);
        if number.is_empty() {
            violate("number", "is required");
        } else if !(12..=19).contains(&number.len()) || !number.bytes().all(|b| b.is_ascii_digit())
        {
            violate(
                "number",
                "must be 12 to 19 digits, without spaces or dashes",
            );
        } else if !passes_luhn(number) {
            violate("number", "fails the Luhn check; look for a mistyped digit");
        } else if brand.is_none() {
            violate(
                "number",
                "is of no known card brand (Visa, Mastercard or American Express)",
            );
        }
        let month_ok = (1..=12).contains(&card.exp_month);
        if !month_ok {
            violate("exp_month", "must be 1 (January) to 12 (December)");
        }
        let year_ok = (1000..=9999).contains(&card.exp_year);
        if !year_ok {
            violate("exp_year", "must be four digits, e.g. 2030");
        } else if card.exp_year < today.year {
            violate("exp_year", "the card has expired");
        } else if month_ok && card.exp_year == today.year && card.exp_month < today.month {
            violate("exp_month", "the card has expired");
        }
        let cvc = card.cvc.as_str();
        if !(3..=4).contains(&cvc.len()) || !cvc.bytes().all(|b| b.is_ascii_digit()) {
            violate("cvc", "must be 3 or 4 digits");
        }
        let Some(brand) = brand.filter(|_| violations.is_empty()) else {
            return Err(violations);
        };
        Ok(Self {
            brand,
            last4: number[number.len() - 4..].to_owned(),
            exp_month: card.exp_month,
            exp_year: card.exp_year,
            outcome: Outcome::of(number),
        })
    }
}

/// The Luhn (mod 10) check of a string of ASCII digits.
fn passes_luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(position, byte)| {
            let digit = u32::from(byte - b'0');
            match (position % 2, digit * 2) {
                (0, _) => digit,
                (_, doubled) if doubled > 9 => doubled - 9,
                (_, doubled) => doubled,
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A valid TokenizeCard request: the card, already reduced to what may be kept.
#[derive(Debug)]
pub struct NewCardToken {
    /// The card.
    pub card: Card,
    /// The idempotency key, if the client sent one.
    pub request_id: Option<RequestId>,
}

impl NewCardToken {
    /// Checks `request` as of `today`.
    pub fn parse(
        request: &pb::TokenizeCardRequest,
        today: YearMonth,
    ) -> Result<Self, Vec<FieldViolation>> {
        let mut violations = Vec::new();
        let request_id = RequestId::parse_optional(&request.request_id, "request_id")
            .map_err(|violation| violations.push(violation))
            .ok()
            .flatten();
        let card = match &request.card {
            None => {
                violations.push(FieldViolation::new("card", "is required"));
                None
            }
            Some(card) => Card::parse(card, "card", today)
                .map_err(|card_violations| violations.extend(card_violations))
                .ok(),
        };
        match card {
            Some(card) if violations.is_empty() => Ok(Self { card, request_id }),
            _ => Err(violations),
        }
    }

    /// What stands for the request in its idempotency record: the request with the card reduced
    /// to what may be kept, so that the record never holds the number or the CVC.
    pub fn fingerprint(&self) -> pb::TokenizeCardRequest {
        pb::TokenizeCardRequest {
            card: Some(types::PaymentCard {
                number: format!(
                    "{} ****{} {}",
                    self.card.brand.as_str(),
                    self.card.last4,
                    self.card.outcome.as_str()
                ),
                exp_month: self.card.exp_month,
                exp_year: self.card.exp_year,
                cvc: String::new(),
            }),
            request_id: self
                .request_id
                .as_ref()
                .map(|id| id.as_str().to_owned())
                .unwrap_or_default(),
        }
    }
}

/// Checks the shape of an id (`raw`, the value of `field`) by the one id rule. Whether it exists
/// is found out later.
fn checked_id(raw: &str, field: &str) -> Result<String, FieldViolation> {
    FieldViolation::check(field, rules::id_problem(raw))?;
    Ok(raw.to_owned())
}

/// A payment id as given; only its shape is checked (an unknown id is NOT_FOUND later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentId(String);

impl PaymentId {
    /// Checks `raw` as the value of `field`.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldViolation> {
        checked_id(raw, field).map(Self)
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The id of an order (another service's); only its shape is checked.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OrderId(String);

impl OrderId {
    /// Checks `raw` as the value of `field`.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldViolation> {
        checked_id(raw, field).map(Self)
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The id of a customer (another service's); only its shape is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerId(String);

impl CustomerId {
    /// Checks `raw` as the value of `field`.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldViolation> {
        checked_id(raw, field).map(Self)
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A card token as given; whether TokenizeCard made it is found out later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenId(String);

impl TokenId {
    /// Checks `raw` as the value of `field`.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldViolation> {
        checked_id(raw, field).map(Self)
    }

    /// The token.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A positive amount of money: integer minor units of an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amount {
    /// The ISO 4217 code, three upper-case letters.
    pub currency_code: String,
    /// How many minor units, more than zero.
    pub minor_units: i64,
}

impl Amount {
    /// Checks `money` (the value of `field`): set, a three-letter upper-case currency code and
    /// more than zero minor units.
    pub fn parse_positive(
        money: Option<&types::Money>,
        field: &str,
    ) -> Result<Self, Vec<FieldViolation>> {
        let Some(money) = money else {
            return Err(vec![FieldViolation::new(field, "is required")]);
        };
        let violations: Vec<_> = money
            .problems(field, AmountRule::Positive)
            .into_iter()
            .map(|(path, description)| FieldViolation::new(path, description))
            .collect();
        if violations.is_empty() {
            Ok(Self {
                currency_code: money.currency_code.clone(),
                minor_units: money.minor_units,
            })
        } else {
            Err(violations)
        }
    }
}

/// `minor_units` of `currency_code` as the API's `Money`.
pub fn money(currency_code: &str, minor_units: i64) -> types::Money {
    types::Money {
        currency_code: currency_code.to_owned(),
        minor_units,
    }
}

/// A valid AuthorizePayment request.
#[derive(Debug)]
pub struct NewPayment {
    /// The order paid for.
    pub order_id: OrderId,
    /// The customer who pays: the order's.
    pub customer_id: CustomerId,
    /// The amount to authorise.
    pub amount: Amount,
    /// The card to charge.
    pub card_token: TokenId,
    /// The idempotency key, if the client sent one.
    pub request_id: Option<RequestId>,
}

impl TryFrom<&pb::AuthorizePaymentRequest> for NewPayment {
    type Error = Vec<FieldViolation>;

    fn try_from(request: &pb::AuthorizePaymentRequest) -> Result<Self, Self::Error> {
        let mut violations = Vec::new();
        let request_id = RequestId::parse_optional(&request.request_id, "request_id")
            .map_err(|v| violations.push(v))
            .ok()
            .flatten();
        let order_id = OrderId::parse(&request.order_id, "order_id")
            .map_err(|v| violations.push(v))
            .ok();
        let customer_id = CustomerId::parse(&request.customer_id, "customer_id")
            .map_err(|v| violations.push(v))
            .ok();
        let amount = Amount::parse_positive(request.amount.as_ref(), "amount")
            .map_err(|v| violations.extend(v))
            .ok();
        let card_token = TokenId::parse(&request.card_token, "card_token")
            .map_err(|v| violations.push(v))
            .ok();
        match (order_id, customer_id, amount, card_token) {
            (Some(order_id), Some(customer_id), Some(amount), Some(card_token))
                if violations.is_empty() =>
            {
                Ok(Self {
                    order_id,
                    customer_id,
                    amount,
                    card_token,
                    request_id,
                })
            }
            _ => Err(violations),
        }
    }
}

/// A valid CapturePayment or VoidPayment request: which payment, and the idempotency key.
#[derive(Debug)]
pub struct PaymentTransition {
    /// The payment.
    pub id: PaymentId,
    /// The idempotency key, if the client sent one.
    pub request_id: Option<RequestId>,
}

impl PaymentTransition {
    /// Checks the `id` and `request_id` fields of a request.
    pub fn parse(id: &str, request_id: &str) -> Result<Self, Vec<FieldViolation>> {
        let id = PaymentId::parse(id, "id");
        let request_id = RequestId::parse_optional(request_id, "request_id");
        match (id, request_id) {
            (Ok(id), Ok(request_id)) => Ok(Self { id, request_id }),
            (id, request_id) => Err(id.err().into_iter().chain(request_id.err()).collect()),
        }
    }
}

/// A valid RefundPayment request.
#[derive(Debug)]
pub struct NewRefund {
    /// The payment to refund.
    pub payment_id: PaymentId,
    /// How much to give back now.
    pub amount: Amount,
    /// Why; may be empty.
    pub reason: String,
    /// The idempotency key, if the client sent one.
    pub request_id: Option<RequestId>,
}

impl TryFrom<&pb::RefundPaymentRequest> for NewRefund {
    type Error = Vec<FieldViolation>;

    fn try_from(request: &pb::RefundPaymentRequest) -> Result<Self, Self::Error> {
        let mut violations = Vec::new();
        let payment_id = PaymentId::parse(&request.id, "id")
            .map_err(|v| violations.push(v))
            .ok();
        let amount = Amount::parse_positive(request.amount.as_ref(), "amount")
            .map_err(|v| violations.extend(v))
            .ok();
        if request.reason.chars().count() > MAX_REASON_LEN {
            violations.push(FieldViolation::new(
                "reason",
                "must be at most 500 characters",
            ));
        }
        let request_id = RequestId::parse_optional(&request.request_id, "request_id")
            .map_err(|v| violations.push(v))
            .ok()
            .flatten();
        match (payment_id, amount) {
            (Some(payment_id), Some(amount)) if violations.is_empty() => Ok(Self {
                payment_id,
                amount,
                reason: request.reason.clone(),
                request_id,
            }),
            _ => Err(violations),
        }
    }
}

/// Checks the ids of a batch get: at most [`pagination::MAX_IDS`], each well-formed.
pub fn parse_payment_ids(ids: &[String]) -> Result<Vec<PaymentId>, Vec<FieldViolation>> {
    pagination::parse_ids(ids, "ids", PaymentId::parse)
}

/// A valid ListPayments request: the page, and the orders whose payments are listed (all when
/// empty), sorted and without duplicates.
#[derive(Debug)]
pub struct PaymentQuery {
    /// Which page.
    pub page: PageRequest,
    /// Only payments of these orders; every order's when empty.
    pub order_ids: Vec<OrderId>,
}

impl PaymentQuery {
    /// Checks `request`; its page token must be one `page_tokens` signed.
    pub fn parse(
        request: &pb::ListPaymentsRequest,
        page_tokens: &PageTokens,
    ) -> Result<Self, Vec<FieldViolation>> {
        let (page, order_ids) = pagination::parse_id_filtered_page(
            page_tokens,
            request.page_size,
            &request.page_token,
            "order_ids",
            &request.order_ids,
            OrderId::parse,
            OrderId::as_str,
        )?;
        Ok(Self { page, order_ids })
    }
}

/// Where a payment is in its life (`PaymentStatus` without its UNSPECIFIED).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    /// Held on the card.
    Authorized,
    /// Taken from the card.
    Captured,
    /// Partly given back.
    PartiallyRefunded,
    /// All given back.
    Refunded,
    /// Dropped before capture.
    Voided,
    /// Refused by the network.
    Declined,
}

impl PaymentStatus {
    const ALL: [Self; 6] = [
        Self::Authorized,
        Self::Captured,
        Self::PartiallyRefunded,
        Self::Refunded,
        Self::Voided,
        Self::Declined,
    ];

    /// How it is stored (and named in messages).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authorized => "AUTHORIZED",
            Self::Captured => "CAPTURED",
            Self::PartiallyRefunded => "PARTIALLY_REFUNDED",
            Self::Refunded => "REFUNDED",
            Self::Voided => "VOIDED",
            Self::Declined => "DECLINED",
        }
    }

    /// The status stored as `stored`, if it is one.
    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == stored)
    }

    /// The API's enum value.
    pub fn to_proto(self) -> pb::PaymentStatus {
        match self {
            Self::Authorized => pb::PaymentStatus::Authorized,
            Self::Captured => pb::PaymentStatus::Captured,
            Self::PartiallyRefunded => pb::PaymentStatus::PartiallyRefunded,
            Self::Refunded => pb::PaymentStatus::Refunded,
            Self::Voided => pb::PaymentStatus::Voided,
            Self::Declined => pb::PaymentStatus::Declined,
        }
    }
}

impl std::fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a refund needs, for the client.
pub const REFUND_REQUIREMENT: &str =
    "only a CAPTURED or PARTIALLY_REFUNDED payment can be refunded";

/// A change of status that the payment's amount decides: capture (all of it) or void.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// AUTHORIZED becomes CAPTURED, and captured becomes the amount.
    Capture,
    /// AUTHORIZED becomes VOIDED.
    Void,
}

impl Transition {
    /// The RPC that asks for it, which names its idempotency records.
    pub fn operation(self) -> &'static str {
        match self {
            Self::Capture => "CapturePayment",
            Self::Void => "VoidPayment",
        }
    }

    /// Which status it applies to, for the client.
    pub fn requirement(self) -> &'static str {
        match self {
            Self::Capture => "only an AUTHORIZED payment can be captured",
            Self::Void => "only an AUTHORIZED payment can be voided",
        }
    }

    /// Whether a payment in `status` already had this change, so that asking again returns it
    /// unchanged: a captured payment stays captured through its refunds, and a void is final.
    pub fn already_done(self, status: PaymentStatus) -> bool {
        match self {
            Self::Capture => matches!(
                status,
                PaymentStatus::Captured
                    | PaymentStatus::PartiallyRefunded
                    | PaymentStatus::Refunded
            ),
            Self::Void => status == PaymentStatus::Voided,
        }
    }
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: YearMonth = YearMonth {
        year: 2026,
        month: 6,
    };

    fn card(number: &str, exp_month: i32, exp_year: i32, cvc: &str) -> types::PaymentCard {
        types::PaymentCard {
            number: number.into(),
            exp_month,
            exp_year,
            cvc: cvc.into(),
        }
    }

    fn violated(result: Result<Card, Vec<FieldViolation>>) -> Vec<String> {
        result
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|violation| violation.field)
            .collect()
    }

    #[test]
    fn test_cards_get_their_brand_and_outcome() {
        let cases = [
            ("4242424242424242", Brand::Visa, Outcome::Approve),
            (
                "4000000000000002",
                Brand::Visa,
                Outcome::Decline(DeclineReason::CardDeclined),
            ),
            (
                "4000000000009995",
                Brand::Visa,
                Outcome::Decline(DeclineReason::InsufficientFunds),
            ),
            ("5555555555554444", Brand::Mastercard, Outcome::Approve),
            ("2223003122003222", Brand::Mastercard, Outcome::Approve),
            ("378282246310005", Brand::Amex, Outcome::Approve),
        ];
        for (number, brand, outcome) in cases {
            let parsed = Card::parse(&card(number, 12, 2030, "123"), "card", TODAY)
                .unwrap_or_else(|violations| panic!("{number}: {violations:?}"));
            assert_eq!((parsed.brand, parsed.outcome), (brand, outcome), "{number}");
            assert_eq!(parsed.last4, number[number.len() - 4..]);
        }
    }

    #[test]
    fn bad_cards_name_the_bad_fields() {
        let cases: [(types::PaymentCard, &[&str]); 11] = [
            (card("4242424242424241", 12, 2030, "123"), &["card.number"]),
            (card("0000000000000000", 12, 2030, "123"), &["card.number"]),
            (card("6011111111111117", 12, 2030, "123"), &["card.number"]),
            (
                card("4242 4242 4242 4242", 12, 2030, "123"),
                &["card.number"],
            ),
            (card("", 12, 2030, "123"), &["card.number"]),
            (
                card("4242424242424242", 13, 2030, "123"),
                &["card.exp_month"],
            ),
            (card("4242424242424242", 12, 30, "123"), &["card.exp_year"]),
            (
                card("4242424242424242", 12, 2025, "123"),
                &["card.exp_year"],
            ),
            (
                card("4242424242424242", 5, 2026, "123"),
                &["card.exp_month"],
            ),
            (card("4242424242424242", 12, 2030, "12a"), &["card.cvc"]),
            (
                card("1234", 0, 0, ""),
                &["card.number", "card.exp_month", "card.exp_year", "card.cvc"],
            ),
        ];
        for (card, fields) in cases {
            assert_eq!(
                violated(Card::parse(&card, "card", TODAY)),
                fields,
                "{card:?}"
            );
        }
        assert!(
            Card::parse(&card("4242424242424242", 6, 2026, "1234"), "card", TODAY).is_ok(),
            "a card is valid through its expiry month"
        );
    }

    #[test]
    fn unix_days_become_calendar_months() {
        let cases = [
            (0, (1970, 1)),
            (-1, (1969, 12)),
            (11_017, (2000, 3)),
            (19_723, (2024, 1)),
            (19_782, (2024, 2)),
            (47_481, (2099, 12)),
        ];
        for (days, (year, month)) in cases {
            assert_eq!(
                YearMonth::of_unix_day(days),
                YearMonth { year, month },
                "day {days}"
            );
        }
    }

    #[test]
    fn statuses_round_trip_through_storage() {
        for status in PaymentStatus::ALL {
            assert_eq!(PaymentStatus::parse(status.as_str()), Some(status));
        }
        for outcome in [
            Outcome::Approve,
            Outcome::Decline(DeclineReason::CardDeclined),
            Outcome::Decline(DeclineReason::InsufficientFunds),
        ] {
            assert_eq!(Outcome::parse(outcome.as_str()), Some(outcome));
        }
    }
}
