// Flink Async I/O to ecom serve in micro-batches: one batch RPC for many events, with a fallback.
package dev.ecom.flink.serve;

import com.google.common.util.concurrent.FutureCallback;
import com.google.common.util.concurrent.Futures;
import com.google.common.util.concurrent.ListenableFuture;
import com.google.common.util.concurrent.ListeningExecutorService;
import com.google.common.util.concurrent.MoreExecutors;
import dev.ecom.flink.nativelib.ServeNative;
import dev.ecom.proto.v1.EnrichedEvent;
import io.grpc.ConnectivityState;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Histogram;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.runtime.metrics.DescriptiveStatisticsHistogram;
import org.apache.flink.streaming.api.functions.async.ResultFuture;
import org.apache.flink.streaming.api.functions.async.RichAsyncFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One ecom serve method called through Flink Async I/O, batched.
 *
 * <p>Events the method is asked about wait in a buffer until {@code batchSize} have come or the
 * first has waited {@code batchMaxDelayMs}; the buffer then goes out as one batch RPC with a
 * deadline of {@code timeoutMs}. Each answer is copied onto its event. When the call fails, or
 * Flink's timeout (also {@code timeoutMs}, counted from the event's arrival) comes first, the event
 * leaves with the method's declared fallback, marked on the record and counted in {@code
 * <name>Fallbacks}: the job never waits on serve for longer than the timeout. Events the method is
 * not asked about ({@link #asks} false) pass through at once.
 *
 * <p>With {@link ServeCallConfig#inProcessModels} set, a batch is answered inside the TaskManager
 * instead ({@link #callInProcess}, over JNI on one thread of the task's own), with the same
 * batching, timeout and fallback.
 *
 * <p>While serve is away the channel reconnects at most {@link #RECONNECT_EVERY_MS} apart instead
 * of after grpc-java's own backoff (up to two minutes), so events stop getting fallbacks within a
 * second or two of serve coming back.
 *
 * <p>Metrics under the operator's group: {@code <name>Calls} (batch RPCs), {@code <name>Fallbacks}
 * (events), {@code <name>Skipped} (events passed through), {@code <name>BatchSize} and {@code
 * <name>RpcMillis} (histograms).
 *
 * @param <Q> one event's request
 * @param <A> one event's answer
 */
public abstract class BatchingServeCall<Q, A>
    extends RichAsyncFunction<EnrichedEvent, EnrichedEvent> {
  private static final long serialVersionUID = 1L;
  private static final Logger LOG = LoggerFactory.getLogger(BatchingServeCall.class);

  /** Longest wait between reconnection attempts to a serve that does not answer. */
  public static final long RECONNECT_EVERY_MS = 1_000;

  private final String name;
  private final ServeCallConfig cfg;

  private transient ManagedChannel channel;
  private transient ListeningExecutorService inProcess;
  private transient ScheduledExecutorService flusher;
  private transient Counter calls;
  private transient Counter fallbacks;
  private transient Counter skipped;
  private transient Histogram batchSizes;
  private transient Histogram rpcMillis;
  // Calls not yet completed; whichever of the RPC callback and timeout() removes one completes it.
  private transient Set<ResultFuture<EnrichedEvent>> pending;
  private transient Object lock;
  // Guarded by lock.
  private transient List<Waiting<Q>> buffer;

  private record Waiting<Q>(EnrichedEvent event, Q request, ResultFuture<EnrichedEvent> result) {}

  protected BatchingServeCall(String name, ServeCallConfig cfg) {
    this.name = name;
    this.cfg = cfg;
  }

  /** Whether this method is asked about {@code e}; false passes it through unchanged. */
  protected boolean asks(EnrichedEvent e) {
    return true;
  }

  /** Makes the method's stub on the task's channel. */
  protected abstract void stubs(ManagedChannel channel);

  /**
   * One batch answered in-process from the models directory {@code modelsDir}; blocking. Methods
   * that cannot run in-process keep this default.
   */
  protected List<A> callInProcess(List<Q> requests, String modelsDir) {
    throw new UnsupportedOperationException(name + " cannot run in-process");
  }

  /** The request for one event. */
  protected abstract Q request(EnrichedEvent e);

  /** One batch RPC with the given deadline; answers in request order. */
  protected abstract ListenableFuture<List<A>> call(List<Q> requests, long deadlineMs);

  /** A batch RPC's answers, unpacked from its response. */
  protected static <R, A> ListenableFuture<List<A>> answers(
      ListenableFuture<R> call, com.google.common.base.Function<R, List<A>> unpack) {
    return Futures.transform(call, unpack, MoreExecutors.directExecutor());
  }

  /**
   * An in-process batch's answers: ecom-jni-serve's response bytes parsed with {@code parser}, then
   * unpacked as {@link #answers} does for a batch RPC.
   */
  protected static <R, A> List<A> unpacked(
      byte[] response,
      com.google.protobuf.Parser<R> parser,
      com.google.common.base.Function<R, List<A>> unpack) {
    try {
      return unpack.apply(parser.parseFrom(response));
    } catch (com.google.protobuf.InvalidProtocolBufferException e) {
      throw new IllegalStateException("ecom-jni-serve answered an unreadable response", e);
    }
  }

  /** The event with the answer copied on. */
  protected abstract EnrichedEvent answered(EnrichedEvent e, A answer);

  /** The event with the declared fallback marked on. */
  protected abstract EnrichedEvent fellBack(EnrichedEvent e, Status why);

  @Override
  public void open(OpenContext openContext) throws Exception {
    if (cfg.inProcessModels() == null) {
      channel = cfg.security().channel(cfg.serveAddress());
      stubs(channel);
    } else {
      inProcess =
          MoreExecutors.listeningDecorator(
              Executors.newSingleThreadExecutor(
                  r -> {
                    Thread t = new Thread(r, "ecom-" + name + "-in-process");
                    t.setDaemon(true);
                    return t;
                  }));
      // Loads the library now: without it the task fails here, naming what is missing, rather
      // than every event falling back. A model that is not there yet only falls back until it is.
      String dir = cfg.inProcessModels();
      try {
        LOG.info("{} runs in-process from {}, model {}", name, dir, ServeNative.modelVersion(dir));
      } catch (RuntimeException e) {
        LOG.warn(
            "{} runs in-process from {}: {}; events get the declared fallback until a model loads",
            name,
            dir,
            e.getMessage());
      }
    }
    flusher =
        Executors.newSingleThreadScheduledExecutor(
            r -> {
              Thread t = new Thread(r, "ecom-" + name + "-flush");
              t.setDaemon(true);
              return t;
            });
    flusher.scheduleWithFixedDelay(
        this::reconnectIfDown, RECONNECT_EVERY_MS, RECONNECT_EVERY_MS, TimeUnit.MILLISECONDS);
    MetricGroup g = getRuntimeContext().getMetricGroup();
    calls = g.counter(name + "Calls");
    fallbacks = g.counter(name + "Fallbacks");
    skipped = g.counter(name + "Skipped");
    batchSizes = g.histogram(name + "BatchSize", new DescriptiveStatisticsHistogram(1000));
    rpcMillis = g.histogram(name + "RpcMillis", new DescriptiveStatisticsHistogram(1000));
    pending = ConcurrentHashMap.newKeySet();
    lock = new Object();
    buffer = new ArrayList<>();
  }

  /** Cuts grpc-java's reconnect backoff short while the channel is failing. */
  private void reconnectIfDown() {
    ManagedChannel c = channel;
    if (c != null && c.getState(false) == ConnectivityState.TRANSIENT_FAILURE) {
      c.resetConnectBackoff();
    }
  }

  @Override
  public void close() throws Exception {
    if (flusher != null) {
      flusher.shutdownNow();
      flusher = null;
    }
    if (inProcess != null) {
      inProcess.shutdownNow();
      inProcess = null;
    }
    if (channel != null) {
      channel.shutdownNow();
      channel.awaitTermination(5, TimeUnit.SECONDS);
      channel = null;
    }
  }

  @Override
  public final void asyncInvoke(EnrichedEvent input, ResultFuture<EnrichedEvent> resultFuture) {
    if (!asks(input)) {
      skipped.inc();
      resultFuture.complete(List.of(input));
      return;
    }
    pending.add(resultFuture);
    Q req;
    try {
      req = request(input);
    } catch (RuntimeException e) {
      fallback(input, resultFuture, Status.INVALID_ARGUMENT.withCause(e));
      return;
    }
    List<Waiting<Q>> full = null;
    boolean first;
    synchronized (lock) {
      buffer.add(new Waiting<>(input, req, resultFuture));
      first = buffer.size() == 1;
      if (buffer.size() >= cfg.batchSize()) {
        full = take();
      }
    }
    if (full != null) {
      send(full);
    } else if (first) {
      flusher.schedule(this::flush, cfg.batchMaxDelayMs(), TimeUnit.MILLISECONDS);
    }
  }

  @Override
  public final void timeout(EnrichedEvent input, ResultFuture<EnrichedEvent> resultFuture) {
    fallback(input, resultFuture, Status.DEADLINE_EXCEEDED.withDescription("Flink async timeout"));
  }

  private List<Waiting<Q>> take() {
    List<Waiting<Q>> out = buffer;
    buffer = new ArrayList<>(cfg.batchSize());
    return out;
  }

  private void flush() {
    List<Waiting<Q>> batch;
    synchronized (lock) {
      if (buffer.isEmpty()) {
        return;
      }
      batch = take();
    }
    send(batch);
  }

  private void send(List<Waiting<Q>> batch) {
    List<Q> requests = new ArrayList<>(batch.size());
    for (Waiting<Q> w : batch) {
      requests.add(w.request());
    }
    calls.inc();
    batchSizes.update(batch.size());
    long started = System.nanoTime();
    ListenableFuture<List<A>> call;
    try {
      String dir = cfg.inProcessModels();
      call =
          dir == null
              ? call(requests, cfg.timeoutMs())
              : inProcess.submit(() -> callInProcess(requests, dir));
    } catch (RuntimeException e) {
      failAll(batch, Status.fromThrowable(e));
      return;
    }
    Futures.addCallback(
        call,
        new FutureCallback<>() {
          @Override
          public void onSuccess(List<A> answers) {
            rpcMillis.update((System.nanoTime() - started) / 1_000_000);
            if (answers.size() != batch.size()) {
              failAll(
                  batch,
                  Status.INTERNAL.withDescription(
                      answers.size() + " answers for " + batch.size() + " requests"));
              return;
            }
            for (int i = 0; i < batch.size(); i++) {
              Waiting<Q> w = batch.get(i);
              if (pending.remove(w.result())) {
                w.result().complete(List.of(answered(w.event(), answers.get(i))));
              }
            }
          }

          @Override
          public void onFailure(Throwable t) {
            rpcMillis.update((System.nanoTime() - started) / 1_000_000);
            failAll(batch, Status.fromThrowable(t));
          }
        },
        MoreExecutors.directExecutor());
  }

  private void failAll(List<Waiting<Q>> batch, Status why) {
    for (Waiting<Q> w : batch) {
      fallback(w.event(), w.result(), why);
    }
  }

  private void fallback(EnrichedEvent input, ResultFuture<EnrichedEvent> rf, Status why) {
    if (!pending.remove(rf)) {
      return;
    }
    long n = fallbacks.getCount();
    if (n == 0 || n % 10_000 == 0) {
      LOG.warn(
          "{} at {} unavailable ({}: {}{}); events get the declared fallback ({} fallbacks so far)",
          name,
          cfg.inProcessModels() == null
              ? cfg.serveAddress()
              : "in-process from " + cfg.inProcessModels(),
          why.getCode(),
          why.getDescription(),
          why.getCause() == null ? "" : ", " + why.getCause().getMessage(),
          n + 1);
    }
    fallbacks.inc();
    rf.complete(List.of(fellBack(input, why)));
  }
}
