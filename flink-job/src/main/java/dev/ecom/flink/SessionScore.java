package dev.ecom.flink;

import dev.ecom.flink.serde.ProtoTypeInfo;
import dev.ecom.proto.v1.EnrichedEvent;
import dev.ecom.proto.v1.Event;
import dev.ecom.proto.v1.EventKind;
import dev.ecom.proto.v1.Session;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.streaming.api.functions.co.KeyedCoProcessFunction;
import org.apache.flink.util.Collector;

/**
 * Gives each closed session the purchase probability it was scored with at its decision point, so
 * the live calibration (predicted against purchased) can be counted from the stores.
 *
 * <p>The model learns from a session's events up to the moment its outcome was decided, before any
 * checkout (docs/TRAINING.md); whole sessions would leak the label. So the probability a session
 * gets here is the one of its latest scored event (by event time) before its first checkout_start
 * or purchase, with the model version that gave it, and the shadow version's score of that same
 * event when serve gave one. A session scored at none (every score fell back, or it began with a
 * checkout) gets none of these fields.
 *
 * <p>Keyed by session id, this step sees the scored events (input 1, after Score) and the sessions
 * the session step closed (input 2). A session closes when the watermark passes its last event plus
 * the gap; the scored events of that session come through Async I/O, whose unordered wait still
 * lets no record overtake a watermark. So the session is held until this step's own watermark (the
 * lower of both inputs) passes the same time: by then every scored event of the session is here.
 */
public final class SessionScore
    extends KeyedCoProcessFunction<String, EnrichedEvent, Session, Session> {
  private static final long serialVersionUID = 1L;

  /**
   * A scored event before the decision point: its event time, probability and model, and the shadow
   * version's score beside it (null: none).
   */
  public static final class Scored {
    public long timeMs;
    public double probability;
    public String modelVersion;
    public String eventId;
    public Double shadowProbability;
    public String shadowModelVersion;

    public Scored() {}

    Scored(EnrichedEvent e) {
      this.timeMs = e.getEvent().getEventTimeMs();
      this.probability = e.getPurchaseProbability();
      this.modelVersion = e.getModelVersion();
      this.eventId = e.getEvent().getEventId();
      if (e.hasShadowProbability()) {
        this.shadowProbability = e.getShadowProbability();
        this.shadowModelVersion = e.getShadowModelVersion();
      }
    }
  }

  private final long gapMs;
  private transient ListState<Scored> scored;

  /**
   * Times of the key's checkouts and purchases. A session id can come back after the gap as a new
   * session before the old one's state is cleared; each session takes the first within its span.
   */
  private transient ListState<Long> decisionsMs;

  /** The one checkout time versions before decisionsMs kept: read with it when a session is due. */
  private transient ValueState<Long> firstCheckoutMs;

  private transient ValueState<Long> newestMs;
  private transient ListState<Session> closed;

  /**
   * @param gapMs the session gap of the session step (its sessions close at last event + gap)
   */
  public SessionScore(long gapMs) {
    this.gapMs = gapMs;
  }

  @Override
  public void open(OpenContext openContext) {
    scored = getRuntimeContext().getListState(new ListStateDescriptor<>("scored", Scored.class));
    decisionsMs =
        getRuntimeContext().getListState(new ListStateDescriptor<>("decisions-ms", Long.class));
    firstCheckoutMs =
        getRuntimeContext().getState(new ValueStateDescriptor<>("first-checkout-ms", Long.class));
    newestMs = getRuntimeContext().getState(new ValueStateDescriptor<>("newest-ms", Long.class));
    closed =
        getRuntimeContext()
            .getListState(
                new ListStateDescriptor<>("closed", ProtoTypeInfo.forClass(Session.class)));
  }

  /**
   * What this step reads of a scored event: its id, session, time and kind, the probability and the
   * model, and the shadow's. The whole record would be shuffled a second time for these few fields.
   */
  static EnrichedEvent slim(EnrichedEvent e) {
    EnrichedEvent.Builder b =
        EnrichedEvent.newBuilder()
            .setEvent(
                Event.newBuilder()
                    .setEventId(e.getEvent().getEventId())
                    .setSessionId(e.getEvent().getSessionId())
                    .setEventTimeMs(e.getEvent().getEventTimeMs())
                    .setKind(e.getEvent().getKind()))
            .setModelVersion(e.getModelVersion());
    if (e.hasPurchaseProbability()) {
      b.setPurchaseProbability(e.getPurchaseProbability());
    }
    if (e.hasShadowProbability()) {
      b.setShadowProbability(e.getShadowProbability())
          .setShadowModelVersion(e.getShadowModelVersion());
    }
    return b.build();
  }

  /**
   * Whether the event at ({@code t}, {@code id}) comes after the one at ({@code bestT}, {@code
   * bestId}): by event time, and among events of the same millisecond by event id, so the session
   * step (the decision point's features) and this step (its score) pick the same event whatever
   * order they see them in.
   */
  static boolean later(long t, String id, long bestT, String bestId) {
    if (t != bestT) {
      return t > bestT;
    }
    return (id == null ? "" : id).compareTo(bestId == null ? "" : bestId) > 0;
  }

  static boolean decides(EventKind kind) {
    return kind == EventKind.EVENT_KIND_CHECKOUT_START || kind == EventKind.EVENT_KIND_PURCHASE;
  }

  @Override
  public void processElement1(EnrichedEvent e, Context ctx, Collector<Session> out)
      throws Exception {
    long t = e.getEvent().getEventTimeMs();
    if (decides(e.getEvent().getKind())) {
      decisionsMs.add(t);
    } else if (e.hasPurchaseProbability()) {
      scored.add(new Scored(e));
    }
    Long newest = newestMs.value();
    if (newest == null || t > newest) {
      newestMs.update(t);
      // The session's close normally clears the key; this timer clears it if no close comes
      // (an event the session step no longer took in).
      ctx.timerService().registerEventTimeTimer(t + gapMs);
    }
  }

  @Override
  public void processElement2(Session s, Context ctx, Collector<Session> out) throws Exception {
    closed.add(s);
    ctx.timerService().registerEventTimeTimer(s.getEndMs() + gapMs);
  }

  @Override
  public void onTimer(long timestamp, OnTimerContext ctx, Collector<Session> out) throws Exception {
    List<Session> due = new ArrayList<>();
    List<Session> later = new ArrayList<>();
    for (Session s : closed.get()) {
      (s.getEndMs() + gapMs <= timestamp ? due : later).add(s);
    }
    Long newest = newestMs.value();
    boolean keyDone = later.isEmpty() && (newest == null || newest + gapMs <= timestamp);
    if (!due.isEmpty()) {
      List<Scored> all = new ArrayList<>();
      scored.get().forEach(all::add);
      List<Long> decisions = new ArrayList<>();
      decisionsMs.get().forEach(decisions::add);
      Long upgraded = firstCheckoutMs.value();
      if (upgraded != null) {
        decisions.add(upgraded);
        firstCheckoutMs.clear();
      }
      for (Session s : due) {
        out.collect(withDecisionScore(s, all, decisions));
      }
      closed.update(later);
      if (!keyDone) {
        // A session closes only once no accepted event can still join it, so a later session of
        // this id starts after every due one ends: what lies at or before their end is done with.
        long doneMs = due.stream().mapToLong(Session::getEndMs).max().getAsLong();
        all.removeIf(sc -> sc.timeMs <= doneMs);
        decisions.removeIf(t -> t <= doneMs);
        scored.update(all);
        decisionsMs.update(decisions);
      }
    }
    if (keyDone) {
      scored.clear();
      decisionsMs.clear();
      firstCheckoutMs.clear();
      newestMs.clear();
    }
  }

  /**
   * The session with the probability of its latest scored event before its first checkout or
   * purchase (among the events of its own time span), if any.
   */
  static Session withDecisionScore(Session s, List<Scored> scored, List<Long> decisionsMs) {
    long decision =
        decisionsMs.stream()
            .filter(t -> t >= s.getStartMs() && t <= s.getEndMs())
            .min(Long::compare)
            .orElse(Long.MAX_VALUE);
    Scored best = null;
    for (Scored sc : scored) {
      boolean inSession = sc.timeMs >= s.getStartMs() && sc.timeMs <= s.getEndMs();
      if (inSession
          && sc.timeMs < decision
          && (best == null || later(sc.timeMs, sc.eventId, best.timeMs, best.eventId))) {
        best = sc;
      }
    }
    if (best == null) {
      return s;
    }
    Session.Builder b =
        s.toBuilder()
            .setPurchaseProbability(best.probability)
            .setModelVersion(best.modelVersion)
            .setDecisionEventId(best.eventId == null ? "" : best.eventId);
    if (best.shadowProbability != null) {
      b.setShadowProbability(best.shadowProbability).setShadowModelVersion(best.shadowModelVersion);
    }
    return b.build();
  }
}
