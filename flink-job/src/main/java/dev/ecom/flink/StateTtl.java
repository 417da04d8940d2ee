// How long the keyed steps' state lives without use, and what cleaning it costs per access.
package dev.ecom.flink;

import java.io.Serializable;
import java.time.Duration;
import org.apache.flink.api.common.state.StateTtlConfig;

/**
 * A state time-to-live (processing time) and how expired entries leave the heap state: each state
 * access also checks the next {@code cleanupEntries} entries of that state and drops the expired
 * ones (Flink's incremental cleanup; Flink's own default is 5), and a checkpoint never writes an
 * expired entry. With 0, an expired entry stays in the heap until it is read again or the job
 * restores from a checkpoint. The TTLs here are days long and most state is cleared by its own step
 * first (a session when the watermark closes it), so the check mostly finds nothing, and every
 * entry checked is work on the hot path: 1 per access keeps the state bounded with a fifth of
 * Flink's work.
 *
 * @param ttlMs how long an entry lives after its last update (0: forever, no TTL)
 * @param cleanupEntries entries checked per state access (0: none)
 */
public record StateTtl(long ttlMs, int cleanupEntries) implements Serializable {
  /** Entries checked per state access unless --state-ttl-cleanup-entries says otherwise. */
  public static final int DEFAULT_CLEANUP_ENTRIES = 1;

  public StateTtl {
    if (ttlMs < 0 || cleanupEntries < 0) {
      throw new IllegalArgumentException(
          "state TTL " + ttlMs + " ms, cleanup entries " + cleanupEntries + ": both must be >= 0");
    }
  }

  /** A TTL of {@code ttlMs} with the default cleanup. */
  public static StateTtl of(long ttlMs) {
    return new StateTtl(ttlMs, DEFAULT_CLEANUP_ENTRIES);
  }

  public boolean enabled() {
    return ttlMs > 0;
  }

  /** Flink's TTL config, renewed on {@code update}; expired values are never returned. */
  public StateTtlConfig config(StateTtlConfig.UpdateType update) {
    StateTtlConfig.Builder b =
        StateTtlConfig.newBuilder(Duration.ofMillis(ttlMs))
            .setUpdateType(update)
            .setStateVisibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
            .cleanupFullSnapshot();
    if (cleanupEntries > 0) {
      b.cleanupIncrementally(cleanupEntries, false);
    } else {
      b.disableCleanupInBackground();
    }
    return b.build();
  }
}
