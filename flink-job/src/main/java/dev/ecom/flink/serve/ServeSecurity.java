// How the job's gRPC channel to ecom serve is secured: TLS, a client certificate, a token.
package dev.ecom.flink.serve;

import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.netty.shaded.io.grpc.netty.GrpcSslContexts;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.netty.handler.ssl.SslContextBuilder;
import io.grpc.stub.MetadataUtils;
import java.io.File;
import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Files read where the channel opens (every TaskManager, like Flink's own {@code security.ssl.*}
 * files), so no secret travels in the job graph or its arguments. All null: plaintext, no token.
 *
 * @param caFile PEM CA certificates serve's certificate must chain to; set: TLS
 * @param certFile PEM client certificate for mutual TLS (with keyFile; needs caFile)
 * @param keyFile PEM (PKCS#8) private key of certFile
 * @param tokenFile file holding the bearer token serve requires
 */
public record ServeSecurity(String caFile, String certFile, String keyFile, String tokenFile)
    implements Serializable {

  /** Plaintext, no token: a serve on loopback or inside a trusted network. */
  public static final ServeSecurity NONE = new ServeSecurity(null, null, null, null);

  public ServeSecurity {
    if ((certFile == null) != (keyFile == null)) {
      throw new IllegalArgumentException(
          "--serve-tls-cert-file and --serve-tls-key-file go together (mutual TLS)");
    }
    if (certFile != null && caFile == null) {
      throw new IllegalArgumentException(
          "--serve-tls-cert-file needs --serve-tls-ca-file: a client certificate is sent only"
              + " over TLS");
    }
  }

  /**
   * A channel to {@code addresses} (one {@code host:port} or several, comma-separated: see {@link
   * ServeAddresses}) secured as configured.
   */
  public ManagedChannel channel(String addresses) throws IOException {
    // round_robin over every address the target resolves to: the listed instances, or every
    // record of a DNS name (a Kubernetes headless service, dns:///ecom-serve:50051).
    NettyChannelBuilder b =
        NettyChannelBuilder.forTarget(ServeAddresses.target(addresses))
            .defaultLoadBalancingPolicy("round_robin")
            .maxInboundMessageSize(64 << 20);
    if (caFile == null) {
      b.usePlaintext();
    } else {
      SslContextBuilder ssl = GrpcSslContexts.forClient().trustManager(new File(caFile));
      if (certFile != null) {
        ssl.keyManager(new File(certFile), new File(keyFile));
      }
      b.sslContext(ssl.build()).useTransportSecurity();
    }
    if (tokenFile != null) {
      Metadata headers = new Metadata();
      headers.put(
          Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER),
          "Bearer " + token(tokenFile));
      b.intercept(MetadataUtils.newAttachHeadersInterceptor(headers));
    }
    return b.build();
  }

  private static String token(String file) {
    try {
      // As ecom-core's secret::read (serve's --token-file): a trailing line ending is dropped.
      String t = Files.readString(Path.of(file), StandardCharsets.UTF_8).replaceAll("[\r\n]+$", "");
      if (t.isEmpty()) {
        throw new IllegalArgumentException("--serve-token-file: " + file + " is empty");
      }
      return t;
    } catch (IOException e) {
      throw new UncheckedIOException("--serve-token-file: cannot read " + file, e);
    }
  }

  @Override
  public String toString() {
    return caFile == null
        ? (tokenFile == null ? "plaintext" : "plaintext+token")
        : (certFile == null ? "tls" : "mtls") + (tokenFile == null ? "" : "+token");
  }
}
