//! `ExchangeService` over gRPC: parse the request, ask the services it needs, change the return in
//! a transaction with its event, answer.

use crowdcrunch_outbox::Outbox;
use crowdcrunch_proto::exchanges::v1 as pb;
use crowdcrunch_proto::exchanges::v1::exchange_service_server::ExchangeService;
use crowdcrunch_proto::fulfillment::v1 as fulfillment;
use crowdcrunch_proto::inventory::v1 as inventory;
use crowdcrunch_proto::orders::v1 as orders;
use crowdcrunch_proto::payments::v1 as payments;
use crowdcrunch_runtime::Database;
use crowdcrunch_runtime::access::Caller;
use crowdcrunch_runtime::client::{UpstreamError, request};
use crowdcrunch_runtime::idempotency::IdempotencyKey;
use crowdcrunch_runtime::pagination::PageTokens;
use crowdcrunch_runtime::status::FieldViolation;
use crowdcrunch_runtime::storage::{OwnedBy, now_micros};
use tonic::{Code, Request, Response, Status};

use crate::Clients;
use crate::domain::{
    DecisionRequest, NewReturn, OrderId, PaidOrder, PaymentId, Return, ReturnId, ReturnKind,
    ReturnQuery, ReturnStatus, ShipmentId, parse_receipt, parse_return_ids,
};
use crate::error::Error;
use crate::{events, storage};

/// The `ExchangeService` implementation.
#[derive(Debug, Clone)]
pub struct ExchangeApi {
    database: Database,
    outbox: Outbox,
    clients: Clients,
    page_tokens: PageTokens,
}

impl ExchangeApi {
    /// The API over its database and outbox, calling `clients`, signing its page tokens with
    /// `page_tokens`.
    pub fn new(
        database: Database,
        outbox: Outbox,
        clients: Clients,
        page_tokens: PageTokens,
    ) -> Self {
        Self {
            database,
            outbox,
            clients,
            page_tokens,
        }
    }

    async fn load(&self, id: &ReturnId, owned_by: Option<OwnedBy<'_>>) -> Result<Return, Error> {
        let mut connection = self.database.acquire().await?;
        storage::get(&mut connection, id, owned_by).await
    }

    /// The order `id` as the orders service answers it (asked with this service's own identity,
    /// so it is anyone's); an unknown order is a bad `order_id`.
    async fn order(&self, id: &OrderId) -> Result<orders::Order, Error> {
        let message = orders::GetOrderRequest { id: id.to_string() };
        match self
            .clients
            .orders
            .clone()
            .get_order(request(message))
            .await
        {
            Ok(order) => Ok(order.into_inner()),
            Err(status) if status.code() == Code::NotFound => Err(unknown_order(id)),
            Err(status) => Err(UpstreamError::from_status("orders", status).into()),
        }
    }

    /// Records a return of an order `caller` may act for: another customer's order is answered
    /// as an unknown one.
    async fn request_return(
        &self,
        request: pb::RequestReturnRequest,
        caller: &Caller,
    ) -> Result<pb::ReturnRequest, Error> {
        let wanted = NewReturn::try_from(&request).map_err(Error::InvalidArgument)?;
        let order = self.order(&wanted.order_id).await?;
        if !caller.may_act_for(&order.customer_id) {
            return Err(unknown_order(&wanted.order_id));
        }
        if !matches!(
            order.status(),
            orders::OrderStatus::Shipped | orders::OrderStatus::Delivered
        ) {
            return Err(Error::precondition(
                "ORDER_NOT_SHIPPED",
                &order.id,
                format!(
                    "order {} is {}; only shipped or delivered orders can be returned",
                    order.id,
                    order.status().as_str_name()
                ),
            ));
        }
        let order = paid(order)?;
        let key = wanted
            .request_id
            .clone()
            .map(|id| IdempotencyKey::new("RequestReturn", id, &request));
        let outbox = &self.outbox;
        outbox
            .transaction(key.as_ref(), async |connection| {
                let claimed = storage::claimed_units(connection, &order.id).await?;
                let record = wanted
                    .against(&order, &claimed, now_micros())
                    .map_err(Error::InvalidArgument)?;
                storage::insert(connection, &record).await?;
                outbox
                    .enqueue(connection, events::return_requested(&record))
                    .await?;
                Ok::<_, Error>(record.to_proto())
            })
            .await
    }

    /// Applies a staff decision (a repeat of one already made returns the return as it is),
    /// recording its event.
    async fn decide(&self, asked: DecisionRequest) -> Result<pb::ReturnRequest, Error> {
        let DecisionRequest { id, decision } = asked;
        let mut record = self.load(&id, None).await?;
        let current = record.status;
        let outcome = decision.outcome();
        if current == outcome {
            return Ok(record.to_proto());
        }
        if !decision.applies_to().contains(&current) {
            return Err(Error::precondition(
                "RETURN_STATUS",
                id.as_str(),
                format!("return {id} is {current}; it cannot become {outcome}"),
            ));
        }
        record.status = outcome;
        decision
            .rejection_reason()
            .clone_into(&mut record.rejection_reason);
        let outbox = &self.outbox;
        outbox
            .transaction(None, async |connection| {
                if storage::transition(connection, &record, current).await? {
                    outbox
                        .enqueue(connection, events::return_decided(&record, &decision))
                        .await?;
                }
                // Moved now or by someone else meanwhile: answer with what it is now.
                Ok::<_, Error>(storage::get(connection, &record.id, None).await?.to_proto())
            })
            .await
    }

    async fn receive(&self, id: &ReturnId) -> Result<pb::ReturnRequest, Error> {
        let mut record = self.load(id, None).await?;
        match record.status {
            ReturnStatus::Received => return Ok(record.to_proto()),
            ReturnStatus::Approved => {}
            other => {
                return Err(Error::precondition(
                    "RETURN_NOT_APPROVED",
                    id.as_str(),
                    format!("return {id} is {other}; only an approved return can be received"),
                ));
            }
        }
        let order = paid(self.order(&record.order_id).await?)?;
        match record.kind {
            ReturnKind::Exchange => {
                self.restock(&record).await?;
                record.replacement_shipment_id = Some(self.replace(&record, &order).await?);
            }
            // The money first: a refund payments refuses leaves nothing restocked, and the
            // return approved (staff may reject it); a refund made is replayed by its request id.
            ReturnKind::Return => {
                record.refund_payment_id = self.refund(&record, &order).await?;
                self.restock(&record).await?;
            }
        }
        record.status = ReturnStatus::Received;
        let outbox = &self.outbox;
        outbox
            .transaction(None, async |connection| {
                if storage::transition(connection, &record, ReturnStatus::Approved).await? {
                    outbox
                        .enqueue(connection, events::return_received(&record))
                        .await?;
                }
                Ok::<_, Error>(storage::get(connection, &record.id, None).await?.to_proto())
            })
            .await
    }

    async fn restock(&self, record: &Return) -> Result<(), Error> {
        for line in &record.lines {
            let message = inventory::RestockRequest {
                sku: line.sku.to_string(),
                quantity: line.quantity.get(),
                reason: format!("return {} received", record.id),
                request_id: format!("{}:restock:{}", record.id, line.sku),
            };
            self.clients
                .inventory
                .clone()
                .restock(request(message))
                .await
                .map_err(|status| UpstreamError::from_status("inventory", status))?;
        }
        Ok(())
    }

    /// Refunds what the return cost on the order's payment; the payment, unless there was
    /// nothing to refund. A refund payments refuses (the payment refunded by other means, in part
    /// or in full) is FAILED_PRECONDITION `REFUND_REFUSED`.
    async fn refund(&self, record: &Return, order: &PaidOrder) -> Result<Option<PaymentId>, Error> {
        if record.refund.minor_units == 0 {
            return Ok(None);
        }
        let Some(payment_id) = &order.payment_id else {
            return Err(Error::BrokenAnswer {
                service: "orders",
                problem: format!("shipped order {} has no payment", order.id),
            });
        };
        let message = payments::RefundPaymentRequest {
            id: payment_id.to_string(),
            amount: Some(record.refund.clone()),
            reason: format!("return {}", record.id),
            request_id: format!("{}:refund", record.id),
        };
        match self
            .clients
            .payments
            .clone()
            .refund_payment(request(message))
            .await
        {
            Ok(payment) => Ok(Some(PaymentId::known(payment.into_inner().id))),
            // Refunded or partly refunded by other means meanwhile: the return cannot be refunded
            // as it stands, and nothing of it has happened yet.
            Err(status) if status.code() == Code::FailedPrecondition => Err(Error::precondition(
                "REFUND_REFUSED",
                record.id.as_str(),
                format!(
                    "return {} cannot refund {} {} minor units on payment {payment_id}: {}; \
                     nothing was restocked, and the return may be rejected",
                    record.id,
                    record.refund.minor_units,
                    record.refund.currency_code,
                    status.message()
                ),
            )),
            Err(status) => Err(UpstreamError::from_status("payments", status).into()),
        }
    }

    /// Reserves and commits replacement stock (reservation id = return id), then ships it.
    async fn replace(&self, record: &Return, order: &PaidOrder) -> Result<ShipmentId, Error> {
        let reservation = inventory::ReserveStockRequest {
            reservation_id: record.id.to_string(),
            lines: record
                .lines
                .iter()
                .map(|line| inventory::ReservationLine {
                    sku: line.sku.to_string(),
                    quantity: line.quantity.get(),
                })
                .collect(),
            request_id: format!("{}:reserve", record.id),
        };
        let mut inventory = self.clients.inventory.clone();
        match inventory.reserve_stock(request(reservation)).await {
            Ok(_) => {}
            Err(status) if status.code() == Code::FailedPrecondition => {
                return Err(Error::precondition(
                    "REPLACEMENT_OUT_OF_STOCK",
                    record.id.as_str(),
                    format!(
                        "no replacement stock for return {}: {}",
                        record.id,
                        status.message()
                    ),
                ));
            }
            Err(status) => return Err(UpstreamError::from_status("inventory", status).into()),
        }
        let commit = inventory::CommitReservationRequest {
            reservation_id: record.id.to_string(),
        };
        inventory
            .commit_reservation(request(commit))
            .await
            .map_err(|status| UpstreamError::from_status("inventory", status))?;
        let shipment = fulfillment::Shipment {
            order_id: record.order_id.to_string(),
            customer_id: order.customer_id.clone(),
            return_id: record.id.to_string(),
            lines: record
                .lines
                .iter()
                .map(|line| fulfillment::ShipmentLine {
                    sku: line.sku.to_string(),
                    quantity: line.quantity.get(),
                })
                .collect(),
            address: order.shipping_address.clone(),
            ..Default::default()
        };
        let message = fulfillment::CreateShipmentRequest {
            shipment: Some(shipment),
            request_id: format!("{}:ship", record.id),
        };
        let created = self
            .clients
            .fulfillment
            .clone()
            .create_shipment(request(message))
            .await
            .map_err(|status| UpstreamError::from_status("fulfillment", status))?;
        Ok(ShipmentId::known(created.into_inner().id))
    }
}

/// The answer for an order that does not exist, or that the caller may not see.
fn unknown_order(id: &OrderId) -> Error {
    Error::InvalidArgument(vec![FieldViolation::new(
        "order_id",
        format!("no order has id {id}"),
    )])
}

/// What a return needs of `order`; an answer without its prices is the orders service's fault.
fn paid(order: orders::Order) -> Result<PaidOrder, Error> {
    PaidOrder::try_from(order).map_err(|problem| Error::BrokenAnswer {
        service: "orders",
        problem,
    })
}

#[tonic::async_trait]
impl ExchangeService for ExchangeApi {
    async fn request_return(
        &self,
        request: Request<pb::RequestReturnRequest>,
    ) -> Result<Response<pb::ReturnRequest>, Status> {
        let caller = Caller::of(&request)?.clone();
        Ok(Response::new(
            ExchangeApi::request_return(self, request.into_inner(), &caller).await?,
        ))
    }

    async fn approve_return(
        &self,
        request: Request<pb::ApproveReturnRequest>,
    ) -> Result<Response<pb::ReturnRequest>, Status> {
        let asked = DecisionRequest::try_from(request.get_ref()).map_err(Error::InvalidArgument)?;
        Ok(Response::new(self.decide(asked).await?))
    }

    async fn reject_return(
        &self,
        request: Request<pb::RejectReturnRequest>,
    ) -> Result<Response<pb::ReturnRequest>, Status> {
        let asked = DecisionRequest::try_from(request.get_ref()).map_err(Error::InvalidArgument)?;
        Ok(Response::new(self.decide(asked).await?))
    }

    async fn receive_return(
        &self,
        request: Request<pb::ReceiveReturnRequest>,
    ) -> Result<Response<pb::ReturnRequest>, Status> {
        let id = parse_receipt(request.get_ref()).map_err(Error::InvalidArgument)?;
        Ok(Response::new(self.receive(&id).await?))
    }

    async fn get_return(
        &self,
        request: Request<pb::GetReturnRequest>,
    ) -> Result<Response<pb::ReturnRequest>, Status> {
        let owned_by = storage::owned_by(Caller::of(&request)?.owner_scope());
        let id = ReturnId::parse(&request.get_ref().id, "id")
            .map_err(|violation| Error::InvalidArgument(vec![violation]))?;
        Ok(Response::new(self.load(&id, owned_by).await?.to_proto()))
    }

    async fn batch_get_returns(
        &self,
        request: Request<pb::BatchGetReturnsRequest>,
    ) -> Result<Response<pb::BatchGetReturnsResponse>, Status> {
        let owned_by = storage::owned_by(Caller::of(&request)?.owner_scope());
        let ids = parse_return_ids(&request.get_ref().ids).map_err(Error::InvalidArgument)?;
        let mut connection = self.database.acquire().await.map_err(Error::from)?;
        let returns = storage::batch_get(&mut connection, &ids, owned_by).await?;
        Ok(Response::new(pb::BatchGetReturnsResponse {
            returns: returns.iter().map(Return::to_proto).collect(),
        }))
    }

    async fn list_returns(
        &self,
        request: Request<pb::ListReturnsRequest>,
    ) -> Result<Response<pb::ListReturnsResponse>, Status> {
        let owned_by = storage::owned_by(Caller::of(&request)?.owner_scope());
        let query = ReturnQuery::parse(request.get_ref(), &self.page_tokens)
            .map_err(Error::InvalidArgument)?;
        let mut connection = self.database.acquire().await.map_err(Error::from)?;
        let (returns, next_page_token) = storage::list(&mut connection, &query, owned_by).await?;
        Ok(Response::new(pb::ListReturnsResponse {
            returns: returns.iter().map(Return::to_proto).collect(),
            next_page_token,
        }))
    }
}
