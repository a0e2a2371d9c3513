//! `OrderService` over gRPC: PlaceOrder checks everything it can before an order exists (the
//! customer, the SKUs, the card, through their services), prices the lines from inventory, saves
//! the order with its card token, and hands it to the saga.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::time::Duration;

use crowdcrunch_outbox::Outbox;
use crowdcrunch_proto::customers::v1 as customers;
use crowdcrunch_proto::inventory::v1 as inventory;
use crowdcrunch_proto::orders::v1 as pb;
use crowdcrunch_proto::orders::v1::order_service_server::OrderService;
use crowdcrunch_proto::payments::v1 as payments;
use crowdcrunch_runtime::access::Caller;
use crowdcrunch_runtime::auth::Identity;
use crowdcrunch_runtime::client::{UpstreamError, request};
use crowdcrunch_runtime::context::{ForwardedHeaders, current_traceparent};
use crowdcrunch_runtime::idempotency::{self, IdempotencyError, IdempotencyKey, RequestId};
use crowdcrunch_runtime::pagination::{self, PageTokens};
use crowdcrunch_runtime::status::FieldViolation;
use crowdcrunch_runtime::storage::{OwnedBy, now_micros};
use crowdcrunch_runtime::{Database, Shutdown};
use futures::Stream;
use prost::Message as _;
use tokio::sync::broadcast::error::RecvError;
use tonic::{Code, Request, Response, Status};
use tonic_types::StatusExt as _;

use crate::clients::Clients;
use crate::domain::{self, CustomerId, OrderId, OrderQuery, OrderStatus, PlaceOrder};
use crate::error::Error;
use crate::events;
use crate::order::{CardOnFile, Line, Order, Progress};
use crate::saga::Saga;
use crate::storage;
use crate::watch::OrderHub;

/// How long PlaceOrder and CancelOrder wait for the saga before answering with the order as it is.
const SETTLE_WAIT: Duration = Duration::from_secs(5);
/// How often WatchOrder re-reads the order (changes made by another replica).
const WATCH_POLL: Duration = Duration::from_secs(1);

/// The `OrderService` implementation.
#[derive(Clone)]
pub struct OrderApi {
    database: Database,
    outbox: Outbox,
    clients: Clients,
    hub: OrderHub,
    saga: Saga,
    shutdown: Shutdown,
    page_tokens: PageTokens,
}

impl OrderApi {
    /// The API over its database, outbox, clients, change hub and saga runner, signing its page
    /// tokens with `page_tokens`.
    pub(crate) fn new(
        database: Database,
        outbox: Outbox,
        clients: Clients,
        hub: OrderHub,
        saga: Saga,
        shutdown: Shutdown,
        page_tokens: PageTokens,
    ) -> Self {
        Self {
            database,
            outbox,
            clients,
            hub,
            saga,
            shutdown,
            page_tokens,
        }
    }

    /// Order `id`, when `owned_by` lets the caller see it (NotFound otherwise).
    async fn load(&self, id: &OrderId, owned_by: Option<OwnedBy<'_>>) -> Result<Order, Error> {
        let mut connection = self.database.acquire().await?;
        storage::get(&mut connection, id, owned_by).await
    }

    /// Waits until order `id` satisfies `settled` (or [`SETTLE_WAIT`] passes) and returns it.
    async fn wait_for(
        &self,
        id: &OrderId,
        settled: impl Fn(&Order) -> bool,
    ) -> Result<Order, Error> {
        let mut changes = self.hub.subscribe();
        let deadline = tokio::time::Instant::now() + SETTLE_WAIT;
        let mut order = self.load(id, None).await?;
        while !settled(&order) {
            // The order as its change committed; a watcher that fell behind reads it again.
            let changed = async {
                loop {
                    match changes.recv().await {
                        Ok(change) if change.id == *id => return Some(change),
                        Ok(_) => {}
                        Err(RecvError::Lagged(_)) => return None,
                        Err(RecvError::Closed) => std::future::pending::<()>().await,
                    }
                }
            };
            order = match tokio::time::timeout_at(deadline, changed).await {
                // Published late, by a writer that committed before what was read here.
                Ok(Some(change)) if change.update_time < order.update_time => continue,
                Ok(Some(change)) => Order::clone(&change),
                Ok(None) => self.load(id, None).await?,
                Err(_elapsed) => return self.load(id, None).await,
            };
        }
        Ok(order)
    }

    /// Checks with the other services what `order` names, and tokenizes its card: every problem is
    /// a field violation; an unreachable service is UNAVAILABLE.
    async fn check_and_price(
        &self,
        order: &PlaceOrder,
        caller: &Caller,
    ) -> Result<(Vec<Line>, String, payments::CardToken), Error> {
        let customer = self.check_customer(&order.customer_id, caller);
        let products = self.products(order);
        let token = self.tokenize(order);
        let (customer, products, token) = tokio::join!(customer, products, token);
        let mut violations = Vec::new();
        if let Err(violation) = customer? {
            violations.push(violation);
        }
        let products = products?;
        let token = match token? {
            Ok(token) => Some(token),
            Err(card_violations) => {
                violations.extend(card_violations);
                None
            }
        };
        let mut lines = Vec::new();
        let mut currencies = HashSet::new();
        for (index, line) in order.lines.iter().enumerate() {
            let field = format!("lines[{index}].sku");
            match products.get(line.sku.as_str()) {
                None => violations.push(FieldViolation::new(
                    field,
                    format!("no product has SKU {}", line.sku),
                )),
                Some(product) if !product.active => {
                    violations.push(FieldViolation::new(
                        field,
                        format!("{} is not for sale", line.sku),
                    ));
                }
                Some(product) => {
                    let price = product.price.as_ref().ok_or_else(|| {
                        Error::Corrupt(format!("inventory answered {} without a price", line.sku))
                    })?;
                    currencies.insert(price.currency_code.clone());
                    lines.push(Line {
                        sku: line.sku.clone(),
                        quantity: line.quantity,
                        unit_price_minor: price.minor_units,
                    });
                }
            }
        }
        if currencies.len() > 1 {
            violations.push(FieldViolation::new(
                "lines",
                "the products are priced in different currencies",
            ));
        }
        match (violations.is_empty(), token, currencies.into_iter().next()) {
            (true, Some(token), Some(currency)) => Ok((lines, currency, token)),
            _ => Err(Error::InvalidArgument(violations)),
        }
    }

    /// Whether the order may name customer `id`: one that exists and that `caller` may act for
    /// (another customer is answered as an unknown one).
    async fn check_customer(
        &self,
        id: &CustomerId,
        caller: &Caller,
    ) -> Result<Result<(), FieldViolation>, Error> {
        let unknown = || FieldViolation::new("customer_id", format!("no customer has id {id}"));
        if !caller.may_act_for(id.as_str()) {
            return Ok(Err(unknown()));
        }
        let message = customers::GetCustomerRequest { id: id.to_string() };
        match self
            .clients
            .customers
            .clone()
            .get_customer(request(message))
            .await
        {
            Ok(_) => Ok(Ok(())),
            Err(status) if status.code() == Code::NotFound => Ok(Err(unknown())),
            Err(status) => Err(UpstreamError::from_status("customers", status).into()),
        }
    }

    /// The products named by the order's lines, by SKU; unknown SKUs are absent.
    async fn products(
        &self,
        order: &PlaceOrder,
    ) -> Result<HashMap<String, inventory::Product>, Error> {
        let lookups = order.lines.iter().map(|line| {
            let mut client = self.clients.inventory.clone();
            let message = inventory::GetProductRequest {
                sku: line.sku.to_string(),
            };
            async move { client.get_product(request(message)).await }
        });
        let mut products = HashMap::new();
        for answer in futures::future::join_all(lookups).await {
            match answer {
                Ok(product) => {
                    let product = product.into_inner();
                    products.insert(product.sku.clone(), product);
                }
                Err(status) if status.code() == Code::NotFound => {}
                Err(status) => return Err(UpstreamError::from_status("inventory", status).into()),
            }
        }
        Ok(products)
    }

    async fn tokenize(
        &self,
        order: &PlaceOrder,
    ) -> Result<Result<payments::CardToken, Vec<FieldViolation>>, Error> {
        let message = payments::TokenizeCardRequest {
            card: Some(order.card.clone()),
            // Without a request id of its own, the tokenization is not idempotent either.
            request_id: order
                .request_id
                .as_ref()
                .map_or_else(String::new, |id| format!("{}:card", id.as_str())),
        };
        match self
            .clients
            .payments
            .clone()
            .tokenize_card(request(message))
            .await
        {
            Ok(token) => Ok(Ok(token.into_inner())),
            Err(status) if status.code() == Code::InvalidArgument => {
                let violations = status
                    .get_details_bad_request()
                    .map(|bad| {
                        bad.field_violations
                            .into_iter()
                            .map(|violation| {
                                FieldViolation::new(violation.field, violation.description)
                            })
                            .collect::<Vec<_>>()
                    })
                    .filter(|violations| !violations.is_empty())
                    .unwrap_or_else(|| vec![FieldViolation::new("card", status.message())]);
                Ok(Err(violations))
            }
            Err(status) => Err(UpstreamError::from_status("payments", status).into()),
        }
    }

    async fn place(&self, request: pb::PlaceOrderRequest, caller: &Caller) -> Result<Order, Error> {
        let placed = PlaceOrder::try_from(&request).map_err(Error::InvalidArgument)?;
        let key = placed
            .request_id
            .clone()
            .map(|id| IdempotencyKey::new(PLACE_ORDER, id, &fingerprint(&request, caller)));
        if let Some(key) = &key
            && let Some(existing) = self.replay(key, &placed, caller).await?
        {
            return Ok(existing);
        }
        let (lines, currency_code, token) = self.check_and_price(&placed, caller).await?;

        let now = now_micros();
        let order = Order {
            id: OrderId::mint(),
            request_id: placed.request_id.as_ref().map(|id| id.as_str().to_owned()),
            customer_id: placed.customer_id,
            currency_code,
            total_minor: crate::order::total_minor(&lines).map_err(Error::InvalidArgument)?,
            lines,
            address: placed.address,
            failure_reason: String::new(),
            cancellation_reason: String::new(),
            card: CardOnFile {
                token: token.token,
                brand: token.brand,
                last4: token.last4,
            },
            progress: Progress::pending(),
            attempts: 0,
            next_attempt_time: now,
            traceparent: current_traceparent(),
            forwarded_request_id: ForwardedHeaders::current()
                .request_id()
                .unwrap_or_default()
                .to_owned(),
            create_time: now,
            update_time: now,
        };
        let outbox = &self.outbox;
        // The answer recorded under the request id is the order's id: a replay reads the order as
        // it is then. A concurrent first use of the same request id that won answers its own id.
        let answer = outbox
            .transaction(key.as_ref(), async |connection| {
                storage::insert(connection, &order).await?;
                outbox
                    .enqueue(connection, events::order_placed(&order))
                    .await?;
                Ok::<_, Error>(pb::GetOrderRequest {
                    id: order.id.to_string(),
                })
            })
            .await?;
        if answer.id != order.id.as_str() {
            return self.load(&stored_order_id(&answer)?, None).await;
        }
        tracing::debug!(order_id = %order.id, total_minor = order.total_minor, "order placed");
        self.saga.wake();
        Ok(order)
    }

    /// The order an earlier PlaceOrder with the same request id created, if there was one: only for
    /// the same request by the same caller (anything else is a reused request id).
    async fn replay(
        &self,
        key: &IdempotencyKey,
        placed: &PlaceOrder,
        caller: &Caller,
    ) -> Result<Option<Order>, Error> {
        let mut connection = self.database.acquire().await?;
        if let Some(answer) =
            idempotency::replay::<pb::GetOrderRequest>(&mut connection, key).await?
        {
            let id = stored_order_id(&answer)?;
            return storage::get(&mut connection, &id, None).await.map(Some);
        }
        let Some(request_id) = &placed.request_id else {
            return Ok(None);
        };
        // An order placed before PlaceOrder recorded its request's fingerprint.
        match storage::find_by_request_id(&mut connection, request_id.as_str()).await? {
            Some(existing) => {
                replayed_unfingerprinted(existing, request_id.as_str(), caller).map(Some)
            }
            None => Ok(None),
        }
    }
}

/// The operation PlaceOrder's request ids are recorded under.
const PLACE_ORDER: &str = "PlaceOrder";

/// What a PlaceOrder request id is bound to: the request and who made it. The card enters by its
/// last four digits and expiry alone (the number and CVC are never stored here; payments binds
/// the whole card to the request id when it tokenizes it).
fn fingerprint(request: &pb::PlaceOrderRequest, caller: &Caller) -> prost_types::Any {
    let mut request = request.clone();
    if let Some(card) = &mut request.card {
        let digits: String = card.number.chars().filter(char::is_ascii_digit).collect();
        card.number = digits[digits.len().saturating_sub(4)..].to_owned();
        card.cvc.clear();
    }
    let caller = match caller.identity() {
        Identity::Anonymous => "anonymous".to_owned(),
        Identity::Customer { customer_id } => format!("customer/{customer_id}"),
        Identity::Staff { subject, .. } => format!("staff/{subject}"),
        Identity::Peer { service } => format!("service/{service}"),
    };
    prost_types::Any {
        type_url: format!("{PLACE_ORDER} by {caller}"),
        value: request.encode_to_vec(),
    }
}

/// The order id a PlaceOrder request id's record names.
fn stored_order_id(answer: &pb::GetOrderRequest) -> Result<OrderId, Error> {
    OrderId::parse(&answer.id, "id").map_err(|violation| {
        Error::Corrupt(format!(
            "a PlaceOrder request id names a bad order id: {}",
            violation.description
        ))
    })
}

/// The order a PlaceOrder request id created before fingerprints were recorded, for a caller who
/// may act for its customer; anyone else reuses a request id of another request, and learns
/// nothing of the order.
fn replayed_unfingerprinted(
    existing: Order,
    request_id: &str,
    caller: &Caller,
) -> Result<Order, Error> {
    if caller.may_act_for(existing.customer_id.as_str()) {
        Ok(existing)
    } else {
        Err(IdempotencyError::Reused {
            operation: PLACE_ORDER,
            request_id: request_id.to_owned(),
        }
        .into())
    }
}

/// The longest reason CancelOrder keeps, in characters.
const MAX_CANCELLATION_REASON_LEN: usize = 500;

/// Checks CancelOrder's `reason`: at most [`MAX_CANCELLATION_REASON_LEN`] characters, none of
/// them a control character.
fn check_cancellation_reason(reason: &str) -> Result<(), FieldViolation> {
    if reason.chars().count() > MAX_CANCELLATION_REASON_LEN || reason.chars().any(char::is_control)
    {
        return Err(FieldViolation::new(
            "reason",
            format!(
                "must be at most {MAX_CANCELLATION_REASON_LEN} characters, none of them a control character"
            ),
        ));
    }
    Ok(())
}

/// Checks the `id` field of a request.
fn parse_id(raw: &str) -> Result<OrderId, Error> {
    OrderId::parse(raw, "id").map_err(|violation| Error::InvalidArgument(vec![violation]))
}

type OrderStream = Pin<Box<dyn Stream<Item = Result<pb::Order, Status>> + Send>>;

#[tonic::async_trait]
impl OrderService for OrderApi {
    async fn place_order(
        &self,
        request: Request<pb::PlaceOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let caller = Caller::of(&request)?.clone();
        let placed = self.place(request.into_inner(), &caller).await?;
        let settled = self
            .wait_for(&placed.id, |order| order.status() != OrderStatus::Pending)
            .await?;
        Ok(Response::new(settled.to_proto()))
    }

    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let owned_by = storage::owned_by(Caller::of(&request)?.owner_scope());
        let id = parse_id(&request.get_ref().id)?;
        Ok(Response::new(self.load(&id, owned_by).await?.to_proto()))
    }

    async fn batch_get_orders(
        &self,
        request: Request<pb::BatchGetOrdersRequest>,
    ) -> Result<Response<pb::BatchGetOrdersResponse>, Status> {
        let owned_by = storage::owned_by(Caller::of(&request)?.owner_scope());
        let ids =
            domain::parse_order_ids(&request.get_ref().ids).map_err(Error::InvalidArgument)?;
        let mut connection = self.database.acquire().await.map_err(Error::from)?;
        let orders = storage::batch_get(&mut connection, &ids, owned_by).await?;
        Ok(Response::new(pb::BatchGetOrdersResponse {
            orders: orders.iter().map(Order::to_proto).collect(),
        }))
    }

    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        let owned_by = storage::owned_by(Caller::of(&request)?.owner_scope());
        let query = OrderQuery::parse(request.get_ref(), &self.page_tokens)
            .map_err(Error::InvalidArgument)?;
        let mut connection = self.database.acquire().await.map_err(Error::from)?;
        Ok(Response::new(
            list_page(&mut connection, &query, owned_by).await?,
        ))
    }

    async fn batch_list_orders(
        &self,
        request: Request<pb::BatchListOrdersRequest>,
    ) -> Result<Response<pb::BatchListOrdersResponse>, Status> {
        let owned_by = storage::owned_by(Caller::of(&request)?.owner_scope());
        let queries = pagination::parse_batch(&request.get_ref().requests, |request| {
            OrderQuery::parse(request, &self.page_tokens)
        })
        .map_err(Error::InvalidArgument)?;
        let mut connection = self.database.acquire().await.map_err(Error::from)?;
        let mut responses = Vec::with_capacity(queries.len());
        for query in &queries {
            responses.push(list_page(&mut connection, query, owned_by).await?);
        }
        Ok(Response::new(pb::BatchListOrdersResponse { responses }))
    }

    async fn cancel_order(
        &self,
        request: Request<pb::CancelOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let id = parse_id(&request.id)?;
        let violations: Vec<_> = [
            check_cancellation_reason(&request.reason).err(),
            RequestId::parse_optional(&request.request_id, "request_id").err(),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations).into());
        }
        let order = self
            .load(&id, storage::owned_by(caller.owner_scope()))
            .await?;
        let not_cancellable = |why: &str| Error::NotCancellable {
            id: order.id.to_string(),
            why: why.to_owned(),
        };
        match order.status() {
            OrderStatus::Cancelled => return Ok(Response::new(order.to_proto())),
            OrderStatus::Shipped | OrderStatus::Delivered => {
                Err(not_cancellable("it has shipped"))?
            }
            OrderStatus::Rejected | OrderStatus::PaymentDeclined => {
                Err(not_cancellable("it has failed"))?
            }
            OrderStatus::Pending | OrderStatus::Confirmed => {}
        }
        if !order.progress.cancel_requested {
            let reason = request.reason.clone();
            let outbox = &self.outbox;
            outbox
                .transaction(None, async |connection| {
                    storage::request_cancel(connection, &order.id, &reason).await?;
                    outbox
                        .enqueue(connection, events::cancellation_requested(&order, &reason))
                        .await?;
                    Ok::<_, Error>(())
                })
                .await?;
            self.saga.wake();
        }
        let settled = self
            .wait_for(&order.id, |order| {
                order.status() == OrderStatus::Cancelled || !order.progress.cancel_requested
            })
            .await?;
        if settled.status() != OrderStatus::Cancelled && !settled.progress.cancel_requested {
            return Err(Error::NotCancellable {
                id: settled.id.to_string(),
                why: "it has shipped".to_owned(),
            }
            .into());
        }
        Ok(Response::new(settled.to_proto()))
    }

    type WatchOrderStream = OrderStream;

    async fn watch_order(
        &self,
        request: Request<pb::WatchOrderRequest>,
    ) -> Result<Response<OrderStream>, Status> {
        let owned_by = storage::owned_by(Caller::of(&request)?.owner_scope());
        let id = parse_id(&request.get_ref().id)?;
        let mut changes = self.hub.subscribe();
        let first = self.load(&id, owned_by).await?.to_proto();
        let (sender, receiver) = tokio::sync::mpsc::channel(16);
        let api = self.clone();
        tokio::spawn(async move {
            let mut last = first;
            if sender.send(Ok(last.clone())).await.is_err() {
                return;
            }
            let mut poll = tokio::time::interval(WATCH_POLL);
            while !OrderStatus::from_proto(last.status).is_some_and(OrderStatus::is_final) {
                let next = tokio::select! {
                    change = changes.recv() => match change {
                        Ok(order) if order.id == id => Some(order.to_proto()),
                        Ok(_) => None,
                        Err(RecvError::Lagged(_)) => api.load(&id, None).await.ok().map(|order| order.to_proto()),
                        Err(RecvError::Closed) => return,
                    },
                    _ = poll.tick() => api.load(&id, None).await.ok().map(|order| order.to_proto()),
                    () = sender.closed() => return,
                    () = api.shutdown.cancelled() => {
                        let _ = sender.send(Err(Status::unavailable("the server is shutting down; watch again"))).await;
                        return;
                    }
                };
                if let Some(order) = next
                    && order.update_time != last.update_time
                {
                    last = order;
                    if sender.send(Ok(last.clone())).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        )))
    }
}

/// The page of orders `query` asks for.
async fn list_page(
    connection: &mut sqlx::AnyConnection,
    query: &OrderQuery,
    owned_by: Option<OwnedBy<'_>>,
) -> Result<pb::ListOrdersResponse, Error> {
    let (orders, next_page_token) = storage::list(
        connection,
        &query.page,
        query.customer_id.as_ref(),
        query.status,
        owned_by,
    )
    .await?;
    Ok(pb::ListOrdersResponse {
        orders: orders.iter().map(Order::to_proto).collect(),
        next_page_token,
    })
}
