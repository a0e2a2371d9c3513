//! The CrowdCrunch system as the one binary assembles it: the [`roster`] of its services (one row
//! each: name, port, whom it calls, database, how it is made) and how a row becomes a running
//! service ([`services`]). The binary, `dev`, the edge's backends, `smoke` and the tests (the
//! chart's among them) all read the roster; nothing else lists the services.
//!
//! This crate assembles and never holds a domain rule: those live in the service crates.

pub mod roster;
pub mod services;
