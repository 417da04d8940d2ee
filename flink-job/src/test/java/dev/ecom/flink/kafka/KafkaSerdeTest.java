// The Kafka edges: raw records in, protobuf records out.
package dev.ecom.flink.kafka;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ecom.flink.RawRecord;
import dev.ecom.flink.TestEvents;
import dev.ecom.proto.v1.EnrichedEvent;
import dev.ecom.proto.v1.InvalidEvent;
import dev.ecom.proto.v1.RejectReason;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.junit.jupiter.api.Test;

class KafkaSerdeTest {
  @Test
  void everyConsumerRecordBecomesARawRecordEvenATombstone() {
    List<RawRecord> out = new ArrayList<>();
    Collector<RawRecord> collector =
        new Collector<>() {
          @Override
          public void collect(RawRecord r) {
            out.add(r);
          }

          @Override
          public void close() {}
        };
    RawRecordDeserializer d = new RawRecordDeserializer();
    d.deserialize(
        new ConsumerRecord<>("ecom.events.raw", 1, 7L, new byte[] {1}, new byte[] {2, 3}),
        collector);
    d.deserialize(new ConsumerRecord<>("ecom.events.raw", 0, 8L, null, null), collector);

    assertThat(out).hasSize(2);
    assertThat(out.get(0).value).containsExactly(2, 3);
    assertThat(out.get(0).topic).isEqualTo("ecom.events.raw");
    assertThat(out.get(0).partition).isEqualTo(1);
    assertThat(out.get(0).offset).isEqualTo(7);
    assertThat(out.get(0).ingestedAtMs).isPositive();
    assertThat(out.get(1).value).isEmpty();
  }

  @Test
  void enrichedIsKeyedBySessionAndInvalidHasNoKey() throws Exception {
    EnrichedEvent e = EnrichedEvent.newBuilder().setEvent(TestEvents.valid(4, 1_000_000)).build();
    ProducerRecord<byte[], byte[]> r =
        ProtoRecordSerializer.enriched("t1").serialize(e, null, null);
    assertThat(r.topic()).isEqualTo("t1");
    assertThat(new String(r.key(), StandardCharsets.UTF_8)).isEqualTo("s-1");
    assertThat(EnrichedEvent.parseFrom(r.value())).isEqualTo(e);

    InvalidEvent i =
        InvalidEvent.newBuilder().setReason(RejectReason.REJECT_REASON_UNPARSEABLE).build();
    ProducerRecord<byte[], byte[]> ri =
        ProtoRecordSerializer.invalid("t2").serialize(i, null, null);
    assertThat(ri.key()).isNull();
    assertThat(InvalidEvent.parseFrom(ri.value())).isEqualTo(i);
  }
}
