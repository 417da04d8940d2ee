// Keyed by session_id: catalog join, duplicate check, running features, session close.
package dev.ecom.flink;

import dev.ecom.flink.nativelib.EcomNative;
import dev.ecom.flink.serde.ProtoTypeInfo;
import dev.ecom.proto.v1.EnrichedEvent;
import dev.ecom.proto.v1.Event;
import dev.ecom.proto.v1.EventKind;
import dev.ecom.proto.v1.InvalidEvent;
import dev.ecom.proto.v1.Product;
import dev.ecom.proto.v1.RejectReason;
import dev.ecom.proto.v1.Session;
import dev.ecom.proto.v1.SessionState;
import dev.ecom.proto.v1.UserHistory;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.BroadcastState;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.ReadOnlyBroadcastState;
import org.apache.flink.api.common.state.StateTtlConfig;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.metrics.Counter;
import org.apache.flink.streaming.api.TimeDomain;
import org.apache.flink.streaming.api.functions.co.KeyedBroadcastProcessFunction;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/**
 * The job's per-session step, keyed by session_id, with the catalog as broadcast state.
 *
 * <p>For each event, in order:
 *
 * <ol>
 *   <li>Late events never get here: {@link ValidateEnrichOperator} judges lateness against the
 *       watermark that came before each record. Here the watermark may be later by the time an
 *       event is handled (it waits for the catalog input too, and events wait for the catalog).
 *   <li><b>Duplicate</b>: an event_id already accepted in this session leaves on {@link #REJECTED}
 *       with REJECT_REASON_DUPLICATE.
 *   <li><b>Catalog join</b>: category, price, material and style of its product from {@link
 *       #CATALOG}. Until the first catalog record has arrived, events wait in keyed state (at most
 *       {@code catalogWaitMs} of processing time), so a job started on a full topic does not enrich
 *       its first events without a catalog; {@link CatalogWatermarks} holds this step's event time
 *       meanwhile, so no session closes with its events still waiting. A product the catalog lacks
 *       sets catalog_miss.
 *   <li><b>Running features</b>: ecom-core folds the event into the session's state over JNI; the
 *       event leaves with the session's features so far and its LSH tokens, ready to be scored.
 * </ol>
 *
 * <p>A session closes when the watermark passes its last event time plus {@code gapMs} (an
 * event-time session window: any event within the gap extends it, in whatever order they come). Its
 * {@link Session} record leaves on {@link #SESSIONS} and its state is cleared; a later event of the
 * same session_id opens a new one.
 *
 * <p>The user's earlier sessions come with each event ({@code user}, set by {@link
 * UserHistoryOperator}); the features and the Session record use them.
 */
public final class SessionOperator
    extends KeyedBroadcastProcessFunction<String, EnrichedEvent, Product, EnrichedEvent> {
  private static final long serialVersionUID = 1L;

  /** Other rejects of this step (duplicates). */
  public static final OutputTag<InvalidEvent> REJECTED =
      new OutputTag<>("rejected", ProtoTypeInfo.forClass(InvalidEvent.class));

  /** Closed sessions. */
  public static final OutputTag<Session> SESSIONS =
      new OutputTag<>("sessions", ProtoTypeInfo.forClass(Session.class));

  /** The catalog: product_id → product. */
  public static final MapStateDescriptor<String, Product> CATALOG =
      new MapStateDescriptor<>("catalog", Types.STRING, ProtoTypeInfo.forClass(Product.class));

  private final long gapMs;
  private final long catalogWaitMs;

  private transient ValueState<byte[]> state;
  private transient ValueState<SessionMeta> meta;
  private transient MapState<String, Boolean> seen;
  private transient ListState<EnrichedEvent> waiting;
  private transient ValueState<Long> waitingSince;
  private transient String schemaHash;
  private transient int featureCount;
  // Processing time of this task's first catalog record; MIN_VALUE before it.
  private transient long catalogSinceMs;
  private final StateTtl stateTtl;
  private transient Counter duplicateEvents;
  private transient Counter catalogMisses;
  private transient Counter sessionsClosed;

  /**
   * @param stateTtl an open session's state is dropped this long (processing time) after its last
   *     write, or never: sessions close by event time, and this bounds the state of one whose close
   *     the watermark never reaches
   */
  public SessionOperator(long gapMs, long catalogWaitMs, StateTtl stateTtl) {
    this.gapMs = gapMs;
    this.catalogWaitMs = catalogWaitMs;
    this.stateTtl = stateTtl;
  }

  /** Per-session bookkeeping next to the ecom-core state (a Flink POJO). */
  public static final class SessionMeta {
    public String userId = "";
    public long revenueCents;
    public long closeAtMs;
    public double[] features = new double[0];
    // The features after the latest event (by event time) before the first checkout or
    // purchase, and that event's time; the first checkout's time (MAX_VALUE: none yet).
    public double[] decisionFeatures = new double[0];
    public byte[] decisionState = new byte[0];
    public long decisionTimeMs = Long.MIN_VALUE;
    public String decisionEventId = "";
    // Products bought, in order, without repeats.
    public String[] bought = new String[0];
    public long firstCheckoutMs = Long.MAX_VALUE;
    // The user's history when the session began (from the user step).
    public int priorSessions;
    public int priorPurchases;
    public long lastSessionMs;

    public SessionMeta() {}
  }

  @Override
  public void open(OpenContext openContext) {
    var stateDesc = new ValueStateDescriptor<>("session-state", byte[].class);
    var metaDesc = new ValueStateDescriptor<>("session-meta", SessionMeta.class);
    var seenDesc = new MapStateDescriptor<>("seen-ids", Types.STRING, Types.BOOLEAN);
    if (stateTtl.enabled()) {
      StateTtlConfig ttl = stateTtl.config(StateTtlConfig.UpdateType.OnCreateAndWrite);
      stateDesc.enableTimeToLive(ttl);
      metaDesc.enableTimeToLive(ttl);
      seenDesc.enableTimeToLive(ttl);
    }
    state = getRuntimeContext().getState(stateDesc);
    meta = getRuntimeContext().getState(metaDesc);
    seen = getRuntimeContext().getMapState(seenDesc);
    waiting =
        getRuntimeContext()
            .getListState(
                new ListStateDescriptor<>(
                    "waiting-for-catalog", ProtoTypeInfo.forClass(EnrichedEvent.class)));
    waitingSince =
        getRuntimeContext().getState(new ValueStateDescriptor<>("waiting-since", Types.LONG));
    catalogSinceMs = Long.MIN_VALUE;
    String[] schema = EcomNative.featureSchema();
    schemaHash = schema[0];
    featureCount = schema.length - 1;
    var group = getRuntimeContext().getMetricGroup();
    duplicateEvents = group.counter("duplicateEvents");
    catalogMisses = group.counter("catalogMisses");
    sessionsClosed = group.counter("sessionsClosed");
  }

  @Override
  public void processBroadcastElement(Product p, Context ctx, Collector<EnrichedEvent> out)
      throws Exception {
    BroadcastState<String, Product> catalog = ctx.getBroadcastState(CATALOG);
    catalog.put(p.getProductId(), p);
    if (catalogSinceMs == Long.MIN_VALUE) {
      catalogSinceMs = ctx.currentProcessingTime();
    }
  }

  @Override
  public void processElement(EnrichedEvent e, ReadOnlyContext ctx, Collector<EnrichedEvent> out)
      throws Exception {
    long now = ctx.timerService().currentProcessingTime();
    String id = e.getEvent().getEventId();
    if (seen.contains(id)) {
      duplicateEvents.inc();
      ctx.output(
          REJECTED,
          Enrichment.reject(
              e,
              RejectReason.REJECT_REASON_DUPLICATE,
              "event_id " + id + " was already accepted in session " + ctx.getCurrentKey(),
              now));
      return;
    }
    seen.put(id, Boolean.TRUE);
    ReadOnlyBroadcastState<String, Product> catalog = ctx.getBroadcastState(CATALOG);
    boolean alreadyWaiting = waitingSince.value() != null;
    if (alreadyWaiting || mustWait(catalog, e, now)) {
      if (!alreadyWaiting) {
        waitingSince.update(now);
        ctx.timerService().registerProcessingTimeTimer(now + Math.min(1_000, catalogWaitMs));
        // Bounded input ends with the maximum watermark, which fires this one (processing-time
        // timers may not fire after the end of input).
        ctx.timerService().registerEventTimeTimer(Long.MAX_VALUE);
      }
      waiting.add(e);
      return;
    }
    fold(join(e, catalog), ctx, out);
  }

  @Override
  public void onTimer(long timestamp, OnTimerContext ctx, Collector<EnrichedEvent> out)
      throws Exception {
    if (ctx.timeDomain() == TimeDomain.PROCESSING_TIME) {
      Long since = waitingSince.value();
      if (since == null) {
        return;
      }
      ReadOnlyBroadcastState<String, Product> catalog = ctx.getBroadcastState(CATALOG);
      boolean ready = !anyWaitsForCatalog(catalog, timestamp);
      if (ready || timestamp - since >= catalogWaitMs) {
        drainWaiting(catalog, ctx, out);
      } else {
        ctx.timerService().registerProcessingTimeTimer(timestamp + Math.min(1_000, catalogWaitMs));
      }
      return;
    }
    // Events still waiting for the catalog belong to the session before it closes (and at the
    // end of input, Long.MAX_VALUE, nothing more will come for them).
    drainWaiting(ctx.getBroadcastState(CATALOG), ctx, out);
    if (timestamp == Long.MAX_VALUE) {
      return;
    }
    SessionMeta m = meta.value();
    if (m == null || m.closeAtMs != timestamp) {
      return; // a timer of an earlier close time that an event has since pushed back
    }
    byte[] bytes = state.value();
    if (bytes != null) {
      ctx.output(SESSIONS, session(ctx.getCurrentKey(), m, SessionState.parseFrom(bytes), ctx));
      sessionsClosed.inc();
    }
    state.clear();
    meta.clear();
    seen.clear();
  }

  /** Whether any waiting event still needs the catalog (see {@link #mustWait}). */
  private boolean anyWaitsForCatalog(ReadOnlyBroadcastState<String, Product> catalog, long now)
      throws Exception {
    for (EnrichedEvent w : waiting.get()) {
      if (mustWait(catalog, w, now)) {
        return true;
      }
    }
    return false;
  }

  /**
   * Whether {@code e} should wait for the catalog: before its first record, and while the catalog
   * is still loading (the first {@code catalogWaitMs} after that) when it lacks e's product. Later
   * a missing product is a miss at once.
   */
  private boolean mustWait(
      ReadOnlyBroadcastState<String, Product> catalog, EnrichedEvent e, long now) throws Exception {
    if (catalogSinceMs == Long.MIN_VALUE && catalog.immutableEntries().iterator().hasNext()) {
      // Restored from a checkpoint: the catalog read so far is back, so it is loaded.
      catalogSinceMs = now - catalogWaitMs;
    }
    if (catalogSinceMs == Long.MIN_VALUE) {
      return true;
    }
    if (now - catalogSinceMs >= catalogWaitMs) {
      return false;
    }
    Event ev = e.getEvent();
    return ev.hasProductId()
        && !ev.getProductId().isEmpty()
        && !catalog.contains(ev.getProductId());
  }

  private void drainWaiting(
      ReadOnlyBroadcastState<String, Product> catalog,
      ReadOnlyContext ctx,
      Collector<EnrichedEvent> out)
      throws Exception {
    if (waitingSince.value() == null) {
      return;
    }
    List<EnrichedEvent> events = new ArrayList<>();
    for (EnrichedEvent w : waiting.get()) {
      events.add(w);
    }
    waiting.clear();
    waitingSince.clear();
    ctx.timerService().deleteEventTimeTimer(Long.MAX_VALUE);
    for (EnrichedEvent w : events) {
      fold(join(w, catalog), ctx, out);
    }
  }

  private EnrichedEvent join(EnrichedEvent e, ReadOnlyBroadcastState<String, Product> catalog)
      throws Exception {
    Event ev = e.getEvent();
    if (!ev.hasProductId() || ev.getProductId().isEmpty()) {
      return e;
    }
    Product p = catalog.get(ev.getProductId());
    if (p == null) {
      catalogMisses.inc();
      return e.toBuilder().setCatalogMiss(true).build();
    }
    return e.toBuilder()
        .setCategory(p.getCategory())
        .setPriceCents(p.getPriceCents())
        .setMaterial(p.getMaterial())
        .setStyle(p.getStyle())
        .build();
  }

  /** Folds {@code e} into the session over JNI and emits it with the features so far. */
  private void fold(EnrichedEvent e, ReadOnlyContext ctx, Collector<EnrichedEvent> out)
      throws Exception {
    double[] features = new double[featureCount];
    UserHistory user = e.getUser();
    long[] history = {user.getPriorSessions(), user.getPriorPurchases(), user.getLastSessionMs()};
    byte[][] next =
        EcomNative.sessionUpdateBatch(
            new byte[][] {state.value()}, new byte[][] {foldInput(e)}, history, features);
    if (next == null || next.length != 1 || next[0] == null) {
      throw new IllegalStateException(
          "sessionUpdateBatch returned no state for session " + ctx.getCurrentKey());
    }
    state.update(next[0]);
    SessionState s = SessionState.parseFrom(next[0]);
    SessionMeta m = meta.value();
    if (m == null) {
      m = new SessionMeta();
      m.userId = e.getEvent().getUserId();
      m.priorSessions = user.getPriorSessions();
      m.priorPurchases = user.getPriorPurchases();
      m.lastSessionMs = user.getLastSessionMs();
    }
    Event ev = e.getEvent();
    if (ev.getKind() == EventKind.EVENT_KIND_PURCHASE) {
      // As ecom-core's amount_cents and the metrics: quantity absent or 0 counts as 1.
      m.revenueCents += Math.max(1, ev.getQuantity()) * Math.max(0, ev.getUnitPriceCents());
      String product = ev.getProductId();
      if (!product.isEmpty() && !Arrays.asList(m.bought).contains(product)) {
        m.bought = Arrays.copyOf(m.bought, m.bought.length + 1);
        m.bought[m.bought.length - 1] = product;
      }
    }
    m.features = features;
    long t = ev.getEventTimeMs();
    if (SessionScore.decides(ev.getKind())) {
      if (t < m.firstCheckoutMs) {
        m.firstCheckoutMs = t;
        if (m.decisionTimeMs >= t) {
          // An out-of-order checkout before the event kept: that event is past the decision.
          m.decisionFeatures = new double[0];
          m.decisionState = new byte[0];
          m.decisionTimeMs = Long.MIN_VALUE;
          m.decisionEventId = "";
        }
      }
    } else if (t < m.firstCheckoutMs
        && SessionScore.later(t, ev.getEventId(), m.decisionTimeMs, m.decisionEventId)) {
      m.decisionFeatures = features;
      m.decisionState = next[0];
      m.decisionTimeMs = t;
      m.decisionEventId = ev.getEventId();
    }
    long closeAt = s.getLastMs() + gapMs;
    if (closeAt != m.closeAtMs) {
      if (m.closeAtMs != 0) {
        ctx.timerService().deleteEventTimeTimer(m.closeAtMs);
      }
      ctx.timerService().registerEventTimeTimer(closeAt);
      m.closeAtMs = closeAt;
    }
    meta.update(m);
    EnrichedEvent.Builder b =
        e.toBuilder()
            .clearSessionFeatures()
            .setFeatureSchemaHash(schemaHash)
            .clearSessionTokens()
            .addAllSessionTokens(s.getTokensList());
    for (double f : features) {
      b.addSessionFeatures(f);
    }
    out.collect(b.build());
  }

  /**
   * What ecom-core's {@code features::update} reads of an event (its Event, category and style), as
   * EnrichedEvent bytes: the whole record, with its LSH signature and buckets, would cost several
   * times more to encode and decode on every event.
   */
  static byte[] foldInput(EnrichedEvent e) {
    return EnrichedEvent.newBuilder()
        .setEvent(e.getEvent())
        .setCategory(e.getCategory())
        .setStyle(e.getStyle())
        .build()
        .toByteArray();
  }

  private Session session(String sessionId, SessionMeta m, SessionState s, OnTimerContext ctx)
      throws com.google.protobuf.InvalidProtocolBufferException {
    Session.Builder b =
        Session.newBuilder()
            .setId(sessionId + "@" + s.getFirstMs())
            .setSessionId(sessionId)
            .setUserId(m.userId)
            .setStartMs(s.getFirstMs())
            .setEndMs(s.getLastMs())
            .setEvents(s.getEvents())
            .setPurchased(purchases(s) > 0)
            .setRevenueCents(m.revenueCents)
            .setFeatureSchemaHash(schemaHash)
            .setState(s)
            .setUser(
                UserHistory.newBuilder()
                    .setPriorSessions(m.priorSessions)
                    .setPriorPurchases(m.priorPurchases)
                    .setLastSessionMs(m.lastSessionMs))
            .setClosedAtMs(ctx.timerService().currentProcessingTime());
    Arrays.stream(m.features).forEach(b::addFeatures);
    Arrays.stream(m.decisionFeatures).forEach(b::addDecisionFeatures);
    if (m.decisionState.length > 0) {
      b.setDecisionState(SessionState.parseFrom(m.decisionState));
    }
    b.addAllBought(Arrays.asList(m.bought));
    return b.build();
  }

  private static int purchases(SessionState s) {
    int k = EventKind.EVENT_KIND_PURCHASE.getNumber();
    return s.getKindCountsCount() > k ? s.getKindCounts(k) : 0;
  }
}
