// The whole pipeline on a MiniCluster: bounded raw records in, collected enriched/invalid out.
package dev.ecom.flink;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.ecom.flink.nativelib.EcomNative;
import dev.ecom.flink.serve.GuardCall;
import dev.ecom.flink.serve.ServeSecurity;
import dev.ecom.proto.v1.EnrichedEvent;
import dev.ecom.proto.v1.Event;
import dev.ecom.proto.v1.EventKind;
import dev.ecom.proto.v1.InvalidEvent;
import dev.ecom.proto.v1.ModelQuality;
import dev.ecom.proto.v1.Product;
import dev.ecom.proto.v1.RejectReason;
import dev.ecom.proto.v1.Session;
import dev.ecom.proto.v1.SimilarProduct;
import dev.ecom.proto.v1.Verdict;
import dev.ecom.proto.v1.WindowMetrics;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Collectors;
import javax.crypto.Mac;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

class EcomPipelineTest {
  @RegisterExtension
  static final MiniClusterExtension MINI_CLUSTER =
      new MiniClusterExtension(
          new MiniClusterResourceConfiguration.Builder()
              .setNumberTaskManagers(1)
              .setNumberSlotsPerTaskManager(2)
              .build());

  private static final String KEY = "test-ip-hash-key";
  private static final long NOW = System.currentTimeMillis();
  private static final int VALID = 23;

  /** Input records and, per offset, the reject reason expected (absent = valid). */
  private final List<RawRecord> input = new ArrayList<>();

  private final Map<Long, RejectReason> expectedRejects = new HashMap<>();
  private final Map<Long, Event> validByOffset = new HashMap<>();
  private long dupOf = -1;
  private long dupAt = -1;

  private void add(byte[] value, RejectReason expected) {
    long offset = input.size();
    input.add(TestEvents.raw(value, offset, NOW));
    if (expected != null) {
      expectedRejects.put(offset, expected);
    }
  }

  private void buildInput() {
    for (int i = 0; i < VALID; i++) {
      Event e = TestEvents.valid(i, NOW);
      if (i == 5) {
        e =
            e.toBuilder()
                .setKind(EventKind.EVENT_KIND_SEARCH)
                .clearProductId()
                .setSearchQuery("Oak  Dining TABLE")
                .build();
      }
      validByOffset.put((long) input.size(), e);
      add(e.toByteArray(), null);
      // Interleave malformed records so batches mix both kinds.
      if (i == 3) {
        // A client retry: the same bytes again, rejected by the session step.
        dupOf = input.size() - 1;
        dupAt = input.size();
        add(e.toByteArray(), RejectReason.REJECT_REASON_DUPLICATE);
      } else if (i == 2) {
        add(
            new byte[] {(byte) 0xff, (byte) 0xff, (byte) 0xff},
            RejectReason.REJECT_REASON_UNPARSEABLE);
      } else if (i == 7) {
        add(
            TestEvents.valid(100, NOW).toBuilder().setEventId("").build().toByteArray(),
            RejectReason.REJECT_REASON_MISSING_ID);
      } else if (i == 11) {
        add(
            TestEvents.valid(101, NOW).toBuilder().setKindValue(99).build().toByteArray(),
            RejectReason.REJECT_REASON_UNKNOWN_KIND);
      } else if (i == 13) {
        add(
            TestEvents.valid(102, NOW).toBuilder().clearProductId().build().toByteArray(),
            RejectReason.REJECT_REASON_MISSING_FIELD);
      } else if (i == 17) {
        add(
            TestEvents.valid(103, NOW).toBuilder()
                .setEventTimeMs(NOW + 3_600_000)
                .build()
                .toByteArray(),
            RejectReason.REJECT_REASON_FUTURE_TIMESTAMP);
      } else if (i == 19) {
        // An empty value (a tombstone) is no event: protobuf would read it as one with every
        // field unset.
        add(new byte[0], RejectReason.REJECT_REASON_UNPARSEABLE);
      } else if (i == 21) {
        // A valid event stuffed with an unknown field past the record limit.
        byte[] event = TestEvents.valid(104, NOW).toByteArray();
        byte[] stuffed = java.util.Arrays.copyOf(event, 20_000);
        stuffed[event.length] = (byte) 0xa2; // field 100, length-delimited
        stuffed[event.length + 1] = 0x06;
        int pad = 20_000 - event.length - 4;
        stuffed[event.length + 2] = (byte) (0x80 | (pad & 0x7f));
        stuffed[event.length + 3] = (byte) (pad >> 7);
        add(stuffed, RejectReason.REJECT_REASON_OVERSIZE_RECORD);
      }
    }
  }

  private record Outcome(
      List<EnrichedEvent> enriched,
      List<InvalidEvent> invalid,
      List<Session> sessions,
      List<WindowMetrics> metrics,
      List<ModelQuality> quality) {}

  /** Offsets of the catalog records that are no Product with a product_id. */
  private static final List<Long> BAD_CATALOG_OFFSETS = List.of(3L, 9L);

  /**
   * The catalog records: every product of the valid events but the last one's, with an unparseable
   * record and a product without an id among them.
   */
  private static List<RawRecord> catalog() {
    List<byte[]> values = new ArrayList<>();
    for (int i = 0; i < VALID - 1; i++) {
      if (values.size() == BAD_CATALOG_OFFSETS.get(0)) {
        values.add(new byte[] {(byte) 0xff, (byte) 0xff});
      } else if (values.size() == BAD_CATALOG_OFFSETS.get(1)) {
        values.add(Product.newBuilder().setName("no id").build().toByteArray());
      }
      values.add(
          Product.newBuilder()
              .setProductId("p-" + i)
              .setCategory(i % 2 == 0 ? "sofas" : "beds")
              .setPriceCents(10_000 + i)
              .setStyle("modern")
              .build()
              .toByteArray());
    }
    List<RawRecord> out = new ArrayList<>();
    for (byte[] v : values) {
      out.add(new RawRecord(v, CATALOG_TOPIC, 0, out.size(), NOW - 900, NOW - 800));
    }
    return out;
  }

  private static final String CATALOG_TOPIC = "ecom.catalog";

  private Outcome run(JobConfig cfg) throws Exception {
    return run(cfg, 2, 0);
  }

  private Outcome run(JobConfig cfg, int parallelism) throws Exception {
    return run(cfg, parallelism, 0);
  }

  /** Delays each catalog record, so the events' input ends before the catalog's. */
  private record SlowCatalog(long delayMs) implements MapFunction<RawRecord, RawRecord> {
    @Override
    public RawRecord map(RawRecord r) throws InterruptedException {
      Thread.sleep(delayMs);
      return r;
    }
  }

  private Outcome run(JobConfig cfg, int parallelism, long catalogDelayMs) throws Exception {
    buildInput();
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
    env.setParallelism(parallelism);
    // As in EcomJob: fail rather than fall back to Kryo.
    env.configure(new Configuration().set(PipelineOptions.GENERIC_TYPES, false));
    DataStream<RawRecord> raw =
        env.fromData(input, TypeInformation.of(RawRecord.class))
            .assignTimestampsAndWatermarks(RawEventTime.strategy(cfg));
    DataStream<RawRecord> products =
        env.fromData(catalog(), TypeInformation.of(RawRecord.class))
            .map(new SlowCatalog(catalogDelayMs), TypeInformation.of(RawRecord.class));
    CollectingSink<EnrichedEvent> enriched = new CollectingSink<>();
    CollectingSink<InvalidEvent> invalid = new CollectingSink<>();
    CollectingSink<Session> sessions = new CollectingSink<>();
    CollectingSink<WindowMetrics> metrics = new CollectingSink<>();
    CollectingSink<ModelQuality> quality = new CollectingSink<>();
    EcomPipeline.build(
        raw, products, new EcomPipeline.Sinks(enriched, invalid, sessions, metrics, quality), cfg);
    env.execute("ecom-pipeline-test");
    // The two copies may reach the session step in either order (the validate step runs in
    // parallel); whichever came second is the duplicate.
    if (enriched.results().stream().anyMatch(e -> e.getSource().getOffset() == dupAt)) {
      validByOffset.put(dupAt, validByOffset.remove(dupOf));
      expectedRejects.put(dupOf, expectedRejects.remove(dupAt));
    }
    return new Outcome(
        enriched.results(),
        invalid.results(),
        sessions.results(),
        metrics.results(),
        quality.results());
  }

  /** A file holding {@link #KEY}, as the TaskManagers read it. */
  private static synchronized String keyFile() throws java.io.IOException {
    if (keyFile == null) {
      Path f = Files.createTempFile("ecom-test-ip-hash-key-", "");
      Files.writeString(f, KEY + "\n");
      f.toFile().deleteOnExit();
      keyFile = f.toString();
    }
    return keyFile;
  }

  private static String keyFile;

  private static JobConfig config(String serveAddress, String... extra) throws Exception {
    String[] args = {
      "--serve-address", serveAddress,
      "--ip-hash-key-file", keyFile(),
      "--guard-timeout-ms", "5000",
      "--score-timeout-ms", "5000",
      "--recommend-timeout-ms", "5000",
      // Small batches and a short delay exercise both the size and the timer flush.
      "--batch-size", "4",
      "--batch-max-delay-ms", "20"
    };
    String[] all = java.util.Arrays.copyOf(args, args.length + extra.length);
    System.arraycopy(extra, 0, all, args.length, extra.length);
    return JobConfig.parse(all);
  }

  @Test
  void everyRecordEndsUpEnrichedOrInvalidAndTheGuardFallsBack() throws Exception {
    // Nothing listens on port 1: every Guard call fails fast with UNAVAILABLE. The catalog comes
    // slower than the events, and still every event is joined with it: no session closes before
    // the catalog is in, not even at the end of the events' input.
    Outcome out = run(config("127.0.0.1:1"), 2, 150);

    assertThat(out.enriched().size() + out.invalid().size())
        .isEqualTo(input.size() + BAD_CATALOG_OFFSETS.size());
    assertThat(out.enriched()).hasSize(VALID);
    assertEnriched(out.enriched());
    assertInvalid(out.invalid());
    assertSessions(out.sessions());
    // One window (every event lies in the same minute), one record per category seen, each
    // saying the ε its four noisy values spent.
    assertThat(out.metrics())
        .as("%s", out.metrics())
        .extracting(WindowMetrics::getCategory)
        .containsExactlyInAnyOrder("sofas", "beds", "");
    for (WindowMetrics m : out.metrics()) {
      assertThat(m.getEpsilonSpent()).isCloseTo(4 * 0.5, within(1e-9));
      assertThat(m.getId()).isEqualTo(m.getWindowStartMs() + "/" + m.getCategory());
    }
    for (EnrichedEvent e : out.enriched()) {
      assertThat(e.getVerdict()).isEqualTo(Verdict.VERDICT_UNKNOWN);
      assertThat(e.getGuardFallback()).isTrue();
      assertThat(e.getVerdictReasonsList())
          .containsExactly(GuardCall.UNAVAILABLE_REASON + "UNAVAILABLE");
      // Score's fallback: no probability, marked; Recommend's on product views only.
      assertThat(e.getScoreFallback()).isTrue();
      assertThat(e.hasPurchaseProbability()).isFalse();
      assertThat(e.getScoredAtMs()).isGreaterThanOrEqualTo(NOW);
      assertThat(e.getRecommendFallback())
          .isEqualTo(e.getEvent().getKind() == EventKind.EVENT_KIND_PRODUCT_VIEW);
      assertThat(e.getRecommendationsList()).isEmpty();
    }
  }

  @Test
  void theJobReachesAServeWithMutualTlsAndATokenAndFallsBackWithAWrongToken(@TempDir Path dir)
      throws Exception {
    Path certs = RealServe.certs();
    Path token = dir.resolve("token");
    Files.writeString(token, "job-token-" + System.nanoTime() + "\n");
    try (RealServe serve = RealServe.startSecured(certs, token)) {
      ServeSecurity sec = RealServe.clientSecurity(certs, token);
      String[] tls = {
        "--serve-tls-ca-file", sec.caFile(),
        "--serve-tls-cert-file", sec.certFile(),
        "--serve-tls-key-file", sec.keyFile(),
        "--serve-token-file", sec.tokenFile()
      };
      Outcome out = run(config(serve.address(), tls));
      assertThat(out.enriched()).hasSize(VALID);
      for (EnrichedEvent e : out.enriched()) {
        assertThat(e.getGuardFallback()).as("guard fallback: %s", e).isFalse();
        assertThat(e.getScoreFallback()).as("score fallback: %s", e).isFalse();
        assertThat(e.getModelVersion()).isEqualTo(serve.model.getModelVersion());
      }

      Path wrong = dir.resolve("wrong");
      Files.writeString(wrong, "not-the-token");
      tls[tls.length - 1] = wrong.toString();
      Outcome refused = run(config(serve.address(), tls));
      assertThat(refused.enriched()).hasSize(VALID);
      for (EnrichedEvent e : refused.enriched()) {
        assertThat(e.getGuardFallback()).as("guard answered a wrong token: %s", e).isTrue();
        assertThat(e.getScoreFallback()).as("score answered a wrong token: %s", e).isTrue();
      }
    }
  }

  @Test
  void theRealServeChecksScoresAndRecommendsEveryEvent() throws Exception {
    try (RealServe serve = RealServe.start()) {
      Outcome out = run(config(serve.address()));

      assertThat(out.enriched()).hasSize(VALID);
      assertEnriched(out.enriched());
      assertInvalid(out.invalid());
      int recommended = 0;
      for (EnrichedEvent e : out.enriched()) {
        assertThat(e.getGuardFallback()).as("guard fallback: %s", e).isFalse();
        assertThat(e.getVerdict())
            .isIn(Verdict.VERDICT_ALLOW, Verdict.VERDICT_FLAG, Verdict.VERDICT_BLOCK);
        assertThat(e.getScoreFallback()).as("score fallback: %s", e).isFalse();
        assertThat(e.hasPurchaseProbability()).isTrue();
        assertThat(e.getPurchaseProbability()).isBetween(0.0, 1.0);
        assertThat(e.getModelVersion()).isEqualTo(serve.model.getModelVersion());
        assertThat(e.getShapReasonsList()).hasSize(3);
        assertThat(e.getScoredAtMs()).isBetween(e.getIngestedAtMs(), e.getEnrichedAtMs());
        assertThat(e.getRecommendFallback()).as("recommend fallback: %s", e).isFalse();
        if (e.getEvent().getKind() == EventKind.EVENT_KIND_PRODUCT_VIEW) {
          recommended++;
        } else {
          assertThat(e.getRecommendationsList()).isEmpty();
        }
        for (SimilarProduct p : e.getRecommendationsList()) {
          assertThat(p.getSimilarity()).isBetween(0.0, 1.0);
        }
      }
      assertThat(recommended).isEqualTo(VALID - 1);
      // Each session carries the score of its latest event before any checkout or purchase.
      assertSessions(out.sessions());
      for (Session s : out.sessions()) {
        EnrichedEvent decision =
            out.enriched().stream()
                .filter(e -> e.getEvent().getSessionId().equals(s.getSessionId()))
                .filter(e -> !SessionScore.decides(e.getEvent().getKind()))
                .max(
                    Comparator.<EnrichedEvent>comparingLong(e -> e.getEvent().getEventTimeMs())
                        .thenComparing(e -> e.getEvent().getEventId()))
                .orElseThrow();
        assertThat(s.getPurchaseProbability()).isEqualTo(decision.getPurchaseProbability());
        // ...and the features that event was scored with, for the feature drift.
        assertThat(s.getDecisionFeaturesList()).isEqualTo(decision.getSessionFeaturesList());
        // ...and the state they came from, which ends at that event.
        assertThat(s.getDecisionState().getLastMs())
            .isEqualTo(decision.getEvent().getEventTimeMs());
        assertThat(s.getDecisionState().getTokensList()).isNotEmpty();
        assertThat(s.getModelVersion()).isEqualTo(serve.model.getModelVersion());
      }
      // The live quality windows count every scored session once, buyers included.
      assertThat(out.quality()).isNotEmpty();
      assertThat(out.quality().stream().mapToLong(ModelQuality::getSessions).sum())
          .isEqualTo(out.sessions().stream().filter(Session::hasPurchaseProbability).count());
      assertThat(out.quality().stream().mapToLong(ModelQuality::getPurchases).sum())
          .isEqualTo(
              out.sessions().stream()
                  .filter(s -> s.hasPurchaseProbability() && s.getPurchased())
                  .count());
      for (ModelQuality q : out.quality()) {
        assertThat(q.getModelVersion()).isEqualTo(serve.model.getModelVersion());
        assertThat(q.getId()).isEqualTo(q.getWindowStartMs() + "/" + q.getModelVersion());
      }
    }
  }

  @Test
  void aCandidateInShadowIsScoredBesideEveryAnswerAndJudgedOnTheSameSessions() throws Exception {
    try (RealServe serve = RealServe.startWithShadow()) {
      String candidate = serve.model.getModelVersion() + RealServe.CANDIDATE_SUFFIX;
      Outcome out = run(config(serve.address()));

      assertThat(out.enriched()).hasSize(VALID);
      for (EnrichedEvent e : out.enriched()) {
        assertThat(e.hasPurchaseProbability()).as("scored: %s", e).isTrue();
        // The same model under another name: the shadow's score is the answer's (up to float
        // rounding: an answer with SHAP reasons sums the contributions).
        assertThat(e.getShadowModelVersion()).isEqualTo(candidate);
        assertThat(e.getShadowProbability()).isCloseTo(e.getPurchaseProbability(), within(1e-6));
      }
      List<Session> scored =
          out.sessions().stream().filter(Session::hasPurchaseProbability).toList();
      assertThat(scored).isNotEmpty();
      for (Session s : scored) {
        assertThat(s.getShadowModelVersion()).isEqualTo(candidate);
        assertThat(s.getShadowProbability()).isCloseTo(s.getPurchaseProbability(), within(1e-6));
      }
      // Each window of the serving version has its shadow twin, over the same sessions.
      Map<Long, ModelQuality> served = new HashMap<>();
      Map<Long, ModelQuality> shadow = new HashMap<>();
      for (ModelQuality q : out.quality()) {
        (q.getShadow() ? shadow : served).put(q.getWindowStartMs(), q);
        assertThat(q.getModelVersion())
            .isEqualTo(q.getShadow() ? candidate : serve.model.getModelVersion());
      }
      assertThat(served).isNotEmpty();
      assertThat(shadow.keySet()).isEqualTo(served.keySet());
      for (var w : served.entrySet()) {
        ModelQuality twin = shadow.get(w.getKey());
        assertThat(twin.getId()).isEqualTo(w.getKey() + "/" + candidate + "/shadow");
        assertThat(twin.getSessions()).isEqualTo(w.getValue().getSessions());
        assertThat(twin.getPurchases()).isEqualTo(w.getValue().getPurchases());
        assertThat(twin.getExpectedPurchases())
            .isCloseTo(w.getValue().getExpectedPurchases(), within(1e-4));
      }
    }
  }

  @Test
  void inProcessScoringAndRecommendingAnswerAsServeDoes() throws Exception {
    try (RealServe serve = RealServe.start()) {
      // One task each, so both runs see the events in the same order and build the same
      // session features.
      Map<String, EnrichedEvent> remote = new HashMap<>();
      run(config(serve.address()), 1)
          .enriched()
          .forEach(e -> remote.put(e.getEvent().getEventId(), e));
      String models = RealServe.modelsDir().toString();
      List<EnrichedEvent> local =
          run(config(serve.address(), "--in-process-models", models), 1).enriched();

      assertThat(local).hasSize(VALID);
      assertThat(remote).hasSize(VALID);
      // (This input's products are not in the model's sessions, so every recommendation list is
      // empty here; ServeNativeTest compares non-empty ones.)
      for (EnrichedEvent e : local) {
        EnrichedEvent r = remote.get(e.getEvent().getEventId());
        assertThat(e.getSessionFeaturesList()).isEqualTo(r.getSessionFeaturesList());
        assertThat(e.getScoreFallback()).as("score fallback: %s", e).isFalse();
        assertThat(e.getRecommendFallback()).as("recommend fallback: %s", e).isFalse();
        assertThat(e.getModelVersion()).isEqualTo(serve.model.getModelVersion());
        assertThat(e.getPurchaseProbability()).isEqualTo(r.getPurchaseProbability());
        assertThat(e.getShapReasonsList()).isEqualTo(r.getShapReasonsList());
        assertThat(e.getRecommendationsList()).isEqualTo(r.getRecommendationsList());
        // Guard still goes to serve.
        assertThat(e.getGuardFallback()).as("guard fallback: %s", e).isFalse();
      }
    }
  }

  @Test
  void inProcessScoringWithoutAModelFallsBack(@TempDir Path empty) throws Exception {
    Outcome out = run(config("127.0.0.1:1", "--in-process-models", empty.toString()));
    assertThat(out.enriched()).hasSize(VALID);
    for (EnrichedEvent e : out.enriched()) {
      assertThat(e.getScoreFallback()).isTrue();
      assertThat(e.hasPurchaseProbability()).isFalse();
    }
  }

  private void assertEnriched(List<EnrichedEvent> enriched) {
    JobConfig cfg = JobConfig.defaults();
    int[] shape = {cfg.intake().lshPerm(), cfg.intake().lshBands()};
    Mac mac = Enrichment.ipHasher(KEY);
    Map<Long, EnrichedEvent> byOffset =
        enriched.stream()
            .collect(Collectors.toMap(e -> e.getSource().getOffset(), Function.identity()));
    assertThat(byOffset.keySet()).isEqualTo(validByOffset.keySet());
    for (EnrichedEvent e : enriched) {
      Event original = validByOffset.get(e.getSource().getOffset());
      assertThat(e.getEvent().getIp()).isEmpty();
      assertThat(e.getEvent()).isEqualTo(original.toBuilder().clearIp().build());
      assertThat(e.getIpHash())
          .hasSize(64)
          .isEqualTo(Enrichment.ipHash(mac, original.getIp()))
          .isNotEqualTo(original.getIp());
      assertThat(e.getGeoBucket()).isEqualTo(original.getCountry());
      assertThat(e.getLshSignatureList()).hasSize(shape[0]);
      assertThat(e.getLshBucketsList()).hasSize(shape[1]);
      assertThat(e.getSource().getTopic()).isEqualTo("ecom.events.raw");
      assertThat(e.getProducedAtMs()).isEqualTo(original.getProducedAtMs());
      assertThat(e.getIngestedAtMs()).isEqualTo(NOW - 100);
      assertThat(e.getEnrichedAtMs()).isGreaterThanOrEqualTo(NOW);
      String product = original.getProductId();
      boolean inCatalog = !product.equals("p-" + (VALID - 1));
      assertThat(e.getCatalogMiss())
          .as(product)
          .isEqualTo(inCatalog ? false : original.hasProductId());
      if (inCatalog && original.hasProductId()) {
        assertThat(e.getCategory()).isIn("sofas", "beds");
        assertThat(e.getStyle()).isEqualTo("modern");
      }
      assertThat(e.getSessionFeaturesCount()).isEqualTo(EcomNative.featureSchema().length - 1);
      assertThat(e.getFeatureSchemaHash()).isEqualTo(EcomNative.featureSchema()[0]);
      assertThat(e.getSessionTokensList()).as("tokens are dropped once scored").isEmpty();
    }
  }

  /** The end of input closes every session: one per session_id, holding all its events. */
  private static void assertSessions(List<Session> sessions) {
    assertThat(sessions)
        .extracting(Session::getSessionId)
        .containsExactlyInAnyOrder("s-0", "s-1", "s-2");
    assertThat(sessions.stream().mapToInt(Session::getEvents).sum()).isEqualTo(VALID);
    for (Session s : sessions) {
      assertThat(s.getId()).isEqualTo(s.getSessionId() + "@" + s.getStartMs());
      assertThat(s.getFeaturesCount()).isEqualTo(EcomNative.featureSchema().length - 1);
      assertThat(s.getFeatures(0)).isEqualTo(s.getEvents());
    }
  }

  private void assertInvalid(List<InvalidEvent> all) {
    List<InvalidEvent> catalog =
        all.stream().filter(e -> e.getSource().getTopic().equals(CATALOG_TOPIC)).toList();
    assertThat(catalog)
        .as("bad catalog records are dead-lettered, not dropped")
        .extracting(e -> e.getSource().getOffset())
        .containsExactlyInAnyOrderElementsOf(BAD_CATALOG_OFFSETS);
    for (InvalidEvent e : catalog) {
      assertThat(e.getReason()).isEqualTo(RejectReason.REJECT_REASON_BAD_CATALOG_RECORD);
      assertThat(e.getDetail()).isNotBlank();
      assertThat(e.getIngestedAtMs()).isEqualTo(NOW - 800);
    }
    List<InvalidEvent> invalid =
        all.stream().filter(e -> !e.getSource().getTopic().equals(CATALOG_TOPIC)).toList();
    assertThat(invalid).hasSize(expectedRejects.size());
    for (InvalidEvent e : invalid) {
      long offset = e.getSource().getOffset();
      RejectReason want = expectedRejects.get(offset);
      assertThat(e.getReason())
          .as("reason of offset %d: %s", offset, e.getDetail())
          .isEqualTo(want);
      assertThat(e.getReasonCode()).isEqualTo(want.name());
      assertThat(e.getDetail()).isNotBlank();
      // The record whole, or its first --max-record-bytes (16 KiB) with the whole one's size;
      // either way without the client's IP.
      byte[] value = input.get((int) offset).value;
      int kept = Math.min(value.length, JobConfig.defaults().intake().maxRecordBytes());
      byte[] stored =
          kept < value.length
              ? java.util.Arrays.copyOf(Enrichment.maskIpv4(value), kept)
              : Enrichment.withoutIp(value, Enrichment.ipHasher(KEY));
      assertThat(e.getRaw().toByteArray()).isEqualTo(stored);
      assertThat(new String(e.getRaw().toByteArray(), java.nio.charset.StandardCharsets.ISO_8859_1))
          .doesNotContainPattern("\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}");
      // A duplicate is judged after the IP was dropped: its size and hash are its stored form's.
      byte[] described = want == RejectReason.REJECT_REASON_DUPLICATE ? stored : value;
      assertThat(e.getRawSizeBytes()).isEqualTo(described.length);
      assertThat(e.getRawTruncated()).isEqualTo(kept < value.length);
      assertThat(e.getRawSha256()).isEqualTo(Enrichment.sha256Hex(described));
      assertThat(e.getIngestedAtMs()).isEqualTo(NOW - 100);
      assertThat(e.getRejectedAtMs()).isGreaterThanOrEqualTo(NOW);
    }
  }
}
