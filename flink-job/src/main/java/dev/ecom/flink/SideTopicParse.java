// Reads a side topic's records (the catalog, shadow scores); a bad one goes to the dead letter.
package dev.ecom.flink;

import dev.ecom.proto.v1.InvalidEvent;
import dev.ecom.proto.v1.RejectReason;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.metrics.Counter;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/**
 * The values a side topic's records hold. A record over the job's --max-record-bytes is rejected
 * unread as REJECT_REASON_OVERSIZE_RECORD; one {@link #parse} cannot read is rejected with the
 * topic's own reason. A rejected record becomes an InvalidEvent (its bytes and
 * topic/partition/offset) on the subclass's side output, which the job writes to
 * ecom.events.invalid, and is counted in the subclass's counter; the job goes on without it.
 */
public abstract class SideTopicParse<T> extends ProcessFunction<RawRecord, T> {
  private static final long serialVersionUID = 1L;

  private final int maxRecordBytes;
  private final RejectReason unreadable;
  private final OutputTag<InvalidEvent> invalid;
  private final String rejectedCounter;
  private transient Counter rejected;

  /**
   * @param unreadable the reason a record {@link #parse} cannot read is rejected with
   * @param invalid where rejected records go
   * @param rejectedCounter the metric counting them
   */
  protected SideTopicParse(
      int maxRecordBytes,
      RejectReason unreadable,
      OutputTag<InvalidEvent> invalid,
      String rejectedCounter) {
    this.maxRecordBytes = maxRecordBytes;
    this.unreadable = unreadable;
    this.invalid = invalid;
    this.rejectedCounter = rejectedCounter;
  }

  /**
   * Emits what {@code value} holds and returns null, or returns why it cannot be read and emits
   * nothing.
   */
  protected abstract String parse(byte[] value, Collector<T> out);

  @Override
  public void open(OpenContext ctx) {
    rejected = getRuntimeContext().getMetricGroup().counter(rejectedCounter);
  }

  @Override
  public void processElement(RawRecord r, Context ctx, Collector<T> out) {
    RejectReason reason = RejectReason.REJECT_REASON_OVERSIZE_RECORD;
    String detail =
        "record of " + r.value.length + " bytes is larger than the limit of " + maxRecordBytes;
    if (r.value.length <= maxRecordBytes) {
      reason = unreadable;
      detail = parse(r.value, out);
      if (detail == null) {
        return;
      }
    }
    rejected.inc();
    ctx.output(
        invalid,
        Enrichment.reject(r, reason, detail, System.currentTimeMillis(), maxRecordBytes, null));
  }
}
