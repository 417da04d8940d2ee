// The job's channel over several real ecom serve instances: round robin, and one stopped.
package dev.ecom.flink;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ecom.flink.serve.ServeAddresses;
import dev.ecom.flink.serve.ServeSecurity;
import dev.ecom.proto.v1.RecommendGrpc;
import dev.ecom.proto.v1.SimilarRequest;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class ServeAddressesTest {
  private static final SimilarRequest ASK =
      SimilarRequest.newBuilder().addTokens("p:p-1").setK(3).build();

  @Test
  void oneAddressIsLeftToGrpcAndSeveralBecomeAList() {
    assertThat(ServeAddresses.target("127.0.0.1:50051")).isEqualTo("127.0.0.1:50051");
    assertThat(ServeAddresses.target("dns:///ecom-serve:50051"))
        .isEqualTo("dns:///ecom-serve:50051");
    assertThat(ServeAddresses.target("127.0.0.1:50051, 127.0.0.1:50052"))
        .isEqualTo("ecom-serve-list:///127.0.0.1:50051,127.0.0.1:50052");
    assertThatThrownBy(() -> ServeAddresses.target("127.0.0.1:50051,127.0.0.1"))
        .hasMessageContaining("'127.0.0.1' is not host:port");
    assertThatThrownBy(() -> ServeAddresses.target("a:1,b:x"))
        .hasMessageContaining("bad port in 'b:x'");
  }

  @Test
  void callsGoRoundRobinAndAStoppedInstanceLeavesTheRotation() throws Exception {
    try (RealServe a = RealServe.start();
        RealServe b = RealServe.start()) {
      ManagedChannel ch = ServeSecurity.NONE.channel(a.address() + "," + b.address());
      try {
        var stub = RecommendGrpc.newBlockingStub(ch);
        for (int i = 0; i < 40; i++) {
          stub.withDeadlineAfter(5, TimeUnit.SECONDS).withWaitForReady().similar(ASK);
        }
        long fromA = a.callsAnswered();
        long fromB = b.callsAnswered();
        assertThat(fromA + fromB).isEqualTo(40);
        // Round robin over two READY instances: an even split, give or take the first picks.
        assertThat(fromA).isBetween(15L, 25L);

        b.close();
        int failed = 0;
        for (int i = 0; i < 40; i++) {
          try {
            stub.withDeadlineAfter(5, TimeUnit.SECONDS).similar(ASK);
          } catch (StatusRuntimeException e) {
            // A call picked before the channel saw b go is refused; it is the caller's to retry
            // or fall back, as the job does.
            assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAVAILABLE);
            failed++;
          }
        }
        assertThat(failed).isLessThanOrEqualTo(1);
        assertThat(a.callsAnswered()).isGreaterThanOrEqualTo(fromA + 39);
      } finally {
        ch.shutdownNow();
      }
    }
  }
}
