//! The plan: everything the edge derives from the descriptors before it serves, and that a
//! request only looks up. [`catalog`] reads what the descriptors say (comments,
//! `google.api.field_behavior`, the `crowdcrunch.graphql.v1` options); the schema builder turns
//! that into GraphQL types and, alongside, into the [`Plan`] its resolvers share: how each input
//! becomes a request message, each join with its RPCs, the paging fields of each List, and what
//! a selection can prefetch.
//!
//! **Why runtime derivation, not build-time codegen.** A proto change needs a rebuild either way
//! (the descriptors are embedded), so codegen would buy nothing at run time: the schema and this
//! plan are built once at start, in milliseconds, and a request only looks up plans made then.
//! Deriving at run time keeps one mapping written once instead of generated Rust per message,
//! makes the mapping testable on any descriptor set (`tests/proto/mapping`), and lets
//! `crowdcrunch schema` print exactly what serves. Every check a descriptor can fail (a join's
//! key that is not a string, a List without its paging fields) fails the start, never a request.

pub mod catalog;
pub mod reads;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor};

use crate::convert::InputPlans;
use crate::grpc::Rpc;
use catalog::{Join, list_item_field};

/// What the resolvers share, derived at start: the input plans, the joins, the RPCs and what a
/// selection can prefetch. It holds no connection: the backends are the request scope's.
pub struct Plan {
    /// How inputs become messages.
    pub inputs: InputPlans,
    /// The joins, by index.
    pub joins: Vec<JoinPlan>,
    /// Every RPC the schema calls, by full name.
    pub rpcs: BTreeMap<String, Arc<Rpc>>,
    /// The largest `first`.
    pub max_page_size: i32,
    /// What a selection can prefetch, by message full name and GraphQL field name.
    pub prefetch: HashMap<String, HashMap<String, Prefetch>>,
    /// The RPCs each root and join field calls, whose rules say who may select it, by GraphQL
    /// type name and field name.
    pub guarded: HashMap<String, HashMap<String, Vec<Arc<Rpc>>>>,
    /// What each field of an object type reads of its message, for decoding answers only as far
    /// as a query reads them.
    pub reads: reads::Reads,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("joins", &self.joins.len())
            .field("rpcs", &self.rpcs.len())
            .finish_non_exhaustive()
    }
}

/// What a field of an object type leads to, for prefetching joins before their fields resolve.
#[derive(Debug, Clone)]
pub enum Prefetch {
    /// A ONE or MANY join, by index.
    Join(usize),
    /// A message field shown as an object: its children may hold joins.
    Object(FieldDescriptor),
}

/// A join, with its RPC and the response field holding its items.
#[derive(Debug)]
pub struct JoinPlan {
    /// The join.
    pub join: Join,
    /// The RPC it calls.
    pub rpc: Arc<Rpc>,
    /// The response's repeated item field.
    pub items: FieldDescriptor,
    /// For a connection: the List's paging fields.
    pub paging: Option<Paging>,
    /// For a connection with a `batch_rpc`: that RPC.
    pub batch_rpc: Option<Arc<Rpc>>,
}

impl JoinPlan {
    /// The RPCs this join may call: its own, and its `batch_rpc`.
    pub fn rpcs(&self) -> impl Iterator<Item = &Rpc> + Clone {
        std::iter::once(self.rpc.as_ref()).chain(self.batch_rpc.as_deref())
    }

    /// The parent's key for this join (empty when the reference is not set); `None` only if
    /// the key field is not a string, which the catalog refuses at start.
    pub fn key_of(&self, parent: &DynamicMessage) -> Option<String> {
        parent.get_field(&self.join.key).as_str().map(str::to_owned)
    }
}

/// The most items one backend page may hold (AIP-158 as the services implement it).
pub const BACKEND_MAX_PAGE: i32 = 1000;

/// The paging fields of an AIP-158 List RPC, checked for their types when found.
#[derive(Debug, Clone)]
pub struct Paging {
    /// The request's `int32 page_size`.
    pub page_size: FieldDescriptor,
    /// The request's `string page_token`.
    pub page_token: FieldDescriptor,
    /// The response's `string next_page_token`.
    pub next_page_token: FieldDescriptor,
    /// The response's repeated item field.
    pub items: FieldDescriptor,
}

impl Paging {
    /// The paging fields of `method`, when it is an AIP-158 List: `int32 page_size` and
    /// `string page_token` in, `string next_page_token` and a repeated message out.
    pub fn of(method: &MethodDescriptor) -> Option<Self> {
        let request = method.input();
        let response = method.output();
        let field = |message: &MessageDescriptor, name: &str, kind: Kind| {
            message
                .get_field_by_name(name)
                .filter(|field| !field.is_list() && field.kind() == kind)
        };
        Some(Self {
            page_size: field(&request, "page_size", Kind::Int32)?,
            page_token: field(&request, "page_token", Kind::String)?,
            next_page_token: field(&response, "next_page_token", Kind::String)?,
            items: list_item_field(&response)?,
        })
    }

    /// Asks `request` for the first page of `page_size` items (at least one, at most a
    /// backend page).
    pub fn first_page(&self, request: &mut DynamicMessage, page_size: usize) {
        let page_size = i32::try_from(page_size).unwrap_or(BACKEND_MAX_PAGE);
        request.set_field(
            &self.page_size,
            prost_reflect::Value::I32(page_size.clamp(1, BACKEND_MAX_PAGE)),
        );
        request.set_field(
            &self.page_token,
            prost_reflect::Value::String(String::new()),
        );
    }

    /// The next page's token in `response` (empty at the end of the list).
    pub fn next_page_token(&self, response: &DynamicMessage) -> String {
        match response.get_field(&self.next_page_token).as_ref() {
            prost_reflect::Value::String(token) => token.clone(),
            // `Paging::of` took a string field: its value is a string.
            _ => String::new(),
        }
    }
}
