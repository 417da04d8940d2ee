// How the job calls one ecom serve method: where, how long, how many at once.
package dev.ecom.flink.serve;

import java.io.Serializable;

/**
 * @param serveAddress gRPC target of ecom serve (host:port)
 * @param timeoutMs longest an event waits for its answer before the fallback (Flink's async timeout
 *     and the RPC deadline)
 * @param capacity events in flight per task (Flink's async capacity)
 * @param batchSize events per batch RPC
 * @param batchMaxDelayMs longest the first event of a batch waits for the batch to fill
 * @param security TLS, client certificate and token of the channel
 * @param inProcessModels a models directory: the method runs inside the TaskManager over JNI from
 *     its CURRENT model (Score and Recommend only) instead of over gRPC; null: gRPC to serveAddress
 */
public record ServeCallConfig(
    String serveAddress,
    long timeoutMs,
    int capacity,
    int batchSize,
    long batchMaxDelayMs,
    ServeSecurity security,
    String inProcessModels)
    implements Serializable {}
