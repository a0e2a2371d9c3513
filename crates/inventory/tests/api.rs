//! `InventoryService` over real gRPC against a real server, on SQLite and (when
//! `CROWDCRUNCH_TEST_DATABASE_URL` is set) on PostgreSQL.

use std::collections::{BTreeSet, HashSet};

use crowdcrunch_outbox::Outbox;
use crowdcrunch_proto::MAX_MINOR_UNITS;
use crowdcrunch_proto::inventory::v1 as pb;
use crowdcrunch_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use crowdcrunch_proto::r#type::v1::Money;
use crowdcrunch_runtime::auth::Grant;
use crowdcrunch_runtime::client::GrpcChannel;
use crowdcrunch_runtime::testing::{
    TestDatabase, TestServer, all_pages, assert_invalid_argument, databases, failed_precondition,
    violated_fields,
};
use tonic::Code;
use tonic_types::StatusExt as _;

type Client = InventoryServiceClient<GrpcChannel>;

/// An inventory server over a fresh database, and clients to it.
struct App {
    server: TestServer,
    /// Calls as the orders service: reservations, restocks and the catalog.
    client: Client,
    /// Calls as staff: the back office (products and stock adjustments).
    staff: Client,
}

/// No relay runs here: the events stay in the outbox (crates/outbox/tests follow them to a ledger).
async fn spawn_app(database: &TestDatabase) -> App {
    let database = database.connect(&crowdcrunch_inventory::MIGRATOR).await;
    let outbox = Outbox::open(&database, "inventory")
        .await
        .expect("open the outbox");
    let server = TestServer::start(crowdcrunch_inventory::service(database, outbox)).await;
    let client = InventoryServiceClient::new(server.channel_as_peer("orders").await);
    let staff = InventoryServiceClient::new(server.channel().await);
    App {
        server,
        client,
        staff,
    }
}

fn usd(minor_units: i64) -> Option<Money> {
    Some(Money {
        currency_code: "USD".into(),
        minor_units,
    })
}

fn product(sku: &str, active: bool) -> pb::Product {
    pb::Product {
        sku: sku.into(),
        title: format!("Product {sku}"),
        description: String::new(),
        price: usd(1999),
        active,
        ..Default::default()
    }
}

fn create_request(sku: &str, initial_stock: i32, request_id: &str) -> pb::CreateProductRequest {
    pb::CreateProductRequest {
        product: Some(product(sku, true)),
        initial_stock,
        request_id: request_id.into(),
    }
}

async fn create(client: &mut Client, sku: &str, initial_stock: i32) -> pb::Product {
    client
        .create_product(create_request(sku, initial_stock, ""))
        .await
        .expect("create product")
        .into_inner()
}

/// (on_hand, reserved, available) of `sku`.
async fn stock(client: &mut Client, sku: &str) -> (i32, i32, i32) {
    let level = client
        .get_stock(pb::GetStockRequest { sku: sku.into() })
        .await
        .expect("get stock")
        .into_inner();
    (level.on_hand, level.reserved, level.available)
}

fn reserve_request(id: &str, lines: &[(&str, i32)]) -> pb::ReserveStockRequest {
    pb::ReserveStockRequest {
        reservation_id: id.into(),
        lines: lines
            .iter()
            .map(|(sku, quantity)| pb::ReservationLine {
                sku: (*sku).into(),
                quantity: *quantity,
            })
            .collect(),
        request_id: String::new(),
    }
}

async fn reserve(
    client: &mut Client,
    id: &str,
    lines: &[(&str, i32)],
) -> Result<pb::Reservation, tonic::Status> {
    client
        .reserve_stock(reserve_request(id, lines))
        .await
        .map(tonic::Response::into_inner)
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|path| (*path).to_owned()).collect(),
    })
}

async fn list_all(
    client: &mut Client,
    page_size: i32,
    active: Option<bool>,
) -> Vec<Vec<pb::Product>> {
    all_pages(|page_token| {
        let mut client = client.clone();
        async move {
            let page = client
                .list_products(pb::ListProductsRequest {
                    page_size,
                    page_token,
                    active,
                })
                .await
                .expect("list products")
                .into_inner();
            (page.products, page.next_page_token)
        }
    })
    .await
}

fn skus(products: &[pb::Product]) -> Vec<&str> {
    products
        .iter()
        .map(|product| product.sku.as_str())
        .collect()
}

/// The catalog is open to anyone; stock moves only for staff (adjustments) and the peers that
/// reserve it, whatever a customer or an anonymous caller asks.
#[tokio::test]
async fn anyone_reads_the_catalog_and_only_staff_and_peers_move_stock() {
    for database in databases("inventory") {
        let App {
            server, mut staff, ..
        } = spawn_app(&database).await;
        create(&mut staff, "OPEN", 4).await;
        let mut anonymous = InventoryServiceClient::new(server.anonymous_channel().await);
        let mut customer =
            InventoryServiceClient::new(server.channel_as(&Grant::Customer("c-1".into())).await);
        assert_eq!(stock(&mut anonymous, "OPEN").await, (4, 0, 4));
        assert_eq!(
            anonymous
                .get_product(pb::GetProductRequest { sku: "OPEN".into() })
                .await
                .expect("anyone reads a product")
                .into_inner()
                .sku,
            "OPEN"
        );
        let adjust = pb::AdjustStockRequest {
            sku: "OPEN".into(),
            delta: -4,
            reason: "shrinkage".into(),
            request_id: String::new(),
        };
        let status = anonymous
            .adjust_stock(adjust.clone())
            .await
            .expect_err("an anonymous adjustment");
        assert_eq!(status.code(), Code::Unauthenticated, "{}", database.backend);
        let status = customer
            .adjust_stock(adjust)
            .await
            .expect_err("a customer's adjustment");
        assert_eq!(status.code(), Code::PermissionDenied);
        let status = reserve(&mut customer, "mine", &[("OPEN", 4)])
            .await
            .expect_err("a customer's reservation");
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(stock(&mut staff, "OPEN").await, (4, 0, 4), "nothing moved");
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn products_are_created_read_updated_and_listed_in_pages() {
    for database in databases("inventory") {
        let App {
            server,
            mut client,
            mut staff,
        } = spawn_app(&database).await;
        let mut created = Vec::new();
        for n in 0..5 {
            let request = pb::CreateProductRequest {
                product: Some(product(&format!("SKU-{n}"), n % 2 == 0)),
                initial_stock: n * 10,
                request_id: String::new(),
            };
            let product = staff
                .create_product(request)
                .await
                .expect("create")
                .into_inner();
            assert_eq!(product.create_time, product.update_time);
            assert_eq!(product.price, usd(1999));
            created.push(product);
        }
        assert_eq!(
            stock(&mut client, "SKU-3").await,
            (30, 0, 30),
            "{}",
            database.backend
        );
        let fetched = client
            .get_product(pb::GetProductRequest {
                sku: "SKU-2".into(),
            })
            .await
            .expect("get");
        assert_eq!(fetched.into_inner(), created[2]);

        let batch = client
            .batch_get_products(pb::BatchGetProductsRequest {
                skus: vec!["SKU-4".into(), "SKU-0".into(), "SKU-4".into()],
            })
            .await
            .expect("batch get")
            .into_inner();
        assert_eq!(skus(&batch.products), ["SKU-4", "SKU-0", "SKU-4"]);
        let levels = client
            .batch_get_stock(pb::BatchGetStockRequest {
                skus: vec!["SKU-2".into(), "SKU-1".into()],
            })
            .await
            .expect("batch get stock")
            .into_inner()
            .stock_levels;
        let on_hand: Vec<_> = levels
            .iter()
            .map(|level| (level.sku.as_str(), level.on_hand))
            .collect();
        assert_eq!(on_hand, [("SKU-2", 20), ("SKU-1", 10)]);
        for status in [
            client
                .batch_get_products(pb::BatchGetProductsRequest {
                    skus: vec!["SKU-0".into(), "NOPE".into()],
                })
                .await
                .expect_err("an unknown SKU fails the whole batch"),
            client
                .batch_get_stock(pb::BatchGetStockRequest {
                    skus: vec!["NOPE".into()],
                })
                .await
                .expect_err("an unknown SKU fails the whole batch"),
            client
                .get_product(pb::GetProductRequest { sku: "NOPE".into() })
                .await
                .expect_err("unknown"),
        ] {
            assert_eq!(status.code(), Code::NotFound, "{}", status.message());
        }

        // With a mask only the named fields change; without one, every field that is set.
        let repriced = staff
            .update_product(pb::UpdateProductRequest {
                product: Some(pb::Product {
                    sku: "SKU-1".into(),
                    title: "ignored".into(),
                    price: usd(2500),
                    ..Default::default()
                }),
                update_mask: mask(&["price", "active"]),
            })
            .await
            .expect("update with mask")
            .into_inner();
        assert_eq!(
            (
                repriced.title.as_str(),
                repriced.price.clone(),
                repriced.active
            ),
            ("Product SKU-1", usd(2500), false)
        );
        assert_eq!(repriced.create_time, created[1].create_time);
        assert_ne!(
            repriced.update_time, created[1].update_time,
            "update_time moves"
        );
        let renamed = staff
            .update_product(pb::UpdateProductRequest {
                product: Some(pb::Product {
                    sku: "SKU-1".into(),
                    title: "Renamed".into(),
                    description: "Now with a description".into(),
                    ..Default::default()
                }),
                update_mask: None,
            })
            .await
            .expect("update without mask")
            .into_inner();
        assert_eq!(
            (
                renamed.title.as_str(),
                renamed.description.as_str(),
                renamed.price,
                renamed.active
            ),
            ("Renamed", "Now with a description", usd(2500), false)
        );
        let deactivated = staff
            .update_product(pb::UpdateProductRequest {
                product: Some(pb::Product {
                    sku: "SKU-4".into(),
                    active: false,
                    ..Default::default()
                }),
                update_mask: mask(&["active"]),
            })
            .await
            .expect("deactivate")
            .into_inner();
        assert!(!deactivated.active);

        let pages = list_all(&mut client, 2, None).await;
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
        assert_eq!(
            skus(&pages.concat()),
            ["SKU-0", "SKU-1", "SKU-2", "SKU-3", "SKU-4"]
        );
        assert_eq!(
            skus(&list_all(&mut client, 1, Some(true)).await.concat()),
            ["SKU-0", "SKU-2"]
        );
        assert_eq!(
            skus(&list_all(&mut client, 1, Some(false)).await.concat()),
            ["SKU-1", "SKU-3", "SKU-4"]
        );
        let token = client
            .list_products(pb::ListProductsRequest {
                page_size: 1,
                page_token: String::new(),
                active: Some(true),
            })
            .await
            .expect("first page")
            .into_inner()
            .next_page_token;
        let status = client
            .list_products(pb::ListProductsRequest {
                page_size: 1,
                page_token: token,
                active: None,
            })
            .await
            .expect_err("a token used with another filter");
        assert_eq!(violated_fields(&status), ["page_token"]);

        let status = staff
            .create_product(create_request("SKU-0", 1, ""))
            .await
            .expect_err("a taken SKU");
        assert_eq!(status.code(), Code::AlreadyExists);
        assert_eq!(
            status.get_details_error_info().map(|info| info.reason),
            Some("SKU_TAKEN".to_owned())
        );
        assert_eq!(
            stock(&mut client, "SKU-0").await,
            (0, 0, 0),
            "the stock is untouched"
        );
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn bad_input_is_refused_with_field_violations() {
    for database in databases("inventory") {
        let App {
            server,
            mut client,
            mut staff,
        } = spawn_app(&database).await;
        create(&mut staff, "MUG", 5).await;
        let with = |change: fn(&mut pb::CreateProductRequest)| {
            let mut request = create_request("NEW", 1, "");
            change(&mut request);
            request
        };
        let create_cases: Vec<(pb::CreateProductRequest, Vec<&str>)> = vec![
            (with(|request| request.product = None), vec!["product"]),
            (
                with(|request| request.product.as_mut().expect("product").sku = "no spaces".into()),
                vec!["product.sku"],
            ),
            (
                with(|request| request.product.as_mut().expect("product").title.clear()),
                vec!["product.title"],
            ),
            (
                with(|request| request.product.as_mut().expect("product").price = None),
                vec!["product.price"],
            ),
            (
                with(|request| {
                    request.product.as_mut().expect("product").price = Some(Money {
                        currency_code: "dollars".into(),
                        minor_units: 1,
                    });
                }),
                vec!["product.price.currency_code"],
            ),
            (
                with(|request| request.product.as_mut().expect("product").price = usd(-1)),
                vec!["product.price.minor_units"],
            ),
            // The price of issue 14, whose three units wrapped to $0.02, is over the bound.
            (
                with(|request| {
                    request.product.as_mut().expect("product").price =
                        usd(6_148_914_691_236_517_206);
                }),
                vec!["product.price.minor_units"],
            ),
            (
                with(|request| {
                    request.product.as_mut().expect("product").price = usd(MAX_MINOR_UNITS + 1);
                }),
                vec!["product.price.minor_units"],
            ),
            (
                with(|request| {
                    request.initial_stock = -1;
                    request.request_id = "has space".into();
                    request.product.as_mut().expect("product").sku.clear();
                }),
                vec!["request_id", "initial_stock", "product.sku"],
            ),
        ];
        for (request, fields) in create_cases {
            let status = staff
                .create_product(request)
                .await
                .expect_err("bad input must fail");
            assert_invalid_argument(&status, "inventory.crowdcrunch.dev", &fields);
        }

        let reserve_cases: Vec<(pb::ReserveStockRequest, Vec<&str>)> = vec![
            (reserve_request("", &[("MUG", 1)]), vec!["reservation_id"]),
            // A reservation id is an order or return id: the one id rule, 64 characters at most.
            (
                reserve_request(&"r".repeat(65), &[("MUG", 1)]),
                vec!["reservation_id"],
            ),
            (reserve_request("r", &[]), vec!["lines"]),
            (
                reserve_request("r", &[("MUG", 0)]),
                vec!["lines[0].quantity"],
            ),
            (
                reserve_request("r", &[("MUG", 1), ("MUG", 2)]),
                vec!["lines[1].sku"],
            ),
            (
                reserve_request("r", &[("bad sku", 1)]),
                vec!["lines[0].sku"],
            ),
        ];
        for (request, fields) in reserve_cases {
            let status = client
                .reserve_stock(request)
                .await
                .expect_err("bad reservation");
            assert_eq!(violated_fields(&status), fields);
        }
        let status = staff
            .update_product(pb::UpdateProductRequest {
                product: Some(product("MUG", true)),
                update_mask: mask(&["sku"]),
            })
            .await
            .expect_err("the SKU cannot change");
        assert_eq!(violated_fields(&status), ["update_mask"]);
        let status = staff
            .update_product(pb::UpdateProductRequest {
                product: Some(pb::Product {
                    price: usd(MAX_MINOR_UNITS + 1),
                    ..product("MUG", true)
                }),
                update_mask: mask(&["price"]),
            })
            .await
            .expect_err("a price over the bound");
        assert_invalid_argument(
            &status,
            "inventory.crowdcrunch.dev",
            &["product.price.minor_units"],
        );
        let at_the_bound = staff
            .update_product(pb::UpdateProductRequest {
                product: Some(pb::Product {
                    price: usd(MAX_MINOR_UNITS),
                    ..product("MUG", true)
                }),
                update_mask: mask(&["price"]),
            })
            .await
            .expect("a price at the bound")
            .into_inner();
        assert_eq!(at_the_bound.price, usd(MAX_MINOR_UNITS));
        let status = staff
            .adjust_stock(pb::AdjustStockRequest {
                sku: "MUG".into(),
                delta: 0,
                ..Default::default()
            })
            .await
            .expect_err("a zero adjustment");
        assert_eq!(violated_fields(&status), ["delta"]);
        let status = client
            .restock(pb::RestockRequest {
                sku: "MUG".into(),
                quantity: 0,
                ..Default::default()
            })
            .await
            .expect_err("a zero restock");
        assert_eq!(violated_fields(&status), ["quantity"]);
        let status = client
            .list_products(pb::ListProductsRequest {
                page_size: -1,
                ..Default::default()
            })
            .await
            .expect_err("negative page size");
        assert_eq!(violated_fields(&status), ["page_size"]);
        let status = client
            .batch_get_stock(pb::BatchGetStockRequest {
                skus: vec!["MUG".into(); 1001],
            })
            .await
            .expect_err("too many SKUs");
        assert_eq!(violated_fields(&status), ["skus"]);
        let status = client
            .get_reservation(pb::GetReservationRequest {
                reservation_id: String::new(),
            })
            .await
            .expect_err("no id");
        assert_eq!(violated_fields(&status), ["reservation_id"]);

        assert_eq!(
            list_all(&mut client, 10, None).await.concat().len(),
            1,
            "nothing created"
        );
        assert_eq!(
            stock(&mut client, "MUG").await,
            (5, 0, 5),
            "nothing reserved"
        );
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn a_reservation_holds_every_line_or_none_and_names_every_short_sku() {
    for database in databases("inventory") {
        let App {
            server,
            mut client,
            mut staff,
        } = spawn_app(&database).await;
        for (sku, units) in [("A", 5), ("B", 1), ("C", 0), ("D", 10)] {
            create(&mut staff, sku, units).await;
        }
        let lines = [("D", 1), ("B", 2), ("A", 2), ("C", 1)];
        let status = reserve(&mut client, "order-1", &lines)
            .await
            .expect_err("B and C are short");
        let (reason, violations) = failed_precondition(&status);
        assert_eq!(reason, "INSUFFICIENT_STOCK", "{}", database.backend);
        let short: BTreeSet<_> = violations.iter().map(|(_, sku)| sku.as_str()).collect();
        assert_eq!(short, BTreeSet::from(["B", "C"]));
        assert!(
            violations
                .iter()
                .all(|(kind, _)| kind == "INSUFFICIENT_STOCK")
        );
        for (sku, units) in [("A", 5), ("B", 1), ("C", 0), ("D", 10)] {
            assert_eq!(
                stock(&mut client, sku).await,
                (units, 0, units),
                "{sku}: nothing held"
            );
        }
        let status = client
            .get_reservation(pb::GetReservationRequest {
                reservation_id: "order-1".into(),
            })
            .await
            .expect_err("a failed reservation is not stored");
        assert_eq!(status.code(), Code::NotFound);
        let status = reserve(&mut client, "order-2", &[("A", 1), ("NOPE", 1)])
            .await
            .expect_err("an unknown SKU");
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(stock(&mut client, "A").await, (5, 0, 5));

        // Once there is stock, the same reservation id may be tried again.
        for sku in ["B", "C"] {
            client
                .restock(pb::RestockRequest {
                    sku: sku.into(),
                    quantity: 1,
                    ..Default::default()
                })
                .await
                .expect("restock");
        }
        let reservation = reserve(&mut client, "order-1", &lines)
            .await
            .expect("every line is available now");
        assert_eq!(reservation.status(), pb::ReservationStatus::Reserved);
        let held: Vec<_> = reservation
            .lines
            .iter()
            .map(|line| (line.sku.as_str(), line.quantity))
            .collect();
        assert_eq!(held, lines, "the lines in the client's order");
        for (sku, expected) in [
            ("A", (5, 2, 3)),
            ("B", (2, 2, 0)),
            ("C", (1, 1, 0)),
            ("D", (10, 1, 9)),
        ] {
            assert_eq!(stock(&mut client, sku).await, expected, "{sku}");
        }
        // A repeat under the same id returns the reservation as it is and holds nothing more.
        let again = reserve(&mut client, "order-1", &[("D", 5)])
            .await
            .expect("a repeat");
        assert_eq!(again, reservation);
        assert_eq!(stock(&mut client, "D").await, (10, 1, 9));
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn concurrent_reservations_never_oversell() {
    for database in databases("inventory") {
        let App {
            server,
            mut client,
            mut staff,
        } = spawn_app(&database).await;
        create(&mut staff, "LAST", 5).await;
        create(&mut staff, "X", 3).await;
        create(&mut staff, "Y", 3).await;
        create(&mut staff, "Z", 10).await;

        // Many buyers of the last units: exactly the available amount succeeds.
        let single = futures::future::join_all((0..25).map(|n| {
            let mut client = client.clone();
            async move { reserve(&mut client, &format!("single-{n}"), &[("LAST", 1)]).await }
        }))
        .await;
        // Two SKUs in opposite orders: no deadlock, and again no oversell.
        let pairs = futures::future::join_all((0..12).map(|n| {
            let mut client = client.clone();
            let lines = if n % 2 == 0 {
                [("X", 1), ("Y", 1)]
            } else {
                [("Y", 1), ("X", 1)]
            };
            async move { reserve(&mut client, &format!("pair-{n}"), &lines).await }
        }))
        .await;
        // One reservation id sent many times at once: one reservation.
        let same = futures::future::join_all((0..8).map(|_| {
            let mut client = client.clone();
            async move { reserve(&mut client, "same", &[("Z", 2)]).await }
        }))
        .await;

        for (outcomes, available) in [(&single, 5), (&pairs, 3)] {
            let won = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
            assert_eq!(
                won, available,
                "{}: exactly what was available",
                database.backend
            );
            for outcome in outcomes {
                if let Err(status) = outcome {
                    assert_eq!(failed_precondition(status).0, "INSUFFICIENT_STOCK");
                }
            }
        }
        assert_eq!(stock(&mut client, "LAST").await, (5, 5, 0));
        assert_eq!(stock(&mut client, "X").await, (3, 3, 0));
        assert_eq!(stock(&mut client, "Y").await, (3, 3, 0));
        let answers: HashSet<_> = same
            .into_iter()
            .map(|outcome| {
                outcome
                    .expect("every repeat gets the reservation")
                    .create_time
            })
            .map(|time| time.map(|time| (time.seconds, time.nanos)))
            .collect();
        assert_eq!(answers.len(), 1, "one reservation");
        assert_eq!(stock(&mut client, "Z").await, (10, 2, 8), "held once");
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn commit_and_release_move_the_numbers() {
    for database in databases("inventory") {
        let App {
            server,
            mut client,
            mut staff,
        } = spawn_app(&database).await;
        create(&mut staff, "A", 10).await;
        let commit = |id: &str| pb::CommitReservationRequest {
            reservation_id: id.into(),
        };
        let release = |id: &str| pb::ReleaseReservationRequest {
            reservation_id: id.into(),
        };

        reserve(&mut client, "sold", &[("A", 3)])
            .await
            .expect("reserve");
        assert_eq!(stock(&mut client, "A").await, (10, 3, 7));
        let committed = client
            .commit_reservation(commit("sold"))
            .await
            .expect("commit")
            .into_inner();
        assert_eq!(committed.status(), pb::ReservationStatus::Committed);
        assert_eq!(
            stock(&mut client, "A").await,
            (7, 0, 7),
            "{}: sold units leave",
            database.backend
        );
        let again = client
            .commit_reservation(commit("sold"))
            .await
            .expect("commit again")
            .into_inner();
        assert_eq!(again, committed, "a repeat changes nothing");
        assert_eq!(stock(&mut client, "A").await, (7, 0, 7));
        let status = client
            .release_reservation(release("sold"))
            .await
            .expect_err("sold");
        assert_eq!(failed_precondition(&status).0, "RESERVATION_CLOSED");

        reserve(&mut client, "cancelled", &[("A", 4)])
            .await
            .expect("reserve");
        assert_eq!(stock(&mut client, "A").await, (7, 4, 3));
        let released = client
            .release_reservation(release("cancelled"))
            .await
            .expect("release")
            .into_inner();
        assert_eq!(released.status(), pb::ReservationStatus::Released);
        assert_eq!(
            stock(&mut client, "A").await,
            (7, 0, 7),
            "released units are available"
        );
        let again = client
            .release_reservation(release("cancelled"))
            .await
            .expect("again")
            .into_inner();
        assert_eq!(again, released);
        let status = client
            .commit_reservation(commit("cancelled"))
            .await
            .expect_err("released");
        assert_eq!(failed_precondition(&status).0, "RESERVATION_CLOSED");
        assert_eq!(stock(&mut client, "A").await, (7, 0, 7));

        let fetched = client
            .get_reservation(pb::GetReservationRequest {
                reservation_id: "cancelled".into(),
            })
            .await
            .expect("get")
            .into_inner();
        assert_eq!(fetched, released);
        for status in [
            client
                .commit_reservation(commit("nope"))
                .await
                .expect_err("unknown"),
            client
                .release_reservation(release("nope"))
                .await
                .expect_err("unknown"),
        ] {
            assert_eq!(status.code(), Code::NotFound);
        }
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn adjustments_never_take_on_hand_below_reserved() {
    for database in databases("inventory") {
        let App {
            server,
            mut client,
            mut staff,
        } = spawn_app(&database).await;
        create(&mut staff, "A", 5).await;
        reserve(&mut client, "r", &[("A", 4)])
            .await
            .expect("reserve");
        let adjust = |delta: i32| pb::AdjustStockRequest {
            sku: "A".into(),
            delta,
            reason: "stock count".into(),
            request_id: String::new(),
        };
        let status = staff
            .adjust_stock(adjust(-2))
            .await
            .expect_err("below reserved");
        let (reason, violations) = failed_precondition(&status);
        assert_eq!(reason, "STOCK_BELOW_RESERVED", "{}", database.backend);
        assert_eq!(
            violations,
            [("STOCK_BELOW_RESERVED".to_owned(), "A".to_owned())]
        );
        assert_eq!(stock(&mut client, "A").await, (5, 4, 1), "nothing changed");
        let level = staff
            .adjust_stock(adjust(-1))
            .await
            .expect("down to reserved")
            .into_inner();
        assert_eq!((level.on_hand, level.reserved, level.available), (4, 4, 0));
        let level = staff
            .adjust_stock(adjust(10))
            .await
            .expect("found a box")
            .into_inner();
        assert_eq!(level.on_hand, 14);
        let level = client
            .restock(pb::RestockRequest {
                sku: "A".into(),
                quantity: 3,
                reason: "return received".into(),
                request_id: String::new(),
            })
            .await
            .expect("restock")
            .into_inner();
        assert_eq!((level.on_hand, level.available), (17, 13));
        let status = staff
            .adjust_stock(adjust(i32::MAX))
            .await
            .expect_err("past int32");
        assert_eq!(failed_precondition(&status).0, "STOCK_LIMIT");
        let status = staff
            .adjust_stock(pb::AdjustStockRequest {
                sku: "NOPE".into(),
                delta: 1,
                ..Default::default()
            })
            .await
            .expect_err("unknown");
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(stock(&mut client, "A").await, (17, 4, 13));
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn replays_return_the_first_answer_and_change_nothing() {
    for database in databases("inventory") {
        let App {
            server,
            mut client,
            mut staff,
        } = spawn_app(&database).await;
        let request = create_request("A", 1, "create-a");
        let first = staff
            .create_product(request.clone())
            .await
            .expect("first")
            .into_inner();
        let replay = staff
            .create_product(request)
            .await
            .expect("replay")
            .into_inner();
        assert_eq!(first, replay, "{}", database.backend);
        let status = staff
            .create_product(create_request("OTHER", 1, "create-a"))
            .await
            .expect_err("a request id reused for another request");
        assert_eq!(violated_fields(&status), ["request_id"]);

        let restock = pb::RestockRequest {
            sku: "A".into(),
            quantity: 4,
            reason: "return".into(),
            request_id: "restock-1".into(),
        };
        let first = client
            .restock(restock.clone())
            .await
            .expect("restock")
            .into_inner();
        let replay = client.restock(restock).await.expect("replay").into_inner();
        assert_eq!((first.on_hand, replay), (5, first.clone()));
        let adjust = pb::AdjustStockRequest {
            sku: "A".into(),
            delta: -2,
            reason: "damaged".into(),
            request_id: "adjust-1".into(),
        };
        let first = staff
            .adjust_stock(adjust.clone())
            .await
            .expect("adjust")
            .into_inner();
        let replay = staff
            .adjust_stock(adjust)
            .await
            .expect("replay")
            .into_inner();
        assert_eq!((first.on_hand, replay), (3, first.clone()));
        assert_eq!(
            stock(&mut client, "A").await,
            (3, 0, 3),
            "each applied once"
        );

        // A failed reservation is not recorded as the answer to its request id.
        let mut reservation = reserve_request("order-9", &[("A", 5)]);
        reservation.request_id = "reserve-9".into();
        let status = client
            .reserve_stock(reservation.clone())
            .await
            .expect_err("short");
        assert_eq!(failed_precondition(&status).0, "INSUFFICIENT_STOCK");
        staff
            .adjust_stock(pb::AdjustStockRequest {
                sku: "A".into(),
                delta: 2,
                ..Default::default()
            })
            .await
            .expect("more stock");
        let reserved = client
            .reserve_stock(reservation.clone())
            .await
            .expect("the same request succeeds now")
            .into_inner();
        let replay = client
            .reserve_stock(reservation)
            .await
            .expect("replay")
            .into_inner();
        assert_eq!(replay, reserved);
        assert_eq!(stock(&mut client, "A").await, (5, 5, 0), "held once");
        server.stop().await.expect("drain");
    }
}

#[tokio::test]
async fn data_survives_a_restart() {
    for database in databases("inventory") {
        let App {
            server,
            mut client,
            mut staff,
        } = spawn_app(&database).await;
        let product = create(&mut staff, "DURABLE", 8).await;
        let reservation = reserve(&mut client, "order-1", &[("DURABLE", 3)])
            .await
            .expect("reserve");
        server.stop().await.expect("drain");

        let App {
            server, mut client, ..
        } = spawn_app(&database).await;
        let fetched = client
            .get_product(pb::GetProductRequest {
                sku: "DURABLE".into(),
            })
            .await
            .expect("the product is still there")
            .into_inner();
        assert_eq!(fetched, product, "{}", database.backend);
        let fetched = client
            .get_reservation(pb::GetReservationRequest {
                reservation_id: "order-1".into(),
            })
            .await
            .expect("the reservation is still there")
            .into_inner();
        assert_eq!(fetched, reservation);
        assert_eq!(stock(&mut client, "DURABLE").await, (8, 3, 5));
        server.stop().await.expect("drain");
    }
}
