// The JNI entry points of rust/ecom-jni. Names and signatures are the contract with the Rust side.
package dev.ecom.flink.nativelib;

import java.nio.charset.StandardCharsets;

/**
 * ecom-core's validation, session features, MinHash LSH and differential privacy, in-process. Every
 * method is batched. Native errors arrive as {@link IllegalArgumentException} (bad arguments) or
 * {@link RuntimeException}.
 */
public final class EcomNative {
  static {
    NativeLoader.load();
  }

  private EcomNative() {}

  /**
   * Validates raw Event protobuf records with ecom-core. One entry per record: null if valid, else
   * "REJECT_REASON_X\tdetail" (X = a RejectReason enum name from events.proto). A record over
   * {@code maxRecordBytes} is REJECT_REASON_OVERSIZE_RECORD.
   */
  public static native String[] validateBatch(byte[][] records, long nowMs, int maxRecordBytes);

  /**
   * MinHash LSH for n token sets. tokens is all sets flattened; set i is tokens[offsets[i] ..
   * offsets[i+1]) (offsets has n+1 entries). Returns n * (numPerm + numBands) longs: for each set
   * its numPerm signature values then its numBands band-bucket hashes. numPerm must be a positive
   * multiple of numBands (training and serving must use the same pair).
   */
  public static long[] lshBatch(String[] tokens, int[] offsets, int numPerm, int numBands) {
    Utf8 packed = Utf8.pack(tokens, "tokens");
    return lshBatchUtf8(packed.bytes(), packed.ends(), offsets, numPerm, numBands);
  }

  private static native long[] lshBatchUtf8(
      byte[] tokens, int[] tokenEnds, int[] offsets, int numPerm, int numBands);

  /**
   * Folds event i (EnrichedEvent bytes) into session state i (SessionState bytes from an earlier
   * call, or null for a new session) and writes its feature vector to {@code featuresOut[i * F ..
   * (i + 1) * F)}, F = {@code featureSchema().length - 1}. {@code users} holds 3 longs per event
   * (prior sessions, prior purchases, last session start ms) or is null. Returns the new states. An
   * event must come with its session's latest state, so one session appears at most once per batch.
   */
  public static native byte[][] sessionUpdateBatch(
      byte[][] states, byte[][] events, long[] users, double[] featuresOut);

  /** The feature schema: its hash first, then the feature names in order. */
  public static native String[] featureSchema();

  /**
   * Releases one window's metrics with OpenDP's discrete Laplace noise. Value i is a count ({@code
   * uppers[i] == 0}) or a sum of per-event values clamped to {@code [0, uppers[i]]}, released at
   * {@code epsilons[i]} and charged to {@code streams[i]}'s budget for this window; {@code
   * spentOut[i]} gets the ε it spent. When any stream would exceed {@code budget}, nothing is
   * released and an {@link IllegalStateException} says which.
   */
  public static long[] dpReleaseWindow(
      String[] streams,
      long windowStartMs,
      long[] values,
      long[] uppers,
      double[] epsilons,
      double budget,
      double[] spentOut) {
    Utf8 packed = Utf8.pack(streams, "streams");
    return dpReleaseWindowUtf8(
        packed.bytes(), packed.ends(), windowStartMs, values, uppers, epsilons, budget, spentOut);
  }

  private static native long[] dpReleaseWindowUtf8(
      byte[] streams,
      int[] streamEnds,
      long windowStartMs,
      long[] values,
      long[] uppers,
      double[] epsilons,
      double budget,
      double[] spentOut);

  /**
   * Strings as one UTF-8 array and the end of each: one JNI copy per batch, where a String[] costs
   * several JNI calls per string.
   */
  private record Utf8(byte[] bytes, int[] ends) {
    static Utf8 pack(String[] strings, String name) {
      if (strings == null) {
        throw new IllegalArgumentException("ecom-jni: " + name + " must not be null");
      }
      int[] ends = new int[strings.length];
      byte[][] parts = new byte[strings.length][];
      int total = 0;
      for (int i = 0; i < strings.length; i++) {
        if (strings[i] == null) {
          throw new IllegalArgumentException("ecom-jni: " + name + "[" + i + "] is null");
        }
        parts[i] = strings[i].getBytes(StandardCharsets.UTF_8);
        total += parts[i].length;
        ends[i] = total;
      }
      byte[] bytes = new byte[total];
      int at = 0;
      for (byte[] part : parts) {
        System.arraycopy(part, 0, bytes, at, part.length);
        at += part.length;
      }
      return new Utf8(bytes, ends);
    }
  }

  /** Version string of the native library (crate version). */
  public static native String version();
}
