// The enriched event's last step in the job: stamp enriched_at, drop working fields, record
// latency.
package dev.ecom.flink;

import dev.ecom.proto.v1.EnrichedEvent;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.metrics.Histogram;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.runtime.metrics.DescriptiveStatisticsHistogram;

/**
 * Sets enriched_at_ms (the wall clock when the event leaves the job's last step: validated,
 * sessionized, checked, scored), clears session_tokens (only Score and Recommend need them), and
 * records per-stage latency histograms in milliseconds: {@code latencyProducedToEnrichedMs} (the
 * generator's hand-off to here, Kafka included), {@code latencyIngestedToEnrichedMs} (inside the
 * job) and {@code latencyIngestedToScoredMs}.
 */
final class Finish extends RichMapFunction<EnrichedEvent, EnrichedEvent> {
  private static final long serialVersionUID = 1L;
  private static final int WINDOW = 10_000;

  private transient Histogram producedToEnriched;
  private transient Histogram ingestedToEnriched;
  private transient Histogram ingestedToScored;

  @Override
  public void open(OpenContext openContext) {
    MetricGroup g = getRuntimeContext().getMetricGroup();
    producedToEnriched =
        g.histogram("latencyProducedToEnrichedMs", new DescriptiveStatisticsHistogram(WINDOW));
    ingestedToEnriched =
        g.histogram("latencyIngestedToEnrichedMs", new DescriptiveStatisticsHistogram(WINDOW));
    ingestedToScored =
        g.histogram("latencyIngestedToScoredMs", new DescriptiveStatisticsHistogram(WINDOW));
  }

  @Override
  public EnrichedEvent map(EnrichedEvent e) {
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
    return e.toBuilder().clearSessionTokens().setEnrichedAtMs(now).build();
  }
}
