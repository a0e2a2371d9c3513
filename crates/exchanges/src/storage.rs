//! The returns tables. All SQL of this service is here.

use std::collections::HashMap;

use crowdcrunch_proto::exchanges::v1 as pb;
use crowdcrunch_proto::r#type::v1::Money;
use crowdcrunch_runtime::pagination::PageRequest;
use crowdcrunch_runtime::storage::{
    fetch_by_keys, fetch_page, now_micros, placeholders, timestamp_from_micros,
};
use sqlx::AnyConnection;

use crate::error::Error;

/// A return request as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReturnRecord {
    pub id: String,
    pub order_id: String,
    pub kind: i64,
    pub status: i64,
    pub reason: String,
    pub rejection_reason: String,
    pub currency_code: String,
    pub refund_minor: i64,
    pub refund_payment_id: String,
    pub replacement_shipment_id: String,
    pub create_time: i64,
    pub update_time: i64,
    #[sqlx(skip)]
    pub lines: Vec<(String, i64)>,
}

impl ReturnRecord {
    /// The kind.
    pub fn kind(&self) -> pb::ReturnKind {
        pb::ReturnKind::try_from(i32::try_from(self.kind).unwrap_or_default()).unwrap_or_default()
    }

    /// The status.
    pub fn status(&self) -> pb::ReturnStatus {
        pb::ReturnStatus::try_from(i32::try_from(self.status).unwrap_or_default())
            .unwrap_or_default()
    }

    /// The return as the API shows it.
    pub fn to_proto(&self) -> pb::ReturnRequest {
        pb::ReturnRequest {
            id: self.id.clone(),
            order_id: self.order_id.clone(),
            kind: self.kind().into(),
            lines: self
                .lines
                .iter()
                .map(|(sku, quantity)| pb::ReturnLine {
                    sku: sku.clone(),
                    quantity: i32::try_from(*quantity).unwrap_or(i32::MAX),
                })
                .collect(),
            status: self.status().into(),
            reason: self.reason.clone(),
            rejection_reason: self.rejection_reason.clone(),
            refund_amount: Some(Money {
                currency_code: self.currency_code.clone(),
                minor_units: self.refund_minor,
            }),
            refund_payment_id: self.refund_payment_id.clone(),
            replacement_shipment_id: self.replacement_shipment_id.clone(),
            create_time: Some(timestamp_from_micros(self.create_time)),
            update_time: Some(timestamp_from_micros(self.update_time)),
        }
    }
}

const COLUMNS: &str = "id, order_id, kind, status, reason, rejection_reason, currency_code, refund_minor, \
    refund_payment_id, replacement_shipment_id, create_time, update_time";

/// Inserts a new return request and its lines.
pub async fn insert(connection: &mut AnyConnection, record: &ReturnRecord) -> Result<(), Error> {
    sqlx::query(&format!(
        "INSERT INTO returns ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(&record.id)
    .bind(&record.order_id)
    .bind(record.kind)
    .bind(record.status)
    .bind(&record.reason)
    .bind(&record.rejection_reason)
    .bind(&record.currency_code)
    .bind(record.refund_minor)
    .bind(&record.refund_payment_id)
    .bind(&record.replacement_shipment_id)
    .bind(record.create_time)
    .bind(record.update_time)
    .execute(&mut *connection)
    .await?;
    for (line_no, (sku, quantity)) in record.lines.iter().enumerate() {
        sqlx::query(
            "INSERT INTO return_lines (return_id, line_no, sku, quantity) VALUES ($1, $2, $3, $4)",
        )
        .bind(&record.id)
        .bind(i64::try_from(line_no).unwrap_or(i64::MAX))
        .bind(sku)
        .bind(quantity)
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}

/// Moves return `id` from `from` to `status`, with what the move produced; whether it moved.
pub async fn transition(
    connection: &mut AnyConnection,
    record: &ReturnRecord,
    from: pb::ReturnStatus,
) -> Result<bool, Error> {
    let updated = sqlx::query(
        "UPDATE returns SET status = $2, rejection_reason = $3, refund_payment_id = $4, replacement_shipment_id = $5, \
         update_time = $6 WHERE id = $1 AND status = $7",
    )
    .bind(&record.id)
    .bind(record.status)
    .bind(&record.rejection_reason)
    .bind(&record.refund_payment_id)
    .bind(&record.replacement_shipment_id)
    .bind(now_micros())
    .bind(i64::from(from as i32))
    .execute(connection)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// One return request; NotFound when there is none.
pub async fn get(connection: &mut AnyConnection, id: &str) -> Result<ReturnRecord, Error> {
    let found = batch_get(connection, &[id.to_owned()]).await?;
    found
        .into_iter()
        .next()
        .ok_or_else(|| Error::NotFound(id.to_owned()))
}

/// Return requests by id, in the order asked (duplicates answered in place); NotFound names the
/// first unknown id.
pub async fn batch_get(
    connection: &mut AnyConnection,
    ids: &[String],
) -> Result<Vec<ReturnRecord>, Error> {
    let keys: Vec<&str> = ids.iter().map(String::as_str).collect();
    let select = format!("SELECT {COLUMNS} FROM returns WHERE id IN");
    let records = fetch_by_keys(
        connection,
        &select,
        &keys,
        |record: &ReturnRecord| &record.id,
        |id| Error::NotFound(id.to_owned()),
    )
    .await?;
    with_lines(connection, records).await
}

/// One page of return requests in creation order, of the given orders (all when empty).
pub async fn list(
    connection: &mut AnyConnection,
    page: &PageRequest,
    order_ids: &[String],
) -> Result<(Vec<ReturnRecord>, String), Error> {
    let order_ids: Vec<&str> = order_ids.iter().map(String::as_str).collect();
    let select = format!("SELECT {COLUMNS} FROM returns");
    let rows: Vec<ReturnRecord> =
        fetch_page(&mut *connection, &select, page, "order_id", &order_ids).await?;
    let mut records = with_lines(connection, rows).await?;
    let next_page_token = page.finish(&mut records, |record| record.id.clone());
    Ok((records, next_page_token))
}

/// Units of each SKU of `order_id` already claimed by returns that are not rejected.
pub async fn claimed_units(
    connection: &mut AnyConnection,
    order_id: &str,
) -> Result<HashMap<String, i64>, Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT l.sku, CAST(SUM(l.quantity) AS BIGINT) FROM return_lines l JOIN returns r ON r.id = l.return_id \
         WHERE r.order_id = $1 AND r.status <> $2 GROUP BY l.sku",
    )
    .bind(order_id)
    .bind(i64::from(pb::ReturnStatus::Rejected as i32))
    .fetch_all(connection)
    .await?;
    Ok(rows.into_iter().collect())
}

/// `records` with their lines, in the same order (a record may come more than once).
async fn with_lines(
    connection: &mut AnyConnection,
    mut records: Vec<ReturnRecord>,
) -> Result<Vec<ReturnRecord>, Error> {
    if records.is_empty() {
        return Ok(records);
    }
    let sql = format!(
        "SELECT return_id, sku, quantity FROM return_lines WHERE return_id IN ({}) ORDER BY return_id, line_no",
        placeholders(1, records.len())
    );
    let mut query = sqlx::query_as::<_, (String, String, i64)>(&sql);
    for record in &records {
        query = query.bind(&record.id);
    }
    let mut lines: HashMap<String, Vec<(String, i64)>> = HashMap::new();
    for (return_id, sku, quantity) in query.fetch_all(connection).await? {
        lines.entry(return_id).or_default().push((sku, quantity));
    }
    for record in &mut records {
        record.lines = lines.get(&record.id).cloned().unwrap_or_default();
    }
    Ok(records)
}
