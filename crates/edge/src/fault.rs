//! The edge's own faults: an invariant of its plan or of a request's state that does not hold.
//! No backend is at fault and neither is the client, so a fault names no service and no input:
//! the client is told only that the edge failed (`INTERNAL_SERVER_ERROR`, a generic message),
//! and the log gets the cause.

use async_graphql::{ErrorExtensionValues, ServerError};

/// The `extensions.code` of the edge's own faults, and of a backend's INTERNAL.
pub const INTERNAL: &str = "INTERNAL_SERVER_ERROR";

/// What a client is told of a [`Fault`].
pub const FAULT_MESSAGE: &str = "the GraphQL edge failed; the failure has been logged";

/// A fault of the edge itself: an invariant of its plan or of a request's state that does not
/// hold. No backend is at fault, so none is named; the client gets [`INTERNAL`] and
/// [`FAULT_MESSAGE`], the log gets the cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// A resolver ran without the parent value or request data it was wired to.
    #[error("{0} is missing")]
    Unwired(&'static str),
    /// A join index that the plan does not hold.
    #[error("join #{0} is not in the plan")]
    UnknownJoin(usize),
    /// A join that the plan made without something it needs.
    #[error("join {join}: {what}")]
    Misplanned {
        /// The join's GraphQL field.
        join: String,
        /// What is missing.
        what: &'static str,
    },
    /// A field that holds no string where the plan checked for a string field at start.
    #[error("the field {0} does not hold a string")]
    NotAString(String),
    /// The loader did not answer a key it was given.
    #[error("the join loader lost a key: {0}")]
    LoaderLostKey(&'static str),
    /// An input plan that the schema builder did not make as the descriptors say.
    #[error("input plan: {0}")]
    InputMisplanned(String),
}

/// Tells the client of each edge fault among `errors` only that the edge failed
/// ([`INTERNAL`], [`FAULT_MESSAGE`], no service named), and logs the fault. A fault travels as
/// the source of its GraphQL error (async-graphql keeps it through every resolver), so a
/// resolver just returns it with `?`; this is the one place that decides what the client sees,
/// run on every response before it leaves the edge.
pub fn conceal_faults(errors: &mut [ServerError]) {
    for error in errors {
        let Some(fault) = error.source::<Fault>() else {
            continue;
        };
        tracing::error!(%fault, path = ?error.path, "the edge failed");
        error.message = FAULT_MESSAGE.to_owned();
        let mut extensions = ErrorExtensionValues::default();
        extensions.set("code", INTERNAL);
        error.extensions = Some(extensions);
    }
}
