package dev.ecom.flink.quality;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ecom.flink.RawRecord;
import dev.ecom.proto.v1.RejectReason;
import dev.ecom.proto.v1.ShadowBatch;
import dev.ecom.proto.v1.ShadowScore;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.apache.flink.streaming.util.ProcessFunctionTestHarnesses;
import org.junit.jupiter.api.Test;

class ShadowParseTest {
  private static final long NOW = 1_767_225_600_000L;

  private static ShadowScore score(String event, long timeMs) {
    return ShadowScore.newBuilder()
        .setEventId(event)
        .setSessionId("s")
        .setEventTimeMs(timeMs)
        .setModelVersion("v2")
        .build();
  }

  private static RawRecord raw(byte[] value, long offset) {
    return new RawRecord(value, "ecom.shadow", 0, offset, NOW, NOW);
  }

  @Test
  void aBatchGivesEachOfItsScoresAndABadOneIsDeadLetteredWhole() throws Exception {
    try (OneInputStreamOperatorTestHarness<RawRecord, ShadowScore> h =
        ProcessFunctionTestHarnesses.forProcessFunction(new ShadowParse(256))) {
      ShadowBatch good =
          ShadowBatch.newBuilder()
              .addScores(score("a", NOW))
              .addScores(score("b", NOW + 1))
              .build();
      h.processElement(raw(good.toByteArray(), 1), NOW);
      ShadowBatch noTime =
          ShadowBatch.newBuilder().addScores(score("c", NOW)).addScores(score("d", 0)).build();
      h.processElement(raw(noTime.toByteArray(), 2), NOW);
      h.processElement(raw("not protobuf".getBytes(StandardCharsets.UTF_8), 3), NOW);
      ShadowBatch.Builder big = ShadowBatch.newBuilder();
      for (int i = 0; i < 40; i++) {
        big.addScores(score("big-" + i, NOW));
      }
      h.processElement(raw(big.build().toByteArray(), 4), NOW);

      assertThat(h.extractOutputValues())
          .extracting(ShadowScore::getEventId)
          .containsExactly("a", "b");
      List<RejectReason> reasons =
          h.getSideOutput(ShadowParse.INVALID).stream().map(r -> r.getValue().getReason()).toList();
      assertThat(reasons)
          .containsExactly(
              RejectReason.REJECT_REASON_BAD_SHADOW_RECORD,
              RejectReason.REJECT_REASON_BAD_SHADOW_RECORD,
              RejectReason.REJECT_REASON_OVERSIZE_RECORD);
      assertThat(h.getSideOutput(ShadowParse.INVALID).peek().getValue().getDetail())
          .contains("scores[1]");
    }
  }

  @Test
  void aBatchsTimeIsItsEarliestEventTime() {
    ShadowBatch b =
        ShadowBatch.newBuilder().addScores(score("a", NOW + 5)).addScores(score("b", NOW)).build();
    assertThat(
            new dev.ecom.flink.EcomPipeline.ShadowEventTime()
                .extractTimestamp(raw(b.toByteArray(), 1), 0))
        .isEqualTo(NOW);
  }
}
