package dev.ecom.flink;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ecom.proto.v1.EnrichedEvent;
import dev.ecom.proto.v1.Event;
import dev.ecom.proto.v1.EventKind;
import dev.ecom.proto.v1.Session;
import java.util.List;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.runtime.state.VoidNamespace;
import org.apache.flink.runtime.state.VoidNamespaceSerializer;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.util.KeyedTwoInputStreamOperatorTestHarness;
import org.apache.flink.streaming.util.ProcessFunctionTestHarnesses;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class SessionScoreTest {
  private static final long GAP = 1_800_000;
  private static final long T0 = 1_700_000_000_000L;
  private static final long MIN = 60_000;

  private KeyedTwoInputStreamOperatorTestHarness<String, EnrichedEvent, Session, Session> h;

  @BeforeEach
  void open() throws Exception {
    h =
        ProcessFunctionTestHarnesses.forKeyedCoProcessFunction(
            new SessionScore(GAP),
            (EnrichedEvent e) -> e.getEvent().getSessionId(),
            Session::getSessionId,
            Types.STRING);
  }

  @AfterEach
  void close() throws Exception {
    h.close();
  }

  private void scored(String session, long t, EventKind kind, Double p) throws Exception {
    EnrichedEvent.Builder e =
        EnrichedEvent.newBuilder()
            .setEvent(
                Event.newBuilder()
                    .setEventId(session + "-" + t)
                    .setSessionId(session)
                    .setEventTimeMs(t)
                    .setKind(kind))
            .setCategory("sofas")
            .setModelVersion("v7");
    if (p != null) {
      e.setPurchaseProbability(p);
    }
    h.processElement1(SessionScore.slim(e.build()), t);
  }

  private void closed(String session, long start, long end) throws Exception {
    h.processElement2(
        Session.newBuilder()
            .setId(session + "@" + start)
            .setSessionId(session)
            .setStartMs(start)
            .setEndMs(end)
            .build(),
        end);
  }

  @Test
  void aSessionGetsTheScoreOfItsLastEventBeforeCheckout() throws Exception {
    h.processBothWatermarks(new Watermark(T0 - 1));
    scored("a", T0, EventKind.EVENT_KIND_PRODUCT_VIEW, 0.1);
    // Out of order: the checkout is read before the cart that came before it.
    scored("a", T0 + 4 * MIN, EventKind.EVENT_KIND_CHECKOUT_START, 0.9);
    scored("a", T0 + 3 * MIN, EventKind.EVENT_KIND_ADD_TO_CART, 0.3);
    scored("a", T0 + 5 * MIN, EventKind.EVENT_KIND_PURCHASE, 0.95);
    scored("a", T0 + 6 * MIN, EventKind.EVENT_KIND_PAGE_VIEW, 0.97);
    closed("a", T0, T0 + 6 * MIN);
    // A session with no score at all (every call fell back).
    scored("b", T0, EventKind.EVENT_KIND_PRODUCT_VIEW, null);
    closed("b", T0, T0);
    assertThat(h.extractOutputValues()).as("held until the watermark passes end + gap").isEmpty();
    h.processBothWatermarks(new Watermark(T0 + 6 * MIN + GAP));
    List<Session> out = h.extractOutputValues();
    assertThat(out).extracting(Session::getSessionId).containsExactlyInAnyOrder("a", "b");
    Session a = out.stream().filter(s -> s.getSessionId().equals("a")).findFirst().orElseThrow();
    assertThat(a.getPurchaseProbability()).isEqualTo(0.3);
    assertThat(a.getModelVersion()).isEqualTo("v7");
    Session b = out.stream().filter(s -> s.getSessionId().equals("b")).findFirst().orElseThrow();
    assertThat(b.hasPurchaseProbability()).isFalse();
    assertThat(h.numKeyedStateEntries()).as("nothing is kept after a session is out").isZero();
  }

  @Test
  void aScoredEventArrivingAfterItsSessionStillCounts() throws Exception {
    h.processBothWatermarks(new Watermark(T0 - 1));
    closed("c", T0, T0 + 2 * MIN);
    scored("c", T0 + 2 * MIN, EventKind.EVENT_KIND_PRODUCT_VIEW, 0.4);
    scored("c", T0, EventKind.EVENT_KIND_PAGE_VIEW, 0.2);
    h.processBothWatermarks(new Watermark(T0 + 2 * MIN + GAP));
    assertThat(h.extractOutputValues())
        .singleElement()
        .satisfies(
            s -> {
              assertThat(s.getPurchaseProbability()).isEqualTo(0.4);
            });
  }

  @Test
  void aSessionIdBackAfterTheGapIsJudgedByItsOwnCheckout() throws Exception {
    h.processBothWatermarks(new Watermark(T0 - 1));
    long later = T0 + 3 * 3_600_000L;
    // Both sessions' events are read before the watermark closes the first one (a backlog).
    scored("e", T0, EventKind.EVENT_KIND_PRODUCT_VIEW, 0.1);
    scored("e", T0 + MIN, EventKind.EVENT_KIND_CHECKOUT_START, 0.5);
    scored("e", later, EventKind.EVENT_KIND_ADD_TO_CART, 0.6);
    scored("e", later + MIN, EventKind.EVENT_KIND_CHECKOUT_START, 0.8);
    scored("e", later + 2 * MIN, EventKind.EVENT_KIND_PAGE_VIEW, 0.9);
    closed("e", T0, T0 + MIN);
    closed("e", later, later + 2 * MIN);
    h.processBothWatermarks(new Watermark(later + 2 * MIN + GAP));
    assertThat(h.extractOutputValues())
        .extracting(Session::getPurchaseProbability)
        .containsExactlyInAnyOrder(0.1, 0.6);
  }

  @Test
  void aCheckoutKeptByTheVersionBeforeStillCutsItsSession() throws Exception {
    h.processBothWatermarks(new Watermark(T0 - 1));
    scored("f", T0, EventKind.EVENT_KIND_PRODUCT_VIEW, 0.2);
    scored("f", T0 + 2 * MIN, EventKind.EVENT_KIND_PAGE_VIEW, 0.7);
    // What a job before decisions-ms kept of the checkout at T0 + 1 min, as restored.
    h.getOperator().setCurrentKey("f");
    h.getOperator()
        .getKeyedStateBackend()
        .getPartitionedState(
            VoidNamespace.INSTANCE,
            VoidNamespaceSerializer.INSTANCE,
            new ValueStateDescriptor<>("first-checkout-ms", Long.class))
        .update(T0 + MIN);
    closed("f", T0, T0 + 2 * MIN);
    h.processBothWatermarks(new Watermark(T0 + 2 * MIN + GAP));
    assertThat(h.extractOutputValues())
        .singleElement()
        .satisfies(s -> assertThat(s.getPurchaseProbability()).isEqualTo(0.2));
    assertThat(h.numKeyedStateEntries()).isZero();
  }

  @Test
  void stateOfEventsWhoseSessionNeverComesIsDropped() throws Exception {
    h.processBothWatermarks(new Watermark(T0 - 1));
    scored("d", T0, EventKind.EVENT_KIND_PRODUCT_VIEW, 0.4);
    h.processBothWatermarks(new Watermark(T0 + GAP));
    assertThat(h.extractOutputValues()).isEmpty();
    assertThat(h.numKeyedStateEntries()).isZero();
  }
}
