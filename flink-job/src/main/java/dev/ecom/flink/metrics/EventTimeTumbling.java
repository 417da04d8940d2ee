// Tumbling windows by a time the record itself holds, whatever timestamp its stream record carries.
package dev.ecom.flink.metrics;

import dev.ecom.proto.v1.EnrichedEvent;
import java.io.Serializable;
import java.util.Collection;
import java.util.List;
import org.apache.flink.api.common.ExecutionConfig;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.streaming.api.windowing.assigners.WindowAssigner;
import org.apache.flink.streaming.api.windowing.triggers.EventTimeTrigger;
import org.apache.flink.streaming.api.windowing.triggers.Trigger;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;

/**
 * Like {@code TumblingEventTimeWindows}, but the window comes from the record's own time. The
 * session step emits events that waited for the catalog from its timers, whose stream records then
 * carry the timer's time (or none, for a processing-time timer), not the event's; a closed session
 * is counted where it closed, whichever timer released it.
 */
public final class EventTimeTumbling<T> extends WindowAssigner<Object, TimeWindow> {
  private static final long serialVersionUID = 1L;

  /** The time, ms since epoch, a record is windowed by. */
  public interface TimeOf<T> extends Serializable {
    long timeMs(T record);
  }

  /** An event's event_time_ms. */
  public record EventTimeOf() implements TimeOf<EnrichedEvent> {
    @Override
    public long timeMs(EnrichedEvent e) {
      return e.getEvent().getEventTimeMs();
    }
  }

  private final long sizeMs;
  private final TimeOf<T> timeOf;

  public EventTimeTumbling(long sizeMs, TimeOf<T> timeOf) {
    this.sizeMs = sizeMs;
    this.timeOf = timeOf;
  }

  @Override
  @SuppressWarnings("unchecked")
  public Collection<TimeWindow> assignWindows(
      Object element, long timestamp, WindowAssignerContext context) {
    long t = timeOf.timeMs((T) element);
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
