// SessionOperator under Flink's keyed broadcast test harness: watermarks, late data, session
// merging, duplicates, the catalog join and its start-up wait, and the running features.
package dev.ecom.flink;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ecom.flink.nativelib.EcomNative;
import dev.ecom.proto.v1.EnrichedEvent;
import dev.ecom.proto.v1.Event;
import dev.ecom.proto.v1.EventKind;
import dev.ecom.proto.v1.InvalidEvent;
import dev.ecom.proto.v1.Product;
import dev.ecom.proto.v1.RejectReason;
import dev.ecom.proto.v1.Session;
import dev.ecom.proto.v1.SourceOffset;
import java.util.List;
import java.util.stream.Collectors;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.KeyedBroadcastOperatorTestHarness;
import org.apache.flink.streaming.util.ProcessFunctionTestHarnesses;
import org.apache.flink.util.OutputTag;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class SessionOperatorTest {
  private static final long GAP = 30 * 60_000L;
  private static final long TTL = 7 * 24 * 3_600_000L;
  private static final long T0 = 1_767_225_600_000L; // 2026-01-01T00:00Z
  private static final Product SOFA =
      Product.newBuilder()
          .setProductId("p-1")
          .setCategory("sofas")
          .setPriceCents(89_900)
          .setMaterial("linen")
          .setStyle("scandinavian")
          .build();

  private KeyedBroadcastOperatorTestHarness<String, EnrichedEvent, Product, EnrichedEvent> h;
  private int offset;

  private static KeyedBroadcastOperatorTestHarness<String, EnrichedEvent, Product, EnrichedEvent>
      harness() throws Exception {
    return ProcessFunctionTestHarnesses.forKeyedBroadcastProcessFunction(
        new SessionOperator(GAP, 5_000, StateTtl.of(TTL)),
        (EnrichedEvent e) -> e.getEvent().getSessionId(),
        Types.STRING,
        SessionOperator.CATALOG);
  }

  @BeforeEach
  void open() throws Exception {
    h = harness();
    h.setProcessingTime(0);
    // As in the job: the catalog never holds event time back.
    h.processBroadcastWatermark(Long.MAX_VALUE);
    // Event time is known.
    h.processWatermark(T0 - 3_600_000);
  }

  @AfterEach
  void close() throws Exception {
    h.close();
  }

  private EnrichedEvent event(String session, long t, EventKind kind, String product) {
    Event.Builder e =
        Event.newBuilder()
            .setEventId("e-" + offset)
            .setEventTimeMs(t)
            .setUserId("u-1")
            .setSessionId(session)
            .setKind(kind)
            .setPage("/")
            .setDevice("desktop")
            .setCountry("DE");
    if (product != null) {
      e.setProductId(product).setUnitPriceCents(89_900).setQuantity(1);
    }
    return EnrichedEvent.newBuilder()
        .setEvent(e)
        .setSource(SourceOffset.newBuilder().setTopic("ecom.events.raw").setOffset(offset++))
        .build();
  }

  private void send(EnrichedEvent e) throws Exception {
    h.processElement(e, e.getEvent().getEventTimeMs());
  }

  private <X> List<X> side(OutputTag<X> tag) {
    var q = h.getSideOutput(tag);
    return q == null
        ? List.of()
        : q.stream().map(StreamRecord::getValue).collect(Collectors.toList());
  }

  @Test
  void theFoldInputGivesTheSameStateAndFeaturesAsTheWholeRecord() {
    EnrichedEvent whole =
        event("s-1", T0, EventKind.EVENT_KIND_ADD_TO_CART, "p-1").toBuilder()
            .setCategory("sofas")
            .setStyle("scandinavian")
            .setMaterial("linen")
            .setPriceCents(89_900)
            .setIpHash("abc")
            .addAllLshSignature(List.of(1L, 2L, 3L))
            .addLshBuckets(7L)
            .build();
    int n = EcomNative.featureSchema().length - 1;
    double[] fromWhole = new double[n];
    double[] fromSlim = new double[n];
    byte[][] a =
        EcomNative.sessionUpdateBatch(
            new byte[][] {null}, new byte[][] {whole.toByteArray()}, null, fromWhole);
    byte[][] b =
        EcomNative.sessionUpdateBatch(
            new byte[][] {null}, new byte[][] {SessionOperator.foldInput(whole)}, null, fromSlim);
    assertThat(b[0]).isEqualTo(a[0]);
    assertThat(fromSlim).isEqualTo(fromWhole);
  }

  @Test
  void joinsTheCatalogAndCarriesRunningFeatures() throws Exception {
    h.processBroadcastElement(SOFA, T0);
    h.setProcessingTime(5_000); // the catalog has loaded: a missing product is a miss at once
    send(event("s-1", T0, EventKind.EVENT_KIND_PRODUCT_VIEW, "p-1"));
    send(event("s-1", T0 + 5_000, EventKind.EVENT_KIND_PRODUCT_VIEW, "p-404"));

    List<EnrichedEvent> out = h.extractOutputValues();
    assertThat(out).hasSize(2);
    String[] schema = EcomNative.featureSchema();
    EnrichedEvent first = out.get(0);
    assertThat(first.getCategory()).isEqualTo("sofas");
    assertThat(first.getPriceCents()).isEqualTo(89_900);
    assertThat(first.getMaterial()).isEqualTo("linen");
    assertThat(first.getStyle()).isEqualTo("scandinavian");
    assertThat(first.getCatalogMiss()).isFalse();
    assertThat(first.getFeatureSchemaHash()).isEqualTo(schema[0]);
    assertThat(first.getSessionFeaturesList()).hasSize(schema.length - 1);
    assertThat(first.getSessionTokensList()).contains("p:p-1", "c:sofas", "s:scandinavian");
    // Feature 0 counts the session's events so far.
    assertThat(schema[1]).isEqualTo("events");
    assertThat(first.getSessionFeatures(0)).isEqualTo(1.0);
    EnrichedEvent second = out.get(1);
    assertThat(second.getCatalogMiss()).isTrue();
    assertThat(second.getCategory()).isEmpty();
    assertThat(second.getSessionFeatures(0)).isEqualTo(2.0);
  }

  @Test
  void eventsWaitForTheFirstCatalogRecordThenFlow() throws Exception {
    send(event("s-1", T0, EventKind.EVENT_KIND_PRODUCT_VIEW, "p-1"));
    assertThat(h.extractOutputValues()).isEmpty();

    h.processBroadcastElement(SOFA, T0);
    h.setProcessingTime(1_000);
    List<EnrichedEvent> out = h.extractOutputValues();
    assertThat(out).hasSize(1);
    assertThat(out.get(0).getCategory()).isEqualTo("sofas");
  }

  @Test
  void whileTheCatalogLoadsAnEventWaitsForItsProductWithItsSession() throws Exception {
    h.processBroadcastElement(SOFA, T0);
    send(event("s-1", T0, EventKind.EVENT_KIND_PRODUCT_VIEW, "p-2"));
    send(event("s-1", T0 + 1_000, EventKind.EVENT_KIND_PRODUCT_VIEW, "p-1"));
    send(event("s-2", T0, EventKind.EVENT_KIND_PRODUCT_VIEW, "p-1"));
    assertThat(h.extractOutputValues())
        .extracting(e -> e.getEvent().getSessionId())
        .containsExactly("s-2");

    h.processBroadcastElement(SOFA.toBuilder().setProductId("p-2").setCategory("beds").build(), T0);
    h.setProcessingTime(1_000);
    List<EnrichedEvent> out = h.extractOutputValues();
    assertThat(out).hasSize(3);
    assertThat(out.get(1).getCategory()).isEqualTo("beds");
    assertThat(out.get(2).getEvent().getProductId()).isEqualTo("p-1");
    assertThat(out.get(2).getSessionFeatures(0)).isEqualTo(2.0);
  }

  @Test
  void withoutACatalogEventsGoOnAfterTheWaitAsMisses() throws Exception {
    send(event("s-1", T0, EventKind.EVENT_KIND_PRODUCT_VIEW, "p-1"));
    h.setProcessingTime(4_000);
    assertThat(h.extractOutputValues()).isEmpty();
    h.setProcessingTime(5_000);
    List<EnrichedEvent> out = h.extractOutputValues();
    assertThat(out).hasSize(1);
    assertThat(out.get(0).getCatalogMiss()).isTrue();
  }

  @Test
  void anOpenSessionsStateExpiresAfterItsTtlInProcessingTime() throws Exception {
    h.processBroadcastElement(SOFA, T0);
    EnrichedEvent e = event("s-1", T0, EventKind.EVENT_KIND_PRODUCT_VIEW, "p-1");
    send(e);
    // Event time stands still (no watermark closes the session); processing time runs on.
    h.setStateTtlProcessingTime(0);
    send(e.toBuilder().setSource(e.getSource().toBuilder().setOffset(98)).build());
    h.setStateTtlProcessingTime(TTL + 1);
    send(e.toBuilder().setSource(e.getSource().toBuilder().setOffset(99)).build());

    // Within the TTL a copy is a DUPLICATE; after it the first copy's state is gone: the next
    // copy starts the session afresh, and the session closes with the one event it holds.
    assertThat(side(SessionOperator.REJECTED))
        .extracting(r -> r.getSource().getOffset())
        .containsExactly(98L);
    h.processWatermark(T0 + GAP + 1);
    List<Session> sessions = side(SessionOperator.SESSIONS);
    assertThat(sessions).hasSize(1);
    assertThat(sessions.get(0).getEvents()).isEqualTo(1);
  }

  @Test
  void duplicatesOfAnAcceptedEventAreRejected() throws Exception {
    h.processBroadcastElement(SOFA, T0);
    EnrichedEvent e = event("s-1", T0, EventKind.EVENT_KIND_PRODUCT_VIEW, "p-1");
    send(e);
    send(e.toBuilder().setSource(e.getSource().toBuilder().setOffset(99)).build());

    assertThat(h.extractOutputValues()).hasSize(1);
    List<InvalidEvent> rejected = side(SessionOperator.REJECTED);
    assertThat(rejected).hasSize(1);
    assertThat(rejected.get(0).getReason()).isEqualTo(RejectReason.REJECT_REASON_DUPLICATE);
    assertThat(rejected.get(0).getSource().getOffset()).isEqualTo(99);
  }

  @Test
  void aSessionClosesOnceTheWatermarkPassesItsGapAndOutOfOrderEventsMerge() throws Exception {
    h.processBroadcastElement(SOFA, T0);
    // Out of order within the gap: one session from T0 to T0 + 20 min.
    send(event("s-1", T0 + 20 * 60_000, EventKind.EVENT_KIND_PRODUCT_VIEW, "p-1"));
    send(event("s-1", T0, EventKind.EVENT_KIND_PAGE_VIEW, null));
    send(event("s-1", T0 + 10 * 60_000, EventKind.EVENT_KIND_ADD_TO_CART, "p-1"));
    // A purchase without a quantity is one item, as everywhere else.
    EnrichedEvent purchase = event("s-1", T0 + 15 * 60_000, EventKind.EVENT_KIND_PURCHASE, "p-1");
    send(purchase.toBuilder().setEvent(purchase.getEvent().toBuilder().clearQuantity()).build());

    h.processWatermark(T0 + 20 * 60_000 + GAP - 1);
    assertThat(side(SessionOperator.SESSIONS)).isEmpty();
    h.processWatermark(T0 + 20 * 60_000 + GAP);
    List<Session> sessions = side(SessionOperator.SESSIONS);
    assertThat(sessions).hasSize(1);
    Session s = sessions.get(0);
    assertThat(s.getId()).isEqualTo("s-1@" + T0);
    assertThat(s.getSessionId()).isEqualTo("s-1");
    assertThat(s.getUserId()).isEqualTo("u-1");
    assertThat(s.getStartMs()).isEqualTo(T0);
    assertThat(s.getEndMs()).isEqualTo(T0 + 20 * 60_000);
    assertThat(s.getEvents()).isEqualTo(4);
    assertThat(s.getPurchased()).isTrue();
    assertThat(s.getRevenueCents()).isEqualTo(89_900);
    assertThat(s.getFeaturesList()).hasSize(EcomNative.featureSchema().length - 1);
    assertThat(s.getFeatures(0)).isEqualTo(4.0);
    assertThat(s.getState().getEvents()).isEqualTo(4);

    // The same session_id after the gap: a new session with its own id; the old event ids are
    // forgotten with the closed session.
    long later = T0 + 3 * 3_600_000L;
    send(event("s-1", later, EventKind.EVENT_KIND_PAGE_VIEW, null));
    h.processWatermark(later + GAP);
    sessions = side(SessionOperator.SESSIONS);
    assertThat(sessions).hasSize(2);
    assertThat(sessions.get(1).getId()).isEqualTo("s-1@" + later);
    assertThat(sessions.get(1).getEvents()).isEqualTo(1);
    assertThat(sessions.get(1).getPurchased()).isFalse();
  }

  @Test
  void anEventWithinTheGapKeepsTheSessionOpen() throws Exception {
    h.processBroadcastElement(SOFA, T0);
    send(event("s-1", T0, EventKind.EVENT_KIND_PAGE_VIEW, null));
    h.processWatermark(T0 + GAP - 10);
    send(event("s-1", T0 + GAP - 5, EventKind.EVENT_KIND_PAGE_VIEW, null));
    h.processWatermark(T0 + GAP);
    assertThat(side(SessionOperator.SESSIONS)).isEmpty();
    h.processWatermark(T0 + 2 * GAP - 5);
    assertThat(side(SessionOperator.SESSIONS)).hasSize(1);
    assertThat(side(SessionOperator.SESSIONS).get(0).getEvents()).isEqualTo(2);
  }
}
