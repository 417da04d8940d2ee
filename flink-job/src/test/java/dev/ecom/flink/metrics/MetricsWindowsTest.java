// The metrics window operator in a test harness, and the DP release on its own.
package dev.ecom.flink.metrics;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.ecom.flink.JobConfig;
import dev.ecom.flink.serde.ProtoTypeInfo;
import dev.ecom.proto.v1.EnrichedEvent;
import dev.ecom.proto.v1.Event;
import dev.ecom.proto.v1.EventKind;
import dev.ecom.proto.v1.WindowMetrics;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.api.java.typeutils.PojoTypeInfo;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.operators.StreamOperatorFactory;
import org.apache.flink.streaming.api.transformations.OneInputTransformation;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.Test;

class MetricsWindowsTest {
  /** So large that the noise is all but zero: released values can be compared to the truth. */
  private static final MetricsConfig EXACTISH = new MetricsConfig(60_000, 1e7, 250_000);

  static EnrichedEvent event(int n, String category, EventKind kind, int quantity, long price) {
    Event.Builder e =
        Event.newBuilder()
            .setEventId("e-" + n)
            .setEventTimeMs(n)
            .setUserId("u-" + n % 7)
            .setSessionId("s-" + n % 11)
            .setKind(kind);
    if (!category.isEmpty()) {
      e.setProductId("p-" + n % 13);
    }
    if (kind == EventKind.EVENT_KIND_PURCHASE) {
      e.setQuantity(quantity).setUnitPriceCents(price);
    }
    return EnrichedEvent.newBuilder().setEvent(e).setCategory(category).build();
  }

  @SuppressWarnings("unchecked")
  private static KeyedOneInputStreamOperatorTestHarness<String, EnrichedEvent, WindowMetrics>
      harness(MetricsConfig cfg) throws Exception {
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
    // As in EcomJob: any type that would need Kryo fails when the state is created.
    env.configure(new Configuration().set(PipelineOptions.GENERIC_TYPES, false));
    DataStream<EnrichedEvent> in =
        env.fromData(
            ProtoTypeInfo.forClass(EnrichedEvent.class),
            event(0, "", EventKind.EVENT_KIND_LOGIN, 0, 0));
    OneInputTransformation<EnrichedEvent, WindowMetrics> t =
        (OneInputTransformation<EnrichedEvent, WindowMetrics>)
            MetricsWindows.build(in, cfg).getTransformation();
    KeyedOneInputStreamOperatorTestHarness<String, EnrichedEvent, WindowMetrics> h =
        new KeyedOneInputStreamOperatorTestHarness<>(
            (StreamOperatorFactory<WindowMetrics>) t.getOperatorFactory(),
            (KeySelector<EnrichedEvent, String>) t.getStateKeySelector(),
            (TypeInformation<String>) t.getStateKeyType());
    h.getExecutionConfig()
        .configure(
            new Configuration().set(PipelineOptions.GENERIC_TYPES, false),
            MetricsWindowsTest.class.getClassLoader());
    // The harness would otherwise guess the output's serializer by reflection (Kryo).
    h.setup(
        ProtoTypeInfo.forClass(WindowMetrics.class)
            .createSerializer(h.getExecutionConfig().getSerializerConfig()));
    h.open();
    return h;
  }

  private static void add(
      KeyedOneInputStreamOperatorTestHarness<String, EnrichedEvent, WindowMetrics> h,
      EnrichedEvent e,
      long timestamp)
      throws Exception {
    // Windows follow the event's own time; in the job the record timestamp is the same.
    EnrichedEvent timed =
        e.toBuilder().setEvent(e.getEvent().toBuilder().setEventTimeMs(timestamp)).build();
    h.processElement(new StreamRecord<>(timed, timestamp));
  }

  @Test
  void theAccumulatorIsAFlinkPojo() {
    assertThat(TypeInformation.of(WindowCounts.class)).isInstanceOf(PojoTypeInfo.class);
  }

  @Test
  void windowsCloseOnTheWatermarkAndCountWhatTheyShould() throws Exception {
    try (var h = harness(EXACTISH)) {
      int n = 0;
      // Window [0, 60 s): sofas 3 views, 2 carts, 2 purchases; beds 1 view; "" a page view and
      // a search, which open the window but count nothing.
      for (int i = 0; i < 3; i++) {
        add(h, event(n++, "sofas", EventKind.EVENT_KIND_PRODUCT_VIEW, 0, 0), 1_000 + i);
      }
      add(h, event(n++, "sofas", EventKind.EVENT_KIND_ADD_TO_CART, 0, 0), 2_000);
      add(h, event(n++, "sofas", EventKind.EVENT_KIND_ADD_TO_CART, 0, 0), 3_000);
      add(h, event(n++, "sofas", EventKind.EVENT_KIND_PURCHASE, 2, 45_000), 4_000);
      // 3 × 120,000 = 360,000, clamped to 250,000.
      add(h, event(n++, "sofas", EventKind.EVENT_KIND_PURCHASE, 3, 120_000), 59_999);
      add(h, event(n++, "beds", EventKind.EVENT_KIND_PRODUCT_VIEW, 0, 0), 5_000);
      add(h, event(n++, "", EventKind.EVENT_KIND_PAGE_VIEW, 0, 0), 6_000);
      add(h, event(n++, "", EventKind.EVENT_KIND_SEARCH, 0, 0), 7_000);
      // Window [60 s, 120 s).
      add(h, event(n++, "sofas", EventKind.EVENT_KIND_PRODUCT_VIEW, 0, 0), 60_000);

      h.processWatermark(59_998);
      assertThat(h.extractOutputValues()).isEmpty();
      h.setProcessingTime(777);
      h.processWatermark(59_999);

      Map<String, WindowMetrics> first =
          h.extractOutputValues().stream().collect(Collectors.toMap(WindowMetrics::getId, m -> m));
      assertThat(first.keySet()).containsExactlyInAnyOrder("0/sofas", "0/beds", "0/");
      WindowMetrics sofas = first.get("0/sofas");
      assertThat(sofas.getCategory()).isEqualTo("sofas");
      assertThat(sofas.getWindowStartMs()).isZero();
      assertThat(sofas.getWindowEndMs()).isEqualTo(60_000);
      assertThat(sofas.getViews()).isEqualTo(3);
      assertThat(sofas.getCarts()).isEqualTo(2);
      assertThat(sofas.getPurchases()).isEqualTo(2);
      assertThat(sofas.getRevenueCents()).isCloseTo(90_000 + 250_000, within(10L));
      assertThat(sofas.getConversion()).isEqualTo(2.0 / 3.0);
      assertThat(sofas.getMechanism()).isEqualTo("discrete_laplace");
      assertThat(sofas.getEmittedAtMs()).isEqualTo(777);
      assertThat(first.get("0/beds").getViews()).isEqualTo(1);
      assertThat(first.get("0/beds").getConversion()).isZero();
      WindowMetrics none = first.get("0/");
      assertThat(List.of(none.getViews(), none.getCarts(), none.getPurchases())).containsOnly(0L);
      assertThat(none.getConversion()).isZero();
      for (WindowMetrics m : first.values()) {
        // Four values at ε each, as OpenDP's privacy map reports them.
        assertThat(m.getEpsilonSpent()).isCloseTo(4 * EXACTISH.epsilonPerValue(), within(1e-3));
      }

      // Too late for the closed window: on the side output, and no second record.
      EnrichedEvent late = event(n++, "sofas", EventKind.EVENT_KIND_PURCHASE, 1, 100);
      add(h, late, 30_000);
      assertThat(h.getSideOutput(MetricsWindows.LATE))
          .extracting(r -> r.getValue().getEvent().getEventId())
          .containsExactly(late.getEvent().getEventId());

      h.processWatermark(119_999);
      List<WindowMetrics> all = h.extractOutputValues();
      assertThat(all).hasSize(4);
      assertThat(all.get(3).getId()).isEqualTo("60000/sofas");
      assertThat(all.get(3).getViews()).isEqualTo(1);
      assertThat(all.get(3).getPurchases()).isZero();
    }
  }

  @Test
  void overManyWindowsTheNoiseAveragesOutAtTheExpectedScale() {
    MetricsConfig cfg = JobConfig.defaults().privacy().metrics();
    int windows = 2_000;
    long views = 1_000;
    long revenue = 1_000_000_000; // far from 0, so clamping negatives never bites
    double viewErr = 0;
    double viewAbsErr = 0;
    double revenueErr = 0;
    double revenueAbsErr = 0;
    for (int i = 0; i < windows; i++) {
      WindowMetrics m =
          DpRelease.release(
              "sofas",
              i * 60_000L,
              (i + 1) * 60_000L,
              new WindowCounts(views, 100, 10, revenue),
              cfg,
              0);
      viewErr += m.getViews() - views;
      viewAbsErr += Math.abs(m.getViews() - views);
      revenueErr += m.getRevenueCents() - revenue;
      revenueAbsErr += Math.abs(m.getRevenueCents() - revenue);
      assertThat(m.getConversion()).isEqualTo((double) m.getPurchases() / m.getViews());
      assertThat(m.getEpsilonSpent()).isCloseTo(4 * cfg.epsilonPerValue(), within(1e-9));
    }
    // Counts: discrete Laplace of scale b = 1/ε = 2, E|X| = 2t/(1-t²), t = e^(-1/b) ≈ 1.92;
    // the standard error of the mean over 2,000 windows is about 0.06.
    double t = Math.exp(-cfg.epsilonPerValue());
    double countMeanAbs = 2 * t / (1 - t * t);
    assertThat(viewErr / windows).isCloseTo(0, within(0.4));
    assertThat(viewAbsErr / windows).isCloseTo(countMeanAbs, within(0.1 * countMeanAbs));
    // Revenue: scale upper/ε = 500,000 cents; E|X| ≈ b; standard error of the mean ≈ 16,000.
    double scale = cfg.revenueUpperCents() / cfg.epsilonPerValue();
    assertThat(revenueErr / windows).isCloseTo(0, within(0.2 * scale));
    assertThat(revenueAbsErr / windows).isCloseTo(scale, within(0.1 * scale));
  }

  @Test
  void negativeNoisyValuesAreClampedToZero() {
    MetricsConfig cfg = new MetricsConfig(60_000, 0.05, 1_000);
    int sawZero = 0;
    for (int i = 0; i < 200; i++) {
      WindowMetrics m =
          DpRelease.release("", i * 60_000L, (i + 1) * 60_000L, new WindowCounts(), cfg, 0);
      assertThat(List.of(m.getViews(), m.getCarts(), m.getPurchases(), m.getRevenueCents()))
          .allMatch(v -> v >= 0);
      assertThat(m.getConversion()).isGreaterThanOrEqualTo(0);
      sawZero += m.getViews() == 0 ? 1 : 0;
    }
    // About half of the draws around a true 0 are negative, and show as 0.
    assertThat(sawZero).isGreaterThan(50);
  }

  @Test
  void revenueIsClampedPerEvent() {
    Event.Builder e = Event.newBuilder().setKind(EventKind.EVENT_KIND_PURCHASE);
    assertThat(
            MetricsWindows.clampedRevenueCents(
                e.setQuantity(2).setUnitPriceCents(300).build(), 1_000))
        .isEqualTo(600);
    assertThat(MetricsWindows.clampedRevenueCents(e.setQuantity(5).build(), 1_000))
        .isEqualTo(1_000);
    assertThat(MetricsWindows.clampedRevenueCents(e.clearQuantity().build(), 1_000)).isEqualTo(300);
    assertThat(
            MetricsWindows.clampedRevenueCents(
                e.setQuantity(Integer.MAX_VALUE).setUnitPriceCents(Long.MAX_VALUE).build(), 1_000))
        .isEqualTo(1_000);
  }

  @Test
  void idsAreUniqueAcrossWindowsAndCategories() throws Exception {
    try (var h = harness(JobConfig.defaults().privacy().metrics())) {
      List<String> categories = List.of("sofas", "beds", "", "rugs");
      int n = 0;
      Map<String, Integer> expected = new HashMap<>();
      for (int w = 0; w < 5; w++) {
        for (String c : categories) {
          add(h, event(n++, c, EventKind.EVENT_KIND_PRODUCT_VIEW, 0, 0), w * 60_000L + 10);
          expected.merge(w * 60_000L + "/" + c, 1, Integer::sum);
        }
      }
      h.processWatermark(Long.MAX_VALUE);
      List<String> ids = new ArrayList<>();
      for (WindowMetrics m : h.extractOutputValues()) {
        ids.add(m.getId());
      }
      assertThat(ids)
          .doesNotHaveDuplicates()
          .containsExactlyInAnyOrderElementsOf(expected.keySet());
    }
  }
}
