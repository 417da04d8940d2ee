//! The Kafka topics of the pipeline, named once for every Rust crate. The Flink job names the
//! same topics in `dev.ecom.flink.Topics`, dev/up and docker-compose.yml create them; a test
//! in ecom-cli (tests/topics.rs) holds those three to this list.

/// Raw click-stream events as the generator (or a shop) produces them.
pub const RAW: &str = "ecom.events.raw";
/// Events the job validated and enriched.
pub const ENRICHED: &str = "ecom.events.enriched";
/// The job's dead letters: rejected records with their reason.
pub const INVALID: &str = "ecom.events.invalid";
/// Sessions the job closed.
pub const SESSIONS: &str = "ecom.sessions";
/// Per-minute differentially private metrics windows.
pub const METRICS: &str = "ecom.metrics";
/// Each model version's live quality per window of closed sessions.
pub const QUALITY: &str = "ecom.quality";
/// The generator's ground truth per session (the oracle; never read by the job).
pub const TRUTH: &str = "ecom.truth";
/// The product catalog, compacted by product id.
pub const CATALOG: &str = "ecom.catalog";
/// Records the sink could not store, with the reason.
pub const SINK_DEADLETTER: &str = "ecom.sink.deadletter";

/// Every topic, in dev/up's order.
pub const ALL: [&str; 9] = [RAW, ENRICHED, INVALID, SESSIONS, METRICS, QUALITY, TRUTH, CATALOG, SINK_DEADLETTER];
