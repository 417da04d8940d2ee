// The checkpointed description of a ProtoSerializer: just the message class name.
package dev.ecom.flink.serde;

import com.google.protobuf.Message;
import java.io.IOException;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.TypeSerializerSchemaCompatibility;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;

/** Snapshot of a {@link ProtoSerializer}; compatible as long as the message class is the same. */
public final class ProtoSerializerSnapshot<T extends Message> implements TypeSerializerSnapshot<T> {
  private static final int VERSION = 1;

  private Class<T> type;

  /** For Flink's reflective restore. */
  public ProtoSerializerSnapshot() {}

  ProtoSerializerSnapshot(Class<T> type) {
    this.type = type;
  }

  @Override
  public int getCurrentVersion() {
    return VERSION;
  }

  @Override
  public void writeSnapshot(DataOutputView out) throws IOException {
    out.writeUTF(type.getName());
  }

  @Override
  @SuppressWarnings("unchecked")
  public void readSnapshot(int readVersion, DataInputView in, ClassLoader classLoader)
      throws IOException {
    String name = in.readUTF();
    try {
      type = (Class<T>) Class.forName(name, false, classLoader);
    } catch (ClassNotFoundException e) {
      throw new IOException("protobuf message class " + name + " of a checkpoint is gone", e);
    }
  }

  @Override
  public TypeSerializer<T> restoreSerializer() {
    return new ProtoSerializer<>(type);
  }

  @Override
  public TypeSerializerSchemaCompatibility<T> resolveSchemaCompatibility(
      TypeSerializerSnapshot<T> oldSnapshot) {
    // Protobuf's wire format carries field evolution itself; only the class must match.
    if (oldSnapshot instanceof ProtoSerializerSnapshot<?> old
        && old.type != null
        && old.type.getName().equals(type.getName())) {
      return TypeSerializerSchemaCompatibility.compatibleAsIs();
    }
    return TypeSerializerSchemaCompatibility.incompatible();
  }
}
