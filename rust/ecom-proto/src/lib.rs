//! Generated protobuf types and gRPC stubs for ecom (from proto/ecom/v1).
#![warn(rust_2018_idioms, unreachable_pub)]
#![deny(unused_must_use)]

/// ecom.v1: events, reject reasons, verdicts and the Guard/Score/Recommend services.
#[allow(missing_docs, clippy::all, unreachable_pub)]
pub mod v1 {
    tonic::include_proto!("ecom.v1");
}

/// Encoded file descriptor set of all ecom protos, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("ecom_descriptor");

pub use v1::*;
