//! The log's tables. All SQL of this service is here.

use std::collections::HashMap;

use crowdcrunch_proto::ledger::v1 as pb;
use crowdcrunch_runtime::storage::{OwnedBy, now_micros, placeholders, timestamp_from_micros};
use sqlx::AnyConnection;

use crate::domain::{EventFilter, NewEvent};

const COLUMNS: &str =
    "sequence, id, event_type, source, subject, event_time, data, trace_id, customer_id";

#[derive(sqlx::FromRow)]
struct EventRow {
    sequence: i64,
    id: String,
    event_type: String,
    source: String,
    subject: String,
    event_time: i64,
    data: Option<String>,
    trace_id: String,
    customer_id: String,
}

impl From<EventRow> for pb::Event {
    fn from(row: EventRow) -> Self {
        Self {
            sequence: row.sequence,
            id: row.id,
            r#type: row.event_type,
            source: row.source,
            subject: row.subject,
            time: Some(timestamp_from_micros(row.event_time)),
            data: row
                .data
                .and_then(|text| serde_json::from_str(&text).ok())
                .map(crowdcrunch_proto::json::struct_from_json),
            trace_id: row.trace_id,
            customer_id: row.customer_id,
        }
    }
}

/// What an append did: the answer, one stored event per event asked, and the events it added.
pub struct Appended {
    /// The stored events, in request order.
    pub events: Vec<pb::Event>,
    /// The events this append stored, in sequence order.
    pub added: Vec<pb::Event>,
}

/// Appends `events` in order, each with the next sequence and the time of this append as its
/// time, except those whose id is stored already (answered with the stored event). Locks the head
/// first: appenders run one at a time.
pub async fn append(
    connection: &mut AnyConnection,
    events: &[NewEvent],
) -> Result<Appended, sqlx::Error> {
    let (mut head,): (i64,) = sqlx::query_as(
        "UPDATE ledger_head SET last_sequence = last_sequence WHERE id = 1 RETURNING last_sequence",
    )
    .fetch_one(&mut *connection)
    .await?;
    let ids: Vec<&str> = events.iter().map(|event| event.id.as_str()).collect();
    let mut stored: HashMap<String, pb::Event> = with_ids(&mut *connection, &ids)
        .await?
        .into_iter()
        .map(|event| (event.id.clone(), event))
        .collect();
    let now = now_micros();
    let mut answer = Vec::with_capacity(events.len());
    let mut added = Vec::new();
    for event in events {
        if let Some(existing) = stored.get(&event.id) {
            answer.push(existing.clone());
            continue;
        }
        head += 1;
        let row: EventRow = sqlx::query_as(&format!(
            "INSERT INTO events (sequence, id, event_type, source, subject, event_time, data, \
             trace_id, append_time, customer_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             RETURNING {COLUMNS}"
        ))
        .bind(head)
        .bind(&event.id)
        .bind(&event.event_type)
        .bind(&event.source)
        .bind(&event.subject)
        .bind(now)
        .bind(event.data.as_deref())
        .bind(&event.trace_id)
        .bind(now)
        .bind(&event.customer_id)
        .fetch_one(&mut *connection)
        .await?;
        let event = pb::Event::from(row);
        stored.insert(event.id.clone(), event.clone());
        answer.push(event.clone());
        added.push(event);
    }
    if !added.is_empty() {
        sqlx::query("UPDATE ledger_head SET last_sequence = $1 WHERE id = 1")
            .bind(head)
            .execute(&mut *connection)
            .await?;
    }
    Ok(Appended {
        events: answer,
        added,
    })
}

/// The last sequence assigned (every event up to it is committed and visible).
pub async fn head(connection: &mut AnyConnection) -> Result<i64, sqlx::Error> {
    let (head,): (i64,) = sqlx::query_as("SELECT last_sequence FROM ledger_head WHERE id = 1")
        .fetch_one(connection)
        .await?;
    Ok(head)
}

/// Up to `limit` events with `after < sequence <= up_to` that pass `filter`, in sequence order.
pub async fn range(
    connection: &mut AnyConnection,
    after: i64,
    up_to: i64,
    filter: &EventFilter,
    limit: i64,
) -> Result<Vec<pb::Event>, sqlx::Error> {
    let subjects = &filter.subjects.0;
    let owned_by = OwnedBy::scope("customer_id", filter.customer_id.as_deref());
    let subject_filter = match subjects.len() {
        0 => String::new(),
        count => format!(" AND subject IN ({})", placeholders(4, count)),
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM events WHERE sequence > $1 AND sequence <= $2{subject_filter}{} \
         ORDER BY sequence LIMIT $3",
        OwnedBy::condition(owned_by, 4 + subjects.len())
    );
    let mut query = sqlx::query_as::<_, EventRow>(&sql)
        .bind(after)
        .bind(up_to)
        .bind(limit);
    for subject in subjects {
        query = query.bind(subject);
    }
    let rows = OwnedBy::bind(owned_by, query).fetch_all(connection).await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// The stored events among `ids`.
async fn with_ids(
    connection: &mut AnyConnection,
    ids: &[&str],
) -> Result<Vec<pb::Event>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM events WHERE id IN ({})",
        placeholders(1, ids.len())
    );
    let mut query = sqlx::query_as::<_, EventRow>(&sql);
    for id in ids {
        query = query.bind(*id);
    }
    let rows = query.fetch_all(connection).await?;
    Ok(rows.into_iter().map(Into::into).collect())
}
