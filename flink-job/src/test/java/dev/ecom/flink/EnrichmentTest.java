// IP hashing, LSH tokens and reject records, without Flink or native code.
package dev.ecom.flink;

import static java.nio.charset.StandardCharsets.ISO_8859_1;
import static org.assertj.core.api.Assertions.assertThat;

import dev.ecom.proto.v1.Event;
import dev.ecom.proto.v1.EventKind;
import dev.ecom.proto.v1.InvalidEvent;
import dev.ecom.proto.v1.RejectReason;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.java.typeutils.PojoTypeInfo;
import org.junit.jupiter.api.Test;

class EnrichmentTest {
  @Test
  void ipHashIsHexHmacSha256() {
    // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
    assertThat(Enrichment.ipHash(Enrichment.ipHasher("Jefe"), "what do ya want for nothing?"))
        .isEqualTo("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    assertThat(Enrichment.ipHash(Enrichment.ipHasher("k"), "")).isEmpty();
  }

  @Test
  void tokensAreProductPageKindAndLowercaseQueryWords() {
    Event search =
        Event.newBuilder()
            .setKind(EventKind.EVENT_KIND_SEARCH)
            .setPage("/search")
            .setSearchQuery("  Oak Dining\tTABLE ")
            .build();
    assertThat(Enrichment.lshTokens(search))
        .containsExactly("/search", "EVENT_KIND_SEARCH", "oak", "dining", "table");

    Event view =
        Event.newBuilder()
            .setKind(EventKind.EVENT_KIND_PRODUCT_VIEW)
            .setProductId("p-1")
            .setPage("/p/p-1")
            .build();
    assertThat(Enrichment.lshTokens(view))
        .containsExactly("p-1", "/p/p-1", "EVENT_KIND_PRODUCT_VIEW");
  }

  @Test
  void verdictStringsBecomeInvalidEvents() {
    RawRecord raw = new RawRecord(new byte[] {1, 2}, "t", 1, 42, 5, 7);
    InvalidEvent e =
        Enrichment.rejectFromVerdict(
            raw, "REJECT_REASON_MISSING_ID\tevent_id: must not be empty", 9, 16, null);
    assertThat(e.getReason()).isEqualTo(RejectReason.REJECT_REASON_MISSING_ID);
    assertThat(e.getReasonCode()).isEqualTo("REJECT_REASON_MISSING_ID");
    assertThat(e.getDetail()).isEqualTo("event_id: must not be empty");
    assertThat(e.getRaw().toByteArray()).containsExactly(1, 2);
    assertThat(e.getSource().getOffset()).isEqualTo(42);
    assertThat(e.getIngestedAtMs()).isEqualTo(7);
    assertThat(e.getRejectedAtMs()).isEqualTo(9);
    assertThat(e.getRawSizeBytes()).isEqualTo(2);
    assertThat(e.getRawTruncated()).isFalse();
    // sha256(0x01 0x02)
    assertThat(e.getRawSha256())
        .isEqualTo("a12871fee210fb8619291eaea194581cbd2531e4b23759d225f6806923f63222");

    InvalidEvent unknown = Enrichment.rejectFromVerdict(raw, "REJECT_REASON_NEW\tx", 9, 16, null);
    assertThat(unknown.getReason()).isEqualTo(RejectReason.REJECT_REASON_UNSPECIFIED);
    assertThat(unknown.getReasonCode()).isEqualTo("REJECT_REASON_NEW");
  }

  @Test
  void ipHashesAreTheOnesRustComputes() {
    // ecom-core's secret::tests::ip_hashes_are_the_jobs holds the same value.
    assertThat(Enrichment.ipHash(Enrichment.ipHasher("test-ip-hash-key"), "203.0.113.9"))
        .isEqualTo("cb232503523dfbc837bd2752ebecdf646e5d06d6d782cf449430d34a2d4dd854");
  }

  @Test
  void aDeadLetterKeepsNoClientIp() throws Exception {
    javax.crypto.Mac mac = Enrichment.ipHasher("test-ip-hash-key");
    Event event =
        Event.newBuilder()
            .setEventId("e-1")
            .setIp("203.0.113.9")
            .setUserAgent("Mozilla/5.0 Chrome/120.0.0.0")
            .build();
    RawRecord decodable = new RawRecord(event.toByteArray(), "t", 0, 3, 5, 7);
    InvalidEvent e =
        Enrichment.reject(
            decodable, RejectReason.REJECT_REASON_MISSING_ID, "user_id", 9, 16_384, mac);
    Event kept = Event.parseFrom(e.getRaw());
    assertThat(kept.getIp()).isEmpty();
    assertThat(kept.getIpHash()).isEqualTo(Enrichment.ipHash(mac, "203.0.113.9"));
    assertThat(kept.getUserAgent()).isEqualTo(event.getUserAgent());
    assertThat(e.getRawSha256()).isEqualTo(Enrichment.sha256Hex(event.toByteArray()));

    byte[] garbage = "\u00ff\u00feclient 203.0.113.9 said 10.0.0.1!".getBytes(ISO_8859_1);
    RawRecord undecodable = new RawRecord(garbage, "t", 0, 4, 5, 7);
    InvalidEvent u =
        Enrichment.reject(
            undecodable, RejectReason.REJECT_REASON_UNPARSEABLE, "not an Event", 9, 16_384, mac);
    assertThat(new String(u.getRaw().toByteArray(), ISO_8859_1))
        .isEqualTo("\u00ff\u00feclient ***.*.***.* said **.*.*.*!");
    assertThat(u.getRawSizeBytes()).isEqualTo(garbage.length);

    byte[] big = new byte[40_000];
    java.util.Arrays.fill(big, (byte) ' ');
    System.arraycopy("ip=198.51.100.23".getBytes(ISO_8859_1), 0, big, 10, 16);
    InvalidEvent o =
        Enrichment.reject(
            new RawRecord(big, "t", 0, 5, 5, 7),
            RejectReason.REJECT_REASON_OVERSIZE_RECORD,
            "too big",
            9,
            16_384,
            mac);
    assertThat(new String(o.getRaw().toByteArray(), ISO_8859_1)).contains("ip=***.**.***.**");
    assertThat(o.getRawTruncated()).isTrue();
  }

  @Test
  void aDeadLetterKeepsABoundedPrefixWithTheWholeValuesSizeAndHash() {
    byte[] big = new byte[1_048_000];
    java.util.Arrays.fill(big, (byte) 'x');
    RawRecord raw = new RawRecord(big, "t", 0, 1, 5, 7);
    InvalidEvent e =
        Enrichment.reject(
            raw, RejectReason.REJECT_REASON_OVERSIZE_RECORD, "too big", 9, 16_384, null);
    assertThat(e.getRaw().size()).isEqualTo(16_384);
    assertThat(e.getRawTruncated()).isTrue();
    assertThat(e.getRawSizeBytes()).isEqualTo(1_048_000);
    assertThat(e.getRawSha256()).isEqualTo(Enrichment.sha256Hex(big)).hasSize(64);
    assertThat(e.getSerializedSize()).isLessThan(17_000);
  }

  @Test
  void rawRecordIsAFlinkPojo() {
    assertThat(TypeInformation.of(RawRecord.class)).isInstanceOf(PojoTypeInfo.class);
  }
}
