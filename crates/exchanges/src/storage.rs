//! The returns tables. All SQL of this service is here.
//!
//! Rows are read into [`Return`] here: a kind or status number the API does not define, a return
//! without lines or a quantity that is not a number of units is an error, never a default.

use std::collections::HashMap;

use crowdcrunch_proto::r#type::v1::Money;
use crowdcrunch_runtime::storage::{OwnedBy, fetch_by_keys, fetch_page, now_micros, placeholders};
use sqlx::AnyConnection;

use crate::domain::{
    OrderId, PaymentId, Quantity, Return, ReturnId, ReturnKind, ReturnLine, ReturnQuery,
    ReturnStatus, ShipmentId, Sku,
};
use crate::error::Error;

/// A row of `returns`, as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
struct ReturnRow {
    id: String,
    order_id: String,
    customer_id: String,
    kind: i64,
    status: i64,
    reason: String,
    rejection_reason: String,
    currency_code: String,
    refund_minor: i64,
    refund_payment_id: String,
    replacement_shipment_id: String,
    create_time: i64,
    update_time: i64,
}

impl ReturnRow {
    /// The return this row and its `lines` (as stored: SKU and quantity) stand for.
    fn into_return(self, lines: &[(String, i64)]) -> Result<Return, Error> {
        let kind = ReturnKind::from_number(self.kind)
            .ok_or_else(|| corrupt(&self.id, format!("unknown kind {}", self.kind)))?;
        let status = ReturnStatus::from_number(self.status)
            .ok_or_else(|| corrupt(&self.id, format!("unknown status {}", self.status)))?;
        let lines = lines
            .iter()
            .map(|(sku, quantity)| match Quantity::new(*quantity) {
                Some(quantity) => Ok(ReturnLine {
                    sku: Sku::known(sku.clone()),
                    quantity,
                }),
                None => Err(corrupt(
                    &self.id,
                    format!("quantity {quantity} of {sku} is not a number of units"),
                )),
            })
            .collect::<Result<_, _>>()?;
        Ok(Return {
            id: ReturnId::known(self.id),
            order_id: OrderId::known(self.order_id),
            customer_id: self.customer_id,
            kind,
            status,
            reason: self.reason,
            rejection_reason: self.rejection_reason,
            refund: Money {
                currency_code: self.currency_code,
                minor_units: self.refund_minor,
            },
            refund_payment_id: (!self.refund_payment_id.is_empty())
                .then(|| PaymentId::known(self.refund_payment_id)),
            replacement_shipment_id: (!self.replacement_shipment_id.is_empty())
                .then(|| ShipmentId::known(self.replacement_shipment_id)),
            create_time: self.create_time,
            update_time: self.update_time,
            lines,
        })
    }
}

/// A stored return that this code never writes.
fn corrupt(id: &str, problem: String) -> Error {
    sqlx::Error::Decode(format!("return {id} in the database: {problem}").into()).into()
}

const COLUMNS: &str = "id, order_id, kind, status, reason, rejection_reason, currency_code, refund_minor, \
    refund_payment_id, replacement_shipment_id, create_time, update_time, customer_id";

/// Inserts a new return request and its lines.
pub async fn insert(connection: &mut AnyConnection, record: &Return) -> Result<(), Error> {
    sqlx::query(&format!(
        "INSERT INTO returns ({COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(record.id.as_str())
    .bind(record.order_id.as_str())
    .bind(record.kind.number())
    .bind(record.status.number())
    .bind(&record.reason)
    .bind(&record.rejection_reason)
    .bind(&record.refund.currency_code)
    .bind(record.refund.minor_units)
    .bind(
        record
            .refund_payment_id
            .as_ref()
            .map_or("", PaymentId::as_str),
    )
    .bind(
        record
            .replacement_shipment_id
            .as_ref()
            .map_or("", ShipmentId::as_str),
    )
    .bind(record.create_time)
    .bind(record.update_time)
    .bind(&record.customer_id)
    .execute(&mut *connection)
    .await?;
    for (line_no, line) in (0_i64..).zip(&record.lines) {
        sqlx::query(
            "INSERT INTO return_lines (return_id, line_no, sku, quantity) VALUES ($1, $2, $3, $4)",
        )
        .bind(record.id.as_str())
        .bind(line_no)
        .bind(line.sku.as_str())
        .bind(i64::from(line.quantity.get()))
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}

/// Moves `record` from `from` to its status, with what the move produced (rejection reason,
/// refunded payment, replacement shipment); whether it moved.
pub async fn transition(
    connection: &mut AnyConnection,
    record: &Return,
    from: ReturnStatus,
) -> Result<bool, Error> {
    let updated = sqlx::query(
        "UPDATE returns SET status = $2, rejection_reason = $3, refund_payment_id = $4, replacement_shipment_id = $5, \
         update_time = $6 WHERE id = $1 AND status = $7",
    )
    .bind(record.id.as_str())
    .bind(record.status.number())
    .bind(&record.rejection_reason)
    .bind(record.refund_payment_id.as_ref().map_or("", PaymentId::as_str))
    .bind(
        record
            .replacement_shipment_id
            .as_ref()
            .map_or("", ShipmentId::as_str),
    )
    .bind(now_micros())
    .bind(from.number())
    .execute(connection)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// The return requests a caller scoped to `customer_id` may read: their own.
pub fn owned_by(customer_id: Option<&str>) -> Option<OwnedBy<'_>> {
    OwnedBy::scope("customer_id", customer_id)
}

/// One return request; NotFound when there is none (or `owned_by` hides it).
pub async fn get(
    connection: &mut AnyConnection,
    id: &ReturnId,
    owned_by: Option<OwnedBy<'_>>,
) -> Result<Return, Error> {
    let found = batch_get(connection, std::slice::from_ref(id), owned_by).await?;
    found
        .into_iter()
        .next()
        .ok_or_else(|| Error::NotFound(id.to_string()))
}

/// Return requests by id, in the order asked (duplicates answered in place); NotFound names the
/// first unknown id (or one `owned_by` hides).
pub async fn batch_get(
    connection: &mut AnyConnection,
    ids: &[ReturnId],
    owned_by: Option<OwnedBy<'_>>,
) -> Result<Vec<Return>, Error> {
    let keys: Vec<&str> = ids.iter().map(ReturnId::as_str).collect();
    let select = format!("SELECT {COLUMNS} FROM returns WHERE id IN");
    let rows = fetch_by_keys(
        connection,
        &select,
        &keys,
        owned_by,
        |row: &ReturnRow| &row.id,
        |id| Error::NotFound(id.to_owned()),
    )
    .await?;
    with_lines(connection, rows).await
}

/// One page of return requests in creation order, of the query's orders (all when none), only
/// those `owned_by` lets the caller see.
pub async fn list(
    connection: &mut AnyConnection,
    query: &ReturnQuery,
    owned_by: Option<OwnedBy<'_>>,
) -> Result<(Vec<Return>, String), Error> {
    let order_ids: Vec<&str> = query.order_ids.iter().map(OrderId::as_str).collect();
    let select = format!("SELECT {COLUMNS} FROM returns");
    let rows: Vec<ReturnRow> = fetch_page(
        &mut *connection,
        &select,
        &query.page,
        "order_id",
        &order_ids,
        owned_by,
    )
    .await?;
    let mut records = with_lines(connection, rows).await?;
    let next_page_token = query
        .page
        .finish(&mut records, |record| record.id.to_string());
    Ok((records, next_page_token))
}

/// Units of each SKU of `order_id` already claimed by returns that are not rejected.
pub async fn claimed_units(
    connection: &mut AnyConnection,
    order_id: &OrderId,
) -> Result<HashMap<String, i64>, Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT l.sku, CAST(SUM(l.quantity) AS BIGINT) FROM return_lines l JOIN returns r ON r.id = l.return_id \
         WHERE r.order_id = $1 AND r.status <> $2 GROUP BY l.sku",
    )
    .bind(order_id.as_str())
    .bind(ReturnStatus::Rejected.number())
    .fetch_all(connection)
    .await?;
    Ok(rows.into_iter().collect())
}

/// The returns of `rows` with their lines, in the same order (a row may come more than once).
async fn with_lines(
    connection: &mut AnyConnection,
    rows: Vec<ReturnRow>,
) -> Result<Vec<Return>, Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT return_id, sku, quantity FROM return_lines WHERE return_id IN ({}) ORDER BY return_id, line_no",
        placeholders(1, rows.len())
    );
    let mut query = sqlx::query_as::<_, (String, String, i64)>(&sql);
    for row in &rows {
        query = query.bind(&row.id);
    }
    let mut lines: HashMap<String, Vec<(String, i64)>> = HashMap::new();
    for (return_id, sku, quantity) in query.fetch_all(connection).await? {
        lines.entry(return_id).or_default().push((sku, quantity));
    }
    rows.into_iter()
        .map(|row| match lines.get(&row.id) {
            Some(of_row) => row.into_return(of_row),
            None => Err(corrupt(&row.id, "no lines".to_owned())),
        })
        .collect()
}
