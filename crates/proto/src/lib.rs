//! The generated protobuf messages and gRPC clients and servers of every CrowdCrunch API, compiled
//! from `proto/` at build time, plus the encoded file descriptor set that gRPC reflection and the
//! GraphQL edge read.
//!
//! This crate is generated code and a few conversions beside it; it must never hold behaviour.

#[expect(
    missing_docs,
    reason = "generated code documents what the protos' comments say"
)]
#[expect(clippy::all, reason = "generated code is prost's style, not ours")]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/crowdcrunch.rs"));
}

pub use generated::crowdcrunch::*;
pub use generated::google;

mod address;
mod codec;
pub mod json;
mod money;
pub mod rules;

pub use money::{AmountRule, MAX_MINOR_UNITS, bounded_product, bounded_sum};

/// The encoded `FileDescriptorSet` of every CrowdCrunch proto and its imports, with source info
/// (comments) and custom options such as `google.api.field_behavior` intact.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/crowdcrunch_descriptor.bin"));

impl std::fmt::Debug for r#type::v1::PaymentCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let last4 = self
            .number
            .get(self.number.len().saturating_sub(4)..)
            .unwrap_or_default();
        f.debug_struct("PaymentCard")
            .field("number", &format_args!("****{last4}"))
            .field("exp_month", &self.exp_month)
            .field("exp_year", &self.exp_year)
            .field("cvc", &"***")
            .finish()
    }
}
