package dev.ecom.flink.quality;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ecom.proto.v1.Session;
import dev.ecom.proto.v1.ShadowScore;
import java.util.List;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.api.operators.co.KeyedCoProcessOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.KeyedTwoInputStreamOperatorTestHarness;
import org.junit.jupiter.api.Test;

class ShadowJoinTest {
  private static final long GAP = 1_800_000;

  private static KeyedTwoInputStreamOperatorTestHarness<String, Session, ShadowScore, Decision>
      harness() throws Exception {
    var h =
        new KeyedTwoInputStreamOperatorTestHarness<>(
            new KeyedCoProcessOperator<>(new ShadowJoin(GAP)),
            Session::getSessionId,
            ShadowScore::getSessionId,
            Types.STRING);
    h.open();
    return h;
  }

  private static Session session(String id, long endMs, boolean bought, String decisionEvent) {
    return Session.newBuilder()
        .setId(id + "@0")
        .setSessionId(id)
        .setEndMs(endMs)
        .setPurchased(bought)
        .setPurchaseProbability(0.2)
        .setModelVersion("v1")
        .setDecisionEventId(decisionEvent)
        .build();
  }

  private static ShadowScore shadow(String session, String event, long timeMs, double p) {
    return ShadowScore.newBuilder()
        .setSessionId(session)
        .setEventId(event)
        .setEventTimeMs(timeMs)
        .setModelVersion("v2")
        .setPurchaseProbability(p)
        .build();
  }

  private static List<Decision> out(
      KeyedTwoInputStreamOperatorTestHarness<String, Session, ShadowScore, Decision> h) {
    return h.extractOutputValues();
  }

  @Test
  void aSessionGetsTheShadowScoreOfItsDecisionEventWhicheverComesFirst() throws Exception {
    try (var h = harness()) {
      // Shadow scores first (the usual order): the later event's score is not the decision's.
      h.processElement2(new StreamRecord<>(shadow("a", "a1", 1_000, 0.7), 1_000));
      h.processElement2(new StreamRecord<>(shadow("a", "a2", 2_000, 0.9), 2_000));
      h.processElement1(new StreamRecord<>(session("a", 2_000, true, "a1"), 2_000 + GAP));
      // A session before its shadow score: it waits for the watermark to pass its close.
      h.processElement1(new StreamRecord<>(session("b", 3_000, false, "b1"), 3_000 + GAP));
      h.processElement2(new StreamRecord<>(shadow("b", "b1", 3_000, 0.1), 3_000));
      h.processBothWatermarks(new org.apache.flink.streaming.api.watermark.Watermark(3_000 + GAP));
      List<Decision> got = out(h);
      assertThat(got)
          .extracting(d -> d.modelVersion, d -> d.shadow, d -> d.probability, d -> d.purchased)
          .containsExactly(
              org.assertj.core.groups.Tuple.tuple("v2", true, 0.7, true),
              org.assertj.core.groups.Tuple.tuple("v2", true, 0.1, false));
      assertThat(got.get(0).closeMs).isEqualTo(2_000 + GAP);
    }
  }

  @Test
  void aSessionWithoutAShadowScoreOrADecisionEventCountsNothing() throws Exception {
    try (var h = harness()) {
      h.processElement1(new StreamRecord<>(session("c", 5_000, true, "c1"), 5_000 + GAP));
      h.processElement1(new StreamRecord<>(session("d", 5_000, true, ""), 5_000 + GAP));
      h.processBothWatermarks(
          new org.apache.flink.streaming.api.watermark.Watermark(5_000 + 3 * GAP));
      assertThat(out(h)).isEmpty();
      // A shadow score for c that comes after its session closed finds nothing waiting.
      h.processElement2(new StreamRecord<>(shadow("c", "c1", 5_000, 0.5), 5_000));
      assertThat(out(h)).isEmpty();
    }
  }
}
