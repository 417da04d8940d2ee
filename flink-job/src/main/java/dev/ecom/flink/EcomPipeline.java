// The job's dataflow between its source and its sinks; main and the tests plug those in.
package dev.ecom.flink;

import dev.ecom.flink.serde.ProtoTypeInfo;
import dev.ecom.proto.v1.EnrichedEvent;
import dev.ecom.proto.v1.InvalidEvent;
import java.util.concurrent.TimeUnit;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.streaming.api.datastream.AsyncDataStream;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;

/**
 * raw records → validate + enrich (batched JNI) → Guard (Async I/O) → enriched sink; rejected
 * records → invalid sink. Every raw record reaches exactly one of the two sinks.
 */
public final class EcomPipeline {
  /** Stable operator ids: changing one drops that operator's state on restore. */
  public static final String UID_VALIDATE = "validate-enrich";

  public static final String UID_GUARD = "guard";
  public static final String UID_ENRICHED_SINK = "enriched-sink";
  public static final String UID_INVALID_SINK = "invalid-sink";

  private EcomPipeline() {}

  /** Wires the pipeline onto {@code raw}'s environment. */
  public static void build(
      DataStream<RawRecord> raw,
      Sink<EnrichedEvent> enrichedSink,
      Sink<InvalidEvent> invalidSink,
      JobConfig cfg) {
    SingleOutputStreamOperator<EnrichedEvent> validated =
        raw.transform(
                "validate-enrich",
                ProtoTypeInfo.forClass(EnrichedEvent.class),
                new ValidateEnrichOperator(
                    cfg.batchSize(),
                    cfg.batchMaxDelayMs(),
                    cfg.ipHashKey(),
                    cfg.lshPerm(),
                    cfg.lshBands()))
            .uid(UID_VALIDATE)
            .name("validate-enrich");

    SingleOutputStreamOperator<EnrichedEvent> guarded =
        AsyncDataStream.unorderedWait(
                validated,
                new GuardAsyncFunction(cfg.serveAddress(), cfg.guardTimeoutMs()),
                cfg.guardTimeoutMs(),
                TimeUnit.MILLISECONDS,
                cfg.guardCapacity())
            .returns(ProtoTypeInfo.forClass(EnrichedEvent.class))
            .uid(UID_GUARD)
            .name("guard");

    guarded.sinkTo(enrichedSink).uid(UID_ENRICHED_SINK).name("enriched-sink");
    validated
        .getSideOutput(ValidateEnrichOperator.INVALID)
        .sinkTo(invalidSink)
        .uid(UID_INVALID_SINK)
        .name("invalid-sink");
  }
}
