// What the per-minute, per-category DP metrics need to be told: window, ε, clamp.
package dev.ecom.flink.metrics;

import java.io.Serializable;

/**
 * Parameters of {@link MetricsWindows}. Serializable because the window function keeps it.
 *
 * @param windowSizeMs length of the tumbling event-time windows
 * @param epsilonPerValue ε each of a record's four released values (views, carts, purchases,
 *     revenue) spends; each is its own stream, released once per window
 * @param revenueUpperCents the most one purchase may add to revenue (quantity × unit price is
 *     clamped to {@code [0, revenueUpperCents]}); it is the revenue release's sensitivity
 */
public record MetricsConfig(long windowSizeMs, double epsilonPerValue, long revenueUpperCents)
    implements Serializable {

  /** One minute. */
  public static final long DEFAULT_WINDOW_SIZE_MS = 60_000;

  public MetricsConfig {
    if (windowSizeMs <= 0) {
      throw new IllegalArgumentException("windowSizeMs: " + windowSizeMs + " must be > 0");
    }
    if (!(Double.isFinite(epsilonPerValue) && epsilonPerValue > 0)) {
      throw new IllegalArgumentException(
          "epsilonPerValue: " + epsilonPerValue + " must be finite and > 0");
    }
    if (revenueUpperCents <= 0) {
      throw new IllegalArgumentException(
          "revenueUpperCents: " + revenueUpperCents + " must be > 0 (it is the sensitivity)");
    }
  }
}
