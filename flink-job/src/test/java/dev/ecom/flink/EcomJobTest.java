// The job graph main builds, Kafka source and exactly-once sinks included, without running it.
package dev.ecom.flink;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Collectors;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.graph.StreamGraph;
import org.apache.flink.streaming.api.graph.StreamNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfEnvironmentVariable;
import org.junit.jupiter.api.io.TempDir;

class EcomJobTest {
  @Test
  void mainWiresEveryOperatorWithAStableUid() throws Exception {
    JobConfig cfg = JobConfig.parse(new String[] {"--parallelism", "2"});
    StreamExecutionEnvironment env = EcomJob.buildJob(cfg);
    assertThat(env.getCheckpointConfig().isCheckpointingEnabled()).isTrue();
    assertThat(env.getCheckpointInterval()).isEqualTo(2000);

    StreamGraph graph = env.getStreamGraph();
    // Every operator: state in a savepoint is matched to operators by uid, so one without a
    // stable uid would lose its state when the job graph changes.
    List<String> withoutUid =
        graph.getStreamNodes().stream()
            .filter(n -> n.getTransformationUID() == null)
            .map(StreamNode::getOperatorName)
            .collect(Collectors.toList());
    assertThat(withoutUid).isEmpty();
    List<String> uids =
        graph.getStreamNodes().stream()
            .map(StreamNode::getTransformationUID)
            .collect(Collectors.toList());
    assertThat(uids).doesNotHaveDuplicates();
    assertThat(uids)
        .contains(
            "raw-source",
            EcomPipeline.UID_VALIDATE,
            EcomPipeline.UID_GUARD,
            EcomPipeline.UID_ENRICHED_SINK,
            EcomPipeline.UID_INVALID_SINK);
  }

  /** Against the local stack's TLS listener (dev/up: 127.0.0.1:9094, dev/certs' CA). */
  @Test
  @EnabledIfEnvironmentVariable(named = "ECOM_HOME", matches = ".+")
  void theKafkaPropertiesFileCarriesTlsToTheBrokers(@TempDir Path dir) throws Exception {
    Path ca = Path.of(System.getenv("ECOM_HOME"), "tls", "ca.pem");
    assumeTrue(Files.exists(ca), "no TLS listener here: dev/up makes one");
    Path props = dir.resolve("kafka.properties");
    Files.writeString(
        props,
        "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location=" + ca + "\n");
    JobConfig tls =
        JobConfig.parse(
            new String[] {
              "--bootstrap-servers", "127.0.0.1:9094",
              "--kafka-properties-file", props.toString(),
              "--transaction-timeout-ms", "7200000"
            });
    assertThat(EcomJob.kafkaProperties(tls)).containsEntry("security.protocol", "SSL");
    assertThat(tls.toString()).contains("security.protocol").doesNotContain(ca.toString());
    // Over TLS the admin client reads the brokers' limit (1 h) and refuses the 2 h timeout.
    assertThatThrownBy(() -> EcomJob.checkTransactionTimeout(tls))
        .hasMessageContaining("transaction.max.timeout.ms");
    // Without the file the TLS listener never answers: the check can only warn.
    JobConfig plain =
        JobConfig.parse(
            new String[] {
              "--bootstrap-servers", "127.0.0.1:9094", "--transaction-timeout-ms", "7200000"
            });
    assertThatCode(() -> EcomJob.checkTransactionTimeout(plain)).doesNotThrowAnyException();
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
