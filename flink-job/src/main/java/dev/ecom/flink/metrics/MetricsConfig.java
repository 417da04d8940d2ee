// What the per-minute, per-category DP metrics need to be told: window, ε, budget, clamp.
package dev.ecom.flink.metrics;

import java.io.Serializable;

/**
 * Parameters of {@link MetricsWindows}. Serializable because the window function keeps it.
 *
 * @param windowSizeMs length of the tumbling event-time windows
 * @param epsilonPerValue ε each of a record's four released values (views, carts, purchases,
 *     revenue) spends
 * @param budgetPerStreamWindow the most ε one metric stream (e.g. "views/sofas") may spend on one
 *     window; ecom-core's accountant refuses a release past it. A stream is released once per
 *     window, so this must be at least {@code epsilonPerValue} (build() checks); it is a ceiling
 *     the native side enforces, not a pool to draw several releases from
 * @param revenueUpperCents the most one purchase may add to revenue (quantity × unit price is
 *     clamped to {@code [0, revenueUpperCents]}); it is the revenue release's sensitivity
 */
public record MetricsConfig(
    long windowSizeMs, double epsilonPerValue, double budgetPerStreamWindow, long revenueUpperCents)
    implements Serializable {

  /** One minute. */
  public static final long DEFAULT_WINDOW_SIZE_MS = 60_000;

  /**
   * Counts get noise of scale 1/ε = 2, a standard deviation of about 2.8 events per minute and
   * category: small next to the hundreds a busy category sees, large enough that one event is
   * hidden. A purchase moves two values (purchases and revenue), so one event costs at most 2 × 0.5
   * = 1.0 per window.
   */
  public static final double DEFAULT_EPSILON_PER_VALUE = 0.5;

  /** Exactly one release per stream and window: anything more is refused. */
  public static final double DEFAULT_BUDGET_PER_STREAM_WINDOW = DEFAULT_EPSILON_PER_VALUE;

  /**
   * 250,000 cents: above twice every category's median price in the generator's catalog, below the
   * dearest sofas and bulk orders, which are clamped. Revenue noise has scale upper/ε (500,000
   * cents at the defaults, a standard deviation of about 707,000 cents per window and category):
   * per-minute revenue is only readable summed over many windows or at a larger ε.
   */
  public static final long DEFAULT_REVENUE_UPPER_CENTS = 250_000;

  public MetricsConfig {
    if (windowSizeMs <= 0) {
      throw new IllegalArgumentException("windowSizeMs: " + windowSizeMs + " must be > 0");
    }
    finitePositive("epsilonPerValue", epsilonPerValue);
    finitePositive("budgetPerStreamWindow", budgetPerStreamWindow);
    if (revenueUpperCents <= 0) {
      throw new IllegalArgumentException(
          "revenueUpperCents: " + revenueUpperCents + " must be > 0 (it is the sensitivity)");
    }
  }

  /**
   * Fails when ε per value exceeds the budget, since then every window would be refused. Checked
   * when the pipeline is built, not here, so a test can still hand such a config to the release.
   */
  void requireBudgetCoversEpsilon() {
    if (epsilonPerValue > budgetPerStreamWindow) {
      throw new IllegalArgumentException(
          "epsilonPerValue "
              + epsilonPerValue
              + " exceeds budgetPerStreamWindow "
              + budgetPerStreamWindow
              + ": every window would be refused");
    }
  }

  /** The defaults above. */
  public static MetricsConfig defaults() {
    return new MetricsConfig(
        DEFAULT_WINDOW_SIZE_MS,
        DEFAULT_EPSILON_PER_VALUE,
        DEFAULT_BUDGET_PER_STREAM_WINDOW,
        DEFAULT_REVENUE_UPPER_CENTS);
  }

  private static void finitePositive(String name, double value) {
    if (!(Double.isFinite(value) && value > 0)) {
      throw new IllegalArgumentException(name + ": " + value + " must be finite and > 0");
    }
  }
}
