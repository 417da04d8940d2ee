// Reading event time from raw bytes at the source.
package dev.ecom.flink;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import org.apache.flink.api.common.eventtime.WatermarkGenerator;
import org.junit.jupiter.api.Test;

class RawEventTimeTest {
  private static final long NOW = 1_767_225_600_000L;

  private static long time(byte[] value) {
    return new RawEventTime().extractTimestamp(TestEvents.raw(value, 0, NOW), 0);
  }

  @Test
  void readsTheEventTimeOfAnEvent() {
    assertThat(time(TestEvents.valid(1, NOW).toByteArray())).isEqualTo(NOW - 1_000);
  }

  @Test
  void recordsThatCannotMoveTheWatermarkGetNoTime() {
    assertThat(time(new byte[] {(byte) 0xff, (byte) 0xff, (byte) 0xff})).isEqualTo(Long.MIN_VALUE);
    assertThat(time(new byte[0])).isEqualTo(Long.MIN_VALUE);
    assertThat(time(null)).isEqualTo(Long.MIN_VALUE);
    byte[] future =
        TestEvents.valid(1, NOW).toBuilder().setEventTimeMs(NOW + 3_600_000).build().toByteArray();
    assertThat(time(future)).isEqualTo(Long.MIN_VALUE);
    byte[] zero = TestEvents.valid(1, NOW).toBuilder().setEventTimeMs(0).build().toByteArray();
    assertThat(time(zero)).isEqualTo(Long.MIN_VALUE);
  }

  @Test
  void aTimeAheadOfTheClockWithinTheSkewIsKeptAsTheRecordsTimestamp() {
    byte[] ahead =
        TestEvents.valid(1, NOW).toBuilder().setEventTimeMs(NOW + 290_000).build().toByteArray();
    assertThat(time(ahead)).isEqualTo(NOW + 290_000);
  }

  @Test
  void theFirstUsableTimeIsAWatermarkAtOnceLaterOnesPeriodically() {
    CollectedWatermarks out = new CollectedWatermarks();
    List<Long> emitted = out.marks;
    WatermarkGenerator<RawRecord> g =
        new RawEventTime.EagerBounded(60_000, 5_000).createWatermarkGenerator(null);
    RawRecord r = TestEvents.raw(new byte[0], 0, NOW);
    g.onPeriodicEmit(out);
    g.onEvent(r, Long.MIN_VALUE, out); // unusable: nothing yet
    assertThat(emitted).isEmpty();
    g.onEvent(r, NOW, out);
    assertThat(emitted).containsExactly(NOW - 60_001);
    g.onEvent(r, NOW + 4_000, out); // within the 5 s lead of the clock it was read at (NOW - 100)
    g.onEvent(r, NOW - 7_200_000, out); // hours late: never moves the watermark back
    g.onEvent(r, NOW + 290_000, out); // a skewed clock (read at NOW): never moves it forward
    assertThat(emitted).hasSize(1);
    g.onPeriodicEmit(out);
    assertThat(emitted).containsExactly(NOW - 60_001, NOW + 4_000 - 60_001);
  }
}
