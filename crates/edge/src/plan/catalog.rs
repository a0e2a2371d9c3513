//! What the descriptors say, read once at start: the services and their RPCs, the comments that
//! become descriptions, `google.api.field_behavior`, and the `crowdcrunch.graphql.v1` options
//! (which root field an RPC becomes, field renames, and the joins between services), and the
//! `crowdcrunch.access.v1.rule` of every RPC (who may call it).

use std::collections::HashMap;

use crowdcrunch_runtime::access::{AccessRules, Rule};

use prost_reflect::{
    DescriptorPool, DynamicMessage, ExtensionDescriptor, FieldDescriptor, Kind, MessageDescriptor,
    MethodDescriptor, ServiceDescriptor, Value,
};

/// The descriptors do not describe a schema the edge can build.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CatalogError(pub String);

/// The root type an RPC's field goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKind {
    /// A field of `Query`.
    Query,
    /// A field of `Mutation`.
    Mutation,
    /// A field of `Subscription`.
    Subscription,
}

/// One exposed RPC.
#[derive(Debug, Clone)]
pub struct Operation {
    /// The RPC.
    pub method: MethodDescriptor,
    /// Where it goes.
    pub kind: RootKind,
    /// The root field's name.
    pub name: String,
}

/// How many resources a join yields per parent (`crowdcrunch.graphql.v1.Cardinality`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cardinality {
    /// One resource, from a BatchGet.
    One,
    /// A plain list, from a List filtered by every parent's key at once.
    Many,
    /// A connection, from a List filtered by the parent's key.
    Connection,
}

/// A relationship field (`crowdcrunch.graphql.v1.Join`), resolved and checked against the
/// descriptors.
#[derive(Debug, Clone)]
pub struct Join {
    /// The GraphQL field's name.
    pub field: String,
    /// Its description.
    pub description: String,
    /// The RPC that fetches the related resources.
    pub method: MethodDescriptor,
    /// The field of the parent message holding the key.
    pub key: FieldDescriptor,
    /// The request field receiving the keys.
    pub request_field: FieldDescriptor,
    /// The field of each returned item holding the key (MANY).
    pub result_key: Option<FieldDescriptor>,
    /// One, many or a connection.
    pub cardinality: Cardinality,
    /// For a connection: the RPC answering the first page of every parent in one call.
    pub batch: Option<BatchList>,
}

/// An RPC that answers several List requests in one call (`Join.batch_rpc`).
#[derive(Debug, Clone)]
pub struct BatchList {
    /// The RPC.
    pub method: MethodDescriptor,
    /// Its request's `repeated <List request> requests`.
    pub requests: FieldDescriptor,
    /// Its response's `repeated <List response> responses`.
    pub responses: FieldDescriptor,
}

/// The `google.api.field_behavior` values of one field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Behavior {
    /// `REQUIRED`.
    pub required: bool,
    /// `OUTPUT_ONLY`.
    pub output_only: bool,
    /// `INPUT_ONLY`.
    pub input_only: bool,
    /// `IMMUTABLE`.
    pub immutable: bool,
    /// `IDENTIFIER`.
    pub identifier: bool,
}

/// The descriptor pool and everything read from it.
#[derive(Debug)]
pub struct Catalog {
    pool: DescriptorPool,
    /// Leading comments by file name and source path.
    comments: HashMap<String, HashMap<Vec<i32>, String>>,
    field_behavior: Option<ExtensionDescriptor>,
    operation: Option<ExtensionDescriptor>,
    join: Option<ExtensionDescriptor>,
    field_options: Option<ExtensionDescriptor>,
    rules: AccessRules,
}

impl Catalog {
    /// Decodes an encoded `FileDescriptorSet` (with source info, for the comments) and the
    /// access rule of every RPC in it: an RPC without one is refused (deny by default).
    pub fn decode(file_descriptor_set: &[u8]) -> Result<Self, CatalogError> {
        let pool = DescriptorPool::decode(file_descriptor_set)
            .map_err(|error| CatalogError(format!("bad descriptor set: {error}")))?;
        let rules = AccessRules::from_descriptor_set(file_descriptor_set)
            .map_err(|error| CatalogError(error.to_string()))?;
        Ok(Self::new(pool, rules))
    }

    fn new(pool: DescriptorPool, rules: AccessRules) -> Self {
        let mut comments: HashMap<String, HashMap<Vec<i32>, String>> = HashMap::new();
        for file in pool.file_descriptor_protos() {
            let Some(info) = &file.source_code_info else {
                continue;
            };
            let by_path = comments.entry(file.name().to_owned()).or_default();
            for location in &info.location {
                if let Some(text) = &location.leading_comments {
                    let text = clean_comment(text);
                    if !text.is_empty() {
                        by_path.insert(location.path.clone(), text);
                    }
                }
            }
        }
        Self {
            field_behavior: pool.get_extension_by_name("google.api.field_behavior"),
            operation: pool.get_extension_by_name("crowdcrunch.graphql.v1.operation"),
            join: pool.get_extension_by_name("crowdcrunch.graphql.v1.join"),
            field_options: pool.get_extension_by_name("crowdcrunch.graphql.v1.field"),
            comments,
            pool,
            rules,
        }
    }

    /// The access rule of `method` (every RPC of the catalog has one).
    pub fn rule(&self, method: &MethodDescriptor) -> Result<Rule, CatalogError> {
        self.rules
            .rule_of(method.full_name())
            .cloned()
            .ok_or_else(|| CatalogError(format!("{} has no access rule", method.full_name())))
    }

    /// The pool.
    pub fn pool(&self) -> &DescriptorPool {
        &self.pool
    }

    /// The services of the pool but the `google.*` and `grpc.*` ones, by full name.
    pub fn services(&self) -> Vec<ServiceDescriptor> {
        let mut services: Vec<_> = self
            .pool
            .services()
            .filter(|service| {
                let name = service.full_name();
                !name.starts_with("google.") && !name.starts_with("grpc.")
            })
            .collect();
        services.sort_by(|a, b| a.full_name().cmp(b.full_name()));
        services
    }

    fn comment(&self, file: &str, path: &[i32]) -> Option<String> {
        self.comments.get(file)?.get(path).cloned()
    }

    /// The comment above a message.
    pub fn message_doc(&self, message: &MessageDescriptor) -> Option<String> {
        self.comment(
            message.parent_file_descriptor_proto().name(),
            message.path(),
        )
    }

    /// The comment above a field.
    pub fn field_doc(&self, field: &FieldDescriptor) -> Option<String> {
        let file = field
            .parent_message()
            .parent_file_descriptor_proto()
            .name()
            .to_owned();
        self.comment(&file, field.path())
    }

    /// The comment above an enum.
    pub fn enum_doc(&self, enum_: &prost_reflect::EnumDescriptor) -> Option<String> {
        self.comment(enum_.parent_file_descriptor_proto().name(), enum_.path())
    }

    /// The comment above an enum value.
    pub fn enum_value_doc(&self, value: &prost_reflect::EnumValueDescriptor) -> Option<String> {
        let enum_ = value.parent_enum();
        self.comment(enum_.parent_file_descriptor_proto().name(), value.path())
    }

    /// The comment above an RPC.
    pub fn method_doc(&self, method: &MethodDescriptor) -> Option<String> {
        let service = method.parent_service();
        self.comment(service.parent_file_descriptor_proto().name(), method.path())
    }

    /// The comment above a oneof.
    pub fn oneof_doc(&self, oneof: &prost_reflect::OneofDescriptor) -> Option<String> {
        let message = oneof.parent_message();
        self.comment(message.parent_file_descriptor_proto().name(), oneof.path())
    }

    /// The field's `google.api.field_behavior`.
    pub fn behavior(&self, field: &FieldDescriptor) -> Behavior {
        let mut behavior = Behavior::default();
        let Some(extension) = &self.field_behavior else {
            return behavior;
        };
        let options = field.options();
        if !options.has_extension(extension) {
            return behavior;
        }
        let values = options.get_extension(extension);
        let numbers: Vec<i32> = match values.as_ref() {
            Value::List(list) => list.iter().filter_map(Value::as_enum_number).collect(),
            Value::EnumNumber(number) => vec![*number],
            _ => Vec::new(),
        };
        for number in numbers {
            // google/api/field_behavior.proto: OPTIONAL 1, REQUIRED 2, OUTPUT_ONLY 3,
            // INPUT_ONLY 4, IMMUTABLE 5, UNORDERED_LIST 6, NON_EMPTY_DEFAULT 7, IDENTIFIER 8.
            match number {
                2 => behavior.required = true,
                3 => behavior.output_only = true,
                4 => behavior.input_only = true,
                5 => behavior.immutable = true,
                8 => behavior.identifier = true,
                _ => {}
            }
        }
        behavior
    }

    /// The GraphQL name of a field: its `crowdcrunch.graphql.v1.field` name, or the proto name
    /// in camelCase.
    pub fn field_name(&self, field: &FieldDescriptor) -> String {
        self.field_options
            .as_ref()
            .and_then(|extension| {
                let options = field.options();
                options.has_extension(extension).then(|| {
                    let value = options.get_extension(extension);
                    value
                        .as_message()
                        .and_then(|message| string_field(message, "name"))
                })
            })
            .flatten()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| camel_case(field.name()))
    }

    /// The root field an RPC becomes, or `None` when it is hidden (or client-streaming, which
    /// GraphQL cannot express).
    pub fn operation(&self, method: &MethodDescriptor) -> Result<Option<Operation>, CatalogError> {
        if method.is_client_streaming() {
            return Ok(None);
        }
        let (kind, name) = match &self.operation {
            Some(extension) if method.options().has_extension(extension) => {
                let options = method.options();
                let value = options.get_extension(extension);
                let message = value.as_message().cloned();
                // Unset, `kind` and `name` are proto3's zero values: the default root, the
                // default name.
                let kind = message
                    .as_ref()
                    .and_then(|message| message.get_field_by_name("kind"))
                    .and_then(|kind| kind.as_enum_number())
                    .unwrap_or(0);
                let name = message
                    .as_ref()
                    .and_then(|message| string_field(message, "name"))
                    .unwrap_or_default();
                (kind, name)
            }
            _ => (0, String::new()),
        };
        let kind = match kind {
            0 => default_kind(method),
            1 => RootKind::Query,
            2 => RootKind::Mutation,
            3 if method.is_server_streaming() => RootKind::Subscription,
            3 => {
                return Err(CatalogError(format!(
                    "{} is not server-streaming and cannot be a subscription",
                    method.full_name()
                )));
            }
            4 => return Ok(None),
            other => {
                return Err(CatalogError(format!(
                    "{}: unknown crowdcrunch.graphql.v1.Kind {other}",
                    method.full_name()
                )));
            }
        };
        if kind != RootKind::Subscription && method.is_server_streaming() {
            return Err(CatalogError(format!(
                "{} is server-streaming: it can only be a subscription",
                method.full_name()
            )));
        }
        let name = if name.is_empty() {
            default_name(method.name(), kind)
        } else {
            name
        };
        Ok(Some(Operation {
            method: method.clone(),
            kind,
            name,
        }))
    }

    /// The joins declared on `message`, checked against the descriptors.
    pub fn joins(&self, message: &MessageDescriptor) -> Result<Vec<Join>, CatalogError> {
        let Some(extension) = &self.join else {
            return Ok(Vec::new());
        };
        let options = message.options();
        if !options.has_extension(extension) {
            return Ok(Vec::new());
        }
        let value = options.get_extension(extension);
        let Value::List(items) = value.as_ref() else {
            return Ok(Vec::new());
        };
        items
            .iter()
            .filter_map(Value::as_message)
            .map(|join| self.join(message, join))
            .collect()
    }

    fn join(
        &self,
        message: &MessageDescriptor,
        join: &DynamicMessage,
    ) -> Result<Join, CatalogError> {
        // A proto3 string reads as "" when unset; `None` means options.proto lacks the field.
        let text = |name: &str| {
            string_field(join, name).ok_or_else(|| {
                CatalogError(format!(
                    "join on {}: crowdcrunch.graphql.v1.Join has no string field {name}",
                    message.full_name()
                ))
            })
        };
        let field = text("field")?;
        let error =
            |what: String| CatalogError(format!("join {}.{field}: {what}", message.full_name()));
        let rpc = text("rpc")?;
        let method = self
            .method(&rpc)
            .ok_or_else(|| error(format!("no RPC {rpc:?}")))?;
        let key_name = text("key")?;
        let key = message
            .get_field_by_name(&key_name)
            .filter(|key| !key.is_list() && key.kind() == Kind::String)
            .ok_or_else(|| error(format!("no string key field {key_name:?}")))?;
        let request_field_name = text("request_field")?;
        let request_field = method
            .input()
            .get_field_by_name(&request_field_name)
            .filter(|field| field.kind() == Kind::String)
            .ok_or_else(|| {
                error(format!(
                    "{rpc} has no string request field {request_field_name:?}"
                ))
            })?;
        let cardinality = match join
            .get_field_by_name("cardinality")
            .and_then(|value| value.as_enum_number())
        {
            Some(1) => Cardinality::One,
            Some(2) => Cardinality::Many,
            Some(3) => Cardinality::Connection,
            _ => return Err(error("cardinality is not set".to_owned())),
        };
        let result_key = match cardinality {
            Cardinality::One | Cardinality::Connection => None,
            Cardinality::Many => {
                let item = list_item_field(&method.output())
                    .ok_or_else(|| error(format!("{rpc} returns no list")))?;
                let item = item.kind();
                let item = item
                    .as_message()
                    .ok_or_else(|| error(format!("{rpc} returns no list of messages")))?;
                let result_key = text("result_key")?;
                Some(
                    item.get_field_by_name(&result_key)
                        .filter(|field| !field.is_list() && field.kind() == Kind::String)
                        .ok_or_else(|| error(format!("no string result_key {result_key:?}")))?,
                )
            }
        };
        let batch = match text("batch_rpc")? {
            batch_rpc if batch_rpc.is_empty() => None,
            _ if cardinality != Cardinality::Connection => {
                return Err(error("only a CONNECTION join takes a batch_rpc".to_owned()));
            }
            batch_rpc => Some(
                self.batch_list(&batch_rpc, &method)
                    .map_err(|what| error(format!("batch_rpc {batch_rpc}: {what}")))?,
            ),
        };
        if cardinality == Cardinality::Many && !request_field.is_list() {
            return Err(error(
                "a MANY join needs a repeated request field to batch the keys".to_owned(),
            ));
        }
        Ok(Join {
            description: text("description")?,
            field,
            method,
            key,
            request_field,
            result_key,
            cardinality,
            batch,
        })
    }

    /// Checks that `rpc` batches `list`: `repeated <list's request> requests` in,
    /// `repeated <list's response> responses` out.
    fn batch_list(&self, rpc: &str, list: &MethodDescriptor) -> Result<BatchList, String> {
        let method = self.method(rpc).ok_or("no such RPC")?;
        let repeated = |message: MessageDescriptor, name: &str, item: MessageDescriptor| {
            message
                .get_field_by_name(name)
                .filter(|field| field.is_list() && field.kind().as_message() == Some(&item))
                .ok_or(format!(
                    "{} needs `repeated {} {name}`",
                    message.full_name(),
                    item.full_name()
                ))
        };
        Ok(BatchList {
            requests: repeated(method.input(), "requests", list.input())?,
            responses: repeated(method.output(), "responses", list.output())?,
            method,
        })
    }

    /// The RPC of full name `rpc` (`package.Service.Method`).
    fn method(&self, rpc: &str) -> Option<MethodDescriptor> {
        let (service_name, method_name) = rpc.rsplit_once('.')?;
        self.pool
            .get_service_by_name(service_name)?
            .methods()
            .find(|method| method.name() == method_name)
    }
}

/// Get, BatchGet and List are queries; streams are subscriptions; the rest mutations.
fn default_kind(method: &MethodDescriptor) -> RootKind {
    let name = method.name();
    if method.is_server_streaming() {
        RootKind::Subscription
    } else if name.starts_with("Get") || name.starts_with("BatchGet") || name.starts_with("List") {
        RootKind::Query
    } else {
        RootKind::Mutation
    }
}

/// `GetCustomer` → `customer`, `ListCustomers` → `customers`, anything else in camelCase.
fn default_name(rpc: &str, kind: RootKind) -> String {
    if kind == RootKind::Query {
        for prefix in ["Get", "List"] {
            if let Some(rest) = rpc.strip_prefix(prefix)
                && rest.starts_with(|c: char| c.is_ascii_uppercase())
            {
                return lower_first(rest);
            }
        }
    }
    lower_first(rpc)
}

/// The repeated message field of a List or BatchGet response (its items).
pub fn list_item_field(response: &MessageDescriptor) -> Option<FieldDescriptor> {
    response
        .fields()
        .find(|field| field.is_list() && field.kind().as_message().is_some())
}

fn string_field(message: &DynamicMessage, name: &str) -> Option<String> {
    message
        .get_field_by_name(name)
        .and_then(|value| value.as_str().map(str::to_owned))
}

fn clean_comment(text: &str) -> String {
    text.lines()
        .map(|line| line.strip_prefix(' ').unwrap_or(line).trim_end())
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned()
}

/// `display_name` → `displayName`.
pub fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// `display_name` → `DisplayName`.
pub fn pascal_case(name: &str) -> String {
    upper_first(&camel_case(name))
}

fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn upper_first(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_standard_methods() {
        assert_eq!(default_name("GetCustomer", RootKind::Query), "customer");
        assert_eq!(default_name("ListCustomers", RootKind::Query), "customers");
        assert_eq!(
            default_name("BatchGetCustomers", RootKind::Query),
            "batchGetCustomers"
        );
        assert_eq!(
            default_name("UpdateShipmentStatus", RootKind::Mutation),
            "updateShipmentStatus"
        );
        assert_eq!(camel_case("tracking_number"), "trackingNumber");
        assert_eq!(pascal_case("payment_method"), "PaymentMethod");
    }

    #[test]
    fn the_crowdcrunch_descriptors_have_comments_options_and_joins() {
        let catalog = Catalog::decode(crowdcrunch_proto::FILE_DESCRIPTOR_SET).expect("catalog");
        let order = catalog
            .pool()
            .get_message_by_name("crowdcrunch.orders.v1.Order")
            .expect("Order");
        assert_eq!(
            catalog.message_doc(&order).as_deref(),
            Some("A customer's order.")
        );
        let id = order.get_field_by_name("id").expect("id");
        assert!(catalog.behavior(&id).output_only);
        let joins = catalog.joins(&order).expect("joins");
        let names: Vec<_> = joins.iter().map(|join| join.field.as_str()).collect();
        assert_eq!(
            names,
            ["customer", "payments", "shipments", "returns", "events"]
        );
        let watch = catalog
            .pool()
            .get_service_by_name("crowdcrunch.orders.v1.OrderService")
            .and_then(|service| service.methods().find(|m| m.name() == "WatchOrder"))
            .expect("WatchOrder");
        let operation = catalog.operation(&watch).expect("valid").expect("exposed");
        assert_eq!(operation.kind, RootKind::Subscription);
        assert_eq!(operation.name, "orderUpdated");
    }
}
