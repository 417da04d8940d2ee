// Lateness in the validate step: judged against the watermark that came before each record.
package dev.ecom.flink;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ecom.proto.v1.EnrichedEvent;
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

  private OneInputStreamOperatorTestHarness<RawRecord, EnrichedEvent> h;
  private int n;

  private static OneInputStreamOperatorTestHarness<RawRecord, EnrichedEvent> harness(
      OperatorSubtaskState restoreFrom) throws Exception {
    // Batches of one: each record is handled as it comes, against the watermark so far.
    var h =
        new OneInputStreamOperatorTestHarness<>(
            new ValidateEnrichOperator(1, 5, "test-key", 0, BOUND, 32, 8));
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
    assertThat(l.getRaw().toByteArray()).isEqualTo(late.value);
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
}
