// Writes protobuf messages to one Kafka topic as their wire bytes, with a per-message key.
package dev.ecom.flink.kafka;

import com.google.protobuf.Message;
import dev.ecom.proto.v1.EnrichedEvent;
import dev.ecom.proto.v1.InvalidEvent;
import dev.ecom.proto.v1.ModelQuality;
import dev.ecom.proto.v1.Session;
import dev.ecom.proto.v1.WindowMetrics;
import java.io.Serializable;
import java.nio.charset.StandardCharsets;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.kafka.clients.producer.ProducerRecord;

/** Value = the message's protobuf bytes; key chosen per topic. */
public final class ProtoRecordSerializer<T extends Message>
    implements KafkaRecordSerializationSchema<T> {
  private static final long serialVersionUID = 1L;

  /** The record key of a message, or null for none. */
  public interface KeyFn<T> extends Serializable {
    byte[] key(T message);
  }

  private final String topic;
  private final KeyFn<T> keyFn;

  private ProtoRecordSerializer(String topic, KeyFn<T> keyFn) {
    this.topic = topic;
    this.keyFn = keyFn;
  }

  /** Key = session_id, so one session's events stay in one partition and in order. */
  public static ProtoRecordSerializer<EnrichedEvent> enriched(String topic) {
    return new ProtoRecordSerializer<>(
        topic, e -> e.getEvent().getSessionId().getBytes(StandardCharsets.UTF_8));
  }

  /** No key: a rejected record may have no usable session_id; the producer spreads them. */
  public static ProtoRecordSerializer<InvalidEvent> invalid(String topic) {
    return new ProtoRecordSerializer<>(topic, e -> null);
  }

  /** Key = session_id, as the session's events. */
  public static ProtoRecordSerializer<Session> sessions(String topic) {
    return new ProtoRecordSerializer<>(
        topic, s -> s.getSessionId().getBytes(StandardCharsets.UTF_8));
  }

  /** Key = the record's id (window start and category). */
  public static ProtoRecordSerializer<WindowMetrics> metrics(String topic) {
    return new ProtoRecordSerializer<>(topic, m -> m.getId().getBytes(StandardCharsets.UTF_8));
  }

  /** Key = the record's id (window start and model version). */
  public static ProtoRecordSerializer<ModelQuality> quality(String topic) {
    return new ProtoRecordSerializer<>(topic, q -> q.getId().getBytes(StandardCharsets.UTF_8));
  }

  @Override
  public ProducerRecord<byte[], byte[]> serialize(
      T element, KafkaSinkContext context, Long timestamp) {
    return new ProducerRecord<>(topic, keyFn.key(element), element.toByteArray());
  }
}
