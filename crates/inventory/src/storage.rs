//! The catalogue, stock and reservation tables. All SQL of this service is here.
//!
//! Stock moves only through conditional updates (`... WHERE on_hand - reserved >= $2`), which
//! PostgreSQL re-checks after taking the row lock and which SQLite's single writer runs one at a
//! time: two reservations can never both take the last unit. Transactions that touch several stock
//! rows touch them in SKU order, so they cannot deadlock.

use crowdcrunch_proto::inventory::v1 as pb;
use crowdcrunch_proto::r#type::v1::Money as PbMoney;
use crowdcrunch_runtime::pagination::PageRequest;
use crowdcrunch_runtime::storage::{
    fetch_by_keys, now_micros, placeholders, timestamp_from_micros,
};
use sqlx::AnyConnection;

use crate::domain::{NewProduct, NewReservation, ProductPatch, ReservationId, Sku, StockChange};
use crate::error::{Error, Shortage};

const PRODUCT_COLUMNS: &str = "sku, title, description, price_currency_code, price_minor_units, \
                               active, create_time, update_time";
const STOCK_COLUMNS: &str = "sku, on_hand, reserved";
/// The most units on hand of one product (`StockLevel` counts are int32).
const MAX_ON_HAND: i64 = i32::MAX as i64;

#[derive(sqlx::FromRow, Clone)]
struct ProductRow {
    sku: String,
    title: String,
    description: String,
    price_currency_code: String,
    price_minor_units: i64,
    active: i64,
    create_time: i64,
    update_time: i64,
}

impl From<ProductRow> for pb::Product {
    fn from(row: ProductRow) -> Self {
        Self {
            sku: row.sku,
            title: row.title,
            description: row.description,
            price: Some(PbMoney {
                currency_code: row.price_currency_code,
                minor_units: row.price_minor_units,
            }),
            active: row.active != 0,
            create_time: Some(timestamp_from_micros(row.create_time)),
            update_time: Some(timestamp_from_micros(row.update_time)),
        }
    }
}

#[derive(sqlx::FromRow, Clone)]
struct StockRow {
    sku: String,
    on_hand: i64,
    reserved: i64,
}

impl From<StockRow> for pb::StockLevel {
    fn from(row: StockRow) -> Self {
        let count = |units: i64| i32::try_from(units).unwrap_or(i32::MAX);
        Self {
            available: count((row.on_hand - row.reserved).max(0)),
            on_hand: count(row.on_hand),
            reserved: count(row.reserved),
            sku: row.sku,
        }
    }
}

/// Adds a product and its stock row; SkuTaken when the SKU exists.
pub async fn insert_product(
    connection: &mut AnyConnection,
    product: &NewProduct,
) -> Result<(pb::Product, pb::StockLevel), Error> {
    let now = now_micros();
    let row: Option<ProductRow> = sqlx::query_as(&format!(
        "INSERT INTO products ({PRODUCT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
         ON CONFLICT (sku) DO NOTHING RETURNING {PRODUCT_COLUMNS}"
    ))
    .bind(product.sku.as_str())
    .bind(&product.title)
    .bind(&product.description)
    .bind(&product.price.currency_code)
    .bind(product.price.minor_units)
    .bind(i64::from(product.active))
    .bind(now)
    .fetch_optional(&mut *connection)
    .await?;
    let row = row.ok_or_else(|| Error::SkuTaken(product.sku.as_str().to_owned()))?;
    let stock: StockRow = sqlx::query_as(&format!(
        "INSERT INTO stock ({STOCK_COLUMNS}) VALUES ($1, $2, 0) RETURNING {STOCK_COLUMNS}"
    ))
    .bind(product.sku.as_str())
    .bind(product.initial_stock)
    .fetch_one(connection)
    .await?;
    Ok((row.into(), stock.into()))
}

/// One product.
pub async fn get_product(connection: &mut AnyConnection, sku: &Sku) -> Result<pb::Product, Error> {
    let row: Option<ProductRow> = sqlx::query_as(&format!(
        "SELECT {PRODUCT_COLUMNS} FROM products WHERE sku = $1"
    ))
    .bind(sku.as_str())
    .fetch_optional(connection)
    .await?;
    row.map(Into::into)
        .ok_or_else(|| Error::ProductNotFound(sku.as_str().to_owned()))
}

/// Products by SKU, in the order asked; ProductNotFound names the first unknown SKU.
pub async fn batch_get_products(
    connection: &mut AnyConnection,
    skus: &[Sku],
) -> Result<Vec<pb::Product>, Error> {
    let select = format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE sku IN");
    by_sku(connection, &select, skus, |row: &ProductRow| &row.sku).await
}

/// One page of products in SKU order, only those whose active flag is `active` when set.
pub async fn list_products(
    connection: &mut AnyConnection,
    active: Option<bool>,
    page: &PageRequest,
) -> Result<pb::ListProductsResponse, Error> {
    let filter = if active.is_some() {
        " AND active = $3"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {PRODUCT_COLUMNS} FROM products WHERE sku > $1{filter} ORDER BY sku LIMIT $2"
    );
    let mut query = sqlx::query_as::<_, ProductRow>(&sql)
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(page.fetch_limit());
    if let Some(active) = active {
        query = query.bind(i64::from(active));
    }
    let rows = query.fetch_all(connection).await?;
    let mut products: Vec<pb::Product> = rows.into_iter().map(Into::into).collect();
    let next_page_token = page.finish(&mut products, |product| product.sku.clone());
    Ok(pb::ListProductsResponse {
        products,
        next_page_token,
    })
}

/// Applies `patch`; the product as it is afterwards.
pub async fn update_product(
    connection: &mut AnyConnection,
    patch: &ProductPatch,
) -> Result<pb::Product, Error> {
    let current = get_product(connection, &patch.sku).await?;
    let Some(price) = current.price else {
        let problem = format!("product {} has no price in the database", current.sku);
        return Err(sqlx::Error::Decode(problem.into()).into());
    };
    let row: ProductRow = sqlx::query_as(&format!(
        "UPDATE products SET title = $2, description = $3, price_currency_code = $4, \
         price_minor_units = $5, active = $6, update_time = $7 WHERE sku = $1 \
         RETURNING {PRODUCT_COLUMNS}"
    ))
    .bind(patch.sku.as_str())
    .bind(patch.title.as_ref().unwrap_or(&current.title))
    .bind(patch.description.as_ref().unwrap_or(&current.description))
    .bind(
        patch
            .price
            .as_ref()
            .map_or(&price.currency_code, |price| &price.currency_code),
    )
    .bind(
        patch
            .price
            .as_ref()
            .map_or(price.minor_units, |price| price.minor_units),
    )
    .bind(i64::from(patch.active.unwrap_or(current.active)))
    .bind(now_micros())
    .fetch_one(connection)
    .await?;
    Ok(row.into())
}

/// The stock of one product.
pub async fn get_stock(connection: &mut AnyConnection, sku: &Sku) -> Result<pb::StockLevel, Error> {
    stock_row(connection, sku)
        .await?
        .map(Into::into)
        .ok_or_else(|| Error::ProductNotFound(sku.as_str().to_owned()))
}

async fn stock_row(
    connection: &mut AnyConnection,
    sku: &Sku,
) -> Result<Option<StockRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {STOCK_COLUMNS} FROM stock WHERE sku = $1"))
        .bind(sku.as_str())
        .fetch_optional(connection)
        .await
}

/// Stock levels by SKU, in the order asked; ProductNotFound names the first unknown SKU.
pub async fn batch_get_stock(
    connection: &mut AnyConnection,
    skus: &[Sku],
) -> Result<Vec<pb::StockLevel>, Error> {
    let select = format!("SELECT {STOCK_COLUMNS} FROM stock WHERE sku IN");
    by_sku(connection, &select, skus, |row: &StockRow| &row.sku).await
}

/// Rows of `select` for `skus`, in order, or ProductNotFound for the first unknown SKU.
async fn by_sku<R, T>(
    connection: &mut AnyConnection,
    select: &str,
    skus: &[Sku],
    sku_of: impl Fn(&R) -> &str,
) -> Result<Vec<T>, Error>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin + Clone + Into<T>,
{
    let keys: Vec<&str> = skus.iter().map(Sku::as_str).collect();
    let rows = fetch_by_keys(connection, select, &keys, None, sku_of, |sku| {
        Error::ProductNotFound(sku.to_owned())
    })
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Adds `change.delta` to on_hand, never below the units reserved nor above an int32.
pub async fn change_on_hand(
    connection: &mut AnyConnection,
    change: &StockChange,
) -> Result<pb::StockLevel, Error> {
    let row: Option<StockRow> = sqlx::query_as(&format!(
        "UPDATE stock SET on_hand = on_hand + $2 \
         WHERE sku = $1 AND on_hand + $2 >= reserved AND on_hand + $2 <= $3 \
         RETURNING {STOCK_COLUMNS}"
    ))
    .bind(change.sku.as_str())
    .bind(change.delta)
    .bind(MAX_ON_HAND)
    .fetch_optional(&mut *connection)
    .await?;
    if let Some(row) = row {
        return Ok(row.into());
    }
    let sku = change.sku.as_str().to_owned();
    match stock_row(connection, &change.sku).await? {
        None => Err(Error::ProductNotFound(sku)),
        Some(row) if row.on_hand + change.delta < row.reserved => Err(Error::BelowReserved {
            sku,
            reserved: row.reserved,
        }),
        Some(_) => Err(Error::StockLimit(sku)),
    }
}

/// A reservation and whether this call made it.
pub struct Reserved {
    /// The reservation.
    pub reservation: pb::Reservation,
    /// False when a reservation with this id existed and was returned as it is.
    pub created: bool,
}

/// Holds every line of `reservation` or none: InsufficientStock names every short SKU, and the
/// caller's transaction, dropped on the error, undoes the lines already held. A reservation with
/// this id that exists already is returned as it is.
pub async fn reserve(
    connection: &mut AnyConnection,
    reservation: &NewReservation,
) -> Result<Reserved, Error> {
    let id = &reservation.id;
    let now = now_micros();
    // The row first: a concurrent reservation under the same id waits here, then finds it.
    let inserted: Option<(String,)> = sqlx::query_as(
        "INSERT INTO reservations (reservation_id, status, create_time, update_time) \
         VALUES ($1, $2, $3, $3) ON CONFLICT (reservation_id) DO NOTHING RETURNING reservation_id",
    )
    .bind(id.as_str())
    .bind(status_name(pb::ReservationStatus::Reserved))
    .bind(now)
    .fetch_optional(&mut *connection)
    .await?;
    if inserted.is_none() {
        return Ok(Reserved {
            reservation: get_reservation(connection, id).await?,
            created: false,
        });
    }

    let mut in_sku_order: Vec<_> = reservation.lines.iter().collect();
    in_sku_order.sort_by(|a, b| a.sku.cmp(&b.sku));
    let mut shortages = Vec::new();
    for line in in_sku_order {
        if shortages.is_empty() {
            let held: Option<(String,)> = sqlx::query_as(
                "UPDATE stock SET reserved = reserved + $2 \
                 WHERE sku = $1 AND on_hand - reserved >= $2 RETURNING sku",
            )
            .bind(line.sku.as_str())
            .bind(line.quantity)
            .fetch_optional(&mut *connection)
            .await?;
            if held.is_some() {
                continue;
            }
        }
        // Short, or unknown; after the first short line only look, to name every short SKU.
        let Some(stock) = stock_row(connection, &line.sku).await? else {
            return Err(Error::ProductNotFound(line.sku.as_str().to_owned()));
        };
        let available = stock.on_hand - stock.reserved;
        if available < line.quantity {
            shortages.push(Shortage {
                sku: stock.sku,
                requested: line.quantity,
                available,
            });
        }
    }
    if !shortages.is_empty() {
        return Err(Error::InsufficientStock(shortages));
    }
    let rows: Vec<String> = (0..reservation.lines.len())
        .map(|row| format!("({})", placeholders(row * 4 + 1, 4)))
        .collect();
    let sql = format!(
        "INSERT INTO reservation_lines (reservation_id, line_number, sku, quantity) VALUES {}",
        rows.join(", ")
    );
    let mut insert = sqlx::query(&sql);
    for (number, line) in reservation.lines.iter().enumerate() {
        insert = insert
            .bind(id.as_str())
            .bind(i64::try_from(number).unwrap_or(i64::MAX))
            .bind(line.sku.as_str())
            .bind(line.quantity);
    }
    insert.execute(&mut *connection).await?;
    // What was just written, as a read would answer it.
    let row = ReservationRow {
        status: status_name(pb::ReservationStatus::Reserved).to_owned(),
        create_time: now,
        update_time: now,
    };
    let lines = reservation.lines.iter().map(|line| LineRow {
        sku: line.sku.as_str().to_owned(),
        quantity: line.quantity,
    });
    Ok(Reserved {
        reservation: row.into_reservation(id, lines),
        created: true,
    })
}

/// How a RESERVED reservation ends.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    /// Sold: on_hand and reserved both fall.
    Commit,
    /// Cancelled: reserved falls, the units are available again.
    Release,
}

impl Outcome {
    fn status(self) -> pb::ReservationStatus {
        match self {
            Self::Commit => pb::ReservationStatus::Committed,
            Self::Release => pb::ReservationStatus::Released,
        }
    }
}

/// Ends a RESERVED reservation with `outcome` and moves its stock; returns it and whether it
/// changed (a reservation already ended the same way is returned unchanged).
pub async fn finish_reservation(
    connection: &mut AnyConnection,
    id: &ReservationId,
    outcome: Outcome,
) -> Result<(pb::Reservation, bool), Error> {
    let status = outcome.status();
    let updated: Option<ReservationRow> = sqlx::query_as(
        "UPDATE reservations SET status = $2, update_time = $3 \
         WHERE reservation_id = $1 AND status = $4 RETURNING status, create_time, update_time",
    )
    .bind(id.as_str())
    .bind(status_name(status))
    .bind(now_micros())
    .bind(status_name(pb::ReservationStatus::Reserved))
    .fetch_optional(&mut *connection)
    .await?;
    let Some(updated) = updated else {
        let current = get_reservation(connection, id).await?;
        return match current.status() {
            same if same == status => Ok((current, false)),
            other => Err(Error::ReservationClosed {
                id: id.as_str().to_owned(),
                status: status_name(other),
            }),
        };
    };
    let reservation = updated.into_reservation(id, lines_of(connection, id).await?);
    let mut in_sku_order = reservation.lines.clone();
    in_sku_order.sort_by(|a, b| a.sku.cmp(&b.sku));
    let sql = match outcome {
        Outcome::Commit => {
            "UPDATE stock SET on_hand = on_hand - $2, reserved = reserved - $2 WHERE sku = $1"
        }
        Outcome::Release => "UPDATE stock SET reserved = reserved - $2 WHERE sku = $1",
    };
    for line in in_sku_order {
        sqlx::query(sql)
            .bind(&line.sku)
            .bind(i64::from(line.quantity))
            .execute(&mut *connection)
            .await?;
    }
    Ok((reservation, true))
}

#[derive(sqlx::FromRow)]
struct ReservationRow {
    status: String,
    create_time: i64,
    update_time: i64,
}

#[derive(sqlx::FromRow)]
struct LineRow {
    sku: String,
    quantity: i64,
}

/// One reservation with its lines in the client's order.
pub async fn get_reservation(
    connection: &mut AnyConnection,
    id: &ReservationId,
) -> Result<pb::Reservation, Error> {
    let row: Option<ReservationRow> = sqlx::query_as(
        "SELECT status, create_time, update_time FROM reservations WHERE reservation_id = $1",
    )
    .bind(id.as_str())
    .fetch_optional(&mut *connection)
    .await?;
    let row = row.ok_or_else(|| Error::ReservationNotFound(id.as_str().to_owned()))?;
    Ok(row.into_reservation(id, lines_of(connection, id).await?))
}

/// The lines of reservation `id`, in the client's order.
async fn lines_of(
    connection: &mut AnyConnection,
    id: &ReservationId,
) -> Result<Vec<LineRow>, Error> {
    Ok(sqlx::query_as(
        "SELECT sku, quantity FROM reservation_lines WHERE reservation_id = $1 \
         ORDER BY line_number",
    )
    .bind(id.as_str())
    .fetch_all(connection)
    .await?)
}

impl ReservationRow {
    /// Reservation `id` as this row and its `lines` store it.
    fn into_reservation(
        self,
        id: &ReservationId,
        lines: impl IntoIterator<Item = LineRow>,
    ) -> pb::Reservation {
        let status =
            pb::ReservationStatus::from_str_name(&format!("RESERVATION_STATUS_{}", self.status))
                .unwrap_or(pb::ReservationStatus::Unspecified);
        pb::Reservation {
            reservation_id: id.as_str().to_owned(),
            lines: lines
                .into_iter()
                .map(|line| pb::ReservationLine {
                    sku: line.sku,
                    quantity: i32::try_from(line.quantity).unwrap_or(i32::MAX),
                })
                .collect(),
            status: status.into(),
            create_time: Some(timestamp_from_micros(self.create_time)),
            update_time: Some(timestamp_from_micros(self.update_time)),
        }
    }
}

/// How a status is stored: its proto name without the prefix.
fn status_name(status: pb::ReservationStatus) -> &'static str {
    status
        .as_str_name()
        .strip_prefix("RESERVATION_STATUS_")
        .unwrap_or("UNSPECIFIED")
}
