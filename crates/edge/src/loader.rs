//! The edge's own batching loader, and the request scope that holds it: what one GraphQL request
//! carries (its trace context and forwarded headers, the backends' channels) and the loader that
//! gathers its join fields into BatchGet and List calls, so that a page of N parents costs one
//! call per join, not N.
//!
//! **Why our own loader, not async-graphql's DataLoader.** Its batch closes after a wall-clock
//! delay (1ms), which a page of 50 orders overruns in a debug build or on a busy process, so a
//! page's keys split over several calls. Here the batch closes when the request has run out of
//! keys to add: the first key's future yields to the request's other resolvers until a pass adds
//! no key. Each join loads on its own, so a backend that is down fails only its own fields, and
//! a BatchGet's unknown id fails only its own parent's field (the other keys are asked again
//! without it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::channel::oneshot;
use prost_reflect::{DynamicMessage, Value};
use tonic::Status;
use tonic_types::StatusExt as _;

use crate::errors::{self, InputRoot};
use crate::fault::Fault;
use crate::grpc::{Backends, CallContext, Rpc};
use crate::plan::catalog::Cardinality;
use crate::plan::{JoinPlan, Plan};

/// The most keys one BatchGet or List filter may hold (AIP-231 as the services implement it).
const MAX_KEYS: usize = 1000;
/// The most pages a MANY join reads for one batch: a bound on work; past it the join fails.
const MAX_PAGES: usize = 20;

/// The per-request state resolvers read.
pub struct RequestScope {
    /// Trace context and forwarded headers for every backend call.
    pub call: CallContext,
    /// The backends' channels.
    pub backends: Backends,
    /// Batches the join fields of this request.
    pub loader: JoinLoader,
}

impl RequestScope {
    /// A fresh scope for one request (or one subscription).
    pub fn new(plan: Arc<Plan>, backends: Backends, call: CallContext) -> Self {
        let loader = JoinLoader {
            plan,
            backends: backends.clone(),
            call: call.clone(),
            state: Mutex::new(BatchState::default()),
        };
        Self {
            call,
            backends,
            loader,
        }
    }
}

/// One parent's key for one join.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JoinKey {
    /// The join's index in [`Plan::joins`].
    pub join: usize,
    /// The parent's key value.
    pub key: String,
    /// For a connection's first page through its `batch_rpc`: the page size; else 0.
    pub page_size: usize,
}

impl JoinKey {
    /// The key of a ONE or MANY join.
    pub fn new(join: usize, key: String) -> Self {
        Self {
            join,
            key,
            page_size: 0,
        }
    }

    /// The key of a connection's first page of `page_size` items, through its `batch_rpc`.
    pub fn first_page(join: usize, key: String, page_size: usize) -> Self {
        Self {
            join,
            key,
            page_size,
        }
    }
}

/// Why a join could not load: whose fault it is decides what the client is told.
#[derive(Debug, thiserror::Error)]
enum LoadError {
    /// The backend answered an error (or could not be reached).
    #[error("the backend failed: {0}")]
    Backend(#[from] Status),
    /// The edge's own invariant does not hold.
    #[error(transparent)]
    Fault(#[from] Fault),
    /// A MANY join holds more items than the loader reads for one batch.
    #[error("{join} has more than {limit} items for these parents")]
    TooManyItems {
        /// The join's GraphQL field.
        join: String,
        /// The most items read.
        limit: usize,
    },
}

impl LoadError {
    /// The GraphQL error of this failure of a call to `backend`.
    fn into_graphql(self, backend: &str) -> async_graphql::Error {
        match self {
            Self::Backend(status) => errors::from_status(&status, backend, InputRoot::None),
            // Concealed, with the others, before the response leaves (`fault::conceal_faults`).
            Self::Fault(fault) => fault.into(),
            // A plain list is answered whole or not at all, never cut short in silence.
            too_many @ Self::TooManyItems { .. } => {
                errors::coded("RESOURCE_EXHAUSTED", too_many.to_string())
            }
        }
    }
}

/// The items a join key loaded, or why they could not be.
type Loaded = Result<Arc<Vec<DynamicMessage>>, async_graphql::Error>;

/// What one join loaded, by key, or why it could not.
type LoadedJoin = Result<HashMap<String, Loaded>, async_graphql::Error>;

/// What a fetch answered, by key: the key's items, or why that key alone has none (a BatchGet's
/// unknown id).
type Fetched = Vec<(String, Result<Vec<DynamicMessage>, Status>)>;

/// How many passes of the request's resolvers the first key waits at most for others.
const MAX_PASSES: usize = 64;
/// How many passes in a row must add no key before the batch closes.
const QUIET_PASSES: usize = 3;

/// Loads join keys in batches, one backend call (or one paged List) per join, and remembers what
/// it loaded for the rest of the request.
pub struct JoinLoader {
    plan: Arc<Plan>,
    backends: Backends,
    call: CallContext,
    state: Mutex<BatchState>,
}

#[derive(Default)]
struct BatchState {
    /// Keys waiting for the open batch, each with the futures waiting for it.
    pending: Vec<(JoinKey, oneshot::Sender<Loaded>)>,
    /// Whether a future leads the open batch (waits for it to close, then loads it).
    led: bool,
    /// What this request loaded already.
    loaded: HashMap<JoinKey, Arc<Vec<DynamicMessage>>>,
}

impl JoinLoader {
    fn state(&self) -> std::sync::MutexGuard<'_, BatchState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The items of `key`, loaded with every other key the request asks for meanwhile.
    pub async fn load_one(
        &self,
        key: JoinKey,
    ) -> Result<Arc<Vec<DynamicMessage>>, async_graphql::Error> {
        let (receiver, leads) = {
            let mut state = self.state();
            if let Some(items) = state.loaded.get(&key) {
                return Ok(items.clone());
            }
            let (sender, receiver) = oneshot::channel();
            state.pending.push((key, sender));
            let leads = !state.led;
            state.led = true;
            (receiver, leads)
        };
        if leads {
            self.run_batch().await;
        }
        match receiver.await {
            Ok(loaded) => loaded,
            Err(_) => Err(Fault::LoaderLostKey("its batch was dropped").into()),
        }
    }

    /// Loads `keys` (in one batch with whatever else is asked meanwhile) into the request's
    /// cache, so the join fields that ask for them later find them there. A failure is left for
    /// those fields to report.
    pub async fn prefetch(&self, mut keys: Vec<JoinKey>) {
        keys.sort_by(|a, b| (a.join, a.page_size, &a.key).cmp(&(b.join, b.page_size, &b.key)));
        keys.dedup();
        if keys.is_empty() {
            return;
        }
        let loads = keys.into_iter().map(|key| self.load_one(key));
        let _ = futures::future::join_all(loads).await;
    }

    /// Lets the request's other resolvers add their keys until a pass adds none, then loads the
    /// batch and answers every waiting future.
    async fn run_batch(&self) {
        let mut seen = 0;
        let mut quiet = 0;
        for _ in 0..MAX_PASSES {
            let pending = self.state().pending.len();
            if pending == seen {
                quiet += 1;
                if quiet == QUIET_PASSES {
                    break;
                }
            } else {
                quiet = 0;
                seen = pending;
            }
            tokio::task::yield_now().await;
        }
        let batch = {
            let mut state = self.state();
            state.led = false;
            std::mem::take(&mut state.pending)
        };
        let keys: Vec<JoinKey> = batch.iter().map(|(key, _)| key.clone()).collect();
        let results = self.load(&keys).await;
        let mut state = self.state();
        for (key, sender) in batch {
            let answer = match results.get(&(key.join, key.page_size)) {
                Some(Ok(loaded)) => match loaded.get(&key.key) {
                    Some(Err(error)) => Err(error.clone()),
                    Some(Ok(items)) => {
                        state.loaded.insert(key, items.clone());
                        Ok(items.clone())
                    }
                    None => Ok(Arc::default()),
                },
                Some(Err(error)) => Err(error.clone()),
                None => Err(Fault::LoaderLostKey("its join was not loaded").into()),
            };
            let _ = sender.send(answer);
        }
    }

    /// Loads `keys`, one call (or paged List) per join and page size; each join succeeds or
    /// fails on its own, so a backend that is down fails only its own fields.
    async fn load(&self, keys: &[JoinKey]) -> HashMap<(usize, usize), LoadedJoin> {
        let mut by_join: HashMap<(usize, usize), Vec<String>> = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for key in keys {
            if seen.insert(key) {
                by_join
                    .entry((key.join, key.page_size))
                    .or_default()
                    .push(key.key.clone());
            }
        }
        let loads = by_join
            .into_iter()
            .map(|((join, page_size), keys)| async move {
                let Some(plan) = self.plan.joins.get(join) else {
                    return ((join, page_size), Err(Fault::UnknownJoin(join).into()));
                };
                let loaded = match (plan.join.cardinality, &plan.batch_rpc) {
                    (Cardinality::One, _) => self.fetch_one(plan, &keys).await,
                    (Cardinality::Many, _) => self.fetch_many(plan, &keys).await,
                    (Cardinality::Connection, Some(batch_rpc)) => {
                        self.fetch_first_pages(plan, batch_rpc, &keys, page_size)
                            .await
                    }
                    (Cardinality::Connection, None) => Err(misplanned(
                        plan,
                        "a connection without batch_rpc is read per parent",
                    )),
                };
                let backend = plan.rpc.backend.as_str();
                let loaded = loaded
                    .map_err(|error| error.into_graphql(backend))
                    .map(|fetched| {
                        fetched
                            .into_iter()
                            .map(|(key, items)| {
                                let items = items.map(Arc::new).map_err(|status| {
                                    errors::from_status(&status, backend, InputRoot::None)
                                });
                                (key, items)
                            })
                            .collect()
                    });
                ((join, page_size), loaded)
            });
        futures::future::join_all(loads).await.into_iter().collect()
    }

    /// The first page of every key from one call of the join's `batch_rpc`: each key's loaded
    /// item is its List response.
    async fn fetch_first_pages(
        &self,
        plan: &JoinPlan,
        batch_rpc: &Rpc,
        keys: &[String],
        page_size: usize,
    ) -> Result<Fetched, LoadError> {
        let (Some(batch), Some(paging)) = (&plan.join.batch, &plan.paging) else {
            return Err(misplanned(
                plan,
                "a batched connection without its batch RPC",
            ));
        };
        let mut out = Vec::with_capacity(keys.len());
        let calls = keys.chunks(MAX_KEYS).map(|chunk| async move {
            let requests = chunk
                .iter()
                .map(|key| {
                    let mut request = DynamicMessage::new(plan.join.method.input());
                    request.set_field(
                        &plan.join.request_field,
                        keys_value(plan, std::slice::from_ref(key))?,
                    );
                    paging.first_page(&mut request, page_size);
                    Ok(Value::Message(request))
                })
                .collect::<Result<_, LoadError>>()?;
            let mut request = DynamicMessage::new(batch.method.input());
            request.set_field(&batch.requests, Value::List(requests));
            let response = self.backends.unary(batch_rpc, request, &self.call).await?;
            let responses = messages(response, &batch.responses);
            if responses.len() != chunk.len() {
                // The backend broke its contract: its failure, not the edge's.
                return Err(LoadError::Backend(Status::internal(format!(
                    "{} answered {} of {} requests",
                    batch.method.full_name(),
                    responses.len(),
                    chunk.len()
                ))));
            }
            Ok(chunk
                .iter()
                .cloned()
                .zip(responses.into_iter().map(|response| Ok(vec![response])))
                .collect::<Vec<_>>())
        });
        for chunk in futures::future::join_all(calls).await {
            out.extend(chunk?);
        }
        Ok(out)
    }

    /// BatchGet: the items answer the keys in request order. A key the backend does not know
    /// (NOT_FOUND naming it in its ResourceInfo) fails alone: the others are asked again
    /// without it, so one dangling reference costs its own field, not every parent's.
    async fn fetch_one(&self, plan: &JoinPlan, keys: &[String]) -> Result<Fetched, LoadError> {
        let chunk_size = if plan.join.request_field.is_list() {
            MAX_KEYS
        } else {
            1
        };
        let calls = keys.chunks(chunk_size).map(|chunk| async move {
            let mut unknown: HashMap<String, Status> = HashMap::new();
            let mut wanted: Vec<String> = chunk.to_vec();
            let mut found: HashMap<String, DynamicMessage> = HashMap::new();
            while !wanted.is_empty() {
                let mut request = DynamicMessage::new(plan.join.method.input());
                request.set_field(&plan.join.request_field, keys_value(plan, &wanted)?);
                match self.backends.unary(&plan.rpc, request, &self.call).await {
                    Ok(response) => {
                        found.extend(wanted.drain(..).zip(messages(response, &plan.items)));
                    }
                    Err(status) if status.code() == tonic::Code::NotFound => {
                        let name = status
                            .get_details_resource_info()
                            .map(|info| info.resource_name)
                            .filter(|name| wanted.contains(name))
                            .ok_or_else(|| status.clone())?;
                        wanted.retain(|key| *key != name);
                        unknown.insert(name, status);
                    }
                    Err(status) => return Err(status.into()),
                }
            }
            Ok::<_, LoadError>(
                chunk
                    .iter()
                    .map(|key| {
                        let items = match (found.get(key), unknown.get(key)) {
                            (Some(item), _) => Ok(vec![item.clone()]),
                            (None, Some(status)) => Err(status.clone()),
                            (None, None) => Ok(Vec::new()),
                        };
                        (key.clone(), items)
                    })
                    .collect::<Fetched>(),
            )
        });
        let mut out = Vec::with_capacity(keys.len());
        for chunk in futures::future::join_all(calls).await {
            out.extend(chunk?);
        }
        Ok(out)
    }

    /// List filtered by every key at once, every page, grouped by the items' key field.
    async fn fetch_many(&self, plan: &JoinPlan, keys: &[String]) -> Result<Fetched, LoadError> {
        let Some(result_key) = &plan.join.result_key else {
            return Err(misplanned(plan, "a MANY join without result_key"));
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
                request.set_field(&plan.join.request_field, keys_value(plan, chunk)?);
                if let Some(field) = &page_size {
                    request.set_field(
                        field,
                        Value::I32(i32::try_from(MAX_KEYS).unwrap_or(i32::MAX)),
                    );
                }
                if let Some(field) = &page_token {
                    request.set_field(field, Value::String(token.clone()));
                }
                let response = self.backends.unary(&plan.rpc, request, &self.call).await?;
                // A List without `next_page_token` answers whole: its one page is the end.
                token = match &next_page_token {
                    Some(field) => response
                        .get_field(field)
                        .as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| Fault::NotAString(field.full_name().to_owned()))?,
                    None => String::new(),
                };
                for item in messages(response, &plan.items) {
                    let key = item
                        .get_field(result_key)
                        .as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| Fault::NotAString(result_key.full_name().to_owned()))?;
                    if let Some(group) = grouped.get_mut(&key) {
                        group.push(item);
                    }
                }
                if token.is_empty() {
                    break;
                }
            }
            if !token.is_empty() {
                return Err(LoadError::TooManyItems {
                    join: plan.join.field.clone(),
                    limit: MAX_PAGES * MAX_KEYS,
                });
            }
        }
        Ok(grouped
            .into_iter()
            .map(|(key, items)| (key, Ok(items)))
            .collect())
    }
}

/// The fault of a join planned without something it needs.
fn misplanned(plan: &JoinPlan, what: &'static str) -> LoadError {
    LoadError::Fault(Fault::Misplanned {
        join: plan.join.field.clone(),
        what,
    })
}

/// The request field's value for `keys`: a list, or the one key of a single-key field (which
/// the loader asks one key at a time).
fn keys_value(plan: &JoinPlan, keys: &[String]) -> Result<Value, LoadError> {
    if plan.join.request_field.is_list() {
        return Ok(Value::List(
            keys.iter().cloned().map(Value::String).collect(),
        ));
    }
    match keys {
        [key] => Ok(Value::String(key.clone())),
        _ => Err(misplanned(
            plan,
            "a single-key request field asked for several keys",
        )),
    }
}

/// The messages of the repeated message field `field` of `response`.
fn messages(
    mut response: DynamicMessage,
    field: &prost_reflect::FieldDescriptor,
) -> Vec<DynamicMessage> {
    match response.take_field(field) {
        Some(Value::List(items)) => items
            .into_iter()
            .filter_map(|item| match item {
                Value::Message(message) => Some(message),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}
