// Command-line parsing of the job.
package dev.ecom.flink;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ecom.proto.v1.EventKind;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class JobConfigTest {
  @Test
  void theOptionsShownInFlinkAreTheEffectiveOnesWithoutSecrets() throws Exception {
    java.util.Map<String, String> shown =
        JobOptions.effective(
            new String[] {"--serve-address", "serve:50051", "--ip-hash-key-file", "/k"});
    assertThat(shown)
        .containsEntry("serve-address", "serve:50051")
        .containsEntry("ip-hash-key-file", "/k")
        .containsEntry("bootstrap-servers", "127.0.0.1:9092")
        .doesNotContainKey("parallelism");
    assertThatThrownBy(() -> JobOptions.effective(new String[] {"--nope", "1"}))
        .hasMessageContaining("unknown option --nope");
    assertThat(EcomJob.version()).matches("\\S+ \\(commit \\S+\\)");
  }

  @Test
  void defaultsMatchTheLocalStack() {
    JobConfig c = JobConfig.defaults();
    assertThat(c.kafka().bootstrapServers()).isEqualTo("127.0.0.1:9092");
    assertThat(c.serve().address()).isEqualTo("127.0.0.1:50051");
    assertThat(c.kafka().groupId()).isEqualTo("ecom-flink");
    assertThat(c.kafka().topics().raw()).isEqualTo("ecom.events.raw");
    assertThat(c.kafka().topics().enriched()).isEqualTo("ecom.events.enriched");
    assertThat(c.kafka().topics().invalid()).isEqualTo("ecom.events.invalid");
    assertThat(c.recovery().checkpointIntervalMs()).isEqualTo(2000);
    assertThat(c.serve().guard().timeoutMs()).isEqualTo(1000);
    assertThat(c.serve().guard().capacity()).isEqualTo(256);
    assertThat(c.serve().scoreCall().batchSize()).isEqualTo(64);
    assertThat(c.serve().scoreTopK()).isEqualTo(3);
    assertThat(c.serve().recommendKinds())
        .containsExactlyInAnyOrder(
            EventKind.EVENT_KIND_PRODUCT_VIEW, EventKind.EVENT_KIND_ADD_TO_CART);
    assertThat(c.intake().ipHashKey()).isEqualTo(new IpHashKey(null, false));
    assertThat(c.kafka().transactionalIdPrefix()).isEqualTo("ecom-job");
    assertThat(c.parallelism()).isZero();
  }

  @Test
  void parsesBothSpellingsAndReadsTheKeyFromAFileOrTheEnvironmentOnly(@TempDir Path dir)
      throws Exception {
    Path file = dir.resolve("ip-hash-key");
    Files.writeString(file, "s3cret-from-file\n");
    JobConfig c =
        JobConfig.parse(
            new String[] {
              "--bootstrap-servers",
              "k:9092",
              "--parallelism=3",
              "--ip-hash-key-file",
              file.toString()
            });
    assertThat(c.kafka().bootstrapServers()).isEqualTo("k:9092");
    assertThat(c.parallelism()).isEqualTo(3);
    // The config names the file; the key is read where the validate step opens.
    assertThat(c.intake().ipHashKey().load(n -> "from-env")).isEqualTo("s3cret-from-file");
    assertThat(c.toString()).doesNotContain("s3cret");

    IpHashKey fromEnv = JobConfig.parse(new String[0]).intake().ipHashKey();
    assertThat(fromEnv.load(n -> n.equals("ECOM_IP_HASH_KEY") ? "e-key" : null)).isEqualTo("e-key");
    assertThat(fromEnv.givenOrAllowed(n -> null)).isFalse();
    assertThatThrownBy(() -> fromEnv.load(n -> null)).hasMessageContaining("no IP-hash key");
    assertThat(new IpHashKey(null, true).load(n -> null)).isEqualTo(IpHashKey.DEV_KEY);

    assertThatThrownBy(() -> JobConfig.parse(new String[] {"--ip-hash-key", "s3cret"}))
        .hasMessageContaining("--ip-hash-key is not accepted")
        .hasMessageContaining("--ip-hash-key-file")
        .hasMessageNotContaining("s3cret");
    Files.writeString(file, "\n");
    assertThatThrownBy(() -> new IpHashKey(file.toString(), false).load(n -> null))
        .hasMessageContaining("is empty");
    assertThatThrownBy(
            () -> new IpHashKey(dir.resolve("missing").toString(), false).load(n -> null))
        .hasMessageContaining("cannot read");
  }

  @Test
  void withoutAKeyTheJobRefusesToStartUnlessDevelopmentIsAllowed() {
    org.junit.jupiter.api.Assumptions.assumeTrue(
        System.getenv(IpHashKey.ENV) == null, "ECOM_IP_HASH_KEY is set here");
    assertThatThrownBy(() -> EcomJob.main(new String[0]))
        .hasMessageContaining("no IP-hash key")
        .hasMessageContaining("--ip-hash-key-file");
    assertThat(JobConfig.defaults().intake().ipHashKey().allowDev()).isFalse();
  }

  @Test
  void badArgumentsNameTheProblem() throws Exception {
    assertThatThrownBy(() -> JobConfig.parse(new String[] {"--nope", "1"}))
        .hasMessageContaining("unknown option --nope");
    assertThatThrownBy(() -> JobConfig.parse(new String[] {"--guard-timeout-ms", "soon"}))
        .hasMessageContaining("--guard-timeout-ms");
    assertThatThrownBy(() -> JobConfig.parse(new String[] {"--guard-capacity", "0"}))
        .hasMessageContaining("must be > 0");
    assertThatThrownBy(() -> JobConfig.parse(new String[] {"--recommend-kinds", "view,purchase"}))
        .hasMessageContaining("--recommend-kinds: 'view' is not an event kind");
    assertThatThrownBy(() -> JobConfig.parse(new String[] {"--raw-topic"}))
        .hasMessageContaining("missing value");
    assertThatThrownBy(() -> JobConfig.parse(new String[] {"stray"}))
        .hasMessageContaining("unexpected argument");
    assertThatThrownBy(
            () ->
                JobConfig.parse(
                    new String[] {"--allowed-lateness-ms", "60000", "--session-gap-ms", "60000"}))
        .hasMessageContaining("--allowed-lateness-ms 60000 must be below --session-gap-ms 60000");
    assertThatThrownBy(() -> JobConfig.parse(new String[] {"--session-state-ttl-ms", "1800000"}))
        .hasMessageContaining("--session-state-ttl-ms 1800000 must be above --session-gap-ms");
    assertThat(
            JobConfig.parse(new String[] {"--session-state-ttl-ms", "0"})
                .state()
                .sessionStateTtlMs())
        .isZero();
  }

  @Test
  void limitsThatWouldStopTheJobAreRefusedAtStart() {
    assertThatThrownBy(() -> JobConfig.parse(new String[] {"--rpc-batch-size", "1001"}))
        .hasMessageContaining("batch limit of 1000");
    assertThatThrownBy(
            () ->
                JobConfig.parse(
                    new String[] {
                      "--max-record-bytes", "1000000", "--producer-max-request-bytes", "1048576"
                    }))
        .hasMessageContaining("--max-record-bytes 1000000 leaves too little room");
    assertThatThrownBy(() -> JobConfig.parse(new String[] {"--max-clock-lead-ms", "60000"}))
        .hasMessageContaining("below --max-out-of-order-ms");
    assertThatThrownBy(
            () ->
                JobConfig.parse(
                    new String[] {
                      "--transaction-timeout-ms", "60000", "--checkpoint-timeout-ms", "60000"
                    }))
        .hasMessageContaining(
            "--transaction-timeout-ms 60000 must be above --checkpoint-interval-ms 2000 +"
                + " --checkpoint-timeout-ms 60000");
    assertThatThrownBy(() -> JobConfig.parse(new String[] {"--restart-attempts", "-2"}))
        .hasMessageContaining("-1 leaves restarts to the cluster's");
    JobConfig d = JobConfig.defaults();
    assertThat(d.recovery().restartAttempts())
        .as("restarts are the cluster's by default")
        .isEqualTo(-1);
    assertThat(d.recovery().tolerableCheckpointFailures()).isEqualTo(3);
    assertThat(d.kafka().transactionTimeoutMs()).isEqualTo(600_000);
    assertThat(d.intake().maxRecordBytes()).isEqualTo(16_384);
    assertThat(d.eventTime().maxClockLeadMs()).isEqualTo(5_000);
    assertThat(d.kafka().producerMaxRequestBytes()).isEqualTo(1_048_576);
  }

  @Test
  void helpIsNotAnError() {
    assertThatThrownBy(() -> JobConfig.parse(new String[] {"--help"}))
        .isInstanceOf(JobOptions.HelpRequested.class);
    assertThat(JobOptions.usage()).contains("--bootstrap-servers").contains("[127.0.0.1:9092]");
  }
}
