// Releases one closed window's exact counts with differential-privacy noise (ecom-core via JNI).
package dev.ecom.flink.metrics;

import dev.ecom.flink.nativelib.EcomNative;
import dev.ecom.flink.nativelib.NativeLoader;
import dev.ecom.proto.v1.WindowMetrics;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.streaming.api.functions.windowing.ProcessWindowFunction;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;
import org.apache.flink.util.Collector;

/**
 * One {@link EcomNative#dpReleaseWindow} call per window releases its four values, each as its own
 * stream ("views/sofas", "carts/sofas", "purchases/sofas", "revenue/sofas") at ε per value. The
 * budget per stream and window is that ε: one release each, and the native accountant refuses a
 * second.
 */
final class DpRelease
    extends ProcessWindowFunction<WindowCounts, WindowMetrics, String, TimeWindow> {
  private static final long serialVersionUID = 1L;

  /** The mechanism ecom-core's dp module applies to every value. */
  static final String MECHANISM = "discrete_laplace";

  private final MetricsConfig cfg;

  private transient Counter windowsReleased;
  private transient double epsilonSpent;

  DpRelease(MetricsConfig cfg) {
    this.cfg = cfg;
  }

  @Override
  public void open(OpenContext openContext) throws Exception {
    super.open(openContext);
    // Load explicitly so a missing library fails here with its full message.
    NativeLoader.load();
    windowsReleased = getRuntimeContext().getMetricGroup().counter("windowsReleased");
    // A sum of doubles, so a gauge (a Counter holds a long). Since this task started.
    getRuntimeContext().getMetricGroup().gauge("epsilonSpent", (Gauge<Double>) () -> epsilonSpent);
  }

  @Override
  public void process(
      String category, Context ctx, Iterable<WindowCounts> exact, Collector<WindowMetrics> out) {
    TimeWindow w = ctx.window();
    WindowMetrics m =
        release(
            category,
            w.getStart(),
            w.getEnd(),
            exact.iterator().next(),
            cfg,
            ctx.currentProcessingTime());
    windowsReleased.inc();
    epsilonSpent += m.getEpsilonSpent();
    out.collect(m);
  }

  /** The noisy record of one window and category, from its exact counts. */
  static WindowMetrics release(
      String category,
      long windowStartMs,
      long windowEndMs,
      WindowCounts exact,
      MetricsConfig cfg,
      long nowMs) {
    String id = windowStartMs + "/" + category;
    String[] streams = {
      "views/" + category, "carts/" + category, "purchases/" + category, "revenue/" + category
    };
    long[] values = {exact.views, exact.carts, exact.purchases, exact.revenueCents};
    // 0 = a count (sensitivity 1); revenue is a sum of per-event values clamped to [0, upper].
    long[] uppers = {0, 0, 0, cfg.revenueUpperCents()};
    double eps = cfg.epsilonPerValue();
    double[] epsilons = {eps, eps, eps, eps};
    double[] spent = new double[streams.length];
    long[] noisy =
        EcomNative.dpReleaseWindow(streams, windowStartMs, values, uppers, epsilons, eps, spent);
    if (noisy == null || noisy.length != streams.length) {
      throw new IllegalStateException(
          "dpReleaseWindow returned "
              + (noisy == null ? "null" : noisy.length + " values")
              + " for "
              + streams.length
              + " streams");
    }
    // Noise can push a value below 0. Clamping is post-processing of a DP output, so it costs
    // no ε; it biases small values upwards, which readers of near-zero counts should know.
    long views = Math.max(0, noisy[0]);
    long carts = Math.max(0, noisy[1]);
    long purchases = Math.max(0, noisy[2]);
    long revenueCents = Math.max(0, noisy[3]);
    double epsilonSpent = 0;
    for (double s : spent) {
      epsilonSpent += s;
    }
    return WindowMetrics.newBuilder()
        .setId(id)
        .setWindowStartMs(windowStartMs)
        .setWindowEndMs(windowEndMs)
        .setCategory(category)
        .setViews(views)
        .setCarts(carts)
        .setPurchases(purchases)
        .setRevenueCents(revenueCents)
        // From the noisy values only: post-processing, no extra ε.
        .setConversion(views > 0 ? (double) purchases / views : 0.0)
        .setEpsilonSpent(epsilonSpent)
        .setMechanism(MECHANISM)
        .setEmittedAtMs(nowMs)
        .build();
  }
}
