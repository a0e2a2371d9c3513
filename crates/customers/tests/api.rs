//! `CustomerService` over real gRPC against a real server, on SQLite and (when
//! `CROWDCRUNCH_TEST_DATABASE_URL` is set) on PostgreSQL.

use crowdcrunch_outbox::Outbox;
use crowdcrunch_proto::customers::v1 as pb;
use crowdcrunch_proto::customers::v1::customer_service_client::CustomerServiceClient;
use crowdcrunch_runtime::auth::Grant;
use crowdcrunch_runtime::client::GrpcChannel;
use crowdcrunch_runtime::testing::{
    TestDatabase, TestServer, all_pages, assert_answered_as_missing, assert_invalid_argument,
    databases, violated_fields,
};
use tonic::Code;
use tonic_types::StatusExt as _;

/// A customers server over a fresh database, and a client to it.
struct App {
    server: TestServer,
    client: CustomerServiceClient<GrpcChannel>,
}

/// No relay runs here: the events stay in the outbox (crates/outbox/tests follow them to a ledger).
async fn spawn_app(database: &TestDatabase) -> App {
    let database = database.connect(&crowdcrunch_customers::MIGRATOR).await;
    let outbox = Outbox::open(&database, "customers")
        .await
        .expect("open the outbox");
    let server = TestServer::start(crowdcrunch_customers::service(database, outbox)).await;
    let client = CustomerServiceClient::new(server.channel().await);
    App { server, client }
}

fn new_customer(email: &str, display_name: &str, request_id: &str) -> pb::CreateCustomerRequest {
    pb::CreateCustomerRequest {
        customer: Some(pb::Customer {
            email: email.into(),
            display_name: display_name.into(),
            ..Default::default()
        }),
        request_id: request_id.into(),
    }
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|path| (*path).to_owned()).collect(),
    })
}

async fn list_all(
    client: &mut CustomerServiceClient<GrpcChannel>,
    page_size: i32,
) -> Vec<Vec<pb::Customer>> {
    all_pages(|page_token| {
        let mut client = client.clone();
        async move {
            let page = client
                .list_customers(pb::ListCustomersRequest {
                    page_size,
                    page_token,
                })
                .await
                .expect("list customers")
                .into_inner();
            (page.customers, page.next_page_token)
        }
    })
    .await
}

#[tokio::test]
async fn customers_are_created_read_updated_and_listed_in_pages() {
    for database in databases("customers") {
        let App { server, mut client } = spawn_app(&database).await;
        let mut created = Vec::new();
        for n in 0..5 {
            let customer = client
                .create_customer(new_customer(
                    &format!("user{n}@example.com"),
                    &format!("User {n}"),
                    "",
                ))
                .await
                .expect("create customer")
                .into_inner();
            assert!(!customer.id.is_empty());
            assert_eq!(customer.create_time, customer.update_time);
            created.push(customer);
        }

        let fetched = client
            .get_customer(pb::GetCustomerRequest {
                id: created[2].id.clone(),
            })
            .await
            .expect("get");
        assert_eq!(fetched.into_inner(), created[2], "{}", database.backend);

        let ids = vec![
            created[4].id.clone(),
            created[0].id.clone(),
            created[4].id.clone(),
        ];
        let batch = client
            .batch_get_customers(pb::BatchGetCustomersRequest { ids })
            .await
            .expect("batch get");
        let emails: Vec<_> = batch
            .into_inner()
            .customers
            .into_iter()
            .map(|customer| customer.email)
            .collect();
        assert_eq!(
            emails,
            [
                "user4@example.com",
                "user0@example.com",
                "user4@example.com"
            ]
        );

        // With a mask only the named field changes; without one, every field that is set.
        let renamed = client
            .update_customer(pb::UpdateCustomerRequest {
                customer: Some(pb::Customer {
                    id: created[1].id.clone(),
                    email: "ignored@example.com".into(),
                    display_name: "Renamed".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["display_name"]),
            })
            .await
            .expect("update with mask")
            .into_inner();
        assert_eq!(
            (renamed.email.as_str(), renamed.display_name.as_str()),
            ("user1@example.com", "Renamed")
        );
        assert_ne!(
            renamed.update_time, renamed.create_time,
            "update_time moves"
        );
        let moved = client
            .update_customer(pb::UpdateCustomerRequest {
                customer: Some(pb::Customer {
                    id: created[1].id.clone(),
                    email: "New@Example.com".into(),
                    ..Default::default()
                }),
                update_mask: None,
            })
            .await
            .expect("update without mask")
            .into_inner();
        assert_eq!(
            (moved.email.as_str(), moved.display_name.as_str()),
            ("New@Example.com", "Renamed")
        );

        let pages = list_all(&mut client, 2).await;
        let sizes: Vec<_> = pages.iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2, 1], "{}", database.backend);
        let listed: Vec<_> = pages
            .concat()
            .into_iter()
            .map(|customer| customer.id)
            .collect();
        let expected: Vec<_> = created.iter().map(|customer| customer.id.clone()).collect();
        assert_eq!(listed, expected, "creation order");
        assert_eq!(
            list_all(&mut client, 0).await.concat().len(),
            5,
            "page_size 0 is the default size"
        );
        assert_eq!(
            list_all(&mut client, 5000).await.len(),
            1,
            "an oversized page is coerced, not refused"
        );

        server.stop().await.expect("drain");
    }
}

/// A customer reads and updates their own record only: another's is answered exactly as an unknown
/// id (get, batch get, update, which changes nothing), while staff read everyone's.
#[tokio::test]
async fn a_customer_sees_and_changes_only_their_own_record() {
    for database in databases("customers") {
        let App { server, mut client } = spawn_app(&database).await;
        let mut create = async |email: &str| {
            client
                .create_customer(new_customer(email, "Someone", ""))
                .await
                .expect("create customer")
                .into_inner()
        };
        let alice = create("alice@example.com").await;
        let bob = create("bob@example.com").await;
        let unknown = uuid::Uuid::now_v7().to_string();
        let mut as_alice =
            CustomerServiceClient::new(server.channel_as(&Grant::Customer(alice.id.clone())).await);

        let own = as_alice
            .get_customer(pb::GetCustomerRequest {
                id: alice.id.clone(),
            })
            .await
            .expect("alice reads her own record")
            .into_inner();
        assert_eq!(own, alice, "{}", database.backend);
        let get = |id: &str| pb::GetCustomerRequest { id: id.to_owned() };
        let hidden = as_alice
            .get_customer(get(&bob.id))
            .await
            .expect_err("bob's record is hidden");
        let missing = as_alice
            .get_customer(get(&unknown))
            .await
            .expect_err("an unknown id");
        assert_eq!(missing.code(), Code::NotFound);
        assert_answered_as_missing(&hidden, &bob.id, &missing, &unknown);

        let batch = |ids: &[&str]| pb::BatchGetCustomersRequest {
            ids: ids.iter().map(|id| (*id).to_owned()).collect(),
        };
        let own = as_alice
            .batch_get_customers(batch(&[&alice.id, &alice.id]))
            .await
            .expect("alice batch-gets her own record")
            .into_inner()
            .customers;
        assert_eq!(own, [alice.clone(), alice.clone()]);
        let hidden = as_alice
            .batch_get_customers(batch(&[&alice.id, &bob.id]))
            .await
            .expect_err("bob's record is hidden in a batch");
        let missing = as_alice
            .batch_get_customers(batch(&[&alice.id, &unknown]))
            .await
            .expect_err("an unknown id in a batch");
        assert_answered_as_missing(&hidden, &bob.id, &missing, &unknown);

        let rename = |id: &str| pb::UpdateCustomerRequest {
            customer: Some(pb::Customer {
                id: id.to_owned(),
                display_name: "Mallory".into(),
                ..Default::default()
            }),
            update_mask: mask(&["display_name"]),
        };
        let hidden = as_alice
            .update_customer(rename(&bob.id))
            .await
            .expect_err("bob's record cannot be changed");
        let missing = as_alice
            .update_customer(rename(&unknown))
            .await
            .expect_err("an unknown id cannot be changed");
        assert_answered_as_missing(&hidden, &bob.id, &missing, &unknown);
        let renamed = as_alice
            .update_customer(rename(&alice.id))
            .await
            .expect("alice renames herself")
            .into_inner();
        assert_eq!(renamed.display_name, "Mallory");

        let staff_view = client
            .batch_get_customers(batch(&[&alice.id, &bob.id]))
            .await
            .expect("staff read everyone")
            .into_inner()
            .customers;
        assert_eq!(staff_view[0], renamed);
        assert_eq!(staff_view[1], bob, "bob is unchanged");

        let listed = as_alice
            .list_customers(pb::ListCustomersRequest::default())
            .await
            .expect_err("listing every customer is for staff");
        assert_eq!(listed.code(), Code::PermissionDenied);
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn bad_input_is_refused_with_field_violations() {
    for database in databases("customers") {
        let App { server, mut client } = spawn_app(&database).await;
        let long_name = "x".repeat(201);
        let create_cases: Vec<(pb::CreateCustomerRequest, Vec<&str>)> = vec![
            (
                pb::CreateCustomerRequest {
                    customer: None,
                    request_id: String::new(),
                },
                vec!["customer"],
            ),
            (new_customer("", "Nobody", ""), vec!["customer.email"]),
            (
                new_customer("not-an-email", "Nobody", ""),
                vec!["customer.email"],
            ),
            (
                new_customer("a@example.com", &long_name, ""),
                vec!["customer.display_name"],
            ),
            (
                new_customer("bad", &long_name, "has space"),
                vec!["request_id", "customer.email", "customer.display_name"],
            ),
        ];
        for (request, fields) in create_cases {
            let status = client
                .create_customer(request)
                .await
                .expect_err("bad input must fail");
            assert_invalid_argument(&status, "customers.crowdcrunch.dev", &fields);
        }
        let status = client
            .update_customer(pb::UpdateCustomerRequest {
                customer: Some(pb::Customer {
                    id: "x".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["create_time"]),
            })
            .await
            .expect_err("an output-only field cannot be updated");
        assert_eq!(violated_fields(&status), ["update_mask"]);
        let status = client
            .list_customers(pb::ListCustomersRequest {
                page_size: -1,
                page_token: String::new(),
            })
            .await
            .expect_err("negative page size");
        assert_eq!(violated_fields(&status), ["page_size"]);
        let status = client
            .list_customers(pb::ListCustomersRequest {
                page_size: 1,
                page_token: "garbage".into(),
            })
            .await
            .expect_err("forged page token");
        assert_eq!(violated_fields(&status), ["page_token"]);

        let status = client
            .get_customer(pb::GetCustomerRequest {
                id: "no-such-id".into(),
            })
            .await
            .expect_err("unknown");
        assert_eq!(status.code(), Code::NotFound);
        let status = client
            .batch_get_customers(pb::BatchGetCustomersRequest {
                ids: vec!["no-such-id".into()],
            })
            .await
            .expect_err("unknown in a batch");
        assert_eq!(status.code(), Code::NotFound);
        assert!(
            list_all(&mut client, 10).await.concat().is_empty(),
            "nothing was created"
        );
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn emails_are_unique_ignoring_case() {
    for database in databases("customers") {
        let App { server, mut client } = spawn_app(&database).await;
        client
            .create_customer(new_customer("Ada@Example.com", "Ada", ""))
            .await
            .expect("first");
        let other = client
            .create_customer(new_customer("other@example.com", "Other", ""))
            .await
            .expect("other");
        for email in ["ada@example.com", "ADA@EXAMPLE.COM"] {
            let status = client
                .create_customer(new_customer(email, "Impostor", ""))
                .await
                .expect_err("duplicate");
            assert_eq!(
                status.code(),
                Code::AlreadyExists,
                "{}: {email}",
                database.backend
            );
            assert_eq!(
                status.get_details_error_info().map(|info| info.reason),
                Some("EMAIL_TAKEN".to_owned())
            );
        }
        let status = client
            .update_customer(pb::UpdateCustomerRequest {
                customer: Some(pb::Customer {
                    id: other.into_inner().id,
                    email: "aDa@example.com".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["email"]),
            })
            .await
            .expect_err("taking another customer's email");
        assert_eq!(status.code(), Code::AlreadyExists);
        assert_eq!(list_all(&mut client, 10).await.concat().len(), 2);
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn a_replayed_request_id_returns_the_first_answer_and_changes_nothing() {
    for database in databases("customers") {
        let App { server, mut client } = spawn_app(&database).await;
        let request = new_customer("once@example.com", "Once", "req-1");
        let first = client
            .create_customer(request.clone())
            .await
            .expect("first")
            .into_inner();
        let replay = client
            .create_customer(request.clone())
            .await
            .expect("replay")
            .into_inner();
        assert_eq!(first, replay, "{}", database.backend);

        // Concurrent first uses of one id: one customer, one answer.
        let concurrent = new_customer("racer@example.com", "Racer", "req-2");
        let answers = futures::future::join_all((0..8).map(|_| {
            let mut client = client.clone();
            let request = concurrent.clone();
            async move {
                client
                    .create_customer(request)
                    .await
                    .map(tonic::Response::into_inner)
            }
        }))
        .await;
        let ids: std::collections::HashSet<_> = answers
            .into_iter()
            .map(|answer| answer.expect("every racer gets the answer").id)
            .collect();
        assert_eq!(
            ids.len(),
            1,
            "{}: one customer for one request id",
            database.backend
        );

        let status = client
            .create_customer(new_customer("different@example.com", "Different", "req-1"))
            .await
            .expect_err("a request id reused for another request");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["request_id"]);
        assert_eq!(
            list_all(&mut client, 10).await.concat().len(),
            2,
            "replays created nothing"
        );
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn data_survives_a_restart() {
    for database in databases("customers") {
        let App { server, mut client } = spawn_app(&database).await;
        let created = client
            .create_customer(new_customer("durable@example.com", "Durable", ""))
            .await
            .expect("create");
        server.stop().await.expect("drain");

        let App { server, mut client } = spawn_app(&database).await;
        let fetched = client
            .get_customer(pb::GetCustomerRequest {
                id: created.get_ref().id.clone(),
            })
            .await
            .expect("the customer is still there");
        assert_eq!(
            fetched.into_inner(),
            created.into_inner(),
            "{}",
            database.backend
        );
        server.stop().await.expect("drain");
    }
}
