//! What a hostile client sends `CustomerService` over real gRPC: a body that is not protobuf is
//! INVALID_ARGUMENT (tonic's own codec answers INTERNAL), and a page token that was changed in any
//! way, or signed with another server's key, is INVALID_ARGUMENT on `page_token`; replicas that
//! share the key accept each other's tokens.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use crowdcrunch_outbox::Outbox;
use crowdcrunch_proto::customers::v1 as pb;
use crowdcrunch_proto::customers::v1::customer_service_client::CustomerServiceClient;
use crowdcrunch_runtime::ServerSettings;
use crowdcrunch_runtime::client::GrpcChannel;
use crowdcrunch_runtime::pagination::PageTokens;
use crowdcrunch_runtime::testing::{
    TestServer, assert_invalid_argument, call_with_raw_body, databases,
};
use tonic::Code;

/// The `ErrorInfo.domain` of the customers service.
const DOMAIN: &str = "customers.crowdcrunch.dev";

/// A customers server over `database` whose page tokens `page_tokens` signs.
async fn serve(database: crowdcrunch_runtime::Database, page_tokens: PageTokens) -> TestServer {
    let outbox = Outbox::open(&database, "customers")
        .await
        .expect("open the outbox");
    let settings = ServerSettings::new(([127, 0, 0, 1], 0).into()).with_page_tokens(page_tokens);
    TestServer::spawn(settings, crowdcrunch_customers::service(database, outbox)).await
}

fn random_key() -> PageTokens {
    PageTokens::generate().expect("a random key")
}

async fn list(
    client: &mut CustomerServiceClient<GrpcChannel>,
    page_token: &str,
) -> Result<pb::ListCustomersResponse, tonic::Status> {
    client
        .list_customers(pb::ListCustomersRequest {
            page_size: 1,
            page_token: page_token.to_owned(),
        })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn a_body_that_is_not_protobuf_is_invalid_argument() {
    let database = databases("customers").remove(0);
    let server = serve(
        database.connect(&crowdcrunch_customers::MIGRATOR).await,
        random_key(),
    )
    .await;
    // A field 1 of wire type 2 whose length runs past the end, then a reserved wire type.
    for garbage in [vec![0x0a, 0xff, 0x01, 0x41], vec![0xff; 16], vec![0x0f]] {
        let status = call_with_raw_body(
            server.channel().await,
            "/crowdcrunch.customers.v1.CustomerService/CreateCustomer",
            garbage.clone(),
        )
        .await
        .expect_err("garbage is refused");
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{garbage:?}: {status:?}"
        );
        assert!(
            status
                .message()
                .starts_with("the request is not valid protobuf: "),
            "{status:?}"
        );
    }
    // Valid protobuf still reaches the handler (an empty CreateCustomer lacks its customer).
    let status = call_with_raw_body(
        server.channel().await,
        "/crowdcrunch.customers.v1.CustomerService/CreateCustomer",
        Vec::new(),
    )
    .await
    .expect_err("an empty customer is refused");
    assert_invalid_argument(&status, DOMAIN, &["customer"]);
}

#[tokio::test]
async fn a_changed_or_foreign_page_token_is_refused_on_page_token() {
    for database in databases("customers") {
        let shared = random_key();
        let first = serve(
            database.connect(&crowdcrunch_customers::MIGRATOR).await,
            shared.clone(),
        )
        .await;
        let replica = serve(
            database.connect(&crowdcrunch_customers::MIGRATOR).await,
            shared,
        )
        .await;
        let stranger = serve(
            database.connect(&crowdcrunch_customers::MIGRATOR).await,
            random_key(),
        )
        .await;
        let mut client = CustomerServiceClient::new(first.channel().await);
        for n in 0..3 {
            client
                .create_customer(pb::CreateCustomerRequest {
                    customer: Some(pb::Customer {
                        email: format!("page{n}@example.com"),
                        display_name: format!("Page {n}"),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                })
                .await
                .expect("create a customer");
        }
        let page = list(&mut client, "").await.expect("the first page");
        let token = page.next_page_token;
        assert!(
            !token.is_empty(),
            "[{}] more pages follow",
            database.backend
        );
        let second = list(&mut client, &token)
            .await
            .expect("the token as returned");
        assert_ne!(second.customers, page.customers);

        let mut flipped = URL_SAFE_NO_PAD.decode(&token).expect("base64");
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0x20;
        let changed = [
            format!("{token}A"),
            format!("{token}AAAA"),
            token[..token.len() - 1].to_owned(),
            URL_SAFE_NO_PAD.encode(&flipped),
        ];
        for bad in &changed {
            let status = list(&mut client, bad).await.expect_err("a changed token");
            assert_invalid_argument(&status, DOMAIN, &["page_token"]);
        }

        let mut replica_client = CustomerServiceClient::new(replica.channel().await);
        let from_replica = list(&mut replica_client, &token)
            .await
            .expect("a replica with the same key accepts the token");
        assert_eq!(from_replica.customers, second.customers);
        let mut stranger_client = CustomerServiceClient::new(stranger.channel().await);
        let status = list(&mut stranger_client, &token)
            .await
            .expect_err("a server with another key");
        assert_invalid_argument(&status, DOMAIN, &["page_token"]);
    }
}
