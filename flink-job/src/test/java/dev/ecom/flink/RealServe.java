// The real `ecom serve` binary, with a small model trained for the test, as a child process.
package dev.ecom.flink;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.ecom.flink.serve.ServeSecurity;
import dev.ecom.proto.v1.DescribeRequest;
import dev.ecom.proto.v1.ModelInfo;
import dev.ecom.proto.v1.ScoreGrpc;
import io.grpc.ManagedChannel;
import java.io.File;
import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Starts {@code $ECOM_BIN serve} on free loopback ports over a models directory trained for the
 * test from {@code ecom generate} data (a few seconds), and waits until Score has loaded the model.
 * Guard uses the local stack's Redis ({@code $REDIS_URL}). Skips the test when {@code $ECOM_BIN} is
 * not set (a bare {@code mvn test}); dev/test always sets it.
 */
public final class RealServe implements AutoCloseable {
  private static Path models;

  private final Process process;
  private final String address;
  private final String httpAddress;
  public final ModelInfo model;

  private RealServe(Process process, String address, String httpAddress, ModelInfo model) {
    this.process = process;
    this.address = address;
    this.httpAddress = httpAddress;
    this.model = model;
  }

  public String address() {
    return address;
  }

  /** The gRPC calls this serve has answered, any method, any outcome (its /metrics). */
  long callsAnswered() throws Exception {
    var http = java.net.http.HttpClient.newHttpClient();
    var req =
        java.net.http.HttpRequest.newBuilder(
                java.net.URI.create("http://" + httpAddress + "/metrics"))
            .build();
    String body = http.send(req, java.net.http.HttpResponse.BodyHandlers.ofString()).body();
    return body.lines()
        .filter(l -> l.startsWith("ecom_grpc_requests_total{"))
        .mapToLong(l -> (long) Double.parseDouble(l.substring(l.lastIndexOf(' ') + 1)))
        .sum();
  }

  public static RealServe start() throws Exception {
    return start(List.of(), ServeSecurity.NONE);
  }

  /**
   * A serve with mutual TLS (dev/certs in {@code certs}) that requires the token in {@code
   * tokenFile}; the job reaches it with {@link #clientSecurity}.
   */
  static RealServe startSecured(Path certs, Path tokenFile) throws Exception {
    return start(
        List.of(
            "--tls-cert", certs.resolve("server.pem").toString(),
            "--tls-key", certs.resolve("server.key").toString(),
            "--tls-client-ca", certs.resolve("ca.pem").toString(),
            "--token-file", tokenFile.toString()),
        clientSecurity(certs, tokenFile));
  }

  /** How a client with dev/certs' client certificate and this token reaches a secured serve. */
  static ServeSecurity clientSecurity(Path certs, Path tokenFile) {
    return new ServeSecurity(
        certs.resolve("ca.pem").toString(),
        certs.resolve("client.pem").toString(),
        certs.resolve("client.key").toString(),
        tokenFile.toString());
  }

  /** A development CA and certificates made by dev/certs in a new temporary dir. */
  static Path certs() throws Exception {
    Path dir = Files.createTempDirectory("ecom-flink-test-certs-");
    run(Path.of("..", "dev", "certs").toAbsolutePath().normalize(), dir);
    return dir;
  }

  /**
   * A serve of the tests' model with a candidate in shadow: the same model under the version name
   * {@link #CANDIDATE_SUFFIX} added, so its scores must equal the answers'.
   */
  static RealServe startWithShadow() throws Exception {
    Path dir = Files.createTempDirectory("ecom-flink-test-shadow-");
    String serving = Files.readString(modelsDir().resolve("CURRENT")).trim();
    String candidate = serving + CANDIDATE_SUFFIX;
    for (String v : List.of(serving, candidate)) {
      Files.createDirectories(dir.resolve(v));
      try (var files = Files.list(modelsDir().resolve(serving))) {
        for (Path f : files.toList()) {
          Files.copy(f, dir.resolve(v).resolve(f.getFileName()));
        }
      }
    }
    Files.writeString(dir.resolve("CURRENT"), serving + "\n");
    run(System.getenv("ECOM_BIN"), "models", "shadow", candidate, "--models-dir", dir);
    return start(dir, List.of(), ServeSecurity.NONE);
  }

  static final String CANDIDATE_SUFFIX = "-candidate";

  private static RealServe start(List<String> extra, ServeSecurity probe) throws Exception {
    return start(modelsDir(), extra, probe);
  }

  private static RealServe start(Path dir, List<String> extra, ServeSecurity probe)
      throws Exception {
    String bin = System.getenv("ECOM_BIN");
    assumeTrue(bin != null && !bin.isBlank(), "ECOM_BIN not set: run through dev/test (or set it)");
    assumeTrue(new File(bin).canExecute(), bin + " is not built: run dev/build");
    int grpc = freePort();
    int http = freePort();
    String address = "127.0.0.1:" + grpc;
    Path log = Files.createTempFile("ecom-serve-", ".log");
    List<String> cmd = new java.util.ArrayList<>(List.of(bin, "serve", "--grpc-addr", address));
    cmd.addAll(List.of("--http-addr", "127.0.0.1:" + http, "--models-dir", dir.toString()));
    cmd.addAll(extra);
    Process p =
        new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    ManagedChannel ch = probe.channel(address);
    try {
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
      while (true) {
        if (!p.isAlive()) {
          throw new IllegalStateException(
              "ecom serve exited with " + p.exitValue() + ":\n" + Files.readString(log));
        }
        try {
          ModelInfo info =
              ScoreGrpc.newBlockingStub(ch)
                  .withDeadlineAfter(1, TimeUnit.SECONDS)
                  .describe(DescribeRequest.getDefaultInstance());
          return new RealServe(p, address, "127.0.0.1:" + http, info);
        } catch (RuntimeException notYet) {
          if (System.nanoTime() > deadline) {
            p.destroyForcibly();
            throw new IllegalStateException(
                "ecom serve did not load its model in 60 s:\n" + Files.readString(log), notYet);
          }
          Thread.sleep(200);
        }
      }
    } finally {
      ch.shutdownNow();
    }
  }

  /** The models directory every RealServe of this JVM serves (trained on first use). */
  public static Path modelsDir() throws Exception {
    String bin = System.getenv("ECOM_BIN");
    assumeTrue(bin != null && !bin.isBlank(), "ECOM_BIN not set: run through dev/test (or set it)");
    return trainedModels(bin);
  }

  /** One model for every test of this JVM. */
  private static synchronized Path trainedModels(String bin) throws Exception {
    if (models == null) {
      Path root = Files.createTempDirectory("ecom-flink-test-model-");
      run(bin, "generate", "--events", "5000", "--seed", "7", "--out", root.resolve("data"));
      run(
          bin,
          "train",
          "--from",
          root.resolve("data"),
          "--models-dir",
          root.resolve("models"),
          "--forest-trees",
          "10",
          "--mlp-epochs",
          "3",
          "--quiet");
      models = root.resolve("models");
    }
    return models;
  }

  private static void run(Object... args) throws IOException, InterruptedException {
    List<String> cmd = java.util.Arrays.stream(args).map(Object::toString).toList();
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes());
    if (p.waitFor() != 0) {
      throw new IllegalStateException(String.join(" ", cmd) + " failed:\n" + out);
    }
  }

  private static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    }
  }

  @Override
  public void close() throws Exception {
    process.destroy();
    if (!process.waitFor(10, TimeUnit.SECONDS)) {
      process.destroyForcibly();
    }
  }
}
