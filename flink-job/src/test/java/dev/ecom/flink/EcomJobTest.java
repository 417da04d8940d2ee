// The job graph main builds, Kafka source and exactly-once sinks included, without running it.
package dev.ecom.flink;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import java.util.stream.Collectors;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.graph.StreamGraph;
import org.apache.flink.streaming.api.graph.StreamNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfEnvironmentVariable;

class EcomJobTest {
  @Test
  void mainWiresEveryOperatorWithAStableUid() throws Exception {
    JobConfig cfg = JobConfig.parse(new String[] {"--parallelism", "2"});
    StreamExecutionEnvironment env = EcomJob.buildJob(cfg);
    assertThat(env.getCheckpointConfig().isCheckpointingEnabled()).isTrue();
    assertThat(env.getCheckpointInterval()).isEqualTo(2000);

    StreamGraph graph = env.getStreamGraph();
    List<String> uids =
        graph.getStreamNodes().stream()
            .map(StreamNode::getTransformationUID)
            .filter(u -> u != null)
            .collect(Collectors.toList());
    assertThat(uids)
        .contains(
            "raw-source",
            EcomPipeline.UID_VALIDATE,
            EcomPipeline.UID_GUARD,
            EcomPipeline.UID_ENRICHED_SINK,
            EcomPipeline.UID_INVALID_SINK);
  }

  /** Against the local stack's broker (dev/test exports KAFKA_BOOTSTRAP; dev/up allows 1 h). */
  @Test
  @EnabledIfEnvironmentVariable(named = "KAFKA_BOOTSTRAP", matches = ".+")
  void aTransactionTimeoutAboveTheBrokersMaximumIsRefusedAtStart() throws Exception {
    String brokers = System.getenv("KAFKA_BOOTSTRAP");
    JobConfig fits = JobConfig.parse(new String[] {"--bootstrap-servers", brokers});
    assertThatCode(() -> EcomJob.checkTransactionTimeout(fits)).doesNotThrowAnyException();
    JobConfig tooLong =
        JobConfig.parse(
            new String[] {"--bootstrap-servers", brokers, "--transaction-timeout-ms", "86400000"});
    assertThatThrownBy(() -> EcomJob.checkTransactionTimeout(tooLong))
        .hasMessageContaining("--transaction-timeout-ms 86400000 is above broker")
        .hasMessageContaining("'s transaction.max.timeout.ms ");
  }
}
