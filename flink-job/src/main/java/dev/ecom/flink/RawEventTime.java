// Event time of a raw record, read at the source so Kafka watermarks are per partition.
package dev.ecom.flink;

import com.google.protobuf.CodedInputStream;
import com.google.protobuf.WireFormat;
import java.io.IOException;
import java.time.Duration;
import org.apache.flink.api.common.eventtime.SerializableTimestampAssigner;
import org.apache.flink.api.common.eventtime.Watermark;
import org.apache.flink.api.common.eventtime.WatermarkGenerator;
import org.apache.flink.api.common.eventtime.WatermarkGeneratorSupplier;
import org.apache.flink.api.common.eventtime.WatermarkOutput;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;

/**
 * Reads event_time_ms (field 2 of ecom.v1.Event) straight from the record's bytes, without parsing
 * the rest. A record that is not an Event, or whose time is not positive or lies further ahead of
 * the wall clock than ecom-core accepts, gets no usable time (Long.MIN_VALUE): it will be rejected
 * by validation and must never move the watermark. A valid time more than --max-clock-lead-ms ahead
 * of the wall clock when the record was read (its ingest time) is kept as the record's timestamp
 * but does not move the watermark either: it is a skewed client clock, not progress (ecom-core's
 * {@code stream::moves_watermark}), so no single record can make on-time ones late.
 */
public final class RawEventTime implements SerializableTimestampAssigner<RawRecord> {
  private static final long serialVersionUID = 1L;

  /** ecom-core's MAX_FUTURE_SKEW_MS: further ahead is REJECT_REASON_FUTURE_TIMESTAMP. */
  static final long MAX_FUTURE_SKEW_MS = 5 * 60 * 1000;

  /** Field 2, varint: (2 << 3) | 0. */
  private static final int EVENT_TIME_TAG = (2 << 3) | WireFormat.WIRETYPE_VARINT;

  /**
   * The job's watermarks: per Kafka partition (the source applies the strategy per split and takes
   * the minimum), bounded out-of-orderness, idleness only when asked for.
   */
  public static WatermarkStrategy<RawRecord> strategy(JobConfig cfg) {
    WatermarkStrategy<RawRecord> s =
        WatermarkStrategy.<RawRecord>forGenerator(
                new EagerBounded(
                    cfg.eventTime().maxOutOfOrderMs(), cfg.eventTime().maxClockLeadMs()))
            .withTimestampAssigner(new RawEventTime());
    // Off by default: a partition that still has a backlog but gets no turn for the timeout
    // (after a restore, under backpressure) would be counted idle and its events come out late.
    return cfg.eventTime().idleTimeoutMs() > 0
        ? s.withIdleness(Duration.ofMillis(cfg.eventTime().idleTimeoutMs()))
        : s;
  }

  /**
   * Flink's bounded out-of-orderness, except that a partition's first usable time is sent on at
   * once instead of at the next periodic emit (every 200 ms). Otherwise a fast-read backlog could
   * run a few thousand records past the job's start with no watermark at all, and an event hours
   * behind would pass as on time.
   */
  static final class EagerBounded implements WatermarkGeneratorSupplier<RawRecord> {
    private static final long serialVersionUID = 1L;
    private final long boundMs;
    private final long maxClockLeadMs;

    EagerBounded(long boundMs, long maxClockLeadMs) {
      this.boundMs = boundMs;
      this.maxClockLeadMs = maxClockLeadMs;
    }

    @Override
    public WatermarkGenerator<RawRecord> createWatermarkGenerator(Context context) {
      return new WatermarkGenerator<>() {
        private long maxMs = Long.MIN_VALUE;

        @Override
        public void onEvent(RawRecord r, long t, WatermarkOutput out) {
          if (t == Long.MIN_VALUE || t > r.ingestedAtMs + maxClockLeadMs) {
            return;
          }
          boolean first = maxMs == Long.MIN_VALUE;
          maxMs = Math.max(maxMs, t);
          if (first) {
            onPeriodicEmit(out);
          }
        }

        @Override
        public void onPeriodicEmit(WatermarkOutput out) {
          if (maxMs != Long.MIN_VALUE) {
            out.emitWatermark(new Watermark(maxMs - boundMs - 1));
          }
        }
      };
    }
  }

  @Override
  public long extractTimestamp(RawRecord r, long recordTimestamp) {
    long t = eventTime(r.value);
    return t > 0 && t <= r.ingestedAtMs + MAX_FUTURE_SKEW_MS ? t : Long.MIN_VALUE;
  }

  /** event_time_ms of an Event's bytes, or Long.MIN_VALUE when it cannot be read. */
  static long eventTime(byte[] value) {
    if (value == null) {
      return Long.MIN_VALUE;
    }
    try {
      CodedInputStream in = CodedInputStream.newInstance(value);
      long t = Long.MIN_VALUE;
      for (int tag = in.readTag(); tag != 0; tag = in.readTag()) {
        if (tag == EVENT_TIME_TAG) {
          t = in.readInt64(); // the last occurrence wins, as in protobuf parsing
        } else if (!in.skipField(tag)) {
          break;
        }
      }
      return t;
    } catch (IOException | RuntimeException e) {
      return Long.MIN_VALUE;
    }
  }
}
