// Pure helpers of the validate/enrich step: IP hashing, LSH tokens, reject records.
package dev.ecom.flink;

import com.google.protobuf.ByteString;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.UnknownFieldSet;
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
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
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
      RawRecord raw, String verdict, long nowMs, int maxRawBytes, Mac ipHasher) {
    int tab = verdict.indexOf('\t');
    String code = tab < 0 ? verdict : verdict.substring(0, tab);
    String detail = tab < 0 ? "" : verdict.substring(tab + 1);
    RejectReason reason;
    try {
      reason = RejectReason.valueOf(code);
    } catch (IllegalArgumentException e) {
      reason = RejectReason.REJECT_REASON_UNSPECIFIED;
    }
    return reject(raw, reason, code, detail, nowMs, maxRawBytes, ipHasher);
  }

  /**
   * An InvalidEvent with a reason from the proto enum. The dead letter keeps the value whole when
   * it has at most {@code maxRawBytes} (the job's --max-record-bytes: every record the size rule
   * lets through), else its first {@code maxRawBytes} bytes with raw_truncated set; its size and
   * SHA-256 always describe the whole value, and the source offset holds all of it. So a dead
   * letter is never much larger than the largest accepted record, whatever was sent.
   */
  public static InvalidEvent reject(
      RawRecord raw,
      RejectReason reason,
      String detail,
      long nowMs,
      int maxRawBytes,
      Mac ipHasher) {
    return reject(raw, reason, reason.name(), detail, nowMs, maxRawBytes, ipHasher);
  }

  /**
   * An InvalidEvent for a record that passed validation but is rejected later (late, duplicate):
   * raw is the event's protobuf encoding, the source and ingest time are the record's.
   */
  public static InvalidEvent reject(
      EnrichedEvent e, RejectReason reason, String detail, long nowMs) {
    // A validated event (unknown fields dropped) is within the record limit: kept whole, with
    // the IP's hash where the IP was (the enriched event carries no raw IP).
    byte[] value =
        e.getEvent().toBuilder().clearIp().setIpHash(e.getIpHash()).build().toByteArray();
    return invalid(
        value,
        value,
        Integer.MAX_VALUE,
        e.getSource(),
        e.getIngestedAtMs(),
        reason,
        reason.name(),
        detail,
        nowMs);
  }

  private static InvalidEvent reject(
      RawRecord raw,
      RejectReason reason,
      String code,
      String detail,
      long nowMs,
      int maxRawBytes,
      Mac ipHasher) {
    // Masked before the cut, so an address the cut splits is masked whole.
    byte[] kept =
        raw.value.length > maxRawBytes
            ? Arrays.copyOf(maskIpv4(raw.value), maxRawBytes)
            : withoutIp(raw.value, ipHasher);
    return invalid(
        raw.value,
        kept,
        maxRawBytes,
        sourceOffset(raw),
        raw.ingestedAtMs,
        reason,
        code,
        detail,
        nowMs);
  }

  private static final Pattern IPV4 = Pattern.compile("\\d{1,3}(?:\\.\\d{1,3}){3}");

  /**
   * A whole record's value as a dead letter keeps it: with no client IP. One that decodes as an
   * Event is re-encoded with ip replaced by its keyed hash (ip_hash) and unknown fields dropped, so
   * a replay still carries what Guard keys by; anything else, and any value when {@code ipHasher}
   * is null (a record that is not an event, e.g. from the catalog, whose bytes must stay as sent),
   * gets {@link #maskIpv4}.
   */
  static byte[] withoutIp(byte[] value, Mac ipHasher) {
    if (ipHasher == null) {
      return maskIpv4(value);
    }
    Event e;
    try {
      e = Event.parseFrom(value);
    } catch (InvalidProtocolBufferException notAnEvent) {
      return maskIpv4(value);
    }
    Event.Builder b =
        e.toBuilder().clearIp().setUnknownFields(UnknownFieldSet.getDefaultInstance());
    if (!e.getIp().isEmpty()) {
      b.setIpHash(ipHash(ipHasher, e.getIp()));
    }
    return b.build().toByteArray();
  }

  /**
   * {@code value} with every run that looks like an IPv4 address ("d.d.d.d", 1–3 digits each)
   * masked, a '*' for each digit: undecodable bytes can still hold an address as text. The bytes
   * keep their length and everything else.
   */
  static byte[] maskIpv4(byte[] value) {
    String s = new String(value, StandardCharsets.ISO_8859_1);
    Matcher m = IPV4.matcher(s);
    if (!m.find()) {
      return value;
    }
    char[] c = s.toCharArray();
    do {
      for (int i = m.start(); i < m.end(); i++) {
        if (c[i] != '.') {
          c[i] = '*';
        }
      }
    } while (m.find());
    return new String(c).getBytes(StandardCharsets.ISO_8859_1);
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
      byte[] kept,
      int maxRawBytes,
      SourceOffset source,
      long ingestedAtMs,
      RejectReason reason,
      String code,
      String detail,
      long nowMs) {
    boolean truncated = value.length > maxRawBytes;
    return InvalidEvent.newBuilder()
        .setRaw(ByteString.copyFrom(kept, 0, Math.min(kept.length, maxRawBytes)))
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
