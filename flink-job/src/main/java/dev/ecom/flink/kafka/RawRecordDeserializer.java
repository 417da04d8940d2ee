// Turns every Kafka record into a RawRecord; never throws, so no record can stop the job.
package dev.ecom.flink.kafka;

import dev.ecom.flink.RawRecord;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/** Wraps value bytes, topic/partition/offset and the read time; decoding happens downstream. */
public final class RawRecordDeserializer implements KafkaRecordDeserializationSchema<RawRecord> {
  private static final long serialVersionUID = 1L;

  private final boolean skipTombstones;

  /** Every record, a tombstone (null value) as an empty record that validation rejects. */
  public RawRecordDeserializer() {
    this(false);
  }

  /**
   * With {@code skipTombstones}, null values are left out: on a compacted topic (the catalog) they
   * are deletions that compaction left behind, not bad records.
   */
  public RawRecordDeserializer(boolean skipTombstones) {
    this.skipTombstones = skipTombstones;
  }

  @Override
  public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<RawRecord> out) {
    if (skipTombstones && record.value() == null) {
      return;
    }
    out.collect(
        new RawRecord(
            record.value(),
            record.topic(),
            record.partition(),
            record.offset(),
            record.timestamp(),
            System.currentTimeMillis()));
  }

  @Override
  public TypeInformation<RawRecord> getProducedType() {
    return TypeInformation.of(RawRecord.class);
  }
}
