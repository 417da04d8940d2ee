package dev.ecom.flink;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ecom.proto.v1.EnrichedEvent;
import dev.ecom.proto.v1.Event;
import dev.ecom.proto.v1.InvalidEvent;
import dev.ecom.proto.v1.RejectReason;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.apache.flink.streaming.util.ProcessFunctionTestHarnesses;
import org.junit.jupiter.api.Test;

class PassThroughTest {
  private static final long NOW = 1_700_000_000_000L;

  @Test
  void anEventPassesWithoutItsIpAndAnythingElseLeavesAsADeadLetter() throws Exception {
    try (OneInputStreamOperatorTestHarness<RawRecord, EnrichedEvent> h =
        ProcessFunctionTestHarnesses.forProcessFunction(
            new PassThrough(new IpHashKey(null, true), 64 * 1024))) {
      Event e = TestEvents.valid(1, NOW);
      h.processElement(TestEvents.raw(e.toByteArray(), 7, NOW), NOW);
      h.processElement(
          TestEvents.raw("not protobuf".getBytes(StandardCharsets.UTF_8), 8, NOW), NOW);
      h.processElement(
          TestEvents.raw(e.toBuilder().clearEventId().build().toByteArray(), 9, NOW), NOW);
      // Field 2 (event_time_ms, a varint) sent as bytes: dropped, never written on.
      byte[] wrongWireType =
          com.google.protobuf.ByteString.copyFrom(e.toByteArray())
              .concat(com.google.protobuf.ByteString.copyFrom(new byte[] {0x12, 0x01, 0x41}))
              .toByteArray();
      h.processElement(TestEvents.raw(wrongWireType, 10, NOW), NOW);

      List<EnrichedEvent> out = h.extractOutputValues();
      assertThat(out).hasSize(2);
      assertThat(out.get(1).getEvent().getUnknownFields().asMap()).isEmpty();
      EnrichedEvent passed = out.get(0);
      assertThat(passed.getEvent()).isEqualTo(e.toBuilder().clearIp().build());
      assertThat(passed.getProducedAtMs()).isEqualTo(e.getProducedAtMs());
      assertThat(passed.getIngestedAtMs()).isEqualTo(NOW - 100);
      assertThat(passed.getSource().getOffset()).isEqualTo(7);
      List<RejectReason> reasons =
          h.getSideOutput(PassThrough.INVALID).stream().map(r -> r.getValue().getReason()).toList();
      assertThat(reasons)
          .containsExactly(
              RejectReason.REJECT_REASON_UNPARSEABLE, RejectReason.REJECT_REASON_MISSING_ID);
      // The dead letter of an event holds the IP's hash, never the address.
      InvalidEvent missingId =
          h.getSideOutput(PassThrough.INVALID).stream().skip(1).findFirst().get().getValue();
      assertThat(missingId.getRaw().toStringUtf8()).doesNotContain(e.getIp());
    }
  }
}
