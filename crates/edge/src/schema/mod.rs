//! The GraphQL schema, derived once at start from the descriptors, one file per construct:
//! object types, enums, unions and map entries for output messages (`outputs`), the join fields
//! between services (`joins`), input objects and `@oneOf` inputs for request messages
//! (`inputs`), the `Query`, `Mutation` and `Subscription` fields of the RPCs (`roots`), and Relay
//! connections for List RPCs (`connections`); the custom scalars are `crate::scalars`. No type
//! here is written by hand for a proto message.
//!
//! The builder wires each field to a `crate::resolve::Resolver` decided here, once, and fills the [`Plan`] the
//! resolvers share; what a field does at request time is in `crate::resolve`.
//!
//! Root and join fields are nullable, so a backend that is down costs only its own fields
//! (partial data plus errors), and so does a dangling reference.

mod connections;
mod inputs;
mod joins;
mod outputs;
mod roots;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use async_graphql::dynamic::{
    Enum, InputObject, Object, Schema, SchemaBuilder, Subscription, Union,
};

use crate::access;
use crate::convert::{InputPlan, InputPlans};
use crate::grpc::Rpc;
use crate::plan::catalog::{Catalog, CatalogError, RootKind};
use crate::plan::reads::Reads;
use crate::plan::{JoinPlan, Plan, Prefetch};
use crate::scalars;
use inputs::PlanFields;

/// Limits and switches of the schema.
#[derive(Debug, Clone)]
pub struct SchemaOptions {
    /// Deepest selection accepted.
    pub max_depth: usize,
    /// Most fields in one operation (each field counts one).
    pub max_complexity: usize,
    /// The largest `first`; larger values are coerced to it (AIP-158).
    pub max_page_size: i32,
    /// Whether `__schema` and `__type` answer.
    pub introspection: bool,
    /// Whether validation errors suggest names ("did you mean ...").
    pub field_suggestions: bool,
}

impl Default for SchemaOptions {
    fn default() -> Self {
        Self {
            max_depth: 15,
            max_complexity: 2000,
            max_page_size: 100,
            introspection: true,
            field_suggestions: true,
        }
    }
}

/// Builds the schema and the plan its resolvers share; `extend` adds to the schema builder
/// (extensions) before it is finished.
pub fn build(
    catalog: &Catalog,
    options: &SchemaOptions,
    extend: impl FnOnce(SchemaBuilder) -> SchemaBuilder,
) -> Result<(Schema, Arc<Plan>), CatalogError> {
    let mut builder = Builder {
        catalog,
        objects: BTreeMap::new(),
        output_names: HashMap::new(),
        claimed: HashMap::new(),
        inputs: BTreeMap::new(),
        plan_fields: HashMap::new(),
        input_plans: HashMap::new(),
        in_progress: HashSet::new(),
        enums: BTreeMap::new(),
        unions: BTreeMap::new(),
        joins: Vec::new(),
        rpcs: BTreeMap::new(),
        connections: HashSet::new(),
        prefetch: HashMap::new(),
        guarded: HashMap::new(),
        reads: Reads::default(),
    };
    let mut query = Object::new("Query")
        .description("Reads: the Get, BatchGet and List RPCs of every service.");
    let mut mutation =
        Object::new("Mutation").description("Changes: every other RPC of every service.");
    let mut subscription = Subscription::new("Subscription")
        .description("Live updates: the server-streaming RPCs of every service.");
    let (mut queries, mut mutations, mut subscriptions) = (0, 0, 0);
    let mut names = HashSet::new();
    for service in catalog.services() {
        for method in service.methods() {
            let Some(operation) = catalog.operation(&method)? else {
                continue;
            };
            if !names.insert((operation.kind as u8, operation.name.clone())) {
                return Err(CatalogError(format!(
                    "two RPCs become the root field {}",
                    operation.name
                )));
            }
            match operation.kind {
                RootKind::Query => {
                    query = query.field(builder.root_field(
                        &operation.method,
                        &operation.name,
                        false,
                    )?);
                    builder.guard("Query", &operation.name, &[&operation.method])?;
                    queries += 1;
                }
                RootKind::Mutation => {
                    mutation = mutation.field(builder.root_field(
                        &operation.method,
                        &operation.name,
                        true,
                    )?);
                    builder.guard("Mutation", &operation.name, &[&operation.method])?;
                    mutations += 1;
                }
                RootKind::Subscription => {
                    subscription = subscription
                        .field(builder.subscription_field(&operation.method, &operation.name)?);
                    builder.guard("Subscription", &operation.name, &[&operation.method])?;
                    subscriptions += 1;
                }
            }
        }
    }
    if queries == 0 {
        return Err(CatalogError("no RPC becomes a query".to_owned()));
    }
    let plan = Arc::new(Plan {
        inputs: InputPlans(builder.input_plans),
        joins: builder.joins,
        rpcs: builder.rpcs,
        max_page_size: options.max_page_size,
        prefetch: builder.prefetch,
        guarded: builder.guarded,
        reads: builder.reads,
    });
    let mut schema = Schema::build(
        "Query",
        (mutations > 0).then_some("Mutation"),
        (subscriptions > 0).then_some("Subscription"),
    )
    .register(query)
    .limit_depth(options.max_depth)
    .limit_complexity(options.max_complexity)
    .data(plan.clone());
    if mutations > 0 {
        schema = schema.register(mutation);
    }
    if subscriptions > 0 {
        schema = schema.register(subscription);
    }
    if !options.introspection {
        schema = schema.disable_introspection();
    }
    if !options.field_suggestions {
        schema = schema.disable_suggestions();
    }
    for scalar in scalars::all() {
        schema = schema.register(scalar);
    }
    for (_, object) in builder.objects {
        schema = schema.register(object);
    }
    for (_, input) in builder.inputs {
        schema = schema.register(input);
    }
    for (_, enum_) in builder.enums {
        schema = schema.register(enum_);
    }
    for (_, union) in builder.unions {
        schema = schema.register(union);
    }
    if !builder.connections.is_empty() {
        schema = schema.register(connections::page_info());
    }
    let schema = extend(schema)
        .finish()
        .map_err(|error| CatalogError(format!("the derived schema is invalid: {error}")))?;
    Ok((schema, plan))
}

/// The SDL of the schema the descriptors describe.
pub fn sdl(catalog: &Catalog) -> Result<String, CatalogError> {
    let (schema, _) = build(catalog, &SchemaOptions::default(), |builder| builder)?;
    Ok(schema.sdl())
}

/// The schema under construction, and the plan filled alongside.
struct Builder<'a> {
    catalog: &'a Catalog,
    objects: BTreeMap<String, Object>,
    /// Output type (or `Boolean` for an empty message) of each message, by full name.
    output_names: HashMap<String, String>,
    /// Which message or construct claimed each type name.
    claimed: HashMap<String, String>,
    inputs: BTreeMap<String, InputObject>,
    plan_fields: HashMap<String, PlanFields>,
    input_plans: HashMap<String, InputPlan>,
    in_progress: HashSet<String>,
    enums: BTreeMap<String, Enum>,
    unions: BTreeMap<String, Union>,
    joins: Vec<JoinPlan>,
    rpcs: BTreeMap<String, Arc<Rpc>>,
    connections: HashSet<String>,
    prefetch: HashMap<String, HashMap<String, Prefetch>>,
    guarded: HashMap<String, HashMap<String, Vec<Arc<Rpc>>>>,
    reads: Reads,
}

impl Builder<'_> {
    fn claim(&mut self, name: &str, owner: &str) -> Result<(), CatalogError> {
        match self.claimed.get(name) {
            Some(existing) if existing != owner => Err(CatalogError(format!(
                "the GraphQL type name {name} is claimed by both {existing} and {owner}"
            ))),
            _ => {
                self.claimed.insert(name.to_owned(), owner.to_owned());
                Ok(())
            }
        }
    }

    /// Records that the field `field` of `type_name` calls `methods`, whose rules say who may
    /// select it.
    fn guard(
        &mut self,
        type_name: &str,
        field: &str,
        methods: &[&prost_reflect::MethodDescriptor],
    ) -> Result<(), CatalogError> {
        let rpcs = methods
            .iter()
            .map(|method| self.rpc(method))
            .collect::<Result<_, _>>()?;
        self.guarded
            .entry(type_name.to_owned())
            .or_default()
            .insert(field.to_owned(), rpcs);
        Ok(())
    }

    /// The description of a root or join field: its documentation, then who may select it.
    fn described(
        &self,
        doc: Option<String>,
        method: &prost_reflect::MethodDescriptor,
    ) -> Result<String, CatalogError> {
        let access = access::description_line(&self.catalog.rule(method)?);
        Ok(match doc.filter(|doc| !doc.is_empty()) {
            Some(doc) => format!("{doc}\n\n{access}"),
            None => access,
        })
    }

    /// The call plan of `method`, made once.
    fn rpc(&mut self, method: &prost_reflect::MethodDescriptor) -> Result<Arc<Rpc>, CatalogError> {
        if let Some(rpc) = self.rpcs.get(method.full_name()) {
            return Ok(rpc.clone());
        }
        let rpc = Arc::new(
            Rpc::new(method, self.catalog.rule(method)?)
                .map_err(|error| CatalogError(format!("{}: {error}", method.full_name())))?,
        );
        self.rpcs.insert(method.full_name().to_owned(), rpc.clone());
        Ok(rpc)
    }
}

/// A message's GraphQL name: its name, with the names of the messages it is nested in.
fn type_name(full_name: &str, package: &str) -> String {
    full_name
        .strip_prefix(package)
        .unwrap_or(full_name)
        .trim_start_matches('.')
        .split('.')
        .collect()
}
