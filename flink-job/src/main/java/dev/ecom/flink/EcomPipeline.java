// The job's dataflow between its sources and its sinks; main and the tests plug those in.
package dev.ecom.flink;

import dev.ecom.flink.metrics.MetricsWindows;
import dev.ecom.flink.quality.QualityWindows;
import dev.ecom.flink.serde.ProtoTypeInfo;
import dev.ecom.flink.serve.BatchingServeCall;
import dev.ecom.flink.serve.GuardCall;
import dev.ecom.flink.serve.RecommendCall;
import dev.ecom.flink.serve.ScoreCall;
import dev.ecom.flink.serve.ServeCallConfig;
import dev.ecom.proto.v1.EnrichedEvent;
import dev.ecom.proto.v1.InvalidEvent;
import dev.ecom.proto.v1.ModelQuality;
import dev.ecom.proto.v1.Product;
import dev.ecom.proto.v1.Session;
import dev.ecom.proto.v1.WindowMetrics;
import java.util.concurrent.TimeUnit;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.streaming.api.datastream.AsyncDataStream;
import org.apache.flink.streaming.api.datastream.BroadcastStream;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;

/**
 * raw records (with event-time watermarks) → validate, late check + LSH (batched JNI) → keyed by
 * user: the user's earlier sessions → keyed by session: catalog join, duplicate check, running
 * features (JNI) → Guard → Recommend → Score (each through batched Async I/O to ecom serve, with a
 * declared fallback) → finish → enriched sink. Rejected, late and duplicate records → invalid sink;
 * closed sessions, each with its score at the decision point (session-score) → sessions sink; the
 * sessionized events → per-minute, per-category DP metrics → metrics sink. Every raw record reaches
 * exactly one of the enriched and invalid sinks. Catalog records → parse (a bad one → invalid sink,
 * REJECT_REASON_BAD_CATALOG_RECORD) → broadcast to the session step.
 */
public final class EcomPipeline {
  /** Stable operator ids: changing one drops that operator's state on restore. */
  public static final String UID_VALIDATE = "validate-enrich";

  public static final String UID_CATALOG_TIME = "catalog-time";
  public static final String UID_CATALOG_PARSE = "catalog-parse";
  public static final String UID_USER_HISTORY = "user-history";
  public static final String UID_SESSIONS = "sessionize";
  public static final String UID_GUARD = "guard";
  public static final String UID_RECOMMEND = "recommend";
  public static final String UID_SCORE = "score";
  public static final String UID_FINISH = "finish";
  public static final String UID_ENRICHED_SINK = "enriched-sink";
  public static final String UID_INVALID_SINK = "invalid-sink";
  public static final String UID_SESSIONS_SINK = "sessions-sink";
  public static final String UID_SESSION_SCORE = "session-score";
  public static final String UID_METRICS_SINK = "metrics-sink";
  public static final String UID_QUALITY_SINK = "quality-sink";

  private EcomPipeline() {}

  /** Where the pipeline writes. */
  public record Sinks(
      Sink<EnrichedEvent> enriched,
      Sink<InvalidEvent> invalid,
      Sink<Session> sessions,
      Sink<WindowMetrics> metrics,
      Sink<ModelQuality> quality) {}

  /** One ecom serve method through Async I/O (unordered: watermarks still hold their place). */
  private static SingleOutputStreamOperator<EnrichedEvent> serve(
      DataStream<EnrichedEvent> in, BatchingServeCall<?, ?> call, ServeCallConfig how, String uid) {
    return AsyncDataStream.unorderedWait(
            in, call, how.timeoutMs(), TimeUnit.MILLISECONDS, how.capacity())
        .returns(ProtoTypeInfo.forClass(EnrichedEvent.class))
        .uid(uid)
        .name(uid);
  }

  /**
   * The floor for benchmarks ({@link PassThrough}): raw records parsed and passed to the enriched
   * and invalid sinks, nothing else; the catalog, sessions and metrics are left out.
   */
  public static void buildPassThrough(DataStream<RawRecord> raw, Sinks sinks, JobConfig cfg) {
    SingleOutputStreamOperator<EnrichedEvent> passed =
        raw.process(
                new PassThrough(cfg.intake().ipHashKey(), cfg.intake().maxRecordBytes()),
                ProtoTypeInfo.forClass(EnrichedEvent.class))
            .uid("pass-through")
            .name("pass-through");
    passed.sinkTo(sinks.enriched()).uid(UID_ENRICHED_SINK).name("enriched-sink");
    passed
        .getSideOutput(PassThrough.INVALID)
        .sinkTo(sinks.invalid())
        .uid(UID_INVALID_SINK)
        .name("invalid-sink");
  }

  /**
   * Wires the pipeline onto {@code raw}'s environment. {@code raw} must carry event-time timestamps
   * and watermarks ({@link RawEventTime#strategy}).
   */
  public static void build(
      DataStream<RawRecord> raw, DataStream<RawRecord> catalog, Sinks sinks, JobConfig cfg) {
    SingleOutputStreamOperator<EnrichedEvent> validated =
        raw.transform(
                "validate-enrich",
                ProtoTypeInfo.forClass(EnrichedEvent.class),
                new ValidateEnrichOperator(cfg.intake(), cfg.eventTime()))
            .uid(UID_VALIDATE)
            .name("validate-enrich");

    // Event time and watermarks come with `raw` (RawEventTime.strategy at the Kafka source, per
    // partition); the validate step never lets a watermark overtake its batch.
    SingleOutputStreamOperator<Product> parsedCatalog =
        catalog
            .process(
                new CatalogParse(cfg.intake().maxRecordBytes()),
                ProtoTypeInfo.forClass(Product.class))
            .uid(UID_CATALOG_PARSE)
            .name("catalog-parse");
    BroadcastStream<Product> products =
        parsedCatalog
            .assignTimestampsAndWatermarks(new CatalogWatermarks(cfg.eventTime().catalogWaitMs()))
            .uid(UID_CATALOG_TIME)
            .name("catalog-time")
            .setParallelism(1)
            .broadcast(SessionOperator.CATALOG);
    // The user's earlier sessions; a session's events all come from one user, so they stay in
    // order through this step.
    SingleOutputStreamOperator<EnrichedEvent> withUser =
        validated
            .keyBy(e -> e.getEvent().getUserId(), Types.STRING)
            .process(
                new UserHistoryOperator(
                    cfg.eventTime().sessionGapMs(),
                    cfg.eventTime().allowedLatenessMs(),
                    cfg.state().userHistory()),
                ProtoTypeInfo.forClass(EnrichedEvent.class))
            .uid(UID_USER_HISTORY)
            .name("user-history");
    SingleOutputStreamOperator<EnrichedEvent> sessionized =
        withUser
            .keyBy(e -> e.getEvent().getSessionId(), Types.STRING)
            .connect(products)
            .process(
                new SessionOperator(
                    cfg.eventTime().sessionGapMs(),
                    cfg.eventTime().catalogWaitMs(),
                    cfg.state().openSessions()),
                ProtoTypeInfo.forClass(EnrichedEvent.class))
            .uid(UID_SESSIONS)
            .name("sessionize");

    DataStream<EnrichedEvent> served =
        serve(
            serve(
                serve(
                    sessionized,
                    new GuardCall(cfg.serve().guardCall()),
                    cfg.serve().guardCall(),
                    UID_GUARD),
                new RecommendCall(
                    cfg.serve().recommendCall(),
                    cfg.serve().recommendK(),
                    cfg.serve().recommendKinds()),
                cfg.serve().recommendCall(),
                UID_RECOMMEND),
            new ScoreCall(
                cfg.serve().scoreCall(), cfg.serve().scoreTopK(), cfg.serve().scoreReasonsEvery()),
            cfg.serve().scoreCall(),
            UID_SCORE);
    SingleOutputStreamOperator<EnrichedEvent> finished =
        served
            .process(
                new Finish(cfg.kafka().producerMaxRequestBytes() - Finish.PRODUCER_HEADROOM_BYTES),
                ProtoTypeInfo.forClass(EnrichedEvent.class))
            .uid(UID_FINISH)
            .name("finish");
    finished.sinkTo(sinks.enriched()).uid(UID_ENRICHED_SINK).name("enriched-sink");
    validated
        .getSideOutput(ValidateEnrichOperator.INVALID)
        .union(
            sessionized.getSideOutput(SessionOperator.REJECTED),
            parsedCatalog.getSideOutput(CatalogParse.INVALID),
            finished.getSideOutput(Finish.OVERSIZE))
        .sinkTo(sinks.invalid())
        .uid(UID_INVALID_SINK)
        .name("invalid-sink");
    MetricsWindows.build(sessionized, cfg.privacy().metrics())
        .sinkTo(sinks.metrics())
        .uid(UID_METRICS_SINK)
        .name("metrics-sink");
    // Each closed session with its score at the decision point, for the live calibration; and
    // per model version and window, the live quality those scores add up to.
    SingleOutputStreamOperator<Session> scoredSessions =
        finished
            .map(SessionScore::slim, ProtoTypeInfo.forClass(EnrichedEvent.class))
            .uid(UID_SESSION_SCORE + "-slim")
            .name("session-score-input")
            .keyBy(e -> e.getEvent().getSessionId(), Types.STRING)
            .connect(
                sessionized
                    .getSideOutput(SessionOperator.SESSIONS)
                    .keyBy(Session::getSessionId, Types.STRING))
            .process(
                new SessionScore(cfg.eventTime().sessionGapMs()),
                ProtoTypeInfo.forClass(Session.class))
            .uid(UID_SESSION_SCORE)
            .name("session-score");
    scoredSessions.sinkTo(sinks.sessions()).uid(UID_SESSIONS_SINK).name("sessions-sink");
    QualityWindows.build(
            QualityWindows.decisions(scoredSessions, cfg.eventTime().sessionGapMs()),
            cfg.eventTime().qualityWindowMs())
        .sinkTo(sinks.quality())
        .uid(UID_QUALITY_SINK)
        .name("quality-sink");
  }
}
