//! `LedgerService` over gRPC: parse the request, run it, answer.

use crowdcrunch_proto::ledger::v1 as pb;
use crowdcrunch_proto::ledger::v1::ledger_service_server::LedgerService;
use crowdcrunch_runtime::pagination::PageRequest;
use crowdcrunch_runtime::status::FieldViolation;
use crowdcrunch_runtime::{Database, Shutdown};
use tonic::{Request, Response, Status};

use crate::domain::{NewEvents, Subjects, after_sequence};
use crate::error::Error;
use crate::storage;
use crate::watch::{EventStream, Hub};

/// The `LedgerService` implementation.
#[derive(Debug, Clone)]
pub struct LedgerApi {
    database: Database,
    hub: Hub,
    shutdown: Shutdown,
}

impl LedgerApi {
    /// The service over a migrated database; its watch streams end when `shutdown` fires.
    pub fn new(database: Database, shutdown: Shutdown) -> Self {
        Self {
            database,
            hub: Hub::new(),
            shutdown,
        }
    }
}

#[tonic::async_trait]
impl LedgerService for LedgerApi {
    async fn append_events(
        &self,
        request: Request<pb::AppendEventsRequest>,
    ) -> Result<Response<pb::AppendEventsResponse>, Status> {
        let NewEvents(events) =
            NewEvents::try_from(request.get_ref()).map_err(Error::InvalidArgument)?;
        let mut transaction = self.database.begin().await.map_err(Error::from)?;
        let appended = storage::append(&mut transaction, &events)
            .await
            .map_err(Error::from)?;
        transaction.commit().await.map_err(Error::from)?;
        if !appended.added.is_empty() {
            tracing::debug!(
                count = appended.added.len(),
                last_sequence = appended.added.last().map(|event| event.sequence),
                "events appended"
            );
        }
        self.hub.publish(appended.added);
        Ok(Response::new(pb::AppendEventsResponse {
            events: appended.events,
        }))
    }

    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let request = request.get_ref();
        let subjects = Subjects::parse(&request.subjects).map_err(Error::from)?;
        let page = PageRequest::parse_filtered(
            request.page_size,
            &request.page_token,
            &subjects.0.join("\n"),
        )
        .map_err(Error::from)?;
        let after = match &page.after {
            None => 0,
            Some(key) => key.parse::<i64>().map_err(|_| {
                Error::from(FieldViolation::new(
                    "page_token",
                    "is not a token this list returned",
                ))
            })?,
        };
        let mut connection = self.database.pool().acquire().await.map_err(Error::from)?;
        let mut events = storage::range(
            &mut connection,
            after,
            i64::MAX,
            &subjects,
            page.fetch_limit(),
        )
        .await
        .map_err(Error::from)?;
        let next_page_token = page.finish(&mut events, |event| event.sequence.to_string());
        Ok(Response::new(pb::ListEventsResponse {
            events,
            next_page_token,
        }))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let request = request.get_ref();
        let after = after_sequence(request.after_sequence).map_err(Error::from)?;
        let subjects = Subjects::parse_one(request.subject.as_ref()).map_err(Error::from)?;
        Ok(Response::new(self.hub.watch(
            self.database.clone(),
            subjects,
            after,
            self.shutdown.clone(),
        )))
    }
}
