// The JNI entry points of rust/ecom-jni. Names and signatures are the contract with the Rust side.
package dev.ecom.flink.nativelib;

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
   * "REJECT_REASON_X\tdetail" (X = a RejectReason enum name from events.proto).
   */
  public static native String[] validateBatch(byte[][] records, long nowMs);

  /**
   * MinHash LSH for n token sets. tokens is all sets flattened; set i is tokens[offsets[i] ..
   * offsets[i+1]) (offsets has n+1 entries). Returns n * (numPerm + numBands) longs: for each set
   * its numPerm signature values then its numBands band-bucket hashes.
   */
  public static native long[] lshBatch(String[] tokens, int[] offsets);

  /** {numPerm, numBands} of the LSH parameters compiled into the library. */
  public static native int[] lshShape();

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
  public static native long[] dpReleaseWindow(
      String[] streams,
      long windowStartMs,
      long[] values,
      long[] uppers,
      double[] epsilons,
      double budget,
      double[] spentOut);

  /** Version string of the native library (crate version). */
  public static native String version();
}
