//! `LedgerService` over gRPC: parse the request, run it, answer.

use crowdcrunch_proto::ledger::v1 as pb;
use crowdcrunch_proto::ledger::v1::ledger_service_server::LedgerService;
use crowdcrunch_runtime::access::Caller;
use crowdcrunch_runtime::pagination::{self, PageRequest, PageTokens};
use crowdcrunch_runtime::status::FieldViolation;
use crowdcrunch_runtime::{Database, Shutdown};
use sqlx::Connection as _;
use tonic::{Request, Response, Status};

use crate::domain::{EventFilter, NewEvents, Subjects, after_sequence};
use crate::error::Error;
use crate::storage;
use crate::watch::{EventStream, Hub};

/// The `LedgerService` implementation.
#[derive(Debug, Clone)]
pub struct LedgerApi {
    database: Database,
    hub: Hub,
    shutdown: Shutdown,
    page_tokens: PageTokens,
}

impl LedgerApi {
    /// The service over a migrated database; its watch streams end when `shutdown` fires, and
    /// it signs its page tokens with `page_tokens`.
    pub fn new(database: Database, shutdown: Shutdown, page_tokens: PageTokens) -> Self {
        Self {
            hub: Hub::new(&database),
            database,
            shutdown,
            page_tokens,
        }
    }
}

#[tonic::async_trait]
impl LedgerService for LedgerApi {
    async fn append_events(
        &self,
        request: Request<pb::AppendEventsRequest>,
    ) -> Result<Response<pb::AppendEventsResponse>, Status> {
        let source = appending_service(Caller::of(&request)?, request.get_ref())?;
        let NewEvents(events) =
            NewEvents::parse(request.get_ref(), source).map_err(Error::InvalidArgument)?;
        let mut connection = self.database.acquire().await.map_err(Error::from)?;
        let mut transaction = connection.begin().await.map_err(Error::from)?;
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
        let customer_id = Caller::of(&request)?.owner_scope();
        let query = EventQuery::parse(request.get_ref(), &self.page_tokens)
            .map_err(Error::InvalidArgument)?;
        let mut connection = self.database.acquire().await.map_err(Error::from)?;
        Ok(Response::new(
            query.run(&mut connection, customer_id).await?,
        ))
    }

    async fn batch_list_events(
        &self,
        request: Request<pb::BatchListEventsRequest>,
    ) -> Result<Response<pb::BatchListEventsResponse>, Status> {
        let customer_id = Caller::of(&request)?.owner_scope();
        let queries = pagination::parse_batch(&request.get_ref().requests, |request| {
            EventQuery::parse(request, &self.page_tokens)
        })
        .map_err(Error::InvalidArgument)?;
        let mut connection = self.database.acquire().await.map_err(Error::from)?;
        let mut responses = Vec::with_capacity(queries.len());
        for query in &queries {
            responses.push(query.run(&mut connection, customer_id).await?);
        }
        Ok(Response::new(pb::BatchListEventsResponse { responses }))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let customer_id = Caller::of(&request)?.owner_scope().map(str::to_owned);
        let request = request.get_ref();
        let after = after_sequence(request.after_sequence).map_err(Error::from)?;
        let subjects = Subjects::parse_one(request.subject.as_ref()).map_err(Error::from)?;
        Ok(Response::new(self.hub.watch(
            self.database.clone(),
            EventFilter {
                subjects,
                customer_id,
            },
            after,
            self.shutdown.clone(),
        )))
    }
}

/// The service appending `request`: the caller's own peer identity, which every event's `source`
/// must be when it names one (PERMISSION_DENIED otherwise: a service never speaks for another).
fn appending_service<'a>(
    caller: &'a Caller,
    request: &pb::AppendEventsRequest,
) -> Result<&'a str, Error> {
    let service = caller.peer().ok_or(Error::NotAService)?;
    match request
        .events
        .iter()
        .find(|event| !event.source.is_empty() && event.source != service)
    {
        Some(event) => Err(Error::ForeignSource {
            claimed: event.source.clone(),
            caller: service.to_owned(),
        }),
        None => Ok(service),
    }
}

/// A checked ListEvents request: its page and its subjects.
struct EventQuery {
    page: PageRequest,
    /// The last sequence of the previous page; 0 on the first.
    after: i64,
    subjects: Subjects,
}

impl EventQuery {
    /// Checks `request`.
    fn parse(
        request: &pb::ListEventsRequest,
        page_tokens: &PageTokens,
    ) -> Result<Self, Vec<FieldViolation>> {
        let subjects = Subjects::parse(&request.subjects).map_err(|violation| vec![violation])?;
        let page = page_tokens
            .parse_filtered(
                request.page_size,
                &request.page_token,
                &subjects.0.join("\n"),
            )
            .map_err(|violation| vec![violation])?;
        let after = match &page.after {
            None => 0,
            Some(key) => key.parse::<i64>().map_err(|_| {
                vec![FieldViolation::new(
                    "page_token",
                    "is not a token this list returned",
                )]
            })?,
        };
        Ok(Self {
            page,
            after,
            subjects,
        })
    }

    /// The page this query asks for, of the events about `customer_id` alone when the reader is
    /// that customer.
    async fn run(
        &self,
        connection: &mut sqlx::AnyConnection,
        customer_id: Option<&str>,
    ) -> Result<pb::ListEventsResponse, Error> {
        let filter = EventFilter {
            subjects: self.subjects.clone(),
            customer_id: customer_id.map(str::to_owned),
        };
        let mut events = storage::range(
            connection,
            self.after,
            i64::MAX,
            &filter,
            self.page.fetch_limit(),
        )
        .await?;
        let next_page_token = self
            .page
            .finish(&mut events, |event| event.sequence.to_string());
        Ok(pb::ListEventsResponse {
            events,
            next_page_token,
        })
    }
}
