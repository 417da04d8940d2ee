// Per-minute, per-category shop metrics with differential-privacy noise: events in, WindowMetrics
// out.
package dev.ecom.flink.metrics;

import dev.ecom.flink.serde.ProtoTypeInfo;
import dev.ecom.proto.v1.EnrichedEvent;
import dev.ecom.proto.v1.Event;
import dev.ecom.proto.v1.WindowMetrics;
import java.time.Duration;
import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.metrics.Counter;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.util.OutputTag;

/**
 * events keyed by category → tumbling event-time windows → exact counts ({@link WindowCounts}) →
 * one batched DP release per window ({@link DpRelease}) → {@link WindowMetrics}.
 *
 * <p>The input must carry event time as its record timestamp, with watermarks. Windows close on the
 * watermark with no allowed lateness; events that arrive for a closed window leave on {@link #LATE}
 * of the returned operator and are counted ({@code lateEvents}).
 */
public final class MetricsWindows {
  /** Stable operator ids: changing one drops that operator's state on restore. */
  public static final String UID_WINDOW = "metrics-window";

  public static final String UID_LATE_COUNTER = "metrics-late-counter";

  public static final String UID_INPUT = "metrics-input";

  /**
   * Events that came after their window closed (in {@link #slim}'s form). The job diverts late
   * events before this step, so this is a safety net: build() already counts them; the caller may
   * also sink them.
   */
  public static final OutputTag<EnrichedEvent> LATE =
      new OutputTag<>("metrics-late", ProtoTypeInfo.forClass(EnrichedEvent.class));

  private MetricsWindows() {}

  /** The metrics of {@code events}, one record per window and category that saw an event. */
  public static SingleOutputStreamOperator<WindowMetrics> build(
      DataStream<EnrichedEvent> events, MetricsConfig cfg) {
    TypeInformation<WindowCounts> counts = TypeInformation.of(WindowCounts.class);
    SingleOutputStreamOperator<WindowMetrics> metrics =
        events
            .map(MetricsWindows::slim)
            .returns(ProtoTypeInfo.forClass(EnrichedEvent.class))
            .uid(UID_INPUT)
            .name("metrics-input")
            // Chained to its input (same parallelism, forward): slimming must not add a
            // round-robin shuffle, which would deliver an event and the watermarks before it
            // over different channels, so a window could still be open for a late event.
            .setParallelism(events.getParallelism())
            // The catalog category, "" for events without a product or not in the catalog.
            .keyBy(EnrichedEvent::getCategory, Types.STRING)
            .window(
                new EventTimeTumbling<>(cfg.windowSizeMs(), new EventTimeTumbling.EventTimeOf()))
            .allowedLateness(Duration.ZERO)
            .sideOutputLateData(LATE)
            .aggregate(
                new CountEvents(cfg.revenueUpperCents()),
                new DpRelease(cfg),
                counts,
                counts,
                ProtoTypeInfo.forClass(WindowMetrics.class))
            .uid(UID_WINDOW)
            .name("metrics-window");
    // The window operator counts late records only when it drops them; with a side output we
    // count them ourselves. A side output may feed several consumers, so the caller's is
    // unaffected.
    metrics
        .getSideOutput(LATE)
        .sinkTo(new LateEventCounter())
        .uid(UID_LATE_COUNTER)
        .name("metrics-late-counter");
    return metrics;
  }

  /**
   * Only what the windows read (category, event time, kind, quantity, unit price) and the event id,
   * so the enriched event with its features, tokens and LSH signature does not cross the network to
   * the window step. {@link #LATE} carries events in this form.
   */
  public static EnrichedEvent slim(EnrichedEvent e) {
    Event ev = e.getEvent();
    Event.Builder b =
        Event.newBuilder()
            .setEventId(ev.getEventId())
            .setEventTimeMs(ev.getEventTimeMs())
            .setKind(ev.getKind());
    if (ev.hasQuantity()) {
      b.setQuantity(ev.getQuantity());
    }
    if (ev.hasUnitPriceCents()) {
      b.setUnitPriceCents(ev.getUnitPriceCents());
    }
    return EnrichedEvent.newBuilder().setCategory(e.getCategory()).setEvent(b).build();
  }

  /**
   * What one purchase adds to revenue: quantity × unit price, clamped to {@code [0, upperCents]}.
   * An absent or zero quantity means one item, as in ecom-core's session features.
   */
  static long clampedRevenueCents(Event e, long upperCents) {
    long quantity = e.hasQuantity() ? Math.max(1, e.getQuantity()) : 1;
    long price = Math.max(0, e.getUnitPriceCents());
    try {
      return Math.min(Math.multiplyExact(quantity, price), upperCents);
    } catch (ArithmeticException overflow) {
      return upperCents;
    }
  }

  private static long saturatingAdd(long a, long b) {
    long sum = a + b;
    // Both are >= 0, so overflow shows as a negative sum.
    return sum < 0 ? Long.MAX_VALUE : sum;
  }

  /** Exact counts and clamped revenue of one window and category. */
  static final class CountEvents
      implements AggregateFunction<EnrichedEvent, WindowCounts, WindowCounts> {
    private static final long serialVersionUID = 1L;

    private final long revenueUpperCents;

    CountEvents(long revenueUpperCents) {
      this.revenueUpperCents = revenueUpperCents;
    }

    @Override
    public WindowCounts createAccumulator() {
      return new WindowCounts();
    }

    @Override
    public WindowCounts add(EnrichedEvent value, WindowCounts acc) {
      Event e = value.getEvent();
      switch (e.getKind()) {
        case EVENT_KIND_PRODUCT_VIEW -> acc.views++;
        case EVENT_KIND_ADD_TO_CART -> acc.carts++;
        case EVENT_KIND_PURCHASE -> {
          acc.purchases++;
          acc.revenueCents =
              saturatingAdd(acc.revenueCents, clampedRevenueCents(e, revenueUpperCents));
        }
        default -> {
          // Other kinds open the window (and so give it a record) but add nothing.
        }
      }
      return acc;
    }

    @Override
    public WindowCounts getResult(WindowCounts acc) {
      return acc;
    }

    @Override
    public WindowCounts merge(WindowCounts a, WindowCounts b) {
      return new WindowCounts(
          a.views + b.views,
          a.carts + b.carts,
          a.purchases + b.purchases,
          saturatingAdd(a.revenueCents, b.revenueCents));
    }
  }

  /** Counts late events in {@code lateEvents} and keeps nothing. */
  static final class LateEventCounter implements Sink<EnrichedEvent> {
    private static final long serialVersionUID = 1L;

    @Override
    public SinkWriter<EnrichedEvent> createWriter(WriterInitContext context) {
      Counter late = context.metricGroup().counter("lateEvents");
      return new SinkWriter<>() {
        @Override
        public void write(EnrichedEvent element, Context ctx) {
          late.inc();
        }

        @Override
        public void flush(boolean endOfInput) {}

        @Override
        public void close() {}
      };
    }
  }
}
