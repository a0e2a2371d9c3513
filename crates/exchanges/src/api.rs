//! `ExchangeService` over gRPC.

use crowdcrunch_outbox::{Event, Outbox};
use crowdcrunch_proto::exchanges::v1 as pb;
use crowdcrunch_proto::exchanges::v1::exchange_service_server::ExchangeService;
use crowdcrunch_proto::fulfillment::v1 as fulfillment;
use crowdcrunch_proto::inventory::v1 as inventory;
use crowdcrunch_proto::orders::v1 as orders;
use crowdcrunch_proto::payments::v1 as payments;
use crowdcrunch_proto::r#type::v1::Money;
use crowdcrunch_runtime::Database;
use crowdcrunch_runtime::client::{UpstreamError, request};
use crowdcrunch_runtime::idempotency::{IdempotencyKey, RequestId};
use crowdcrunch_runtime::pagination;
use crowdcrunch_runtime::status::FieldViolation;
use crowdcrunch_runtime::storage::now_micros;
use tonic::{Code, Request, Response, Status};

use crate::Clients;
use crate::domain::{self, NewReturn};
use crate::error::Error;
use crate::storage::{self, ReturnRecord};

/// The `ExchangeService` implementation.
#[derive(Debug, Clone)]
pub struct ExchangeApi {
    database: Database,
    outbox: Outbox,
    clients: Clients,
}

impl ExchangeApi {
    /// The API over its database and outbox, calling `clients`.
    pub fn new(database: Database, outbox: Outbox, clients: Clients) -> Self {
        Self {
            database,
            outbox,
            clients,
        }
    }

    async fn load(&self, id: &str) -> Result<ReturnRecord, Error> {
        domain::check_id(id, "id").map_err(|violation| Error::InvalidArgument(vec![violation]))?;
        let mut connection = self.database.pool().acquire().await?;
        storage::get(&mut connection, id).await
    }

    async fn order(&self, id: &str) -> Result<orders::Order, Error> {
        let message = orders::GetOrderRequest { id: id.to_owned() };
        match self
            .clients
            .orders
            .clone()
            .get_order(request(message))
            .await
        {
            Ok(order) => Ok(order.into_inner()),
            Err(status) if status.code() == Code::NotFound => {
                Err(Error::InvalidArgument(vec![FieldViolation::new(
                    "order_id",
                    format!("no order has id {id}"),
                )]))
            }
            Err(status) => Err(UpstreamError::from_status("orders", status).into()),
        }
    }

    async fn request_return(
        &self,
        request: pb::RequestReturnRequest,
    ) -> Result<pb::ReturnRequest, Error> {
        let wanted = domain::parse_new_return(&request).map_err(Error::InvalidArgument)?;
        let order = self.order(&wanted.order_id).await?;
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
        let key = wanted
            .request_id
            .clone()
            .map(|id| IdempotencyKey::new("RequestReturn", id, &request));
        let outbox = &self.outbox;
        outbox
            .transaction(key.as_ref(), async |connection| {
                let claimed = storage::claimed_units(connection, &order.id).await?;
                let record = new_record(&wanted, &order, &claimed)?;
                storage::insert(connection, &record).await?;
                let data = serde_json::json!({
                    "return_id": record.id,
                    "order_id": record.order_id,
                    "kind": record.kind().as_str_name(),
                    "lines": record.lines.iter().map(|(sku, quantity)| serde_json::json!({"sku": sku, "quantity": quantity})).collect::<Vec<_>>(),
                    "refund_minor": record.refund_minor,
                    "currency_code": record.currency_code,
                });
                outbox.enqueue(connection, Event::new("ReturnRequested", record.order_id.clone(), data)).await?;
                Ok::<_, Error>(record.to_proto())
            })
            .await
    }

    /// Moves a return from one of `from` to `to` (a repeat of a move already made returns it as it
    /// is), recording `event_type`.
    async fn decide(
        &self,
        id: &str,
        request_id: &str,
        from: &[pb::ReturnStatus],
        to: pb::ReturnStatus,
        rejection_reason: &str,
        event_type: &'static str,
    ) -> Result<pb::ReturnRequest, Error> {
        RequestId::parse_optional(request_id, "request_id")
            .map_err(|violation| Error::InvalidArgument(vec![violation]))?;
        let mut record = self.load(id).await?;
        let current = record.status();
        if current == to {
            return Ok(record.to_proto());
        }
        if !from.contains(&current) {
            return Err(Error::precondition(
                "RETURN_STATUS",
                id,
                format!(
                    "return {id} is {}; it cannot become {}",
                    current.as_str_name(),
                    to.as_str_name()
                ),
            ));
        }
        record.status = i64::from(to as i32);
        record.rejection_reason = rejection_reason.to_owned();
        let outbox = &self.outbox;
        outbox
            .transaction(None, async |connection| {
                if !storage::transition(connection, &record, current).await? {
                    // Someone else moved it meanwhile: answer with what it is now.
                    return Ok(storage::get(connection, &record.id).await?.to_proto());
                }
                let data = serde_json::json!({ "return_id": record.id, "order_id": record.order_id, "reason": rejection_reason });
                outbox.enqueue(connection, Event::new(event_type, record.order_id.clone(), data)).await?;
                Ok::<_, Error>(storage::get(connection, &record.id).await?.to_proto())
            })
            .await
    }

    async fn receive(&self, id: &str, request_id: &str) -> Result<pb::ReturnRequest, Error> {
        RequestId::parse_optional(request_id, "request_id")
            .map_err(|violation| Error::InvalidArgument(vec![violation]))?;
        let mut record = self.load(id).await?;
        match record.status() {
            pb::ReturnStatus::Received => return Ok(record.to_proto()),
            pb::ReturnStatus::Approved => {}
            other => {
                return Err(Error::precondition(
                    "RETURN_NOT_APPROVED",
                    id,
                    format!(
                        "return {id} is {}; only an approved return can be received",
                        other.as_str_name()
                    ),
                ));
            }
        }
        let order = self.order(&record.order_id).await?;
        self.restock(&record).await?;
        match record.kind() {
            pb::ReturnKind::Exchange => {
                record.replacement_shipment_id = self.replace(&record, &order).await?
            }
            _ => record.refund_payment_id = self.refund(&record, &order).await?,
        }
        record.status = i64::from(pb::ReturnStatus::Received as i32);
        let outbox = &self.outbox;
        outbox
            .transaction(None, async |connection| {
                if storage::transition(connection, &record, pb::ReturnStatus::Approved).await? {
                    let data = serde_json::json!({
                        "return_id": record.id,
                        "order_id": record.order_id,
                        "kind": record.kind().as_str_name(),
                        "refund_minor": record.refund_minor,
                        "refund_payment_id": record.refund_payment_id,
                        "replacement_shipment_id": record.replacement_shipment_id,
                    });
                    outbox
                        .enqueue(
                            connection,
                            Event::new("ReturnReceived", record.order_id.clone(), data),
                        )
                        .await?;
                }
                Ok::<_, Error>(storage::get(connection, &record.id).await?.to_proto())
            })
            .await
    }

    async fn restock(&self, record: &ReturnRecord) -> Result<(), Error> {
        for (sku, quantity) in &record.lines {
            let message = inventory::RestockRequest {
                sku: sku.clone(),
                quantity: i32::try_from(*quantity).unwrap_or(i32::MAX),
                reason: format!("return {} received", record.id),
                request_id: format!("{}:restock:{sku}", record.id),
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

    async fn refund(&self, record: &ReturnRecord, order: &orders::Order) -> Result<String, Error> {
        if record.refund_minor == 0 {
            return Ok(String::new());
        }
        let message = payments::RefundPaymentRequest {
            id: order.payment_id.clone(),
            amount: Some(Money {
                currency_code: record.currency_code.clone(),
                minor_units: record.refund_minor,
            }),
            reason: format!("return {}", record.id),
            request_id: format!("{}:refund", record.id),
        };
        let payment = self
            .clients
            .payments
            .clone()
            .refund_payment(request(message))
            .await
            .map_err(|status| UpstreamError::from_status("payments", status))?;
        Ok(payment.into_inner().id)
    }

    /// Reserves and commits replacement stock (reservation id = return id), then ships it.
    async fn replace(&self, record: &ReturnRecord, order: &orders::Order) -> Result<String, Error> {
        let reservation = inventory::ReserveStockRequest {
            reservation_id: record.id.clone(),
            lines: record
                .lines
                .iter()
                .map(|(sku, quantity)| inventory::ReservationLine {
                    sku: sku.clone(),
                    quantity: i32::try_from(*quantity).unwrap_or(i32::MAX),
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
                    &record.id,
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
            reservation_id: record.id.clone(),
        };
        inventory
            .commit_reservation(request(commit))
            .await
            .map_err(|status| UpstreamError::from_status("inventory", status))?;
        let shipment = fulfillment::Shipment {
            order_id: record.order_id.clone(),
            return_id: record.id.clone(),
            lines: record
                .lines
                .iter()
                .map(|(sku, quantity)| fulfillment::ShipmentLine {
                    sku: sku.clone(),
                    quantity: i32::try_from(*quantity).unwrap_or(i32::MAX),
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
        Ok(created.into_inner().id)
    }
}

/// The record of a new return of `wanted` against `order`, given the units other returns claim;
/// quantities over what is returnable are field violations.
fn new_record(
    wanted: &NewReturn,
    order: &orders::Order,
    claimed: &std::collections::HashMap<String, i64>,
) -> Result<ReturnRecord, Error> {
    let mut violations = Vec::new();
    let mut refund_minor = 0;
    for (index, (sku, quantity)) in wanted.lines.iter().enumerate() {
        let Some(line) = order.lines.iter().find(|line| &line.sku == sku) else {
            violations.push(FieldViolation::new(
                format!("lines[{index}].sku"),
                format!("order {} has no {sku}", order.id),
            ));
            continue;
        };
        let returnable = i64::from(line.quantity) - claimed.get(sku).copied().unwrap_or(0);
        if *quantity > returnable {
            violations.push(FieldViolation::new(
                format!("lines[{index}].quantity"),
                format!("at most {returnable} of {sku} can still be returned"),
            ));
        }
        let unit_price = line
            .unit_price
            .as_ref()
            .map_or(0, |price| price.minor_units);
        refund_minor += unit_price * quantity;
    }
    if !violations.is_empty() {
        return Err(Error::InvalidArgument(violations));
    }
    let now = now_micros();
    Ok(ReturnRecord {
        id: uuid::Uuid::now_v7().to_string(),
        order_id: order.id.clone(),
        kind: i64::from(wanted.kind as i32),
        status: i64::from(pb::ReturnStatus::Requested as i32),
        reason: wanted.reason.clone(),
        rejection_reason: String::new(),
        currency_code: order
            .total
            .as_ref()
            .map(|total| total.currency_code.clone())
            .unwrap_or_default(),
        refund_minor: if wanted.kind == pb::ReturnKind::Return {
            refund_minor
        } else {
            0
        },
        refund_payment_id: String::new(),
        replacement_shipment_id: String::new(),
        create_time: now,
        update_time: now,
        lines: wanted.lines.clone(),
    })
}

/// An id list `field` of a request, each id checked.
fn parse_ids(ids: &[String], field: &str) -> Result<Vec<String>, Error> {
    pagination::parse_ids(ids, field, |id, field| {
        domain::check_id(id, field).map(|()| id.to_owned())
    })
    .map_err(Error::InvalidArgument)
}

#[tonic::async_trait]
impl ExchangeService for ExchangeApi {
    async fn request_return(
        &self,
        request: Request<pb::RequestReturnRequest>,
    ) -> Result<Response<pb::ReturnRequest>, Status> {
        Ok(Response::new(
            ExchangeApi::request_return(self, request.into_inner()).await?,
        ))
    }

    async fn approve_return(
        &self,
        request: Request<pb::ApproveReturnRequest>,
    ) -> Result<Response<pb::ReturnRequest>, Status> {
        let request = request.get_ref();
        let from = [pb::ReturnStatus::Requested];
        let approved = self
            .decide(
                &request.id,
                &request.request_id,
                &from,
                pb::ReturnStatus::Approved,
                "",
                "ReturnApproved",
            )
            .await?;
        Ok(Response::new(approved))
    }

    async fn reject_return(
        &self,
        request: Request<pb::RejectReturnRequest>,
    ) -> Result<Response<pb::ReturnRequest>, Status> {
        let request = request.get_ref();
        let mut violations = Vec::new();
        if request.reason.trim().is_empty() {
            violations.push(FieldViolation::new(
                "reason",
                "is required to reject a return",
            ));
        }
        domain::check_reason(&request.reason, "reason", &mut violations);
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations).into());
        }
        let from = [pb::ReturnStatus::Requested, pb::ReturnStatus::Approved];
        let rejected = self
            .decide(
                &request.id,
                &request.request_id,
                &from,
                pb::ReturnStatus::Rejected,
                &request.reason,
                "ReturnRejected",
            )
            .await?;
        Ok(Response::new(rejected))
    }

    async fn receive_return(
        &self,
        request: Request<pb::ReceiveReturnRequest>,
    ) -> Result<Response<pb::ReturnRequest>, Status> {
        let request = request.get_ref();
        Ok(Response::new(
            self.receive(&request.id, &request.request_id).await?,
        ))
    }

    async fn get_return(
        &self,
        request: Request<pb::GetReturnRequest>,
    ) -> Result<Response<pb::ReturnRequest>, Status> {
        Ok(Response::new(
            self.load(&request.get_ref().id).await?.to_proto(),
        ))
    }

    async fn batch_get_returns(
        &self,
        request: Request<pb::BatchGetReturnsRequest>,
    ) -> Result<Response<pb::BatchGetReturnsResponse>, Status> {
        let ids = parse_ids(&request.get_ref().ids, "ids")?;
        let mut connection = self.database.pool().acquire().await.map_err(Error::from)?;
        let returns = storage::batch_get(&mut connection, &ids).await?;
        Ok(Response::new(pb::BatchGetReturnsResponse {
            returns: returns.iter().map(ReturnRecord::to_proto).collect(),
        }))
    }

    async fn list_returns(
        &self,
        request: Request<pb::ListReturnsRequest>,
    ) -> Result<Response<pb::ListReturnsResponse>, Status> {
        let request = request.get_ref();
        let (page, order_ids) = pagination::parse_id_filtered_page(
            request.page_size,
            &request.page_token,
            "order_ids",
            &request.order_ids,
            |id, field| domain::check_id(id, field).map(|()| id.to_owned()),
            String::as_str,
        )
        .map_err(Error::InvalidArgument)?;
        let mut connection = self.database.pool().acquire().await.map_err(Error::from)?;
        let (returns, next_page_token) = storage::list(&mut connection, &page, &order_ids).await?;
        Ok(Response::new(pb::ListReturnsResponse {
            returns: returns.iter().map(ReturnRecord::to_proto).collect(),
            next_page_token,
        }))
    }
}
