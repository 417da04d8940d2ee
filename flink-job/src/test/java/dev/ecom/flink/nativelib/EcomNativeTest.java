// The real Rust library, loaded from the jar's resources, against the JNI contract.
package dev.ecom.flink.nativelib;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ecom.flink.TestEvents;
import java.io.IOException;
import java.io.InputStream;
import java.lang.reflect.Method;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

class EcomNativeTest {
  private static final long NOW = System.currentTimeMillis();

  @Test
  void loadsFromTheResourcesOnceAndReportsItsVersion() {
    assertThat(NativeLoader.resourcePath()).isEqualTo("native/linux-x86_64/libecom_jni.so");
    assertThat(NativeLoader.class.getClassLoader().getResource(NativeLoader.resourcePath()))
        .isNotNull();
    NativeLoader.load();
    NativeLoader.load();
    assertThat(EcomNative.version()).startsWith("ecom-jni ");
  }

  @Test
  void loadsAgainInAFreshClassLoaderAsAResubmittedJobWould() throws Exception {
    EcomNative.version();
    for (int i = 0; i < 2; i++) {
      ClassLoader fresh = new NativeLibClassLoader(getClass().getClassLoader());
      Class<?> native2 = Class.forName(EcomNative.class.getName(), true, fresh);
      assertThat(native2).isNotSameAs(EcomNative.class);
      Method version = native2.getMethod("version");
      assertThat((String) version.invoke(null)).startsWith("ecom-jni ");
    }
  }

  /** Defines the nativelib classes itself, like Flink's child-first user classloader. */
  private static final class NativeLibClassLoader extends ClassLoader {
    NativeLibClassLoader(ClassLoader parent) {
      super(parent);
    }

    @Override
    protected Class<?> loadClass(String name, boolean resolve) throws ClassNotFoundException {
      if (!name.startsWith(NativeLoader.class.getPackageName() + ".")) {
        return super.loadClass(name, resolve);
      }
      synchronized (getClassLoadingLock(name)) {
        Class<?> c = findLoadedClass(name);
        if (c == null) {
          String resource = name.replace('.', '/') + ".class";
          try (InputStream in = getParent().getResourceAsStream(resource)) {
            byte[] bytes = in.readAllBytes();
            c = defineClass(name, bytes, 0, bytes.length);
          } catch (IOException e) {
            throw new ClassNotFoundException(name, e);
          }
        }
        return c;
      }
    }
  }

  @Test
  void validateBatchAcceptsValidAndNamesEachReject() {
    byte[] valid = TestEvents.valid(1, NOW).toByteArray();
    byte[] garbage = {(byte) 0xff, (byte) 0xff, (byte) 0xff};
    byte[] noId = TestEvents.valid(2, NOW).toBuilder().setEventId("").build().toByteArray();

    String[] verdicts = EcomNative.validateBatch(new byte[][] {valid, garbage, noId}, NOW);

    assertThat(verdicts).hasSize(3);
    assertThat(verdicts[0]).isNull();
    assertThat(verdicts[1]).startsWith("REJECT_REASON_UNPARSEABLE\t");
    assertThat(verdicts[2]).startsWith("REJECT_REASON_MISSING_ID\t").contains("event_id");
  }

  @Test
  void validateBatchOfNothingIsEmpty() {
    assertThat(EcomNative.validateBatch(new byte[0][], NOW)).isEmpty();
  }

  @Test
  void nullArgumentsAreJavaExceptionsNotCrashes() {
    assertThatThrownBy(() -> EcomNative.validateBatch(new byte[][] {null}, NOW))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("records[0]");
    assertThatThrownBy(() -> EcomNative.lshBatch(new String[] {"a"}, new int[] {0, 2}))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("offsets");
  }

  @Test
  void lshBatchHasTheDeclaredShapeAndIsDeterministic() {
    int[] shape = EcomNative.lshShape();
    assertThat(shape).hasSize(2);
    int numPerm = shape[0];
    int numBands = shape[1];
    assertThat(numPerm).isPositive();
    assertThat(numBands).isPositive().isLessThanOrEqualTo(numPerm);
    int stride = numPerm + numBands;

    String[] tokens = {
      "p-1",
      "/p/p-1",
      "EVENT_KIND_PRODUCT_VIEW",
      "p-1",
      "/p/p-1",
      "EVENT_KIND_PRODUCT_VIEW",
      "sofa",
      "oak"
    };
    int[] offsets = {0, 3, 6, 8, 8}; // sets: A, A again, {sofa, oak}, empty
    long[] out = EcomNative.lshBatch(tokens, offsets);

    assertThat(out).hasSize(4 * stride);
    long[] first = Arrays.copyOfRange(out, 0, stride);
    long[] second = Arrays.copyOfRange(out, stride, 2 * stride);
    long[] third = Arrays.copyOfRange(out, 2 * stride, 3 * stride);
    assertThat(second).isEqualTo(first);
    assertThat(third).isNotEqualTo(first);
  }
}
