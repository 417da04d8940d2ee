// The job's command-line arguments, parsed by a small strict parser.
package dev.ecom.flink;

import dev.ecom.flink.serve.ServeCallConfig;
import dev.ecom.flink.serve.ServeSecurity;
import dev.ecom.proto.v1.EventKind;
import java.io.Serializable;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * Everything the job can be told on its command line. Serializable because operators keep the parts
 * they need.
 *
 * @param kafkaProperties Kafka client properties for every source, sink and admin client of the job
 *     (--kafka-properties-file: TLS, SASL); the job's own settings win over them
 * @param ipHashKey where the HMAC key of ip_hash is read (never the arguments, which the Flink UI
 *     and process lists show)
 */
public record JobConfig(
    String bootstrapServers,
    String serveAddress,
    ServeSecurity serveSecurity,
    String groupId,
    String rawTopic,
    String enrichedTopic,
    String invalidTopic,
    long checkpointIntervalMs,
    long bufferTimeoutMs,
    long guardTimeoutMs,
    int guardCapacity,
    IpHashKey ipHashKey,
    String transactionalIdPrefix,
    int parallelism,
    int batchSize,
    long batchMaxDelayMs,
    int lshPerm,
    int lshBands,
    String catalogTopic,
    String sessionsTopic,
    long maxOutOfOrderMs,
    long idleTimeoutMs,
    long allowedLatenessMs,
    long sessionGapMs,
    long catalogWaitMs,
    String metricsTopic,
    double dpEpsilon,
    long dpRevenueUpperCents,
    long scoreTimeoutMs,
    int scoreCapacity,
    int scoreTopK,
    int scoreReasonsEvery,
    long recommendTimeoutMs,
    int recommendCapacity,
    int recommendK,
    String recommendKinds,
    int rpcBatchSize,
    long rpcBatchMaxDelayMs,
    int maxRecordBytes,
    long maxClockLeadMs,
    int producerMaxRequestBytes,
    int restartAttempts,
    long restartDelayMs,
    int tolerableCheckpointFailures,
    long checkpointTimeoutMs,
    long transactionTimeoutMs,
    long userHistoryTtlMs,
    long sessionStateTtlMs,
    int stateTtlCleanupEntries,
    Map<String, String> kafkaProperties,
    String inProcessModels,
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

  /** Thrown for --help: print {@link #usage()} and stop without an error. */
  public static final class HelpRequested extends Exception {
    private static final long serialVersionUID = 1L;

    HelpRequested() {
      super("help requested");
    }
  }

  private static final Map<String, String[]> OPTIONS = new LinkedHashMap<>();

  static {
    // name -> {default, help}
    OPTIONS.put("bootstrap-servers", new String[] {"127.0.0.1:9092", "Kafka bootstrap servers"});
    OPTIONS.put(
        "serve-address",
        new String[] {
          "127.0.0.1:50051",
          "gRPC address of ecom serve (host:port), or of several, comma-separated: calls go round"
              + " robin across the instances that answer"
        });
    OPTIONS.put(
        "serve-tls-ca-file",
        new String[] {
          null, "PEM CA certificates ecom serve's certificate must chain to; given: TLS to serve"
        });
    OPTIONS.put(
        "serve-tls-cert-file",
        new String[] {null, "PEM client certificate for mutual TLS (with --serve-tls-key-file)"});
    OPTIONS.put(
        "serve-tls-key-file", new String[] {null, "PEM (PKCS#8) key of --serve-tls-cert-file"});
    OPTIONS.put(
        "serve-token-file",
        new String[] {
          null, "file holding the bearer token ecom serve requires (its --token-file)"
        });
    OPTIONS.put(
        "kafka-properties-file",
        new String[] {
          null,
          "Java properties file of Kafka client settings for every source and sink (TLS, SASL;"
              + " read where the job is submitted; use Kafka's config providers, e.g."
              + " ${file:/path:key}, to keep secrets out of the job)"
        });
    OPTIONS.put("group-id", new String[] {"ecom-flink", "Kafka consumer group of the source"});
    OPTIONS.put("raw-topic", new String[] {Topics.RAW, "topic to read raw events from"});
    OPTIONS.put("enriched-topic", new String[] {Topics.ENRICHED, "topic for enriched events"});
    OPTIONS.put("invalid-topic", new String[] {Topics.INVALID, "topic for rejected records"});
    OPTIONS.put(
        "checkpoint-interval-ms", new String[] {"2000", "checkpoint (and commit) interval"});
    OPTIONS.put(
        "checkpoint-timeout-ms",
        new String[] {"120000", "a checkpoint taking longer than this counts as failed"});
    OPTIONS.put(
        "tolerable-checkpoint-failures",
        new String[] {"3", "failed checkpoints in a row the job rides out before it restarts"});
    OPTIONS.put(
        "transaction-timeout-ms",
        new String[] {
          "600000",
          "Kafka transaction timeout of the exactly-once sinks: above checkpoint interval +"
              + " checkpoint timeout, at most the brokers' transaction.max.timeout.ms"
              + " (checked at start)"
        });
    OPTIONS.put(
        "restart-attempts",
        new String[] {
          "-1",
          "fixed-delay restarts before the job fails; -1 leaves restarts to the cluster's"
              + " restart-strategy"
        });
    OPTIONS.put(
        "restart-delay-ms", new String[] {"5000", "delay between restarts (--restart-attempts)"});
    OPTIONS.put(
        "buffer-timeout-ms",
        new String[] {"5", "longest a record waits in a network buffer between tasks"});
    OPTIONS.put(
        "guard-timeout-ms", new String[] {"1000", "Guard answer timeout before the fallback"});
    OPTIONS.put("guard-capacity", new String[] {"256", "events in flight to Guard per task"});
    OPTIONS.put(
        "score-timeout-ms", new String[] {"1000", "Score answer timeout before the fallback"});
    OPTIONS.put("score-capacity", new String[] {"256", "events in flight to Score per task"});
    OPTIONS.put("score-top-k", new String[] {"3", "SHAP reasons per score (0: none, cheaper)"});
    OPTIONS.put(
        "score-reasons-every",
        new String[] {
          "1",
          "SHAP reasons for 1 scored event in this many (chosen by a hash of the event id, so a"
              + " replay chooses the same), the rest scored without: reasons are a third of serve's"
              + " CPU"
        });
    OPTIONS.put(
        "recommend-timeout-ms",
        new String[] {"1000", "Recommend answer timeout before the fallback"});
    OPTIONS.put(
        "recommend-capacity", new String[] {"256", "events in flight to Recommend per task"});
    OPTIONS.put("recommend-k", new String[] {"5", "products recommended per event"});
    OPTIONS.put(
        "recommend-kinds",
        new String[] {
          "product_view,add_to_cart", "event kinds that get recommendations (comma-separated)"
        });
    OPTIONS.put("rpc-batch-size", new String[] {"64", "events per batch call to ecom serve"});
    OPTIONS.put(
        "rpc-batch-max-delay-ms",
        new String[] {"2", "longest an event waits for its serve batch to fill"});
    OPTIONS.put(
        "max-record-bytes",
        new String[] {
          "16384",
          "larger raw records are rejected unread (OVERSIZE_RECORD); also the most of a record's"
              + " bytes a dead letter keeps"
        });
    OPTIONS.put(
        "max-clock-lead-ms",
        new String[] {
          "5000",
          "an event time further ahead of the clock when read never moves the watermark (a skewed"
              + " client clock); must be below --max-out-of-order-ms"
        });
    OPTIONS.put(
        "producer-max-request-bytes",
        new String[] {
          "1048576",
          "max.request.size of the job's Kafka producers; must exceed --max-record-bytes by 64 KiB"
        });
    OPTIONS.put(
        "ip-hash-key-file",
        new String[] {
          null,
          "file holding the HMAC key of ip_hash, read on each TaskManager (else $"
              + IpHashKey.ENV
              + " there); never the key itself: arguments show in the Flink UI"
        });
    OPTIONS.put(
        "allow-dev-ip-hash-key",
        new String[] {
          "false",
          "development only: with no key given, hash IPs with a built-in, guessable key instead"
              + " of refusing to start"
        });
    OPTIONS.put(
        "in-process-models",
        new String[] {
          null,
          "models directory (ecom serve's --models-dir, on every TaskManager host): Score and"
              + " Recommend run inside the TaskManager over JNI from its CURRENT model, reloaded"
              + " within seconds when CURRENT moves, instead of calling ecom serve (Guard still"
              + " does: it needs Redis). Needs libecom_jni_serve.so and libxgboost.so.3 on"
              + " java.library.path"
        });
    OPTIONS.put(
        "pass-through",
        new String[] {
          "false",
          "benchmarks only: every raw record parsed and written on with none of the job's work"
              + " (no validation rules, sessions, serve calls or metrics): the floor the runtime"
              + " sets (ecom bench e2e --design floor)"
        });
    OPTIONS.put(
        "transactional-id-prefix",
        new String[] {"ecom-job", "prefix of the Kafka sinks' transactional ids"});
    OPTIONS.put("parallelism", new String[] {null, "job parallelism (default: the cluster's)"});
    OPTIONS.put("batch-size", new String[] {"256", "records per native validate/LSH call"});
    OPTIONS.put(
        "batch-max-delay-ms", new String[] {"5", "longest a record waits for its batch to fill"});
    OPTIONS.put("lsh-perm", new String[] {"32", "MinHash permutations (as the model was trained)"});
    OPTIONS.put("lsh-bands", new String[] {"8", "LSH bands; must divide --lsh-perm"});
    OPTIONS.put("catalog-topic", new String[] {Topics.CATALOG, "compacted topic of products"});
    OPTIONS.put("sessions-topic", new String[] {Topics.SESSIONS, "topic for closed sessions"});
    OPTIONS.put(
        "max-out-of-order-ms",
        new String[] {"60000", "watermark bound: how far behind the newest event one may be"});
    OPTIONS.put(
        "idle-timeout-ms",
        new String[] {
          "0",
          "a partition quiet this long stops holding the watermark back; 0 = never (see README)"
        });
    OPTIONS.put(
        "allowed-lateness-ms",
        new String[] {"0", "events this far behind the watermark are still accepted"});
    OPTIONS.put("session-gap-ms", new String[] {"1800000", "event-time gap that closes a session"});
    OPTIONS.put(
        "user-history-ttl-ms",
        new String[] {
          "7776000000",
          "a user's history (earlier sessions) is forgotten this long after their last event"
              + " (processing time; 0 keeps it forever)"
        });
    OPTIONS.put(
        "session-state-ttl-ms",
        new String[] {
          "604800000",
          "an open session's state (features, bookkeeping, the event ids that find duplicates) is"
              + " dropped this long after its last event (processing time; 0 never): a safety net"
              + " for sessions the watermark never closes"
        });
    OPTIONS.put(
        "state-ttl-cleanup-entries",
        new String[] {
          String.valueOf(StateTtl.DEFAULT_CLEANUP_ENTRIES),
          "state entries checked for expiry on each state access of the user and session steps"
              + " (Flink's default 5; 0: expired entries leave at restore or when read)"
        });
    OPTIONS.put("metrics-topic", new String[] {Topics.METRICS, "topic for per-minute DP metrics"});
    OPTIONS.put(
        "dp-epsilon", new String[] {"0.5", "ε of each noisy metric value (4 per window record)"});
    OPTIONS.put(
        "dp-revenue-upper-cents",
        new String[] {"250000", "one purchase's revenue is clamped to this before noise"});
    OPTIONS.put(
        "catalog-wait-ms",
        new String[] {"30000", "longest events wait for the first catalog record at start"});
  }

  public JobConfig {
    Objects.requireNonNull(bootstrapServers, "bootstrapServers");
    Objects.requireNonNull(serveAddress, "serveAddress");
    dev.ecom.flink.serve.ServeAddresses.parse(serveAddress);
    Objects.requireNonNull(serveSecurity, "serveSecurity");
    Objects.requireNonNull(ipHashKey, "ipHashKey");
    positive("checkpoint-interval-ms", checkpointIntervalMs);
    positive("checkpoint-timeout-ms", checkpointTimeoutMs);
    positive("transaction-timeout-ms", transactionTimeoutMs);
    if (transactionTimeoutMs <= checkpointIntervalMs + checkpointTimeoutMs) {
      throw new IllegalArgumentException(
          "--transaction-timeout-ms "
              + transactionTimeoutMs
              + " must be above --checkpoint-interval-ms "
              + checkpointIntervalMs
              + " + --checkpoint-timeout-ms "
              + checkpointTimeoutMs
              + ": a transaction stays open from one checkpoint until the next completes, and"
              + " Kafka aborting it would lose what it holds");
    }
    if (tolerableCheckpointFailures < 0) {
      throw new IllegalArgumentException(
          "--tolerable-checkpoint-failures: " + tolerableCheckpointFailures + " must be >= 0");
    }
    if (restartAttempts < -1) {
      throw new IllegalArgumentException(
          "--restart-attempts: " + restartAttempts + " must be >= 0, or -1 for the cluster's");
    }
    positive("restart-delay-ms", restartDelayMs);
    positive("buffer-timeout-ms", bufferTimeoutMs);
    positive("guard-timeout-ms", guardTimeoutMs);
    positive("guard-capacity", guardCapacity);
    positive("score-timeout-ms", scoreTimeoutMs);
    positive("score-capacity", scoreCapacity);
    if (scoreReasonsEvery < 1) {
      throw new IllegalArgumentException(
          "--score-reasons-every: " + scoreReasonsEvery + " must be >= 1 (1: every event)");
    }
    if (scoreTopK < 0) {
      throw new IllegalArgumentException("--score-top-k: " + scoreTopK + " must be >= 0");
    }
    positive("recommend-timeout-ms", recommendTimeoutMs);
    positive("recommend-capacity", recommendCapacity);
    positive("recommend-k", recommendK);
    positive("rpc-batch-size", rpcBatchSize);
    if (rpcBatchSize > SERVE_MAX_BATCH) {
      throw new IllegalArgumentException(
          "--rpc-batch-size "
              + rpcBatchSize
              + " is above ecom serve's batch limit of "
              + SERVE_MAX_BATCH
              + ": every batch call would be refused");
    }
    positive("max-record-bytes", maxRecordBytes);
    positive("producer-max-request-bytes", producerMaxRequestBytes);
    if ((long) maxRecordBytes + RECORD_OVERHEAD_BYTES > producerMaxRequestBytes) {
      throw new IllegalArgumentException(
          "--max-record-bytes "
              + maxRecordBytes
              + " leaves too little room under --producer-max-request-bytes "
              + producerMaxRequestBytes
              + ": an enriched event or a dead letter needs up to "
              + RECORD_OVERHEAD_BYTES
              + " bytes more than the raw record, and a record its producer refuses would stop"
              + " the job");
    }
    positive("rpc-batch-max-delay-ms", rpcBatchMaxDelayMs);
    kinds("recommend-kinds", recommendKinds);
    positive("batch-size", batchSize);
    positive("batch-max-delay-ms", batchMaxDelayMs);
    positive("lsh-perm", lshPerm);
    positive("lsh-bands", lshBands);
    if (lshPerm % lshBands != 0) {
      throw new IllegalArgumentException(
          "--lsh-perm " + lshPerm + " must be a multiple of --lsh-bands " + lshBands);
    }
    Objects.requireNonNull(catalogTopic, "catalogTopic");
    Objects.requireNonNull(sessionsTopic, "sessionsTopic");
    positive("max-out-of-order-ms", maxOutOfOrderMs);
    if (maxClockLeadMs < 0 || maxClockLeadMs >= maxOutOfOrderMs) {
      throw new IllegalArgumentException(
          "--max-clock-lead-ms "
              + maxClockLeadMs
              + " must be >= 0 and below --max-out-of-order-ms "
              + maxOutOfOrderMs
              + ": otherwise one event from a fast clock could make on-time events late");
    }
    if (idleTimeoutMs < 0) {
      throw new IllegalArgumentException(
          "--idle-timeout-ms: " + idleTimeoutMs + " must be >= 0 (0 = partitions never idle)");
    }
    if (allowedLatenessMs < 0) {
      throw new IllegalArgumentException(
          "--allowed-lateness-ms: " + allowedLatenessMs + " must be >= 0");
    }
    positive("session-gap-ms", sessionGapMs);
    if (userHistoryTtlMs < 0) {
      throw new IllegalArgumentException(
          "--user-history-ttl-ms: " + userHistoryTtlMs + " must be >= 0 (0 keeps it forever)");
    }
    if (sessionStateTtlMs < 0) {
      throw new IllegalArgumentException(
          "--session-state-ttl-ms: "
              + sessionStateTtlMs
              + " must be >= 0 (0 keeps it until close)");
    }
    if (stateTtlCleanupEntries < 0) {
      throw new IllegalArgumentException(
          "--state-ttl-cleanup-entries: " + stateTtlCleanupEntries + " must be >= 0");
    }
    if (sessionStateTtlMs > 0 && sessionStateTtlMs <= sessionGapMs) {
      throw new IllegalArgumentException(
          "--session-state-ttl-ms "
              + sessionStateTtlMs
              + " must be above --session-gap-ms "
              + sessionGapMs
              + ": an open session's state would expire before the gap that closes it");
    }
    // Duplicates are found within the open session; an event that could arrive after its session
    // closed must therefore be late, or a retried copy would open a second session.
    if (allowedLatenessMs >= sessionGapMs) {
      throw new IllegalArgumentException(
          "--allowed-lateness-ms "
              + allowedLatenessMs
              + " must be below --session-gap-ms "
              + sessionGapMs
              + ": a copy of an event whose session has closed must be rejected as late, not"
              + " start a new session");
    }
    positive("catalog-wait-ms", catalogWaitMs);
    Objects.requireNonNull(metricsTopic, "metricsTopic");
    if (!(dpEpsilon > 0) || Double.isInfinite(dpEpsilon)) {
      throw new IllegalArgumentException("--dp-epsilon: " + dpEpsilon + " must be > 0 and finite");
    }
    positive("dp-revenue-upper-cents", dpRevenueUpperCents);
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
    Map<String, String> given = given(args);
    String parallelism = given.get("parallelism");
    return new JobConfig(
        get(given, "bootstrap-servers"),
        get(given, "serve-address"),
        new ServeSecurity(
            given.get("serve-tls-ca-file"),
            given.get("serve-tls-cert-file"),
            given.get("serve-tls-key-file"),
            given.get("serve-token-file")),
        get(given, "group-id"),
        get(given, "raw-topic"),
        get(given, "enriched-topic"),
        get(given, "invalid-topic"),
        number(given, "checkpoint-interval-ms"),
        number(given, "buffer-timeout-ms"),
        number(given, "guard-timeout-ms"),
        (int) number(given, "guard-capacity"),
        new IpHashKey(given.get("ip-hash-key-file"), bool(given, "allow-dev-ip-hash-key")),
        get(given, "transactional-id-prefix"),
        parallelism == null ? 0 : (int) number(given, "parallelism"),
        (int) number(given, "batch-size"),
        number(given, "batch-max-delay-ms"),
        (int) number(given, "lsh-perm"),
        (int) number(given, "lsh-bands"),
        get(given, "catalog-topic"),
        get(given, "sessions-topic"),
        number(given, "max-out-of-order-ms"),
        number(given, "idle-timeout-ms"),
        number(given, "allowed-lateness-ms"),
        number(given, "session-gap-ms"),
        number(given, "catalog-wait-ms"),
        get(given, "metrics-topic"),
        decimal(given, "dp-epsilon"),
        number(given, "dp-revenue-upper-cents"),
        number(given, "score-timeout-ms"),
        (int) number(given, "score-capacity"),
        (int) number(given, "score-top-k"),
        (int) number(given, "score-reasons-every"),
        number(given, "recommend-timeout-ms"),
        (int) number(given, "recommend-capacity"),
        (int) number(given, "recommend-k"),
        get(given, "recommend-kinds"),
        (int) number(given, "rpc-batch-size"),
        number(given, "rpc-batch-max-delay-ms"),
        (int) number(given, "max-record-bytes"),
        number(given, "max-clock-lead-ms"),
        (int) number(given, "producer-max-request-bytes"),
        (int) number(given, "restart-attempts"),
        number(given, "restart-delay-ms"),
        (int) number(given, "tolerable-checkpoint-failures"),
        number(given, "checkpoint-timeout-ms"),
        number(given, "transaction-timeout-ms"),
        number(given, "user-history-ttl-ms"),
        number(given, "session-state-ttl-ms"),
        (int) number(given, "state-ttl-cleanup-entries"),
        kafkaProperties(given.get("kafka-properties-file")),
        given.get("in-process-models"),
        bool(given, "pass-through"));
  }

  /**
   * Every option with the value it takes for {@code args} (given, else its default; options without
   * either are left out), by name: what the job registers with Flink so its UI shows them. No
   * option holds a secret (keys and tokens are read from files named here).
   */
  public static Map<String, String> effectiveOptions(String[] args) throws HelpRequested {
    Map<String, String> out = new java.util.TreeMap<>();
    OPTIONS.forEach(
        (name, spec) -> {
          if (spec[0] != null) {
            out.put(name, spec[0]);
          }
        });
    out.putAll(given(args));
    return out;
  }

  /** The options given in {@code args}, checked to be known and to have a value. */
  private static Map<String, String> given(String[] args) throws HelpRequested {
    Map<String, String> given = new LinkedHashMap<>();
    for (int i = 0; i < args.length; i++) {
      String arg = args[i];
      if (arg.equals("--help") || arg.equals("-h")) {
        throw new HelpRequested();
      }
      if (!arg.startsWith("--")) {
        throw new IllegalArgumentException("unexpected argument '" + arg + "'");
      }
      String name = arg.substring(2);
      String value;
      int eq = name.indexOf('=');
      if (eq >= 0) {
        value = name.substring(eq + 1);
        name = name.substring(0, eq);
      } else if (i + 1 < args.length) {
        value = args[++i];
      } else {
        throw new IllegalArgumentException("--" + name + ": missing value");
      }
      if (name.equals("ip-hash-key")) {
        throw new IllegalArgumentException(
            "--ip-hash-key is not accepted: a key in the arguments shows in the Flink UI and in"
                + " process lists. Put it in a file (--ip-hash-key-file) or in $"
                + IpHashKey.ENV);
      }
      if (!OPTIONS.containsKey(name)) {
        throw new IllegalArgumentException("unknown option --" + name);
      }
      given.put(name, value);
    }
    return given;
  }

  /** One line per option with its default. */
  public static String usage() {
    StringBuilder sb = new StringBuilder("Usage: flink run ecom-flink-job.jar [options]\n");
    sb.append("Reads raw events and the catalog from Kafka; validates, enriches and sessionizes\n");
    sb.append(
        "the events, asks ecom serve over gRPC, and writes enriched and invalid events and\n");
    sb.append("closed sessions and per-minute DP metrics to Kafka exactly once.\n\nOptions:\n");
    for (Map.Entry<String, String[]> o : OPTIONS.entrySet()) {
      String def = o.getValue()[0];
      sb.append(String.format("  --%-26s %s", o.getKey() + " <value>", o.getValue()[1]));
      if (def != null) {
        sb.append(" [").append(def).append(']');
      }
      sb.append('\n');
    }
    sb.append(String.format("  --%-26s %s%n", "help", "print this and exit"));
    return sb.toString();
  }

  private static String get(Map<String, String> given, String name) {
    String v = given.getOrDefault(name, OPTIONS.get(name)[0]);
    if (v == null || v.isBlank()) {
      throw new IllegalArgumentException("--" + name + ": must not be empty");
    }
    return v;
  }

  /** The properties of {@code file} (none when null); bootstrap.servers comes from its flag. */
  private static Map<String, String> kafkaProperties(String file) {
    Map<String, String> out = new java.util.TreeMap<>();
    if (file == null) {
      return out;
    }
    java.util.Properties p = new java.util.Properties();
    try (java.io.Reader r =
        java.nio.file.Files.newBufferedReader(
            java.nio.file.Path.of(file), java.nio.charset.StandardCharsets.UTF_8)) {
      p.load(r);
    } catch (java.io.IOException e) {
      throw new IllegalArgumentException(
          "--kafka-properties-file: cannot read " + file + ": " + e.getMessage(), e);
    }
    for (String k : p.stringPropertyNames()) {
      if (k.equals("bootstrap.servers")) {
        throw new IllegalArgumentException(
            "--kafka-properties-file: bootstrap.servers comes from --bootstrap-servers");
      }
      out.put(k, p.getProperty(k));
    }
    return out;
  }

  private static boolean bool(Map<String, String> given, String name) {
    String v = get(given, name).trim();
    if (!v.equals("true") && !v.equals("false")) {
      throw new IllegalArgumentException("--" + name + ": '" + v + "' is not true or false");
    }
    return v.equals("true");
  }

  private static long number(Map<String, String> given, String name) {
    String v = get(given, name);
    try {
      return Long.parseLong(v.trim());
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("--" + name + ": '" + v + "' is not a whole number");
    }
  }

  private static double decimal(Map<String, String> given, String name) {
    String v = get(given, name);
    try {
      return Double.parseDouble(v.trim());
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("--" + name + ": '" + v + "' is not a number");
    }
  }

  /** How the job calls Guard. */
  public ServeCallConfig guardCall() {
    return new ServeCallConfig(
        serveAddress,
        guardTimeoutMs,
        guardCapacity,
        rpcBatchSize,
        rpcBatchMaxDelayMs,
        serveSecurity);
  }

  /** How the job calls Score. */
  public ServeCallConfig scoreCall() {
    return new ServeCallConfig(
        serveAddress,
        scoreTimeoutMs,
        scoreCapacity,
        rpcBatchSize,
        rpcBatchMaxDelayMs,
        serveSecurity,
        inProcessModels);
  }

  /** How the job calls Recommend. */
  public ServeCallConfig recommendCall() {
    return new ServeCallConfig(
        serveAddress,
        recommendTimeoutMs,
        recommendCapacity,
        rpcBatchSize,
        rpcBatchMaxDelayMs,
        serveSecurity,
        inProcessModels);
  }

  /** The event kinds of --recommend-kinds. */
  public Set<EventKind> recommendKindSet() {
    return kinds("recommend-kinds", recommendKinds);
  }

  /** Parses "product_view,add_to_cart" into event kinds; an unknown name is an error. */
  private static Set<EventKind> kinds(String option, String names) {
    Objects.requireNonNull(names, option);
    Set<EventKind> out = EnumSet.noneOf(EventKind.class);
    for (String n : names.split(",")) {
      String name = n.trim();
      if (name.isEmpty()) {
        continue;
      }
      try {
        EventKind k = EventKind.valueOf("EVENT_KIND_" + name.toUpperCase(Locale.ROOT));
        if (k == EventKind.EVENT_KIND_UNSPECIFIED) {
          throw new IllegalArgumentException(name);
        }
        out.add(k);
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException(
            "--" + option + ": '" + name + "' is not an event kind (e.g. product_view, purchase)");
      }
    }
    return out;
  }

  private static void positive(String name, long value) {
    if (value <= 0) {
      throw new IllegalArgumentException("--" + name + ": " + value + " must be > 0");
    }
  }

  @Override
  public String toString() {
    // Never print the key.
    return "JobConfig{bootstrapServers="
        + bootstrapServers
        + ", kafkaProperties="
        + kafkaProperties.keySet()
        + ", serveAddress="
        + serveAddress
        + " ("
        + serveSecurity
        + ")"
        + (inProcessModels == null ? "" : ", inProcessModels=" + inProcessModels)
        + ", groupId="
        + groupId
        + ", topics="
        + rawTopic
        + " -> "
        + enrichedTopic
        + " | "
        + invalidTopic
        + " | "
        + sessionsTopic
        + " | "
        + metricsTopic
        + ", catalog="
        + catalogTopic
        + ", checkpointIntervalMs="
        + checkpointIntervalMs
        + ", checkpointTimeoutMs="
        + checkpointTimeoutMs
        + ", tolerableCheckpointFailures="
        + tolerableCheckpointFailures
        + ", transactionTimeoutMs="
        + transactionTimeoutMs
        + ", restartAttempts="
        + restartAttempts
        + ", restartDelayMs="
        + restartDelayMs
        + ", userHistoryTtlMs="
        + userHistoryTtlMs
        + ", sessionStateTtlMs="
        + sessionStateTtlMs
        + ", stateTtlCleanupEntries="
        + stateTtlCleanupEntries
        + ", bufferTimeoutMs="
        + bufferTimeoutMs
        + ", guardTimeoutMs="
        + guardTimeoutMs
        + ", guardCapacity="
        + guardCapacity
        + ", score="
        + scoreTimeoutMs
        + "ms/"
        + scoreCapacity
        + " top-"
        + scoreTopK
        + " every "
        + scoreReasonsEvery
        + ", recommend="
        + recommendTimeoutMs
        + "ms/"
        + recommendCapacity
        + " k="
        + recommendK
        + " on "
        + recommendKinds
        + ", rpcBatch="
        + rpcBatchSize
        + "/"
        + rpcBatchMaxDelayMs
        + "ms"
        + ", ipHashKey="
        + ipHashKey
        + ", transactionalIdPrefix="
        + transactionalIdPrefix
        + ", parallelism="
        + (parallelism == 0 ? "<cluster default>" : parallelism)
        + ", batchSize="
        + batchSize
        + ", batchMaxDelayMs="
        + batchMaxDelayMs
        + ", lsh="
        + lshPerm
        + "/"
        + lshBands
        + ", maxRecordBytes="
        + maxRecordBytes
        + " (producers "
        + producerMaxRequestBytes
        + ")"
        + ", watermark=max-"
        + maxOutOfOrderMs
        + "ms (clock lead "
        + maxClockLeadMs
        + "ms, idle "
        + idleTimeoutMs
        + "ms, lateness "
        + allowedLatenessMs
        + "ms), sessionGapMs="
        + sessionGapMs
        + ", catalogWaitMs="
        + catalogWaitMs
        + ", dp=ε"
        + dpEpsilon
        + " per value, revenue ≤ "
        + dpRevenueUpperCents
        + "}";
  }
}
