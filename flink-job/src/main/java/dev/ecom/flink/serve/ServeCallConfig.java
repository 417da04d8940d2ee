// How the job calls one ecom serve method: where, how long, how many at once.
package dev.ecom.flink.serve;

import java.io.Serializable;

/**
 * @param serveAddress gRPC target of ecom serve (host:port)
 * @param timeoutMs longest an event waits for its answer before the fallback (Flink's async timeout
 *     and the RPC deadline)
 * @param capacity events in flight per task (Flink's async capacity)
 * @param maxBatch events per batch RPC
 * @param maxDelayMs longest the first event of a batch waits for the batch to fill
 * @param security TLS, client certificate and token of the channel
 */
public record ServeCallConfig(
    String serveAddress,
    long timeoutMs,
    int capacity,
    int maxBatch,
    long maxDelayMs,
    ServeSecurity security)
    implements Serializable {

  /** A plaintext call without a token. */
  public ServeCallConfig(
      String serveAddress, long timeoutMs, int capacity, int maxBatch, long maxDelayMs) {
    this(serveAddress, timeoutMs, capacity, maxBatch, maxDelayMs, ServeSecurity.NONE);
  }
}
