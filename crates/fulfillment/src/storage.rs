//! Shipments and their lines. All SQL of this service is here.
//!
//! A status change is one conditional `UPDATE ... WHERE status IN (the statuses it may follow)`,
//! so two concurrent moves of one shipment can never both apply: the loser finds the row changed
//! and is answered from what it finds.

use std::collections::HashMap;

use crowdcrunch_proto::fulfillment::v1 as pb;
use crowdcrunch_proto::r#type::v1::Address;
use crowdcrunch_runtime::storage::{
    OwnedBy, fetch_by_keys, fetch_page, now_micros, placeholders, timestamp_from_micros,
};
use sqlx::AnyConnection;

use crate::domain::{
    NewShipment, OrderId, ShipmentId, ShipmentQuery, ShipmentStatus, StatusChange,
};
use crate::error::Error;

const COLUMNS: &str = "id, order_id, customer_id, return_id, status, tracking_number, recipient, \
                       line1, line2, city, region, postal_code, country_code, create_time, \
                       update_time";

#[derive(Clone, sqlx::FromRow)]
struct ShipmentRow {
    id: String,
    order_id: String,
    customer_id: String,
    return_id: String,
    status: String,
    tracking_number: String,
    recipient: String,
    line1: String,
    line2: String,
    city: String,
    region: String,
    postal_code: String,
    country_code: String,
    create_time: i64,
    update_time: i64,
}

impl ShipmentRow {
    fn status(&self) -> Result<ShipmentStatus, Error> {
        ShipmentStatus::parse(&self.status).ok_or_else(|| {
            sqlx::Error::Decode(
                format!("unknown shipment status {:?} in the database", self.status).into(),
            )
            .into()
        })
    }

    fn into_proto(self, lines: Vec<pb::ShipmentLine>) -> Result<pb::Shipment, Error> {
        let status = self.status()?;
        Ok(pb::Shipment {
            id: self.id,
            order_id: self.order_id,
            customer_id: self.customer_id,
            return_id: self.return_id,
            lines,
            address: Some(Address {
                recipient: self.recipient,
                line1: self.line1,
                line2: self.line2,
                city: self.city,
                region: self.region,
                postal_code: self.postal_code,
                country_code: self.country_code,
            }),
            status: status.to_proto().into(),
            tracking_number: self.tracking_number,
            create_time: Some(timestamp_from_micros(self.create_time)),
            update_time: Some(timestamp_from_micros(self.update_time)),
        })
    }
}

#[derive(sqlx::FromRow)]
struct LineRow {
    shipment_id: String,
    sku: String,
    quantity: i64,
}

/// Stores a new PENDING shipment with its lines.
pub async fn insert(
    connection: &mut AnyConnection,
    shipment: &NewShipment,
) -> Result<pb::Shipment, Error> {
    let id = uuid::Uuid::now_v7().to_string();
    let address = shipment.address.as_proto();
    let row: ShipmentRow = sqlx::query_as(&format!(
        "INSERT INTO shipments (id, order_id, return_id, status, tracking_number, recipient, \
         line1, line2, city, region, postal_code, country_code, create_time, update_time, \
         customer_id) \
         VALUES ($1, $2, $3, $4, '', $5, $6, $7, $8, $9, $10, $11, $12, $12, $13) \
         RETURNING {COLUMNS}"
    ))
    .bind(&id)
    .bind(shipment.order_id.as_str())
    .bind(shipment.return_id.as_deref().unwrap_or_default())
    .bind(ShipmentStatus::Pending.as_str())
    .bind(&address.recipient)
    .bind(&address.line1)
    .bind(&address.line2)
    .bind(&address.city)
    .bind(&address.region)
    .bind(&address.postal_code)
    .bind(&address.country_code)
    .bind(now_micros())
    .bind(&shipment.customer_id)
    .fetch_one(&mut *connection)
    .await?;
    let mut lines = Vec::with_capacity(shipment.lines.len());
    for (position, line) in (0_i64..).zip(&shipment.lines) {
        sqlx::query(
            "INSERT INTO shipment_lines (shipment_id, position, sku, quantity) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&id)
        .bind(position)
        .bind(line.sku.as_str())
        .bind(i64::from(line.quantity))
        .execute(&mut *connection)
        .await?;
        lines.push(pb::ShipmentLine {
            sku: line.sku.as_str().to_owned(),
            quantity: line.quantity,
        });
    }
    row.into_proto(lines)
}

/// The lines of the shipments `ids`, in their order, by shipment id.
async fn lines_of(
    connection: &mut AnyConnection,
    ids: &[&str],
) -> Result<HashMap<String, Vec<pb::ShipmentLine>>, Error> {
    let mut lines: HashMap<String, Vec<pb::ShipmentLine>> = HashMap::new();
    if ids.is_empty() {
        return Ok(lines);
    }
    let sql = format!(
        "SELECT shipment_id, sku, quantity FROM shipment_lines WHERE shipment_id IN ({}) \
         ORDER BY shipment_id, position",
        placeholders(1, ids.len())
    );
    let mut query = sqlx::query_as::<_, LineRow>(&sql);
    for id in ids {
        query = query.bind(*id);
    }
    for row in query.fetch_all(connection).await? {
        let quantity = i32::try_from(row.quantity)
            .map_err(|_| sqlx::Error::Decode("a line quantity out of range".into()))?;
        lines
            .entry(row.shipment_id)
            .or_default()
            .push(pb::ShipmentLine {
                sku: row.sku,
                quantity,
            });
    }
    Ok(lines)
}

/// `rows` with their lines, in the same order (a row may come more than once).
async fn with_lines(
    connection: &mut AnyConnection,
    rows: Vec<ShipmentRow>,
) -> Result<Vec<pb::Shipment>, Error> {
    let ids: Vec<&str> = rows.iter().map(|row| row.id.as_str()).collect();
    let lines = lines_of(connection, &ids).await?;
    rows.into_iter()
        .map(|row| {
            let own = lines
                .get(&row.id)
                .cloned()
                .ok_or_else(|| no_lines(&row.id))?;
            row.into_proto(own)
        })
        .collect()
}

/// `row` with its lines.
async fn with_own_lines(
    connection: &mut AnyConnection,
    row: ShipmentRow,
) -> Result<pb::Shipment, Error> {
    let lines = lines_of(connection, &[row.id.as_str()])
        .await?
        .remove(&row.id)
        .ok_or_else(|| no_lines(&row.id))?;
    row.into_proto(lines)
}

/// A shipment always has a line; one stored without is a broken database, not an empty parcel.
fn no_lines(id: &str) -> Error {
    sqlx::Error::Decode(format!("shipment {id} has no lines in the database").into()).into()
}

/// The shipments a caller scoped to `customer_id` may read: their own.
pub fn owned_by(customer_id: Option<&str>) -> Option<OwnedBy<'_>> {
    OwnedBy::scope("customer_id", customer_id)
}

async fn get_row(
    connection: &mut AnyConnection,
    id: &ShipmentId,
    owned_by: Option<OwnedBy<'_>>,
) -> Result<ShipmentRow, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM shipments WHERE id = $1{}",
        OwnedBy::condition(owned_by, 2)
    );
    let query = sqlx::query_as::<_, ShipmentRow>(&sql).bind(id.as_str());
    let row = OwnedBy::bind(owned_by, query)
        .fetch_optional(connection)
        .await?;
    row.ok_or_else(|| Error::NotFound(id.as_str().to_owned()))
}

/// One shipment, when `owned_by` lets the caller see it (NotFound otherwise, as for an unknown
/// id).
pub async fn get(
    connection: &mut AnyConnection,
    id: &ShipmentId,
    owned_by: Option<OwnedBy<'_>>,
) -> Result<pb::Shipment, Error> {
    let row = get_row(connection, id, owned_by).await?;
    with_own_lines(connection, row).await
}

/// Shipments by id, in the order asked (duplicates answered in place); NotFound names the first
/// unknown id (or one `owned_by` hides).
pub async fn batch_get(
    connection: &mut AnyConnection,
    ids: &[ShipmentId],
    owned_by: Option<OwnedBy<'_>>,
) -> Result<Vec<pb::Shipment>, Error> {
    let keys: Vec<&str> = ids.iter().map(ShipmentId::as_str).collect();
    let select = format!("SELECT {COLUMNS} FROM shipments WHERE id IN");
    let rows = fetch_by_keys(
        connection,
        &select,
        &keys,
        owned_by,
        |row: &ShipmentRow| &row.id,
        |id| Error::NotFound(id.to_owned()),
    )
    .await?;
    with_lines(connection, rows).await
}

/// One page of shipments (of some orders, or all; only those `owned_by` lets the caller see) in
/// creation order (ids are UUIDv7).
pub async fn list(
    connection: &mut AnyConnection,
    query: &ShipmentQuery,
    owned_by: Option<OwnedBy<'_>>,
) -> Result<pb::ListShipmentsResponse, Error> {
    let order_ids: Vec<&str> = query.order_ids.iter().map(OrderId::as_str).collect();
    let select = format!("SELECT {COLUMNS} FROM shipments");
    let rows: Vec<ShipmentRow> = fetch_page(
        &mut *connection,
        &select,
        &query.page,
        "order_id",
        &order_ids,
        owned_by,
    )
    .await?;
    let mut shipments = with_lines(connection, rows).await?;
    let next_page_token = query
        .page
        .finish(&mut shipments, |shipment| shipment.id.clone());
    Ok(pb::ListShipmentsResponse {
        shipments,
        next_page_token,
    })
}

/// A shipment after a status change, and whether it moved now (or already had the status).
#[derive(Debug)]
pub struct Moved {
    /// The shipment as it is now.
    pub shipment: pb::Shipment,
    /// False when the shipment already had the status and was left as it was.
    pub changed: bool,
}

/// Moves a shipment one step forward to `change.to`. Asking for the status it already has
/// returns it unchanged; any other move is WrongStatus.
pub async fn update_status(
    connection: &mut AnyConnection,
    change: &StatusChange,
) -> Result<Moved, Error> {
    let sources = change.to.sources();
    if !sources.is_empty() {
        let sql = format!(
            "UPDATE shipments SET status = $2, update_time = $3, \
             tracking_number = CASE WHEN $4 = '' THEN tracking_number ELSE $4 END \
             WHERE id = $1 AND status IN ({}) RETURNING {COLUMNS}",
            placeholders(5, sources.len())
        );
        let mut update = sqlx::query_as::<_, ShipmentRow>(&sql)
            .bind(change.id.as_str())
            .bind(change.to.as_str())
            .bind(now_micros())
            .bind(change.tracking_number.as_deref().unwrap_or_default());
        for source in sources {
            update = update.bind(source.as_str());
        }
        if let Some(row) = update.fetch_optional(&mut *connection).await? {
            return Ok(Moved {
                shipment: with_own_lines(connection, row).await?,
                changed: true,
            });
        }
    }
    let current = get_row(connection, &change.id, None).await?;
    let status = current.status()?;
    if status != change.to {
        return Err(Error::WrongStatus {
            id: current.id,
            status,
            to: change.to,
        });
    }
    Ok(Moved {
        shipment: with_own_lines(connection, current).await?,
        changed: false,
    })
}
