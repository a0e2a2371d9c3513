//! `PaymentService` over real gRPC against a real server, on SQLite and (when
//! `CROWDCRUNCH_TEST_DATABASE_URL` is set) on PostgreSQL.

use std::time::Duration;

use base64::Engine as _;
use crowdcrunch_outbox::Outbox;
use crowdcrunch_proto::MAX_MINOR_UNITS;
use crowdcrunch_proto::ledger::v1 as ledger_pb;
use crowdcrunch_proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use crowdcrunch_proto::payments::v1 as pb;
use crowdcrunch_proto::payments::v1::payment_service_client::PaymentServiceClient;
use crowdcrunch_proto::r#type::v1::{Money, PaymentCard};
use crowdcrunch_runtime::Database;
use crowdcrunch_runtime::auth::Grant;
use crowdcrunch_runtime::client::GrpcChannel;
use crowdcrunch_runtime::storage::Backend;
use crowdcrunch_runtime::testing::{
    TestDatabase, TestServer, all_pages, assert_answered_as_missing, assert_invalid_argument,
    databases, failed_precondition, violated_fields,
};
use pb::PaymentStatus;
use tonic::Code;

const APPROVED: &str = "4242424242424242";
const DECLINED: &str = "4000000000000002";
const INSUFFICIENT_FUNDS: &str = "4000000000009995";

/// A payments server over a fresh database, clients to it, and the database itself.
struct App {
    server: TestServer,
    /// Calls as the orders service, the one peer that moves money.
    client: PaymentServiceClient<GrpcChannel>,
    /// Calls as staff, who read every payment.
    staff: PaymentServiceClient<GrpcChannel>,
    database: Database,
}

async fn spawn_app(database: &TestDatabase) -> App {
    let database = database.connect(&crowdcrunch_payments::MIGRATOR).await;
    let outbox = Outbox::open(&database, crowdcrunch_payments::DATABASE_NAME)
        .await
        .expect("open the outbox");
    let server = TestServer::start(crowdcrunch_payments::service(database.clone(), outbox)).await;
    let client = PaymentServiceClient::new(server.channel_as_peer("orders").await);
    let staff = PaymentServiceClient::new(server.channel().await);
    App {
        server,
        client,
        staff,
        database,
    }
}

fn usd(minor_units: i64) -> Option<Money> {
    Some(Money {
        currency_code: "USD".into(),
        minor_units,
    })
}

fn card(number: &str) -> PaymentCard {
    PaymentCard {
        number: number.into(),
        exp_month: 12,
        exp_year: 2099,
        cvc: "123".into(),
    }
}

async fn tokenize(client: &mut PaymentServiceClient<GrpcChannel>, number: &str) -> pb::CardToken {
    client
        .tokenize_card(pb::TokenizeCardRequest {
            card: Some(card(number)),
            request_id: String::new(),
        })
        .await
        .expect("tokenize")
        .into_inner()
}

/// The customer every payment of these tests is for.
const CUSTOMER: &str = "0190b6e2-7c1a-7d4e-9f00-1a2b3c4d5e6f";

fn authorize_request(order_id: &str, minor_units: i64, token: &str) -> pb::AuthorizePaymentRequest {
    pb::AuthorizePaymentRequest {
        request_id: String::new(),
        order_id: order_id.into(),
        customer_id: CUSTOMER.into(),
        amount: usd(minor_units),
        card_token: token.into(),
    }
}

/// Authorises `minor_units` cents for `order_id` on a fresh token of `number`.
async fn pay(
    client: &mut PaymentServiceClient<GrpcChannel>,
    order_id: &str,
    minor_units: i64,
    number: &str,
) -> pb::Payment {
    let token = tokenize(client, number).await.token;
    client
        .authorize_payment(authorize_request(order_id, minor_units, &token))
        .await
        .expect("authorize")
        .into_inner()
}

async fn capture(
    client: &mut PaymentServiceClient<GrpcChannel>,
    id: &str,
) -> Result<pb::Payment, tonic::Status> {
    client
        .capture_payment(pb::CapturePaymentRequest {
            id: id.into(),
            request_id: String::new(),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn void(
    client: &mut PaymentServiceClient<GrpcChannel>,
    id: &str,
) -> Result<pb::Payment, tonic::Status> {
    client
        .void_payment(pb::VoidPaymentRequest {
            id: id.into(),
            request_id: String::new(),
        })
        .await
        .map(tonic::Response::into_inner)
}

fn refund_request(id: &str, minor_units: i64, request_id: &str) -> pb::RefundPaymentRequest {
    pb::RefundPaymentRequest {
        id: id.into(),
        amount: usd(minor_units),
        reason: "return received".into(),
        request_id: request_id.into(),
    }
}

async fn refund(
    client: &mut PaymentServiceClient<GrpcChannel>,
    id: &str,
    minor_units: i64,
    request_id: &str,
) -> Result<pb::Payment, tonic::Status> {
    client
        .refund_payment(refund_request(id, minor_units, request_id))
        .await
        .map(tonic::Response::into_inner)
}

async fn get(client: &mut PaymentServiceClient<GrpcChannel>, id: &str) -> pb::Payment {
    client
        .get_payment(pb::GetPaymentRequest { id: id.into() })
        .await
        .expect("get payment")
        .into_inner()
}

/// The amounts of a payment in cents: (amount, captured, refunded), every one set in USD.
fn amounts(payment: &pb::Payment) -> (i64, i64, i64) {
    let cents = |money: &Option<Money>| {
        let money = money.as_ref().expect("every Money field is set");
        assert_eq!(money.currency_code, "USD", "the payment's currency");
        money.minor_units
    };
    (
        cents(&payment.amount),
        cents(&payment.captured),
        cents(&payment.refunded),
    )
}

/// Asserts FAILED_PRECONDITION with reason `reason` and a PreconditionFailure about `subject`.
fn assert_precondition(status: &tonic::Status, reason: &str, subject: &str) {
    let (actual_reason, violations) = failed_precondition(status);
    assert_eq!(actual_reason, reason, "{}", status.message());
    let subjects: Vec<_> = violations.into_iter().map(|(_, subject)| subject).collect();
    assert_eq!(subjects, [subject], "{}", status.message());
}

async fn list_all(
    client: &mut PaymentServiceClient<GrpcChannel>,
    page_size: i32,
    order_ids: &[&str],
) -> Vec<Vec<pb::Payment>> {
    let order_ids: Vec<String> = order_ids.iter().map(|id| (*id).to_owned()).collect();
    all_pages(|page_token| {
        let mut client = client.clone();
        let order_ids = order_ids.clone();
        async move {
            let page = client
                .list_payments(pb::ListPaymentsRequest {
                    page_size,
                    page_token,
                    order_ids,
                })
                .await
                .expect("list payments")
                .into_inner();
            (page.payments, page.next_page_token)
        }
    })
    .await
}

#[tokio::test]
async fn test_cards_are_approved_or_declined_as_a_processor_would() {
    for database in databases("payments") {
        let App {
            server, mut client, ..
        } = spawn_app(&database).await;
        let cases = [
            (APPROVED, "visa", PaymentStatus::Authorized, ""),
            (DECLINED, "visa", PaymentStatus::Declined, "card_declined"),
            (
                INSUFFICIENT_FUNDS,
                "visa",
                PaymentStatus::Declined,
                "insufficient_funds",
            ),
            (
                "5555555555554444",
                "mastercard",
                PaymentStatus::Authorized,
                "",
            ),
            (
                "2223003122003222",
                "mastercard",
                PaymentStatus::Authorized,
                "",
            ),
            ("378282246310005", "amex", PaymentStatus::Authorized, ""),
        ];
        for (number, brand, status, decline_reason) in cases {
            let token = tokenize(&mut client, number).await;
            let last4 = &number[number.len() - 4..];
            assert_eq!((token.brand.as_str(), token.last4.as_str()), (brand, last4));
            assert_eq!((token.exp_month, token.exp_year), (12, 2099));
            assert!(token.token.starts_with("tok_"), "{}", token.token);
            assert!(!token.token.contains(last4), "the token is opaque");

            let payment = client
                .authorize_payment(authorize_request("order-1", 1999, &token.token))
                .await
                .expect("a decline is an answer, not an error")
                .into_inner();
            assert_eq!(payment.status(), status, "{}: {number}", database.backend);
            assert_eq!(payment.decline_reason, decline_reason, "{number}");
            assert_eq!(amounts(&payment), (1999, 0, 0), "{number}");
            assert_eq!(
                (payment.card_brand.as_str(), payment.card_last4.as_str()),
                (brand, last4)
            );
            assert_eq!(payment.order_id, "order-1");
            assert_eq!(payment.create_time, payment.update_time);
        }
        server.stop().await.expect("drain");
    }
}

/// Every value in every table of `database` (but sqlx's own), as text.
async fn every_stored_value(database: &Database) -> Vec<String> {
    let tables_sql = match database.backend() {
        Backend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table'",
        Backend::Postgres => {
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
             WHERE table_schema = current_schema()"
        }
    };
    let columns_sql = match database.backend() {
        Backend::Sqlite => "SELECT name FROM pragma_table_info($1)",
        Backend::Postgres => {
            "SELECT CAST(column_name AS TEXT) FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1"
        }
    };
    let tables: Vec<(String,)> = sqlx::query_as(tables_sql)
        .fetch_all(&mut *database.acquire().await.expect("connection"))
        .await
        .expect("list tables");
    assert!(tables.len() >= 4, "payments, tokens, refunds, idempotency");
    let mut values = Vec::new();
    for (table,) in tables
        .into_iter()
        .filter(|(table,)| !table.starts_with("_sqlx"))
    {
        let columns: Vec<(String,)> = sqlx::query_as(columns_sql)
            .bind(&table)
            .fetch_all(&mut *database.acquire().await.expect("connection"))
            .await
            .expect("list columns");
        for (column,) in columns {
            let rows: Vec<(Option<String>,)> =
                sqlx::query_as(&format!("SELECT CAST({column} AS TEXT) FROM {table}"))
                    .fetch_all(&mut *database.acquire().await.expect("connection"))
                    .await
                    .expect("read a column");
            values.extend(rows.into_iter().filter_map(|(value,)| value));
        }
    }
    values
}

#[tokio::test]
async fn the_card_number_is_never_stored_or_returned() {
    for database in databases("payments") {
        let App {
            server,
            mut client,
            database: db,
            ..
        } = spawn_app(&database).await;
        // With a request id, so that an idempotency record is written too.
        let token = client
            .tokenize_card(pb::TokenizeCardRequest {
                card: Some(card(APPROVED)),
                request_id: "tokenize-1".into(),
            })
            .await
            .expect("tokenize")
            .into_inner();
        let payment = client
            .authorize_payment(pb::AuthorizePaymentRequest {
                request_id: "authorize-1".into(),
                ..authorize_request("order-1", 500, &token.token)
            })
            .await
            .expect("authorize")
            .into_inner();
        assert!(!format!("{token:?}{payment:?}").contains(APPROVED));

        let values = every_stored_value(&db).await;
        assert!(
            values.iter().any(|value| value == &token.token),
            "{}: the scan reads the token table",
            database.backend
        );
        for value in &values {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(value)
                .unwrap_or_default();
            assert!(
                !value.contains(APPROVED) && !String::from_utf8_lossy(&decoded).contains(APPROVED),
                "{}: the card number is stored: {value}",
                database.backend
            );
        }
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn capture_void_and_refund_follow_the_payment_status() {
    for database in databases("payments") {
        let App {
            server,
            mut client,
            mut staff,
            ..
        } = spawn_app(&database).await;
        let backend = database.backend;

        // Capture takes the whole amount; capturing again returns the payment unchanged.
        let paid = pay(&mut client, "order-1", 1000, APPROVED).await;
        let captured = capture(&mut client, &paid.id).await.expect("capture");
        assert_eq!(captured.status(), PaymentStatus::Captured, "{backend}");
        assert_eq!(amounts(&captured), (1000, 1000, 0));
        assert_ne!(captured.update_time, captured.create_time);
        assert_eq!(
            capture(&mut client, &paid.id).await.expect("again"),
            captured
        );
        let status = void(&mut client, &paid.id)
            .await
            .expect_err("void a capture");
        assert_precondition(&status, "PAYMENT_STATUS", &paid.id);

        // Partial refunds add up to at most the captured amount.
        let partly = refund(&mut client, &paid.id, 300, "")
            .await
            .expect("refund 300");
        assert_eq!(partly.status(), PaymentStatus::PartiallyRefunded);
        assert_eq!(amounts(&partly), (1000, 1000, 300));
        let status = refund(&mut client, &paid.id, 701, "")
            .await
            .expect_err("over-refund");
        assert_precondition(&status, "REFUND_EXCEEDS_CAPTURED", &paid.id);
        let status = client
            .refund_payment(pb::RefundPaymentRequest {
                amount: Some(Money {
                    currency_code: "EUR".into(),
                    minor_units: 100,
                }),
                ..refund_request(&paid.id, 0, "")
            })
            .await
            .expect_err("another currency");
        assert_eq!(violated_fields(&status), ["amount.currency_code"]);
        let refunded = refund(&mut client, &paid.id, 700, "")
            .await
            .expect("the rest");
        assert_eq!(refunded.status(), PaymentStatus::Refunded);
        assert_eq!(amounts(&refunded), (1000, 1000, 1000));
        let status = refund(&mut client, &paid.id, 1, "")
            .await
            .expect_err("nothing is left");
        assert_precondition(&status, "PAYMENT_STATUS", &paid.id);
        assert_eq!(
            capture(&mut client, &paid.id)
                .await
                .expect("captured before"),
            refunded,
            "a refunded payment was captured: capturing it again changes nothing"
        );

        // Void drops an authorisation; voiding again returns it unchanged.
        let held = pay(&mut client, "order-2", 500, APPROVED).await;
        let status = refund(&mut client, &held.id, 100, "")
            .await
            .expect_err("refund before capture");
        assert_precondition(&status, "PAYMENT_STATUS", &held.id);
        let voided = void(&mut client, &held.id).await.expect("void");
        assert_eq!(voided.status(), PaymentStatus::Voided, "{backend}");
        assert_eq!(amounts(&voided), (500, 0, 0));
        assert_eq!(void(&mut client, &held.id).await.expect("again"), voided);
        let status = capture(&mut client, &held.id)
            .await
            .expect_err("capture a void");
        assert_precondition(&status, "PAYMENT_STATUS", &held.id);

        // A declined payment moves no money.
        let declined = pay(&mut client, "order-3", 500, DECLINED).await;
        for status in [
            capture(&mut client, &declined.id)
                .await
                .expect_err("capture"),
            void(&mut client, &declined.id).await.expect_err("void"),
            refund(&mut client, &declined.id, 1, "")
                .await
                .expect_err("refund"),
        ] {
            assert_precondition(&status, "PAYMENT_STATUS", &declined.id);
        }
        assert_eq!(get(&mut staff, &declined.id).await, declined);

        for status in [
            capture(&mut client, "no-such-payment")
                .await
                .expect_err("capture"),
            void(&mut client, "no-such-payment")
                .await
                .expect_err("void"),
            refund(&mut client, "no-such-payment", 1, "")
                .await
                .expect_err("refund"),
        ] {
            assert_eq!(status.code(), Code::NotFound, "{}", status.message());
        }
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn replayed_request_ids_move_money_once() {
    for database in databases("payments") {
        let App {
            server,
            mut client,
            mut staff,
            ..
        } = spawn_app(&database).await;
        let backend = database.backend;
        let tokenize_once = pb::TokenizeCardRequest {
            card: Some(card(APPROVED)),
            request_id: "tokenize-1".into(),
        };
        let token = client
            .tokenize_card(tokenize_once.clone())
            .await
            .expect("first");
        let again = client.tokenize_card(tokenize_once).await.expect("replay");
        assert_eq!(token.get_ref(), again.get_ref(), "{backend}: one token");
        let token = token.into_inner().token;

        let authorize_once = pb::AuthorizePaymentRequest {
            request_id: "order-1:authorize".into(),
            ..authorize_request("order-1", 1000, &token)
        };
        let payment = client
            .authorize_payment(authorize_once.clone())
            .await
            .expect("first")
            .into_inner();
        let replay = client
            .authorize_payment(authorize_once)
            .await
            .expect("replay")
            .into_inner();
        assert_eq!(payment, replay, "{backend}: one authorisation");
        assert_eq!(
            list_all(&mut staff, 10, &["order-1"]).await.concat().len(),
            1
        );

        let capture_once = pb::CapturePaymentRequest {
            id: payment.id.clone(),
            request_id: "order-1:capture".into(),
        };
        let captured = client
            .capture_payment(capture_once.clone())
            .await
            .expect("capture");
        let replay = client.capture_payment(capture_once).await.expect("replay");
        assert_eq!(captured.get_ref(), replay.get_ref());

        // The same refund sent twice (a lost answer, a retry) is one refund...
        let first = refund(&mut client, &payment.id, 400, "refund-1")
            .await
            .expect("refund");
        let replay = refund(&mut client, &payment.id, 400, "refund-1")
            .await
            .expect("replay");
        assert_eq!(first, replay, "{backend}: the first answer");
        assert_eq!(
            amounts(&get(&mut staff, &payment.id).await),
            (1000, 1000, 400)
        );
        // ...even when racing with itself.
        let answers = futures::future::join_all((0..6).map(|_| {
            let mut client = client.clone();
            let id = payment.id.clone();
            async move { refund(&mut client, &id, 100, "refund-2").await }
        }))
        .await;
        for answer in answers {
            assert_eq!(
                amounts(&answer.expect("every racer gets the answer")),
                (1000, 1000, 500)
            );
        }
        assert_eq!(
            amounts(&get(&mut staff, &payment.id).await),
            (1000, 1000, 500)
        );

        // A request id used for another request is refused.
        let status = refund(&mut client, &payment.id, 50, "refund-1")
            .await
            .expect_err("a reused request id");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["request_id"]);
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn concurrent_refunds_never_exceed_the_captured_amount() {
    for database in databases("payments") {
        let App {
            server,
            mut client,
            mut staff,
            ..
        } = spawn_app(&database).await;
        let payment = pay(&mut client, "order-1", 1000, APPROVED).await;
        capture(&mut client, &payment.id).await.expect("capture");
        let answers = futures::future::join_all((0..8).map(|_| {
            let mut client = client.clone();
            let id = payment.id.clone();
            async move { refund(&mut client, &id, 300, "").await }
        }))
        .await;
        let granted = answers.iter().filter(|answer| answer.is_ok()).count();
        assert_eq!(granted, 3, "{}: 3 x 300 fit in 1000", database.backend);
        for refused in answers.iter().filter_map(|answer| answer.as_ref().err()) {
            assert_precondition(refused, "REFUND_EXCEEDS_CAPTURED", &payment.id);
        }
        let after = get(&mut staff, &payment.id).await;
        assert_eq!(amounts(&after), (1000, 1000, 900));
        assert_eq!(after.status(), PaymentStatus::PartiallyRefunded);
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn payments_are_listed_by_order_in_pages() {
    for database in databases("payments") {
        let App {
            server,
            mut client,
            mut staff,
            ..
        } = spawn_app(&database).await;
        let mut paid = Vec::new();
        for (order_id, count) in [("order-a", 3), ("order-b", 1), ("order-c", 2)] {
            for n in 0..count {
                paid.push(pay(&mut client, order_id, 100 + n, APPROVED).await);
            }
        }
        let ids_of = |payments: &[pb::Payment]| -> Vec<String> {
            payments.iter().map(|payment| payment.id.clone()).collect()
        };
        let cases: [(&[&str], i32, &[usize]); 5] = [
            (&[], 0, &[6]),
            (&[], 4, &[4, 2]),
            (&["order-a"], 2, &[2, 1]),
            (&["order-c", "order-a", "order-c"], 2, &[2, 2, 1]),
            (&["order-none"], 10, &[0]),
        ];
        for (order_ids, page_size, sizes) in cases {
            let pages = list_all(&mut staff, page_size, order_ids).await;
            let page_sizes: Vec<_> = pages.iter().map(Vec::len).collect();
            assert_eq!(page_sizes, sizes, "{}: {order_ids:?}", database.backend);
            let expected: Vec<_> = paid
                .iter()
                .filter(|payment| {
                    order_ids.is_empty() || order_ids.contains(&payment.order_id.as_str())
                })
                .map(|payment| payment.id.clone())
                .collect();
            assert_eq!(ids_of(&pages.concat()), expected, "creation order");
        }

        // A token belongs to its filter.
        let first = staff
            .list_payments(pb::ListPaymentsRequest {
                page_size: 1,
                page_token: String::new(),
                order_ids: vec!["order-a".into()],
            })
            .await
            .expect("first page")
            .into_inner();
        let status = staff
            .list_payments(pb::ListPaymentsRequest {
                page_size: 1,
                page_token: first.next_page_token,
                order_ids: vec!["order-b".into()],
            })
            .await
            .expect_err("a token of another filter");
        assert_eq!(violated_fields(&status), ["page_token"]);

        let wanted = vec![paid[5].id.clone(), paid[0].id.clone(), paid[5].id.clone()];
        let batch = staff
            .batch_get_payments(pb::BatchGetPaymentsRequest {
                ids: wanted.clone(),
            })
            .await
            .expect("batch get")
            .into_inner();
        assert_eq!(ids_of(&batch.payments), wanted);
        let status = staff
            .batch_get_payments(pb::BatchGetPaymentsRequest {
                ids: vec![paid[0].id.clone(), "no-such-payment".into()],
            })
            .await
            .expect_err("one unknown id");
        assert_eq!(status.code(), Code::NotFound);
        server.stop().await.expect("drain");
    }
}

/// A customer reads their own payments only: another's is answered exactly as an unknown id, a
/// list holds only theirs, while staff read everyone's.
#[tokio::test]
async fn a_customer_sees_only_their_own_payments() {
    for database in databases("payments") {
        let App {
            server,
            mut client,
            mut staff,
            ..
        } = spawn_app(&database).await;
        let mine = pay(&mut client, "order-mine", 100, APPROVED).await;
        let token = tokenize(&mut client, APPROVED).await.token;
        let theirs = client
            .authorize_payment(pb::AuthorizePaymentRequest {
                customer_id: "another-customer".into(),
                ..authorize_request("order-theirs", 200, &token)
            })
            .await
            .expect("authorize for another customer")
            .into_inner();
        let unknown = "no-such-payment";
        let mut customer =
            PaymentServiceClient::new(server.channel_as(&Grant::Customer(CUSTOMER.into())).await);

        assert_eq!(
            get(&mut customer, &mine.id).await,
            mine,
            "{}",
            database.backend
        );
        let get_status = async |client: &mut PaymentServiceClient<GrpcChannel>, id: &str| {
            client
                .get_payment(pb::GetPaymentRequest { id: id.into() })
                .await
                .expect_err("hidden or missing")
        };
        let hidden = get_status(&mut customer, &theirs.id).await;
        let missing = get_status(&mut customer, unknown).await;
        assert_eq!(missing.code(), Code::NotFound);
        assert_answered_as_missing(&hidden, &theirs.id, &missing, unknown);

        let batch = |ids: &[&str]| pb::BatchGetPaymentsRequest {
            ids: ids.iter().map(|id| (*id).to_owned()).collect(),
        };
        let hidden = customer
            .batch_get_payments(batch(&[&mine.id, &theirs.id]))
            .await
            .expect_err("another's payment in a batch");
        let missing = customer
            .batch_get_payments(batch(&[&mine.id, unknown]))
            .await
            .expect_err("an unknown payment in a batch");
        assert_answered_as_missing(&hidden, &theirs.id, &missing, unknown);

        assert_eq!(
            list_all(&mut customer, 10, &[]).await.concat(),
            std::slice::from_ref(&mine)
        );
        assert!(
            list_all(&mut customer, 10, &["order-theirs"])
                .await
                .concat()
                .is_empty(),
            "a filter naming another's order lists nothing"
        );
        assert_eq!(
            list_all(&mut staff, 10, &[]).await.concat(),
            [mine, theirs],
            "staff list everyone's"
        );
        server.stop().await.expect("drain");
    }
}

/// Amounts are bounded, so a refund's sum with what was refunded before can neither overflow nor
/// wrap: a refund over the bound is a field violation, never a database error.
#[tokio::test]
async fn amounts_over_the_bound_are_refused_and_never_wrap() {
    for database in databases("payments") {
        let App {
            server, mut client, ..
        } = spawn_app(&database).await;
        let payment = pay(&mut client, "order-1", MAX_MINOR_UNITS, APPROVED).await;
        assert_eq!(payment.status(), PaymentStatus::Authorized);
        capture(&mut client, &payment.id).await.expect("capture");
        refund(&mut client, &payment.id, 1, "")
            .await
            .expect("a partial refund");
        for too_much in [MAX_MINOR_UNITS + 1, i64::MAX] {
            let status = refund(&mut client, &payment.id, too_much, "")
                .await
                .expect_err("a refund over the bound");
            assert_invalid_argument(&status, "payments.crowdcrunch.dev", &["amount.minor_units"]);
        }
        let status = refund(&mut client, &payment.id, MAX_MINOR_UNITS, "")
            .await
            .expect_err("more than is left");
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        let refunded = refund(&mut client, &payment.id, MAX_MINOR_UNITS - 1, "")
            .await
            .expect("the rest");
        assert_eq!(
            amounts(&refunded),
            (MAX_MINOR_UNITS, MAX_MINOR_UNITS, MAX_MINOR_UNITS),
            "{}",
            database.backend
        );
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn bad_input_is_refused_with_field_violations() {
    for database in databases("payments") {
        let App {
            server,
            mut client,
            mut staff,
            ..
        } = spawn_app(&database).await;
        let tokenize_cases: [(Option<PaymentCard>, &[&str]); 8] = [
            (None, &["card"]),
            // All zeros passes the Luhn check, but no network knows it; nor one of any other
            // brand than those charged here (Discover).
            (Some(card("0000000000000000")), &["card.number"]),
            (Some(card("6011111111111117")), &["card.number"]),
            (
                Some(PaymentCard {
                    number: "4242424242424241".into(),
                    ..card(APPROVED)
                }),
                &["card.number"],
            ),
            (
                Some(PaymentCard {
                    exp_month: 13,
                    ..card(APPROVED)
                }),
                &["card.exp_month"],
            ),
            (
                Some(PaymentCard {
                    exp_year: 2001,
                    ..card(APPROVED)
                }),
                &["card.exp_year"],
            ),
            (
                Some(PaymentCard {
                    cvc: "12".into(),
                    ..card(APPROVED)
                }),
                &["card.cvc"],
            ),
            (
                Some(PaymentCard {
                    number: "42".into(),
                    exp_month: 0,
                    exp_year: 99,
                    cvc: String::new(),
                }),
                &["card.number", "card.exp_month", "card.exp_year", "card.cvc"],
            ),
        ];
        for (card, fields) in tokenize_cases {
            let status = client
                .tokenize_card(pb::TokenizeCardRequest {
                    card,
                    request_id: String::new(),
                })
                .await
                .expect_err("a bad card");
            assert_invalid_argument(&status, "payments.crowdcrunch.dev", fields);
            assert!(
                !status.message().contains("424242"),
                "no card number in errors"
            );
        }

        let token = tokenize(&mut client, APPROVED).await.token;
        let authorize_cases: [(pb::AuthorizePaymentRequest, &[&str]); 7] = [
            (authorize_request("", 100, &token), &["order_id"]),
            (
                authorize_request("order-1", MAX_MINOR_UNITS + 1, &token),
                &["amount.minor_units"],
            ),
            (
                authorize_request("order-1", i64::MAX, &token),
                &["amount.minor_units"],
            ),
            (
                authorize_request("order-1", 0, &token),
                &["amount.minor_units"],
            ),
            (
                pb::AuthorizePaymentRequest {
                    amount: Some(Money {
                        currency_code: "usd".into(),
                        minor_units: -5,
                    }),
                    ..authorize_request("order-1", 0, &token)
                },
                &["amount.currency_code", "amount.minor_units"],
            ),
            (
                pb::AuthorizePaymentRequest {
                    amount: None,
                    ..authorize_request("order-1", 0, "")
                },
                &["amount", "card_token"],
            ),
            (
                authorize_request("order-1", 100, "tok_unknown"),
                &["card_token"],
            ),
        ];
        for (request, fields) in authorize_cases {
            let status = client
                .authorize_payment(request)
                .await
                .expect_err("a bad authorisation");
            assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
            assert_eq!(violated_fields(&status), fields);
        }

        let payment = pay(&mut client, "order-1", 100, APPROVED).await;
        let status = refund(&mut client, &payment.id, 0, "")
            .await
            .expect_err("a zero refund");
        assert_eq!(violated_fields(&status), ["amount.minor_units"]);
        let status = capture(&mut client, "").await.expect_err("no id");
        assert_eq!(violated_fields(&status), ["id"]);
        let status = staff
            .list_payments(pb::ListPaymentsRequest {
                page_size: -1,
                page_token: String::new(),
                order_ids: vec![String::new()],
            })
            .await
            .expect_err("negative page size");
        assert_eq!(violated_fields(&status), ["order_ids[0]", "page_size"]);
        let status = staff
            .batch_get_payments(pb::BatchGetPaymentsRequest {
                ids: vec!["x".into(); 1001],
            })
            .await
            .expect_err("too many ids");
        assert_eq!(violated_fields(&status), ["ids"]);
        assert_eq!(
            list_all(&mut staff, 10, &[]).await.concat(),
            [payment],
            "bad input created nothing"
        );
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn a_restart_loses_nothing_and_old_tokens_still_pay() {
    for database in databases("payments") {
        let App {
            server, mut client, ..
        } = spawn_app(&database).await;
        let token = tokenize(&mut client, INSUFFICIENT_FUNDS).await.token;
        let paid = pay(&mut client, "order-1", 700, APPROVED).await;
        let paid = capture(&mut client, &paid.id).await.expect("capture");
        let paid = refund(&mut client, &paid.id, 200, "")
            .await
            .expect("refund");
        server.stop().await.expect("drain");

        let App {
            server,
            mut client,
            mut staff,
            ..
        } = spawn_app(&database).await;
        assert_eq!(
            get(&mut staff, &paid.id).await,
            paid,
            "{}",
            database.backend
        );
        // A saga resumed after a crash pays with the token alone, and gets the card's answer.
        let declined = client
            .authorize_payment(authorize_request("order-2", 300, &token))
            .await
            .expect("authorize with an old token")
            .into_inner();
        assert_eq!(declined.status(), PaymentStatus::Declined);
        assert_eq!(declined.decline_reason, "insufficient_funds");
        server.stop().await.expect("drain");
    }
}

/// The next `count` events about `subject` in the ledger, waiting for the relay to deliver them.
async fn ledger_events(
    ledger: &mut LedgerServiceClient<GrpcChannel>,
    subject: &str,
    count: usize,
) -> Vec<ledger_pb::Event> {
    let mut stream = ledger
        .watch_events(ledger_pb::WatchEventsRequest {
            after_sequence: 0,
            subject: Some(subject.into()),
        })
        .await
        .expect("watch the ledger")
        .into_inner();
    let mut events = Vec::new();
    while events.len() < count {
        let next = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .unwrap_or_else(|_| panic!("only {} events about {subject} arrived", events.len()));
        events.push(next.expect("the stream works").expect("the stream goes on"));
    }
    events
}

fn field<'a>(event: &'a ledger_pb::Event, path: &[&str]) -> Option<&'a prost_types::value::Kind> {
    use prost_types::value::Kind;
    let mut fields = &event.data.as_ref()?.fields;
    let (last, parents) = path.split_last()?;
    for parent in parents {
        match fields.get(*parent)?.kind.as_ref()? {
            Kind::StructValue(inner) => fields = &inner.fields,
            _ => return None,
        }
    }
    fields.get(*last)?.kind.as_ref()
}

fn text<'a>(event: &'a ledger_pb::Event, path: &[&str]) -> &'a str {
    match field(event, path) {
        Some(prost_types::value::Kind::StringValue(text)) => text,
        other => panic!("{} {path:?} is not text: {other:?}", event.r#type),
    }
}

fn number(event: &ledger_pb::Event, path: &[&str]) -> f64 {
    match field(event, path) {
        Some(prost_types::value::Kind::NumberValue(number)) => *number,
        other => panic!("{} {path:?} is not a number: {other:?}", event.r#type),
    }
}

#[tokio::test]
async fn the_events_of_a_payments_life_reach_the_ledger_about_its_order() {
    for (database, ledger_database) in databases("payments").into_iter().zip(databases("ledger")) {
        let ledger_db = ledger_database.connect(&crowdcrunch_ledger::MIGRATOR).await;
        let ledger =
            TestServer::start_with(|shutdown| crowdcrunch_ledger::service(ledger_db, shutdown))
                .await;
        let database = database.connect(&crowdcrunch_payments::MIGRATOR).await;
        let outbox = Outbox::open(&database, crowdcrunch_payments::DATABASE_NAME)
            .await
            .expect("open the outbox");
        let channel = ledger.channel_as_peer("payments").await;
        let stop = crowdcrunch_runtime::Shutdown::new();
        let relay = tokio::spawn(outbox.relay(channel).run(stop.clone()));
        let server = TestServer::start(crowdcrunch_payments::service(database, outbox)).await;
        let mut client = PaymentServiceClient::new(server.channel_as_peer("orders").await);
        let mut ledger_client = LedgerServiceClient::new(ledger.channel().await);

        let token = tokenize(&mut client, APPROVED).await.token;
        let payment = client
            .authorize_payment(authorize_request("order-1", 1000, &token))
            .await
            .expect("authorize")
            .into_inner();
        capture(&mut client, &payment.id).await.expect("capture");
        capture(&mut client, &payment.id)
            .await
            .expect("a repeat records nothing");
        refund(&mut client, &payment.id, 250, "")
            .await
            .expect("refund");
        let voided = pay(&mut client, "order-2", 500, APPROVED).await;
        void(&mut client, &voided.id).await.expect("void");
        let declined = pay(&mut client, "order-3", 500, INSUFFICIENT_FUNDS).await;

        let events = ledger_events(&mut ledger_client, "order-1", 3).await;
        let types: Vec<_> = events.iter().map(|event| event.r#type.as_str()).collect();
        assert_eq!(
            types,
            ["PaymentAuthorized", "PaymentCaptured", "RefundIssued"]
        );
        for event in &events {
            assert_eq!(
                (event.source.as_str(), event.subject.as_str()),
                ("payments", "order-1")
            );
            assert_eq!(text(event, &["payment_id"]), payment.id);
            assert_eq!(text(event, &["order_id"]), "order-1");
            assert_eq!(text(event, &["amount", "currency_code"]), "USD");
            assert!((number(event, &["amount", "minor_units"]) - 1000.0).abs() < f64::EPSILON);
        }
        let refunded = &events[2];
        assert!((number(refunded, &["refund", "minor_units"]) - 250.0).abs() < f64::EPSILON);
        assert!((number(refunded, &["refunded", "minor_units"]) - 250.0).abs() < f64::EPSILON);
        assert_eq!(text(refunded, &["reason"]), "return received");
        assert_eq!(
            text(refunded, &["status"]),
            "PAYMENT_STATUS_PARTIALLY_REFUNDED"
        );

        let events = ledger_events(&mut ledger_client, "order-2", 2).await;
        let types: Vec<_> = events.iter().map(|event| event.r#type.as_str()).collect();
        assert_eq!(types, ["PaymentAuthorized", "PaymentVoided"]);
        let events = ledger_events(&mut ledger_client, "order-3", 1).await;
        assert_eq!(events[0].r#type, "PaymentDeclined");
        assert_eq!(text(&events[0], &["payment_id"]), declined.id);
        assert_eq!(text(&events[0], &["decline_reason"]), "insufficient_funds");

        let events = ledger_events(&mut ledger_client, &token, 1).await;
        assert_eq!(
            events[0].r#type, "CardTokenized",
            "{}",
            ledger_database.backend
        );
        let keys: Vec<_> = events[0]
            .data
            .iter()
            .flat_map(|data| data.fields.keys())
            .collect();
        assert_eq!(keys, ["card_token"], "no card data");
        assert_eq!(text(&events[0], &["card_token"]), token);

        server.stop().await.expect("drain");
        stop.trigger();
        relay.await.expect("the relay ends");
        ledger.stop().await.expect("drain the ledger");
    }
}
