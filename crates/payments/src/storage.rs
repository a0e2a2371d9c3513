//! Card tokens, payments and refunds. All SQL of this service is here.
//!
//! Every change is one conditional `UPDATE ... WHERE status = ...` (and, for refunds, `refunded +
//! amount <= captured`), so two concurrent changes to one payment can never both apply: the loser
//! finds the row changed and is answered from what it finds.

use crowdcrunch_proto::payments::v1 as pb;
use crowdcrunch_runtime::storage::{
    OwnedBy, fetch_by_keys, fetch_page, now_micros, timestamp_from_micros,
};
use sqlx::AnyConnection;

use crate::domain::{
    Card, NewPayment, NewRefund, OrderId, Outcome, PaymentId, PaymentQuery, PaymentStatus,
    REFUND_REQUIREMENT, TokenId, Transition, money,
};
use crate::error::Error;

const COLUMNS: &str = "id, order_id, customer_id, currency_code, amount, captured, refunded, \
                       status, decline_reason, card_brand, card_last4, create_time, update_time";

#[derive(Clone, sqlx::FromRow)]
struct PaymentRow {
    id: String,
    order_id: String,
    customer_id: String,
    currency_code: String,
    amount: i64,
    captured: i64,
    refunded: i64,
    status: String,
    decline_reason: String,
    card_brand: String,
    card_last4: String,
    create_time: i64,
    update_time: i64,
}

impl PaymentRow {
    fn status(&self) -> Result<PaymentStatus, Error> {
        PaymentStatus::parse(&self.status).ok_or_else(|| corrupt("payment status", &self.status))
    }

    fn into_proto(self) -> Result<pb::Payment, Error> {
        let status = self.status()?;
        Ok(pb::Payment {
            amount: Some(money(&self.currency_code, self.amount)),
            captured: Some(money(&self.currency_code, self.captured)),
            refunded: Some(money(&self.currency_code, self.refunded)),
            id: self.id,
            order_id: self.order_id,
            customer_id: self.customer_id,
            status: status.to_proto().into(),
            decline_reason: self.decline_reason,
            card_brand: self.card_brand,
            card_last4: self.card_last4,
            create_time: Some(timestamp_from_micros(self.create_time)),
            update_time: Some(timestamp_from_micros(self.update_time)),
        })
    }
}

/// A stored value that this code never writes.
fn corrupt(what: &str, value: &str) -> Error {
    sqlx::Error::Decode(format!("unknown {what} {value:?} in the database").into()).into()
}

/// What a card token stands for.
#[derive(Debug, sqlx::FromRow)]
pub struct StoredToken {
    /// The token.
    pub token: String,
    /// The card's brand.
    pub brand: String,
    /// The card's last four digits.
    pub last4: String,
    outcome: String,
}

impl StoredToken {
    /// What the network answers when the card is charged.
    pub fn outcome(&self) -> Result<Outcome, Error> {
        Outcome::parse(&self.outcome).ok_or_else(|| corrupt("card outcome", &self.outcome))
    }
}

/// Stores a token for `card` (which holds neither number nor CVC).
pub async fn insert_token(
    connection: &mut AnyConnection,
    card: &Card,
) -> Result<pb::CardToken, Error> {
    let token = format!("tok_{}", uuid::Uuid::now_v7().simple());
    let now = now_micros();
    sqlx::query(
        "INSERT INTO card_tokens (token, brand, last4, exp_month, exp_year, outcome, create_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&token)
    .bind(card.brand.as_str())
    .bind(&card.last4)
    .bind(i64::from(card.exp_month))
    .bind(i64::from(card.exp_year))
    .bind(card.outcome.as_str())
    .bind(now)
    .execute(connection)
    .await?;
    Ok(pb::CardToken {
        token,
        brand: card.brand.as_str().to_owned(),
        last4: card.last4.clone(),
        exp_month: card.exp_month,
        exp_year: card.exp_year,
        create_time: Some(timestamp_from_micros(now)),
    })
}

/// The card a token stands for, if TokenizeCard made it.
pub async fn find_token(
    connection: &mut AnyConnection,
    token: &TokenId,
) -> Result<Option<StoredToken>, Error> {
    Ok(
        sqlx::query_as("SELECT token, brand, last4, outcome FROM card_tokens WHERE token = $1")
            .bind(token.as_str())
            .fetch_optional(connection)
            .await?,
    )
}

/// Stores the network's answer to `payment` on the card of `token`: AUTHORIZED, or DECLINED
/// with the reason.
pub async fn insert_payment(
    connection: &mut AnyConnection,
    payment: &NewPayment,
    token: &StoredToken,
) -> Result<pb::Payment, Error> {
    let (status, decline_reason) = match token.outcome()? {
        Outcome::Approve => (PaymentStatus::Authorized, ""),
        Outcome::Decline(reason) => (PaymentStatus::Declined, reason.as_str()),
    };
    let row: PaymentRow = sqlx::query_as(&format!(
        "INSERT INTO payments (id, order_id, currency_code, amount, captured, refunded, status, \
         decline_reason, card_token, card_brand, card_last4, create_time, update_time, \
         customer_id) \
         VALUES ($1, $2, $3, $4, 0, 0, $5, $6, $7, $8, $9, $10, $10, $11) RETURNING {COLUMNS}"
    ))
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(payment.order_id.as_str())
    .bind(&payment.amount.currency_code)
    .bind(payment.amount.minor_units)
    .bind(status.as_str())
    .bind(decline_reason)
    .bind(&token.token)
    .bind(&token.brand)
    .bind(&token.last4)
    .bind(now_micros())
    .bind(payment.customer_id.as_str())
    .fetch_one(connection)
    .await?;
    row.into_proto()
}

/// The payments a caller scoped to `customer_id` may read: their own.
pub fn owned_by(customer_id: Option<&str>) -> Option<OwnedBy<'_>> {
    OwnedBy::scope("customer_id", customer_id)
}

async fn get_row(
    connection: &mut AnyConnection,
    id: &PaymentId,
    owned_by: Option<OwnedBy<'_>>,
) -> Result<PaymentRow, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM payments WHERE id = $1{}",
        OwnedBy::condition(owned_by, 2)
    );
    let query = sqlx::query_as::<_, PaymentRow>(&sql).bind(id.as_str());
    let row = OwnedBy::bind(owned_by, query)
        .fetch_optional(connection)
        .await?;
    row.ok_or_else(|| Error::NotFound(id.as_str().to_owned()))
}

/// One payment, when `owned_by` lets the caller see it (NotFound otherwise, as for an unknown id).
pub async fn get(
    connection: &mut AnyConnection,
    id: &PaymentId,
    owned_by: Option<OwnedBy<'_>>,
) -> Result<pb::Payment, Error> {
    get_row(connection, id, owned_by).await?.into_proto()
}

/// Payments by id, in the order asked (duplicates answered in place); NotFound names the first
/// unknown id (or one `owned_by` hides).
pub async fn batch_get(
    connection: &mut AnyConnection,
    ids: &[PaymentId],
    owned_by: Option<OwnedBy<'_>>,
) -> Result<Vec<pb::Payment>, Error> {
    let keys: Vec<&str> = ids.iter().map(PaymentId::as_str).collect();
    let select = format!("SELECT {COLUMNS} FROM payments WHERE id IN");
    let rows = fetch_by_keys(
        connection,
        &select,
        &keys,
        owned_by,
        |row: &PaymentRow| &row.id,
        |id| Error::NotFound(id.to_owned()),
    )
    .await?;
    rows.into_iter().map(PaymentRow::into_proto).collect()
}

/// One page of payments (of some orders, or all; only those `owned_by` lets the caller see) in
/// creation order (ids are UUIDv7).
pub async fn list(
    connection: &mut AnyConnection,
    query: &PaymentQuery,
    owned_by: Option<OwnedBy<'_>>,
) -> Result<pb::ListPaymentsResponse, Error> {
    let order_ids: Vec<&str> = query.order_ids.iter().map(OrderId::as_str).collect();
    let select = format!("SELECT {COLUMNS} FROM payments");
    let rows: Vec<PaymentRow> = fetch_page(
        connection,
        &select,
        &query.page,
        "order_id",
        &order_ids,
        owned_by,
    )
    .await?;
    let mut payments = rows
        .into_iter()
        .map(PaymentRow::into_proto)
        .collect::<Result<Vec<_>, _>>()?;
    let next_page_token = query
        .page
        .finish(&mut payments, |payment| payment.id.clone());
    Ok(pb::ListPaymentsResponse {
        payments,
        next_page_token,
    })
}

/// A payment after a change, and whether the change happened now (or had happened before).
#[derive(Debug)]
pub struct Applied {
    /// The payment as it is now.
    pub payment: pb::Payment,
    /// False when the payment already had the change and was left as it was.
    pub changed: bool,
}

/// Captures (the whole amount) or voids an AUTHORIZED payment. When the conditional update
/// changes nothing, the payment either already had the change (answered unchanged) or is in a
/// status that refuses it.
pub async fn transition(
    connection: &mut AnyConnection,
    id: &PaymentId,
    transition: Transition,
) -> Result<Applied, Error> {
    let set = match transition {
        Transition::Capture => "status = 'CAPTURED', captured = amount",
        Transition::Void => "status = 'VOIDED'",
    };
    let updated: Option<PaymentRow> = sqlx::query_as(&format!(
        "UPDATE payments SET {set}, update_time = $2 \
         WHERE id = $1 AND status = 'AUTHORIZED' RETURNING {COLUMNS}"
    ))
    .bind(id.as_str())
    .bind(now_micros())
    .fetch_optional(&mut *connection)
    .await?;
    if let Some(row) = updated {
        return Ok(Applied {
            payment: row.into_proto()?,
            changed: true,
        });
    }
    let current = get_row(connection, id, None).await?;
    let status = current.status()?;
    if transition.already_done(status) {
        Ok(Applied {
            payment: current.into_proto()?,
            changed: false,
        })
    } else {
        Err(Error::WrongStatus {
            id: current.id,
            status,
            requirement: transition.requirement(),
        })
    }
}

/// Gives back part or all of what is left of a captured payment and records the refund; the
/// payment as it is afterwards, and the refund's id.
pub async fn refund(
    connection: &mut AnyConnection,
    refund: &NewRefund,
) -> Result<(pb::Payment, String), Error> {
    let now = now_micros();
    let updated: Option<PaymentRow> = sqlx::query_as(&format!(
        "UPDATE payments SET refunded = refunded + $2, update_time = $4, \
         status = CASE WHEN refunded + $2 = captured THEN 'REFUNDED' ELSE 'PARTIALLY_REFUNDED' END \
         WHERE id = $1 AND currency_code = $3 AND status IN ('CAPTURED', 'PARTIALLY_REFUNDED') \
         AND refunded + $2 <= captured RETURNING {COLUMNS}"
    ))
    .bind(refund.payment_id.as_str())
    .bind(refund.amount.minor_units)
    .bind(&refund.amount.currency_code)
    .bind(now)
    .fetch_optional(&mut *connection)
    .await?;
    let Some(row) = updated else {
        let refusal = refund_refused(connection, refund).await?;
        return Err(refusal);
    };
    let refund_id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO refunds (id, payment_id, amount, reason, create_time) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&refund_id)
    .bind(refund.payment_id.as_str())
    .bind(refund.amount.minor_units)
    .bind(&refund.reason)
    .bind(now)
    .execute(connection)
    .await?;
    Ok((row.into_proto()?, refund_id))
}

/// Why a refund changed nothing: an unknown payment, another currency, a status that cannot be
/// refunded, or more than is left.
async fn refund_refused(
    connection: &mut AnyConnection,
    refund: &NewRefund,
) -> Result<Error, Error> {
    let current = get_row(connection, &refund.payment_id, None).await?;
    let status = current.status()?;
    if refund.amount.currency_code != current.currency_code {
        return Ok(Error::invalid(
            "amount.currency_code",
            format!("must be the payment's currency, {}", current.currency_code),
        ));
    }
    if !matches!(
        status,
        PaymentStatus::Captured | PaymentStatus::PartiallyRefunded
    ) {
        return Ok(Error::WrongStatus {
            id: current.id,
            status,
            requirement: REFUND_REQUIREMENT,
        });
    }
    Ok(Error::RefundTooLarge {
        id: current.id,
        refundable: current.captured - current.refunded,
        currency_code: current.currency_code,
    })
}
