//! The orders tables. All SQL of this service is here.

use std::collections::HashMap;

use crowdcrunch_proto::r#type::v1::Address;
use crowdcrunch_runtime::pagination::PageRequest;
use crowdcrunch_runtime::storage::{OwnedBy, fetch_by_keys, now_micros, placeholders};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Connection as _, FromRow as _};

use crate::domain::{CustomerId, OrderId, OrderStatus, PaymentId, Quantity, ShipmentId, Sku};
use crate::error::Error;
use crate::order::{
    CardOnFile, Compensation, Line, Order, PaymentProgress, Progress, ShipmentProgress,
};

/// An order's row as stored: the saga's flags are 0/1 `BIGINT`s, its status and compensation the
/// API's enum numbers, and absent ids empty strings. Read only through [`OrderRow::into_order`].
#[derive(Debug, Clone, sqlx::FromRow)]
struct OrderRow {
    id: String,
    request_id: Option<String>,
    customer_id: String,
    status: i64,
    currency_code: String,
    total_minor: i64,
    recipient: String,
    line1: String,
    line2: String,
    city: String,
    region: String,
    postal_code: String,
    country_code: String,
    failure_reason: String,
    card_token: String,
    card_brand: String,
    card_last4: String,
    reserved: i64,
    released: i64,
    payment_id: String,
    authorized: i64,
    captured: i64,
    voided: i64,
    refunded: i64,
    committed: i64,
    restocked: i64,
    shipment_id: String,
    shipment_cancelled: i64,
    cancel_requested: i64,
    reconciled: i64,
    compensate_to: i64,
    attempts: i64,
    next_attempt_time: i64,
    create_time: i64,
    update_time: i64,
    traceparent: String,
    forwarded_request_id: String,
    cancellation_reason: String,
}

/// The error of a stored order that breaks an invariant.
fn corrupt(id: &str, problem: impl std::fmt::Display) -> Error {
    Error::Corrupt(format!("the stored order {id} {problem}"))
}

/// A stored id read back by the one id rule.
fn stored_id<T>(
    order: &str,
    column: &str,
    raw: &str,
    parse: fn(&str, &str) -> Result<T, crowdcrunch_runtime::status::FieldViolation>,
) -> Result<T, Error> {
    parse(raw, column).map_err(|violation| {
        corrupt(
            order,
            format_args!("has a bad {column} {raw:?}: {}", violation.description),
        )
    })
}

/// A stored id that may be absent (an empty string).
fn stored_optional_id<T>(
    order: &str,
    column: &str,
    raw: &str,
    parse: fn(&str, &str) -> Result<T, crowdcrunch_runtime::status::FieldViolation>,
) -> Result<Option<T>, Error> {
    if raw.is_empty() {
        Ok(None)
    } else {
        stored_id(order, column, raw, parse).map(Some)
    }
}

/// A flag stored as 0 or 1.
fn stored_flag(order: &str, column: &str, value: i64) -> Result<bool, Error> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(corrupt(
            order,
            format_args!("has {column} = {value}, not 0 or 1"),
        )),
    }
}

impl OrderRow {
    /// The typed order of this row and its `lines`: an unknown status, a flag that is not 0 or 1,
    /// a malformed id, an order without lines or an impossible progress is an error.
    fn into_order(self, lines: &[LineRow]) -> Result<Order, Error> {
        let order = self.id.as_str();
        if lines.is_empty() {
            return Err(corrupt(order, "has no lines"));
        }
        let lines = lines
            .iter()
            .map(|line| line.to_line(order))
            .collect::<Result<_, _>>()?;
        self.into_order_with(lines)
    }

    /// The typed order of this row, whose `lines` are known already (they never change).
    fn into_order_with(self, lines: Vec<Line>) -> Result<Order, Error> {
        let id = stored_id(&self.id, "id", &self.id, OrderId::parse)?;
        let order = self.id.as_str();
        let flag = |column: &str, value: i64| stored_flag(order, column, value);
        let status = OrderStatus::from_stored(self.status)
            .ok_or_else(|| corrupt(order, format_args!("has an unknown status {}", self.status)))?;
        let compensate_to = match self.compensate_to {
            0 => None,
            raw => Some(
                OrderStatus::from_stored(raw)
                    .and_then(Compensation::ending_in)
                    .ok_or_else(|| {
                        corrupt(
                            order,
                            format_args!("compensates to an unknown status {raw}"),
                        )
                    })?,
            ),
        };
        let payment = stored_optional_id(order, "payment_id", &self.payment_id, PaymentId::parse)?;
        let payment_flags = [
            ("authorized", self.authorized),
            ("captured", self.captured),
            ("voided", self.voided),
            ("refunded", self.refunded),
        ];
        let payment = match payment {
            Some(id) => Some(PaymentProgress {
                id,
                authorized: flag("authorized", self.authorized)?,
                captured: flag("captured", self.captured)?,
                voided: flag("voided", self.voided)?,
                refunded: flag("refunded", self.refunded)?,
            }),
            None => match payment_flags.iter().find(|(_, value)| *value != 0) {
                Some((column, _)) => {
                    return Err(corrupt(
                        order,
                        format_args!("is {column} without a payment"),
                    ));
                }
                None => None,
            },
        };
        let shipment =
            match stored_optional_id(order, "shipment_id", &self.shipment_id, ShipmentId::parse)? {
                Some(id) => Some(ShipmentProgress {
                    id,
                    cancelled: flag("shipment_cancelled", self.shipment_cancelled)?,
                }),
                None if self.shipment_cancelled != 0 => {
                    return Err(corrupt(
                        order,
                        "has a cancelled shipment without a shipment",
                    ));
                }
                None => None,
            };
        let progress = Progress {
            status,
            cancel_requested: flag("cancel_requested", self.cancel_requested)?,
            reserved: flag("reserved", self.reserved)?,
            released: flag("released", self.released)?,
            committed: flag("committed", self.committed)?,
            restocked: flag("restocked", self.restocked)?,
            payment,
            shipment,
            reconciled: flag("reconciled", self.reconciled)?,
            compensate_to,
        };
        if let Some(impossibility) = progress.impossibility() {
            return Err(corrupt(order, format_args!("is {impossibility}")));
        }
        Ok(Order {
            customer_id: stored_id(order, "customer_id", &self.customer_id, CustomerId::parse)?,
            request_id: self.request_id,
            currency_code: self.currency_code,
            total_minor: self.total_minor,
            lines,
            address: Address {
                recipient: self.recipient,
                line1: self.line1,
                line2: self.line2,
                city: self.city,
                region: self.region,
                postal_code: self.postal_code,
                country_code: self.country_code,
            },
            failure_reason: self.failure_reason,
            cancellation_reason: self.cancellation_reason,
            card: CardOnFile {
                token: self.card_token,
                brand: self.card_brand,
                last4: self.card_last4,
            },
            progress,
            attempts: self.attempts,
            next_attempt_time: self.next_attempt_time,
            traceparent: self.traceparent,
            forwarded_request_id: self.forwarded_request_id,
            create_time: self.create_time,
            update_time: self.update_time,
            id,
        })
    }
}

/// One order line as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
struct LineRow {
    order_id: String,
    sku: String,
    quantity: i64,
    unit_price_minor: i64,
}

impl LineRow {
    /// The typed line; a malformed SKU or a quantity out of range is an error.
    fn to_line(&self, order: &str) -> Result<Line, Error> {
        let quantity = i32::try_from(self.quantity)
            .ok()
            .and_then(Quantity::new)
            .ok_or_else(|| {
                corrupt(
                    order,
                    format_args!("has a line of {} {}", self.quantity, self.sku),
                )
            })?;
        Ok(Line {
            sku: stored_id(order, "sku", &self.sku, Sku::parse)?,
            quantity,
            unit_price_minor: self.unit_price_minor,
        })
    }
}

/// The columns the saga's progress is stored in, in the order [`bind_progress`] binds them.
const PROGRESS_COLUMNS: [&str; 14] = [
    "failure_reason",
    "reserved",
    "released",
    "payment_id",
    "authorized",
    "captured",
    "voided",
    "refunded",
    "committed",
    "restocked",
    "shipment_id",
    "shipment_cancelled",
    "reconciled",
    "compensate_to",
];

/// The other columns an order is inserted with, in the order [`insert`] binds them.
const ORDER_COLUMNS: &str = "id, request_id, customer_id, status, currency_code, total_minor, recipient, line1, \
    line2, city, region, postal_code, country_code, card_token, card_brand, card_last4, cancel_requested, \
    attempts, next_attempt_time, create_time, update_time, traceparent, forwarded_request_id";

/// The columns of an order read back.
const COLUMNS: &str = "id, request_id, customer_id, status, currency_code, total_minor, recipient, line1, line2, \
    city, region, postal_code, country_code, failure_reason, card_token, card_brand, card_last4, reserved, \
    released, payment_id, authorized, captured, voided, refunded, committed, restocked, shipment_id, \
    shipment_cancelled, cancel_requested, reconciled, compensate_to, attempts, next_attempt_time, \
    create_time, update_time, traceparent, forwarded_request_id, cancellation_reason";

/// The saga's columns of an order as stored.
struct ProgressColumns<'a> {
    reserved: i64,
    released: i64,
    payment_id: &'a str,
    authorized: i64,
    captured: i64,
    voided: i64,
    refunded: i64,
    committed: i64,
    restocked: i64,
    shipment_id: &'a str,
    shipment_cancelled: i64,
    reconciled: i64,
    compensate_to: i64,
}

impl<'a> From<&'a Progress> for ProgressColumns<'a> {
    fn from(progress: &'a Progress) -> Self {
        let payment = progress.payment.as_ref();
        let payment_flag =
            |flag: fn(&PaymentProgress) -> bool| i64::from(payment.is_some_and(flag));
        let shipment = progress.shipment.as_ref();
        Self {
            reserved: i64::from(progress.reserved),
            released: i64::from(progress.released),
            payment_id: payment.map_or("", |payment| payment.id.as_str()),
            authorized: payment_flag(|payment| payment.authorized),
            captured: payment_flag(|payment| payment.captured),
            voided: payment_flag(|payment| payment.voided),
            refunded: payment_flag(|payment| payment.refunded),
            committed: i64::from(progress.committed),
            restocked: i64::from(progress.restocked),
            shipment_id: shipment.map_or("", |shipment| shipment.id.as_str()),
            shipment_cancelled: i64::from(shipment.is_some_and(|shipment| shipment.cancelled)),
            reconciled: i64::from(progress.reconciled),
            compensate_to: progress
                .compensate_to
                .map_or(0, |compensation| compensation.status().stored()),
        }
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// `query` with the failure reason and the progress of `order` bound next, as
/// [`PROGRESS_COLUMNS`] lists them.
fn bind_progress<'q>(query: AnyQuery<'q>, order: &'q Order) -> AnyQuery<'q> {
    let progress = ProgressColumns::from(&order.progress);
    query
        .bind(&order.failure_reason)
        .bind(progress.reserved)
        .bind(progress.released)
        .bind(progress.payment_id)
        .bind(progress.authorized)
        .bind(progress.captured)
        .bind(progress.voided)
        .bind(progress.refunded)
        .bind(progress.committed)
        .bind(progress.restocked)
        .bind(progress.shipment_id)
        .bind(progress.shipment_cancelled)
        .bind(progress.reconciled)
        .bind(progress.compensate_to)
}

/// Inserts a new order and its lines.
pub async fn insert(connection: &mut AnyConnection, order: &Order) -> Result<(), Error> {
    let order_columns = ORDER_COLUMNS.split(',').count();
    let sql = format!(
        "INSERT INTO orders ({ORDER_COLUMNS}, {}, lease_owner, lease_until) VALUES ({}, '', 0)",
        PROGRESS_COLUMNS.join(", "),
        placeholders(1, order_columns + PROGRESS_COLUMNS.len())
    );
    let query = sqlx::query(&sql)
        .bind(order.id.as_str())
        .bind(order.request_id.as_deref())
        .bind(order.customer_id.as_str())
        .bind(order.status().stored())
        .bind(&order.currency_code)
        .bind(order.total_minor)
        .bind(&order.address.recipient)
        .bind(&order.address.line1)
        .bind(&order.address.line2)
        .bind(&order.address.city)
        .bind(&order.address.region)
        .bind(&order.address.postal_code)
        .bind(&order.address.country_code)
        .bind(&order.card.token)
        .bind(&order.card.brand)
        .bind(&order.card.last4)
        .bind(i64::from(order.progress.cancel_requested))
        .bind(order.attempts)
        .bind(order.next_attempt_time)
        .bind(order.create_time)
        .bind(order.update_time)
        .bind(&order.traceparent)
        .bind(&order.forwarded_request_id);
    bind_progress(query, order)
        .execute(&mut *connection)
        .await?;
    for (line_no, line) in (0_i64..).zip(&order.lines) {
        sqlx::query(
            "INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_price_minor) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(order.id.as_str())
        .bind(line_no)
        .bind(line.sku.as_str())
        .bind(i64::from(line.quantity.get()))
        .bind(line.unit_price_minor)
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}

/// Writes the saga progress of `order` and answers the order as stored then. Its status and
/// cancellation request are written only by [`set_status`] and [`request_cancel`]/[`clear_cancel`],
/// so a concurrent CancelOrder or shipment update is never overwritten by a stale copy, and is in
/// the answer.
pub async fn save_progress(connection: &mut AnyConnection, order: &Order) -> Result<Order, Error> {
    if let Some(impossibility) = order.progress.impossibility() {
        return Err(corrupt(
            order.id.as_str(),
            format_args!("would be {impossibility}"),
        ));
    }
    let assignments: Vec<String> = (2..)
        .zip(PROGRESS_COLUMNS)
        .map(|(placeholder, column)| format!("{column} = ${placeholder}"))
        .collect();
    let next = PROGRESS_COLUMNS.len() + 2;
    let sql = format!(
        "UPDATE orders SET {}, attempts = ${next}, next_attempt_time = ${}, update_time = ${} WHERE id = $1 \
         RETURNING {COLUMNS}",
        assignments.join(", "),
        next + 1,
        next + 2
    );
    let row = bind_progress(sqlx::query(&sql).bind(order.id.as_str()), order)
        .bind(order.attempts)
        .bind(order.next_attempt_time)
        .bind(order.update_time)
        .try_map(|row: AnyRow| OrderRow::from_row(&row))
        .fetch_optional(connection)
        .await?
        .ok_or_else(|| Error::NotFound(order.id.to_string()))?;
    row.into_order_with(order.lines.clone())
}

/// Moves order `id` to `status` if it is in one of `from`; whether it moved.
pub async fn set_status(
    connection: &mut AnyConnection,
    id: &OrderId,
    from: &[OrderStatus],
    status: OrderStatus,
) -> Result<bool, Error> {
    let allowed = from
        .iter()
        .map(|status| status.stored().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let updated = sqlx::query(&format!(
        "UPDATE orders SET status = $2, update_time = $3 WHERE id = $1 AND status IN ({allowed})"
    ))
    .bind(id.as_str())
    .bind(status.stored())
    .bind(now_micros())
    .execute(connection)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Records that order `id` is to be cancelled, and why (the saga carries it out).
pub async fn request_cancel(
    connection: &mut AnyConnection,
    id: &OrderId,
    reason: &str,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE orders SET cancel_requested = 1, cancellation_reason = $3, next_attempt_time = $2, \
         update_time = $2 WHERE id = $1",
    )
    .bind(id.as_str())
    .bind(now_micros())
    .bind(reason)
    .execute(connection)
    .await?;
    Ok(())
}

/// Forgets the cancellation request of order `id` (carried out, moot, or refused).
pub async fn clear_cancel(connection: &mut AnyConnection, id: &OrderId) -> Result<(), Error> {
    sqlx::query("UPDATE orders SET cancel_requested = 0 WHERE id = $1")
        .bind(id.as_str())
        .execute(connection)
        .await?;
    Ok(())
}

/// The orders a caller scoped to `customer_id` may read: their own.
pub fn owned_by(customer_id: Option<&str>) -> Option<OwnedBy<'_>> {
    OwnedBy::scope("customer_id", customer_id)
}

/// One order, or `None` (also when `owned_by` hides it).
async fn find(
    connection: &mut AnyConnection,
    id: &OrderId,
    owned_by: Option<OwnedBy<'_>>,
) -> Result<Option<Order>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM orders WHERE id = $1{}",
        OwnedBy::condition(owned_by, 2)
    );
    let query = sqlx::query_as::<_, OrderRow>(&sql).bind(id.as_str());
    let row = OwnedBy::bind(owned_by, query)
        .fetch_optional(&mut *connection)
        .await?;
    match row {
        Some(row) => Ok(with_lines(connection, vec![row]).await?.pop()),
        None => Ok(None),
    }
}

/// One order; NotFound when there is none, or when `owned_by` hides it.
pub async fn get(
    connection: &mut AnyConnection,
    id: &OrderId,
    owned_by: Option<OwnedBy<'_>>,
) -> Result<Order, Error> {
    find(connection, id, owned_by)
        .await?
        .ok_or_else(|| Error::NotFound(id.to_string()))
}

/// The order a PlaceOrder request id created, if any.
pub async fn find_by_request_id(
    connection: &mut AnyConnection,
    request_id: &str,
) -> Result<Option<Order>, Error> {
    let row = sqlx::query_as::<_, OrderRow>(&format!(
        "SELECT {COLUMNS} FROM orders WHERE request_id = $1"
    ))
    .bind(request_id)
    .fetch_optional(&mut *connection)
    .await?;
    match row {
        Some(row) => Ok(with_lines(connection, vec![row]).await?.pop()),
        None => Ok(None),
    }
}

/// Orders by id, in the order asked (duplicates answered in place); NotFound names the first
/// unknown id (or one `owned_by` hides).
pub async fn batch_get(
    connection: &mut AnyConnection,
    ids: &[OrderId],
    owned_by: Option<OwnedBy<'_>>,
) -> Result<Vec<Order>, Error> {
    let keys: Vec<&str> = ids.iter().map(OrderId::as_str).collect();
    let select = format!("SELECT {COLUMNS} FROM orders WHERE id IN");
    let rows = fetch_by_keys(
        connection,
        &select,
        &keys,
        owned_by,
        |row: &OrderRow| &row.id,
        |id| Error::NotFound(id.to_owned()),
    )
    .await?;
    with_lines(connection, rows).await
}

/// One page of orders in creation order, optionally of one customer and in one status, only
/// those `owned_by` lets the caller see (a filter naming another customer: an empty page).
pub async fn list(
    connection: &mut AnyConnection,
    page: &PageRequest,
    customer_id: Option<&CustomerId>,
    status: Option<OrderStatus>,
    owned_by: Option<OwnedBy<'_>>,
) -> Result<(Vec<Order>, String), Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM orders WHERE id > $1 AND ($2 = '' OR customer_id = $2) AND ($3 = 0 OR status = $3){} \
         ORDER BY id LIMIT $4",
        OwnedBy::condition(owned_by, 5)
    );
    let query = sqlx::query_as::<_, OrderRow>(&sql)
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(customer_id.map_or("", CustomerId::as_str))
        .bind(status.map_or(0, OrderStatus::stored))
        .bind(page.fetch_limit());
    let rows = OwnedBy::bind(owned_by, query)
        .fetch_all(&mut *connection)
        .await?;
    let mut orders = with_lines(connection, rows).await?;
    let next_page_token = page.finish(&mut orders, |order| order.id.to_string());
    Ok((orders, next_page_token))
}

/// The typed orders of `rows` with their lines, in the same order (an order may come more than
/// once).
async fn with_lines(
    connection: &mut AnyConnection,
    rows: Vec<OrderRow>,
) -> Result<Vec<Order>, Error> {
    let ids: Vec<&str> = rows.iter().map(|row| row.id.as_str()).collect();
    let lines = lines_of(connection, &ids).await?;
    rows.into_iter()
        .map(|row| {
            let lines = lines.get(&row.id).map_or(&[][..], Vec::as_slice);
            row.into_order(lines)
        })
        .collect()
}

/// The lines of the orders `ids`, by order id.
async fn lines_of(
    connection: &mut AnyConnection,
    ids: &[&str],
) -> Result<HashMap<String, Vec<LineRow>>, Error> {
    let mut lines: HashMap<String, Vec<LineRow>> = HashMap::new();
    if ids.is_empty() {
        return Ok(lines);
    }
    let sql = format!(
        "SELECT order_id, sku, quantity, unit_price_minor FROM order_lines WHERE order_id IN ({}) \
         ORDER BY order_id, line_no",
        placeholders(1, ids.len())
    );
    let mut query = sqlx::query_as::<_, LineRow>(&sql);
    for id in ids {
        query = query.bind(*id);
    }
    for line in query.fetch_all(connection).await? {
        lines.entry(line.order_id.clone()).or_default().push(line);
    }
    Ok(lines)
}

/// When the oldest order still PENDING was placed, in microseconds since the epoch; `None` when
/// no order is pending.
pub async fn oldest_pending_create_time(
    connection: &mut AnyConnection,
) -> Result<Option<i64>, Error> {
    let (oldest,): (Option<i64>,) =
        sqlx::query_as("SELECT MIN(create_time) FROM orders WHERE status = $1")
            .bind(OrderStatus::Pending.stored())
            .fetch_one(&mut *connection)
            .await?;
    Ok(oldest)
}

/// Claims up to `limit` orders whose saga has work due, for `owner` until `lease_until`, leaving
/// out `busy` (the orders `owner` is running already, whose lease it holds); returns their ids.
/// A lease keeps two replicas from running one order's step at once; an expired lease (its owner
/// died), or one `owner` holds but no longer runs, is taken over. The leases commit together;
/// finding nothing due writes nothing.
pub async fn claim_due(
    connection: &mut AnyConnection,
    owner: &str,
    lease_until: i64,
    limit: i64,
    busy: &[OrderId],
) -> Result<Vec<OrderId>, Error> {
    let now = now_micros();
    let not_busy = if busy.is_empty() {
        String::new()
    } else {
        format!(" AND id NOT IN ({})", placeholders(5, busy.len()))
    };
    let sql = format!(
        "SELECT id FROM orders WHERE (status = $1 OR cancel_requested = 1) AND next_attempt_time <= $2 \
         AND (lease_until < $2 OR lease_owner = $3){not_busy} ORDER BY next_attempt_time LIMIT $4"
    );
    let mut select = sqlx::query_as::<_, (String,)>(&sql)
        .bind(OrderStatus::Pending.stored())
        .bind(now)
        .bind(owner)
        .bind(limit);
    for id in busy {
        select = select.bind(id.as_str());
    }
    let candidates = select.fetch_all(&mut *connection).await?;
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    // Each lease is conditional again: a candidate another replica claimed since is skipped.
    let mut transaction = connection.begin().await?;
    let mut claimed = Vec::new();
    for (id,) in candidates {
        let id = stored_id(&id, "id", &id, OrderId::parse)?;
        let updated = sqlx::query(
            "UPDATE orders SET lease_owner = $2, lease_until = $3 WHERE id = $1 AND (lease_until < $4 OR lease_owner = $2)",
        )
        .bind(id.as_str())
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .execute(&mut *transaction)
        .await?;
        if updated.rows_affected() == 1 {
            claimed.push(id);
        }
    }
    transaction.commit().await?;
    Ok(claimed)
}

/// Gives up `owner`'s lease on order `id`.
pub async fn release_lease(
    connection: &mut AnyConnection,
    id: &OrderId,
    owner: &str,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE orders SET lease_owner = '', lease_until = 0 WHERE id = $1 AND lease_owner = $2",
    )
    .bind(id.as_str())
    .bind(owner)
    .execute(connection)
    .await?;
    Ok(())
}

/// The last ledger sequence `consumer` applied (0 when none).
pub async fn checkpoint(connection: &mut AnyConnection, consumer: &str) -> Result<i64, Error> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT last_sequence FROM ledger_checkpoints WHERE consumer = $1")
            .bind(consumer)
            .fetch_optional(connection)
            .await?;
    Ok(row.map_or(0, |(sequence,)| sequence))
}

/// Records that `consumer` applied everything up to `sequence`.
pub async fn set_checkpoint(
    connection: &mut AnyConnection,
    consumer: &str,
    sequence: i64,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO ledger_checkpoints (consumer, last_sequence) VALUES ($1, $2) \
         ON CONFLICT (consumer) DO UPDATE SET last_sequence = excluded.last_sequence",
    )
    .bind(consumer)
    .bind(sequence)
    .execute(connection)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A confirmed order's row: reserved, paid, committed and shipped.
    fn confirmed() -> OrderRow {
        OrderRow {
            id: "o1".into(),
            request_id: None,
            customer_id: "c1".into(),
            status: OrderStatus::Confirmed.stored(),
            currency_code: "USD".into(),
            total_minor: 500,
            recipient: "Ada".into(),
            line1: "1 Main St".into(),
            line2: String::new(),
            city: "Springfield".into(),
            region: String::new(),
            postal_code: "12345".into(),
            country_code: "US".into(),
            failure_reason: String::new(),
            card_token: "tok".into(),
            card_brand: "visa".into(),
            card_last4: "4242".into(),
            reserved: 1,
            released: 0,
            payment_id: "p1".into(),
            authorized: 1,
            captured: 1,
            voided: 0,
            refunded: 0,
            committed: 1,
            restocked: 0,
            shipment_id: "s1".into(),
            shipment_cancelled: 0,
            cancel_requested: 0,
            reconciled: 0,
            compensate_to: 0,
            attempts: 0,
            next_attempt_time: 0,
            create_time: 0,
            update_time: 0,
            traceparent: String::new(),
            forwarded_request_id: String::new(),
            cancellation_reason: String::new(),
        }
    }

    fn line(quantity: i64) -> LineRow {
        LineRow {
            order_id: "o1".into(),
            sku: "MUG-1".into(),
            quantity,
            unit_price_minor: 500,
        }
    }

    #[test]
    fn a_consistent_row_reads_as_its_typed_progress_and_back() {
        let order = confirmed().into_order(&[line(1)]).expect("a valid row");
        assert_eq!(order.status(), OrderStatus::Confirmed);
        let payment = order.progress.payment.as_ref().expect("a payment");
        assert_eq!(
            (payment.id.as_str(), payment.authorized, payment.captured),
            ("p1", true, true)
        );
        assert_eq!(
            order
                .progress
                .shipment
                .as_ref()
                .map(|shipment| shipment.id.as_str()),
            Some("s1")
        );
        let columns = ProgressColumns::from(&order.progress);
        assert_eq!(
            (columns.payment_id, columns.captured, columns.shipment_id),
            ("p1", 1, "s1")
        );
    }

    #[test]
    fn a_corrupt_row_is_an_error_not_a_default() {
        let cases: [(&str, OrderRow, Vec<LineRow>); 10] = [
            (
                "unknown status",
                OrderRow {
                    status: 42,
                    ..confirmed()
                },
                vec![line(1)],
            ),
            (
                "unspecified status",
                OrderRow {
                    status: 0,
                    ..confirmed()
                },
                vec![line(1)],
            ),
            (
                "compensating towards CONFIRMED",
                OrderRow {
                    compensate_to: OrderStatus::Confirmed.stored(),
                    ..confirmed()
                },
                vec![line(1)],
            ),
            (
                "a flag that is not 0 or 1",
                OrderRow {
                    captured: 2,
                    ..confirmed()
                },
                vec![line(1)],
            ),
            (
                "captured without a payment",
                OrderRow {
                    payment_id: String::new(),
                    ..confirmed()
                },
                vec![line(1)],
            ),
            (
                "a cancelled shipment without a shipment",
                OrderRow {
                    shipment_id: String::new(),
                    shipment_cancelled: 1,
                    ..confirmed()
                },
                vec![line(1)],
            ),
            (
                "refunded without a capture",
                OrderRow {
                    captured: 0,
                    refunded: 1,
                    committed: 0,
                    ..confirmed()
                },
                vec![line(1)],
            ),
            (
                "released and committed",
                OrderRow {
                    released: 1,
                    ..confirmed()
                },
                vec![line(1)],
            ),
            ("no lines", confirmed(), vec![]),
            ("a line of no units", confirmed(), vec![line(0)]),
        ];
        for (what, row, lines) in cases {
            match row.into_order(&lines) {
                Err(Error::Corrupt(message)) => {
                    assert!(message.contains("o1"), "{what}: {message}")
                }
                other => panic!("{what}: {other:?}"),
            }
        }
        let malformed_customer = OrderRow {
            customer_id: "c 1".into(),
            ..confirmed()
        };
        assert!(matches!(
            malformed_customer.into_order(&[line(1)]),
            Err(Error::Corrupt(_))
        ));
    }
}
