//! The order lifecycle across every service, over real gRPC against `crowdcrunch dev` (each service
//! on its own free port, embedded storage): placing, paying, shipping, cancelling, returning and
//! exchanging, and the story the ledger tells of each order.

#[expect(
    dead_code,
    reason = "this test uses a part of the shared support module"
)]
mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crowdcrunch::roster;
use crowdcrunch_proto::customers::v1 as customers;
use crowdcrunch_proto::exchanges::v1 as exchanges;
use crowdcrunch_proto::fulfillment::v1 as fulfillment;
use crowdcrunch_proto::inventory::v1 as inventory;
use crowdcrunch_proto::ledger::v1 as ledger;
use crowdcrunch_proto::orders::v1 as orders;
use crowdcrunch_proto::payments::v1 as payments;
use crowdcrunch_proto::r#type::v1::{Address, Money, PaymentCard};
use crowdcrunch_runtime::client::{Endpoints, GrpcChannel, ServiceToken};
use crowdcrunch_runtime::testing::violated_fields;
use support::Process;
use tonic::Code;

const APPROVED: &str = "4242424242424242";
const DECLINED: &str = "4000000000000002";
const NO_FUNDS: &str = "4000000000009995";

/// What the ledger tells of an order until it is confirmed, in the order it happens (the ledger
/// keeps the order of each source's events; across sources, the order of their arrival).
const CONFIRMED_STORY: [&str; 7] = [
    "OrderPlaced",
    "StockReserved",
    "PaymentAuthorized",
    "PaymentCaptured",
    "ReservationCommitted",
    "ShipmentCreated",
    "OrderConfirmed",
];

/// `crowdcrunch dev` on free ports, with a client per service.
struct System {
    _process: Process,
    _data_dir: tempfile::TempDir,
    customers: customers::customer_service_client::CustomerServiceClient<GrpcChannel>,
    inventory: inventory::inventory_service_client::InventoryServiceClient<GrpcChannel>,
    orders: orders::order_service_client::OrderServiceClient<GrpcChannel>,
    payments: payments::payment_service_client::PaymentServiceClient<GrpcChannel>,
    fulfillment: fulfillment::fulfillment_service_client::FulfillmentServiceClient<GrpcChannel>,
    exchanges: exchanges::exchange_service_client::ExchangeServiceClient<GrpcChannel>,
    ledger: ledger::ledger_service_client::LedgerServiceClient<GrpcChannel>,
}

/// A channel to the service at `addr`, calling with `token` (a member of staff's: the story
/// reads everything and runs the back office).
async fn channel(addr: SocketAddr, token: &ServiceToken) -> GrpcChannel {
    let endpoints = Endpoints::parse(&format!("http://{addr}")).expect("a URL");
    crowdcrunch_runtime::client::channel(&endpoints, None)
        .expect("a channel")
        .carrying(token.clone())
}

impl System {
    async fn start() -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut process = Process::start(support::dev(data_dir.path()));
        let mut addrs = HashMap::new();
        // In the order of the table `dev` prints.
        for service in roster::by_port() {
            addrs.insert(service.name, process.wait_for_table_addr(service.name));
        }
        process.wait_for_line("demo data seeded");
        let staff = ServiceToken::new(&support::token(
            data_dir.path(),
            &["--staff", "lifecycle-test"],
        ))
        .expect("a token");
        Self {
            customers: customers::customer_service_client::CustomerServiceClient::new(
                channel(addrs["customers"], &staff).await,
            ),
            inventory: inventory::inventory_service_client::InventoryServiceClient::new(
                channel(addrs["inventory"], &staff).await,
            ),
            orders: orders::order_service_client::OrderServiceClient::new(
                channel(addrs["orders"], &staff).await,
            ),
            payments: payments::payment_service_client::PaymentServiceClient::new(
                channel(addrs["payments"], &staff).await,
            ),
            fulfillment: fulfillment::fulfillment_service_client::FulfillmentServiceClient::new(
                channel(addrs["fulfillment"], &staff).await,
            ),
            exchanges: exchanges::exchange_service_client::ExchangeServiceClient::new(
                channel(addrs["exchanges"], &staff).await,
            ),
            ledger: ledger::ledger_service_client::LedgerServiceClient::new(
                channel(addrs["ledger"], &staff).await,
            ),
            _process: process,
            _data_dir: data_dir,
        }
    }

    async fn customer(&self, email: &str) -> String {
        let request = customers::CreateCustomerRequest {
            customer: Some(customers::Customer {
                email: email.into(),
                display_name: "Test".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        };
        self.customers
            .clone()
            .create_customer(request)
            .await
            .expect("create customer")
            .into_inner()
            .id
    }

    async fn product(&self, sku: &str, cents: i64, stock: i32) {
        let request = inventory::CreateProductRequest {
            product: Some(inventory::Product {
                sku: sku.into(),
                title: format!("Product {sku}"),
                price: Some(usd(cents)),
                active: true,
                ..Default::default()
            }),
            initial_stock: stock,
            request_id: String::new(),
        };
        self.inventory
            .clone()
            .create_product(request)
            .await
            .expect("create product");
    }

    async fn stock(&self, sku: &str) -> (i32, i32) {
        let level = self
            .inventory
            .clone()
            .get_stock(inventory::GetStockRequest { sku: sku.into() })
            .await
            .expect("get stock")
            .into_inner();
        (level.on_hand, level.reserved)
    }

    async fn place(
        &self,
        customer_id: &str,
        lines: &[(&str, i32)],
        card: &str,
        request_id: &str,
    ) -> Result<orders::Order, tonic::Status> {
        self.orders
            .clone()
            .place_order(place_request(customer_id, lines, card, request_id))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Waits (bounded) until order `id` is in `status`.
    async fn order_in(&self, id: &str, status: orders::OrderStatus) -> orders::Order {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let order = self
                .orders
                .clone()
                .get_order(orders::GetOrderRequest { id: id.into() })
                .await
                .expect("get order")
                .into_inner();
            if order.status() == status || Instant::now() > deadline {
                assert_eq!(
                    order.status(),
                    status,
                    "order {id}: {}",
                    order.failure_reason
                );
                return order;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn payment_of(&self, order_id: &str) -> payments::Payment {
        let listed = self
            .payments
            .clone()
            .list_payments(payments::ListPaymentsRequest {
                order_ids: vec![order_id.into()],
                ..Default::default()
            })
            .await
            .expect("list payments")
            .into_inner();
        listed.payments.into_iter().last().expect("a payment")
    }

    async fn shipments_of(&self, order_id: &str) -> Vec<fulfillment::Shipment> {
        self.fulfillment
            .clone()
            .list_shipments(fulfillment::ListShipmentsRequest {
                order_ids: vec![order_id.into()],
                ..Default::default()
            })
            .await
            .expect("list shipments")
            .into_inner()
            .shipments
    }

    async fn move_shipment(
        &self,
        id: &str,
        status: fulfillment::ShipmentStatus,
    ) -> fulfillment::Shipment {
        let request = fulfillment::UpdateShipmentStatusRequest {
            id: id.into(),
            status: status.into(),
            tracking_number: "1Z999AA10123456784".into(),
            request_id: String::new(),
        };
        self.fulfillment
            .clone()
            .update_shipment_status(request)
            .await
            .expect("update shipment")
            .into_inner()
    }

    /// The types of the ledger's events about `subject`, once `wanted` of them are there.
    async fn story(&self, subject: &str, wanted: &[&str]) -> Vec<String> {
        self.events(subject, wanted)
            .await
            .into_iter()
            .map(|event| event.r#type)
            .collect()
    }

    /// The ledger's events about `subject`, once events of the `wanted` types are there.
    async fn events(&self, subject: &str, wanted: &[&str]) -> Vec<ledger::Event> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let events = self
                .ledger
                .clone()
                .list_events(ledger::ListEventsRequest {
                    subjects: vec![subject.into()],
                    page_size: 1000,
                    ..Default::default()
                })
                .await
                .expect("list events")
                .into_inner()
                .events;
            let types: Vec<String> = events.iter().map(|event| event.r#type.clone()).collect();
            if wanted
                .iter()
                .all(|event_type| types.iter().any(|seen| seen == event_type))
                || Instant::now() > deadline
            {
                let sequences: Vec<i64> = events.iter().map(|event| event.sequence).collect();
                assert!(
                    sequences.windows(2).all(|pair| pair[0] < pair[1]),
                    "in sequence order"
                );
                return events;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn usd(cents: i64) -> Money {
    Money {
        currency_code: "USD".into(),
        minor_units: cents,
    }
}

fn address() -> Address {
    Address {
        recipient: "Ada Lovelace".into(),
        line1: "12 St James's Square".into(),
        city: "London".into(),
        postal_code: "SW1Y 4JH".into(),
        country_code: "GB".into(),
        ..Default::default()
    }
}

fn card(number: &str) -> PaymentCard {
    PaymentCard {
        number: number.into(),
        exp_month: 12,
        exp_year: 2031,
        cvc: "123".into(),
    }
}

fn place_request(
    customer_id: &str,
    lines: &[(&str, i32)],
    number: &str,
    request_id: &str,
) -> orders::PlaceOrderRequest {
    orders::PlaceOrderRequest {
        request_id: request_id.into(),
        customer_id: customer_id.into(),
        lines: lines
            .iter()
            .map(|(sku, quantity)| orders::OrderLine {
                sku: (*sku).into(),
                quantity: *quantity,
                ..Default::default()
            })
            .collect(),
        card: Some(card(number)),
        shipping_address: Some(address()),
    }
}

#[tokio::test]
async fn an_order_is_paid_shipped_delivered_returned_and_exchanged() {
    let system = System::start().await;
    let customer = system.customer("story@example.com").await;
    system.product("STORY-MUG", 1250, 10).await;
    system.product("STORY-TEE", 1999, 10).await;

    let order = system
        .place(
            &customer,
            &[("STORY-MUG", 2), ("STORY-TEE", 1)],
            APPROVED,
            "story-1",
        )
        .await
        .expect("place");
    let order = system
        .order_in(&order.id, orders::OrderStatus::Confirmed)
        .await;
    assert_eq!(
        order.total,
        Some(usd(2 * 1250 + 1999)),
        "prices come from inventory"
    );
    assert_eq!(order.lines[0].unit_price, Some(usd(1250)));
    assert_eq!(
        (order.card_brand.as_str(), order.card_last4.as_str()),
        ("visa", "4242")
    );
    let replay = system
        .place(
            &customer,
            &[("STORY-MUG", 2), ("STORY-TEE", 1)],
            APPROVED,
            "story-1",
        )
        .await
        .expect("replay");
    assert_eq!(
        replay.id, order.id,
        "a replayed request id places nothing new"
    );

    let payment = system.payment_of(&order.id).await;
    assert_eq!(payment.status(), payments::PaymentStatus::Captured);
    assert_eq!(
        (payment.captured.clone(), payment.refunded.clone()),
        (Some(usd(4499)), Some(usd(0)))
    );
    assert_eq!(
        system.stock("STORY-MUG").await,
        (8, 0),
        "sold: on hand fell, nothing left reserved"
    );

    let mut watch = system
        .orders
        .clone()
        .watch_order(orders::WatchOrderRequest {
            id: order.id.clone(),
        })
        .await
        .expect("watch")
        .into_inner();
    assert_eq!(
        watch
            .message()
            .await
            .expect("watch")
            .expect("first")
            .status(),
        orders::OrderStatus::Confirmed
    );
    let shipment = system.shipments_of(&order.id).await.remove(0);
    system
        .move_shipment(&shipment.id, fulfillment::ShipmentStatus::Packed)
        .await;
    system
        .move_shipment(&shipment.id, fulfillment::ShipmentStatus::Shipped)
        .await;
    assert_eq!(
        watch
            .message()
            .await
            .expect("watch")
            .expect("shipped")
            .status(),
        orders::OrderStatus::Shipped
    );
    system
        .move_shipment(&shipment.id, fulfillment::ShipmentStatus::Delivered)
        .await;
    assert_eq!(
        watch
            .message()
            .await
            .expect("watch")
            .expect("delivered")
            .status(),
        orders::OrderStatus::Delivered
    );

    // A return refunds the paid amount of its lines.
    let mut returns = system.exchanges.clone();
    let requested = returns
        .request_return(exchanges::RequestReturnRequest {
            request_id: "story-return".into(),
            order_id: order.id.clone(),
            kind: exchanges::ReturnKind::Return.into(),
            lines: vec![exchanges::ReturnLine {
                sku: "STORY-MUG".into(),
                quantity: 1,
            }],
            reason: "chipped".into(),
        })
        .await
        .expect("request return")
        .into_inner();
    assert_eq!(requested.refund_amount, Some(usd(1250)));
    let too_many = returns
        .request_return(exchanges::RequestReturnRequest {
            order_id: order.id.clone(),
            kind: exchanges::ReturnKind::Return.into(),
            lines: vec![exchanges::ReturnLine {
                sku: "STORY-MUG".into(),
                quantity: 2,
            }],
            ..Default::default()
        })
        .await
        .expect_err("more than bought minus returned");
    assert_eq!(violated_fields(&too_many), ["lines[0].quantity"]);
    returns
        .approve_return(exchanges::ApproveReturnRequest {
            id: requested.id.clone(),
            request_id: String::new(),
        })
        .await
        .expect("approve");
    let received = returns
        .receive_return(exchanges::ReceiveReturnRequest {
            id: requested.id.clone(),
            request_id: "story-receive".into(),
        })
        .await
        .expect("receive")
        .into_inner();
    assert_eq!(received.status(), exchanges::ReturnStatus::Received);
    let again = returns
        .receive_return(exchanges::ReceiveReturnRequest {
            id: requested.id.clone(),
            request_id: "story-receive".into(),
        })
        .await
        .expect("receive again")
        .into_inner();
    assert_eq!(again, received, "receiving twice refunds once");
    let payment = system.payment_of(&order.id).await;
    assert_eq!(
        payment.refunded,
        Some(usd(1250)),
        "refund visible as soon as ReceiveReturn answered"
    );
    assert_eq!(payment.status(), payments::PaymentStatus::PartiallyRefunded);
    assert_eq!(
        system.stock("STORY-MUG").await,
        (9, 0),
        "the returned mug is back on hand"
    );

    // An exchange ships a replacement at no charge.
    let exchange = returns
        .request_return(exchanges::RequestReturnRequest {
            order_id: order.id.clone(),
            kind: exchanges::ReturnKind::Exchange.into(),
            lines: vec![exchanges::ReturnLine {
                sku: "STORY-TEE".into(),
                quantity: 1,
            }],
            reason: "wrong size".into(),
            ..Default::default()
        })
        .await
        .expect("request exchange")
        .into_inner();
    assert_eq!(exchange.refund_amount, Some(usd(0)));
    returns
        .approve_return(exchanges::ApproveReturnRequest {
            id: exchange.id.clone(),
            request_id: String::new(),
        })
        .await
        .expect("approve");
    let exchanged = returns
        .receive_return(exchanges::ReceiveReturnRequest {
            id: exchange.id.clone(),
            request_id: String::new(),
        })
        .await
        .expect("receive exchange")
        .into_inner();
    assert!(!exchanged.replacement_shipment_id.is_empty());
    let shipments = system.shipments_of(&order.id).await;
    let replacement = shipments
        .iter()
        .find(|shipment| shipment.id == exchanged.replacement_shipment_id)
        .expect("replacement");
    assert_eq!(replacement.return_id, exchange.id);
    assert_eq!(
        system.payment_of(&order.id).await.refunded,
        Some(usd(1250)),
        "an exchange charges and refunds nothing"
    );
    assert_eq!(
        system.stock("STORY-TEE").await,
        (9, 0),
        "one back, one out again"
    );
    let order = system
        .order_in(&order.id, orders::OrderStatus::Delivered)
        .await;
    assert_eq!(
        order.status(),
        orders::OrderStatus::Delivered,
        "returns leave the order's status as it was"
    );

    let story = system
        .story(
            &order.id,
            &[
                &CONFIRMED_STORY[..],
                &[
                    "ShipmentShipped",
                    "OrderShipped",
                    "ShipmentDelivered",
                    "OrderDelivered",
                    "ReturnRequested",
                    "ReturnReceived",
                    "RefundIssued",
                ],
            ]
            .concat(),
        )
        .await;
    // Each source's relay delivers its outbox in commit order, on its own: the ledger keeps every
    // source's events in the order they happened there, while across sources its sequence is the
    // order of arrival.
    let position = |event_type: &str| {
        story
            .iter()
            .position(|seen| seen == event_type)
            .unwrap_or_else(|| panic!("no {event_type} in {story:?}"))
    };
    for source_story in [
        &[
            "OrderPlaced",
            "OrderConfirmed",
            "OrderShipped",
            "OrderDelivered",
        ][..],
        &["StockReserved", "ReservationCommitted"],
        &["PaymentAuthorized", "PaymentCaptured", "RefundIssued"],
        &["ShipmentCreated", "ShipmentShipped", "ShipmentDelivered"],
        &["ReturnRequested", "ReturnReceived"],
    ] {
        assert!(
            source_story
                .windows(2)
                .all(|pair| position(pair[0]) < position(pair[1])),
            "{source_story:?} out of order in {story:?}"
        );
    }
}

#[tokio::test]
async fn failures_compensate_and_end_in_their_status() {
    let system = System::start().await;
    let customer = system.customer("failures@example.com").await;
    system.product("FAIL-LAMP", 4000, 5).await;

    for (number, reason) in [
        (DECLINED, "card_declined"),
        (NO_FUNDS, "insufficient_funds"),
    ] {
        let order = system
            .place(&customer, &[("FAIL-LAMP", 2)], number, "")
            .await
            .expect("placed");
        let order = system
            .order_in(&order.id, orders::OrderStatus::PaymentDeclined)
            .await;
        assert!(
            order.failure_reason.contains(reason),
            "{}",
            order.failure_reason
        );
        assert_eq!(
            system.payment_of(&order.id).await.captured,
            Some(usd(0)),
            "nothing charged"
        );
        assert_eq!(
            system.stock("FAIL-LAMP").await,
            (5, 0),
            "the reservation was released"
        );
    }

    let order = system
        .place(&customer, &[("FAIL-LAMP", 6)], APPROVED, "")
        .await
        .expect("placed");
    let order = system
        .order_in(&order.id, orders::OrderStatus::Rejected)
        .await;
    assert!(
        order.failure_reason.contains("FAIL-LAMP"),
        "names the SKU: {}",
        order.failure_reason
    );
    assert_eq!(order.total, Some(usd(24_000)));
    assert_eq!(system.stock("FAIL-LAMP").await, (5, 0));

    // A confirmed order cancelled before it ships: refunded in full, stock back on hand.
    let order = system
        .place(&customer, &[("FAIL-LAMP", 3)], APPROVED, "")
        .await
        .expect("placed");
    system
        .order_in(&order.id, orders::OrderStatus::Confirmed)
        .await;
    assert_eq!(system.stock("FAIL-LAMP").await, (2, 0));
    let cancelled = system
        .orders
        .clone()
        .cancel_order(orders::CancelOrderRequest {
            id: order.id.clone(),
            reason: "changed my mind".into(),
            request_id: String::new(),
        })
        .await
        .expect("cancel")
        .into_inner();
    assert_eq!(cancelled.status(), orders::OrderStatus::Cancelled);
    let payment = system.payment_of(&order.id).await;
    assert_eq!(
        (payment.captured, payment.refunded),
        (Some(usd(12_000)), Some(usd(12_000)))
    );
    assert_eq!(system.stock("FAIL-LAMP").await, (5, 0));
    assert_eq!(
        system.shipments_of(&order.id).await[0].status(),
        fulfillment::ShipmentStatus::Cancelled
    );

    // Nothing can be returned before it ships; once shipped, the order cannot be cancelled.
    let order = system
        .place(&customer, &[("FAIL-LAMP", 1)], APPROVED, "")
        .await
        .expect("placed");
    system
        .order_in(&order.id, orders::OrderStatus::Confirmed)
        .await;
    let early = system
        .exchanges
        .clone()
        .request_return(exchanges::RequestReturnRequest {
            order_id: order.id.clone(),
            kind: exchanges::ReturnKind::Return.into(),
            lines: vec![exchanges::ReturnLine {
                sku: "FAIL-LAMP".into(),
                quantity: 1,
            }],
            ..Default::default()
        })
        .await
        .expect_err("the order has not shipped");
    assert_eq!(early.code(), Code::FailedPrecondition, "{early:?}");
    let shipment = system.shipments_of(&order.id).await.remove(0);
    system
        .move_shipment(&shipment.id, fulfillment::ShipmentStatus::Packed)
        .await;
    system
        .move_shipment(&shipment.id, fulfillment::ShipmentStatus::Shipped)
        .await;
    system
        .order_in(&order.id, orders::OrderStatus::Shipped)
        .await;
    let refused = system
        .orders
        .clone()
        .cancel_order(orders::CancelOrderRequest {
            id: order.id.clone(),
            ..Default::default()
        })
        .await
        .expect_err("shipped");
    assert_eq!(refused.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn bad_orders_are_refused_at_once_and_create_nothing() {
    let system = System::start().await;
    let customer = system.customer("refused@example.com").await;
    system.product("BAD-PEN", 300, 5).await;
    let cases: Vec<(orders::PlaceOrderRequest, Vec<&str>)> = vec![
        (
            place_request("no-such-customer", &[("BAD-PEN", 1)], APPROVED, ""),
            vec!["customer_id"],
        ),
        (
            place_request(&customer, &[("NO-SUCH-SKU", 1)], APPROVED, ""),
            vec!["lines[0].sku"],
        ),
        (
            place_request(&customer, &[("BAD-PEN", 0)], APPROVED, ""),
            vec!["lines[0].quantity"],
        ),
        (place_request(&customer, &[], APPROVED, ""), vec!["lines"]),
        (
            place_request(&customer, &[("BAD-PEN", 1)], "4242424242424241", ""),
            vec!["card.number"],
        ),
        (
            orders::PlaceOrderRequest {
                card: Some(PaymentCard {
                    exp_year: 2020,
                    ..card(APPROVED)
                }),
                ..place_request(&customer, &[("BAD-PEN", 1)], APPROVED, "")
            },
            vec!["card.exp_year"],
        ),
        (
            orders::PlaceOrderRequest {
                shipping_address: Some(Address {
                    country_code: "Britain".into(),
                    city: String::new(),
                    ..address()
                }),
                ..place_request(&customer, &[("BAD-PEN", 1)], APPROVED, "")
            },
            vec!["shipping_address.city", "shipping_address.country_code"],
        ),
    ];
    for (request, fields) in cases {
        let status = system
            .orders
            .clone()
            .place_order(request)
            .await
            .expect_err("bad input");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let mut violated = violated_fields(&status);
        violated.sort();
        assert_eq!(violated, fields, "{}", status.message());
    }
    let listed = system
        .orders
        .clone()
        .list_orders(orders::ListOrdersRequest {
            customer_id: Some(customer),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert!(listed.orders.is_empty(), "no order was created");
    assert_eq!(system.stock("BAD-PEN").await, (5, 0));
}

#[tokio::test]
async fn batch_list_orders_answers_each_request_as_list_orders_would() {
    let system = System::start().await;
    let busy = system.customer("busy@example.com").await;
    let once = system.customer("once@example.com").await;
    let never = system.customer("never@example.com").await;
    system.product("BATCH-MUG", 700, 50).await;
    for customer in [&busy, &busy, &busy, &once] {
        system
            .orders
            .clone()
            .place_order(place_request(customer, &[("BATCH-MUG", 1)], APPROVED, ""))
            .await
            .expect("place");
    }
    let list = |customer: &str, page_size: i32| orders::ListOrdersRequest {
        customer_id: Some(customer.to_owned()),
        page_size,
        ..Default::default()
    };

    let bad = orders::BatchListOrdersRequest {
        requests: vec![
            list(&busy, 2),
            orders::ListOrdersRequest {
                status: Some(9999),
                ..list(&once, 2)
            },
            list(&never, -1),
        ],
    };
    let status = system
        .orders
        .clone()
        .batch_list_orders(bad)
        .await
        .expect_err("bad requests");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let mut violated = violated_fields(&status);
    violated.sort();
    assert_eq!(violated, ["requests[1].status", "requests[2].page_size"]);

    let requests = vec![list(&busy, 2), list(&once, 2), list(&never, 2)];
    let batch = system
        .orders
        .clone()
        .batch_list_orders(orders::BatchListOrdersRequest {
            requests: requests.clone(),
        })
        .await
        .expect("batch list")
        .into_inner();
    assert_eq!(batch.responses.len(), 3);
    for (request, response) in requests.into_iter().zip(&batch.responses) {
        let single = system
            .orders
            .clone()
            .list_orders(request)
            .await
            .expect("list")
            .into_inner();
        assert_eq!(
            response, &single,
            "a batched page is the page ListOrders answers"
        );
    }
    let sizes: Vec<usize> = batch.responses.iter().map(|r| r.orders.len()).collect();
    assert_eq!(sizes, [2, 1, 0]);
    assert!(
        batch.responses[0]
            .orders
            .iter()
            .all(|order| order.customer_id == busy)
    );

    // The batch's page token continues with ListOrders.
    let rest = system
        .orders
        .clone()
        .list_orders(orders::ListOrdersRequest {
            page_token: batch.responses[0].next_page_token.clone(),
            ..list(&busy, 2)
        })
        .await
        .expect("next page")
        .into_inner();
    assert_eq!(rest.orders.len(), 1);
    assert!(rest.next_page_token.is_empty());
    assert!(batch.responses[1].next_page_token.is_empty());
}

#[tokio::test]
async fn the_saga_continues_the_trace_of_the_order_it_runs() {
    let system = System::start().await;
    let customer = system.customer("traced@example.com").await;
    system.product("TRACED-PEN", 250, 5).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut request =
        tonic::Request::new(place_request(&customer, &[("TRACED-PEN", 1)], APPROVED, ""));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01")
            .parse()
            .expect("a header value"),
    );
    let order = system
        .orders
        .clone()
        .place_order(request)
        .await
        .expect("place")
        .into_inner();
    let events = system.events(&order.id, &CONFIRMED_STORY).await;
    for step in CONFIRMED_STORY {
        let event = events
            .iter()
            .find(|event| event.r#type == step)
            .unwrap_or_else(|| panic!("no {step} in {events:?}"));
        assert_eq!(
            event.trace_id, trace_id,
            "{step}, recorded by {}, is in the trace of PlaceOrder",
            event.source
        );
    }
}
