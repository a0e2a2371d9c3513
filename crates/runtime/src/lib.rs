//! What every CrowdCrunch server needs, written once: typed settings, telemetry (logs, traces,
//! metrics), the shared tower layer stack, the gRPC server with health, reflection, TLS and graceful
//! drain, gRPC client channels that carry the trace context, storage on SQLite or PostgreSQL,
//! idempotency records, pagination tokens, and the one mapping from errors to `tonic::Status`.
//!
//! This crate is infrastructure only. It must never hold a domain type (no money here) nor name a
//! service (the binary gives it the names of the services a process calls, as data), and it is
//! the only crate that reads the process environment (through `clap`).

pub mod access;
pub mod auth;
pub mod call_end;
pub mod client;
pub mod config;
pub mod context;
pub mod decode_status;
pub mod edge;
pub mod http;
pub mod idempotency;
pub mod metrics;
pub mod pagination;
pub mod server;
pub mod shutdown;
pub mod status;
pub mod storage;
pub mod telemetry;
mod tls;

pub use config::{ServerSettings, StorageSettings, TelemetrySettings, TlsSettings};
pub use server::{GrpcServer, ServeError};
pub use shutdown::Shutdown;
pub use storage::{Database, DatabaseConnection, StorageError};
#[cfg(feature = "testing")]
pub mod testing;
