// The job's configuration: its options read into small groups, each checked where it is made.
package dev.ecom.flink;

import static dev.ecom.flink.JobOptions.*;

import dev.ecom.flink.metrics.MetricsConfig;
import dev.ecom.flink.serve.ServeCallConfig;
import dev.ecom.flink.serve.ServeSecurity;
import dev.ecom.proto.v1.EventKind;
import java.io.Serializable;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * Everything the job can be told on its command line ({@link JobOptions}), grouped by the part of
 * the job that uses it. Serializable because operators keep the groups they need.
 *
 * @param parallelism the job's parallelism; 0: the cluster's
 * @param bufferTimeoutMs longest a record waits in a network buffer between tasks
 * @param passThrough benchmarks only: records parsed and written on, nothing else
 */
public record JobConfig(
    Kafka kafka,
    Recovery recovery,
    Intake intake,
    EventTime eventTime,
    Serve serve,
    StateRetention state,
    Privacy privacy,
    int parallelism,
    long bufferTimeoutMs,
    boolean passThrough)
    implements Serializable {

  /**
   * The largest batch ecom serve's *Batch methods accept by default (its --max-batch): a larger
   * --rpc-batch-size would have every batch refused.
   */
  public static final int SERVE_MAX_BATCH = 1000;

  /**
   * Room every written record needs beyond the largest accepted raw record: an enriched event adds
   * session features, LSH, scores, reasons and recommendations (a few KB); a dead letter adds its
   * detail, hash and source. Far more than they use, so a record never fails its producer.
   */
  public static final int RECORD_OVERHEAD_BYTES = 64 * 1024;

  /**
   * Where the job reads and writes.
   *
   * @param properties Kafka client properties for every source, sink and admin client (TLS, SASL);
   *     the job's own settings win over them
   */
  public record Kafka(
      String bootstrapServers,
      String groupId,
      KafkaTopics topics,
      String transactionalIdPrefix,
      long transactionTimeoutMs,
      int producerMaxRequestBytes,
      Map<String, String> properties)
      implements Serializable {
    public Kafka {
      Objects.requireNonNull(bootstrapServers, "bootstrapServers");
      properties = properties == null ? Map.of() : Map.copyOf(properties);
    }

    @Override
    public String toString() {
      // Property values may hold secrets (SASL passwords): only their names.
      return "Kafka["
          + bootstrapServers
          + ", group "
          + groupId
          + ", "
          + topics
          + ", txn "
          + transactionalIdPrefix
          + "/"
          + transactionTimeoutMs
          + " ms, max request "
          + producerMaxRequestBytes
          + " B, properties "
          + properties.keySet()
          + "]";
    }
  }

  /** The job's topics. */
  public record KafkaTopics(
      String raw,
      String enriched,
      String invalid,
      String catalog,
      String sessions,
      String metrics,
      String quality)
      implements Serializable {}

  /** Checkpoints and restarts. */
  public record Recovery(
      long checkpointIntervalMs,
      long checkpointTimeoutMs,
      int tolerableCheckpointFailures,
      int restartAttempts,
      long restartDelayMs)
      implements Serializable {}

  /** How raw records are read, validated and enriched in batches. */
  public record Intake(
      int maxRecordBytes,
      int batchSize,
      long batchMaxDelayMs,
      int lshPerm,
      int lshBands,
      IpHashKey ipHashKey)
      implements Serializable {
    public Intake {
      Objects.requireNonNull(ipHashKey, "ipHashKey");
      if (lshPerm % lshBands != 0) {
        throw new IllegalArgumentException(
            LSH_PERM.flag()
                + " "
                + lshPerm
                + " must be a multiple of "
                + LSH_BANDS.flag()
                + " "
                + lshBands);
      }
    }
  }

  /** Watermarks, lateness and sessions. */
  public record EventTime(
      long maxOutOfOrderMs,
      long maxClockLeadMs,
      long idleTimeoutMs,
      long allowedLatenessMs,
      long sessionGapMs,
      long catalogWaitMs,
      long qualityWindowMs)
      implements Serializable {
    public EventTime {
      if (maxClockLeadMs >= maxOutOfOrderMs) {
        throw new IllegalArgumentException(
            MAX_CLOCK_LEAD_MS.flag()
                + " "
                + maxClockLeadMs
                + " must be below "
                + MAX_OUT_OF_ORDER_MS.flag()
                + " "
                + maxOutOfOrderMs
                + ": otherwise one event from a fast clock could make on-time events late");
      }
      // Duplicates are found within the open session; an event that could arrive after its
      // session closed must therefore be late, or a retried copy would open a second session.
      if (allowedLatenessMs >= sessionGapMs) {
        throw new IllegalArgumentException(
            ALLOWED_LATENESS_MS.flag()
                + " "
                + allowedLatenessMs
                + " must be below "
                + SESSION_GAP_MS.flag()
                + " "
                + sessionGapMs
                + ": a copy of an event whose session has closed must be rejected as late, not"
                + " start a new session");
      }
    }
  }

  /** One serve method's timeout and events in flight per task. */
  public record Method(long timeoutMs, int capacity) implements Serializable {}

  /**
   * How the job calls ecom serve.
   *
   * @param inProcessModels a models directory: Score and Recommend run in the TaskManager over JNI
   *     from it instead of over gRPC; null: gRPC
   */
  public record Serve(
      String address,
      ServeSecurity security,
      String inProcessModels,
      int rpcBatchSize,
      long rpcBatchMaxDelayMs,
      Method guard,
      Method score,
      int scoreTopK,
      int scoreReasonsEvery,
      Method recommend,
      int recommendK,
      Set<EventKind> recommendKinds)
      implements Serializable {
    public Serve {
      Objects.requireNonNull(address, "address");
      Objects.requireNonNull(security, "security");
      if (rpcBatchSize > SERVE_MAX_BATCH) {
        throw new IllegalArgumentException(
            RPC_BATCH_SIZE.flag()
                + " "
                + rpcBatchSize
                + " is above ecom serve's batch limit of "
                + SERVE_MAX_BATCH
                + ": every batch call would be refused");
      }
    }

    /** How the job calls Guard (always over gRPC: it needs Redis). */
    public ServeCallConfig guardCall() {
      return call(guard, null);
    }

    /** How the job calls Score. */
    public ServeCallConfig scoreCall() {
      return call(score, inProcessModels);
    }

    /** How the job calls Recommend. */
    public ServeCallConfig recommendCall() {
      return call(recommend, inProcessModels);
    }

    private ServeCallConfig call(Method m, String models) {
      return new ServeCallConfig(
          address, m.timeoutMs, m.capacity, rpcBatchSize, rpcBatchMaxDelayMs, security, models);
    }
  }

  /** How long the keyed steps keep state without use (processing time; 0: forever). */
  public record StateRetention(long userHistoryTtlMs, long sessionStateTtlMs, int cleanupEntries)
      implements Serializable {
    public StateTtl userHistory() {
      return new StateTtl(userHistoryTtlMs, cleanupEntries);
    }

    public StateTtl openSessions() {
      return new StateTtl(sessionStateTtlMs, cleanupEntries);
    }
  }

  /** Differential privacy of the per-minute metrics. */
  public record Privacy(double epsilon, long revenueUpperCents) implements Serializable {
    public MetricsConfig metrics() {
      return new MetricsConfig(MetricsConfig.DEFAULT_WINDOW_SIZE_MS, epsilon, revenueUpperCents);
    }
  }

  /** The checks that relate options of different groups. */
  public JobConfig {
    long txn = kafka.transactionTimeoutMs();
    if (txn <= recovery.checkpointIntervalMs() + recovery.checkpointTimeoutMs()) {
      throw new IllegalArgumentException(
          TRANSACTION_TIMEOUT_MS.flag()
              + " "
              + txn
              + " must be above "
              + CHECKPOINT_INTERVAL_MS.flag()
              + " "
              + recovery.checkpointIntervalMs()
              + " + "
              + CHECKPOINT_TIMEOUT_MS.flag()
              + " "
              + recovery.checkpointTimeoutMs()
              + ": a transaction stays open from one checkpoint until the next completes, and"
              + " Kafka aborting it would lose what it holds");
    }
    if ((long) intake.maxRecordBytes() + RECORD_OVERHEAD_BYTES > kafka.producerMaxRequestBytes()) {
      throw new IllegalArgumentException(
          MAX_RECORD_BYTES.flag()
              + " "
              + intake.maxRecordBytes()
              + " leaves too little room under "
              + PRODUCER_MAX_REQUEST_BYTES.flag()
              + " "
              + kafka.producerMaxRequestBytes()
              + ": an enriched event or a dead letter needs up to "
              + RECORD_OVERHEAD_BYTES
              + " bytes more than the raw record, and a record its producer"
              + " refuses would stop the job");
    }
    long ttl = state.sessionStateTtlMs();
    if (ttl > 0 && ttl <= eventTime.sessionGapMs()) {
      throw new IllegalArgumentException(
          SESSION_STATE_TTL_MS.flag()
              + " "
              + ttl
              + " must be above "
              + SESSION_GAP_MS.flag()
              + " "
              + eventTime.sessionGapMs()
              + ": an open session's state would expire before the gap that closes it");
    }
  }

  /** The defaults, as if no argument was given. */
  public static JobConfig defaults() {
    try {
      return parse(new String[0]);
    } catch (HelpRequested e) {
      throw new AssertionError(e);
    }
  }

  /**
   * Parses {@code --name value} and {@code --name=value} arguments.
   *
   * @throws IllegalArgumentException naming the bad argument and what was expected
   * @throws HelpRequested for --help or -h
   */
  public static JobConfig parse(String[] args) throws HelpRequested {
    Given g = given(args);
    Integer parallelism = g.get(PARALLELISM);
    return new JobConfig(
        new Kafka(
            g.get(BOOTSTRAP_SERVERS),
            g.get(GROUP_ID),
            new KafkaTopics(
                g.get(RAW_TOPIC),
                g.get(ENRICHED_TOPIC),
                g.get(INVALID_TOPIC),
                g.get(CATALOG_TOPIC),
                g.get(SESSIONS_TOPIC),
                g.get(METRICS_TOPIC),
                g.get(QUALITY_TOPIC)),
            g.get(TRANSACTIONAL_ID_PREFIX),
            g.get(TRANSACTION_TIMEOUT_MS),
            g.get(PRODUCER_MAX_REQUEST_BYTES),
            g.get(KAFKA_PROPERTIES_FILE)),
        new Recovery(
            g.get(CHECKPOINT_INTERVAL_MS),
            g.get(CHECKPOINT_TIMEOUT_MS),
            g.get(TOLERABLE_CHECKPOINT_FAILURES),
            g.get(RESTART_ATTEMPTS),
            g.get(RESTART_DELAY_MS)),
        new Intake(
            g.get(MAX_RECORD_BYTES),
            g.get(BATCH_SIZE),
            g.get(BATCH_MAX_DELAY_MS),
            g.get(LSH_PERM),
            g.get(LSH_BANDS),
            new IpHashKey(g.get(IP_HASH_KEY_FILE), g.get(ALLOW_DEV_IP_HASH_KEY))),
        new EventTime(
            g.get(MAX_OUT_OF_ORDER_MS),
            g.get(MAX_CLOCK_LEAD_MS),
            g.get(IDLE_TIMEOUT_MS),
            g.get(ALLOWED_LATENESS_MS),
            g.get(SESSION_GAP_MS),
            g.get(CATALOG_WAIT_MS),
            g.get(QUALITY_WINDOW_MS)),
        new Serve(
            g.get(SERVE_ADDRESS),
            new ServeSecurity(
                g.get(SERVE_TLS_CA_FILE),
                g.get(SERVE_TLS_CERT_FILE),
                g.get(SERVE_TLS_KEY_FILE),
                g.get(SERVE_TOKEN_FILE)),
            g.get(IN_PROCESS_MODELS),
            g.get(RPC_BATCH_SIZE),
            g.get(RPC_BATCH_MAX_DELAY_MS),
            new Method(g.get(GUARD_TIMEOUT_MS), g.get(GUARD_CAPACITY)),
            new Method(g.get(SCORE_TIMEOUT_MS), g.get(SCORE_CAPACITY)),
            g.get(SCORE_TOP_K),
            g.get(SCORE_REASONS_EVERY),
            new Method(g.get(RECOMMEND_TIMEOUT_MS), g.get(RECOMMEND_CAPACITY)),
            g.get(RECOMMEND_K),
            g.get(RECOMMEND_KINDS)),
        new StateRetention(
            g.get(USER_HISTORY_TTL_MS),
            g.get(SESSION_STATE_TTL_MS),
            g.get(STATE_TTL_CLEANUP_ENTRIES)),
        new Privacy(g.get(DP_EPSILON), g.get(DP_REVENUE_UPPER_CENTS)),
        parallelism == null ? 0 : parallelism,
        g.get(BUFFER_TIMEOUT_MS),
        g.get(PASS_THROUGH));
  }
}
