// The batched serve calls under Flink's async operator harness: timeouts, fallbacks, pass-through.
package dev.ecom.flink.serve;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ecom.flink.TestEvents;
import dev.ecom.flink.serde.ProtoSerializer;
import dev.ecom.proto.v1.EnrichedEvent;
import dev.ecom.proto.v1.EventKind;
import dev.ecom.proto.v1.Verdict;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.flink.streaming.api.datastream.AsyncDataStream;
import org.apache.flink.streaming.api.functions.async.AsyncFunction;
import org.apache.flink.streaming.api.operators.async.AsyncWaitOperatorFactory;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.Test;

class BatchingServeCallTest {
  private static final long NOW = System.currentTimeMillis();

  private static EnrichedEvent event(int n, EventKind kind) {
    return EnrichedEvent.newBuilder()
        .setEvent(TestEvents.valid(n, NOW).toBuilder().setKind(kind))
        .addSessionFeatures(1.0)
        .setFeatureSchemaHash("h")
        .addSessionTokens("p:p-" + n)
        .build();
  }

  private static OneInputStreamOperatorTestHarness<EnrichedEvent, EnrichedEvent> harness(
      AsyncFunction<EnrichedEvent, EnrichedEvent> fn, long timeoutMs) throws Exception {
    var h =
        new OneInputStreamOperatorTestHarness<>(
            new AsyncWaitOperatorFactory<>(fn, timeoutMs, 16, AsyncDataStream.OutputMode.UNORDERED),
            new ProtoSerializer<>(EnrichedEvent.class));
    h.open();
    return h;
  }

  private static List<EnrichedEvent> records(
      OneInputStreamOperatorTestHarness<EnrichedEvent, EnrichedEvent> h) {
    List<EnrichedEvent> out = new ArrayList<>();
    for (Object o : h.getOutput()) {
      if (o instanceof StreamRecord<?> r) {
        out.add((EnrichedEvent) r.getValue());
      }
    }
    return out;
  }

  @Test
  void reasonsAreAskedForOneEventInNChosenByItsId() {
    var cfg = new ServeCallConfig("127.0.0.1:1", 1_000, 16, 2, 5, ServeSecurity.NONE, null);
    var every10 = new ScoreCall(cfg, 3, 10);
    int asked = 0;
    for (int n = 0; n < 5_000; n++) {
      EnrichedEvent e = event(n, EventKind.EVENT_KIND_PAGE_VIEW);
      int k = every10.reasonsFor(e);
      assertThat(k).isIn(0, 3);
      assertThat(every10.reasonsFor(e)).isEqualTo(k); // the same event, the same choice
      asked += k > 0 ? 1 : 0;
    }
    assertThat(asked).isBetween(400, 600);
    assertThat(new ScoreCall(cfg, 3, 1).reasonsFor(event(1, EventKind.EVENT_KIND_PAGE_VIEW)))
        .isEqualTo(3);
  }

  @Test
  void aServeThatNeverAnswersTimesOutIntoTheFallback() throws Exception {
    // A TCP endpoint that accepts and never speaks: the batch RPC hangs until Flink's timeout.
    try (ServerSocket silent = new ServerSocket(0, 50, InetAddress.getLoopbackAddress())) {
      List<Socket> held = new ArrayList<>();
      CountDownLatch connected = new CountDownLatch(1);
      Thread acceptor =
          new Thread(
              () -> {
                try {
                  while (true) {
                    held.add(silent.accept());
                    connected.countDown();
                  }
                } catch (Exception closed) {
                  // the test is over
                }
              });
      acceptor.setDaemon(true);
      acceptor.start();
      // A long RPC deadline, so the fallback comes from Flink's timeout (fired by the harness).
      var cfg =
          new ServeCallConfig(
              "127.0.0.1:" + silent.getLocalPort(), 60_000, 16, 2, 5, ServeSecurity.NONE, null);
      var h = harness(new ScoreCall(cfg, 3, 1), 60_000);
      for (int i = 0; i < 3; i++) {
        h.processElement(new StreamRecord<>(event(i, EventKind.EVENT_KIND_PRODUCT_VIEW), i));
      }
      // The first batch went out (the channel connected) and nothing answers it.
      assertThat(connected.await(30, TimeUnit.SECONDS)).isTrue();
      assertThat(records(h)).isEmpty();
      h.setProcessingTime(60_001);
      h.endInput();
      List<EnrichedEvent> out = records(h);
      h.close();
      assertThat(out).hasSize(3);
      for (EnrichedEvent e : out) {
        assertThat(e.getScoreFallback()).isTrue();
        assertThat(e.hasPurchaseProbability()).isFalse();
        assertThat(e.getScoredAtMs()).isGreaterThanOrEqualTo(NOW);
      }
    }
  }

  @Test
  void anUnreachableGuardGivesTheDeclaredVerdictAndDropsTheIp() throws Exception {
    var cfg = new ServeCallConfig("127.0.0.1:1", 5_000, 16, 4, 5, ServeSecurity.NONE, null);
    var h = harness(new GuardCall(cfg), 5_000);
    for (int i = 0; i < 5; i++) {
      h.processElement(new StreamRecord<>(event(i, EventKind.EVENT_KIND_PRODUCT_VIEW), i));
    }
    h.endInput();
    List<EnrichedEvent> out = records(h);
    h.close();
    assertThat(out).hasSize(5);
    for (EnrichedEvent e : out) {
      assertThat(e.getVerdict()).isEqualTo(Verdict.VERDICT_UNKNOWN);
      assertThat(e.getGuardFallback()).isTrue();
      assertThat(e.getVerdictReasonsList())
          .containsExactly(GuardCall.UNAVAILABLE_REASON + "UNAVAILABLE");
      assertThat(e.getEvent().getIp()).isEmpty();
    }
  }

  @Test
  void recommendAsksOnlyAboutItsKindsAndPassesTheRestThrough() throws Exception {
    var cfg = new ServeCallConfig("127.0.0.1:1", 5_000, 16, 4, 5, ServeSecurity.NONE, null);
    var h = harness(new RecommendCall(cfg, 5, Set.of(EventKind.EVENT_KIND_ADD_TO_CART)), 5_000);
    EnrichedEvent search = event(0, EventKind.EVENT_KIND_SEARCH);
    EnrichedEvent cart = event(1, EventKind.EVENT_KIND_ADD_TO_CART);
    EnrichedEvent noTokens =
        event(2, EventKind.EVENT_KIND_ADD_TO_CART).toBuilder().clearSessionTokens().build();
    h.processElement(new StreamRecord<>(search, 0));
    h.processElement(new StreamRecord<>(cart, 1));
    h.processElement(new StreamRecord<>(noTokens, 2));
    h.endInput();
    List<EnrichedEvent> out = records(h);
    h.close();
    assertThat(out).hasSize(3).contains(search, noTokens);
    EnrichedEvent asked =
        out.stream()
            .filter(e -> e.getEvent().getEventId().equals(cart.getEvent().getEventId()))
            .findFirst()
            .orElseThrow();
    assertThat(asked.getRecommendFallback()).isTrue();
    assertThat(asked.getRecommendationsList()).isEmpty();
  }
}
