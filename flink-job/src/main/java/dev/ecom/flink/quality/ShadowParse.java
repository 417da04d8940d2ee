// Parses ecom.shadow records; a bad one goes to the dead letter instead of vanishing.
package dev.ecom.flink.quality;

import com.google.protobuf.InvalidProtocolBufferException;
import dev.ecom.flink.Enrichment;
import dev.ecom.flink.RawRecord;
import dev.ecom.flink.serde.ProtoTypeInfo;
import dev.ecom.proto.v1.InvalidEvent;
import dev.ecom.proto.v1.RejectReason;
import dev.ecom.proto.v1.ShadowScore;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.metrics.Counter;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/**
 * Shadow scores (ecom serve, models/SHADOW) from their topic's records. A record over the job's
 * --max-record-bytes, or not a ShadowScore with an event id and an event time, becomes an
 * InvalidEvent (REJECT_REASON_OVERSIZE_RECORD or REJECT_REASON_BAD_SHADOW_RECORD) on {@link
 * #INVALID}, counted in {@code shadowRecordsRejected}.
 */
public final class ShadowParse extends ProcessFunction<RawRecord, ShadowScore> {
  private static final long serialVersionUID = 1L;

  /** Rejected shadow records. */
  public static final OutputTag<InvalidEvent> INVALID =
      new OutputTag<>("shadow-invalid", ProtoTypeInfo.forClass(InvalidEvent.class));

  private final int maxRecordBytes;
  private transient Counter rejected;

  public ShadowParse(int maxRecordBytes) {
    this.maxRecordBytes = maxRecordBytes;
  }

  @Override
  public void open(OpenContext ctx) {
    rejected = getRuntimeContext().getMetricGroup().counter("shadowRecordsRejected");
  }

  @Override
  public void processElement(RawRecord r, Context ctx, Collector<ShadowScore> out) {
    RejectReason reason = RejectReason.REJECT_REASON_BAD_SHADOW_RECORD;
    String detail;
    if (r.value.length > maxRecordBytes) {
      reason = RejectReason.REJECT_REASON_OVERSIZE_RECORD;
      detail =
          "record of " + r.value.length + " bytes is larger than the limit of " + maxRecordBytes;
    } else {
      try {
        ShadowScore s = ShadowScore.parseFrom(r.value);
        if (!s.getEventId().isEmpty() && s.getEventTimeMs() > 0) {
          out.collect(s);
          return;
        }
        detail = "event_id and event_time_ms: both required (" + r.value.length + " bytes)";
      } catch (InvalidProtocolBufferException e) {
        detail = "not a ShadowScore protobuf (" + r.value.length + " bytes): " + e.getMessage();
      }
    }
    rejected.inc();
    ctx.output(
        INVALID,
        Enrichment.reject(r, reason, detail, System.currentTimeMillis(), maxRecordBytes, null));
  }
}
