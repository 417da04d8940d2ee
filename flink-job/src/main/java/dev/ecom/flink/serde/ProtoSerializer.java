// Serializes protobuf messages as length-prefixed wire bytes for Flink's network and state.
package dev.ecom.flink.serde;

import com.google.protobuf.Message;
import com.google.protobuf.Parser;
import java.io.IOException;
import java.util.Objects;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;

/**
 * A {@link TypeSerializer} for one generated protobuf message class. Messages are immutable, so
 * copies are free; schema evolution is protobuf's own (unknown fields survive a round trip).
 */
public final class ProtoSerializer<T extends Message> extends TypeSerializer<T> {
  private static final long serialVersionUID = 1L;

  private final Class<T> type;
  private transient Parser<T> parser;
  private transient T defaultInstance;

  /** A serializer for the message class {@code type}. */
  public ProtoSerializer(Class<T> type) {
    this.type = Objects.requireNonNull(type, "type");
  }

  @SuppressWarnings("unchecked")
  private T defaultInstance() {
    if (defaultInstance == null) {
      try {
        defaultInstance = (T) type.getMethod("getDefaultInstance").invoke(null);
      } catch (ReflectiveOperationException e) {
        throw new IllegalStateException(type.getName() + " is not a generated protobuf message", e);
      }
    }
    return defaultInstance;
  }

  @SuppressWarnings("unchecked")
  private Parser<T> parser() {
    if (parser == null) {
      parser = (Parser<T>) defaultInstance().getParserForType();
    }
    return parser;
  }

  @Override
  public boolean isImmutableType() {
    return true;
  }

  @Override
  public TypeSerializer<T> duplicate() {
    // Stateless apart from the thread-safe parser cache.
    return this;
  }

  @Override
  public T createInstance() {
    return defaultInstance();
  }

  @Override
  public T copy(T from) {
    return from;
  }

  @Override
  public T copy(T from, T reuse) {
    return from;
  }

  @Override
  public int getLength() {
    return -1;
  }

  @Override
  public void serialize(T record, DataOutputView target) throws IOException {
    byte[] bytes = record.toByteArray();
    target.writeInt(bytes.length);
    target.write(bytes);
  }

  @Override
  public T deserialize(DataInputView source) throws IOException {
    byte[] bytes = new byte[source.readInt()];
    source.readFully(bytes);
    return parser().parseFrom(bytes);
  }

  @Override
  public T deserialize(T reuse, DataInputView source) throws IOException {
    return deserialize(source);
  }

  @Override
  public void copy(DataInputView source, DataOutputView target) throws IOException {
    int length = source.readInt();
    target.writeInt(length);
    target.write(source, length);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof ProtoSerializer<?> other && other.type.equals(type);
  }

  @Override
  public int hashCode() {
    return type.hashCode();
  }

  @Override
  public TypeSerializerSnapshot<T> snapshotConfiguration() {
    return new ProtoSerializerSnapshot<>(type);
  }
}
