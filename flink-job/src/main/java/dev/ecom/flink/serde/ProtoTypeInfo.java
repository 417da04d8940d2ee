// Flink type information for protobuf messages, so they never fall back to Kryo.
package dev.ecom.flink.serde;

import com.google.protobuf.Message;
import java.util.Objects;
import org.apache.flink.api.common.serialization.SerializerConfig;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeutils.TypeSerializer;

/** Type information for a generated protobuf message class, serialized as its wire bytes. */
public final class ProtoTypeInfo<T extends Message> extends TypeInformation<T> {
  private static final long serialVersionUID = 1L;

  private final Class<T> type;

  private ProtoTypeInfo(Class<T> type) {
    this.type = Objects.requireNonNull(type, "type");
  }

  /** Type information for the message class {@code type}. */
  public static <T extends Message> ProtoTypeInfo<T> forClass(Class<T> type) {
    return new ProtoTypeInfo<>(type);
  }

  @Override
  public boolean isBasicType() {
    return false;
  }

  @Override
  public boolean isTupleType() {
    return false;
  }

  @Override
  public int getArity() {
    return 1;
  }

  @Override
  public int getTotalFields() {
    return 1;
  }

  @Override
  public Class<T> getTypeClass() {
    return type;
  }

  @Override
  public boolean isKeyType() {
    return false;
  }

  @Override
  public TypeSerializer<T> createSerializer(SerializerConfig config) {
    return new ProtoSerializer<>(type);
  }

  @Override
  public String toString() {
    return "Proto<" + type.getName() + ">";
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof ProtoTypeInfo<?> other && other.type.equals(type);
  }

  @Override
  public int hashCode() {
    return type.hashCode();
  }

  @Override
  public boolean canEqual(Object o) {
    return o instanceof ProtoTypeInfo;
  }
}
