package dev.ecom.flink;

import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.eventtime.Watermark;
import org.apache.flink.api.common.eventtime.WatermarkOutput;

/** A WatermarkOutput that keeps the timestamps of the watermarks emitted to it, in order. */
final class CollectedWatermarks implements WatermarkOutput {
  final List<Long> marks = new ArrayList<>();

  @Override
  public void emitWatermark(Watermark w) {
    marks.add(w.getTimestamp());
  }

  @Override
  public void markIdle() {}

  @Override
  public void markActive() {}
}
