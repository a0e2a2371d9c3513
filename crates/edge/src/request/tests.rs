//! Error propagation through the edge's request hooks, on a small hand-made schema: the rules
//! of the spec that async-graphql's dynamic schema leaves undone, and the edge's own faults
//! concealed on their way out.

use async_graphql::dynamic::{
    Field, FieldFuture, FieldValue, Object, Schema, Subscription, SubscriptionField,
    SubscriptionFieldFuture, TypeRef,
};
use async_graphql::{Request, Response};
use futures::StreamExt as _;
use serde_json::json;

use super::Caches;
use super::hooks::RequestHooksFactory;
use super::propagation::{run, run_stream};
use crate::fault::{FAULT_MESSAGE, Fault, INTERNAL};

/// `Query { item: Item, items: [Item!], strict: Item!, faulty: String }` and `Subscription { items: Item }`
/// (two events) over `Item { name: String!, broken: String!, maybe: String }`, where
/// `broken` and `maybe` always fail, and `faulty` fails with an edge fault.
fn schema() -> Schema {
    fn item<'a>() -> FieldFuture<'a> {
        FieldFuture::new(async { Ok(Some(FieldValue::value("x"))) })
    }
    fn failing<'a>() -> FieldFuture<'a> {
        FieldFuture::new(async { Err::<Option<FieldValue>, _>("it broke".into()) })
    }
    let query = Object::new("Query")
        .field(Field::new("item", TypeRef::named("Item"), |_| item()))
        .field(Field::new("items", TypeRef::named_nn_list("Item"), |_| {
            FieldFuture::new(async {
                Ok(Some(FieldValue::list([
                    FieldValue::value("a"),
                    FieldValue::value("b"),
                ])))
            })
        }))
        .field(Field::new("strict", TypeRef::named_nn("Item"), |_| item()))
        .field(Field::new(
            "faulty",
            TypeRef::named(TypeRef::STRING),
            |_| {
                FieldFuture::new(async {
                    Err::<Option<FieldValue>, _>(Fault::UnknownJoin(7).into())
                })
            },
        ));
    let item = Object::new("Item")
        .field(Field::new(
            "name",
            TypeRef::named_nn(TypeRef::STRING),
            |_| FieldFuture::new(async { Ok(Some(FieldValue::value("name"))) }),
        ))
        .field(Field::new(
            "broken",
            TypeRef::named_nn(TypeRef::STRING),
            |_| failing(),
        ))
        .field(Field::new("maybe", TypeRef::named(TypeRef::STRING), |_| {
            failing()
        }));
    let subscription = Subscription::new("Subscription").field(SubscriptionField::new(
        "items",
        TypeRef::named("Item"),
        |_| {
            SubscriptionFieldFuture::new(async {
                Ok(futures::stream::iter(["a", "b"].map(|item| {
                    Ok::<_, async_graphql::Error>(FieldValue::value(item))
                })))
            })
        },
    ));
    Schema::build("Query", None, Some("Subscription"))
        .register(query)
        .register(item)
        .register(subscription)
        .extension(RequestHooksFactory(std::sync::Arc::new(Caches::new(
            &crowdcrunch_runtime::edge::EdgeSettings::default(),
        ))))
        .finish()
        .expect("a valid schema")
}

async fn answer(query: &str) -> (serde_json::Value, Vec<serde_json::Value>) {
    let (response, executed) = run(&schema(), Request::new(query)).await;
    assert!(executed);
    let paths = response
        .errors
        .iter()
        .map(|error| serde_json::to_value(&error.path).expect("json"))
        .collect();
    (response.data.into_json().expect("json"), paths)
}

#[tokio::test]
async fn a_failed_nullable_field_is_null_at_its_path() {
    let (data, paths) = answer("{ item { name maybe } }").await;
    assert_eq!(data, json!({ "item": { "name": "name", "maybe": null } }));
    assert_eq!(paths, [json!(["item", "maybe"])]);
}

#[tokio::test]
async fn a_failed_non_null_field_nulls_its_parent() {
    let (data, paths) = answer("{ item { name broken } }").await;
    assert_eq!(data, json!({ "item": null }));
    assert_eq!(paths, [json!(["item", "broken"])]);
}

#[tokio::test]
async fn a_null_non_null_list_item_nulls_the_list() {
    let (data, _) = answer("{ items { name broken } item { name } }").await;
    assert_eq!(data, json!({ "items": null, "item": { "name": "name" } }));
}

#[tokio::test]
async fn a_null_non_null_root_field_nulls_data() {
    let (data, paths) = answer("{ strict { broken } item { name } }").await;
    assert_eq!(data, serde_json::Value::Null);
    assert_eq!(paths, [json!(["strict", "broken"])]);
}

#[tokio::test]
async fn an_object_whose_every_field_failed_is_an_object_of_nulls() {
    let (data, _) = answer("{ a: item { maybe } b: item { broken } }").await;
    assert_eq!(data, json!({ "a": { "maybe": null }, "b": null }));
}

#[tokio::test]
async fn every_subscription_event_keeps_its_field_errors_and_propagates_its_nulls() {
    let events: Vec<Response> = run_stream(
        &schema(),
        Request::new("subscription { items { name maybe broken } }"),
    )
    .collect()
    .await;
    assert_eq!(events.len(), 2);
    for event in events {
        let data = event.data.into_json().expect("json");
        assert_eq!(data, json!({ "items": null }));
        let paths: Vec<serde_json::Value> = event
            .errors
            .iter()
            .map(|error| serde_json::to_value(&error.path).expect("json"))
            .collect();
        assert_eq!(
            paths,
            [json!(["items", "maybe"]), json!(["items", "broken"])]
        );
    }
}

#[tokio::test]
async fn an_edge_fault_reaches_the_client_as_the_edge_failing_not_a_backend() {
    let (response, executed) = run(&schema(), Request::new("{ faulty item { name } }")).await;
    assert!(executed);
    let data = response.data.into_json().expect("json");
    assert_eq!(data, json!({ "faulty": null, "item": { "name": "name" } }));
    let [error] = response.errors.as_slice() else {
        panic!("one error: {:?}", response.errors);
    };
    assert_eq!(error.message, FAULT_MESSAGE);
    let extensions = serde_json::to_value(&error.extensions).expect("json");
    assert_eq!(extensions, json!({ "code": INTERNAL }));
    assert_eq!(
        serde_json::to_value(&error.path).expect("json"),
        json!(["faulty"])
    );
}
