//! ecom-core: the pure core of ecom. Validation (per record and per stream), features and LSH live here, with no I/O, so
//! the Flink job (over JNI) and offline training call exactly the same code.
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]
#![deny(unused_must_use)]

pub mod dp;
pub mod features;
pub mod lsh;
pub mod metrics;
pub mod packed;
pub mod secret;
pub mod stream;
pub mod topics;
pub mod validate;

pub use ecom_proto::v1::{Event, EventKind, RejectReason};
pub use stream::StreamCheck;
pub use validate::{validate_bytes, validate_bytes_within, validate_event, Rejection};
