// Reads ecom.catalog; never throws, so a bad catalog record cannot stop the job.
package dev.ecom.flink.kafka;

import com.google.protobuf.InvalidProtocolBufferException;
import dev.ecom.flink.serde.ProtoTypeInfo;
import dev.ecom.proto.v1.Product;
import org.apache.flink.api.common.serialization.DeserializationSchema;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.metrics.Counter;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Products from their protobuf bytes. A record that is not a Product with a product_id (or a
 * compaction tombstone) is logged with its position and skipped: the catalog is reference data, and
 * the events that name such a product are marked catalog_miss downstream.
 */
public final class ProductDeserializer implements KafkaRecordDeserializationSchema<Product> {
  private static final long serialVersionUID = 1L;
  private static final Logger LOG = LoggerFactory.getLogger(ProductDeserializer.class);

  private transient Counter skipped;

  @Override
  public void open(DeserializationSchema.InitializationContext context) {
    skipped = context.getMetricGroup().counter("catalogRecordsSkipped");
  }

  @Override
  public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<Product> out) {
    if (record.value() == null) {
      return;
    }
    try {
      Product p = Product.parseFrom(record.value());
      if (!p.getProductId().isEmpty()) {
        out.collect(p);
        return;
      }
      LOG.warn("Skipping a catalog record without product_id at {}", where(record));
    } catch (InvalidProtocolBufferException e) {
      LOG.warn("Skipping an unparseable catalog record at {}: {}", where(record), e.getMessage());
    }
    if (skipped != null) {
      skipped.inc();
    }
  }

  private static String where(ConsumerRecord<byte[], byte[]> r) {
    return r.topic() + "/" + r.partition() + "@" + r.offset();
  }

  @Override
  public TypeInformation<Product> getProducedType() {
    return ProtoTypeInfo.forClass(Product.class);
  }
}
