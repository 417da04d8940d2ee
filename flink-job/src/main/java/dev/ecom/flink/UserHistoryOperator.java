// Keyed by user_id: what is known of the user's earlier sessions, attached to each event.
package dev.ecom.flink;

import dev.ecom.proto.v1.EnrichedEvent;
import dev.ecom.proto.v1.Event;
import dev.ecom.proto.v1.EventKind;
import dev.ecom.proto.v1.UserHistory;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.StateTtlConfig;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.metrics.Counter;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.util.Collector;

/**
 * The job's per-user step, keyed by user_id, before sessionization: it sets each event's {@link
 * EnrichedEvent#getUser() user}, the {@link UserHistory} ecom-core's user features read (prior
 * sessions, prior purchases, start of the previous session).
 *
 * <p>As in training ({@code ecom-train}'s prepare), a session's history is what was known when it
 * began, fixed for the whole session: the user's sessions that had ended before its first event.
 * Here "ended" is as far as the job can know: a session whose last event is before this session's
 * first event counts (with whether it has purchased so far). Sessions the watermark has closed for
 * good (last event + gap behind it) are folded into totals and leave the per-session state, so the
 * state per user is a few numbers and the sessions still open.
 *
 * <p>Events behind the watermark pass through untouched (the validate step has rejected those that
 * were late when they came in; one can only fall behind here while it waits upstream).
 */
public final class UserHistoryOperator
    extends KeyedProcessFunction<String, EnrichedEvent, EnrichedEvent> {
  private static final long serialVersionUID = 1L;

  private final long gapMs;
  private final long allowedLatenessMs;
  private final StateTtl ttl;

  /** Sessions closed for good: counts and the latest start. */
  private transient ValueState<UserTotals> totals;

  /** Open sessions: session_id → {first event ms, last event ms, purchased 0/1, its history}. */
  private transient MapState<String, long[]> open;

  private transient Counter withHistory;

  /**
   * @param ttl how long a user's state lives after it was last read or written (processing time): a
   *     user who never comes back, and the sessions of theirs no later event closes, do not stay in
   *     state for good; 0 keeps them
   */
  public UserHistoryOperator(long gapMs, long allowedLatenessMs, StateTtl ttl) {
    this.gapMs = gapMs;
    this.allowedLatenessMs = allowedLatenessMs;
    this.ttl = ttl;
  }

  /** A user's closed sessions (a Flink POJO). */
  public static final class UserTotals {
    public long sessions;
    public long purchases;
    public long lastStartMs;

    public UserTotals() {}
  }

  // Slots of an open session's long[].
  private static final int FIRST = 0;
  private static final int LAST = 1;
  private static final int PURCHASED = 2;
  private static final int H_SESSIONS = 3;
  private static final int H_PURCHASES = 4;
  private static final int H_LAST_START = 5;

  @Override
  public void open(OpenContext openContext) {
    ValueStateDescriptor<UserTotals> totalsDesc =
        new ValueStateDescriptor<>("user-totals", UserTotals.class);
    MapStateDescriptor<String, long[]> openDesc =
        new MapStateDescriptor<>(
            "user-open-sessions",
            Types.STRING,
            PrimitiveArrayTypeInfo.LONG_PRIMITIVE_ARRAY_TYPE_INFO);
    if (ttl.enabled()) {
      StateTtlConfig config = ttl.config(StateTtlConfig.UpdateType.OnReadAndWrite);
      totalsDesc.enableTimeToLive(config);
      openDesc.enableTimeToLive(config);
    }
    totals = getRuntimeContext().getState(totalsDesc);
    open = getRuntimeContext().getMapState(openDesc);
    withHistory = getRuntimeContext().getMetricGroup().counter("eventsWithUserHistory");
  }

  @Override
  public void processElement(EnrichedEvent e, Context ctx, Collector<EnrichedEvent> out)
      throws Exception {
    Event ev = e.getEvent();
    long t = ev.getEventTimeMs();
    long watermark = ctx.timerService().currentWatermark();
    if (watermark != Long.MIN_VALUE && t < watermark - allowedLatenessMs) {
      out.collect(e);
      return;
    }
    UserTotals sum = closeEnded(watermark);
    long[] s = open.get(ev.getSessionId());
    if (s == null) {
      s = new long[6];
      s[FIRST] = t;
      s[LAST] = t;
      // What was known when this session began.
      s[H_SESSIONS] = sum.sessions;
      s[H_PURCHASES] = sum.purchases;
      s[H_LAST_START] = sum.lastStartMs;
      for (Map.Entry<String, long[]> o : open.entries()) {
        long[] other = o.getValue();
        if (other[LAST] < t) {
          s[H_SESSIONS]++;
          s[H_PURCHASES] += other[PURCHASED];
          s[H_LAST_START] = Math.max(s[H_LAST_START], other[FIRST]);
        }
      }
    }
    s[FIRST] = Math.min(s[FIRST], t);
    s[LAST] = Math.max(s[LAST], t);
    if (ev.getKind() == EventKind.EVENT_KIND_PURCHASE) {
      s[PURCHASED] = 1;
    }
    open.put(ev.getSessionId(), s);
    if (s[H_SESSIONS] > 0) {
      withHistory.inc();
    }
    out.collect(
        e.toBuilder()
            .setUser(
                UserHistory.newBuilder()
                    .setPriorSessions((int) Math.min(s[H_SESSIONS], Integer.MAX_VALUE))
                    .setPriorPurchases((int) Math.min(s[H_PURCHASES], Integer.MAX_VALUE))
                    .setLastSessionMs(s[H_LAST_START]))
            .build());
  }

  /**
   * Folds the open sessions the watermark has closed for good (last event + gap behind it) into the
   * user's totals and returns them.
   */
  private UserTotals closeEnded(long watermark) throws Exception {
    UserTotals sum = totals.value();
    if (sum == null) {
      sum = new UserTotals();
    }
    if (watermark == Long.MIN_VALUE || open.isEmpty()) {
      return sum;
    }
    List<String> ended = new ArrayList<>();
    for (Map.Entry<String, long[]> o : open.entries()) {
      long[] s = o.getValue();
      if (s[LAST] + gapMs < watermark) {
        ended.add(o.getKey());
        sum.sessions++;
        sum.purchases += s[PURCHASED];
        sum.lastStartMs = Math.max(sum.lastStartMs, s[FIRST]);
      }
    }
    if (!ended.isEmpty()) {
      for (String id : ended) {
        open.remove(id);
      }
      totals.update(sum);
    }
    return sum;
  }
}
