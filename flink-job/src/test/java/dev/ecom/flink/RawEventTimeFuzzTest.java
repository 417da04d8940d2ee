// Fuzzing the job's one parser of outside bytes that runs before validation: RawEventTime.
package dev.ecom.flink;

import static org.assertj.core.api.Assertions.assertThat;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.ecom.proto.v1.Event;

/**
 * Any bytes as a raw record's value: reading its event time never throws, and a time it returns is
 * positive, within ecom-core's future skew of the ingest time and, for bytes that parse as an
 * Event, the Event's own event_time_ms (the protobuf rules: the last occurrence wins). Every test
 * run replays the saved inputs; {@code JAZZER_FUZZ=1} fuzzes (dev/fuzz); the corpus grows in
 * flink-job/.cifuzz-corpus (not versioned).
 */
class RawEventTimeFuzzTest {
  /** The long run is every run: 10 M inputs take about a minute. */
  @FuzzTest(maxExecutions = 10_000_000, maxDuration = "5m")
  void anyBytesGiveAValidTimeOrNone(FuzzedDataProvider data) {
    long ingestedAt = data.consumeLong(1, 4_102_444_800_000L);
    byte[] value = data.consumeRemainingAsBytes();
    RawRecord r = new RawRecord(value, "t", 0, 0, ingestedAt, ingestedAt);
    long t = new RawEventTime().extractTimestamp(r, 0);
    if (t == Long.MIN_VALUE) {
      return;
    }
    assertThat(t).isPositive().isLessThanOrEqualTo(ingestedAt + RawEventTime.MAX_FUTURE_SKEW_MS);
    try {
      assertThat(t).isEqualTo(Event.parseFrom(value).getEventTimeMs());
    } catch (com.google.protobuf.InvalidProtocolBufferException notAnEvent) {
      // Bytes that are not a whole Event may still carry a readable field 2 before the damage.
    }
  }
}
