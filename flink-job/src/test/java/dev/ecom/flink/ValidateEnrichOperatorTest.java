// The validate step: lateness judged against the watermark that came before each record, the
// record size limit, unknown fields, and clocks ahead of the reader's.
package dev.ecom.flink;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.ByteString;
import com.google.protobuf.CodedOutputStream;
import com.google.protobuf.UnknownFieldSet;
import dev.ecom.proto.v1.EnrichedEvent;
import dev.ecom.proto.v1.Event;
import dev.ecom.proto.v1.InvalidEvent;
import dev.ecom.proto.v1.RejectReason;
import java.util.List;
import java.util.stream.Collectors;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class ValidateEnrichOperatorTest {
  private static final long NOW = System.currentTimeMillis();
  private static final long T0 = NOW - 3 * 3_600_000;
  private static final long BOUND = 60_000;
  private static final int MAX_RECORD = 16_384;
  private static final long LEAD = 5_000;

  private OneInputStreamOperatorTestHarness<RawRecord, EnrichedEvent> h;
  private int n;

  private static OneInputStreamOperatorTestHarness<RawRecord, EnrichedEvent> harness(
      OperatorSubtaskState restoreFrom) throws Exception {
    // Batches of one: each record is handled as it comes, against the watermark so far.
    var h =
        new OneInputStreamOperatorTestHarness<>(
            new ValidateEnrichOperator(
                new JobConfig.Intake(MAX_RECORD, 1, 5, 32, 8, new IpHashKey(null, true)),
                new JobConfig.EventTime(BOUND, LEAD, 0, 0, 1_800_000, 30_000, 600_000)));
    if (restoreFrom != null) {
      h.initializeState(restoreFrom);
    }
    h.open();
    return h;
  }

  @AfterEach
  void close() throws Exception {
    if (h != null) {
      h.close();
    }
  }

  private RawRecord send(long eventTimeMs) throws Exception {
    n++;
    RawRecord raw =
        TestEvents.raw(
            TestEvents.valid(n, NOW).toBuilder().setEventTimeMs(eventTimeMs).build().toByteArray(),
            n,
            NOW);
    h.processElement(raw, eventTimeMs);
    return raw;
  }

  private List<Long> validTimes() {
    return h.extractOutputValues().stream()
        .map(e -> e.getEvent().getEventTimeMs())
        .collect(Collectors.toList());
  }

  private List<InvalidEvent> invalid() {
    var q = h.getSideOutput(ValidateEnrichOperator.INVALID);
    return q == null
        ? List.of()
        : q.stream().map(StreamRecord::getValue).collect(Collectors.toList());
  }

  @Test
  void anEventBehindTheWatermarkBeforeItIsLateAndOneBeforeTheWatermarkIsNot() throws Exception {
    h = harness(null);
    send(T0 - 7_200_000); // the first: event time is not known yet, not late
    send(T0);
    h.processWatermark(T0 + 60_000); // after both: they stay on time
    RawRecord late = send(T0 + 59_999);
    send(T0 + 60_000); // on the watermark

    assertThat(validTimes()).containsExactly(T0 - 7_200_000, T0, T0 + 60_000);
    List<InvalidEvent> rejects = invalid();
    assertThat(rejects).hasSize(1);
    InvalidEvent l = rejects.get(0);
    assertThat(l.getReason()).isEqualTo(RejectReason.REJECT_REASON_LATE);
    assertThat(l.getDetail()).contains("1 ms behind the watermark " + (T0 + 60_000));
    assertThat(l.getSource().getOffset()).isEqualTo(late.offset);
    Event kept = Event.parseFrom(l.getRaw());
    assertThat(kept.getIp()).isEmpty();
    assertThat(kept.getIpHash()).hasSize(64);
    assertThat(kept.getEventId()).isEqualTo(Event.parseFrom(late.value).getEventId());
  }

  @Test
  void beforeAnyWatermarkARecordIsJudgedByItsOwnPartitionsNewestTime() throws Exception {
    h = harness(null);
    send(T0);
    send(T0 + 600_000);
    send(T0 + 600_000 - BOUND); // within the bound of its partition's newest: on time
    send(T0 - 7_200_000); // hours behind it: late, though no watermark has come yet
    assertThat(validTimes()).containsExactly(T0, T0 + 600_000, T0 + 600_000 - BOUND);
    assertThat(invalid())
        .extracting(InvalidEvent::getDetail)
        .singleElement()
        .asString()
        .contains("behind the watermark " + (T0 + 600_000 - BOUND - 1));
  }

  @Test
  void afterARestoreTheCheckpointedWatermarkIsTheFloorUntilTheSourcesPassIt() throws Exception {
    h = harness(null);
    h.processWatermark(T0);
    h.processWatermark(Long.MAX_VALUE); // stopped with --drain: the end of input is no floor
    OperatorSubtaskState checkpoint = h.snapshot(1, 1);
    h.close();

    h = harness(checkpoint);
    // No watermark since the restore: the records read again are judged against the
    // checkpoint's, as they were before it.
    send(T0 + 1_000);
    send(T0 - 7_200_000);
    assertThat(validTimes()).containsExactly(T0 + 1_000);
    assertThat(invalid())
        .extracting(InvalidEvent::getDetail)
        .singleElement()
        .asString()
        .contains("7200000 ms behind the watermark " + T0);

    h.processWatermark(T0 + 600_000);
    send(T0 + 1_000);
    assertThat(invalid()).hasSize(2);
  }

  /** A valid event at {@code eventTimeMs} with an unknown field 100 padding it to {@code size}. */
  private RawRecord stuffed(long eventTimeMs, int size) {
    n++;
    var e = TestEvents.valid(n, NOW).toBuilder().setEventTimeMs(eventTimeMs);
    int room = size - e.build().getSerializedSize() - 2; // the field's tag takes 2 bytes
    int pad = room - 1;
    while (pad + CodedOutputStream.computeUInt32SizeNoTag(pad) > room) {
      pad--;
    }
    UnknownFieldSet extra =
        UnknownFieldSet.newBuilder()
            .addField(
                100,
                UnknownFieldSet.Field.newBuilder()
                    .addLengthDelimited(ByteString.copyFrom(new byte[pad]))
                    .build())
            .build();
    byte[] bytes = e.setUnknownFields(extra).build().toByteArray();
    assertThat(bytes).hasSize(size);
    return TestEvents.raw(bytes, n, NOW);
  }

  @Test
  void aRecordOverTheLimitIsOversizeAndItsDeadLetterKeepsAPrefixWithSizeAndHash() throws Exception {
    h = harness(null);
    RawRecord atLimit = stuffed(NOW - 1_000, MAX_RECORD);
    RawRecord over = stuffed(NOW - 1_000, 1_048_000);
    h.processElement(atLimit, NOW - 1_000);
    h.processElement(over, NOW - 1_000);

    // At the limit: valid, and the unknown field is not carried into the enriched event.
    List<EnrichedEvent> out = h.extractOutputValues();
    assertThat(out).hasSize(1);
    assertThat(out.get(0).getEvent().getUnknownFields().asMap()).isEmpty();
    assertThat(out.get(0).getSerializedSize()).isLessThan(2_000);

    InvalidEvent dead = invalid().get(0);
    assertThat(invalid()).hasSize(1);
    assertThat(dead.getReason()).isEqualTo(RejectReason.REJECT_REASON_OVERSIZE_RECORD);
    assertThat(dead.getDetail()).contains("1048000 bytes", "limit of " + MAX_RECORD);
    assertThat(dead.getRawSizeBytes()).isEqualTo(1_048_000);
    assertThat(dead.getRawTruncated()).isTrue();
    assertThat(dead.getRaw().size()).isEqualTo(MAX_RECORD);
    assertThat(dead.getRawSha256()).isEqualTo(Enrichment.sha256Hex(over.value));
    assertThat(dead.getSource().getOffset()).isEqualTo(over.offset);
  }

  @Test
  void oneEventFromAClockAheadCannotMakeOnTimeEventsLate() throws Exception {
    h = harness(null);
    // 290 s ahead of the clock it is read at (inside the validator's 5-minute skew): valid.
    send(NOW + 290_000);
    // 40 events 2 s old on the same partition: all on time.
    for (int i = 0; i < 40; i++) {
      send(NOW - 2_000);
    }
    assertThat(invalid()).isEmpty();
    assertThat(validTimes()).hasSize(41);
    // Within the lead the time counts: the partition's watermark follows it.
    send(NOW + LEAD - 100 - 1);
    send(NOW + LEAD - 100 - 1 - BOUND - 2); // 1 ms behind its partition's watermark
    assertThat(invalid())
        .singleElement()
        .extracting(InvalidEvent::getReason)
        .isEqualTo(RejectReason.REJECT_REASON_LATE);
  }
}
