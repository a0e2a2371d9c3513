//! `FulfillmentService` over gRPC: parse the request, run it in a transaction, answer.

use crowdcrunch_outbox::Outbox;
use crowdcrunch_proto::fulfillment::v1 as pb;
use crowdcrunch_proto::fulfillment::v1::fulfillment_service_server::FulfillmentService;
use crowdcrunch_runtime::Database;
use crowdcrunch_runtime::access::Caller;
use crowdcrunch_runtime::idempotency::IdempotencyKey;
use crowdcrunch_runtime::pagination::PageTokens;
use tonic::{Request, Response, Status};

use crate::domain::{NewShipment, ShipmentId, ShipmentQuery, StatusChange, parse_shipment_ids};
use crate::error::Error;
use crate::{events, storage};

/// The `FulfillmentService` implementation.
#[derive(Debug, Clone)]
pub struct FulfillmentApi {
    database: Database,
    outbox: Outbox,
    page_tokens: PageTokens,
}

impl FulfillmentApi {
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
impl FulfillmentService for FulfillmentApi {
    async fn create_shipment(
        &self,
        request: Request<pb::CreateShipmentRequest>,
    ) -> Result<Response<pb::Shipment>, Status> {
        let request = request.into_inner();
        let shipment = NewShipment::try_from(&request).map_err(Error::InvalidArgument)?;
        let key = shipment
            .request_id
            .clone()
            .map(|id| IdempotencyKey::new("CreateShipment", id, &request));
        let created = self
            .outbox
            .transaction(key.as_ref(), async |connection| {
                let created = storage::insert(connection, &shipment).await?;
                self.outbox
                    .enqueue(connection, events::shipment_created(&created))
                    .await?;
                Ok::<_, Error>(created)
            })
            .await?;
        tracing::debug!(shipment_id = %created.id, order_id = %created.order_id, "shipment created");
        Ok(Response::new(created))
    }

    async fn get_shipment(
        &self,
        request: Request<pb::GetShipmentRequest>,
    ) -> Result<Response<pb::Shipment>, Status> {
        let owned_by = storage::owned_by(Caller::of(&request)?.owner_scope());
        let id = ShipmentId::parse(&request.get_ref().id, "id")
            .map_err(|v| Error::InvalidArgument(vec![v]))?;
        let mut connection = self.database.acquire().await.map_err(Error::from)?;
        Ok(Response::new(
            storage::get(&mut connection, &id, owned_by).await?,
        ))
    }

    async fn batch_get_shipments(
        &self,
        request: Request<pb::BatchGetShipmentsRequest>,
    ) -> Result<Response<pb::BatchGetShipmentsResponse>, Status> {
        let owned_by = storage::owned_by(Caller::of(&request)?.owner_scope());
        let ids = parse_shipment_ids(&request.get_ref().ids).map_err(Error::InvalidArgument)?;
        let mut connection = self.database.acquire().await.map_err(Error::from)?;
        let shipments = storage::batch_get(&mut connection, &ids, owned_by).await?;
        Ok(Response::new(pb::BatchGetShipmentsResponse { shipments }))
    }

    async fn list_shipments(
        &self,
        request: Request<pb::ListShipmentsRequest>,
    ) -> Result<Response<pb::ListShipmentsResponse>, Status> {
        let owned_by = storage::owned_by(Caller::of(&request)?.owner_scope());
        let query = ShipmentQuery::parse(request.get_ref(), &self.page_tokens)
            .map_err(Error::InvalidArgument)?;
        let mut connection = self.database.acquire().await.map_err(Error::from)?;
        Ok(Response::new(
            storage::list(&mut connection, &query, owned_by).await?,
        ))
    }

    async fn update_shipment_status(
        &self,
        request: Request<pb::UpdateShipmentStatusRequest>,
    ) -> Result<Response<pb::Shipment>, Status> {
        let request = request.into_inner();
        let change = StatusChange::try_from(&request).map_err(Error::InvalidArgument)?;
        let key = change
            .request_id
            .clone()
            .map(|id| IdempotencyKey::new("UpdateShipmentStatus", id, &request));
        let shipment = self
            .outbox
            .transaction(key.as_ref(), async |connection| {
                let moved = storage::update_status(connection, &change).await?;
                if moved.changed {
                    let event = events::status_changed(&moved.shipment);
                    tracing::debug!(shipment_id = %moved.shipment.id, "{}", event.event_type);
                    self.outbox.enqueue(connection, event).await?;
                }
                Ok::<_, Error>(moved.shipment)
            })
            .await?;
        Ok(Response::new(shipment))
    }
}
