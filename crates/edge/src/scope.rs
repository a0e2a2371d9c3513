//! What one GraphQL request carries: its trace context and forwarded headers, and the DataLoader
//! that batches its join fields into BatchGet and List calls, so that a page of N parents costs
//! one call per join, not N.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use prost_reflect::{DynamicMessage, Value};
use tonic::Status;

use crate::catalog::Cardinality;
use crate::errors::{self, InputRoot};
use crate::grpc::CallContext;
use crate::schema::{JoinPlan, Runtime};

/// The most keys one BatchGet or List filter may hold (AIP-231 as the services implement it).
const MAX_KEYS: usize = 1000;
/// The most pages a MANY join reads for one batch: a bound on work, never reached in practice.
const MAX_PAGES: usize = 20;

/// The per-request state resolvers read.
pub struct RequestScope {
    /// Trace context and forwarded headers for every backend call.
    pub call: CallContext,
    /// Batches the join fields of this request.
    pub loader: DataLoader<JoinLoader>,
}

impl RequestScope {
    /// A fresh scope for one request (or one subscription).
    pub fn new(runtime: Arc<Runtime>, call: CallContext) -> Self {
        let loader = DataLoader::new(
            JoinLoader {
                runtime,
                call: call.clone(),
            },
            tokio::spawn,
        );
        Self { call, loader }
    }
}

/// One parent's key for one join.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JoinKey {
    /// The join's index in [`Runtime::joins`].
    pub join: usize,
    /// The parent's key value.
    pub key: String,
}

/// Loads join keys in batches, one backend call (or one paged List) per join.
pub struct JoinLoader {
    runtime: Arc<Runtime>,
    call: CallContext,
}

impl Loader<JoinKey> for JoinLoader {
    type Value = Arc<Vec<DynamicMessage>>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[JoinKey]) -> Result<HashMap<JoinKey, Self::Value>, Self::Error> {
        let mut by_join: HashMap<usize, Vec<String>> = HashMap::new();
        for key in keys {
            let batch = by_join.entry(key.join).or_default();
            if !batch.contains(&key.key) {
                batch.push(key.key.clone());
            }
        }
        let loads = by_join.into_iter().map(|(join, keys)| async move {
            let plan = &self.runtime.joins[join];
            let loaded = match plan.join.cardinality {
                Cardinality::One => self.load_one(plan, &keys).await,
                Cardinality::Many | Cardinality::Connection => self.load_many(plan, &keys).await,
            }
            .map_err(|status| errors::from_status(&status, &plan.rpc.backend, InputRoot::None))?;
            Ok::<_, async_graphql::Error>(
                loaded
                    .into_iter()
                    .map(move |(key, items)| (JoinKey { join, key }, Arc::new(items)))
                    .collect::<Vec<_>>(),
            )
        });
        let mut out = HashMap::new();
        for loaded in futures::future::join_all(loads).await {
            out.extend(loaded?);
        }
        Ok(out)
    }
}

impl JoinLoader {
    /// BatchGet: the items answer the keys in request order.
    async fn load_one(
        &self,
        plan: &JoinPlan,
        keys: &[String],
    ) -> Result<Vec<(String, Vec<DynamicMessage>)>, Status> {
        let mut out = Vec::with_capacity(keys.len());
        let chunk_size = if plan.join.request_field.is_list() {
            MAX_KEYS
        } else {
            1
        };
        let calls = keys.chunks(chunk_size).map(|chunk| async move {
            let mut request = DynamicMessage::new(plan.join.method.input());
            request.set_field(&plan.join.request_field, keys_value(plan, chunk));
            let response = self
                .runtime
                .backends
                .unary(&plan.rpc, request, &self.call)
                .await?;
            let items = items(&response, plan);
            Ok::<_, Status>(
                chunk
                    .iter()
                    .cloned()
                    .zip(items.into_iter().map(|item| vec![item]))
                    .collect::<Vec<_>>(),
            )
        });
        for chunk in futures::future::join_all(calls).await {
            out.extend(chunk?);
        }
        Ok(out)
    }

    /// List filtered by every key at once, every page, grouped by the items' key field.
    async fn load_many(
        &self,
        plan: &JoinPlan,
        keys: &[String],
    ) -> Result<Vec<(String, Vec<DynamicMessage>)>, Status> {
        let Some(result_key) = &plan.join.result_key else {
            return Err(Status::internal("a MANY join without result_key"));
        };
        let mut grouped: HashMap<String, Vec<DynamicMessage>> =
            keys.iter().map(|key| (key.clone(), Vec::new())).collect();
        let input = plan.join.method.input();
        let output = plan.join.method.output();
        let page_size = input.get_field_by_name("page_size");
        let page_token = input.get_field_by_name("page_token");
        let next_page_token = output.get_field_by_name("next_page_token");
        for chunk in keys.chunks(MAX_KEYS) {
            let mut token = String::new();
            for _ in 0..MAX_PAGES {
                let mut request = DynamicMessage::new(input.clone());
                request.set_field(&plan.join.request_field, keys_value(plan, chunk));
                if let Some(field) = &page_size {
                    request.set_field(
                        field,
                        Value::I32(i32::try_from(MAX_KEYS).unwrap_or(i32::MAX)),
                    );
                }
                if let Some(field) = &page_token {
                    request.set_field(field, Value::String(token.clone()));
                }
                let response = self
                    .runtime
                    .backends
                    .unary(&plan.rpc, request, &self.call)
                    .await?;
                for item in items(&response, plan) {
                    let key = item
                        .get_field(result_key)
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    if let Some(group) = grouped.get_mut(&key) {
                        group.push(item);
                    }
                }
                token = next_page_token
                    .as_ref()
                    .and_then(|field| response.get_field(field).as_str().map(str::to_owned))
                    .unwrap_or_default();
                if token.is_empty() {
                    break;
                }
            }
        }
        Ok(grouped.into_iter().collect())
    }
}

fn keys_value(plan: &JoinPlan, keys: &[String]) -> Value {
    if plan.join.request_field.is_list() {
        Value::List(keys.iter().cloned().map(Value::String).collect())
    } else {
        Value::String(keys.first().cloned().unwrap_or_default())
    }
}

fn items(response: &DynamicMessage, plan: &JoinPlan) -> Vec<DynamicMessage> {
    match response.get_field(&plan.items).into_owned() {
        Value::List(items) => items
            .into_iter()
            .filter_map(|item| match item {
                Value::Message(message) => Some(message),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}
