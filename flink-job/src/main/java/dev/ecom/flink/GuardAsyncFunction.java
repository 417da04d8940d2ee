// Asks ecom serve's Guard.Check about each event through Flink Async I/O, with a declared fallback.
package dev.ecom.flink;

import com.google.common.util.concurrent.FutureCallback;
import com.google.common.util.concurrent.Futures;
import com.google.common.util.concurrent.ListenableFuture;
import com.google.common.util.concurrent.MoreExecutors;
import dev.ecom.proto.v1.EnrichedEvent;
import dev.ecom.proto.v1.Event;
import dev.ecom.proto.v1.GuardGrpc;
import dev.ecom.proto.v1.GuardRequest;
import dev.ecom.proto.v1.GuardResponse;
import dev.ecom.proto.v1.Verdict;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.metrics.Counter;
import org.apache.flink.streaming.api.functions.async.ResultFuture;
import org.apache.flink.streaming.api.functions.async.RichAsyncFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Sets verdict, verdict_reasons and guard_fallback on each event and clears the raw IP.
 *
 * <p>One gRPC channel per task. When the guard does not answer in time or the call fails, the event
 * is not held back: it gets the declared fallback {@code VERDICT_UNKNOWN} with reason {@code
 * guard_unavailable: <status>} and guard_fallback=true, counted in {@code guardFallbacks}.
 */
public final class GuardAsyncFunction extends RichAsyncFunction<EnrichedEvent, EnrichedEvent> {
  private static final long serialVersionUID = 1L;
  private static final Logger LOG = LoggerFactory.getLogger(GuardAsyncFunction.class);

  /** Prefix of the single reason on a fallback verdict. */
  public static final String UNAVAILABLE_REASON = "guard_unavailable: ";

  private final String serveAddress;
  private final long timeoutMs;

  private transient ManagedChannel channel;
  private transient GuardGrpc.GuardFutureStub stub;
  private transient Counter guardFallbacks;
  // Calls not yet completed; whichever of the RPC callback and timeout() removes one completes it.
  private transient Set<ResultFuture<EnrichedEvent>> pending;

  public GuardAsyncFunction(String serveAddress, long timeoutMs) {
    this.serveAddress = serveAddress;
    this.timeoutMs = timeoutMs;
  }

  @Override
  public void open(OpenContext openContext) throws Exception {
    channel = NettyChannelBuilder.forTarget(serveAddress).usePlaintext().build();
    stub = GuardGrpc.newFutureStub(channel);
    guardFallbacks = getRuntimeContext().getMetricGroup().counter("guardFallbacks");
    pending = ConcurrentHashMap.newKeySet();
  }

  @Override
  public void close() throws Exception {
    if (channel != null) {
      channel.shutdownNow();
      channel.awaitTermination(5, TimeUnit.SECONDS);
      channel = null;
    }
  }

  @Override
  public void asyncInvoke(EnrichedEvent input, ResultFuture<EnrichedEvent> resultFuture) {
    pending.add(resultFuture);
    ListenableFuture<GuardResponse> call;
    try {
      call = stub.withDeadlineAfter(timeoutMs, TimeUnit.MILLISECONDS).check(request(input));
    } catch (RuntimeException e) {
      fallback(input, resultFuture, Status.fromThrowable(e));
      return;
    }
    Futures.addCallback(
        call,
        new FutureCallback<>() {
          @Override
          public void onSuccess(GuardResponse r) {
            if (pending.remove(resultFuture)) {
              resultFuture.complete(
                  List.of(finish(input, r.getVerdict(), r.getReasonsList(), r.getFallback())));
            }
          }

          @Override
          public void onFailure(Throwable t) {
            fallback(input, resultFuture, Status.fromThrowable(t));
          }
        },
        MoreExecutors.directExecutor());
  }

  @Override
  public void timeout(EnrichedEvent input, ResultFuture<EnrichedEvent> resultFuture) {
    fallback(input, resultFuture, Status.DEADLINE_EXCEEDED);
  }

  private void fallback(EnrichedEvent input, ResultFuture<EnrichedEvent> rf, Status status) {
    if (!pending.remove(rf)) {
      return;
    }
    long n = guardFallbacks.getCount();
    if (n == 0 || n % 10_000 == 0) {
      LOG.warn(
          "Guard at {} unavailable ({}: {}{}); using fallback verdict {} ({} fallbacks so far)",
          serveAddress,
          status.getCode(),
          status.getDescription(),
          status.getCause() == null ? "" : ", " + status.getCause().getMessage(),
          Verdict.VERDICT_UNKNOWN,
          n + 1);
    }
    guardFallbacks.inc();
    rf.complete(
        List.of(
            finish(
                input,
                Verdict.VERDICT_UNKNOWN,
                Collections.singletonList(UNAVAILABLE_REASON + status.getCode()),
                true)));
  }

  static GuardRequest request(EnrichedEvent in) {
    Event e = in.getEvent();
    return GuardRequest.newBuilder()
        .setEventId(e.getEventId())
        .setEventTimeMs(e.getEventTimeMs())
        .setIp(e.getIp())
        .setUserId(e.getUserId())
        .setSessionId(e.getSessionId())
        .setKindValue(e.getKindValue())
        .setUserAgent(e.getUserAgent())
        .build();
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
