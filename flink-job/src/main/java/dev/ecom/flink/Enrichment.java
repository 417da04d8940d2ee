// Pure helpers of the validate/enrich step: IP hashing, LSH tokens, reject records.
package dev.ecom.flink;

import com.google.protobuf.ByteString;
import dev.ecom.proto.v1.EnrichedEvent;
import dev.ecom.proto.v1.Event;
import dev.ecom.proto.v1.InvalidEvent;
import dev.ecom.proto.v1.RejectReason;
import dev.ecom.proto.v1.SourceOffset;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/** Stateless functions used by {@link ValidateEnrichOperator}; no Flink, no native code. */
public final class Enrichment {
  private Enrichment() {}

  /** A fresh HMAC-SHA256 keyed with {@code key} (one per task: Mac is not thread-safe). */
  public static Mac ipHasher(String key) {
    try {
      Mac mac = Mac.getInstance("HmacSHA256");
      mac.init(new SecretKeySpec(key.getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
      return mac;
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("HmacSHA256 is not available in this JVM", e);
    }
  }

  /** Lowercase hex HMAC-SHA256 of the IP, or "" when there is no IP. */
  public static String ipHash(Mac mac, String ip) {
    if (ip.isEmpty()) {
      return "";
    }
    return HexFormat.of().formatHex(mac.doFinal(ip.getBytes(StandardCharsets.UTF_8)));
  }

  /**
   * The MinHash token set of one event: product_id (if any), page, the kind's enum name, and the
   * lowercase words of the search query. Empty values are left out.
   */
  public static List<String> lshTokens(Event e) {
    List<String> tokens = new ArrayList<>(8);
    if (e.hasProductId() && !e.getProductId().isEmpty()) {
      tokens.add(e.getProductId());
    }
    if (!e.getPage().isEmpty()) {
      tokens.add(e.getPage());
    }
    tokens.add(e.getKind().name());
    if (e.hasSearchQuery()) {
      for (String word : e.getSearchQuery().toLowerCase(Locale.ROOT).split("\\s+")) {
        if (!word.isEmpty()) {
          tokens.add(word);
        }
      }
    }
    return tokens;
  }

  /** Where a raw record came from. */
  public static SourceOffset sourceOffset(RawRecord raw) {
    return SourceOffset.newBuilder()
        .setTopic(raw.topic)
        .setPartition(raw.partition)
        .setOffset(raw.offset)
        .build();
  }

  /**
   * An InvalidEvent from the native validator's verdict {@code "REJECT_REASON_X\tdetail"}. An
   * unknown reason name is kept in reason_code with reason UNSPECIFIED.
   */
  public static InvalidEvent rejectFromVerdict(RawRecord raw, String verdict, long nowMs) {
    int tab = verdict.indexOf('\t');
    String code = tab < 0 ? verdict : verdict.substring(0, tab);
    String detail = tab < 0 ? "" : verdict.substring(tab + 1);
    RejectReason reason;
    try {
      reason = RejectReason.valueOf(code);
    } catch (IllegalArgumentException e) {
      reason = RejectReason.REJECT_REASON_UNSPECIFIED;
    }
    return reject(raw, reason, code, detail, nowMs);
  }

  /** An InvalidEvent with a reason from the proto enum. */
  public static InvalidEvent reject(RawRecord raw, RejectReason reason, String detail, long nowMs) {
    return reject(raw, reason, reason.name(), detail, nowMs);
  }

  /**
   * An InvalidEvent for a record that passed validation but is rejected later (late, duplicate):
   * raw is the event's protobuf encoding, the source and ingest time are the record's.
   */
  public static InvalidEvent reject(
      EnrichedEvent e, RejectReason reason, String detail, long nowMs) {
    return invalid(
        e.getEvent().toByteString(),
        e.getSource(),
        e.getIngestedAtMs(),
        reason,
        reason.name(),
        detail,
        nowMs);
  }

  private static InvalidEvent reject(
      RawRecord raw, RejectReason reason, String code, String detail, long nowMs) {
    return invalid(
        ByteString.copyFrom(raw.value),
        sourceOffset(raw),
        raw.ingestedAtMs,
        reason,
        code,
        detail,
        nowMs);
  }

  private static InvalidEvent invalid(
      ByteString raw,
      SourceOffset source,
      long ingestedAtMs,
      RejectReason reason,
      String code,
      String detail,
      long nowMs) {
    return InvalidEvent.newBuilder()
        .setRaw(raw)
        .setSource(source)
        .setReason(reason)
        .setReasonCode(code)
        .setDetail(detail)
        .setIngestedAtMs(ingestedAtMs)
        .setRejectedAtMs(nowMs)
        .build();
  }
}
