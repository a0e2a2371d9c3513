//! The GraphQL edge: one GraphQL schema derived at start from the services' protobuf descriptors
//! (comments, `google.api.field_behavior` and the `crowdcrunch.graphql.v1` options), served over
//! HTTP and WebSocket, resolved by dynamic gRPC calls batched per request.
//!
//! The edge translates and nothing more. It must never hold a GraphQL type written by hand for a
//! proto message, never a business rule (the services decide), and never build anything per
//! request that can be built at start (the schema, the plans, the channels).
//!
//! The folder reads as the pipeline, at start then per request:
//! - `plan`: what the descriptors say (`plan::catalog`) and the plan derived from them, which
//!   the resolvers share;
//! - `schema`: the GraphQL schema built from the catalog, one file per construct (`outputs`,
//!   `joins`, `inputs`, `roots`, `connections`), with `scalars` and `convert` mapping values as
//!   the protobuf JSON mapping does;
//! - `resolve`: what each field does at request time (`fields`, `roots`, `joins`, `prefetch`,
//!   `page`);
//! - `loader`: the request scope and the edge's own batching loader for join fields;
//! - `access`: who may select what, from each RPC's `(crowdcrunch.access.v1.rule)`, and the
//!   caller whose `authorization` every backend call forwards;
//! - `grpc`: dynamic calls over one balanced channel per backend;
//! - `errors`: who failed, as GraphQL errors: a backend's status or the client's input;
//!   `fault`: the edge's own faults, which never pass for either;
//! - `request`: the [`Gateway`] and one request's path (persisted queries, documents and their
//!   cache, variables, validation cache, error propagation);
//! - `http`: the axum router; `ws`: its WebSocket side (graphql-transport-ws).

mod access;
mod convert;
mod errors;
mod fault;
mod grpc;
mod http;
mod loader;
mod plan;
mod request;
mod resolve;
mod scalars;
mod schema;
mod ws;

pub use grpc::{DynamicCodec, backend_name};
pub use http::router;
pub use plan::catalog::{Catalog, CatalogError};
pub use request::{BuildError, Gateway};
pub use schema::SchemaOptions;

/// The SDL of the schema derived from `crowdcrunch_proto::FILE_DESCRIPTOR_SET`, as
/// `crowdcrunch schema` prints it.
pub fn sdl() -> Result<String, CatalogError> {
    sdl_of(crowdcrunch_proto::FILE_DESCRIPTOR_SET)
}

/// The SDL of the schema derived from any encoded `FileDescriptorSet` (with source info).
pub fn sdl_of(file_descriptor_set: &[u8]) -> Result<String, CatalogError> {
    schema::sdl(&Catalog::decode(file_descriptor_set)?)
}
