// The catalog stream's watermark: held back while the catalog loads, then the end of time.
package dev.ecom.flink;

import dev.ecom.proto.v1.Product;
import java.util.function.LongSupplier;
import org.apache.flink.api.common.eventtime.Watermark;
import org.apache.flink.api.common.eventtime.WatermarkGenerator;
import org.apache.flink.api.common.eventtime.WatermarkGeneratorSupplier;
import org.apache.flink.api.common.eventtime.WatermarkOutput;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;

/**
 * Catalog updates are not events in time: they apply when they arrive. The session step joins them
 * with the event stream, and a two-input operator's watermark is the smaller of its inputs'.
 *
 * <p>While the catalog loads, this watermark stays at its start, so the session step's event time
 * does not move: a session whose close the events' watermark has passed (a job started on a full
 * topic) waits with its events for the catalog instead of closing without it. The catalog counts as
 * loaded once a record has come and then none for {@link #QUIET_MS}, or when {@code waitMs} passed
 * with none (an empty topic, or a restore that has read the catalog already). From then on the
 * watermark is the maximum, so only the events' watermark counts. A bounded catalog ends with the
 * maximum after its last record.
 *
 * <p>The generator keeps no state; run the step at parallelism 1 so it sees every record.
 */
public final class CatalogWatermarks implements WatermarkStrategy<Product> {
  private static final long serialVersionUID = 1L;

  /** Processing time without a catalog record after which a catalog that has begun is loaded. */
  static final long QUIET_MS = 1_000;

  private final long waitMs;

  /**
   * @param waitMs the longest the watermark is held when no catalog record comes
   */
  public CatalogWatermarks(long waitMs) {
    this.waitMs = waitMs;
  }

  @Override
  public WatermarkGenerator<Product> createWatermarkGenerator(
      WatermarkGeneratorSupplier.Context context) {
    return generator(waitMs, System::currentTimeMillis);
  }

  /** The generator, reading processing time from {@code clock}. */
  static WatermarkGenerator<Product> generator(long waitMs, LongSupplier clock) {
    long startMs = clock.getAsLong();
    return new WatermarkGenerator<>() {
      private long lastRecordMs = Long.MIN_VALUE;
      private boolean loaded;

      @Override
      public void onEvent(Product event, long eventTimestamp, WatermarkOutput output) {
        lastRecordMs = clock.getAsLong();
      }

      @Override
      public void onPeriodicEmit(WatermarkOutput output) {
        if (!loaded) {
          long now = clock.getAsLong();
          loaded =
              lastRecordMs == Long.MIN_VALUE
                  ? now - startMs >= waitMs
                  : now - lastRecordMs >= Math.min(QUIET_MS, waitMs);
        }
        if (loaded) {
          output.emitWatermark(new Watermark(Long.MAX_VALUE));
        }
      }
    };
  }
}
