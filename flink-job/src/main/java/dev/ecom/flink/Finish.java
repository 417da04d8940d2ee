// The enriched event's last step in the job: stamp enriched_at, drop working fields, record
// latency.
package dev.ecom.flink;

import dev.ecom.flink.serde.ProtoTypeInfo;
import dev.ecom.proto.v1.EnrichedEvent;
import dev.ecom.proto.v1.InvalidEvent;
import dev.ecom.proto.v1.RejectReason;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Histogram;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.runtime.metrics.DescriptiveStatisticsHistogram;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/**
 * Sets enriched_at_ms (the wall clock when the event leaves the job's last step: validated,
 * sessionized, checked, scored), clears session_tokens (only Score and Recommend need them), and
 * records per-stage latency histograms in milliseconds: {@code latencyProducedToEnrichedMs} (the
 * generator's hand-off to here, Kafka included), {@code latencyIngestedToEnrichedMs} (inside the
 * job) and {@code latencyIngestedToScoredMs}.
 *
 * <p>The last line of defence for the job's producers: an enriched event larger than {@code
 * maxBytes} would be refused by its Kafka producer and fail the job on every replay, so it leaves
 * on {@link #OVERSIZE} as REJECT_REASON_OVERSIZE_RECORD instead (counted in {@code
 * oversizeEnriched}). The record limit and the dropped unknown fields keep this from happening; it
 * is here so that a future field cannot turn into an outage.
 */
final class Finish extends ProcessFunction<EnrichedEvent, EnrichedEvent> {
  private static final long serialVersionUID = 1L;
  private static final int WINDOW = 10_000;

  /** Room left under the producer's max.request.size for the record's key and batch framing. */
  static final int PRODUCER_HEADROOM_BYTES = 4 * 1024;

  /** Enriched events too large to write, as dead letters. */
  static final OutputTag<InvalidEvent> OVERSIZE =
      new OutputTag<>("oversize-enriched", ProtoTypeInfo.forClass(InvalidEvent.class));

  private final int maxBytes;
  private transient Counter oversize;

  private transient Histogram producedToEnriched;
  private transient Histogram ingestedToEnriched;
  private transient Histogram ingestedToScored;

  Finish(int maxBytes) {
    this.maxBytes = maxBytes;
  }

  @Override
  public void open(OpenContext openContext) {
    MetricGroup g = getRuntimeContext().getMetricGroup();
    oversize = g.counter("oversizeEnriched");
    producedToEnriched =
        g.histogram("latencyProducedToEnrichedMs", new DescriptiveStatisticsHistogram(WINDOW));
    ingestedToEnriched =
        g.histogram("latencyIngestedToEnrichedMs", new DescriptiveStatisticsHistogram(WINDOW));
    ingestedToScored =
        g.histogram("latencyIngestedToScoredMs", new DescriptiveStatisticsHistogram(WINDOW));
  }

  @Override
  public void processElement(EnrichedEvent e, Context ctx, Collector<EnrichedEvent> out) {
    long now = System.currentTimeMillis();
    if (e.getProducedAtMs() > 0) {
      producedToEnriched.update(now - e.getProducedAtMs());
    }
    if (e.getIngestedAtMs() > 0) {
      ingestedToEnriched.update(now - e.getIngestedAtMs());
      if (e.getScoredAtMs() > 0) {
        ingestedToScored.update(e.getScoredAtMs() - e.getIngestedAtMs());
      }
    }
    EnrichedEvent done = e.toBuilder().clearSessionTokens().setEnrichedAtMs(now).build();
    int size = done.getSerializedSize();
    if (size > maxBytes) {
      oversize.inc();
      ctx.output(
          OVERSIZE,
          Enrichment.reject(
              done,
              RejectReason.REJECT_REASON_OVERSIZE_RECORD,
              "enriched event of "
                  + size
                  + " bytes is larger than the "
                  + maxBytes
                  + " the job's"
                  + " producers can write",
              now));
      return;
    }
    out.collect(done);
  }
}
