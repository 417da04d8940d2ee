// The real Rust library, loaded from the jar's resources, against the JNI contract.
package dev.ecom.flink.nativelib;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ecom.flink.TestEvents;
import dev.ecom.proto.v1.SessionState;
import java.io.IOException;
import java.io.InputStream;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

class EcomNativeTest {
  private static final long NOW = System.currentTimeMillis();
  private static final int LSH_PERM = 32;
  private static final int LSH_BANDS = 8;

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

    String[] verdicts = EcomNative.validateBatch(new byte[][] {valid, garbage, noId}, NOW, 16_384);

    assertThat(verdicts).hasSize(3);
    assertThat(verdicts[0]).isNull();
    assertThat(verdicts[1]).startsWith("REJECT_REASON_UNPARSEABLE\t");
    assertThat(verdicts[2]).startsWith("REJECT_REASON_MISSING_ID\t").contains("event_id");
  }

  @Test
  void validateBatchOfNothingIsEmpty() {
    assertThat(EcomNative.validateBatch(new byte[0][], NOW, 16_384)).isEmpty();
  }

  @Test
  void nullArgumentsAreJavaExceptionsNotCrashes() {
    assertThatThrownBy(() -> EcomNative.validateBatch(new byte[][] {null}, NOW, 16_384))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("records[0]");
    assertThatThrownBy(() -> EcomNative.lshBatch(new String[] {"a"}, new int[] {0, 2}, 32, 8))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("offsets");
    assertThatThrownBy(() -> EcomNative.lshBatch(new String[] {"a"}, new int[] {0, 1}, 30, 8))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("num_perm 30 must be > 0 and a multiple of num_bands 8");
  }

  @Test
  void lshBatchHasTheAskedShapeAndIsDeterministic() {
    for (int[] shape : new int[][] {{32, 8}, {128, 32}, {32, 8}}) {
      assertLshShape(shape[0], shape[1]);
    }
  }

  private static void assertLshShape(int numPerm, int numBands) {
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
    long[] out = EcomNative.lshBatch(tokens, offsets, numPerm, numBands);

    assertThat(out).hasSize(4 * stride);
    long[] first = Arrays.copyOfRange(out, 0, stride);
    long[] second = Arrays.copyOfRange(out, stride, 2 * stride);
    long[] third = Arrays.copyOfRange(out, 2 * stride, 3 * stride);
    assertThat(second).isEqualTo(first);
    assertThat(third).isNotEqualTo(first);
  }

  @Test
  void sessionFeaturesThroughJniEqualEcomCoresOnTheSameSessions() throws IOException {
    // features-golden.tsv: generated sessions with the features ecom-core computed after each
    // event (rust/ecom-gen/tests/features_golden.rs keeps it current). Same bits, or no parity.
    String[] schema = EcomNative.featureSchema();
    int f = schema.length - 1;
    List<String[]> rows = new ArrayList<>();
    try (InputStream in = getClass().getResourceAsStream("/features-golden.tsv")) {
      assertThat(in).as("features-golden.tsv on the test classpath").isNotNull();
      String text = new String(in.readAllBytes(), StandardCharsets.UTF_8);
      String header = text.lines().findFirst().orElseThrow();
      assertThat(header)
          .as("fixture made with this schema")
          .endsWith("schema " + schema[0] + " lsh " + LSH_PERM + "/" + LSH_BANDS);
      text.lines().skip(1).forEach(l -> rows.add(l.split("\t")));
    }
    assertThat(rows).hasSizeGreaterThan(100);
    Map<String, byte[]> states = new HashMap<>();
    int i = 0;
    int compared = 0;
    int signatures = 0;
    while (i < rows.size()) {
      // A batch holds each session at most once.
      List<String[]> batch = new ArrayList<>();
      Set<String> inBatch = new HashSet<>();
      while (i < rows.size() && inBatch.add(rows.get(i)[0])) {
        batch.add(rows.get(i++));
      }
      byte[][] st = new byte[batch.size()][];
      byte[][] ev = new byte[batch.size()][];
      for (int j = 0; j < batch.size(); j++) {
        st[j] = states.get(batch.get(j)[0]);
        ev[j] = HexFormat.of().parseHex(batch.get(j)[1]);
      }
      double[] out = new double[batch.size() * f];
      byte[][] next = EcomNative.sessionUpdateBatch(st, ev, null, out);
      // The session's LSH from the tokens in the state JNI returned, as the live job does it.
      List<String> tokens = new ArrayList<>();
      int[] offsets = new int[batch.size() + 1];
      for (int j = 0; j < batch.size(); j++) {
        tokens.addAll(SessionState.parseFrom(next[j]).getTokensList());
        offsets[j + 1] = tokens.size();
      }
      long[] lsh = EcomNative.lshBatch(tokens.toArray(new String[0]), offsets, LSH_PERM, LSH_BANDS);
      int stride = LSH_PERM + LSH_BANDS;
      for (int j = 0; j < batch.size(); j++) {
        String[] wantLsh = batch.get(j)[3].split(",");
        assertThat(wantLsh).hasSize(stride);
        for (int k = 0; k < stride; k++) {
          assertThat(lsh[j * stride + k])
              .as("session %s LSH value %d", batch.get(j)[0], k)
              .isEqualTo(Long.parseUnsignedLong(wantLsh[k], 16));
        }
        signatures++;
      }
      for (int j = 0; j < batch.size(); j++) {
        states.put(batch.get(j)[0], next[j]);
        String[] want = batch.get(j)[2].split(",");
        assertThat(want).hasSize(f);
        for (int k = 0; k < f; k++) {
          long bits = Long.parseUnsignedLong(want[k], 16);
          assertThat(Double.doubleToRawLongBits(out[j * f + k]))
              .as("session %s feature %s", batch.get(j)[0], schema[k + 1])
              .isEqualTo(bits);
          compared++;
        }
      }
    }
    assertThat(compared).isEqualTo(rows.size() * f);
    assertThat(signatures).isEqualTo(rows.size());
  }

  @Test
  void sessionUpdateRejectsBadInputWithAMessage() {
    assertThatThrownBy(
            () ->
                EcomNative.sessionUpdateBatch(
                    new byte[][] {null},
                    new byte[][] {{(byte) 0xff}},
                    null,
                    new double[EcomNative.featureSchema().length - 1]))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("events[0] is not an EnrichedEvent");
    assertThatThrownBy(
            () -> EcomNative.sessionUpdateBatch(new byte[1][], new byte[1][], null, new double[1]))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("out must have");
  }

  @Test
  void dpReleasesAWindowAndRefusesToOverspend() {
    double[] spent = new double[2];
    long[] noisy =
        EcomNative.dpReleaseWindow(
            new String[] {"views/sofas", "revenue/sofas"},
            60_000L,
            new long[] {1_000, 5_000_000},
            new long[] {0, 250_000},
            new double[] {0.5, 0.5},
            1.0,
            spent);
    assertThat(noisy).hasSize(2);
    assertThat(spent[0]).isCloseTo(0.5, org.assertj.core.data.Offset.offset(1e-9));
    assertThat(noisy[0]).isBetween(1_000L - 200, 1_000L + 200);
    assertThatThrownBy(
            () ->
                EcomNative.dpReleaseWindow(
                    new String[] {"views/sofas", "views/sofas", "views/sofas"},
                    60_000L,
                    new long[] {1, 2, 3},
                    new long[] {0, 0, 0},
                    new double[] {0.4, 0.4, 0.4},
                    1.0,
                    new double[3]))
        .isInstanceOf(IllegalStateException.class)
        .hasMessageContaining("budget exhausted")
        .hasMessageContaining("views/sofas");
  }
}
