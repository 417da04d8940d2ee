// Parses ecom.shadow records; a bad one goes to the dead letter instead of vanishing.
package dev.ecom.flink.quality;

import com.google.protobuf.InvalidProtocolBufferException;
import dev.ecom.flink.SideTopicParse;
import dev.ecom.flink.serde.ProtoTypeInfo;
import dev.ecom.proto.v1.InvalidEvent;
import dev.ecom.proto.v1.RejectReason;
import dev.ecom.proto.v1.ShadowBatch;
import dev.ecom.proto.v1.ShadowScore;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/**
 * Shadow scores (ecom serve, models/SHADOW) from their topic's records, one ShadowBatch each. A
 * record that is not a ShadowBatch whose every score has an event id and an event time is rejected
 * whole as REJECT_REASON_BAD_SHADOW_RECORD on {@link #INVALID} and counted in {@code
 * shadowRecordsRejected} ({@link dev.ecom.flink.SideTopicParse}).
 */
public final class ShadowParse extends SideTopicParse<ShadowScore> {
  private static final long serialVersionUID = 1L;

  /** Rejected shadow records. */
  public static final OutputTag<InvalidEvent> INVALID =
      new OutputTag<>("shadow-invalid", ProtoTypeInfo.forClass(InvalidEvent.class));

  public ShadowParse(int maxRecordBytes) {
    super(
        maxRecordBytes,
        RejectReason.REJECT_REASON_BAD_SHADOW_RECORD,
        INVALID,
        "shadowRecordsRejected");
  }

  @Override
  protected String parse(byte[] value, Collector<ShadowScore> out) {
    ShadowBatch b;
    try {
      b = ShadowBatch.parseFrom(value);
    } catch (InvalidProtocolBufferException e) {
      return "not a ShadowBatch protobuf (" + value.length + " bytes): " + e.getMessage();
    }
    for (int i = 0; i < b.getScoresCount(); i++) {
      ShadowScore s = b.getScores(i);
      if (s.getEventId().isEmpty() || s.getEventTimeMs() <= 0) {
        return "scores["
            + i
            + "]: event_id and event_time_ms both required ("
            + value.length
            + " bytes)";
      }
    }
    b.getScoresList().forEach(out::collect);
    return null;
  }
}
