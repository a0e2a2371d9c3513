//! AIP-155 request ids: a mutation that carries a `request_id` records its answer in the same
//! transaction as its change, and a replay with the same id returns that first answer and changes
//! nothing. A different request under an id already used is refused.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use prost::Message;
use sqlx::{AnyConnection, Connection as _};

use crate::status::FieldViolation;
use crate::storage::{Database, StorageError, now_micros};

/// The longest request id accepted.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// A client-supplied request id, checked: 1 to 128 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// Parses the optional `request_id` field: empty means none.
    pub fn parse_optional(value: &str, field: &str) -> Result<Option<Self>, FieldViolation> {
        if value.is_empty() {
            return Ok(None);
        }
        if value.len() > MAX_REQUEST_ID_LEN || !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(FieldViolation::new(
                field,
                format!(
                    "must be at most {MAX_REQUEST_ID_LEN} visible ASCII characters (a UUID is ideal)"
                ),
            ));
        }
        Ok(Some(Self(value.to_owned())))
    }

    /// A request id derived by a server from the ids of what it acts on (e.g. `order/capture`).
    pub fn derived(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The idempotency key of one call: the operation, the request id and the request's fingerprint.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    operation: &'static str,
    request_id: RequestId,
    fingerprint: String,
}

impl IdempotencyKey {
    /// The key of `request` (its encoding, request id included, is its fingerprint).
    pub fn new(operation: &'static str, request_id: RequestId, request: &impl Message) -> Self {
        Self {
            operation,
            request_id,
            fingerprint: STANDARD.encode(request.encode_to_vec()),
        }
    }
}

/// A replay could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    /// The request id was used before for a different request.
    #[error("request id {request_id} was already used for a different {operation} request")]
    Reused {
        /// The operation.
        operation: &'static str,
        /// The request id.
        request_id: String,
    },
    /// The stored answer does not decode (corruption or an incompatible change).
    #[error("stored answer for request id {0} does not decode")]
    Corrupt(String),
    /// The database failed.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
}

impl IdempotencyError {
    /// The status a client sees: a reused id is bad input on `request_id`; the rest is internal.
    pub fn into_status(self, domain: &str) -> tonic::Status {
        match self {
            Self::Reused { .. } => crate::status::invalid_argument(
                domain,
                &[FieldViolation::new(
                    "request_id",
                    format!("{self}; use a new request id for a new request"),
                )],
            ),
            Self::Corrupt(_) | Self::Sqlx(_) => crate::status::internal(domain, &self),
        }
    }
}

/// The answer recorded for `key`, if this request was already served.
pub async fn replay<M: Message + Default>(
    connection: &mut AnyConnection,
    key: &IdempotencyKey,
) -> Result<Option<M>, IdempotencyError> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT request_fingerprint, response FROM runtime_idempotency WHERE operation = $1 AND request_id = $2",
    )
    .bind(key.operation)
    .bind(key.request_id.as_str())
    .fetch_optional(&mut *connection)
    .await?;
    let Some((fingerprint, response)) = row else {
        return Ok(None);
    };
    if fingerprint != key.fingerprint {
        return Err(IdempotencyError::Reused {
            operation: key.operation,
            request_id: key.request_id.as_str().to_owned(),
        });
    }
    let corrupt = || IdempotencyError::Corrupt(key.request_id.as_str().to_owned());
    let bytes = STANDARD.decode(response).map_err(|_| corrupt())?;
    M::decode(bytes.as_slice()).map(Some).map_err(|_| corrupt())
}

/// Records `response` as the answer to `key`, inside the transaction of the change it answers.
/// A concurrent first use of the same key makes this insert (and so the transaction) fail.
pub async fn record<M: Message>(
    connection: &mut AnyConnection,
    key: &IdempotencyKey,
    response: &M,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO runtime_idempotency (operation, request_id, request_fingerprint, response, create_time) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(key.operation)
    .bind(key.request_id.as_str())
    .bind(&key.fingerprint)
    .bind(STANDARD.encode(response.encode_to_vec()))
    .bind(now_micros())
    .execute(connection)
    .await?;
    Ok(())
}

/// Runs `work` in a transaction under the optional idempotency `key`: a replay returns the first
/// answer without running `work`; otherwise `work`'s answer is recorded with its change and
/// committed. When a concurrent first use of the same key wins the race, its answer is returned.
pub async fn run<M, E, F>(
    database: &Database,
    key: Option<&IdempotencyKey>,
    work: F,
) -> Result<M, E>
where
    M: Message + Default,
    E: From<IdempotencyError> + From<StorageError>,
    F: AsyncFnOnce(&mut AnyConnection) -> Result<M, E>,
{
    let mut connection = database.acquire().await.map_err(StorageError::from)?;
    let committed = {
        let mut transaction = connection.begin().await.map_err(StorageError::from)?;
        if let Some(key) = key
            && let Some(answer) = replay(&mut transaction, key).await?
        {
            return Ok(answer);
        }
        match work(&mut transaction).await {
            Ok(answer) => {
                let recorded = match key {
                    Some(key) => record(&mut transaction, key, &answer).await,
                    None => Ok(()),
                };
                match recorded {
                    Ok(()) => transaction.commit().await.map(|()| answer),
                    Err(error) => Err(error),
                }
                .map_err(|error| StorageError::from(error).into())
            }
            // Dropped, the transaction rolls back.
            Err(error) => Err(error),
        }
    };
    // The connection goes back before a race winner is looked for (on SQLite it is the only one).
    drop(connection);
    match committed {
        Ok(answer) => Ok(answer),
        Err(error) => match race_winner(database, key).await? {
            Some(answer) => Ok(answer),
            None => Err(error),
        },
    }
}

/// After a failed attempt: the answer a concurrent call with the same key recorded, if any.
async fn race_winner<M: Message + Default>(
    database: &Database,
    key: Option<&IdempotencyKey>,
) -> Result<Option<M>, IdempotencyError> {
    let Some(key) = key else { return Ok(None) };
    let mut connection = database.acquire().await?;
    replay(&mut connection, key).await
}
