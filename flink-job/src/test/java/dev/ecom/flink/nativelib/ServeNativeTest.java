package dev.ecom.flink.nativelib;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ecom.flink.RealServe;
import dev.ecom.flink.serve.ServeSecurity;
import dev.ecom.proto.v1.ModelInfo;
import dev.ecom.proto.v1.RecommendGrpc;
import dev.ecom.proto.v1.ScoreBatchRequest;
import dev.ecom.proto.v1.ScoreBatchResponse;
import dev.ecom.proto.v1.ScoreGrpc;
import dev.ecom.proto.v1.ScoreRequest;
import dev.ecom.proto.v1.SimilarBatchRequest;
import dev.ecom.proto.v1.SimilarBatchResponse;
import dev.ecom.proto.v1.SimilarRequest;
import io.grpc.ManagedChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The in-process serve library against a real trained models directory. */
class ServeNativeTest {

  @Test
  void answersAreServesAnswers() throws Exception {
    try (RealServe serve = RealServe.start()) {
      String dir = RealServe.modelsDir().toString();
      ModelInfo model = serve.model;
      // The purchases of sessions the Recommend index holds, as session tokens (with
      // their categories and styles from the catalog it was trained with).
      Map<String, List<String>> catalog = new HashMap<>();
      Pattern product =
          Pattern.compile(
              "\"product_id\":\"([^\"]+)\".*\"category\":\"([^\"]+)\".*\"style\":\"([^\"]+)\"");
      for (String line :
          Files.readAllLines(
              RealServe.modelsDir().resolveSibling("data").resolve("catalog.jsonl"))) {
        Matcher p = product.matcher(line);
        if (p.find()) {
          catalog.put(p.group(1), List.of("c:" + p.group(2), "s:" + p.group(3)));
        }
      }
      String rec =
          Files.readString(
              RealServe.modelsDir().resolve(model.getModelVersion()).resolve("recommend.json"));
      Matcher m = Pattern.compile("\\\"products\\\":\\[([^\\]]*)\\]").matcher(rec);
      ScoreBatchRequest.Builder scores = ScoreBatchRequest.newBuilder();
      SimilarBatchRequest.Builder similar = SimilarBatchRequest.newBuilder();
      for (int i = 0; i < 20 && m.find(); i++) {
        TreeSet<String> set = new TreeSet<>();
        for (String p : m.group(1).split(",")) {
          String id = p.replace("\"", "");
          set.add("p:" + id);
          set.addAll(catalog.getOrDefault(id, List.of()));
        }
        List<String> tokens = new ArrayList<>(set);
        similar.addRequests(SimilarRequest.newBuilder().addAllTokens(tokens).setK(5));
        ScoreRequest.Builder s =
            ScoreRequest.newBuilder()
                .setFeatureSchemaHash(model.getCoreSchemaHash())
                .addAllTokens(tokens)
                .setTopKReasons(i % 2 == 0 ? 3 : 0);
        for (int f = 0; f < model.getCoreFeatureCount(); f++) {
          s.addFeatures((i + f) % 7);
        }
        scores.addRequests(s);
      }
      assertThat(similar.getRequestsCount()).isEqualTo(20);
      ManagedChannel ch = ServeSecurity.NONE.channel(serve.address());
      try {
        assertThat(
                ScoreBatchResponse.parseFrom(
                    ServeNative.scoreBatch(dir, scores.build().toByteArray())))
            .isEqualTo(ScoreGrpc.newBlockingStub(ch).predictBatch(scores.build()));
        SimilarBatchResponse local =
            SimilarBatchResponse.parseFrom(
                ServeNative.similarBatch(dir, similar.build().toByteArray()));
        assertThat(local)
            .isEqualTo(RecommendGrpc.newBlockingStub(ch).similarBatch(similar.build()));
        assertThat(local.getResponsesList()).filteredOn(r -> r.getProductsCount() > 0).isNotEmpty();
      } finally {
        ch.shutdownNow();
      }
    }
  }

  @Test
  void aRequestServeWouldRefuseThrowsWithServesReason() throws Exception {
    String dir = RealServe.modelsDir().toString();
    byte[] req =
        ScoreBatchRequest.newBuilder()
            .addRequests(ScoreRequest.newBuilder().setFeatureSchemaHash("no-such-schema"))
            .build()
            .toByteArray();
    assertThatThrownBy(() -> ServeNative.scoreBatch(dir, req))
        .isInstanceOf(RuntimeException.class)
        .hasMessageContaining("InvalidArgument")
        .hasMessageContaining("requests[0].feature_schema_hash");
    assertThat(
            ScoreBatchResponse.parseFrom(
                    ServeNative.scoreBatch(
                        dir, ScoreBatchRequest.getDefaultInstance().toByteArray()))
                .getResponsesCount())
        .isZero();
  }

  @Test
  void aDirectoryWithoutAModelSaysWhatToDo(@TempDir Path empty) {
    assertThatThrownBy(() -> ServeNative.modelVersion(empty.toString()))
        .hasMessageContaining("no model in " + empty)
        .hasMessageContaining("ecom train");
  }

  @Test
  void aMovedCurrentIsPickedUpAndABrokenVersionLeavesThePreviousServing(@TempDir Path dir)
      throws Exception {
    Path trained = RealServe.modelsDir();
    String v1 = Files.readString(trained.resolve("CURRENT")).trim();
    copy(trained.resolve(v1), dir.resolve(v1));
    Files.writeString(dir.resolve("CURRENT"), v1 + "\n");
    assertThat(ServeNative.modelVersion(dir.toString())).isEqualTo(v1);

    copy(trained.resolve(v1), dir.resolve("v2"));
    Files.writeString(dir.resolve("CURRENT"), "v2\n");
    assertThat(waitFor(dir, "v2")).isEqualTo("v2");

    Files.createDirectories(dir.resolve("broken"));
    Files.writeString(dir.resolve("CURRENT"), "broken\n");
    Thread.sleep(2_500);
    assertThat(ServeNative.modelVersion(dir.toString())).isEqualTo("v2");
  }

  /** The version answering once it is {@code want}, looked at for up to 10 s. */
  private static String waitFor(Path dir, String want) throws InterruptedException {
    String got = ServeNative.modelVersion(dir.toString());
    for (int i = 0; i < 50 && !got.equals(want); i++) {
      Thread.sleep(200);
      got = ServeNative.modelVersion(dir.toString());
    }
    return got;
  }

  private static void copy(Path from, Path to) throws Exception {
    Files.createDirectories(to);
    try (Stream<Path> files = Files.list(from)) {
      for (Path f : files.toList()) {
        Files.copy(f, to.resolve(f.getFileName()), StandardCopyOption.REPLACE_EXISTING);
      }
    }
  }
}
