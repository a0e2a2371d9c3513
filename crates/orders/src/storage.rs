//! The orders tables. All SQL of this service is here.

use std::collections::HashMap;

use crowdcrunch_proto::orders::v1 as pb;
use crowdcrunch_proto::r#type::v1::{Address, Money};
use crowdcrunch_runtime::pagination::PageRequest;
use crowdcrunch_runtime::storage::{
    fetch_by_keys, now_micros, placeholders, timestamp_from_micros,
};
use sqlx::AnyConnection;

use crate::error::Error;

/// One order line as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LineRecord {
    /// The product.
    pub sku: String,
    /// Units.
    pub quantity: i64,
    /// Price of one unit at order time, in the order's currency.
    pub unit_price_minor: i64,
}

/// An order with the persisted progress of its saga.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrderRecord {
    pub id: String,
    pub request_id: Option<String>,
    pub customer_id: String,
    pub status: i64,
    pub currency_code: String,
    pub total_minor: i64,
    pub recipient: String,
    pub line1: String,
    pub line2: String,
    pub city: String,
    pub region: String,
    pub postal_code: String,
    pub country_code: String,
    pub failure_reason: String,
    pub card_token: String,
    pub card_brand: String,
    pub card_last4: String,
    pub reserved: i64,
    pub released: i64,
    pub payment_id: String,
    pub authorized: i64,
    pub captured: i64,
    pub voided: i64,
    pub refunded: i64,
    pub committed: i64,
    pub restocked: i64,
    pub shipment_id: String,
    pub shipment_cancelled: i64,
    pub cancel_requested: i64,
    pub reconciled: i64,
    pub compensate_to: i64,
    pub attempts: i64,
    pub next_attempt_time: i64,
    pub lease_owner: String,
    pub lease_until: i64,
    pub create_time: i64,
    pub update_time: i64,
    /// The W3C traceparent of the PlaceOrder call, which the saga's steps continue.
    pub traceparent: String,
    #[sqlx(skip)]
    pub lines: Vec<LineRecord>,
}

impl OrderRecord {
    /// The order's status.
    pub fn status(&self) -> pb::OrderStatus {
        pb::OrderStatus::try_from(i32::try_from(self.status).unwrap_or_default())
            .unwrap_or_default()
    }

    /// The shipping address.
    pub fn address(&self) -> Address {
        Address {
            recipient: self.recipient.clone(),
            line1: self.line1.clone(),
            line2: self.line2.clone(),
            city: self.city.clone(),
            region: self.region.clone(),
            postal_code: self.postal_code.clone(),
            country_code: self.country_code.clone(),
        }
    }

    /// `minor_units` of this order's currency as Money.
    pub fn money(&self, minor_units: i64) -> Money {
        Money {
            currency_code: self.currency_code.clone(),
            minor_units,
        }
    }

    /// The order as the API shows it.
    pub fn to_proto(&self) -> pb::Order {
        pb::Order {
            id: self.id.clone(),
            customer_id: self.customer_id.clone(),
            lines: self
                .lines
                .iter()
                .map(|line| pb::OrderLine {
                    sku: line.sku.clone(),
                    quantity: i32::try_from(line.quantity).unwrap_or(i32::MAX),
                    unit_price: Some(self.money(line.unit_price_minor)),
                    line_total: Some(self.money(line.unit_price_minor * line.quantity)),
                })
                .collect(),
            total: Some(self.money(self.total_minor)),
            status: self.status().into(),
            shipping_address: Some(self.address()),
            failure_reason: self.failure_reason.clone(),
            payment_id: if self.authorized != 0 {
                self.payment_id.clone()
            } else {
                String::new()
            },
            card_brand: self.card_brand.clone(),
            card_last4: self.card_last4.clone(),
            create_time: Some(timestamp_from_micros(self.create_time)),
            update_time: Some(timestamp_from_micros(self.update_time)),
        }
    }
}

const COLUMNS: &str = "id, request_id, customer_id, status, currency_code, total_minor, recipient, line1, line2, \
    city, region, postal_code, country_code, failure_reason, card_token, card_brand, card_last4, reserved, \
    released, payment_id, authorized, captured, voided, refunded, committed, restocked, shipment_id, \
    shipment_cancelled, cancel_requested, reconciled, compensate_to, attempts, next_attempt_time, lease_owner, lease_until, \
    create_time, update_time, traceparent";

/// Inserts a new order and its lines.
pub async fn insert(connection: &mut AnyConnection, order: &OrderRecord) -> Result<(), Error> {
    sqlx::query(&format!(
        "INSERT INTO orders ({COLUMNS}) VALUES ({})",
        placeholders(1, 38)
    ))
    .bind(&order.id)
    .bind(order.request_id.as_deref())
    .bind(&order.customer_id)
    .bind(order.status)
    .bind(&order.currency_code)
    .bind(order.total_minor)
    .bind(&order.recipient)
    .bind(&order.line1)
    .bind(&order.line2)
    .bind(&order.city)
    .bind(&order.region)
    .bind(&order.postal_code)
    .bind(&order.country_code)
    .bind(&order.failure_reason)
    .bind(&order.card_token)
    .bind(&order.card_brand)
    .bind(&order.card_last4)
    .bind(order.reserved)
    .bind(order.released)
    .bind(&order.payment_id)
    .bind(order.authorized)
    .bind(order.captured)
    .bind(order.voided)
    .bind(order.refunded)
    .bind(order.committed)
    .bind(order.restocked)
    .bind(&order.shipment_id)
    .bind(order.shipment_cancelled)
    .bind(order.cancel_requested)
    .bind(order.reconciled)
    .bind(order.compensate_to)
    .bind(order.attempts)
    .bind(order.next_attempt_time)
    .bind(&order.lease_owner)
    .bind(order.lease_until)
    .bind(order.create_time)
    .bind(order.update_time)
    .bind(&order.traceparent)
    .execute(&mut *connection)
    .await?;
    for (line_no, line) in order.lines.iter().enumerate() {
        sqlx::query(
            "INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_price_minor) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&order.id)
        .bind(i64::try_from(line_no).unwrap_or(i64::MAX))
        .bind(&line.sku)
        .bind(line.quantity)
        .bind(line.unit_price_minor)
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}

/// Writes the saga progress of `order`. Its status and cancellation request are written only by
/// [`set_status`] and [`request_cancel`]/[`clear_cancel`], so a concurrent CancelOrder or shipment
/// update is never overwritten by a stale copy.
pub async fn save_progress(
    connection: &mut AnyConnection,
    order: &OrderRecord,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE orders SET failure_reason = $2, reserved = $3, released = $4, payment_id = $5, authorized = $6, \
         captured = $7, voided = $8, refunded = $9, committed = $10, restocked = $11, shipment_id = $12, \
         shipment_cancelled = $13, reconciled = $14, compensate_to = $15, attempts = $16, next_attempt_time = $17, \
         update_time = $18 WHERE id = $1",
    )
    .bind(&order.id)
    .bind(&order.failure_reason)
    .bind(order.reserved)
    .bind(order.released)
    .bind(&order.payment_id)
    .bind(order.authorized)
    .bind(order.captured)
    .bind(order.voided)
    .bind(order.refunded)
    .bind(order.committed)
    .bind(order.restocked)
    .bind(&order.shipment_id)
    .bind(order.shipment_cancelled)
    .bind(order.reconciled)
    .bind(order.compensate_to)
    .bind(order.attempts)
    .bind(order.next_attempt_time)
    .bind(order.update_time)
    .execute(connection)
    .await?;
    Ok(())
}

/// Moves order `id` to `status` if it is in one of `from`; whether it moved.
pub async fn set_status(
    connection: &mut AnyConnection,
    id: &str,
    from: &[pb::OrderStatus],
    status: pb::OrderStatus,
) -> Result<bool, Error> {
    let allowed = from
        .iter()
        .map(|status| (*status as i32).to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let updated = sqlx::query(&format!(
        "UPDATE orders SET status = $2, update_time = $3 WHERE id = $1 AND status IN ({allowed})"
    ))
    .bind(id)
    .bind(i64::from(status as i32))
    .bind(now_micros())
    .execute(connection)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Records that order `id` is to be cancelled (the saga carries it out).
pub async fn request_cancel(connection: &mut AnyConnection, id: &str) -> Result<(), Error> {
    sqlx::query("UPDATE orders SET cancel_requested = 1, next_attempt_time = $2, update_time = $2 WHERE id = $1")
        .bind(id)
        .bind(now_micros())
        .execute(connection)
        .await?;
    Ok(())
}

/// Forgets the cancellation request of order `id` (carried out, moot, or refused).
pub async fn clear_cancel(connection: &mut AnyConnection, id: &str) -> Result<(), Error> {
    sqlx::query("UPDATE orders SET cancel_requested = 0 WHERE id = $1")
        .bind(id)
        .execute(connection)
        .await?;
    Ok(())
}

/// One order, or `None`.
pub async fn find(connection: &mut AnyConnection, id: &str) -> Result<Option<OrderRecord>, Error> {
    let Some(mut order) =
        sqlx::query_as::<_, OrderRecord>(&format!("SELECT {COLUMNS} FROM orders WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *connection)
            .await?
    else {
        return Ok(None);
    };
    order.lines = lines_of(connection, &[order.id.clone()])
        .await?
        .remove(&order.id)
        .unwrap_or_default();
    Ok(Some(order))
}

/// One order; NotFound when there is none.
pub async fn get(connection: &mut AnyConnection, id: &str) -> Result<OrderRecord, Error> {
    find(connection, id)
        .await?
        .ok_or_else(|| Error::NotFound(id.to_owned()))
}

/// The order a PlaceOrder request id created, if any.
pub async fn find_by_request_id(
    connection: &mut AnyConnection,
    request_id: &str,
) -> Result<Option<OrderRecord>, Error> {
    let id: Option<(String,)> = sqlx::query_as("SELECT id FROM orders WHERE request_id = $1")
        .bind(request_id)
        .fetch_optional(&mut *connection)
        .await?;
    match id {
        Some((id,)) => find(connection, &id).await,
        None => Ok(None),
    }
}

/// Orders by id, in the order asked (duplicates answered in place); NotFound names the first
/// unknown id.
pub async fn batch_get(
    connection: &mut AnyConnection,
    ids: &[String],
) -> Result<Vec<OrderRecord>, Error> {
    let keys: Vec<&str> = ids.iter().map(String::as_str).collect();
    let select = format!("SELECT {COLUMNS} FROM orders WHERE id IN");
    let orders = fetch_by_keys(
        connection,
        &select,
        &keys,
        |order: &OrderRecord| &order.id,
        |id| Error::NotFound(id.to_owned()),
    )
    .await?;
    with_lines(connection, orders).await
}

/// One page of orders in creation order, optionally of one customer and in one status.
pub async fn list(
    connection: &mut AnyConnection,
    page: &PageRequest,
    customer_id: Option<&str>,
    status: Option<pb::OrderStatus>,
) -> Result<(Vec<OrderRecord>, String), Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM orders WHERE id > $1 AND ($2 = '' OR customer_id = $2) AND ($3 = 0 OR status = $3) \
         ORDER BY id LIMIT $4"
    );
    let rows: Vec<OrderRecord> = sqlx::query_as(&sql)
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(customer_id.unwrap_or(""))
        .bind(status.map_or(0, |status| i64::from(status as i32)))
        .bind(page.fetch_limit())
        .fetch_all(&mut *connection)
        .await?;
    let mut orders = with_lines(connection, rows).await?;
    let next_page_token = page.finish(&mut orders, |order| order.id.clone());
    Ok((orders, next_page_token))
}

/// `orders` with their lines, in the same order (an order may come more than once).
async fn with_lines(
    connection: &mut AnyConnection,
    mut orders: Vec<OrderRecord>,
) -> Result<Vec<OrderRecord>, Error> {
    let ids: Vec<String> = orders.iter().map(|order| order.id.clone()).collect();
    let lines = lines_of(connection, &ids).await?;
    for order in &mut orders {
        order.lines = lines.get(&order.id).cloned().unwrap_or_default();
    }
    Ok(orders)
}

async fn lines_of(
    connection: &mut AnyConnection,
    ids: &[String],
) -> Result<HashMap<String, Vec<LineRecord>>, Error> {
    let mut lines: HashMap<String, Vec<LineRecord>> = HashMap::new();
    if ids.is_empty() {
        return Ok(lines);
    }
    let sql = format!(
        "SELECT order_id, sku, quantity, unit_price_minor FROM order_lines WHERE order_id IN ({}) \
         ORDER BY order_id, line_no",
        placeholders(1, ids.len())
    );
    let mut query = sqlx::query_as::<_, (String, String, i64, i64)>(&sql);
    for id in ids {
        query = query.bind(id);
    }
    for (order_id, sku, quantity, unit_price_minor) in query.fetch_all(connection).await? {
        lines.entry(order_id).or_default().push(LineRecord {
            sku,
            quantity,
            unit_price_minor,
        });
    }
    Ok(lines)
}

/// Claims up to `limit` orders whose saga has work due, for `owner` until `lease_until`; returns
/// their ids. A lease keeps two replicas from running one order's step at once; an expired lease
/// (its owner died) is taken over.
pub async fn claim_due(
    connection: &mut AnyConnection,
    owner: &str,
    lease_until: i64,
    limit: i64,
) -> Result<Vec<String>, Error> {
    let now = now_micros();
    let candidates: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM orders WHERE (status = $1 OR cancel_requested = 1) AND next_attempt_time <= $2 \
         AND (lease_until < $2 OR lease_owner = $3) ORDER BY next_attempt_time LIMIT $4",
    )
    .bind(i64::from(pb::OrderStatus::Pending as i32))
    .bind(now)
    .bind(owner)
    .bind(limit)
    .fetch_all(&mut *connection)
    .await?;
    let mut claimed = Vec::new();
    for (id,) in candidates {
        let updated = sqlx::query(
            "UPDATE orders SET lease_owner = $2, lease_until = $3 WHERE id = $1 AND (lease_until < $4 OR lease_owner = $2)",
        )
        .bind(&id)
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .execute(&mut *connection)
        .await?;
        if updated.rows_affected() == 1 {
            claimed.push(id);
        }
    }
    Ok(claimed)
}

/// Gives up `owner`'s lease on order `id`.
pub async fn release_lease(
    connection: &mut AnyConnection,
    id: &str,
    owner: &str,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE orders SET lease_owner = '', lease_until = 0 WHERE id = $1 AND lease_owner = $2",
    )
    .bind(id)
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

/// A new, unsaved order record in PENDING with nothing done yet, in the current trace.
pub fn new_record(
    id: String,
    request_id: Option<String>,
    customer_id: String,
    address: &Address,
) -> OrderRecord {
    let now = now_micros();
    OrderRecord {
        id,
        request_id,
        customer_id,
        status: i64::from(pb::OrderStatus::Pending as i32),
        currency_code: String::new(),
        total_minor: 0,
        recipient: address.recipient.clone(),
        line1: address.line1.clone(),
        line2: address.line2.clone(),
        city: address.city.clone(),
        region: address.region.clone(),
        postal_code: address.postal_code.clone(),
        country_code: address.country_code.clone(),
        failure_reason: String::new(),
        card_token: String::new(),
        card_brand: String::new(),
        card_last4: String::new(),
        reserved: 0,
        released: 0,
        payment_id: String::new(),
        authorized: 0,
        captured: 0,
        voided: 0,
        refunded: 0,
        committed: 0,
        restocked: 0,
        shipment_id: String::new(),
        shipment_cancelled: 0,
        cancel_requested: 0,
        reconciled: 0,
        compensate_to: 0,
        attempts: 0,
        next_attempt_time: now,
        lease_owner: String::new(),
        lease_until: 0,
        create_time: now,
        update_time: now,
        traceparent: crowdcrunch_runtime::context::current_traceparent(),
        lines: Vec::new(),
    }
}
