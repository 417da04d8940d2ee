// Score.PredictBatch for each event: purchase probability of its session so far, with SHAP reasons.
package dev.ecom.flink.serve;

import com.google.common.util.concurrent.ListenableFuture;
import dev.ecom.flink.nativelib.ServeNative;
import dev.ecom.proto.v1.EnrichedEvent;
import dev.ecom.proto.v1.ScoreBatchRequest;
import dev.ecom.proto.v1.ScoreBatchResponse;
import dev.ecom.proto.v1.ScoreGrpc;
import dev.ecom.proto.v1.ScoreRequest;
import dev.ecom.proto.v1.ScoreResponse;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Scores the session's running features (ecom-core's schema, with its LSH tokens so serve adds the
 * model's neighbour features) and sets purchase_probability, model_version, shap_reasons and
 * scored_at_ms. The fallback is no probability and score_fallback=true. Events without features
 * (none reach here from the session step) pass through.
 */
public final class ScoreCall extends BatchingServeCall<ScoreRequest, ScoreResponse> {
  private static final long serialVersionUID = 1L;

  private final int topKReasons;
  private final int reasonsEvery;
  private transient ScoreGrpc.ScoreFutureStub stub;

  /**
   * @param reasonsEvery SHAP reasons for 1 event in this many, chosen by the event id's hash (a
   *     replay chooses the same events); the others are scored without reasons
   */
  public ScoreCall(ServeCallConfig cfg, int topKReasons, int reasonsEvery) {
    super("score", cfg);
    this.topKReasons = topKReasons;
    this.reasonsEvery = reasonsEvery;
  }

  /** The reasons asked for {@code e}: topKReasons for the sampled events, else none. */
  int reasonsFor(EnrichedEvent e) {
    boolean sampled =
        reasonsEvery <= 1 || Math.floorMod(e.getEvent().getEventId().hashCode(), reasonsEvery) == 0;
    return sampled ? topKReasons : 0;
  }

  @Override
  protected void stubs(ManagedChannel channel) {
    stub = ScoreGrpc.newFutureStub(channel);
  }

  @Override
  protected boolean asks(EnrichedEvent e) {
    return e.getSessionFeaturesCount() > 0;
  }

  @Override
  protected ScoreRequest request(EnrichedEvent e) {
    return ScoreRequest.newBuilder()
        .setSessionId(e.getEvent().getSessionId())
        .addAllFeatures(e.getSessionFeaturesList())
        .setFeatureSchemaHash(e.getFeatureSchemaHash())
        .setTopKReasons(reasonsFor(e))
        .addAllTokens(e.getSessionTokensList())
        .build();
  }

  @Override
  protected ListenableFuture<List<ScoreResponse>> call(List<ScoreRequest> reqs, long deadlineMs) {
    return answers(
        stub.withDeadlineAfter(deadlineMs, TimeUnit.MILLISECONDS)
            .predictBatch(ScoreBatchRequest.newBuilder().addAllRequests(reqs).build()),
        ScoreBatchResponse::getResponsesList);
  }

  @Override
  protected List<ScoreResponse> callInProcess(List<ScoreRequest> reqs, String modelsDir) {
    return unpacked(
        ServeNative.scoreBatch(
            modelsDir, ScoreBatchRequest.newBuilder().addAllRequests(reqs).build().toByteArray()),
        ScoreBatchResponse.parser(),
        ScoreBatchResponse::getResponsesList);
  }

  @Override
  protected EnrichedEvent answered(EnrichedEvent e, ScoreResponse r) {
    EnrichedEvent.Builder b =
        e.toBuilder()
            .setPurchaseProbability(r.getPurchaseProbability())
            .setModelVersion(r.getModelVersion())
            .clearShapReasons()
            .addAllShapReasons(r.getReasonsList())
            .setScoreFallback(false)
            .setScoredAtMs(System.currentTimeMillis())
            .clearShadowProbability()
            .setShadowModelVersion(r.getShadowModelVersion());
    if (r.hasShadowProbability()) {
      b.setShadowProbability(r.getShadowProbability());
    }
    return b.build();
  }

  @Override
  protected EnrichedEvent fellBack(EnrichedEvent e, Status why) {
    return e.toBuilder()
        .clearPurchaseProbability()
        .clearShadowProbability()
        .clearShadowModelVersion()
        .setScoreFallback(true)
        .setScoredAtMs(System.currentTimeMillis())
        .build();
  }
}
