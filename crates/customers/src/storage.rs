//! The customers table. All SQL of this service is here.

use crowdcrunch_proto::customers::v1 as pb;
use crowdcrunch_runtime::pagination::PageRequest;
use crowdcrunch_runtime::storage::{OwnedBy, fetch_by_keys, now_micros, timestamp_from_micros};
use sqlx::AnyConnection;

use crate::domain::{CustomerId, CustomerPatch, Email, NewCustomer};
use crate::error::Error;

const COLUMNS: &str = "id, email, display_name, create_time, update_time";

#[derive(sqlx::FromRow, Clone)]
struct CustomerRow {
    id: String,
    email: String,
    display_name: String,
    create_time: i64,
    update_time: i64,
}

impl From<CustomerRow> for pb::Customer {
    fn from(row: CustomerRow) -> Self {
        Self {
            id: row.id,
            email: row.email,
            display_name: row.display_name,
            create_time: Some(timestamp_from_micros(row.create_time)),
            update_time: Some(timestamp_from_micros(row.update_time)),
        }
    }
}

/// Inserts a new customer; EmailTaken when the email (ignoring case) is in use.
pub async fn insert(
    connection: &mut AnyConnection,
    customer: &NewCustomer,
) -> Result<pb::Customer, Error> {
    ensure_email_free(connection, &customer.email, None).await?;
    let now = now_micros();
    let row: CustomerRow = sqlx::query_as(&format!(
        "INSERT INTO customers (id, email, email_key, display_name, create_time, update_time) \
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING {COLUMNS}"
    ))
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(customer.email.address())
    .bind(customer.email.key())
    .bind(customer.display_name.as_str())
    .bind(now)
    .fetch_one(connection)
    .await
    .map_err(|error| email_conflict(error, customer.email.address()))?;
    Ok(row.into())
}

/// The rows a caller scoped to `customer_id` may read: their own record alone.
pub fn owned_by(customer_id: Option<&str>) -> Option<OwnedBy<'_>> {
    OwnedBy::scope("id", customer_id)
}

/// One customer, when `owned_by` lets the caller see it (NotFound otherwise, as for an unknown id).
pub async fn get(
    connection: &mut AnyConnection,
    id: &CustomerId,
    owned_by: Option<OwnedBy<'_>>,
) -> Result<pb::Customer, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM customers WHERE id = $1{}",
        OwnedBy::condition(owned_by, 2)
    );
    let query = sqlx::query_as::<_, CustomerRow>(&sql).bind(id.as_str());
    let row = OwnedBy::bind(owned_by, query)
        .fetch_optional(connection)
        .await?;
    row.map(Into::into)
        .ok_or_else(|| Error::NotFound(id.as_str().to_owned()))
}

/// Customers by id, in the order asked (duplicates answered in place); NotFound names the first
/// unknown id (or one `owned_by` hides).
pub async fn batch_get(
    connection: &mut AnyConnection,
    ids: &[CustomerId],
    owned_by: Option<OwnedBy<'_>>,
) -> Result<Vec<pb::Customer>, Error> {
    let keys: Vec<&str> = ids.iter().map(CustomerId::as_str).collect();
    let select = format!("SELECT {COLUMNS} FROM customers WHERE id IN");
    let rows = fetch_by_keys(
        connection,
        &select,
        &keys,
        owned_by,
        |row: &CustomerRow| &row.id,
        |id| Error::NotFound(id.to_owned()),
    )
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// One page of customers in creation order (ids are time-ordered UUIDv7).
pub async fn list(
    connection: &mut AnyConnection,
    page: &PageRequest,
) -> Result<pb::ListCustomersResponse, Error> {
    let rows: Vec<CustomerRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM customers WHERE id > $1 ORDER BY id LIMIT $2"
    ))
    .bind(page.after.as_deref().unwrap_or(""))
    .bind(page.fetch_limit())
    .fetch_all(connection)
    .await?;
    let mut customers: Vec<pb::Customer> = rows.into_iter().map(Into::into).collect();
    let next_page_token = page.finish(&mut customers, |customer| customer.id.clone());
    Ok(pb::ListCustomersResponse {
        customers,
        next_page_token,
    })
}

/// Applies `patch` to a customer `owned_by` lets the caller see (NotFound otherwise, and nothing
/// changes); the customer as it is afterwards.
pub async fn update(
    connection: &mut AnyConnection,
    patch: &CustomerPatch,
    owned_by: Option<OwnedBy<'_>>,
) -> Result<pb::Customer, Error> {
    let current = get(connection, &patch.id, owned_by).await?;
    if let Some(email) = &patch.email {
        ensure_email_free(connection, email, Some(&patch.id)).await?;
    }
    let email = patch.email.as_ref();
    let row: CustomerRow = sqlx::query_as(&format!(
        "UPDATE customers SET email = $2, email_key = $3, display_name = $4, update_time = $5 \
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(patch.id.as_str())
    .bind(email.map_or(current.email.as_str(), |email| email.address()))
    .bind(email.map_or(current.email.to_lowercase(), |email| email.key().to_owned()))
    .bind(
        patch
            .display_name
            .as_ref()
            .map_or(current.display_name.as_str(), |name| name.as_str()),
    )
    .bind(now_micros())
    .fetch_one(connection)
    .await
    .map_err(|error| {
        email_conflict(
            error,
            email.map_or(current.email.as_str(), |email| email.address()),
        )
    })?;
    Ok(row.into())
}

/// Ok when no customer but `except` has `email` (ignoring case), else EmailTaken.
async fn ensure_email_free(
    connection: &mut AnyConnection,
    email: &Email,
    except: Option<&CustomerId>,
) -> Result<(), Error> {
    let owner: Option<(String,)> = sqlx::query_as("SELECT id FROM customers WHERE email_key = $1")
        .bind(email.key())
        .fetch_optional(connection)
        .await?;
    match owner {
        Some((id,)) if except.is_none_or(|except| except.as_str() != id) => {
            Err(Error::EmailTaken(email.address().to_owned()))
        }
        _ => Ok(()),
    }
}

/// A unique violation on `email_key` (a concurrent insert won) is EmailTaken; the rest is storage.
fn email_conflict(error: sqlx::Error, email: &str) -> Error {
    match &error {
        sqlx::Error::Database(database_error) if database_error.is_unique_violation() => {
            Error::EmailTaken(email.to_owned())
        }
        _ => error.into(),
    }
}
