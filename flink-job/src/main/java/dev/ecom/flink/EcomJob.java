// Entry point of the job jar: parses arguments and wires Kafka around EcomPipeline.
package dev.ecom.flink;

import dev.ecom.flink.kafka.ProtoRecordSerializer;
import dev.ecom.flink.kafka.RawRecordDeserializer;
import java.io.IOException;
import java.io.InputStream;
import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.core.execution.CheckpointingMode;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.util.ParameterTool;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.consumer.OffsetResetStrategy;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.config.ConfigResource;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** {@code flink run ecom-flink-job.jar [options]}; see {@link JobOptions#usage()}. */
public final class EcomJob {
  private static final Logger LOG = LoggerFactory.getLogger(EcomJob.class);

  /** The job's name in the Flink UI and REST API. */
  public static final String JOB_NAME = "ecom";

  private EcomJob() {}

  public static void main(String[] args) throws Exception {
    JobConfig cfg;
    try {
      cfg = JobConfig.parse(args);
    } catch (JobOptions.HelpRequested h) {
      System.out.println(JobOptions.usage());
      return;
    } catch (IllegalArgumentException e) {
      System.err.println("ecom job: " + e.getMessage() + "\n\n" + JobOptions.usage());
      throw e;
    }
    if (!cfg.intake().ipHashKey().givenOrAllowed(System::getenv)) {
      String why =
          "no IP-hash key: put a secret key in a file the TaskManagers can read and pass"
              + " --ip-hash-key-file FILE, or set $"
              + IpHashKey.ENV
              + " (development only: --allow-dev-ip-hash-key true uses a built-in, guessable"
              + " key)";
      System.err.println("ecom job: " + why);
      throw new IllegalArgumentException(why);
    }
    LOG.info("Starting {} {} with {}", JOB_NAME, version(), cfg);
    checkTransactionTimeout(cfg);

    StreamExecutionEnvironment env = buildJob(cfg);
    // The Flink UI shows these under the job's configuration.
    Map<String, String> shown = JobOptions.effective(args);
    shown.put("ecom.version", version());
    env.getConfig().setGlobalJobParameters(ParameterTool.fromMap(shown));
    env.execute(JOB_NAME);
  }

  /** "0.1.0 (commit abc…)": the jar's version and the git commit it was built from. */
  static String version() {
    Properties p = new Properties();
    try (InputStream in = EcomJob.class.getResourceAsStream("/ecom-job.properties")) {
      if (in != null) {
        p.load(in);
      }
    } catch (IOException e) {
      // Only the log line and the UI lose it.
    }
    return p.getProperty("version", "unknown")
        + " (commit "
        + p.getProperty("commit", "unknown")
        + ")";
  }

  /** The whole job, Kafka included, ready to execute. */
  @SuppressWarnings("deprecation") // OffsetResetStrategy is what this connector version takes.
  static StreamExecutionEnvironment buildJob(JobConfig cfg) {
    StreamExecutionEnvironment env = environment(cfg);
    DataStream<RawRecord> raw =
        env.fromSource(
                // Resume where the group left off; a new group starts from the beginning.
                source(
                    cfg,
                    cfg.kafka().topics().raw(),
                    "",
                    OffsetsInitializer.committedOffsets(OffsetResetStrategy.EARLIEST),
                    false),
                RawEventTime.strategy(cfg),
                "raw-source")
            .uid("raw-source")
            .name("raw-source");
    EcomPipeline.Sinks sinks =
        new EcomPipeline.Sinks(
            kafkaSink(
                cfg, ProtoRecordSerializer.enriched(cfg.kafka().topics().enriched()), "enriched"),
            kafkaSink(
                cfg, ProtoRecordSerializer.invalid(cfg.kafka().topics().invalid()), "invalid"),
            kafkaSink(
                cfg, ProtoRecordSerializer.sessions(cfg.kafka().topics().sessions()), "sessions"),
            kafkaSink(
                cfg, ProtoRecordSerializer.metrics(cfg.kafka().topics().metrics()), "metrics"),
            kafkaSink(
                cfg, ProtoRecordSerializer.quality(cfg.kafka().topics().quality()), "quality"));
    if (cfg.passThrough()) {
      EcomPipeline.buildPassThrough(raw, sinks, cfg);
    } else {
      DataStream<RawRecord> catalog =
          env.fromSource(
                  // The whole catalog from the start of its compacted topic on a fresh start; on a
                  // restore, from the checkpointed offsets (the catalog read so far is in state).
                  source(
                      cfg,
                      cfg.kafka().topics().catalog(),
                      "-catalog",
                      OffsetsInitializer.earliest(),
                      true),
                  WatermarkStrategy.noWatermarks(),
                  "catalog-source")
              .uid("catalog-source")
              .name("catalog-source");
      EcomPipeline.build(raw, catalog, sinks, cfg);
    }
    return env;
  }

  static StreamExecutionEnvironment environment(JobConfig cfg) {
    Configuration conf = new Configuration();
    // Restarts are the cluster's to decide (its restart-strategy), unless the user asks here.
    if (cfg.recovery().restartAttempts() >= 0) {
      conf.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");
      conf.set(
          RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS,
          cfg.recovery().restartAttempts());
      conf.set(
          RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_DELAY,
          Duration.ofMillis(cfg.recovery().restartDelayMs()));
    }
    // Every type has its own serializer (POJO or ProtoTypeInfo); a Kryo fallback is a bug.
    conf.set(PipelineOptions.GENERIC_TYPES, false);
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
    env.enableCheckpointing(cfg.recovery().checkpointIntervalMs(), CheckpointingMode.EXACTLY_ONCE);
    env.getCheckpointConfig().setCheckpointTimeout(cfg.recovery().checkpointTimeoutMs());
    // One slow or failed checkpoint (a busy disk, a slow broker) is not worth a restart.
    env.getCheckpointConfig()
        .setTolerableCheckpointFailureNumber(cfg.recovery().tolerableCheckpointFailures());
    // Flink's default (100 ms) holds a record in a half-full network buffer for up to that long
    // at every shuffle; at a few thousand events/s the buffers rarely fill.
    env.setBufferTimeout(cfg.bufferTimeoutMs());
    if (cfg.parallelism() > 0) {
      env.setParallelism(cfg.parallelism());
    }
    return env;
  }

  /**
   * Refuses to start when --transaction-timeout-ms is above the brokers'
   * transaction.max.timeout.ms: every producer of the exactly-once sinks would be refused at its
   * first transaction, and the job would restart until it fails. A broker that cannot be asked
   * within 10 s is logged and the job goes on (its sources will say what is wrong with the
   * brokers).
   */
  static void checkTransactionTimeout(JobConfig cfg) {
    Properties props = kafkaProperties(cfg);
    props.setProperty("bootstrap.servers", cfg.kafka().bootstrapServers());
    props.setProperty("default.api.timeout.ms", "10000");
    props.setProperty("request.timeout.ms", "10000");
    Admin admin = Admin.create(props);
    try {
      Collection<Node> nodes = admin.describeCluster().nodes().get(10, TimeUnit.SECONDS);
      for (Node node : nodes) {
        ConfigResource broker =
            new ConfigResource(ConfigResource.Type.BROKER, Integer.toString(node.id()));
        ConfigEntry max =
            admin
                .describeConfigs(List.of(broker))
                .all()
                .get(10, TimeUnit.SECONDS)
                .get(broker)
                .get("transaction.max.timeout.ms");
        if (max != null
            && max.value() != null
            && cfg.kafka().transactionTimeoutMs() > Long.parseLong(max.value())) {
          throw new IllegalArgumentException(
              "--transaction-timeout-ms "
                  + cfg.kafka().transactionTimeoutMs()
                  + " is above broker "
                  + node.id()
                  + "'s transaction.max.timeout.ms "
                  + max.value()
                  + ": the exactly-once sinks could not open a transaction");
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (ExecutionException | TimeoutException e) {
      LOG.warn(
          "Could not read the brokers' transaction.max.timeout.ms at {}: {}",
          cfg.kafka().bootstrapServers(),
          e.toString());
    } finally {
      // Not the default close, which waits up to default.api.timeout.ms for calls in flight.
      admin.close(Duration.ofSeconds(1));
    }
  }

  /**
   * The user's Kafka client properties (--kafka-properties-file), under every client's own
   * settings, which are set after them and win.
   */
  static Properties kafkaProperties(JobConfig cfg) {
    Properties p = new Properties();
    p.putAll(cfg.kafka().properties());
    return p;
  }

  /**
   * A source of one topic under the job's group plus {@code groupSuffix}, reading committed records
   * only (the generator's and serve's producers are not transactional, which reads the same).
   */
  static KafkaSource<RawRecord> source(
      JobConfig cfg,
      String topic,
      String groupSuffix,
      OffsetsInitializer offsets,
      boolean skipTombstones) {
    return KafkaSource.<RawRecord>builder()
        .setBootstrapServers(cfg.kafka().bootstrapServers())
        .setTopics(topic)
        .setGroupId(cfg.kafka().groupId() + groupSuffix)
        .setStartingOffsets(offsets)
        .setDeserializer(new RawRecordDeserializer(skipTombstones))
        .setProperties(kafkaProperties(cfg))
        .setProperty("isolation.level", "read_committed")
        .build();
  }

  static <T> KafkaSink<T> kafkaSink(
      JobConfig cfg, KafkaRecordSerializationSchema<T> serializer, String name) {
    Properties producer = kafkaProperties(cfg);
    producer.setProperty(
        "transaction.timeout.ms", Long.toString(cfg.kafka().transactionTimeoutMs()));
    // Stated, not inherited: JobConfig checks the job's record limit against it at start.
    producer.setProperty(
        "max.request.size", Integer.toString(cfg.kafka().producerMaxRequestBytes()));
    return KafkaSink.<T>builder()
        .setBootstrapServers(cfg.kafka().bootstrapServers())
        .setRecordSerializer(serializer)
        .setDeliveryGuarantee(DeliveryGuarantee.EXACTLY_ONCE)
        // One prefix per sink: two sinks sharing ids would fence each other's transactions.
        .setTransactionalIdPrefix(cfg.kafka().transactionalIdPrefix() + "-" + name)
        .setKafkaProducerConfig(producer)
        .build();
  }
}
