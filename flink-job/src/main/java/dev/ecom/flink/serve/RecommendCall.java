// Recommend.SimilarBatch on the event kinds where a shop shows "bought in similar sessions".
package dev.ecom.flink.serve;

import com.google.common.util.concurrent.ListenableFuture;
import dev.ecom.flink.nativelib.ServeNative;
import dev.ecom.proto.v1.EnrichedEvent;
import dev.ecom.proto.v1.EventKind;
import dev.ecom.proto.v1.RecommendGrpc;
import dev.ecom.proto.v1.SimilarBatchRequest;
import dev.ecom.proto.v1.SimilarBatchResponse;
import dev.ecom.proto.v1.SimilarRequest;
import dev.ecom.proto.v1.SimilarResponse;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;

/**
 * For events of the given kinds whose session has LSH tokens, sets recommendations (top {@code k}
 * products bought in similar sessions). The fallback is none and recommend_fallback=true. Other
 * events pass through.
 */
public final class RecommendCall extends BatchingServeCall<SimilarRequest, SimilarResponse> {
  private static final long serialVersionUID = 1L;

  private final int k;
  private final Set<EventKind> kinds;
  private transient RecommendGrpc.RecommendFutureStub stub;

  public RecommendCall(ServeCallConfig cfg, int k, Set<EventKind> kinds) {
    super("recommend", cfg);
    this.k = k;
    this.kinds = Set.copyOf(kinds);
  }

  @Override
  protected void stubs(ManagedChannel channel) {
    stub = RecommendGrpc.newFutureStub(channel);
  }

  @Override
  protected boolean asks(EnrichedEvent e) {
    return kinds.contains(e.getEvent().getKind()) && e.getSessionTokensCount() > 0;
  }

  @Override
  protected SimilarRequest request(EnrichedEvent e) {
    return SimilarRequest.newBuilder().addAllTokens(e.getSessionTokensList()).setK(k).build();
  }

  @Override
  protected ListenableFuture<List<SimilarResponse>> call(
      List<SimilarRequest> reqs, long deadlineMs) {
    return answers(
        stub.withDeadlineAfter(deadlineMs, TimeUnit.MILLISECONDS)
            .similarBatch(SimilarBatchRequest.newBuilder().addAllRequests(reqs).build()),
        SimilarBatchResponse::getResponsesList);
  }

  @Override
  protected List<SimilarResponse> callInProcess(List<SimilarRequest> reqs, String modelsDir) {
    return unpacked(
        ServeNative.similarBatch(
            modelsDir, SimilarBatchRequest.newBuilder().addAllRequests(reqs).build().toByteArray()),
        SimilarBatchResponse.parser(),
        SimilarBatchResponse::getResponsesList);
  }

  @Override
  protected EnrichedEvent answered(EnrichedEvent e, SimilarResponse r) {
    return e.toBuilder()
        .clearRecommendations()
        .addAllRecommendations(r.getProductsList())
        .setRecommendFallback(false)
        .build();
  }

  @Override
  protected EnrichedEvent fellBack(EnrichedEvent e, Status why) {
    return e.toBuilder().clearRecommendations().setRecommendFallback(true).build();
  }
}
