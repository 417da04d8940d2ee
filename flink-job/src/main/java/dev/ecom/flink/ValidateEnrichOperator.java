// The batching step: validate (ecom-core via JNI), parse, hash the IP, MinHash LSH (JNI).
package dev.ecom.flink;

import com.google.protobuf.DiscardUnknownFieldsParser;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Parser;
import dev.ecom.flink.nativelib.EcomNative;
import dev.ecom.flink.nativelib.NativeLoader;
import dev.ecom.flink.serde.ProtoTypeInfo;
import dev.ecom.proto.v1.EnrichedEvent;
import dev.ecom.proto.v1.Event;
import dev.ecom.proto.v1.InvalidEvent;
import dev.ecom.proto.v1.RejectReason;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ScheduledFuture;
import javax.crypto.Mac;
import org.apache.flink.api.common.operators.ProcessingTimeService.ProcessingTimeCallback;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.metrics.Counter;
import org.apache.flink.runtime.state.StateInitializationContext;
import org.apache.flink.runtime.state.StateSnapshotContext;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.util.OutputTag;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Buffers raw records and handles them in batches of up to {@code batchSize}, so each native call
 * amortises the JNI crossing. A batch is flushed when full, when its oldest record has waited
 * {@code batchMaxDelayMs}, before every checkpoint barrier (so no buffered record is lost or needs
 * state), and at end of input.
 *
 * <p>Valid records leave as {@link EnrichedEvent} with ip_hash, geo_bucket, LSH and timestamps set.
 * The raw IP is still in {@code event.ip}: the guard step needs it and clears it. Rejected records
 * leave on {@link #INVALID}. Nothing is dropped and nothing throws on bad input.
 *
 * <p><b>Late</b> is judged here, against the watermark that came before the record (the sources',
 * per Kafka partition, the minimum over this task's partitions): an event more than {@code
 * allowedLatenessMs} behind it leaves with REJECT_REASON_LATE. Downstream steps may see a later
 * watermark by the time they handle an event (the session step holds events while the catalog
 * loads, and its watermark also waits for the catalog input), so judging there would make events
 * that were on time when they came in LATE. After a restore the watermark of the checkpoint is the
 * floor until the sources pass it, so the records read again are judged as they were the first time
 * (the lowest of the tasks' watermarks: a task that had none, e.g. more tasks than partitions,
 * leaves no floor). Before the first watermark (every partition of the task has sent a record) the
 * record's own partition's watermark (its newest event time so far minus the bound) is the one it
 * is judged against.
 *
 * <p><b>Size and shape:</b> a record over {@code maxRecordBytes} is REJECT_REASON_OVERSIZE_RECORD
 * before it is decoded or handed to native code; unknown fields are dropped when a valid record is
 * parsed, so nothing the job writes grows with what a client stuffed into a record. A time more
 * than {@code maxClockLeadMs} ahead of the wall clock when the record was read is a skewed client
 * clock: the event is valid but its time never counts toward a partition's watermark here, as in
 * {@link RawEventTime} and ecom-core's {@code stream::moves_watermark}.
 */
public final class ValidateEnrichOperator extends AbstractStreamOperator<EnrichedEvent>
    implements OneInputStreamOperator<RawRecord, EnrichedEvent>, ProcessingTimeCallback {
  private static final long serialVersionUID = 1L;
  private static final Logger LOGGER = LoggerFactory.getLogger(ValidateEnrichOperator.class);

  /** Drops unknown fields, so an enriched event never carries what a client stuffed in. */
  static final Parser<Event> EVENT_PARSER = DiscardUnknownFieldsParser.wrap(Event.parser());

  /** Side output for rejected records. */
  public static final OutputTag<InvalidEvent> INVALID =
      new OutputTag<>("invalid", ProtoTypeInfo.forClass(InvalidEvent.class));

  private final int batchSize;
  private final long batchMaxDelayMs;
  private final IpHashKey ipHashKey;
  private final long allowedLatenessMs;
  private final long maxOutOfOrderMs;
  private final int maxRecordBytes;
  private final long maxClockLeadMs;

  private transient List<RawRecord> buffer;
  private transient ScheduledFuture<?> flushTimer;
  private transient Mac ipHasher;
  private final int numPerm;
  private final int numBands;
  private transient Counter validEvents;
  private transient Counter invalidEvents;
  private transient Counter lateEvents;
  // The last watermark forwarded (every buffered record came before it), and after a restore
  // the lowest one the tasks checkpointed.
  private transient long watermark = Long.MIN_VALUE;
  // The last one below the end of input (MAX_VALUE), checkpointed: a job stopped with --drain
  // still leaves its last event time as the floor.
  private transient long lastEventTimeWatermark = Long.MIN_VALUE;
  private transient long restoredWatermark = Long.MIN_VALUE;
  private transient ListState<Long> watermarkState;
  // Newest valid event time per Kafka partition read by this task since it started.
  private transient Map<Integer, Long> partitionMaxMs;

  public ValidateEnrichOperator(JobConfig.Intake intake, JobConfig.EventTime time) {
    this.batchSize = intake.batchSize();
    this.batchMaxDelayMs = intake.batchMaxDelayMs();
    this.ipHashKey = intake.ipHashKey();
    this.maxRecordBytes = intake.maxRecordBytes();
    this.numPerm = intake.lshPerm();
    this.numBands = intake.lshBands();
    this.allowedLatenessMs = time.allowedLatenessMs();
    this.maxOutOfOrderMs = time.maxOutOfOrderMs();
    this.maxClockLeadMs = time.maxClockLeadMs();
  }

  @Override
  public void open() throws Exception {
    super.open();
    // Load explicitly so a missing library fails here with its full message.
    NativeLoader.load();
    LOGGER.info("{}: numPerm={}, numBands={}", EcomNative.version(), numPerm, numBands);
    buffer = new ArrayList<>(batchSize);
    ipHasher = Enrichment.ipHasher(ipHashKey.load());
    validEvents = getMetricGroup().counter("validEvents");
    invalidEvents = getMetricGroup().counter("invalidEvents");
    lateEvents = getMetricGroup().counter("lateEvents");
    partitionMaxMs = new HashMap<>();
  }

  @Override
  public void initializeState(StateInitializationContext context) throws Exception {
    super.initializeState(context);
    watermarkState =
        context
            .getOperatorStateStore()
            .getUnionListState(new ListStateDescriptor<>("watermark", Types.LONG));
    watermark = Long.MIN_VALUE;
    lastEventTimeWatermark = Long.MIN_VALUE;
    restoredWatermark = Long.MIN_VALUE;
    if (context.isRestored()) {
      long lowest = Long.MAX_VALUE;
      for (Long w : watermarkState.get()) {
        lowest = Math.min(lowest, w);
      }
      // MIN_VALUE when a task had no watermark yet; MAX_VALUE (end of input) is no floor.
      restoredWatermark = lowest == Long.MAX_VALUE ? Long.MIN_VALUE : lowest;
    }
  }

  @Override
  public void snapshotState(StateSnapshotContext context) throws Exception {
    super.snapshotState(context);
    watermarkState.update(List.of(Math.max(lastEventTimeWatermark, restoredWatermark)));
  }

  @Override
  public void processElement(StreamRecord<RawRecord> element) throws Exception {
    buffer.add(element.getValue());
    if (buffer.size() >= batchSize) {
      flush();
    } else if (flushTimer == null) {
      long now = getProcessingTimeService().getCurrentProcessingTime();
      flushTimer = getProcessingTimeService().registerTimer(now + batchMaxDelayMs, this);
    }
  }

  @Override
  public void onProcessingTime(long time) {
    flushTimer = null;
    flush();
  }

  @Override
  public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
    flush();
    super.prepareSnapshotPreBarrier(checkpointId);
  }

  /** Buffered records go first: a watermark must never overtake them (they would be late). */
  @Override
  public void processWatermark(Watermark mark) throws Exception {
    flush();
    watermark = Math.max(watermark, mark.getTimestamp());
    if (mark.getTimestamp() != Long.MAX_VALUE) {
      lastEventTimeWatermark = Math.max(lastEventTimeWatermark, mark.getTimestamp());
    }
    super.processWatermark(mark);
  }

  @Override
  public void finish() throws Exception {
    flush();
    super.finish();
  }

  @Override
  public void close() throws Exception {
    if (flushTimer != null) {
      flushTimer.cancel(false);
      flushTimer = null;
    }
    super.close();
  }

  private void flush() {
    if (flushTimer != null) {
      flushTimer.cancel(false);
      flushTimer = null;
    }
    if (buffer == null || buffer.isEmpty()) {
      return;
    }
    List<RawRecord> batch = buffer;
    buffer = new ArrayList<>(batchSize);
    long now = System.currentTimeMillis();

    String[] verdicts = validate(batch, now);
    List<RawRecord> validRaw = new ArrayList<>(batch.size());
    List<Event> valid = new ArrayList<>(batch.size());
    for (int i = 0; i < batch.size(); i++) {
      RawRecord raw = batch.get(i);
      if (verdicts[i] != null) {
        emitInvalid(Enrichment.rejectFromVerdict(raw, verdicts[i], now, maxRecordBytes, ipHasher));
        continue;
      }
      try {
        valid.add(EVENT_PARSER.parseFrom(raw.value));
        validRaw.add(raw);
      } catch (InvalidProtocolBufferException e) {
        // ecom-core accepted what protobuf-java cannot parse: still a reject, never a crash.
        emitInvalid(
            Enrichment.reject(
                raw,
                RejectReason.REJECT_REASON_UNPARSEABLE,
                "accepted by ecom-core but not parseable by protobuf-java: " + e.getMessage(),
                now,
                maxRecordBytes,
                ipHasher));
      }
    }
    if (valid.isEmpty()) {
      return;
    }
    dropLate(valid, validRaw, now);
    if (valid.isEmpty()) {
      return;
    }
    long[] lsh = lsh(valid);
    int stride = numPerm + numBands;
    for (int i = 0; i < valid.size(); i++) {
      Event event = valid.get(i);
      RawRecord raw = validRaw.get(i);
      EnrichedEvent.Builder b =
          EnrichedEvent.newBuilder()
              // No raw IP past this step: not in state, not to Guard, not in a dead letter.
              .setEvent(event.toBuilder().clearIp().clearIpHash())
              .setIpHash(
                  event.getIp().isEmpty()
                      ? event.getIpHash()
                      : Enrichment.ipHash(ipHasher, event.getIp()))
              .setGeoBucket(event.getCountry())
              .setProducedAtMs(event.getProducedAtMs())
              .setIngestedAtMs(raw.ingestedAtMs)
              .setEnrichedAtMs(now)
              .setSource(Enrichment.sourceOffset(raw));
      int base = i * stride;
      for (int j = 0; j < numPerm; j++) {
        b.addLshSignature(lsh[base + j]);
      }
      for (int j = 0; j < numBands; j++) {
        b.addLshBuckets(lsh[base + numPerm + j]);
      }
      validEvents.inc();
      output.collect(new StreamRecord<>(b.build()));
    }
  }

  /** Sends the events behind the watermark (beyond the lateness) to {@link #INVALID}. */
  private void dropLate(List<Event> valid, List<RawRecord> validRaw, long now) {
    // MAX_VALUE: the end of bounded input, not an event time.
    if (watermark == Long.MAX_VALUE) {
      return;
    }
    int kept = 0;
    for (int i = 0; i < valid.size(); i++) {
      long t = valid.get(i).getEventTimeMs();
      int partition = validRaw.get(i).partition;
      Long newest = partitionMaxMs.get(partition);
      // The record's own partition's watermark (as RawEventTime makes it) counts too: until
      // every partition of the task has sent a record there is no watermark at all, and a
      // backlog read partition by partition would let an hours-late event through.
      long own = newest == null ? Long.MIN_VALUE : newest - maxOutOfOrderMs - 1;
      long w = Math.max(Math.max(watermark, restoredWatermark), own);
      boolean movesWatermark = t <= validRaw.get(i).ingestedAtMs + maxClockLeadMs;
      if (movesWatermark && t > (newest == null ? Long.MIN_VALUE : newest)) {
        partitionMaxMs.put(partition, t);
      }
      if (w != Long.MIN_VALUE && t + allowedLatenessMs < w) {
        lateEvents.inc();
        emitInvalid(
            Enrichment.reject(
                validRaw.get(i),
                RejectReason.REJECT_REASON_LATE,
                "event time "
                    + t
                    + " is "
                    + (w - t)
                    + " ms behind the watermark "
                    + w
                    + " (allowed lateness "
                    + allowedLatenessMs
                    + " ms)",
                now,
                maxRecordBytes,
                ipHasher));
      } else {
        valid.set(kept, valid.get(i));
        validRaw.set(kept, validRaw.get(i));
        kept++;
      }
    }
    valid.subList(kept, valid.size()).clear();
    validRaw.subList(kept, validRaw.size()).clear();
  }

  /**
   * The verdict per record: a record over the size limit is judged here, unread; the rest in one
   * native call. If that call fails (a bug in the native side, not bad input), the records are
   * validated one by one so a single poisonous record is rejected alone.
   */
  private String[] validate(List<RawRecord> batch, long now) {
    String[] out = new String[batch.size()];
    int[] index = new int[batch.size()];
    List<byte[]> sized = new ArrayList<>(batch.size());
    for (int i = 0; i < batch.size(); i++) {
      byte[] value = batch.get(i).value;
      if (value.length > maxRecordBytes) {
        out[i] =
            RejectReason.REJECT_REASON_OVERSIZE_RECORD.name()
                + "\trecord of "
                + value.length
                + " bytes is larger than the limit of "
                + maxRecordBytes;
      } else {
        index[sized.size()] = i;
        sized.add(value);
      }
    }
    if (sized.isEmpty()) {
      return out;
    }
    byte[][] records = sized.toArray(new byte[0][]);
    String[] verdicts;
    try {
      verdicts =
          checkLength(EcomNative.validateBatch(records, now, maxRecordBytes), records.length);
    } catch (RuntimeException batchError) {
      LOGGER.warn(
          "validateBatch failed for {} records; validating one by one", records.length, batchError);
      verdicts = new String[records.length];
      for (int i = 0; i < records.length; i++) {
        try {
          verdicts[i] =
              checkLength(
                  EcomNative.validateBatch(new byte[][] {records[i]}, now, maxRecordBytes), 1)[0];
        } catch (RuntimeException e) {
          verdicts[i] =
              RejectReason.REJECT_REASON_UNSPECIFIED.name()
                  + "\tthe native validator failed on this record: "
                  + e.getMessage();
        }
      }
    }
    for (int k = 0; k < verdicts.length; k++) {
      out[index[k]] = verdicts[k];
    }
    return out;
  }

  private long[] lsh(List<Event> events) {
    List<String> tokens = new ArrayList<>(events.size() * 6);
    int[] offsets = new int[events.size() + 1];
    for (int i = 0; i < events.size(); i++) {
      tokens.addAll(Enrichment.lshTokens(events.get(i)));
      offsets[i + 1] = tokens.size();
    }
    long[] out;
    try {
      out = EcomNative.lshBatch(tokens.toArray(new String[0]), offsets, numPerm, numBands);
    } catch (RuntimeException e) {
      throw new IllegalStateException(
          "lshBatch failed for " + events.size() + " events: " + e.getMessage(), e);
    }
    long expected = (long) events.size() * (numPerm + numBands);
    if (out == null || out.length != expected) {
      throw new IllegalStateException(
          "lshBatch returned "
              + (out == null ? "null" : out.length + " values")
              + ", expected "
              + expected);
    }
    return out;
  }

  private static String[] checkLength(String[] verdicts, int expected) {
    if (verdicts == null || verdicts.length != expected) {
      throw new IllegalStateException(
          "validateBatch returned "
              + (verdicts == null ? "null" : verdicts.length + " entries")
              + " for "
              + expected
              + " records");
    }
    return verdicts;
  }

  private void emitInvalid(InvalidEvent invalid) {
    invalidEvents.inc();
    output.collect(INVALID, new StreamRecord<>(invalid));
  }
}
