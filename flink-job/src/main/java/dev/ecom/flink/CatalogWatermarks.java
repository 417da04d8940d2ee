// The catalog stream's watermark: always the end of time, so it never holds event time back.
package dev.ecom.flink;

import dev.ecom.proto.v1.Product;
import org.apache.flink.api.common.eventtime.Watermark;
import org.apache.flink.api.common.eventtime.WatermarkGenerator;
import org.apache.flink.api.common.eventtime.WatermarkGeneratorSupplier;
import org.apache.flink.api.common.eventtime.WatermarkOutput;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;

/**
 * Catalog updates are not events in time: they apply when they arrive. The session step joins them
 * with the event stream, and a two-input operator's watermark is the smaller of its inputs'; this
 * strategy keeps the catalog's at the maximum so only the events' watermark counts.
 */
public final class CatalogWatermarks implements WatermarkStrategy<Product> {
  private static final long serialVersionUID = 1L;

  @Override
  public WatermarkGenerator<Product> createWatermarkGenerator(
      WatermarkGeneratorSupplier.Context context) {
    return new WatermarkGenerator<>() {
      @Override
      public void onEvent(Product event, long eventTimestamp, WatermarkOutput output) {}

      @Override
      public void onPeriodicEmit(WatermarkOutput output) {
        output.emitWatermark(new Watermark(Long.MAX_VALUE));
      }
    };
  }
}
