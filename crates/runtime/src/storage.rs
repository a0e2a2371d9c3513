//! A service's own database: an embedded SQLite file by default, or a schema of its own in
//! PostgreSQL. One code path serves both through `sqlx::Any`; the SQL the services write is the
//! portable subset (`$1` parameters, `BIGINT`, `TEXT`, `ON CONFLICT`, `RETURNING`).
//!
//! Migrations run at start. On PostgreSQL they run under an advisory lock, so several replicas
//! starting at once migrate exactly once; on SQLite a single connection serialises all writers, so
//! conditional updates can never race.
//!
//! SQLite's one connection is held for the life of the process and taken in turn
//! ([`Database::acquire`]), not drawn from a pool: a pool pings a connection each time it hands
//! it out and again each time it takes it back, and for SQLite each ping is a round trip to the
//! connection's own thread that can detect nothing a file handle could lose.

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::{Arc, Once};
use std::time::Duration;

use secrecy::ExposeSecret as _;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, ConnectOptions as _, Connection as _, Executor as _};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::config::StorageSettings;
use crate::pagination::PageRequest;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The data directory cannot be created or written.
    #[error("cannot use data dir {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The database cannot be reached or answered with an error.
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A database name that is not a plain identifier.
    #[error("database name {0:?} must be lower-case letters, digits and underscores")]
    BadName(String),
}

/// Which database engine is behind a [`Database`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// How long a caller waits for SQLite's one connection (every caller queues for it) before the
/// database counts as unavailable.
const SQLITE_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a caller waits for a connection of PostgreSQL's pool.
const POSTGRES_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// The size of PostgreSQL's pool.
const POSTGRES_CONNECTIONS: u32 = 10;

/// The migrated connections to one service's database. Cheap to clone (it is shared).
#[derive(Debug, Clone)]
pub struct Database {
    connections: Connections,
    backend: Backend,
}

/// Where a [`Database`]'s connections come from.
#[derive(Debug, Clone)]
enum Connections {
    /// SQLite: the one connection, taken in turn.
    Shared(Arc<Mutex<AnyConnection>>),
    /// PostgreSQL: a pool.
    Pooled(AnyPool),
}

/// A connection of a [`Database`], for the caller alone until dropped: use it as
/// `&mut AnyConnection` (`&mut *connection`), and start transactions on it.
#[derive(Debug)]
pub enum DatabaseConnection {
    /// SQLite's one connection, held.
    Shared(OwnedMutexGuard<AnyConnection>),
    /// A connection drawn from PostgreSQL's pool, back to it when dropped.
    Pooled(PoolConnection<Any>),
}

impl Deref for DatabaseConnection {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        match self {
            Self::Shared(connection) => connection,
            Self::Pooled(connection) => connection,
        }
    }
}

impl DerefMut for DatabaseConnection {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            Self::Shared(connection) => connection,
            Self::Pooled(connection) => connection,
        }
    }
}

/// Tables every service has, owned by the runtime: idempotency records and the outbox.
const RUNTIME_TABLES: &str = "
CREATE TABLE IF NOT EXISTS runtime_idempotency (
    operation TEXT NOT NULL,
    request_id TEXT NOT NULL,
    request_fingerprint TEXT NOT NULL,
    response TEXT NOT NULL,
    create_time BIGINT NOT NULL,
    PRIMARY KEY (operation, request_id)
)";

impl Database {
    /// Opens (creating when missing) the database `name` and applies `migrator`.
    ///
    /// `name` is the SQLite file stem under the data dir, or the PostgreSQL schema.
    pub async fn connect(
        settings: &StorageSettings,
        name: &str,
        migrator: &Migrator,
    ) -> Result<Self, StorageError> {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(StorageError::BadName(name.to_owned()));
        }
        install_drivers();
        let database = match settings {
            StorageSettings::Sqlite { data_dir } => Self::open_sqlite(data_dir, name).await?,
            StorageSettings::Postgres { url } => {
                Self::open_postgres(url.expose_secret(), name).await?
            }
        };
        database.ensure_tables("runtime", RUNTIME_TABLES).await?;
        migrator.run(&mut *database.acquire().await?).await?;
        Ok(database)
    }

    async fn open_sqlite(data_dir: &Path, name: &str) -> Result<Self, StorageError> {
        let data_dir_error = |source| StorageError::DataDir {
            path: data_dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(data_dir_error)?;
        let probe = data_dir.join(format!(".{name}.write-test"));
        std::fs::write(&probe, b"").map_err(data_dir_error)?;
        let _ = std::fs::remove_file(&probe);

        let path = data_dir.join(format!("{name}.db"));
        let options: AnyConnectOptions = format!("sqlite://{}?mode=rwc", path.display()).parse()?;
        let mut connection =
            AnyConnection::connect_with(&options.disable_statement_logging()).await?;
        connection
            .execute(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
            )
            .await?;
        Ok(Self {
            // One connection serialises every writer: no SQLITE_BUSY, no lost update.
            connections: Connections::Shared(Arc::new(Mutex::new(connection))),
            backend: Backend::Sqlite,
        })
    }

    async fn open_postgres(url: &str, schema: &str) -> Result<Self, StorageError> {
        let options: AnyConnectOptions = url.parse()?;
        let options = options.disable_statement_logging();
        // Replicas starting together: the first creates the schema, the others wait on the lock.
        let mut connection = AnyConnection::connect_with(&options).await?;
        let mut transaction = connection.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(format!("crowdcrunch:schema:{schema}"))
            .execute(&mut *transaction)
            .await?;
        transaction
            .execute(format!("CREATE SCHEMA IF NOT EXISTS {schema}").as_str())
            .await?;
        transaction.commit().await?;
        connection.close().await?;

        let search_path = format!("SET search_path TO {schema}");
        let pool = AnyPoolOptions::new()
            .max_connections(POSTGRES_CONNECTIONS)
            .acquire_timeout(POSTGRES_ACQUIRE_TIMEOUT)
            .after_connect(move |connection, _| {
                let search_path = search_path.clone();
                Box::pin(async move {
                    connection.execute(search_path.as_str()).await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Self {
            connections: Connections::Pooled(pool),
            backend: Backend::Postgres,
        })
    }

    /// Runs `ddl` (idempotent `CREATE ... IF NOT EXISTS` statements of infrastructure tables that
    /// several crates share, such as the outbox) exactly once at a time: under a PostgreSQL advisory
    /// lock named by `owner`, so that replicas starting together do not race.
    pub async fn ensure_tables(&self, owner: &str, ddl: &str) -> Result<(), StorageError> {
        let mut connection = self.acquire().await?;
        if self.backend == Backend::Sqlite {
            connection.execute(ddl).await?;
            return Ok(());
        }
        let mut transaction = connection.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(format!("crowdcrunch:tables:{owner}"))
            .execute(&mut *transaction)
            .await?;
        transaction.execute(ddl).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Adds `column` (with its SQL `definition`, e.g. `TEXT NOT NULL DEFAULT ''`) to `table` when
    /// the table lacks it: how infrastructure tables grow a column in databases created before it.
    /// Serialised per `owner` like [`Self::ensure_tables`].
    pub async fn ensure_column(
        &self,
        owner: &str,
        table: &str,
        column: &str,
        definition: &str,
    ) -> Result<(), StorageError> {
        let mut connection = self.acquire().await?;
        let add = format!("ALTER TABLE {table} ADD COLUMN {column} {definition}");
        if self.backend == Backend::Sqlite {
            let present: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM pragma_table_info($1) WHERE name = $2")
                    .bind(table)
                    .bind(column)
                    .fetch_one(&mut *connection)
                    .await?;
            if present == 0 {
                connection.execute(add.as_str()).await?;
            }
            return Ok(());
        }
        let mut transaction = connection.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(format!("crowdcrunch:tables:{owner}"))
            .execute(&mut *transaction)
            .await?;
        let add = format!("ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {definition}");
        transaction.execute(add.as_str()).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// A connection for the caller alone, waiting while all are in use (then `PoolTimedOut`):
    /// SQLite has one, PostgreSQL a pool of ten.
    pub async fn acquire(&self) -> Result<DatabaseConnection, sqlx::Error> {
        match &self.connections {
            Connections::Shared(connection) => {
                tokio::time::timeout(SQLITE_ACQUIRE_TIMEOUT, Arc::clone(connection).lock_owned())
                    .await
                    .map(DatabaseConnection::Shared)
                    .map_err(|_| sqlx::Error::PoolTimedOut)
            }
            Connections::Pooled(pool) => pool.acquire().await.map(DatabaseConnection::Pooled),
        }
    }

    /// How many connections there are at most.
    pub fn max_connections(&self) -> usize {
        match &self.connections {
            Connections::Shared(_) => 1,
            Connections::Pooled(pool) => {
                usize::try_from(pool.options().get_max_connections()).unwrap_or(usize::MAX)
            }
        }
    }

    /// How many connections callers hold now.
    pub fn connections_in_use(&self) -> usize {
        match &self.connections {
            Connections::Shared(connection) => usize::from(connection.try_lock().is_err()),
            Connections::Pooled(pool) => {
                // Read one after the other, the two may disagree for a moment.
                usize::try_from(pool.size())
                    .unwrap_or(usize::MAX)
                    .saturating_sub(pool.num_idle())
            }
        }
    }

    /// The engine behind this database.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A readiness check that holds while the database answers.
    pub fn readiness(&self) -> crate::server::Readiness {
        let database = self.clone();
        crate::server::Readiness::new(move || {
            let database = database.clone();
            async move { database.ping().await.is_ok() }
        })
    }

    /// Checks that the database answers (for readiness).
    pub async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1")
            .execute(&mut *self.acquire().await?)
            .await?;
        Ok(())
    }
}

fn install_drivers() {
    static DRIVERS: Once = Once::new();
    DRIVERS.call_once(sqlx::any::install_default_drivers);
}

/// `$first, $first+1, ...`: `count` numbered parameters, for `IN (...)` lists and multi-row
/// `VALUES` in the portable SQL both backends accept.
pub fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A read restricted to the rows one customer owns: `<column> = <customer_id>`. A service reads
/// with it for a customer caller (their `owner_scope`), so another's row is answered as a missing
/// one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnedBy<'a> {
    /// The column that names a row's owner (`customer_id`; `id` in the table of the owners themselves).
    pub column: &'static str,
    /// The owning customer.
    pub customer_id: &'a str,
}

impl<'a> OwnedBy<'a> {
    /// The rows whose `column` is `customer_id`, when there is a scope; every row otherwise.
    pub fn scope(column: &'static str, customer_id: Option<&'a str>) -> Option<Self> {
        customer_id.map(|customer_id| Self {
            column,
            customer_id,
        })
    }

    /// The SQL condition ` AND <column> = $<parameter>`, or nothing without a scope.
    pub fn condition(owned_by: Option<Self>, parameter: usize) -> String {
        owned_by.map_or_else(String::new, |owned_by| {
            format!(" AND {} = ${parameter}", owned_by.column)
        })
    }

    /// Binds the owner to the parameter [`OwnedBy::condition`] named, when there is a scope.
    pub fn bind<R>(
        owned_by: Option<Self>,
        query: sqlx::query::QueryAs<'a, sqlx::Any, R, sqlx::any::AnyArguments<'a>>,
    ) -> sqlx::query::QueryAs<'a, sqlx::Any, R, sqlx::any::AnyArguments<'a>> {
        match owned_by {
            Some(owned_by) => query.bind(owned_by.customer_id),
            None => query,
        }
    }
}

/// The rows of `select` (a query ending in `WHERE <key> IN`) whose key is one of `keys`, in the
/// order of `keys` (repeats answered in place): what an AIP-231 batch get needs. With `owned_by`,
/// only that customer's rows count. When no row has some key, the call fails with `missing` of
/// the first such key.
pub async fn fetch_by_keys<R, E>(
    connection: &mut AnyConnection,
    select: &str,
    keys: &[&str],
    owned_by: Option<OwnedBy<'_>>,
    key_of: impl Fn(&R) -> &str,
    missing: impl Fn(&str) -> E,
) -> Result<Vec<R>, E>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin + Clone,
    E: From<sqlx::Error>,
{
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "{select} ({}){}",
        placeholders(1, keys.len()),
        OwnedBy::condition(owned_by, keys.len() + 1)
    );
    let mut query = sqlx::query_as::<_, R>(&sql);
    for key in keys {
        query = query.bind(*key);
    }
    let query = OwnedBy::bind(owned_by, query);
    let rows = query.fetch_all(connection).await?;
    let found: std::collections::HashMap<&str, &R> =
        rows.iter().map(|row| (key_of(row), row)).collect();
    keys.iter()
        .map(|key| {
            found
                .get(key)
                .map(|row| (*row).clone())
                .ok_or_else(|| missing(key))
        })
        .collect()
}

/// One page of `select` (a query `SELECT ... FROM <table>` whose rows are keyed by `id`): the rows
/// after `page`'s last key in `id` order, at most [`PageRequest::fetch_limit`] of them, only
/// those whose `filter_column` is one of `filter_values` unless that list is empty, and with
/// `owned_by` only that customer's.
pub async fn fetch_page<R>(
    connection: &mut AnyConnection,
    select: &str,
    page: &PageRequest,
    filter_column: &str,
    filter_values: &[&str],
    owned_by: Option<OwnedBy<'_>>,
) -> Result<Vec<R>, sqlx::Error>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    let filter = if filter_values.is_empty() {
        String::new()
    } else {
        format!(
            "AND {filter_column} IN ({})",
            placeholders(3, filter_values.len())
        )
    };
    let owner = OwnedBy::condition(owned_by, 3 + filter_values.len());
    let sql = format!("{select} WHERE id > $1 {filter}{owner} ORDER BY id LIMIT $2");
    let mut query = sqlx::query_as::<_, R>(&sql)
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(page.fetch_limit());
    for value in filter_values {
        query = query.bind(*value);
    }
    let query = OwnedBy::bind(owned_by, query);
    query.fetch_all(connection).await
}

/// Microseconds since the Unix epoch: how timestamps are stored (`BIGINT`, portable).
pub fn now_micros() -> i64 {
    // Only a host clock set before 1970 fails here; it stamps the epoch rather than stopping
    // every write.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_micros()).unwrap_or(i64::MAX)
}

/// A stored timestamp as a protobuf `Timestamp`.
pub fn timestamp_from_micros(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: i32::try_from(micros.rem_euclid(1_000_000) * 1_000).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite is built without memory statistics (`.cargo/config.toml`): keeping them takes one
    /// process-wide mutex on every allocation, which every connection thread and every tokio
    /// worker dropping rows queued on.
    #[tokio::test]
    async fn sqlite_keeps_no_memory_statistics() {
        // The first test database is always SQLite's.
        let sqlite = crate::testing::databases("options").swap_remove(0);
        let database = sqlite.connect(&Migrator::DEFAULT).await;
        let options: Vec<String> =
            sqlx::query_scalar("SELECT compile_options FROM pragma_compile_options")
                .fetch_all(&mut *database.acquire().await.expect("a connection"))
                .await
                .expect("the compile options");
        assert!(
            options.iter().any(|option| option == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
    }
}
