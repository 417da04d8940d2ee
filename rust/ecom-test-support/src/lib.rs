//! Servers the integration tests of several crates start for themselves. Test-only: no crate
//! depends on it outside `[dev-dependencies]`.
mod secure_mongo;
pub use secure_mongo::SecureMongo;
