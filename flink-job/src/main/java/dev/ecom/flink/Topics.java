package dev.ecom.flink;

/**
 * The Kafka topics the job reads and writes by default. The same names as ecom-core's {@code
 * topics} module (Rust), which a test in ecom-cli (tests/topics.rs) holds this file to.
 */
public final class Topics {
  /** Raw click-stream events as the generator (or a shop) produces them. */
  public static final String RAW = "ecom.events.raw";

  /** Events the job validated and enriched. */
  public static final String ENRICHED = "ecom.events.enriched";

  /** The job's dead letters: rejected records with their reason. */
  public static final String INVALID = "ecom.events.invalid";

  /** Sessions the job closed. */
  public static final String SESSIONS = "ecom.sessions";

  /** Per-minute differentially private metrics windows. */
  public static final String METRICS = "ecom.metrics";

  /** Each model version's live quality per window of closed sessions. */
  public static final String QUALITY = "ecom.quality";

  /** The product catalog, compacted by product id. */
  public static final String CATALOG = "ecom.catalog";

  private Topics() {}
}
