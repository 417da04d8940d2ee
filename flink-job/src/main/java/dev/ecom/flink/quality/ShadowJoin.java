// A shadow version's score at each closed session's decision point.
package dev.ecom.flink.quality;

import dev.ecom.flink.serde.ProtoTypeInfo;
import dev.ecom.proto.v1.Session;
import dev.ecom.proto.v1.ShadowScore;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.metrics.Counter;
import org.apache.flink.streaming.api.functions.co.KeyedCoProcessFunction;
import org.apache.flink.util.Collector;

/**
 * Keyed by session id: the closed sessions (input 1, with the event their serving score was given
 * to, Session.decision_event_id) and the shadow scores serve published (input 2). A session gets
 * the shadow score of that same event, so both versions are judged at the same moments on the same
 * sessions.
 *
 * <p>The shadow score of an event is published when the event is scored, long before its session
 * closes (the session gap, 30 min of event time). A session whose shadow score is not here yet
 * waits until this step's watermark passes its close; since the shadow stream's watermark trails
 * its event times by the out-of-orderness bound, which is shorter than the gap, every shadow score
 * of the session has come by then. One still missing (no shadow was set, serve dropped it, the
 * shadow version could not take the row) is counted in {@code shadowScoresMissing}. Shadow scores
 * are kept until two session gaps after their event time.
 */
public final class ShadowJoin
    extends KeyedCoProcessFunction<String, Session, ShadowScore, Decision> {
  private static final long serialVersionUID = 1L;

  private final long gapMs;
  private transient MapState<String, ShadowScore> byEvent;
  private transient ListState<Session> waiting;
  private transient Counter missing;
  private transient Counter joined;

  /**
   * @param gapMs the session gap (a session closes at its last event + gap)
   */
  public ShadowJoin(long gapMs) {
    this.gapMs = gapMs;
  }

  @Override
  public void open(OpenContext openContext) {
    byEvent =
        getRuntimeContext()
            .getMapState(
                new MapStateDescriptor<>(
                    "shadow-by-event", Types.STRING, ProtoTypeInfo.forClass(ShadowScore.class)));
    waiting =
        getRuntimeContext()
            .getListState(
                new ListStateDescriptor<>("waiting", ProtoTypeInfo.forClass(Session.class)));
    missing = getRuntimeContext().getMetricGroup().counter("shadowScoresMissing");
    joined = getRuntimeContext().getMetricGroup().counter("shadowScoresJoined");
  }

  @Override
  public void processElement1(Session s, Context ctx, Collector<Decision> out) throws Exception {
    if (s.getDecisionEventId().isEmpty()) {
      return;
    }
    ShadowScore sc = byEvent.get(s.getDecisionEventId());
    if (sc != null) {
      out.collect(decision(s, sc));
      return;
    }
    waiting.add(s);
    ctx.timerService().registerEventTimeTimer(s.getEndMs() + gapMs);
  }

  @Override
  public void processElement2(ShadowScore sc, Context ctx, Collector<Decision> out)
      throws Exception {
    byEvent.put(sc.getEventId(), sc);
    // One purge timer per minute of event time, not one per score.
    long purgeAt = (sc.getEventTimeMs() + 2 * gapMs) / 60_000 * 60_000 + 60_000;
    ctx.timerService().registerEventTimeTimer(purgeAt);
  }

  @Override
  public void onTimer(long timestamp, OnTimerContext ctx, Collector<Decision> out)
      throws Exception {
    List<Session> later = new ArrayList<>();
    boolean any = false;
    for (Session s : waiting.get()) {
      any = true;
      if (s.getEndMs() + gapMs > timestamp) {
        later.add(s);
        continue;
      }
      ShadowScore sc = byEvent.get(s.getDecisionEventId());
      if (sc == null) {
        missing.inc();
      } else {
        out.collect(decision(s, sc));
      }
    }
    if (any) {
      waiting.update(later);
    }
    List<String> old = new ArrayList<>();
    for (Map.Entry<String, ShadowScore> e : byEvent.entries()) {
      if (e.getValue().getEventTimeMs() + 2 * gapMs <= timestamp) {
        old.add(e.getKey());
      }
    }
    for (String k : old) {
      byEvent.remove(k);
    }
  }

  private Decision decision(Session s, ShadowScore sc) {
    joined.inc();
    return new Decision(
        sc.getModelVersion(),
        true,
        sc.getPurchaseProbability(),
        s.getPurchased(),
        s.getEndMs() + gapMs);
  }
}
