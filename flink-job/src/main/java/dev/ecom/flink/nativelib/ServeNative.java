// The JNI entry points of rust/ecom-jni-serve. Names and signatures are the contract with the Rust
// side.
package dev.ecom.flink.nativelib;

/**
 * ecom serve's Score and Recommend inside the TaskManager: the same Rust code answering the same
 * messages (their protobuf bytes) from the same model files, with no network hop. The models
 * directory's CURRENT version is loaded on first use and reloaded within seconds when CURRENT
 * moves, as ecom serve does; a version that fails to load leaves the previous one answering. Errors
 * arrive as {@link RuntimeException} whose message names the cause (as serve's status would).
 */
public final class ServeNative {
  static {
    NativeLoader.loadServe();
  }

  private ServeNative() {}

  /** Score.PredictBatch: ScoreBatchRequest bytes in, ScoreBatchResponse bytes out. */
  public static native byte[] scoreBatch(String modelsDir, byte[] request);

  /** Recommend.SimilarBatch: SimilarBatchRequest bytes in, SimilarBatchResponse bytes out. */
  public static native byte[] similarBatch(String modelsDir, byte[] request);

  /** The version calls answer with now, loading it if none is yet. */
  public static native String modelVersion(String modelsDir);
}
