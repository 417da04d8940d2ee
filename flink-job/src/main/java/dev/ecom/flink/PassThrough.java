// The runtime's floor for benchmarks: the job's sources and sinks with none of its work between.
package dev.ecom.flink;

import dev.ecom.flink.serde.ProtoTypeInfo;
import dev.ecom.proto.v1.EnrichedEvent;
import dev.ecom.proto.v1.Event;
import dev.ecom.proto.v1.InvalidEvent;
import dev.ecom.proto.v1.RejectReason;
import javax.crypto.Mac;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/**
 * {@code --pass-through true} (for {@code ecom bench e2e --design floor}): each raw record is
 * parsed as an Event and leaves as an EnrichedEvent holding it — the IP cleared, so no raw address
 * reaches a store — with its source, produce, ingest and output times; a record that does not
 * parse, or has no event_id, leaves as a dead letter (UNPARSEABLE, MISSING_ID). The same sources,
 * serializers and exactly-once sinks as the real pipeline and nothing else, so what it costs is the
 * floor Kafka, Flink and the sinks set for every other figure.
 */
public final class PassThrough extends ProcessFunction<RawRecord, EnrichedEvent> {
  private static final long serialVersionUID = 1L;

  public static final OutputTag<InvalidEvent> INVALID =
      new OutputTag<>("pass-through-invalid", ProtoTypeInfo.forClass(InvalidEvent.class));

  private final IpHashKey ipHashKey;
  private final int maxRecordBytes;
  private transient Mac ipHasher;

  PassThrough(IpHashKey ipHashKey, int maxRecordBytes) {
    this.ipHashKey = ipHashKey;
    this.maxRecordBytes = maxRecordBytes;
  }

  @Override
  public void open(OpenContext ctx) throws Exception {
    // Dead letters keep the IP's hash in place of the IP, as the real pipeline's do.
    ipHasher = Enrichment.ipHasher(ipHashKey.load());
  }

  @Override
  public void processElement(RawRecord raw, Context ctx, Collector<EnrichedEvent> out) {
    long now = System.currentTimeMillis();
    Event event;
    try {
      event = ValidateEnrichOperator.EVENT_PARSER.parseFrom(raw.value);
    } catch (Exception e) {
      ctx.output(INVALID, reject(raw, RejectReason.REJECT_REASON_UNPARSEABLE, e.toString(), now));
      return;
    }
    if (event.getEventId().isEmpty()) {
      ctx.output(INVALID, reject(raw, RejectReason.REJECT_REASON_MISSING_ID, "no event_id", now));
      return;
    }
    out.collect(
        EnrichedEvent.newBuilder()
            .setEvent(event.toBuilder().clearIp())
            .setProducedAtMs(event.getProducedAtMs())
            .setIngestedAtMs(raw.ingestedAtMs)
            .setEnrichedAtMs(now)
            .setSource(Enrichment.sourceOffset(raw))
            .build());
  }

  private InvalidEvent reject(RawRecord raw, RejectReason reason, String detail, long now) {
    return Enrichment.reject(raw, reason, detail, now, maxRecordBytes, ipHasher);
  }
}
