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
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
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
   * unknown reason name is kept in reason_code with reason UNSPECIFIED. At most {@code maxRawBytes}
   * of the value are kept (see {@link #reject(RawRecord, RejectReason, String, long, int)}).
   */
  public static InvalidEvent rejectFromVerdict(
      RawRecord raw, String verdict, long nowMs, int maxRawBytes) {
    int tab = verdict.indexOf('\t');
    String code = tab < 0 ? verdict : verdict.substring(0, tab);
    String detail = tab < 0 ? "" : verdict.substring(tab + 1);
    RejectReason reason;
    try {
      reason = RejectReason.valueOf(code);
    } catch (IllegalArgumentException e) {
      reason = RejectReason.REJECT_REASON_UNSPECIFIED;
    }
    return reject(raw, reason, code, detail, nowMs, maxRawBytes);
  }

  /**
   * An InvalidEvent with a reason from the proto enum. The dead letter keeps the value whole when
   * it has at most {@code maxRawBytes} (the job's --max-record-bytes: every record the size rule
   * lets through), else its first {@code maxRawBytes} bytes with raw_truncated set; its size and
   * SHA-256 always describe the whole value, and the source offset holds all of it. So a dead
   * letter is never much larger than the largest accepted record, whatever was sent.
   */
  public static InvalidEvent reject(
      RawRecord raw, RejectReason reason, String detail, long nowMs, int maxRawBytes) {
    return reject(raw, reason, reason.name(), detail, nowMs, maxRawBytes);
  }

  /**
   * An InvalidEvent for a record that passed validation but is rejected later (late, duplicate):
   * raw is the event's protobuf encoding, the source and ingest time are the record's.
   */
  public static InvalidEvent reject(
      EnrichedEvent e, RejectReason reason, String detail, long nowMs) {
    // A validated event (unknown fields dropped) is within the record limit: kept whole.
    return invalid(
        e.getEvent().toByteArray(),
        Integer.MAX_VALUE,
        e.getSource(),
        e.getIngestedAtMs(),
        reason,
        reason.name(),
        detail,
        nowMs);
  }

  private static InvalidEvent reject(
      RawRecord raw, RejectReason reason, String code, String detail, long nowMs, int maxRawBytes) {
    return invalid(
        raw.value, maxRawBytes, sourceOffset(raw), raw.ingestedAtMs, reason, code, detail, nowMs);
  }

  /** Lower-case hex SHA-256 of {@code value}. */
  static String sha256Hex(byte[] value) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(value));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("SHA-256 is not available in this JVM", e);
    }
  }

  private static InvalidEvent invalid(
      byte[] value,
      int maxRawBytes,
      SourceOffset source,
      long ingestedAtMs,
      RejectReason reason,
      String code,
      String detail,
      long nowMs) {
    boolean truncated = value.length > maxRawBytes;
    return InvalidEvent.newBuilder()
        .setRaw(ByteString.copyFrom(value, 0, truncated ? maxRawBytes : value.length))
        .setRawSizeBytes(value.length)
        .setRawSha256(sha256Hex(value))
        .setRawTruncated(truncated)
        .setSource(source)
        .setReason(reason)
        .setReasonCode(code)
        .setDetail(detail)
        .setIngestedAtMs(ingestedAtMs)
        .setRejectedAtMs(nowMs)
        .build();
  }
}
