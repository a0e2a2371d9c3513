//! The GraphQL schema, derived once at start from the descriptors: an object type per output
//! message, an input type per input message (named after the request, `Request` → `Input`), an
//! enum per proto enum, unions and `@oneOf` inputs for oneofs, connections for List RPCs,
//! subscriptions for server-streaming RPCs, and the join fields of `crowdcrunch.graphql.v1.join`.
//! No type here is written by hand for a proto message.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use async_graphql::dynamic::{
    Enum, EnumItem, Field, FieldFuture, FieldValue, InputObject, InputValue, Object,
    ResolverContext, Schema, SchemaBuilder, Subscription, SubscriptionField,
    SubscriptionFieldFuture, TypeRef, Union,
};
use async_graphql::{Name, Value};
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage as _,
};

use crate::catalog::{
    Cardinality, Catalog, CatalogError, Join, RootKind, camel_case, is_id, list_item_field,
    pascal_case,
};
use crate::convert::{
    EnumNames, InputField, InputKind, InputPlan, InputPlans, InputTarget, MaskPlan, Shape,
    message_shape, output, shape_of,
};
use crate::errors::{self, InputRoot};
use crate::grpc::{Backends, Rpc};
use crate::page::{self, Page};
use crate::scalars;
use crate::scope::{JoinKey, RequestScope};

/// The full name of the shared money type, which gets a computed `amount`.
const MONEY: &str = "crowdcrunch.type.v1.Money";

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
}

impl Default for SchemaOptions {
    fn default() -> Self {
        Self {
            max_depth: 15,
            max_complexity: 2000,
            max_page_size: 100,
            introspection: true,
        }
    }
}

/// What resolvers share, built at start: the backends, the input plans and the joins.
pub struct Runtime {
    /// The backends' channels.
    pub backends: Backends,
    /// How inputs become messages.
    pub plans: InputPlans,
    /// The joins, by index.
    pub joins: Vec<JoinPlan>,
    /// Every RPC the schema calls, by full name.
    pub rpcs: BTreeMap<String, Arc<Rpc>>,
    /// The largest `first`.
    pub max_page_size: i32,
    /// What a selection can prefetch, by message full name and GraphQL field name.
    pub prefetch: HashMap<String, HashMap<String, Prefetch>>,
}

/// What a field of an object type leads to, for prefetching joins before their fields resolve.
#[derive(Debug, Clone)]
pub enum Prefetch {
    /// A ONE or MANY join, by index.
    Join(usize),
    /// A message field shown as an object: its children may hold joins.
    Object(FieldDescriptor),
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("backends", &self.backends)
            .field("rpcs", &self.rpcs.len())
            .finish_non_exhaustive()
    }
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
    pub paging: Option<page::Paging>,
    /// For a connection with a `batch_rpc`: that RPC.
    pub batch_rpc: Option<Arc<Rpc>>,
}

/// The mode an input message is read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Mode {
    /// An RPC's request.
    Request,
    /// A message being created: REQUIRED fields are non-null; IDENTIFIER fields are left out.
    Create,
    /// The resource of an update: every field nullable but the ones that name it; the supplied
    /// fields make the FieldMask.
    Patch,
}

#[derive(Clone)]
struct PlanFields {
    fields: Vec<(String, TypeRef, Option<String>)>,
}

/// Builds the schema and the runtime its resolvers share; `extend` adds to the schema builder
/// (extensions) before it is finished.
pub fn build_with(
    catalog: &Catalog,
    options: &SchemaOptions,
    backends: Backends,
    extend: impl FnOnce(SchemaBuilder) -> SchemaBuilder,
) -> Result<(Schema, Arc<Runtime>), CatalogError> {
    let mut builder = Builder {
        catalog,
        objects: BTreeMap::new(),
        output_names: HashMap::new(),
        claimed: HashMap::new(),
        inputs: BTreeMap::new(),
        plan_fields: HashMap::new(),
        plans: HashMap::new(),
        in_progress: HashSet::new(),
        enums: BTreeMap::new(),
        unions: BTreeMap::new(),
        joins: Vec::new(),
        rpcs: BTreeMap::new(),
        connections: HashSet::new(),
        prefetch: HashMap::new(),
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
                    queries += 1;
                }
                RootKind::Mutation => {
                    mutation = mutation.field(builder.root_field(
                        &operation.method,
                        &operation.name,
                        true,
                    )?);
                    mutations += 1;
                }
                RootKind::Subscription => {
                    subscription = subscription
                        .field(builder.subscription_field(&operation.method, &operation.name)?);
                    subscriptions += 1;
                }
            }
        }
    }
    if queries == 0 {
        return Err(CatalogError("no RPC becomes a query".to_owned()));
    }
    let runtime = Arc::new(Runtime {
        backends,
        plans: InputPlans(builder.plans),
        joins: builder.joins,
        rpcs: builder.rpcs,
        max_page_size: options.max_page_size,
        prefetch: builder.prefetch,
    });
    let mut schema = Schema::build(
        "Query",
        (mutations > 0).then_some("Mutation"),
        (subscriptions > 0).then_some("Subscription"),
    )
    .register(query)
    .limit_depth(options.max_depth)
    .limit_complexity(options.max_complexity)
    .data(runtime.clone());
    if mutations > 0 {
        schema = schema.register(mutation);
    }
    if subscriptions > 0 {
        schema = schema.register(subscription);
    }
    if !options.introspection {
        schema = schema.disable_introspection();
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
        schema = schema.register(page::page_info());
    }
    let schema = extend(schema)
        .finish()
        .map_err(|error| CatalogError(format!("the derived schema is invalid: {error}")))?;
    Ok((schema, runtime))
}

/// The SDL of the schema the descriptors describe.
pub fn sdl(catalog: &Catalog) -> Result<String, CatalogError> {
    let backends = Backends::new(&HashMap::new(), None, std::time::Duration::from_secs(1))
        .map_err(|error| CatalogError(error.to_string()))?;
    let (schema, _) = build_with(catalog, &SchemaOptions::default(), backends, |builder| {
        builder
    })?;
    Ok(schema.sdl())
}

struct Builder<'a> {
    catalog: &'a Catalog,
    objects: BTreeMap<String, Object>,
    /// Output type (or `Boolean` for an empty message) of each message, by full name.
    output_names: HashMap<String, String>,
    /// Which message or construct claimed each type name.
    claimed: HashMap<String, String>,
    inputs: BTreeMap<String, InputObject>,
    plan_fields: HashMap<String, PlanFields>,
    plans: HashMap<String, InputPlan>,
    in_progress: HashSet<String>,
    enums: BTreeMap<String, Enum>,
    unions: BTreeMap<String, Union>,
    joins: Vec<JoinPlan>,
    rpcs: BTreeMap<String, Arc<Rpc>>,
    connections: HashSet<String>,
    prefetch: HashMap<String, HashMap<String, Prefetch>>,
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

    fn rpc(&mut self, method: &prost_reflect::MethodDescriptor) -> Arc<Rpc> {
        self.rpcs
            .entry(method.full_name().to_owned())
            .or_insert_with(|| Arc::new(Rpc::new(method)))
            .clone()
    }

    // ---- enums -------------------------------------------------------------------------------

    fn enum_type(&mut self, enum_: &prost_reflect::EnumDescriptor) -> Result<String, CatalogError> {
        let name = type_name(enum_.full_name(), enum_.package_name());
        if self.enums.contains_key(&name) {
            return Ok(name);
        }
        self.claim(&name, enum_.full_name())?;
        let names = EnumNames::new(enum_);
        let mut graphql = Enum::new(&name);
        if let Some(doc) = self.catalog.enum_doc(enum_) {
            graphql = graphql.description(doc);
        }
        let items = names.items(enum_);
        if items.is_empty() {
            return Err(CatalogError(format!(
                "{} has no value but UNSPECIFIED",
                enum_.full_name()
            )));
        }
        for (item, value) in items {
            let mut item = EnumItem::new(item.as_str());
            if let Some(doc) = self.catalog.enum_value_doc(&value) {
                item = item.description(doc);
            }
            graphql = graphql.item(item);
        }
        self.enums.insert(name.clone(), graphql);
        Ok(name)
    }

    // ---- output types --------------------------------------------------------------------------

    /// The GraphQL type of one value of `kind` in output, with its shape.
    fn output_kind(
        &mut self,
        kind: &Kind,
        field: Option<&FieldDescriptor>,
    ) -> Result<(String, Shape), CatalogError> {
        let shape = shape_of(kind);
        let name = match (&shape, kind) {
            (Shape::Bool | Shape::Empty, _) => TypeRef::BOOLEAN.to_owned(),
            (Shape::Int32, _) => TypeRef::INT.to_owned(),
            (Shape::UInt32, _) => scalars::UINT32.to_owned(),
            (Shape::Int64, _) => scalars::INT64.to_owned(),
            (Shape::UInt64, _) => scalars::UINT64.to_owned(),
            (Shape::Float, _) => TypeRef::FLOAT.to_owned(),
            (Shape::String, _) if field.is_some_and(is_id) => TypeRef::ID.to_owned(),
            (Shape::String | Shape::FieldMask, _) => TypeRef::STRING.to_owned(),
            (Shape::Bytes, _) => scalars::BYTES.to_owned(),
            (Shape::Enum(_), Kind::Enum(enum_)) => self.enum_type(enum_)?,
            (Shape::Timestamp, _) => scalars::DATE_TIME.to_owned(),
            (Shape::Duration, _) => scalars::DURATION.to_owned(),
            (Shape::Json, _) => scalars::JSON.to_owned(),
            (Shape::Wrapper(inner), _) => scalar_name(inner).to_owned(),
            (Shape::Object, Kind::Message(message)) => {
                let name = self.object_type(message)?;
                if name == TypeRef::BOOLEAN {
                    return Ok((name, Shape::Empty));
                }
                name
            }
            _ => return Err(CatalogError(format!("cannot map {kind:?}"))),
        };
        Ok((name, shape))
    }

    /// The object type of `message` (registered on first use), or `Boolean` for a message with
    /// nothing to show.
    fn object_type(&mut self, message: &MessageDescriptor) -> Result<String, CatalogError> {
        if let Some(name) = self.output_names.get(message.full_name()) {
            return Ok(name.clone());
        }
        let joins = self.catalog.joins(message)?;
        let shown = message
            .fields()
            .filter(|field| !self.catalog.behavior(field).input_only)
            .count();
        if shown == 0 && joins.is_empty() {
            self.output_names
                .insert(message.full_name().to_owned(), TypeRef::BOOLEAN.to_owned());
            return Ok(TypeRef::BOOLEAN.to_owned());
        }
        let name = type_name(message.full_name(), message.package_name());
        self.claim(&name, message.full_name())?;
        self.output_names
            .insert(message.full_name().to_owned(), name.clone());
        let mut object = Object::new(&name);
        if let Some(doc) = self.catalog.message_doc(message) {
            object = object.description(doc);
        }
        let mut seen_oneofs = HashSet::new();
        for field in message.fields() {
            if self.catalog.behavior(&field).input_only {
                continue;
            }
            match field.containing_oneof() {
                Some(oneof) if !is_synthetic(&oneof) => {
                    if seen_oneofs.insert(oneof.name().to_owned()) {
                        object = object.field(self.oneof_output(message, &oneof)?);
                    }
                }
                _ => object = object.field(self.output_field(message, &field)?),
            }
        }
        if message.full_name() == MONEY {
            object = object.field(money_amount_field());
        }
        for join in joins {
            object = object.field(self.join_field(join)?);
        }
        self.objects.insert(name.clone(), object);
        Ok(name)
    }

    fn output_field(
        &mut self,
        parent: &MessageDescriptor,
        field: &FieldDescriptor,
    ) -> Result<Field, CatalogError> {
        let name = self.catalog.field_name(field);
        let (type_ref, resolver): (TypeRef, Resolver) = if field.is_map() {
            let entry_type = self.map_entry_type(parent, field)?;
            (
                TypeRef::named_nn_list_nn(entry_type),
                Resolver::Map(field.clone()),
            )
        } else {
            let (base, shape) = self.output_kind(&field.kind(), Some(field))?;
            let type_ref = if field.is_list() {
                TypeRef::named_nn_list_nn(base)
            } else if field.supports_presence() {
                TypeRef::named(base)
            } else {
                TypeRef::named_nn(base)
            };
            if matches!(shape, Shape::Object) {
                self.prefetch
                    .entry(parent.full_name().to_owned())
                    .or_default()
                    .insert(name.clone(), Prefetch::Object(field.clone()));
            }
            (type_ref, Resolver::Field(field.clone(), shape))
        };
        let mut graphql = Field::new(name, type_ref, move |ctx| resolver.resolve(ctx));
        if let Some(doc) = self.catalog.field_doc(field) {
            graphql = graphql.description(doc);
        }
        Ok(graphql)
    }

    fn map_entry_type(
        &mut self,
        parent: &MessageDescriptor,
        field: &FieldDescriptor,
    ) -> Result<String, CatalogError> {
        let entry = field.kind().as_message().cloned().ok_or_else(|| {
            CatalogError(format!("{} is a map without entries", field.full_name()))
        })?;
        let name = format!(
            "{}{}Entry",
            type_name(parent.full_name(), parent.package_name()),
            pascal_case(field.name())
        );
        if self.objects.contains_key(&name) {
            return Ok(name);
        }
        self.claim(&name, entry.full_name())?;
        let key = entry.map_entry_key_field();
        let value = entry.map_entry_value_field();
        let (key_type, _) = self.output_kind(&key.kind(), None)?;
        let (value_type, value_shape) = self.output_kind(&value.kind(), None)?;
        let value_ref = if value.kind().as_message().is_some() {
            TypeRef::named(value_type)
        } else {
            TypeRef::named_nn(value_type)
        };
        let object = Object::new(&name)
            .description(format!(
                "One entry of the map {}.",
                self.catalog.field_name(field)
            ))
            .field(Field::new("key", TypeRef::named_nn(key_type), move |ctx| {
                Resolver::EntryKey.resolve(ctx)
            }))
            .field(Field::new("value", value_ref, move |ctx| {
                Resolver::EntryValue(value_shape.clone()).resolve(ctx)
            }));
        self.objects.insert(name.clone(), object);
        Ok(name)
    }

    /// A real oneof: a union field; members that are scalars, or share a type with another
    /// member, get a wrapper object named after the member.
    fn oneof_output(
        &mut self,
        parent: &MessageDescriptor,
        oneof: &prost_reflect::OneofDescriptor,
    ) -> Result<Field, CatalogError> {
        let parent_name = type_name(parent.full_name(), parent.package_name());
        let union_name = format!("{parent_name}{}", pascal_case(oneof.name()));
        self.claim(&union_name, oneof.full_name())?;
        let mut union = Union::new(&union_name);
        if let Some(doc) = self.catalog.oneof_doc(oneof) {
            union = union.description(doc);
        }
        let mut counts: HashMap<String, usize> = HashMap::new();
        for member in oneof.fields() {
            if let Some(message) = member.kind().as_message()
                && matches!(message_shape(message), Shape::Object)
            {
                *counts.entry(message.full_name().to_owned()).or_default() += 1;
            }
        }
        let mut members = Vec::new();
        for member in oneof.fields() {
            let direct = member.kind().as_message().is_some_and(|message| {
                matches!(message_shape(message), Shape::Object)
                    && counts.get(message.full_name()) == Some(&1)
            });
            let object_name = if direct {
                let (name, shape) = self.output_kind(&member.kind(), Some(&member))?;
                if matches!(shape, Shape::Empty) {
                    None
                } else {
                    Some(name)
                }
            } else {
                None
            };
            let (type_name, wrapped) = match object_name {
                Some(name) => (name, false),
                None => {
                    let wrapper = format!("{parent_name}{}", pascal_case(member.name()));
                    self.claim(&wrapper, member.full_name())?;
                    let field = self.output_field(parent, &member)?;
                    let mut object = Object::new(&wrapper).field(field);
                    object = object.description(format!(
                        "The {} member of {union_name}.",
                        self.catalog.field_name(&member)
                    ));
                    self.objects.insert(wrapper.clone(), object);
                    (wrapper, true)
                }
            };
            union = union.possible_type(&type_name);
            members.push((member.clone(), type_name, wrapped));
        }
        self.unions.insert(union_name.clone(), union);
        let name = camel_case(oneof.name());
        let resolver = Resolver::Oneof(Arc::new(members));
        let mut field = Field::new(name, TypeRef::named(union_name), move |ctx| {
            resolver.resolve(ctx)
        });
        if let Some(doc) = self.catalog.oneof_doc(oneof) {
            field = field.description(doc);
        }
        Ok(field)
    }

    fn join_field(&mut self, join: Join) -> Result<Field, CatalogError> {
        let rpc = self.rpc(&join.method);
        let output = join.method.output();
        let items = list_item_field(&output).ok_or_else(|| {
            CatalogError(format!(
                "join {}: {} returns no list",
                join.field,
                join.method.full_name()
            ))
        })?;
        let item = items.kind();
        let item = item
            .as_message()
            .ok_or_else(|| CatalogError(format!("join {}: items are not messages", join.field)))?;
        let target = self.object_type(item)?;
        let name = join.field.clone();
        let description = join.description.clone();
        let cardinality = join.cardinality;
        let paging = match cardinality {
            Cardinality::Connection => Some(page::Paging::of(&join.method).ok_or_else(|| {
                CatalogError(format!(
                    "join {}: {} is not paginated",
                    join.field,
                    join.method.full_name()
                ))
            })?),
            _ => None,
        };
        let index = self.joins.len();
        if cardinality != Cardinality::Connection {
            self.prefetch
                .entry(join.key.parent_message().full_name().to_owned())
                .or_default()
                .insert(name.clone(), Prefetch::Join(index));
        }
        let batch_rpc = join.batch.as_ref().map(|batch| self.rpc(&batch.method));
        self.joins.push(JoinPlan {
            join,
            rpc,
            items,
            paging,
            batch_rpc,
        });
        let mut field = match cardinality {
            Cardinality::One => Field::new(name, TypeRef::named(target), move |ctx| {
                Resolver::JoinOne(index).resolve(ctx)
            }),
            Cardinality::Many => Field::new(name, TypeRef::named_nn_list(target), move |ctx| {
                Resolver::JoinMany(index).resolve(ctx)
            }),
            Cardinality::Connection => {
                let connection = self.connection_type(&target);
                Field::new(name, TypeRef::named(connection), move |ctx| {
                    Resolver::JoinConnection(index).resolve(ctx)
                })
                .argument(
                    InputValue::new("first", TypeRef::named(TypeRef::INT))
                        .description(page::FIRST_DOC),
                )
                .argument(
                    InputValue::new("after", TypeRef::named(TypeRef::STRING))
                        .description(page::AFTER_DOC),
                )
            }
        };
        if !description.is_empty() {
            field = field.description(description);
        }
        Ok(field)
    }

    fn connection_type(&mut self, node: &str) -> String {
        let name = format!("{node}Connection");
        if self.connections.insert(name.clone()) {
            let (connection, edge) = page::connection_types(node);
            self.objects.insert(name.clone(), connection);
            self.objects.insert(format!("{node}Edge"), edge);
        }
        name
    }

    // ---- input types ---------------------------------------------------------------------------

    fn input_type_name(&self, message: &MessageDescriptor, mode: Mode) -> String {
        let base = type_name(message.full_name(), message.package_name());
        match mode {
            Mode::Request => match base.strip_suffix("Request") {
                Some(rpc) if !rpc.is_empty() => format!("{rpc}Input"),
                _ => format!("{base}Input"),
            },
            Mode::Create => format!("{base}Input"),
            Mode::Patch => format!("{base}PatchInput"),
        }
    }

    /// The plan of `message` read in `mode`, computed once; its key.
    fn plan(&mut self, message: &MessageDescriptor, mode: Mode) -> Result<String, CatalogError> {
        let key = format!("{}#{mode:?}", message.full_name());
        if self.plans.contains_key(&key) || !self.in_progress.insert(key.clone()) {
            return Ok(key);
        }
        let mask_field = (mode == Mode::Request)
            .then(|| {
                message.fields().find(|field| {
                    field
                        .kind()
                        .as_message()
                        .is_some_and(|m| m.full_name() == "google.protobuf.FieldMask")
                })
            })
            .flatten();
        let patch_field = mask_field.as_ref().and_then(|_| {
            message.fields().find(|field| {
                !field.is_list()
                    && field
                        .kind()
                        .as_message()
                        .is_some_and(|m| matches!(message_shape(m), Shape::Object))
            })
        });
        let mut fields = Vec::new();
        let mut described = Vec::new();
        let mut seen_oneofs = HashSet::new();
        for field in message.fields() {
            let behavior = self.catalog.behavior(&field);
            if behavior.output_only
                || (mode == Mode::Create && behavior.identifier)
                || mask_field.as_ref() == Some(&field)
            {
                continue;
            }
            if let Some(oneof) = field
                .containing_oneof()
                .filter(|oneof| !is_synthetic(oneof))
            {
                if seen_oneofs.insert(oneof.name().to_owned())
                    && let Some((input, type_ref, doc)) = self.oneof_input(message, &oneof)?
                {
                    described.push((input.name.to_string(), type_ref, doc));
                    fields.push(input);
                }
                continue;
            }
            let field_mode = if patch_field.as_ref() == Some(&field) {
                Mode::Patch
            } else {
                Mode::Create
            };
            let Some((kind, base)) = self.input_kind(message, &field, field_mode)? else {
                continue;
            };
            let non_null = match mode {
                Mode::Patch => behavior.identifier || (behavior.required && behavior.immutable),
                Mode::Request | Mode::Create => behavior.required,
            };
            let type_ref = match (field.is_list() || field.is_map(), non_null) {
                (true, true) => TypeRef::named_nn_list_nn(base),
                (true, false) => TypeRef::named_nn_list(base),
                (false, true) => TypeRef::named_nn(base),
                (false, false) => TypeRef::named(base),
            };
            let name = self.catalog.field_name(&field);
            described.push((name.clone(), type_ref, self.catalog.field_doc(&field)));
            fields.push(InputField {
                name: Name::new(name),
                target: InputTarget::Field { field, kind },
            });
        }
        let mask = match (mask_field, patch_field) {
            (Some(mask_field), Some(patch_field)) => {
                let patched = patch_field.kind().as_message().cloned();
                let keys = patched
                    .map(|resource| {
                        resource
                            .fields()
                            .filter(|field| {
                                let behavior = self.catalog.behavior(field);
                                behavior.identifier || (behavior.required && behavior.immutable)
                            })
                            .map(|field| field.name().to_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                Some(MaskPlan {
                    patch_name: Name::new(self.catalog.field_name(&patch_field)),
                    mask_field,
                    patch_field,
                    keys,
                })
            }
            _ => None,
        };
        self.plans.insert(
            key.clone(),
            InputPlan {
                message: message.clone(),
                fields,
                mask,
            },
        );
        self.plan_fields
            .insert(key.clone(), PlanFields { fields: described });
        self.in_progress.remove(&key);
        Ok(key)
    }

    /// How a field converts on input and its GraphQL base type; `None` when it has nothing to
    /// input (a message of output-only fields).
    fn input_kind(
        &mut self,
        parent: &MessageDescriptor,
        field: &FieldDescriptor,
        mode: Mode,
    ) -> Result<Option<(InputKind, String)>, CatalogError> {
        if field.is_map() {
            let entry = field
                .kind()
                .as_message()
                .cloned()
                .ok_or_else(|| CatalogError("map without entry".to_owned()))?;
            let key = entry.map_entry_key_field();
            let value = entry.map_entry_value_field();
            let Some((value_kind, value_type)) = self.input_kind(&entry, &value, Mode::Create)?
            else {
                return Ok(None);
            };
            let (key_type, key_shape) = self.output_kind(&key.kind(), None)?;
            let name = format!(
                "{}{}EntryInput",
                type_name(parent.full_name(), parent.package_name()),
                pascal_case(field.name())
            );
            if !self.inputs.contains_key(&name) {
                self.claim(&name, &format!("{}#input", entry.full_name()))?;
                let value_ref = if value.kind().as_message().is_some() {
                    TypeRef::named(value_type)
                } else {
                    TypeRef::named_nn(value_type)
                };
                self.inputs.insert(
                    name.clone(),
                    InputObject::new(&name)
                        .description(format!(
                            "One entry of the map {}.",
                            self.catalog.field_name(field)
                        ))
                        .field(InputValue::new("key", TypeRef::named_nn(key_type)))
                        .field(InputValue::new("value", value_ref)),
                );
            }
            return Ok(Some((
                InputKind::Map {
                    key: key_shape,
                    value: Box::new(value_kind),
                },
                name,
            )));
        }
        let kind = field.kind();
        match &kind {
            Kind::Message(message) if matches!(message_shape(message), Shape::Object) => {
                let Some(name) = self.input_object(message, mode)? else {
                    return Ok(None);
                };
                let key = self.plan(message, mode)?;
                Ok(Some((InputKind::Message(key), name)))
            }
            _ => {
                let (name, shape) = self.output_kind(&kind, Some(field))?;
                Ok(Some((InputKind::Scalar(shape), name)))
            }
        }
    }

    /// The input object of `message` in `mode` (registered on first use); `None` when empty.
    fn input_object(
        &mut self,
        message: &MessageDescriptor,
        mode: Mode,
    ) -> Result<Option<String>, CatalogError> {
        let name = self.input_type_name(message, mode);
        if self.inputs.contains_key(&name) {
            return Ok(Some(name));
        }
        let key = format!("{}#{mode:?}", message.full_name());
        if self.in_progress.contains(&key) {
            return Ok(Some(name));
        }
        let key = self.plan(message, mode)?;
        let Some(fields) = self.plan_fields.get(&key).map(|plan| plan.fields.clone()) else {
            return Ok(Some(name));
        };
        if fields.is_empty() {
            return Ok(None);
        }
        self.claim(&name, &key)?;
        let mut input = InputObject::new(&name);
        let doc = match mode {
            Mode::Request => self
                .catalog
                .message_doc(message)
                .map(|doc| doc.replace("Request for", "Input of")),
            Mode::Create => self.catalog.message_doc(message),
            Mode::Patch => Some(format!(
                "The changes to a {}: every field given (null included) is changed, the others are kept.",
                message.name()
            )),
        };
        if let Some(doc) = doc {
            input = input.description(doc);
        }
        for (field, type_ref, doc) in &fields {
            let mut value = InputValue::new(field, type_ref.clone());
            if let Some(doc) = doc {
                value = value.description(doc);
            }
            input = input.field(value);
        }
        self.inputs.insert(name.clone(), input);
        Ok(Some(name))
    }

    fn oneof_input(
        &mut self,
        parent: &MessageDescriptor,
        oneof: &prost_reflect::OneofDescriptor,
    ) -> Result<Option<(InputField, TypeRef, Option<String>)>, CatalogError> {
        let name = format!(
            "{}{}Input",
            type_name(parent.full_name(), parent.package_name()),
            pascal_case(oneof.name())
        );
        let mut members = Vec::new();
        let mut input = InputObject::new(&name).oneof();
        if let Some(doc) = self.catalog.oneof_doc(oneof) {
            input = input.description(doc);
        }
        for member in oneof.fields() {
            if self.catalog.behavior(&member).output_only {
                continue;
            }
            let Some((kind, base)) = self.input_kind(parent, &member, Mode::Create)? else {
                continue;
            };
            let member_name = self.catalog.field_name(&member);
            let mut value = InputValue::new(&member_name, TypeRef::named(base));
            if let Some(doc) = self.catalog.field_doc(&member) {
                value = value.description(doc);
            }
            input = input.field(value);
            members.push((Name::new(member_name), member, kind));
        }
        if members.is_empty() {
            return Ok(None);
        }
        self.claim(&name, &format!("{}#input", oneof.full_name()))?;
        self.inputs.insert(name.clone(), input);
        let field_name = camel_case(oneof.name());
        Ok(Some((
            InputField {
                name: Name::new(&field_name),
                target: InputTarget::Oneof(members),
            },
            TypeRef::named(name),
            self.catalog.oneof_doc(oneof),
        )))
    }

    // ---- root fields -----------------------------------------------------------------------------

    fn root_output(
        &mut self,
        message: &MessageDescriptor,
    ) -> Result<(String, Shape), CatalogError> {
        let shape = message_shape(message);
        if matches!(shape, Shape::Object) {
            let name = self.object_type(message)?;
            let shape = if name == TypeRef::BOOLEAN {
                Shape::Empty
            } else {
                Shape::Object
            };
            Ok((name, shape))
        } else {
            self.output_kind(&Kind::Message(message.clone()), None)
        }
    }

    fn root_field(
        &mut self,
        method: &prost_reflect::MethodDescriptor,
        name: &str,
        mutation: bool,
    ) -> Result<Field, CatalogError> {
        let rpc = self.rpc(method);
        let request = method.input();
        let key = self.plan(&request, Mode::Request)?;
        let paging = (!mutation).then(|| page::Paging::of(method)).flatten();
        let mut field = if let Some(paging) = paging {
            let item = paging.items.kind();
            let item = item
                .as_message()
                .cloned()
                .ok_or_else(|| CatalogError("list of non-messages".to_owned()))?;
            let node = self.object_type(&item)?;
            let connection = self.connection_type(&node);
            let resolver = Resolver::RootConnection {
                rpc,
                key: key.clone(),
                paging: Arc::new(paging),
            };
            let mut field = Field::new(name, TypeRef::named(connection), move |ctx| {
                resolver.resolve(ctx)
            });
            field = self.arguments(
                field,
                &key,
                &[
                    method.input().get_field_by_name("page_size"),
                    method.input().get_field_by_name("page_token"),
                ],
            );
            field
                .argument(
                    InputValue::new("first", TypeRef::named(TypeRef::INT))
                        .description(page::FIRST_DOC),
                )
                .argument(
                    InputValue::new("after", TypeRef::named(TypeRef::STRING))
                        .description(page::AFTER_DOC),
                )
        } else {
            let (output, shape) = self.root_output(&method.output())?;
            let root = if mutation {
                InputRoot::Input
            } else {
                InputRoot::Arguments
            };
            let input = if mutation {
                self.input_object(&request, Mode::Request)?
            } else {
                None
            };
            let resolver = Resolver::RootUnary {
                rpc,
                key: key.clone(),
                shape,
                root,
            };
            let field = Field::new(name, TypeRef::named(output), move |ctx| {
                resolver.resolve(ctx)
            });
            if mutation {
                match input {
                    Some(input) => {
                        let required = self.plan_fields.get(&key).is_some_and(|plan| {
                            plan.fields
                                .iter()
                                .any(|(_, type_ref, _)| type_ref.to_string().ends_with('!'))
                        });
                        let type_ref = if required {
                            TypeRef::named_nn(input)
                        } else {
                            TypeRef::named(input)
                        };
                        field.argument(InputValue::new("input", type_ref))
                    }
                    None => field,
                }
            } else {
                self.arguments(field, &key, &[])
            }
        };
        if let Some(doc) = self.catalog.method_doc(method) {
            field = field.description(doc);
        }
        Ok(field)
    }

    fn arguments(&self, mut field: Field, key: &str, skip: &[Option<FieldDescriptor>]) -> Field {
        let skipped: Vec<String> = skip
            .iter()
            .flatten()
            .map(|field| self.catalog.field_name(field))
            .collect();
        if let Some(plan) = self.plan_fields.get(key) {
            for (name, type_ref, doc) in &plan.fields {
                if skipped.contains(name) {
                    continue;
                }
                let mut argument = InputValue::new(name, type_ref.clone());
                if let Some(doc) = doc {
                    argument = argument.description(doc);
                }
                field = field.argument(argument);
            }
        }
        field
    }

    fn subscription_field(
        &mut self,
        method: &prost_reflect::MethodDescriptor,
        name: &str,
    ) -> Result<SubscriptionField, CatalogError> {
        let rpc = self.rpc(method);
        let key = self.plan(&method.input(), Mode::Request)?;
        let (output, shape) = self.root_output(&method.output())?;
        let resolver_key = key.clone();
        let mut field = SubscriptionField::new(name, TypeRef::named_nn(output), move |ctx| {
            subscribe(ctx, rpc.clone(), resolver_key.clone(), shape.clone())
        });
        if let Some(plan) = self.plan_fields.get(&key) {
            for (name, type_ref, doc) in &plan.fields {
                let mut argument = InputValue::new(name, type_ref.clone());
                if let Some(doc) = doc {
                    argument = argument.description(doc);
                }
                field = field.argument(argument);
            }
        }
        if let Some(doc) = self.catalog.method_doc(method) {
            field = field.description(doc);
        }
        Ok(field)
    }
}

/// `id`, `*_id`, `ids` and `*_ids` string fields are GraphQL `ID`s.
/// A proto3 `optional` field's oneof, which is not a real oneof.
fn is_synthetic(oneof: &prost_reflect::OneofDescriptor) -> bool {
    oneof.is_synthetic()
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

fn scalar_name(shape: &Shape) -> &'static str {
    match shape {
        Shape::Bool => TypeRef::BOOLEAN,
        Shape::Int32 => TypeRef::INT,
        Shape::UInt32 => scalars::UINT32,
        Shape::Int64 => scalars::INT64,
        Shape::UInt64 => scalars::UINT64,
        Shape::Float => TypeRef::FLOAT,
        Shape::Bytes => scalars::BYTES,
        _ => TypeRef::STRING,
    }
}

fn money_amount_field() -> Field {
    Field::new("amount", TypeRef::named_nn(TypeRef::STRING), |ctx| {
        let Some(money) = ctx.parent_value.downcast_ref::<DynamicMessage>() else {
            return fail("Money without a value");
        };
        let code = money
            .get_field_by_name("currency_code")
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default();
        let minor = money
            .get_field_by_name("minor_units")
            .and_then(|value| value.as_i64())
            .unwrap_or_default();
        FieldFuture::from_value(Some(Value::String(scalars::money_amount(&code, minor))))
    })
    .description("The amount as a decimal string in the currency's major unit, e.g. \"19.99\" for 1999 USD cents or \"500\" for 500 JPY.")
}

fn fail<'a>(message: impl Into<String>) -> FieldFuture<'a> {
    let error = errors::coded("INTERNAL_SERVER_ERROR", message);
    FieldFuture::new(async move { Err::<Option<Value>, _>(error) })
}

/// An entry of a protobuf map, as the parent of its entry object.
struct MapEntry {
    key: Value,
    value: prost_reflect::Value,
}

/// What a field does, decided when the schema is built.
#[derive(Clone)]
enum Resolver {
    Field(FieldDescriptor, Shape),
    Map(FieldDescriptor),
    EntryKey,
    EntryValue(Shape),
    Oneof(Arc<Vec<(FieldDescriptor, String, bool)>>),
    JoinOne(usize),
    JoinMany(usize),
    JoinConnection(usize),
    RootUnary {
        rpc: Arc<Rpc>,
        key: String,
        shape: Shape,
        root: InputRoot,
    },
    RootConnection {
        rpc: Arc<Rpc>,
        key: String,
        paging: Arc<page::Paging>,
    },
}

impl Resolver {
    fn resolve<'a>(&self, ctx: ResolverContext<'a>) -> FieldFuture<'a> {
        match self {
            Self::Field(field, shape) => {
                let Some(parent) = ctx.parent_value.downcast_ref::<DynamicMessage>() else {
                    return fail("a field without its message");
                };
                field_value(parent, field, shape)
            }
            Self::Map(field) => {
                let Some(parent) = ctx.parent_value.downcast_ref::<DynamicMessage>() else {
                    return fail("a map without its message");
                };
                let Some(key_field) = field
                    .kind()
                    .as_message()
                    .map(|entry| entry.map_entry_key_field())
                else {
                    return fail("a map without entries");
                };
                let key_shape = shape_of(&key_field.kind());
                let mut entries = Vec::new();
                if let prost_reflect::Value::Map(map) = parent.get_field(field).as_ref() {
                    let mut sorted: Vec<_> = map.iter().collect();
                    sorted.sort_by(|a, b| a.0.cmp(b.0));
                    for (key, value) in sorted {
                        let key = prost_reflect::Value::from(key.clone());
                        let key = match output(&key_shape, &key) {
                            Ok(key) => key,
                            Err(error) => return fail(error),
                        };
                        entries.push(FieldValue::owned_any(MapEntry {
                            key,
                            value: value.clone(),
                        }));
                    }
                }
                FieldFuture::Value(Some(FieldValue::list(entries)))
            }
            Self::EntryKey => match ctx.parent_value.downcast_ref::<MapEntry>() {
                Some(entry) => FieldFuture::from_value(Some(entry.key.clone())),
                None => fail("a map key without its entry"),
            },
            Self::EntryValue(shape) => match ctx.parent_value.downcast_ref::<MapEntry>() {
                Some(entry) => single(&entry.value, shape),
                None => fail("a map value without its entry"),
            },
            Self::Oneof(members) => {
                let Some(parent) = ctx.parent_value.downcast_ref::<DynamicMessage>() else {
                    return fail("a oneof without its message");
                };
                for (member, type_name, wrapped) in members.iter() {
                    if !parent.has_field(member) {
                        continue;
                    }
                    let value = if *wrapped {
                        FieldValue::borrowed_any(parent)
                    } else {
                        match parent.get_field(member) {
                            std::borrow::Cow::Borrowed(prost_reflect::Value::Message(message)) => {
                                FieldValue::borrowed_any(message)
                            }
                            _ => return fail("a oneof member that is not a message"),
                        }
                    };
                    return FieldFuture::Value(Some(value.with_type(type_name.clone())));
                }
                FieldFuture::Value(None)
            }
            Self::JoinOne(index) | Self::JoinMany(index) => {
                let index = *index;
                let one = matches!(self, Self::JoinOne(_));
                FieldFuture::new(async move {
                    let (runtime, scope, parent, plan) = join_context(&ctx, index)?;
                    let key = parent
                        .get_field(&plan.join.key)
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_default();
                    if key.is_empty() {
                        return Ok(if one {
                            None
                        } else {
                            Some(FieldValue::list(Vec::<FieldValue>::new()))
                        });
                    }
                    let loaded = scope.loader.load_one(JoinKey::new(index, key)).await?;
                    let items = loaded
                        .map(|items| items.as_ref().clone())
                        .unwrap_or_default();
                    let selection: Vec<_> = ctx.ctx.field().selection_set().collect();
                    prefetch_joins(runtime, scope, &selection, &items).await;
                    Ok(if one {
                        items.into_iter().next().map(FieldValue::owned_any)
                    } else {
                        Some(FieldValue::list(
                            items.into_iter().map(FieldValue::owned_any),
                        ))
                    })
                })
            }
            Self::JoinConnection(index) => {
                let index = *index;
                FieldFuture::new(async move {
                    let (runtime, scope, parent, plan) = join_context(&ctx, index)?;
                    let paging = plan.paging.as_ref().ok_or_else(|| {
                        errors::coded("INTERNAL_SERVER_ERROR", "a connection without paging")
                    })?;
                    let key = parent.get_field(&plan.join.key).into_owned();
                    let (first, after) = page::arguments(&ctx, runtime.max_page_size)?;
                    // The first page of every parent comes from one call of the batch RPC;
                    // later pages, and every page without one, from the List per parent.
                    if after.is_none() && plan.batch_rpc.is_some() {
                        let key = key.as_str().unwrap_or_default().to_owned();
                        if key.is_empty() {
                            return Ok(Some(FieldValue::owned_any(Page::empty())));
                        }
                        let size = first.max(1);
                        let response = scope
                            .loader
                            .load_one(JoinKey::first_page(index, key, size))
                            .await?
                            .and_then(|responses| responses.first().cloned())
                            .ok_or_else(|| {
                                errors::coded("INTERNAL_SERVER_ERROR", "a page was not loaded")
                            })?;
                        let page = paging.first_page_of(response, first);
                        prefetch_page(&ctx, runtime, scope, &page).await;
                        return Ok(Some(FieldValue::owned_any(page)));
                    }
                    let mut request = DynamicMessage::new(plan.join.method.input());
                    let key = if plan.join.request_field.is_list() {
                        prost_reflect::Value::List(vec![key])
                    } else {
                        key
                    };
                    request.set_field(&plan.join.request_field, key);
                    let page = page::fetch(
                        runtime,
                        scope,
                        &plan.rpc,
                        paging,
                        request,
                        first,
                        after.as_deref(),
                    )
                    .await
                    .map_err(|status| {
                        errors::from_status(&status, &plan.rpc.backend, InputRoot::None)
                    })?;
                    prefetch_page(&ctx, runtime, scope, &page).await;
                    Ok(Some(FieldValue::owned_any(page)))
                })
            }
            Self::RootUnary {
                rpc,
                key,
                shape,
                root,
            } => {
                let (rpc, key, shape, root) = (rpc.clone(), key.clone(), shape.clone(), *root);
                FieldFuture::new(async move {
                    let runtime = ctx.data::<Arc<Runtime>>()?;
                    let scope = ctx.data::<RequestScope>()?;
                    let request = build_request(&ctx, runtime, &key, root)?;
                    let response = runtime
                        .backends
                        .unary(&rpc, request, &scope.call)
                        .await
                        .map_err(|status| errors::from_status(&status, &rpc.backend, root))?;
                    if matches!(shape, Shape::Object) {
                        let selection: Vec<_> = ctx.ctx.field().selection_set().collect();
                        prefetch_joins(runtime, scope, &selection, std::slice::from_ref(&response))
                            .await;
                    }
                    root_value(response, &shape)
                })
            }
            Self::RootConnection { rpc, key, paging } => {
                let (rpc, key, paging) = (rpc.clone(), key.clone(), paging.clone());
                FieldFuture::new(async move {
                    let runtime = ctx.data::<Arc<Runtime>>()?;
                    let scope = ctx.data::<RequestScope>()?;
                    let request = build_request(&ctx, runtime, &key, InputRoot::Arguments)?;
                    let (first, after) = page::arguments(&ctx, runtime.max_page_size)?;
                    let page: Page = page::fetch(
                        runtime,
                        scope,
                        &rpc,
                        &paging,
                        request,
                        first,
                        after.as_deref(),
                    )
                    .await
                    .map_err(|status| {
                        errors::from_status(&status, &rpc.backend, InputRoot::Arguments)
                    })?;
                    prefetch_page(&ctx, runtime, scope, &page).await;
                    Ok(Some(FieldValue::owned_any(page)))
                })
            }
        }
    }
}

/// The join keys that `selection` on `message` will ask for (through nested objects too), so
/// that they load in one batch before the fields resolve: async-graphql's dynamic schema resolves
/// the fields of a nested object one after the other, which would otherwise make one round trip
/// per join.
fn prefetch_keys(
    runtime: &Runtime,
    message: &DynamicMessage,
    selection: &[async_graphql::SelectionField<'_>],
    keys: &mut Vec<JoinKey>,
    depth: usize,
) {
    const MAX_DEPTH: usize = 4;
    let Some(fields) = runtime.prefetch.get(message.descriptor().full_name()) else {
        return;
    };
    for field in selection {
        match fields.get(field.name()) {
            Some(Prefetch::Join(index)) => {
                let Some(plan) = runtime.joins.get(*index) else {
                    continue;
                };
                if let Some(key) = message.get_field(&plan.join.key).as_str()
                    && !key.is_empty()
                {
                    keys.push(JoinKey::new(*index, key.to_owned()));
                }
            }
            Some(Prefetch::Object(descriptor)) if depth < MAX_DEPTH => {
                if !message.has_field(descriptor) && !descriptor.is_list() {
                    continue;
                }
                let children: Vec<async_graphql::SelectionField<'_>> =
                    field.selection_set().collect();
                match message.get_field(descriptor).as_ref() {
                    prost_reflect::Value::Message(child) => {
                        prefetch_keys(runtime, child, &children, keys, depth + 1);
                    }
                    prost_reflect::Value::List(items) => {
                        for child in items.iter().filter_map(prost_reflect::Value::as_message) {
                            prefetch_keys(runtime, child, &children, keys, depth + 1);
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

/// Prefetches the joins that the selection of a connection's nodes (`edges { node }` and
/// `nodes`) asks for, on every node of `page`.
async fn prefetch_page(
    ctx: &ResolverContext<'_>,
    runtime: &Runtime,
    scope: &RequestScope,
    page: &Page,
) {
    let lookahead = ctx.look_ahead();
    let mut selection = Vec::new();
    for node in [
        lookahead.field("edges").field("node"),
        lookahead.field("nodes"),
    ] {
        for field in node.selection_fields() {
            selection.extend(field.selection_set());
        }
    }
    prefetch_joins(runtime, scope, &selection, page.nodes()).await;
}

/// Loads, in one batch, the joins that `selection` asks for on each of `messages`.
async fn prefetch_joins<'m>(
    runtime: &Runtime,
    scope: &RequestScope,
    selection: &[async_graphql::SelectionField<'_>],
    messages: impl IntoIterator<Item = &'m DynamicMessage>,
) {
    let mut keys = Vec::new();
    for message in messages {
        prefetch_keys(runtime, message, selection, &mut keys, 0);
    }
    scope.loader.prefetch(keys).await;
}

/// What a join field needs: the runtime, the request scope, the parent message and the join.
fn join_context<'a>(
    ctx: &ResolverContext<'a>,
    index: usize,
) -> async_graphql::Result<(
    &'a Runtime,
    &'a RequestScope,
    &'a DynamicMessage,
    &'a JoinPlan,
)> {
    let runtime = ctx.data::<Arc<Runtime>>()?;
    let scope = ctx.data::<RequestScope>()?;
    let parent = ctx
        .parent_value
        .downcast_ref::<DynamicMessage>()
        .ok_or_else(|| errors::coded("INTERNAL_SERVER_ERROR", "a join without its message"))?;
    let plan = runtime
        .joins
        .get(index)
        .ok_or_else(|| errors::coded("INTERNAL_SERVER_ERROR", "an unknown join"))?;
    Ok((runtime, scope, parent, plan))
}

/// The request of a root field: from its `input` argument (mutations) or its arguments.
fn build_request(
    ctx: &ResolverContext<'_>,
    runtime: &Runtime,
    key: &str,
    root: InputRoot,
) -> async_graphql::Result<DynamicMessage> {
    let empty = async_graphql::dynamic::indexmap::IndexMap::new();
    let arguments = ctx.args.as_index_map();
    let object = match root {
        InputRoot::Input => match arguments.get("input") {
            Some(Value::Object(object)) => object,
            _ => &empty,
        },
        _ => arguments,
    };
    let mut message = runtime
        .plans
        .build(key, object, &mut Vec::new())
        .map_err(|error| errors::from_input(&error, root))?;
    // AIP-155: a mutation with an idempotency key the client left empty gets one, so that a
    // retry after UNAVAILABLE cannot apply it twice.
    if root == InputRoot::Input
        && let Some(field) = message.descriptor().get_field_by_name("request_id")
        && message
            .get_field(&field)
            .as_str()
            .is_some_and(str::is_empty)
    {
        message.set_field(
            &field,
            prost_reflect::Value::String(uuid::Uuid::now_v7().to_string()),
        );
    }
    Ok(message)
}

fn root_value(
    response: DynamicMessage,
    shape: &Shape,
) -> async_graphql::Result<Option<FieldValue<'static>>> {
    match shape {
        Shape::Object => Ok(Some(FieldValue::owned_any(response))),
        Shape::Empty => Ok(Some(FieldValue::value(true))),
        shape => output(shape, &prost_reflect::Value::Message(response))
            .map(|value| Some(FieldValue::value(value)))
            .map_err(|error| errors::coded("INTERNAL_SERVER_ERROR", error)),
    }
}

/// The value of `field` in `parent`: null when a field with presence is not set, the zero value
/// otherwise; lists element by element; messages passed on as the next parent.
fn field_value<'a>(
    parent: &'a DynamicMessage,
    field: &FieldDescriptor,
    shape: &Shape,
) -> FieldFuture<'a> {
    if !field.is_list() && field.supports_presence() && !parent.has_field(field) {
        return FieldFuture::Value(None);
    }
    match parent.get_field(field) {
        std::borrow::Cow::Borrowed(value) => match value {
            prost_reflect::Value::List(items) => {
                let mut values = Vec::with_capacity(items.len());
                for item in items {
                    match single_value(item, shape) {
                        Ok(value) => values.push(value),
                        Err(error) => return fail(error),
                    }
                }
                FieldFuture::Value(Some(FieldValue::list(values)))
            }
            value => single(value, shape),
        },
        std::borrow::Cow::Owned(value) => match (value, shape) {
            (prost_reflect::Value::List(_), _) => {
                FieldFuture::Value(Some(FieldValue::list(Vec::<FieldValue>::new())))
            }
            (value, Shape::Object) => match value {
                prost_reflect::Value::Message(message) => {
                    FieldFuture::Value(Some(FieldValue::owned_any(message)))
                }
                _ => fail("not a message"),
            },
            (value, shape) => match output(shape, &value) {
                Ok(value) => FieldFuture::from_value(Some(value)),
                Err(error) => fail(error),
            },
        },
    }
}

fn single<'a>(value: &'a prost_reflect::Value, shape: &Shape) -> FieldFuture<'a> {
    match single_value(value, shape) {
        Ok(value) => FieldFuture::Value(Some(value)),
        Err(error) => fail(error),
    }
}

fn single_value<'a>(
    value: &'a prost_reflect::Value,
    shape: &Shape,
) -> Result<FieldValue<'a>, String> {
    match (shape, value) {
        (Shape::Object, prost_reflect::Value::Message(message)) => {
            Ok(FieldValue::borrowed_any(message))
        }
        (Shape::Object, _) => Err("not a message".to_owned()),
        (shape, value) => output(shape, value).map(FieldValue::value),
    }
}

fn subscribe<'a>(
    ctx: ResolverContext<'a>,
    rpc: Arc<Rpc>,
    key: String,
    shape: Shape,
) -> SubscriptionFieldFuture<'a> {
    use futures::StreamExt as _;
    SubscriptionFieldFuture::new(async move {
        let runtime = ctx.data::<Arc<Runtime>>()?;
        let scope = ctx.data::<RequestScope>()?;
        let request = build_request(&ctx, runtime, &key, InputRoot::Arguments)?;
        let backend = rpc.backend.clone();
        let stream = runtime
            .backends
            .server_streaming(&rpc, request, &scope.call)
            .await
            .map_err(|status| errors::from_status(&status, &backend, InputRoot::Arguments))?;
        Ok(stream.map(move |item| {
            item.map_err(|status| errors::from_status(&status, &backend, InputRoot::Arguments))
                .and_then(|message| {
                    root_value(message, &shape).and_then(|value| {
                        value
                            .ok_or_else(|| errors::coded("INTERNAL_SERVER_ERROR", "an empty event"))
                    })
                })
        }))
    })
}
