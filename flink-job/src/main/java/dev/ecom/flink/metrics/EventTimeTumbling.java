// Tumbling windows by the event's own time, whatever timestamp its stream record carries.
package dev.ecom.flink.metrics;

import dev.ecom.proto.v1.EnrichedEvent;
import java.util.Collection;
import java.util.List;
import org.apache.flink.api.common.ExecutionConfig;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.streaming.api.windowing.assigners.WindowAssigner;
import org.apache.flink.streaming.api.windowing.triggers.EventTimeTrigger;
import org.apache.flink.streaming.api.windowing.triggers.Trigger;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;

/**
 * Like {@code TumblingEventTimeWindows}, but the window comes from event_time_ms. The session step
 * emits events that waited for the catalog from its timers, whose stream records then carry the
 * timer's time (or none, for a processing-time timer), not the event's.
 */
final class EventTimeTumbling extends WindowAssigner<Object, TimeWindow> {
  private static final long serialVersionUID = 1L;

  private final long sizeMs;

  EventTimeTumbling(long sizeMs) {
    this.sizeMs = sizeMs;
  }

  @Override
  public Collection<TimeWindow> assignWindows(
      Object element, long timestamp, WindowAssignerContext context) {
    long t = ((EnrichedEvent) element).getEvent().getEventTimeMs();
    long start = TimeWindow.getWindowStartWithOffset(t, 0, sizeMs);
    return List.of(new TimeWindow(start, start + sizeMs));
  }

  @Override
  public Trigger<Object, TimeWindow> getDefaultTrigger() {
    return EventTimeTrigger.create();
  }

  @Override
  public TypeSerializer<TimeWindow> getWindowSerializer(ExecutionConfig executionConfig) {
    return new TimeWindow.Serializer();
  }

  @Override
  public boolean isEventTime() {
    return true;
  }

  @Override
  public String toString() {
    return "EventTimeTumbling(" + sizeMs + ")";
  }
}
