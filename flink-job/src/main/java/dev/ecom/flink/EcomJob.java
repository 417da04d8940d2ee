// Entry point of the job jar: parses arguments and wires Kafka around EcomPipeline.
package dev.ecom.flink;

import dev.ecom.flink.kafka.ProtoRecordSerializer;
import dev.ecom.flink.kafka.RawRecordDeserializer;
import java.time.Duration;
import java.util.Properties;
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
import org.apache.kafka.clients.consumer.OffsetResetStrategy;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** {@code flink run ecom-flink-job.jar [options]}; see {@link JobConfig#usage()}. */
public final class EcomJob {
  private static final Logger LOG = LoggerFactory.getLogger(EcomJob.class);

  /** The job's name in the Flink UI and REST API. */
  public static final String JOB_NAME = "ecom";

  /** Must not exceed the brokers' transaction.max.timeout.ms (Kafka's default is 900000). */
  static final String TRANSACTION_TIMEOUT_MS = "600000";

  private EcomJob() {}

  public static void main(String[] args) throws Exception {
    JobConfig cfg;
    try {
      cfg = JobConfig.parse(args);
    } catch (JobConfig.HelpRequested h) {
      System.out.println(JobConfig.usage());
      return;
    } catch (IllegalArgumentException e) {
      System.err.println("ecom job: " + e.getMessage() + "\n\n" + JobConfig.usage());
      throw e;
    }
    if (cfg.ipHashKeyIsDevDefault()) {
      LOG.warn(
          "No --ip-hash-key given: ip_hash uses the built-in dev key, so hashes are guessable."
              + " Pass a secret key outside development.");
    }
    LOG.info("Starting {} with {}", JOB_NAME, cfg);

    buildJob(cfg).execute(JOB_NAME);
  }

  /** The whole job, Kafka included, ready to execute. */
  static StreamExecutionEnvironment buildJob(JobConfig cfg) {
    StreamExecutionEnvironment env = environment(cfg);
    DataStream<RawRecord> raw =
        env.fromSource(rawSource(cfg), RawEventTime.strategy(cfg), "raw-source")
            .uid("raw-source")
            .name("raw-source");
    DataStream<RawRecord> catalog =
        env.fromSource(catalogSource(cfg), WatermarkStrategy.noWatermarks(), "catalog-source")
            .uid("catalog-source")
            .name("catalog-source");
    EcomPipeline.build(
        raw,
        catalog,
        new EcomPipeline.Sinks(
            kafkaSink(cfg, ProtoRecordSerializer.enriched(cfg.enrichedTopic()), "enriched"),
            kafkaSink(cfg, ProtoRecordSerializer.invalid(cfg.invalidTopic()), "invalid"),
            kafkaSink(cfg, ProtoRecordSerializer.sessions(cfg.sessionsTopic()), "sessions"),
            kafkaSink(cfg, ProtoRecordSerializer.metrics(cfg.metricsTopic()), "metrics")),
        cfg);
    return env;
  }

  static StreamExecutionEnvironment environment(JobConfig cfg) {
    Configuration conf = new Configuration();
    conf.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");
    conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS, 5);
    conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_DELAY, Duration.ofSeconds(5));
    // Every type has its own serializer (POJO or ProtoTypeInfo); a Kryo fallback is a bug.
    conf.set(PipelineOptions.GENERIC_TYPES, false);
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
    env.enableCheckpointing(cfg.checkpointIntervalMs(), CheckpointingMode.EXACTLY_ONCE);
    // Flink's default (100 ms) holds a record in a half-full network buffer for up to that long
    // at every shuffle; at a few thousand events/s the buffers rarely fill.
    env.setBufferTimeout(cfg.bufferTimeoutMs());
    if (cfg.parallelism() > 0) {
      env.setParallelism(cfg.parallelism());
    }
    return env;
  }

  @SuppressWarnings("deprecation") // OffsetResetStrategy is what this connector version takes.
  static KafkaSource<RawRecord> rawSource(JobConfig cfg) {
    return KafkaSource.<RawRecord>builder()
        .setBootstrapServers(cfg.bootstrapServers())
        .setTopics(cfg.rawTopic())
        .setGroupId(cfg.groupId())
        // Resume where the group left off; a new group starts from the beginning.
        .setStartingOffsets(OffsetsInitializer.committedOffsets(OffsetResetStrategy.EARLIEST))
        .setDeserializer(new RawRecordDeserializer())
        .setProperty("isolation.level", "read_committed")
        .build();
  }

  /**
   * The whole catalog from the start of its compacted topic on a fresh start; on a restore, from
   * the checkpointed offsets (the catalog read so far is in broadcast state).
   */
  static KafkaSource<RawRecord> catalogSource(JobConfig cfg) {
    return KafkaSource.<RawRecord>builder()
        .setBootstrapServers(cfg.bootstrapServers())
        .setTopics(cfg.catalogTopic())
        .setGroupId(cfg.groupId() + "-catalog")
        .setStartingOffsets(OffsetsInitializer.earliest())
        .setDeserializer(new RawRecordDeserializer(true))
        .setProperty("isolation.level", "read_committed")
        .build();
  }

  static <T> KafkaSink<T> kafkaSink(
      JobConfig cfg, KafkaRecordSerializationSchema<T> serializer, String name) {
    Properties producer = new Properties();
    producer.setProperty("transaction.timeout.ms", TRANSACTION_TIMEOUT_MS);
    // Stated, not inherited: JobConfig checks the job's record limit against it at start.
    producer.setProperty("max.request.size", Integer.toString(cfg.producerMaxRequestBytes()));
    return KafkaSink.<T>builder()
        .setBootstrapServers(cfg.bootstrapServers())
        .setRecordSerializer(serializer)
        .setDeliveryGuarantee(DeliveryGuarantee.EXACTLY_ONCE)
        // One prefix per sink: two sinks sharing ids would fence each other's transactions.
        .setTransactionalIdPrefix(cfg.transactionalIdPrefix() + "-" + name)
        .setKafkaProducerConfig(producer)
        .build();
  }
}
