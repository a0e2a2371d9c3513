//! Who may call each RPC: the `(crowdcrunch.access.v1.rule)` option that every RPC declares in the
//! protos, read from an encoded descriptor set at start. Deny by default: a descriptor set with an
//! RPC that declares no rule, a customer rule without an owner, or an owner field that its messages
//! do not have, is refused, so a process built from it never starts.
//!
//! The rules are data: the server's admission layer, the edge's checks and schema, and the chart's
//! policies all read them here, and no code is written per RPC. Which services exist is whatever
//! the descriptor set holds; this module names none.

use std::collections::HashMap;
use std::fmt;

use prost_reflect::{
    DescriptorPool, DynamicMessage, Kind, MessageDescriptor, MethodDescriptor, Value,
};

use crate::auth::Identity;

mod admission;

pub use admission::{AdmissionLayer, AdmitCalls, Gatekeeper};

/// The full name of the method option that holds an RPC's rule.
pub const RULE_OPTION: &str = "crowdcrunch.access.v1.rule";

/// An end user's role, as the rules name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Anyone, with a token or without.
    Anonymous,
    /// A customer, on their own resources.
    Customer,
    /// Shop staff.
    Staff,
}

impl Role {
    fn from_number(number: i32) -> Option<Self> {
        match number {
            1 => Some(Self::Anonymous),
            2 => Some(Self::Customer),
            3 => Some(Self::Staff),
            _ => None,
        }
    }
}

/// The fields that name the customer who owns what an RPC reads or changes (dotted paths).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owner {
    /// A request field holding the owner's id (`customer_id`, `customer.id`, `requests.customer_id`).
    pub request_field: Option<String>,
    /// A field of the resource holding the owner's id (`customer_id`).
    pub resource_field: Option<String>,
}

/// One RPC's rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The method's full name, `package.Service.Method`.
    pub rpc: String,
    /// The gRPC path, `/package.Service/Method`.
    pub path: String,
    /// The end-user roles admitted; empty for an RPC only peers may call.
    pub roles: Vec<Role>,
    /// Where the owning customer is named.
    pub owner: Owner,
    /// The services that may call with their own identity.
    pub peers: Vec<String>,
}

/// What a rule says of a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The caller may call.
    Admitted,
    /// The caller must say who they are first (UNAUTHENTICATED, HTTP 401).
    Unauthenticated,
    /// The caller is known and may not call (PERMISSION_DENIED, GraphQL FORBIDDEN).
    Forbidden,
}

impl Rule {
    /// Whether `identity` may call this RPC. A rule that admits anyone admits every identity; a
    /// peer is admitted where the rule names it; an end user where the rule names their role (a
    /// customer then only on their own resources, which the owning service checks).
    pub fn admits(&self, identity: &Identity) -> Admission {
        if self.admits_anyone() {
            return Admission::Admitted;
        }
        let admitted = match identity {
            Identity::Anonymous => return Admission::Unauthenticated,
            Identity::Peer { service } => self.peers.iter().any(|peer| peer == service),
            Identity::Customer { .. } => self.roles.contains(&Role::Customer),
            Identity::Staff { .. } => self.roles.contains(&Role::Staff),
        };
        if admitted {
            Admission::Admitted
        } else {
            Admission::Forbidden
        }
    }

    /// Whether anyone may call, without a token.
    pub fn admits_anyone(&self) -> bool {
        self.roles.contains(&Role::Anonymous)
    }

    /// The roles this rule needs, as a refusal names them: `"staff"`, `"customer or staff"`.
    pub fn required(&self) -> String {
        let mut names: Vec<&str> = Vec::new();
        if self.roles.contains(&Role::Customer) {
            names.push("customer");
        }
        if self.roles.contains(&Role::Staff) {
            names.push("staff");
        }
        if names.is_empty() {
            return "a peer service".to_owned();
        }
        names.join(" or ")
    }
}

impl fmt::Display for Rule {
    /// Who may call, for people: `anyone`, `the customer who owns it, and staff`, `staff`,
    /// `the billing and shipping services`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.admits_anyone() {
            return f.write_str("anyone");
        }
        let mut who: Vec<String> = Vec::new();
        if self.roles.contains(&Role::Customer) {
            who.push("the customer who owns it".to_owned());
        }
        if self.roles.contains(&Role::Staff) {
            who.push("staff".to_owned());
        }
        if who.is_empty() {
            let services = match self.peers.as_slice() {
                [only] => only.clone(),
                [first @ .., last] => format!("{} and {last}", first.join(", ")),
                [] => return f.write_str("no one"),
            };
            let noun = if self.peers.len() == 1 {
                "service"
            } else {
                "services"
            };
            return write!(f, "the {services} {noun}");
        }
        f.write_str(&who.join(", and "))
    }
}

/// A descriptor set whose rules cannot be used; the process must not start.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The bytes are not a descriptor set.
    #[error("the descriptor set does not decode: {0}")]
    Decode(#[from] prost_reflect::DescriptorError),
    /// The set does not define the rule option at all.
    #[error("the descriptor set does not define the option {RULE_OPTION}")]
    NoOption,
    /// An RPC declares no rule.
    #[error("{rpc} declares no ({RULE_OPTION}) option: every RPC must say who may call it")]
    Undeclared {
        /// The RPC.
        rpc: String,
    },
    /// A rule that cannot be applied as written.
    #[error("the ({RULE_OPTION}) option of {rpc} {problem}")]
    Invalid {
        /// The RPC.
        rpc: String,
        /// What is wrong.
        problem: String,
    },
}

/// The rule of every RPC of a descriptor set, by gRPC path.
#[derive(Debug, Clone, Default)]
pub struct AccessRules {
    by_path: HashMap<String, Rule>,
}

impl AccessRules {
    /// Reads and checks the rule of every RPC of every service in the encoded `FileDescriptorSet`.
    pub fn from_descriptor_set(bytes: &[u8]) -> Result<Self, AccessError> {
        let pool = DescriptorPool::decode(bytes)?;
        let extension = pool
            .get_extension_by_name(RULE_OPTION)
            .ok_or(AccessError::NoOption)?;
        let mut by_path = HashMap::new();
        for service in pool.services() {
            for method in service.methods() {
                let options = method.options();
                if !options.has_extension(&extension) {
                    return Err(AccessError::Undeclared {
                        rpc: method.full_name().to_owned(),
                    });
                }
                let value = options.get_extension(&extension);
                let Some(rule) = value.as_message() else {
                    return Err(invalid(&method, "is not a message"));
                };
                let rule = read_rule(&method, rule)?;
                by_path.insert(rule.path.clone(), rule);
            }
        }
        Ok(Self { by_path })
    }

    /// The rule of the RPC at `path` (`/package.Service/Method`), if the set has that RPC.
    pub fn rule(&self, path: &str) -> Option<&Rule> {
        self.by_path.get(path)
    }

    /// The rule of the RPC with this full name (`package.Service.Method`).
    pub fn rule_of(&self, rpc: &str) -> Option<&Rule> {
        let (service, method) = rpc.rsplit_once('.')?;
        self.by_path.get(&format!("/{service}/{method}"))
    }

    /// Every rule, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Rule> {
        self.by_path.values()
    }
}

fn invalid(method: &MethodDescriptor, problem: impl Into<String>) -> AccessError {
    AccessError::Invalid {
        rpc: method.full_name().to_owned(),
        problem: problem.into(),
    }
}

fn read_rule(method: &MethodDescriptor, rule: &DynamicMessage) -> Result<Rule, AccessError> {
    let mut roles = Vec::new();
    for value in list(rule, "roles") {
        let role = value
            .as_enum_number()
            .and_then(Role::from_number)
            .ok_or_else(|| invalid(method, "names a role that does not exist"))?;
        roles.push(role);
    }
    let peers: Vec<String> = list(rule, "peers")
        .iter()
        .filter_map(|value| value.as_str().map(str::to_owned))
        .collect();
    if let Some(peer) = peers.iter().find(|peer| peer.is_empty()) {
        return Err(invalid(method, format!("names an empty peer {peer:?}")));
    }
    let owner = rule
        .get_field_by_name("owner")
        .and_then(|owner| owner.as_message().map(read_owner))
        .unwrap_or_default();
    if roles.is_empty() && peers.is_empty() {
        return Err(invalid(method, "admits no one: name roles or peers"));
    }
    if roles.contains(&Role::Customer) && owner == Owner::default() {
        return Err(invalid(
            method,
            "admits a customer but names no owner field: say where the owning customer is",
        ));
    }
    if let Some(path) = &owner.request_field
        && !has_path(&method.input(), path)
    {
        return Err(invalid(
            method,
            format!(
                "names the request field {path:?}, which {} does not have",
                method.input().full_name()
            ),
        ));
    }
    if let Some(path) = &owner.resource_field
        && !resource_has_path(&method.output(), path)
    {
        return Err(invalid(
            method,
            format!(
                "names the resource field {path:?}, which {} and its items do not have",
                method.output().full_name()
            ),
        ));
    }
    let service = method.parent_service();
    Ok(Rule {
        rpc: method.full_name().to_owned(),
        path: format!("/{}/{}", service.full_name(), method.name()),
        roles,
        owner,
        peers,
    })
}

fn read_owner(owner: &DynamicMessage) -> Owner {
    let text = |name: &str| {
        owner
            .get_field_by_name(name)
            .and_then(|value| value.as_str().map(str::to_owned))
            .filter(|path| !path.is_empty())
    };
    Owner {
        request_field: text("request_field"),
        resource_field: text("resource_field"),
    }
}

/// The values of the repeated field `name` (none when it is unset).
fn list(message: &DynamicMessage, name: &str) -> Vec<Value> {
    message
        .get_field_by_name(name)
        .and_then(|value| value.as_list().map(<[Value]>::to_vec))
        .unwrap_or_default()
}

/// Whether `message` has the dotted `path` of string fields (through messages, repeated or not).
fn has_path(message: &MessageDescriptor, path: &str) -> bool {
    let mut current = message.clone();
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let Some(field) = current.get_field_by_name(part) else {
            return false;
        };
        match field.kind() {
            Kind::Message(inner) if parts.peek().is_some() => current = inner,
            Kind::String => return parts.peek().is_none(),
            _ => return false,
        }
    }
    false
}

/// Whether the resource an RPC answers has `path`: the response itself, or the items of its
/// repeated message fields (a List or BatchGet page), two levels deep at most (a batch of pages).
fn resource_has_path(message: &MessageDescriptor, path: &str) -> bool {
    fn search(message: &MessageDescriptor, path: &str, depth: u8) -> bool {
        has_path(message, path)
            || (depth > 0
                && message.fields().any(|field| match field.kind() {
                    Kind::Message(inner) if field.is_list() => search(&inner, path, depth - 1),
                    _ => false,
                }))
    }
    search(message, path, 2)
}

/// Who is calling, as the server's admission found them: what a service reads to scope its data.
/// Admission puts it in every admitted request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    identity: Identity,
}

impl Caller {
    /// A caller with this identity (admission makes them; tests of admission too).
    pub fn new(identity: Identity) -> Self {
        Self { identity }
    }

    /// The caller of `request`, as admission recorded it. Every request a handler sees went
    /// through admission, so its absence is the server's own fault (INTERNAL).
    pub fn of<T>(request: &tonic::Request<T>) -> Result<&Self, tonic::Status> {
        request.extensions().get::<Self>().ok_or_else(|| {
            tracing::error!("a request reached its handler without admission");
            tonic::Status::internal("the request was not admitted")
        })
    }

    /// Who they are.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The customer whose resources alone this caller may see: `Some` for a customer, `None` for
    /// staff and peer services, who see everything. A service scopes every read of an owned
    /// resource by it, so another customer's resource is answered exactly as one that does not
    /// exist (the service's own NOT_FOUND, an empty page, a null join).
    pub fn owner_scope(&self) -> Option<&str> {
        match &self.identity {
            Identity::Customer { customer_id } => Some(customer_id),
            Identity::Anonymous | Identity::Staff { .. } | Identity::Peer { .. } => None,
        }
    }

    /// Whether this caller may act for `customer_id` (a request field that names the owner):
    /// staff and peers for anyone, a customer for themselves, an anonymous caller for no one.
    pub fn may_act_for(&self, customer_id: &str) -> bool {
        match &self.identity {
            Identity::Customer { customer_id: own } => own == customer_id,
            Identity::Staff { .. } | Identity::Peer { .. } => true,
            Identity::Anonymous => false,
        }
    }

    /// The peer service calling with its own identity, if it is one.
    pub fn peer(&self) -> Option<&str> {
        match &self.identity {
            Identity::Peer { service } => Some(service),
            Identity::Anonymous | Identity::Customer { .. } | Identity::Staff { .. } => None,
        }
    }
}
