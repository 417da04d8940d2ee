package dev.ecom.flink;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ecom.proto.v1.Product;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.flink.api.common.eventtime.WatermarkGenerator;
import org.junit.jupiter.api.Test;

class CatalogWatermarksTest {
  private final AtomicLong now = new AtomicLong(1_000_000);
  private final CollectedWatermarks out = new CollectedWatermarks();

  private WatermarkGenerator<Product> generator(long waitMs) {
    return CatalogWatermarks.generator(waitMs, now::get);
  }

  @Test
  void withoutACatalogRecordTheWatermarkIsHeldForTheWaitThenIsTheMaximum() {
    WatermarkGenerator<Product> g = generator(30_000);
    now.addAndGet(29_999);
    g.onPeriodicEmit(out);
    assertThat(out.marks).isEmpty();
    now.addAndGet(1);
    g.onPeriodicEmit(out);
    assertThat(out.marks).containsExactly(Long.MAX_VALUE);
  }

  @Test
  void aCatalogThatHasBegunIsLoadedAfterAQuietSecondAndStaysLoaded() {
    WatermarkGenerator<Product> g = generator(30_000);
    Product p = Product.newBuilder().setProductId("p-1").build();
    g.onEvent(p, 0, out);
    now.addAndGet(CatalogWatermarks.QUIET_MS - 1);
    g.onEvent(p, 0, out);
    now.addAndGet(CatalogWatermarks.QUIET_MS - 1);
    g.onPeriodicEmit(out);
    assertThat(out.marks).as("records keep coming: still loading").isEmpty();
    now.addAndGet(1);
    g.onPeriodicEmit(out);
    assertThat(out.marks).containsExactly(Long.MAX_VALUE);
    g.onEvent(p, 0, out);
    g.onPeriodicEmit(out);
    assertThat(out.marks)
        .as("a later update holds nothing back")
        .hasSize(2)
        .containsOnly(Long.MAX_VALUE);
  }
}
