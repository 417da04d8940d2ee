// The exact, un-noised totals of one category's window: the window's accumulator state.
package dev.ecom.flink.metrics;

/**
 * A Flink POJO (public no-arg constructor, public fields), so its state gets Flink's POJO
 * serializer and never Kryo. Exact values: noise is added once, when the window is released.
 */
public final class WindowCounts {
  /** Product views. */
  public long views;

  /** Add-to-cart events. */
  public long carts;

  /** Purchases. */
  public long purchases;

  /** Sum over purchases of quantity × unit price, each clamped to [0, revenue upper]. */
  public long revenueCents;

  public WindowCounts() {}

  public WindowCounts(long views, long carts, long purchases, long revenueCents) {
    this.views = views;
    this.carts = carts;
    this.purchases = purchases;
    this.revenueCents = revenueCents;
  }
}
