//! The relay: one background task per service process that moves the outbox to the ledger.
//!
//! It reads the oldest undelivered events, appends them to the ledger in one call, then deletes
//! them. The database connection is released before the call (the SQLite pool has one connection,
//! and a slow ledger must never hold up the service's own transactions). A crash between the call
//! and the delete only repeats a delivery, which the ledger records once.
//!
//! It wakes when a transaction with events commits, and on a periodic tick as a fallback; failures
//! back off exponentially up to a few seconds. Woken, it lingers a few milliseconds before it
//! reads, so that the events of transactions committing together go to the ledger in one call.
//! On shutdown it makes a last, bounded attempt.
//!
//! Each delivery is a trace of its own, its span `outbox.deliver` linked to the span that wrote
//! each event it carries (OpenTelemetry span links), so an operator goes from a request's trace
//! to the delivery of its events and back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crowdcrunch_proto::ledger::v1 as pb;
use crowdcrunch_proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use crowdcrunch_runtime::client::GrpcChannel;
use crowdcrunch_runtime::context::{link_to_traceparent, start_trace};
use crowdcrunch_runtime::storage::{now_micros, placeholders, timestamp_from_micros};
use crowdcrunch_runtime::telemetry::ServiceName;
use crowdcrunch_runtime::{Database, Shutdown};
use tokio::sync::Notify;
use tracing::Instrument as _;

/// Events delivered per ledger call.
const BATCH: usize = 100;
/// How often the relay looks at the outbox when nothing woke it.
const TICK: Duration = Duration::from_secs(1);
/// How long a woken relay waits before it reads the outbox. Under load, the events of every
/// transaction that commits meanwhile share one ledger call and one ledger transaction (about one
/// call per service per linger, not one per transaction); an event reaches the ledger at most
/// this much later.
const LINGER: Duration = Duration::from_millis(10);
/// The first pause after a failure; it doubles with each failure in a row...
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// ...up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(3);
/// The longest one ledger call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest the last delivery at shutdown may take.
const LAST_FLUSH: Duration = Duration::from_secs(2);

/// Counter of events delivered to the ledger, by `source`.
const DELIVERED: &str = "outbox_events_delivered_total";
/// Counter of failed deliveries (each retried), by `source`.
const FAILURES: &str = "outbox_delivery_failures_total";
/// Gauge of the events waiting in the outbox, by `source`.
const BACKLOG: &str = "outbox_backlog_events";
/// Gauge of the age in seconds of the oldest undelivered event, by `source` (0 when none waits).
const OLDEST_AGE: &str = "outbox_oldest_undelivered_age_seconds";
/// How often the backlog gauges are read from the outbox table, at most.
const BACKLOG_EVERY: Duration = Duration::from_secs(1);

/// A delivery that did not happen; the events stay in the outbox and are retried.
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error("outbox storage: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("the ledger refused the events: {0}")]
    Ledger(#[from] tonic::Status),
    #[error("the ledger did not answer within {CALL_TIMEOUT:?}")]
    Timeout,
    #[error("outbox event {id} holds data that is not JSON: {source}")]
    CorruptEvent {
        id: String,
        source: serde_json::Error,
    },
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    id: String,
    source: String,
    event_type: String,
    subject: String,
    data: String,
    trace_id: String,
    event_time: i64,
    customer_id: String,
    traceparent: String,
}

impl TryFrom<OutboxRow> for pb::Event {
    type Error = DeliveryError;

    /// The event as the ledger takes it. Data that is not JSON (the outbox only ever stores what
    /// `serde_json` wrote) fails the delivery, which retries and is counted, rather than telling
    /// the ledger an empty story.
    fn try_from(row: OutboxRow) -> Result<Self, DeliveryError> {
        let data =
            serde_json::from_str(&row.data).map_err(|source| DeliveryError::CorruptEvent {
                id: row.id.clone(),
                source,
            })?;
        Ok(Self {
            sequence: 0,
            id: row.id,
            r#type: row.event_type,
            source: row.source,
            subject: row.subject,
            time: Some(timestamp_from_micros(row.event_time)),
            data: Some(crowdcrunch_proto::json::struct_from_json(data)),
            trace_id: row.trace_id,
            customer_id: row.customer_id,
        })
    }
}

/// Delivers one service's outbox to the ledger until shutdown; see [`Relay::run`].
#[derive(Debug)]
pub struct Relay {
    database: Database,
    source: &'static str,
    wake: Arc<Notify>,
    ledger: LedgerServiceClient<GrpcChannel>,
    /// When the backlog gauges were last read.
    backlog_read: Option<Instant>,
}

impl Relay {
    pub(crate) fn new(
        database: Database,
        source: &'static str,
        wake: Arc<Notify>,
        ledger: GrpcChannel,
    ) -> Self {
        Self {
            database,
            source,
            wake,
            ledger: LedgerServiceClient::new(ledger),
            backlog_read: None,
        }
    }

    /// Delivers until `stop` fires, then makes one last attempt, bounded by a couple of seconds,
    /// to deliver what is left (what it cannot deliver stays in the outbox for the next start).
    pub async fn run(mut self, stop: Shutdown) {
        let mut backoff = FIRST_BACKOFF;
        let mut failing = false;
        while !stop.is_triggered() {
            self.observe_backlog().await;
            // Stopping abandons a delivery in flight: if the ledger stored it, the next start
            // delivers it again and the ledger records it once.
            let delivered = tokio::select! {
                delivered = self.deliver_batch() => delivered,
                () = stop.cancelled() => break,
            };
            match delivered {
                Ok(delivered) => {
                    if failing {
                        tracing::info!("outbox delivery works again");
                    }
                    failing = false;
                    backoff = FIRST_BACKOFF;
                    if delivered == BATCH {
                        // A full batch: more may be waiting.
                        continue;
                    }
                    tokio::select! {
                        () = self.wake.notified() => tokio::time::sleep(LINGER).await,
                        () = tokio::time::sleep(TICK) => {},
                        () = stop.cancelled() => {},
                    }
                }
                Err(error) => {
                    metrics::counter!(FAILURES, "source" => self.source).increment(1);
                    if failing {
                        tracing::debug!(%error, retry_in = ?backoff, "outbox delivery failed again");
                    } else {
                        tracing::warn!(%error, retry_in = ?backoff, "outbox delivery failed; retrying");
                    }
                    failing = true;
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {},
                        () = stop.cancelled() => {},
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        match tokio::time::timeout(LAST_FLUSH, self.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "events left in the outbox; they are delivered after the next start");
            }
            Err(_) => tracing::warn!(
                "the last outbox delivery timed out; the events left are delivered after the next start"
            ),
        }
    }

    /// Sets the backlog gauges from the outbox table, at most once per [`BACKLOG_EVERY`]: an
    /// operator sees a backlog that grows, and how long the oldest event has waited, even while
    /// the ledger is down and nothing is delivered.
    async fn observe_backlog(&mut self) {
        if self
            .backlog_read
            .is_some_and(|read| read.elapsed() < BACKLOG_EVERY)
        {
            return;
        }
        self.backlog_read = Some(Instant::now());
        let read: Result<(i64, Option<i64>), sqlx::Error> = async {
            sqlx::query_as("SELECT COUNT(*), MIN(event_time) FROM outbox")
                .fetch_one(&mut *self.database.acquire().await?)
                .await
        }
        .await;
        match read {
            Ok((waiting, oldest)) => {
                let age = oldest.map_or(0.0, |oldest| {
                    Duration::from_micros(u64::try_from(now_micros() - oldest).unwrap_or(0))
                        .as_secs_f64()
                });
                metrics::gauge!(BACKLOG, "source" => self.source).set(waiting as f64);
                metrics::gauge!(OLDEST_AGE, "source" => self.source).set(age);
            }
            Err(error) => tracing::debug!(%error, "cannot read the outbox backlog"),
        }
    }

    /// Delivers until the outbox is empty.
    async fn flush(&mut self) -> Result<(), DeliveryError> {
        while self.deliver_batch().await? == BATCH {}
        Ok(())
    }

    /// Delivers the oldest events, at most a batch; how many.
    async fn deliver_batch(&mut self) -> Result<usize, DeliveryError> {
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "SELECT id, source, event_type, subject, data, trace_id, event_time, customer_id, \
             traceparent \
             FROM outbox \
             ORDER BY id LIMIT $1",
        )
        .bind(i64::try_from(BATCH).unwrap_or(i64::MAX))
        .fetch_all(&mut *self.database.acquire().await?)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let span = tracing::info_span!(
            "outbox.deliver",
            source = self.source,
            events = rows.len(),
            otel.status_code = tracing::field::Empty,
        );
        start_trace(&span, ServiceName::new(self.source));
        for row in &rows {
            link_to_traceparent(&span, &row.traceparent);
        }
        let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
        let appended = self.append(rows).instrument(span.clone()).await;
        if appended.is_err() {
            span.record("otel.status_code", "ERROR");
        }
        appended?;

        let sql = format!(
            "DELETE FROM outbox WHERE id IN ({})",
            placeholders(1, ids.len())
        );
        let mut delete = sqlx::query(&sql);
        for id in &ids {
            delete = delete.bind(id);
        }
        delete.execute(&mut *self.database.acquire().await?).await?;
        metrics::counter!(DELIVERED, "source" => self.source).increment(ids.len() as u64);
        tracing::debug!(count = ids.len(), "outbox events delivered");
        Ok(ids.len())
    }

    /// Appends the events of `rows` to the ledger, within [`CALL_TIMEOUT`].
    async fn append(&mut self, rows: Vec<OutboxRow>) -> Result<(), DeliveryError> {
        let events = rows
            .into_iter()
            .map(pb::Event::try_from)
            .collect::<Result<_, _>>()?;
        let mut request = tonic::Request::new(pb::AppendEventsRequest { events });
        request.set_timeout(CALL_TIMEOUT);
        tokio::time::timeout(CALL_TIMEOUT, self.ledger.append_events(request))
            .await
            .map_err(|_| DeliveryError::Timeout)??;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(data: &str) -> OutboxRow {
        OutboxRow {
            id: "0190b6e2-7c1a-7d4e-9f00-1a2b3c4d5e6f".into(),
            source: "inventory".into(),
            event_type: "ProductCreated".into(),
            subject: "MUG-1".into(),
            data: data.into(),
            trace_id: String::new(),
            event_time: 0,
            customer_id: String::new(),
            traceparent: String::new(),
        }
    }

    #[test]
    fn an_event_is_delivered_with_its_data_or_not_at_all() {
        let event = pb::Event::try_from(row(r#"{"sku":"MUG-1"}"#)).expect("valid JSON");
        let data = crowdcrunch_proto::json::json_from_struct(&event.data.expect("data"));
        assert_eq!(data, serde_json::json!({ "sku": "MUG-1" }));

        let refused = pb::Event::try_from(row("{not json")).expect_err("corrupt data");
        assert!(
            matches!(&refused, DeliveryError::CorruptEvent { id, .. } if id.starts_with("0190")),
            "{refused}"
        );
    }
}
