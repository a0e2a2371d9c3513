//! Who is calling: the identity that a verified token (or its absence) gives a call.

use std::fmt;

/// The role that makes a token's holder staff.
pub const STAFF_ROLE: &str = "staff";

/// The role that makes a token's holder a peer service, named by the token's `sub` (OAuth
/// client-credentials style: `dev` and `crowdcrunch token --service` mint such tokens).
pub const SERVICE_ROLE: &str = "service";

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// No token: may read the catalog only.
    Anonymous,
    /// A customer: the id is the configured customer claim of the token.
    Customer {
        /// The customer id, as the token says it.
        customer_id: String,
    },
    /// A member of staff: the token's roles include `staff`.
    Staff {
        /// The token's `sub`: stable, for audit records.
        subject: String,
        /// The token's `preferred_username`, or the subject when it has none: for people.
        name: String,
    },
    /// Another CrowdCrunch service calling on its own behalf (by the name of the service).
    Peer {
        /// The calling service's name, e.g. `billing`.
        service: String,
    },
}

impl Identity {
    /// The customer id when the caller is a customer.
    pub fn customer_id(&self) -> Option<&str> {
        match self {
            Self::Customer { customer_id } => Some(customer_id),
            Self::Anonymous | Self::Staff { .. } | Self::Peer { .. } => None,
        }
    }

    /// Whether the caller is staff.
    pub fn is_staff(&self) -> bool {
        matches!(self, Self::Staff { .. })
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Anonymous => f.write_str("anonymous"),
            Self::Customer { customer_id } => write!(f, "customer {customer_id}"),
            Self::Staff { subject, name } if subject == name => write!(f, "staff {name}"),
            Self::Staff { subject, name } => write!(f, "staff {name} ({subject})"),
            Self::Peer { service } => write!(f, "service {service}"),
        }
    }
}
