// The DP metrics windows on a MiniCluster: bounded events with event time in, WindowMetrics out.
package dev.ecom.flink;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.ecom.flink.metrics.MetricsConfig;
import dev.ecom.flink.metrics.MetricsWindows;
import dev.ecom.flink.serde.ProtoTypeInfo;
import dev.ecom.proto.v1.EnrichedEvent;
import dev.ecom.proto.v1.Event;
import dev.ecom.proto.v1.EventKind;
import dev.ecom.proto.v1.WindowMetrics;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.eventtime.Watermark;
import org.apache.flink.api.common.eventtime.WatermarkGenerator;
import org.apache.flink.api.common.eventtime.WatermarkOutput;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.Metric;
import org.apache.flink.runtime.testutils.InMemoryReporter;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

class MetricsWindowsMiniClusterTest {
  private static final InMemoryReporter REPORTER = InMemoryReporter.createWithRetainedMetrics();

  @RegisterExtension
  static final MiniClusterExtension MINI_CLUSTER =
      new MiniClusterExtension(
          new MiniClusterResourceConfiguration.Builder()
              .setConfiguration(REPORTER.addToConfiguration(new Configuration()))
              .setNumberTaskManagers(1)
              .setNumberSlotsPerTaskManager(2)
              .build());

  /** So large that the noise is all but zero: released values can be compared to the truth. */
  private static final MetricsConfig EXACTISH = new MetricsConfig(60_000, 1e7, 250_000);

  private static final List<String> CATEGORIES = List.of("sofas", "beds", "rugs", "");
  private static final EventKind[] KINDS = {
    EventKind.EVENT_KIND_PRODUCT_VIEW,
    EventKind.EVENT_KIND_PRODUCT_VIEW,
    EventKind.EVENT_KIND_PRODUCT_VIEW,
    EventKind.EVENT_KIND_ADD_TO_CART,
    EventKind.EVENT_KIND_PURCHASE,
    EventKind.EVENT_KIND_PAGE_VIEW,
  };

  /** A watermark right behind every event, so "late" does not depend on a periodic timer. */
  private static final class EveryEvent implements WatermarkGenerator<EnrichedEvent> {
    private long max = Long.MIN_VALUE;

    @Override
    public void onEvent(EnrichedEvent e, long timestamp, WatermarkOutput out) {
      max = Math.max(max, timestamp);
      out.emitWatermark(new Watermark(max - 1));
    }

    @Override
    public void onPeriodicEmit(WatermarkOutput out) {}
  }

  private static EnrichedEvent event(int n, long timeMs, String category, EventKind kind) {
    Event.Builder e =
        TestEvents.valid(n, timeMs + 1_000).toBuilder().setEventTimeMs(timeMs).setKind(kind);
    if (category.isEmpty()) {
      e.clearProductId();
    }
    if (kind == EventKind.EVENT_KIND_PURCHASE) {
      e.setQuantity(1 + n % 3).setUnitPriceCents(10_000L * (1 + n % 20));
    }
    return EnrichedEvent.newBuilder().setEvent(e).setCategory(category).build();
  }

  @Test
  void windowsReleaseEveryCategoryOnceWithTheInputsTotalsAndCountLateEvents() throws Exception {
    // 3 minutes of events in time order, then one event for the long-closed first minute.
    SplittableRandom rnd = new SplittableRandom(7);
    List<EnrichedEvent> input = new ArrayList<>();
    Map<String, long[]> truth = new HashMap<>(); // id -> views, carts, purchases, revenue
    for (int n = 0; n < 900; n++) {
      long t = 1_000_000_020_000L + n * 200L;
      long start = t - t % 60_000;
      EnrichedEvent e =
          event(
              n,
              t,
              CATEGORIES.get(rnd.nextInt(CATEGORIES.size())),
              KINDS[rnd.nextInt(KINDS.length)]);
      input.add(e);
      long[] v = truth.computeIfAbsent(start + "/" + e.getCategory(), k -> new long[4]);
      switch (e.getEvent().getKind()) {
        case EVENT_KIND_PRODUCT_VIEW -> v[0]++;
        case EVENT_KIND_ADD_TO_CART -> v[1]++;
        case EVENT_KIND_PURCHASE -> {
          v[2]++;
          v[3] +=
              Math.min(
                  e.getEvent().getQuantity() * e.getEvent().getUnitPriceCents(),
                  EXACTISH.revenueUpperCents());
        }
        default -> {}
      }
    }
    EnrichedEvent late = event(10_000, 1_000_000_020_500L, "sofas", EventKind.EVENT_KIND_PURCHASE);
    input.add(late);

    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
    env.setParallelism(2);
    // As in EcomJob: fail rather than fall back to Kryo.
    env.configure(new Configuration().set(PipelineOptions.GENERIC_TYPES, false));
    // One source task, so the window tasks see the watermarks in the order the events imply.
    DataStream<EnrichedEvent> events =
        env.fromData(input, ProtoTypeInfo.forClass(EnrichedEvent.class))
            .setParallelism(1)
            .assignTimestampsAndWatermarks(
                WatermarkStrategy.<EnrichedEvent>forGenerator(ctx -> new EveryEvent())
                    .withTimestampAssigner((e, ts) -> e.getEvent().getEventTimeMs()))
            .setParallelism(1);
    CollectingSink<WindowMetrics> metricsSink = new CollectingSink<>();
    CollectingSink<EnrichedEvent> lateSink = new CollectingSink<>();
    SingleOutputStreamOperator<WindowMetrics> metrics = MetricsWindows.build(events, EXACTISH);
    metrics.sinkTo(metricsSink);
    metrics.getSideOutput(MetricsWindows.LATE).sinkTo(lateSink);
    JobID job = env.execute("metrics-windows-test").getJobID();

    List<WindowMetrics> out = metricsSink.results();
    Map<String, WindowMetrics> byId = new HashMap<>();
    for (WindowMetrics m : out) {
      assertThat(byId.put(m.getId(), m)).as("id %s twice", m.getId()).isNull();
    }
    assertThat(byId.keySet()).isEqualTo(truth.keySet());
    for (WindowMetrics m : out) {
      long[] v = truth.get(m.getId());
      assertThat(m.getId()).isEqualTo(m.getWindowStartMs() + "/" + m.getCategory());
      assertThat(m.getWindowEndMs() - m.getWindowStartMs()).isEqualTo(60_000);
      assertThat(new long[] {m.getViews(), m.getCarts(), m.getPurchases()})
          .containsExactly(v[0], v[1], v[2]);
      assertThat(m.getRevenueCents()).isCloseTo(v[3], within(10L));
      assertThat(m.getConversion())
          .isEqualTo(m.getViews() > 0 ? (double) m.getPurchases() / m.getViews() : 0.0);
      assertThat(m.getEpsilonSpent()).isCloseTo(4 * EXACTISH.epsilonPerValue(), within(1e-3));
    }
    assertThat(lateSink.results()).containsExactly(MetricsWindows.slim(late));

    assertThat(sumCounters(job, "lateEvents")).isEqualTo(1);
    assertThat(sumCounters(job, "windowsReleased")).isEqualTo(out.size());
    double epsilon = 0;
    for (Metric g : REPORTER.findMetrics(job, "epsilonSpent").values()) {
      epsilon += ((Number) ((Gauge<?>) g).getValue()).doubleValue();
    }
    assertThat(epsilon).isCloseTo(out.size() * 4 * EXACTISH.epsilonPerValue(), within(1.0));
  }

  private static long sumCounters(JobID job, String name) {
    Map<String, Metric> found = REPORTER.findMetrics(job, name);
    assertThat(found).as("metric %s", name).isNotEmpty();
    long sum = 0;
    for (Metric c : found.values()) {
      sum += ((Counter) c).getCount();
    }
    return sum;
  }
}
