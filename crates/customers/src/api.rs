//! `CustomerService` over gRPC: parse the request, run it in a transaction with its event, answer.

use crowdcrunch_outbox::Outbox;
use crowdcrunch_proto::customers::v1 as pb;
use crowdcrunch_proto::customers::v1::customer_service_server::CustomerService;
use crowdcrunch_runtime::Database;
use crowdcrunch_runtime::access::Caller;
use crowdcrunch_runtime::idempotency::IdempotencyKey;
use crowdcrunch_runtime::pagination::PageTokens;
use tonic::{Request, Response, Status};

use crate::domain::{CustomerId, CustomerPatch, NewCustomer};
use crate::error::Error;
use crate::{events, storage};

/// The most ids one BatchGetCustomers may ask for.
const MAX_BATCH: usize = 1000;

/// The `CustomerService` implementation.
#[derive(Debug, Clone)]
pub struct CustomerApi {
    database: Database,
    outbox: Outbox,
    page_tokens: PageTokens,
}

impl CustomerApi {
    /// The service over a migrated database and its outbox, signing its page tokens with
    /// `page_tokens`.
    pub fn new(database: Database, outbox: Outbox, page_tokens: PageTokens) -> Self {
        Self {
            database,
            outbox,
            page_tokens,
        }
    }
}

#[tonic::async_trait]
impl CustomerService for CustomerApi {
    async fn create_customer(
        &self,
        request: Request<pb::CreateCustomerRequest>,
    ) -> Result<Response<pb::Customer>, Status> {
        let request = request.into_inner();
        let customer = NewCustomer::try_from(&request).map_err(Error::InvalidArgument)?;
        let key = customer
            .request_id
            .clone()
            .map(|id| IdempotencyKey::new("CreateCustomer", id, &request));
        let created = self
            .outbox
            .transaction(key.as_ref(), async |connection| {
                let created = storage::insert(connection, &customer).await?;
                let event = events::customer_created(&created);
                self.outbox.enqueue(connection, event).await?;
                Ok::<_, Error>(created)
            })
            .await?;
        tracing::debug!(customer_id = %created.id, "customer created");
        Ok(Response::new(created))
    }

    async fn get_customer(
        &self,
        request: Request<pb::GetCustomerRequest>,
    ) -> Result<Response<pb::Customer>, Status> {
        let owned_by = storage::owned_by(Caller::of(&request)?.owner_scope());
        let id = CustomerId::parse(&request.get_ref().id, "id")
            .map_err(|v| Error::InvalidArgument(vec![v]))?;
        let mut connection = self.database.acquire().await.map_err(Error::from)?;
        Ok(Response::new(
            storage::get(&mut connection, &id, owned_by).await?,
        ))
    }

    async fn batch_get_customers(
        &self,
        request: Request<pb::BatchGetCustomersRequest>,
    ) -> Result<Response<pb::BatchGetCustomersResponse>, Status> {
        let owned_by = storage::owned_by(Caller::of(&request)?.owner_scope());
        let ids = parse_ids(&request.get_ref().ids)?;
        let mut connection = self.database.acquire().await.map_err(Error::from)?;
        let customers = storage::batch_get(&mut connection, &ids, owned_by).await?;
        Ok(Response::new(pb::BatchGetCustomersResponse { customers }))
    }

    async fn list_customers(
        &self,
        request: Request<pb::ListCustomersRequest>,
    ) -> Result<Response<pb::ListCustomersResponse>, Status> {
        let request = request.get_ref();
        let page = self
            .page_tokens
            .parse(request.page_size, &request.page_token)
            .map_err(|v| Error::InvalidArgument(vec![v]))?;
        let mut connection = self.database.acquire().await.map_err(Error::from)?;
        Ok(Response::new(storage::list(&mut connection, &page).await?))
    }

    async fn update_customer(
        &self,
        request: Request<pb::UpdateCustomerRequest>,
    ) -> Result<Response<pb::Customer>, Status> {
        let owned_by = storage::owned_by(Caller::of(&request)?.owner_scope());
        let patch = CustomerPatch::try_from(request.get_ref()).map_err(Error::InvalidArgument)?;
        let updated = self
            .outbox
            .transaction(None, async |connection| {
                let updated = storage::update(connection, &patch, owned_by).await?;
                let event = events::customer_updated(&updated);
                self.outbox.enqueue(connection, event).await?;
                Ok::<_, Error>(updated)
            })
            .await?;
        tracing::debug!(customer_id = %updated.id, "customer updated");
        Ok(Response::new(updated))
    }
}

fn parse_ids(ids: &[String]) -> Result<Vec<CustomerId>, Error> {
    if ids.len() > MAX_BATCH {
        return Err(Error::InvalidArgument(vec![
            crowdcrunch_runtime::status::FieldViolation::new(
                "ids",
                format!("at most {MAX_BATCH} ids per call"),
            ),
        ]));
    }
    ids.iter()
        .enumerate()
        .map(|(index, id)| CustomerId::parse(id, &format!("ids[{index}]")))
        .collect::<Result<_, _>>()
        .map_err(|violation| Error::InvalidArgument(vec![violation]))
}
