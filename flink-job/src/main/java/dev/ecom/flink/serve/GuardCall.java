// Guard.CheckBatch for each event: verdict, reasons, and the raw IP dropped from then on.
package dev.ecom.flink.serve;

import com.google.common.util.concurrent.ListenableFuture;
import dev.ecom.proto.v1.EnrichedEvent;
import dev.ecom.proto.v1.Event;
import dev.ecom.proto.v1.EventKind;
import dev.ecom.proto.v1.GuardBatchRequest;
import dev.ecom.proto.v1.GuardBatchResponse;
import dev.ecom.proto.v1.GuardGrpc;
import dev.ecom.proto.v1.GuardRequest;
import dev.ecom.proto.v1.GuardResponse;
import dev.ecom.proto.v1.Verdict;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Sets verdict, verdict_reasons and guard_fallback on every event and clears its raw IP. The
 * fallback is {@code VERDICT_UNKNOWN} with the one reason {@code guard_unavailable: <status>}.
 */
public final class GuardCall extends BatchingServeCall<GuardRequest, GuardResponse> {
  private static final long serialVersionUID = 1L;

  /** Prefix of the single reason on a fallback verdict. */
  public static final String UNAVAILABLE_REASON = "guard_unavailable: ";

  private transient GuardGrpc.GuardFutureStub stub;

  public GuardCall(ServeCallConfig cfg) {
    super("guard", cfg);
  }

  @Override
  protected void stubs(ManagedChannel channel) {
    stub = GuardGrpc.newFutureStub(channel);
  }

  @Override
  protected GuardRequest request(EnrichedEvent in) {
    Event e = in.getEvent();
    GuardRequest.Builder b =
        GuardRequest.newBuilder()
            .setEventId(e.getEventId())
            .setEventTimeMs(e.getEventTimeMs())
            .setIpHash(in.getIpHash())
            .setUserId(e.getUserId())
            .setSessionId(e.getSessionId())
            .setKindValue(e.getKindValue())
            .setUserAgent(e.getUserAgent())
            .setProductId(e.getProductId())
            .setQuantity(e.getQuantity());
    if (e.getKind() == EventKind.EVENT_KIND_PURCHASE) {
      b.setAmountCents(amountCents(e));
    }
    return b.build();
  }

  /**
   * quantity (absent or 0 counts as 1) × unit_price_cents, as ecom-core's {@code amount_cents}. The
   * validator rejects events whose amount is out of range; should one get here all the same, the
   * product saturates instead of wrapping to a negative amount, and Guard judges that one item as
   * an invalid request while the rest of its batch is judged as usual.
   */
  static long amountCents(Event e) {
    try {
      return Math.multiplyExact((long) Math.max(e.getQuantity(), 1), e.getUnitPriceCents());
    } catch (ArithmeticException overflow) {
      return Long.MAX_VALUE;
    }
  }

  @Override
  protected ListenableFuture<List<GuardResponse>> call(List<GuardRequest> reqs, long deadlineMs) {
    return answers(
        stub.withDeadlineAfter(deadlineMs, TimeUnit.MILLISECONDS)
            .checkBatch(GuardBatchRequest.newBuilder().addAllRequests(reqs).build()),
        GuardBatchResponse::getResponsesList);
  }

  @Override
  protected EnrichedEvent answered(EnrichedEvent e, GuardResponse r) {
    return finish(e, r.getVerdict(), r.getReasonsList(), r.getFallback());
  }

  @Override
  protected EnrichedEvent fellBack(EnrichedEvent e, Status why) {
    return finish(e, Verdict.VERDICT_UNKNOWN, List.of(UNAVAILABLE_REASON + why.getCode()), true);
  }

  /** The output event: the guard's answer set and, from here on, no raw IP. */
  static EnrichedEvent finish(
      EnrichedEvent in, Verdict verdict, List<String> reasons, boolean fallback) {
    return in.toBuilder()
        .setEvent(in.getEvent().toBuilder().clearIp())
        .setVerdict(verdict)
        .clearVerdictReasons()
        .addAllVerdictReasons(reasons)
        .setGuardFallback(fallback)
        .build();
  }
}
