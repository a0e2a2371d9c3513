//! `InventoryService` over gRPC: parse the request, run it in a transaction with its events,
//! answer.

use crowdcrunch_outbox::Outbox;
use crowdcrunch_proto::inventory::v1 as pb;
use crowdcrunch_proto::inventory::v1::inventory_service_server::InventoryService;
use crowdcrunch_runtime::idempotency::IdempotencyKey;
use crowdcrunch_runtime::pagination::PageTokens;
use crowdcrunch_runtime::{Database, DatabaseConnection};
use tonic::{Request, Response, Status};

use crate::domain::{
    NewProduct, NewReservation, ProductPatch, ReservationId, Sku, StockChange, active_filter,
    parse_skus,
};
use crate::error::Error;
use crate::events;
use crate::storage::{self, Outcome};

/// The `InventoryService` implementation.
#[derive(Debug, Clone)]
pub struct InventoryApi {
    database: Database,
    outbox: Outbox,
    page_tokens: PageTokens,
}

impl InventoryApi {
    /// The service over a migrated database and its outbox, signing its page tokens with
    /// `page_tokens`.
    pub fn new(database: Database, outbox: Outbox, page_tokens: PageTokens) -> Self {
        Self {
            database,
            outbox,
            page_tokens,
        }
    }

    /// Moves on_hand by `change` in a transaction that records `event_type`.
    async fn change_stock(
        &self,
        change: StockChange,
        key: Option<IdempotencyKey>,
        event_type: &'static str,
    ) -> Result<pb::StockLevel, Error> {
        let stock = self
            .outbox
            .transaction(key.as_ref(), async |connection| {
                let stock = storage::change_on_hand(connection, &change).await?;
                let event = events::stock_changed(event_type, &change, &stock);
                self.outbox.enqueue(connection, event).await?;
                Ok::<_, Error>(stock)
            })
            .await?;
        tracing::debug!(sku = %stock.sku, delta = change.delta, on_hand = stock.on_hand, "{event_type}");
        Ok(stock)
    }

    /// Commits or releases the reservation named in a request.
    async fn finish(&self, id: &str, outcome: Outcome) -> Result<pb::Reservation, Error> {
        let id = ReservationId::parse(id, "reservation_id")?;
        let reservation = self
            .outbox
            .transaction(None, async |connection| {
                let (reservation, changed) =
                    storage::finish_reservation(connection, &id, outcome).await?;
                if changed {
                    self.outbox
                        .enqueue(connection, events::reservation(&reservation))
                        .await?;
                    tracing::debug!(reservation_id = id.as_str(), ?outcome, "reservation ended");
                }
                Ok::<_, Error>(reservation)
            })
            .await?;
        Ok(reservation)
    }

    async fn connection(&self) -> Result<DatabaseConnection, Error> {
        Ok(self.database.acquire().await?)
    }
}

fn sku(raw: &str) -> Result<Sku, Error> {
    Ok(Sku::parse(raw, "sku")?)
}

#[tonic::async_trait]
impl InventoryService for InventoryApi {
    async fn create_product(
        &self,
        request: Request<pb::CreateProductRequest>,
    ) -> Result<Response<pb::Product>, Status> {
        let request = request.into_inner();
        let product = NewProduct::try_from(&request).map_err(Error::InvalidArgument)?;
        let key = product
            .request_id
            .clone()
            .map(|id| IdempotencyKey::new("CreateProduct", id, &request));
        let created = self
            .outbox
            .transaction(key.as_ref(), async |connection| {
                let (created, stock) = storage::insert_product(connection, &product).await?;
                let event = events::product_created(&created, &stock);
                self.outbox.enqueue(connection, event).await?;
                Ok::<_, Error>(created)
            })
            .await?;
        tracing::debug!(sku = %created.sku, "product created");
        Ok(Response::new(created))
    }

    async fn get_product(
        &self,
        request: Request<pb::GetProductRequest>,
    ) -> Result<Response<pb::Product>, Status> {
        let sku = sku(&request.get_ref().sku)?;
        let product = storage::get_product(&mut *self.connection().await?, &sku).await?;
        Ok(Response::new(product))
    }

    async fn batch_get_products(
        &self,
        request: Request<pb::BatchGetProductsRequest>,
    ) -> Result<Response<pb::BatchGetProductsResponse>, Status> {
        let skus = parse_skus(&request.get_ref().skus).map_err(Error::InvalidArgument)?;
        let products = storage::batch_get_products(&mut *self.connection().await?, &skus).await?;
        Ok(Response::new(pb::BatchGetProductsResponse { products }))
    }

    async fn list_products(
        &self,
        request: Request<pb::ListProductsRequest>,
    ) -> Result<Response<pb::ListProductsResponse>, Status> {
        let request = request.get_ref();
        let page = self
            .page_tokens
            .parse_filtered(
                request.page_size,
                &request.page_token,
                active_filter(request.active),
            )
            .map_err(Error::from)?;
        let page =
            storage::list_products(&mut *self.connection().await?, request.active, &page).await?;
        Ok(Response::new(page))
    }

    async fn update_product(
        &self,
        request: Request<pb::UpdateProductRequest>,
    ) -> Result<Response<pb::Product>, Status> {
        let patch = ProductPatch::try_from(request.get_ref()).map_err(Error::InvalidArgument)?;
        let updated = self
            .outbox
            .transaction(None, async |connection| {
                let updated = storage::update_product(connection, &patch).await?;
                let event = events::product_updated(&updated);
                self.outbox.enqueue(connection, event).await?;
                Ok::<_, Error>(updated)
            })
            .await?;
        tracing::debug!(sku = %updated.sku, "product updated");
        Ok(Response::new(updated))
    }

    async fn get_stock(
        &self,
        request: Request<pb::GetStockRequest>,
    ) -> Result<Response<pb::StockLevel>, Status> {
        let sku = sku(&request.get_ref().sku)?;
        let stock = storage::get_stock(&mut *self.connection().await?, &sku).await?;
        Ok(Response::new(stock))
    }

    async fn batch_get_stock(
        &self,
        request: Request<pb::BatchGetStockRequest>,
    ) -> Result<Response<pb::BatchGetStockResponse>, Status> {
        let skus = parse_skus(&request.get_ref().skus).map_err(Error::InvalidArgument)?;
        let stock_levels = storage::batch_get_stock(&mut *self.connection().await?, &skus).await?;
        Ok(Response::new(pb::BatchGetStockResponse { stock_levels }))
    }

    async fn adjust_stock(
        &self,
        request: Request<pb::AdjustStockRequest>,
    ) -> Result<Response<pb::StockLevel>, Status> {
        let request = request.into_inner();
        let change = StockChange::try_from(&request).map_err(Error::InvalidArgument)?;
        let key = change
            .request_id
            .clone()
            .map(|id| IdempotencyKey::new("AdjustStock", id, &request));
        Ok(Response::new(
            self.change_stock(change, key, "StockAdjusted").await?,
        ))
    }

    async fn reserve_stock(
        &self,
        request: Request<pb::ReserveStockRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let request = request.into_inner();
        let reservation = NewReservation::try_from(&request).map_err(Error::InvalidArgument)?;
        let key = reservation
            .request_id
            .clone()
            .map(|id| IdempotencyKey::new("ReserveStock", id, &request));
        // A failed reservation returns an error, which is never recorded as the answer to `key`:
        // it holds nothing and may be retried under the same ids.
        let reserved = self
            .outbox
            .transaction(key.as_ref(), async |connection| {
                let reserved = storage::reserve(connection, &reservation).await?;
                if reserved.created {
                    let event = events::reservation(&reserved.reservation);
                    self.outbox.enqueue(connection, event).await?;
                    tracing::debug!(
                        reservation_id = reservation.id.as_str(),
                        lines = reservation.lines.len(),
                        "stock reserved"
                    );
                }
                Ok::<_, Error>(reserved.reservation)
            })
            .await?;
        Ok(Response::new(reserved))
    }

    async fn commit_reservation(
        &self,
        request: Request<pb::CommitReservationRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let reservation = self
            .finish(&request.get_ref().reservation_id, Outcome::Commit)
            .await?;
        Ok(Response::new(reservation))
    }

    async fn release_reservation(
        &self,
        request: Request<pb::ReleaseReservationRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let reservation = self
            .finish(&request.get_ref().reservation_id, Outcome::Release)
            .await?;
        Ok(Response::new(reservation))
    }

    async fn get_reservation(
        &self,
        request: Request<pb::GetReservationRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let id = ReservationId::parse(&request.get_ref().reservation_id, "reservation_id")
            .map_err(Error::from)?;
        let reservation = storage::get_reservation(&mut *self.connection().await?, &id).await?;
        Ok(Response::new(reservation))
    }

    async fn restock(
        &self,
        request: Request<pb::RestockRequest>,
    ) -> Result<Response<pb::StockLevel>, Status> {
        let request = request.into_inner();
        let change = StockChange::try_from(&request).map_err(Error::InvalidArgument)?;
        let key = change
            .request_id
            .clone()
            .map(|id| IdempotencyKey::new("Restock", id, &request));
        Ok(Response::new(
            self.change_stock(change, key, "StockRestocked").await?,
        ))
    }
}
