// Protobuf messages through Flink's serializer and its snapshot.
package dev.ecom.flink.serde;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ecom.flink.TestEvents;
import dev.ecom.proto.v1.EnrichedEvent;
import dev.ecom.proto.v1.InvalidEvent;
import org.apache.flink.api.common.serialization.SerializerConfigImpl;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.junit.jupiter.api.Test;

class ProtoSerializerTest {
  @Test
  void roundTripsAndCopiesOnTheWire() throws Exception {
    TypeSerializer<EnrichedEvent> s =
        ProtoTypeInfo.forClass(EnrichedEvent.class).createSerializer(new SerializerConfigImpl());
    EnrichedEvent e =
        EnrichedEvent.newBuilder()
            .setEvent(TestEvents.valid(1, 1_700_000_000_000L))
            .setIpHash("ab")
            .addLshSignature(-1L)
            .build();

    DataOutputSerializer out = new DataOutputSerializer(64);
    s.serialize(e, out);
    s.serialize(EnrichedEvent.getDefaultInstance(), out);
    DataInputDeserializer in = new DataInputDeserializer(out.getCopyOfBuffer());
    assertThat(s.deserialize(in)).isEqualTo(e);
    assertThat(s.deserialize(in)).isEqualTo(EnrichedEvent.getDefaultInstance());

    // write(DataInputView, n) does not grow the buffer, so size it up front.
    DataOutputSerializer copied = new DataOutputSerializer(1024);
    s.copy(new DataInputDeserializer(out.getCopyOfBuffer()), copied);
    assertThat(s.deserialize(new DataInputDeserializer(copied.getCopyOfBuffer()))).isEqualTo(e);
    assertThat(s.copy(e)).isSameAs(e);
  }

  @Test
  void snapshotRestoresTheSameSerializerAndRejectsAnotherMessage() throws Exception {
    TypeSerializer<EnrichedEvent> s = new ProtoSerializer<>(EnrichedEvent.class);
    DataOutputSerializer out = new DataOutputSerializer(64);
    TypeSerializerSnapshot.writeVersionedSnapshot(out, s.snapshotConfiguration());
    TypeSerializerSnapshot<EnrichedEvent> restored =
        TypeSerializerSnapshot.readVersionedSnapshot(
            new DataInputDeserializer(out.getCopyOfBuffer()), getClass().getClassLoader());

    assertThat(restored.restoreSerializer()).isEqualTo(s);
    assertThat(s.snapshotConfiguration().resolveSchemaCompatibility(restored).isCompatibleAsIs())
        .isTrue();

    @SuppressWarnings({"unchecked", "rawtypes"})
    TypeSerializerSnapshot<EnrichedEvent> other =
        (TypeSerializerSnapshot) new ProtoSerializer<>(InvalidEvent.class).snapshotConfiguration();
    assertThat(s.snapshotConfiguration().resolveSchemaCompatibility(other).isIncompatible())
        .isTrue();
  }
}
