// The JNI entry points of rust/ecom-jni. Names and signatures are the contract with the Rust side.
package dev.ecom.flink.nativelib;

/**
 * ecom-core's validation and MinHash LSH, in-process. Every method is batched. Native errors arrive
 * as {@link IllegalArgumentException} (bad arguments) or {@link RuntimeException}.
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

  /** Version string of the native library (crate version). */
  public static native String version();
}
