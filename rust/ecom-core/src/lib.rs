//! ecom-core: the pure core of ecom, with no I/O (the wall clock, [`now_ms`], aside). Validation of one record, session features and
//! LSH are called by the Flink job (over JNI) and by offline training alike, so both compute
//! exactly the same; the stream rules ([`stream`]) are the reference the job's own are held to.
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
pub use stream::ReferenceCheck;
pub use validate::{validate_bytes, validate_bytes_within, validate_event, Rejection};

/// Milliseconds since the Unix epoch by the wall clock (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
