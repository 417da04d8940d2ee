// Events and raw records for the tests.
package dev.ecom.flink;

import dev.ecom.proto.v1.Event;
import dev.ecom.proto.v1.EventKind;

/** Builders for valid events and raw records around them. */
public final class TestEvents {
  private TestEvents() {}

  /** A valid product view of session {@code s-<n % 3>} from a distinct IP. */
  public static Event valid(int n, long nowMs) {
    return Event.newBuilder()
        .setEventId(String.format("0190a0e0-0000-7000-8000-%012d", n))
        .setEventTimeMs(nowMs - 1_000)
        .setUserId("u-" + (n % 5))
        .setSessionId("s-" + (n % 3))
        .setKind(EventKind.EVENT_KIND_PRODUCT_VIEW)
        .setProductId("p-" + n)
        .setPage("/p/p-" + n)
        .setReferrer("https://example.com/")
        .setChannel("web")
        .setDevice("desktop")
        .setUserAgent("Mozilla/5.0")
        .setIp("203.0.113." + (n % 250))
        .setCountry(n % 2 == 0 ? "DE" : "FR")
        .setProducedAtMs(nowMs - 900)
        .build();
  }

  /** A raw record at {@code offset} of partition 0 of ecom.events.raw. */
  public static RawRecord raw(byte[] value, long offset, long nowMs) {
    return new RawRecord(value, "ecom.events.raw", 0, offset, nowMs - 500, nowMs - 100);
  }
}
