//! The GraphQL edge: one GraphQL schema derived at start from the services' protobuf descriptors
//! (comments, `google.api.field_behavior` and the `crowdcrunch.graphql.v1` options), served over
//! HTTP and WebSocket, resolved by dynamic gRPC calls batched per request.
//!
//! The edge translates and nothing more. It must never hold a GraphQL type written by hand for a
//! proto message, never a business rule (the services decide), and never build anything per
//! request that can be built at start (the schema, the plans, the channels).
//!
//! - `catalog`: what the descriptors say; `schema`, `convert`, `scalars`, `page`: the schema and
//!   the value mapping; `grpc`, `scope`: backend calls and their batching; `errors`: statuses as
//!   GraphQL errors; `execute`: the document cache, limits and persisted queries; `variables`:
//!   variables coerced per request; `http`: the axum router.

mod catalog;
mod convert;
mod errors;
mod execute;
mod grpc;
mod http;
mod page;
mod scalars;
mod schema;
mod scope;
mod variables;

pub use catalog::{Catalog, CatalogError};
pub use execute::{Edge, EdgeError};
pub use grpc::{DynamicCodec, backend_name};
pub use http::router;
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
