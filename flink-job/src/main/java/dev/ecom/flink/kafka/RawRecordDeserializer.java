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

  @Override
  public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<RawRecord> out) {
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
