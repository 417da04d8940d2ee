// Reading event time from raw bytes at the source.
package dev.ecom.flink;

import static org.assertj.core.api.Assertions.assertThat;

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
}
