// Every option of the job's command line, each declared once, and how the arguments are read.
package dev.ecom.flink;

import dev.ecom.proto.v1.EventKind;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.Function;

/**
 * The job's options in the order the usage lists them. {@link JobConfig#parse} reads each into its
 * group; messages that relate two options name them through {@link JobOption#flag()}.
 */
public final class JobOptions {
  private JobOptions() {}

  /** Every option, in the order declared here, which is the usage's order. */
  private static final List<JobOption<?>> DECLARED = new ArrayList<>();

  private static <T> JobOption<T> add(JobOption<T> option) {
    DECLARED.add(option);
    return option;
  }

  private static <T> JobOption<T> add(
      String name, String defaultValue, String help, Function<String, T> read) {
    return add(new JobOption<>(name, defaultValue, help, read));
  }

  private static JobOption<String> text(String name, String defaultValue, String help) {
    return add(name, defaultValue, help, s -> s);
  }

  private static JobOption<Boolean> bool(String name, String defaultValue, String help) {
    return add(
        name,
        defaultValue,
        help,
        s -> {
          if (!s.equals("true") && !s.equals("false")) {
            throw new IllegalArgumentException("'" + s + "' is not true or false");
          }
          return s.equals("true");
        });
  }

  /** A whole number of at least {@code min}. */
  private static JobOption<Long> atLeast(long min, String name, String defaultValue, String help) {
    return add(name, defaultValue, help, s -> whole(s, min, help));
  }

  /** A whole number of at least {@code min} that fits an int. */
  private static JobOption<Integer> intAtLeast(
      int min, String name, String defaultValue, String help) {
    return add(
        name,
        defaultValue,
        help,
        s -> {
          long v = whole(s, min, help);
          if (v > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(v + " is too large");
          }
          return (int) v;
        });
  }

  private static long whole(String s, long min, String help) {
    long v;
    try {
      v = Long.parseLong(s);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("'" + s + "' is not a whole number");
    }
    if (v < min) {
      throw new IllegalArgumentException(
          v + (min == 1 ? " must be > 0" : " must be >= " + min) + " (" + help + ")");
    }
    return v;
  }

  /** A finite number above 0. */
  private static JobOption<Double> positiveDecimal(String name, String defaultValue, String help) {
    return add(
        name,
        defaultValue,
        help,
        s -> {
          double v;
          try {
            v = Double.parseDouble(s);
          } catch (NumberFormatException e) {
            throw new IllegalArgumentException("'" + s + "' is not a number");
          }
          if (!(v > 0) || Double.isInfinite(v)) {
            throw new IllegalArgumentException(v + " must be > 0 and finite");
          }
          return v;
        });
  }

  // Kafka
  static final JobOption<String> BOOTSTRAP_SERVERS =
      text("bootstrap-servers", "127.0.0.1:9092", "Kafka bootstrap servers");
  static final JobOption<Map<String, String>> KAFKA_PROPERTIES_FILE =
      add(
          "kafka-properties-file",
          null,
          "Java properties file of Kafka client settings for every source and sink (TLS, SASL;"
              + " read where the job is submitted; use Kafka's config providers, e.g."
              + " ${file:/path:key}, to keep secrets out of the job)",
          JobOptions::kafkaProperties);
  static final JobOption<String> GROUP_ID =
      text("group-id", "ecom-flink", "Kafka consumer group of the source");
  static final JobOption<String> RAW_TOPIC =
      text("raw-topic", Topics.RAW, "topic to read raw events from");
  static final JobOption<String> ENRICHED_TOPIC =
      text("enriched-topic", Topics.ENRICHED, "topic for enriched events");
  static final JobOption<String> INVALID_TOPIC =
      text("invalid-topic", Topics.INVALID, "topic for rejected records");
  static final JobOption<String> CATALOG_TOPIC =
      text("catalog-topic", Topics.CATALOG, "compacted topic of products");
  static final JobOption<String> SESSIONS_TOPIC =
      text("sessions-topic", Topics.SESSIONS, "topic for closed sessions");
  static final JobOption<String> METRICS_TOPIC =
      text("metrics-topic", Topics.METRICS, "topic for per-minute DP metrics");
  static final JobOption<String> QUALITY_TOPIC =
      text("quality-topic", Topics.QUALITY, "topic for each model version's live quality");
  static final JobOption<String> TRANSACTIONAL_ID_PREFIX =
      text("transactional-id-prefix", "ecom-job", "prefix of the Kafka sinks' transactional ids");
  static final JobOption<Long> TRANSACTION_TIMEOUT_MS =
      atLeast(
          1,
          "transaction-timeout-ms",
          "600000",
          "Kafka transaction timeout of the exactly-once sinks: above checkpoint interval +"
              + " checkpoint timeout, at most the brokers' transaction.max.timeout.ms"
              + " (checked at start)");
  static final JobOption<Integer> PRODUCER_MAX_REQUEST_BYTES =
      intAtLeast(
          1,
          "producer-max-request-bytes",
          "1048576",
          "max.request.size of the job's Kafka producers; must exceed --max-record-bytes by 64 KiB");

  // ecom serve
  static final JobOption<String> SERVE_ADDRESS =
      add(
          "serve-address",
          "127.0.0.1:50051",
          "gRPC address of ecom serve (host:port), or of several, comma-separated: calls go round"
              + " robin across the instances that answer",
          s -> {
            dev.ecom.flink.serve.ServeAddresses.parse(s);
            return s;
          });
  static final JobOption<String> SERVE_TLS_CA_FILE =
      text(
          "serve-tls-ca-file",
          null,
          "PEM CA certificates ecom serve's certificate must chain to; given: TLS to serve");
  static final JobOption<String> SERVE_TLS_CERT_FILE =
      text(
          "serve-tls-cert-file",
          null,
          "PEM client certificate for mutual TLS (with --serve-tls-key-file)");
  static final JobOption<String> SERVE_TLS_KEY_FILE =
      text("serve-tls-key-file", null, "PEM (PKCS#8) key of --serve-tls-cert-file");
  static final JobOption<String> SERVE_TOKEN_FILE =
      text(
          "serve-token-file",
          null,
          "file holding the bearer token ecom serve requires (its --token-file)");
  static final JobOption<Long> GUARD_TIMEOUT_MS =
      atLeast(1, "guard-timeout-ms", "1000", "Guard answer timeout before the fallback");
  static final JobOption<Integer> GUARD_CAPACITY =
      intAtLeast(1, "guard-capacity", "256", "events in flight to Guard per task");
  static final JobOption<Long> SCORE_TIMEOUT_MS =
      atLeast(1, "score-timeout-ms", "1000", "Score answer timeout before the fallback");
  static final JobOption<Integer> SCORE_CAPACITY =
      intAtLeast(1, "score-capacity", "256", "events in flight to Score per task");
  static final JobOption<Integer> SCORE_TOP_K =
      intAtLeast(0, "score-top-k", "3", "SHAP reasons per score (0: none, cheaper)");
  static final JobOption<Integer> SCORE_REASONS_EVERY =
      intAtLeast(
          1,
          "score-reasons-every",
          "1",
          "SHAP reasons for 1 scored event in this many (chosen by a hash of the event id, so a"
              + " replay chooses the same), the rest scored without: reasons are a third of serve's"
              + " CPU");
  static final JobOption<Long> RECOMMEND_TIMEOUT_MS =
      atLeast(1, "recommend-timeout-ms", "1000", "Recommend answer timeout before the fallback");
  static final JobOption<Integer> RECOMMEND_CAPACITY =
      intAtLeast(1, "recommend-capacity", "256", "events in flight to Recommend per task");
  static final JobOption<Integer> RECOMMEND_K =
      intAtLeast(1, "recommend-k", "5", "products recommended per event");
  static final JobOption<Set<EventKind>> RECOMMEND_KINDS =
      add(
          "recommend-kinds",
          "product_view,add_to_cart",
          "event kinds that get recommendations (comma-separated)",
          JobOptions::eventKinds);
  static final JobOption<Integer> RPC_BATCH_SIZE =
      intAtLeast(1, "rpc-batch-size", "64", "events per batch call to ecom serve");
  static final JobOption<Long> RPC_BATCH_MAX_DELAY_MS =
      atLeast(
          1, "rpc-batch-max-delay-ms", "2", "longest an event waits for its serve batch to fill");
  static final JobOption<String> IN_PROCESS_MODELS =
      text(
          "in-process-models",
          null,
          "models directory (ecom serve's --models-dir, on every TaskManager host): Score and"
              + " Recommend run inside the TaskManager over JNI from its CURRENT model, reloaded"
              + " within seconds when CURRENT moves, instead of calling ecom serve (Guard still"
              + " does: it needs Redis). Needs libecom_jni_serve.so and libxgboost.so.3 on"
              + " java.library.path");

  // Checkpoints and restarts
  static final JobOption<Long> CHECKPOINT_INTERVAL_MS =
      atLeast(1, "checkpoint-interval-ms", "2000", "checkpoint (and commit) interval");
  static final JobOption<Long> CHECKPOINT_TIMEOUT_MS =
      atLeast(
          1,
          "checkpoint-timeout-ms",
          "120000",
          "a checkpoint taking longer than this counts as failed");
  static final JobOption<Integer> TOLERABLE_CHECKPOINT_FAILURES =
      intAtLeast(
          0,
          "tolerable-checkpoint-failures",
          "3",
          "failed checkpoints in a row the job rides out before it restarts");
  static final JobOption<Integer> RESTART_ATTEMPTS =
      intAtLeast(
          -1,
          "restart-attempts",
          "-1",
          "fixed-delay restarts before the job fails; -1 leaves restarts to the cluster's"
              + " restart-strategy");
  static final JobOption<Long> RESTART_DELAY_MS =
      atLeast(1, "restart-delay-ms", "5000", "delay between restarts (--restart-attempts)");

  // Reading and validating raw records
  static final JobOption<Integer> MAX_RECORD_BYTES =
      intAtLeast(
          1,
          "max-record-bytes",
          "16384",
          "larger raw records are rejected unread (OVERSIZE_RECORD); also the most of a record's"
              + " bytes a dead letter keeps");
  static final JobOption<Integer> BATCH_SIZE =
      intAtLeast(1, "batch-size", "256", "records per native validate/LSH call");
  static final JobOption<Long> BATCH_MAX_DELAY_MS =
      atLeast(1, "batch-max-delay-ms", "5", "longest a record waits for its batch to fill");
  static final JobOption<Integer> LSH_PERM =
      intAtLeast(1, "lsh-perm", "32", "MinHash permutations (as the model was trained)");
  static final JobOption<Integer> LSH_BANDS =
      intAtLeast(1, "lsh-bands", "8", "LSH bands; must divide --lsh-perm");
  static final JobOption<String> IP_HASH_KEY_FILE =
      text(
          "ip-hash-key-file",
          null,
          "file holding the HMAC key of ip_hash, read on each TaskManager (else $"
              + IpHashKey.ENV
              + " there); never the key itself: arguments show in the Flink UI");
  static final JobOption<Boolean> ALLOW_DEV_IP_HASH_KEY =
      bool(
          "allow-dev-ip-hash-key",
          "false",
          "development only: with no key given, hash IPs with a built-in, guessable key instead"
              + " of refusing to start");

  // Event time and sessions
  static final JobOption<Long> MAX_OUT_OF_ORDER_MS =
      atLeast(
          1,
          "max-out-of-order-ms",
          "60000",
          "watermark bound: how far behind the newest event one may be");
  static final JobOption<Long> MAX_CLOCK_LEAD_MS =
      atLeast(
          0,
          "max-clock-lead-ms",
          "5000",
          "an event time further ahead of the clock when read never moves the watermark (a skewed"
              + " client clock); must be below --max-out-of-order-ms");
  static final JobOption<Long> IDLE_TIMEOUT_MS =
      atLeast(
          0,
          "idle-timeout-ms",
          "0",
          "a partition quiet this long stops holding the watermark back; 0 = never (see README)");
  static final JobOption<Long> ALLOWED_LATENESS_MS =
      atLeast(
          0, "allowed-lateness-ms", "0", "events this far behind the watermark are still accepted");
  static final JobOption<Long> SESSION_GAP_MS =
      atLeast(1, "session-gap-ms", "1800000", "event-time gap that closes a session");
  static final JobOption<Long> QUALITY_WINDOW_MS =
      atLeast(
          1,
          "quality-window-ms",
          "600000",
          "event-time window of the live model quality (sessions count where they close)");
  static final JobOption<Long> CATALOG_WAIT_MS =
      atLeast(
          1,
          "catalog-wait-ms",
          "30000",
          "longest events wait for the first catalog record at start");

  // State retention
  static final JobOption<Long> USER_HISTORY_TTL_MS =
      atLeast(
          0,
          "user-history-ttl-ms",
          "7776000000",
          "a user's history (earlier sessions) is forgotten this long after their last event"
              + " (processing time; 0 keeps it forever)");
  static final JobOption<Long> SESSION_STATE_TTL_MS =
      atLeast(
          0,
          "session-state-ttl-ms",
          "604800000",
          "an open session's state (features, bookkeeping, the event ids that find duplicates) is"
              + " dropped this long after its last event (processing time; 0 never): a safety net"
              + " for sessions the watermark never closes");
  static final JobOption<Integer> STATE_TTL_CLEANUP_ENTRIES =
      intAtLeast(
          0,
          "state-ttl-cleanup-entries",
          String.valueOf(StateTtl.DEFAULT_CLEANUP_ENTRIES),
          "state entries checked for expiry on each state access of the user and session steps"
              + " (Flink's default 5; 0: expired entries leave at restore or when read)");

  // Differential privacy of the metrics
  static final JobOption<Double> DP_EPSILON =
      positiveDecimal("dp-epsilon", "0.5", "ε of each noisy metric value (4 per window record)");
  static final JobOption<Long> DP_REVENUE_UPPER_CENTS =
      atLeast(
          1,
          "dp-revenue-upper-cents",
          "250000",
          "one purchase's revenue is clamped to this before noise");

  // The runtime
  static final JobOption<Integer> PARALLELISM =
      intAtLeast(0, "parallelism", null, "job parallelism (default or 0: the cluster's)");
  static final JobOption<Long> BUFFER_TIMEOUT_MS =
      atLeast(
          1, "buffer-timeout-ms", "5", "longest a record waits in a network buffer between tasks");
  static final JobOption<Boolean> PASS_THROUGH =
      bool(
          "pass-through",
          "false",
          "benchmarks only: every raw record parsed and written on with none of the job's work"
              + " (no validation rules, sessions, serve calls or metrics): the floor the runtime"
              + " sets (ecom bench e2e --design floor)");

  /** Thrown for --help: print {@link #usage()} and stop without an error. */
  public static final class HelpRequested extends Exception {
    private static final long serialVersionUID = 1L;

    HelpRequested() {
      super("help requested");
    }
  }

  /** The arguments as given, by option, each checked to be an option and to have a value. */
  public record Given(Map<String, String> texts) {
    /** The option's value: as given, else its default; null when it has neither. */
    public <T> T get(JobOption<T> option) {
      return option.read(texts.getOrDefault(option.name(), option.defaultValue()));
    }
  }

  /**
   * Reads {@code --name value} and {@code --name=value} arguments.
   *
   * @throws IllegalArgumentException naming the bad argument and what was expected
   * @throws HelpRequested for --help or -h
   */
  public static Given given(String[] args) throws HelpRequested {
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
                + " process lists. Put it in a file ("
                + IP_HASH_KEY_FILE.flag()
                + ") or in $"
                + IpHashKey.ENV);
      }
      String known = name;
      if (DECLARED.stream().noneMatch(o -> o.name().equals(known))) {
        throw new IllegalArgumentException("unknown option --" + name);
      }
      given.put(name, value);
    }
    return new Given(given);
  }

  /**
   * Every option with the value it takes for {@code args} (given, else its default; options without
   * either are left out), by name: what the job registers with Flink so its UI shows them. No
   * option holds a secret (keys and tokens are read from files named here).
   */
  public static Map<String, String> effective(String[] args) throws HelpRequested {
    Map<String, String> out = new TreeMap<>();
    for (JobOption<?> o : DECLARED) {
      if (o.defaultValue() != null) {
        out.put(o.name(), o.defaultValue());
      }
    }
    out.putAll(given(args).texts());
    return out;
  }

  /** One line per option with its default. */
  public static String usage() {
    StringBuilder sb = new StringBuilder("Usage: flink run ecom-flink-job.jar [options]\n");
    sb.append("Reads raw events and the catalog from Kafka; validates, enriches and sessionizes\n");
    sb.append(
        "the events, asks ecom serve over gRPC, and writes enriched and invalid events and\n");
    sb.append("closed sessions and per-minute DP metrics to Kafka exactly once.\n\nOptions:\n");
    for (JobOption<?> o : DECLARED) {
      sb.append(String.format("  --%-26s %s", o.name() + " <value>", o.help()));
      if (o.defaultValue() != null) {
        sb.append(" [").append(o.defaultValue()).append(']');
      }
      sb.append('\n');
    }
    sb.append(String.format("  --%-26s %s%n", "help", "print this and exit"));
    return sb.toString();
  }

  /** The properties of {@code file}; bootstrap.servers comes from its own option. */
  private static Map<String, String> kafkaProperties(String file) {
    java.util.Properties p = new java.util.Properties();
    try (java.io.Reader r =
        java.nio.file.Files.newBufferedReader(
            java.nio.file.Path.of(file), java.nio.charset.StandardCharsets.UTF_8)) {
      p.load(r);
    } catch (java.io.IOException e) {
      throw new IllegalArgumentException("cannot read " + file + ": " + e.getMessage(), e);
    }
    Map<String, String> out = new TreeMap<>();
    for (String k : p.stringPropertyNames()) {
      if (k.equals("bootstrap.servers")) {
        throw new IllegalArgumentException(
            "bootstrap.servers comes from " + BOOTSTRAP_SERVERS.flag());
      }
      out.put(k, p.getProperty(k));
    }
    return out;
  }

  /** "product_view,add_to_cart" as event kinds; an unknown name is an error. */
  private static Set<EventKind> eventKinds(String names) {
    Set<EventKind> out = EnumSet.noneOf(EventKind.class);
    for (String n : names.split(",")) {
      String name = n.trim();
      if (name.isEmpty()) {
        continue;
      }
      EventKind k;
      try {
        k = EventKind.valueOf("EVENT_KIND_" + name.toUpperCase(Locale.ROOT));
      } catch (IllegalArgumentException e) {
        k = EventKind.EVENT_KIND_UNSPECIFIED;
      }
      if (k == EventKind.EVENT_KIND_UNSPECIFIED) {
        throw new IllegalArgumentException(
            "'" + name + "' is not an event kind (e.g. product_view, purchase)");
      }
      out.add(k);
    }
    return out;
  }
}
