// JMH: the per-event cost of ecom-core over JNI (one call per event, and batched), next to
// pure-Java code doing the same work, in one run. dev/bench-jni runs it.
package dev.ecom.flink.bench;

import dev.ecom.flink.nativelib.EcomNative;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.infra.Blackhole;

/**
 * Every benchmark handles {@link #EVENTS} events per invocation and reports the time per event. An
 * event is what the job does per record: the MinHash LSH signature and band buckets of its
 * session's tokens (about 12: products, categories, styles) and the DP release of one metric.
 *
 * <ul>
 *   <li>{@code *Single}: one JNI call per event, the naive way.
 *   <li>{@code *Batched}: one JNI call for all events, as the job does.
 *   <li>{@code *Java}: the same arithmetic in plain Java (FNV-1a token hashes, 32 multiply-add
 *       permutations, FNV band buckets; discrete Laplace as a difference of two geometric draws
 *       from {@link SplittableRandom}). The Java DP baseline is not private-grade: it uses a fast
 *       non-cryptographic generator and floating-point logarithms, where OpenDP samples exactly
 *       from a cryptographic generator. It shows what the noise would cost without OpenDP.
 * </ul>
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class NativeBench {
  /** Events per invocation (the job's default --batch-size). */
  public static final int EVENTS = 256;

  private static final long FNV_OFFSET = 0xcbf29ce484222325L;
  private static final long FNV_PRIME = 0x100000001b3L;

  @Param({"32"})
  public int numPerm;

  @Param({"8"})
  public int numBands;

  private String[][] sets;
  private String[] flatTokens;
  private int[] offsets;
  private String[] streams;
  private long[] values;
  private long[] uppers;
  private double[] epsilons;
  private long window;
  private long[] permA;
  private long[] permB;
  private SplittableRandom rng;
  private byte[][] featureStates;
  private byte[][] featureEvents;
  private double[] featuresOut;

  @Setup(Level.Trial)
  public void setUp() throws IOException {
    setUpFeatures();
    SplittableRandom r = new SplittableRandom(7);
    sets = new String[EVENTS][];
    List<String> flat = new ArrayList<>();
    offsets = new int[EVENTS + 1];
    for (int i = 0; i < EVENTS; i++) {
      int n = 8 + r.nextInt(9); // 8..16 tokens, like a session a few products in
      sets[i] = new String[n];
      for (int j = 0; j < n; j++) {
        int kind = r.nextInt(3);
        sets[i][j] =
            kind == 0
                ? "p:u" + (1_000_000 + r.nextInt(5_000))
                : kind == 1 ? "c:category-" + r.nextInt(12) : "s:style-" + r.nextInt(8);
        flat.add(sets[i][j]);
      }
      offsets[i + 1] = flat.size();
    }
    flatTokens = flat.toArray(new String[0]);
    streams = new String[EVENTS];
    values = new long[EVENTS];
    uppers = new long[EVENTS];
    epsilons = new double[EVENTS];
    for (int i = 0; i < EVENTS; i++) {
      streams[i] = "views/category-" + (i % 12) + "/" + i;
      values[i] = 1_000 + r.nextInt(1_000);
      epsilons[i] = 0.5;
    }
    permA = new long[numPerm];
    permB = new long[numPerm];
    for (int i = 0; i < numPerm; i++) {
      permA[i] = r.nextLong() | 1L;
      permB[i] = r.nextLong();
    }
    rng = new SplittableRandom(11);
  }

  /**
   * The first {@link #EVENTS} events of the parity fixture, each with its session's state before
   * it: every row is one real incremental feature update.
   */
  private void setUpFeatures() throws IOException {
    List<String[]> rows = new ArrayList<>();
    try (InputStream in = NativeBench.class.getResourceAsStream("/features-golden.tsv")) {
      if (in == null) {
        throw new IOException("features-golden.tsv is not on the test classpath");
      }
      new String(in.readAllBytes(), StandardCharsets.UTF_8)
          .lines()
          .skip(1)
          .limit(EVENTS)
          .forEach(l -> rows.add(l.split("\t")));
    }
    int f = EcomNative.featureSchema().length - 1;
    Map<String, byte[]> states = new HashMap<>();
    featureStates = new byte[EVENTS][];
    featureEvents = new byte[EVENTS][];
    featuresOut = new double[EVENTS * f];
    for (int i = 0; i < EVENTS; i++) {
      featureStates[i] = states.get(rows.get(i)[0]);
      featureEvents[i] = HexFormat.of().parseHex(rows.get(i)[1]);
      byte[][] next =
          EcomNative.sessionUpdateBatch(
              new byte[][] {featureStates[i]},
              new byte[][] {featureEvents[i]},
              null,
              new double[f]);
      states.put(rows.get(i)[0], next[0]);
    }
  }

  // ---- session features ------------------------------------------------------------------

  @Benchmark
  @OperationsPerInvocation(EVENTS)
  public byte[][] featuresBatched() {
    return EcomNative.sessionUpdateBatch(featureStates, featureEvents, null, featuresOut);
  }

  // ---- LSH -------------------------------------------------------------------------------

  @Benchmark
  @OperationsPerInvocation(EVENTS)
  public void lshSingle(Blackhole bh) {
    for (String[] set : sets) {
      bh.consume(EcomNative.lshBatch(set, new int[] {0, set.length}, numPerm, numBands));
    }
  }

  @Benchmark
  @OperationsPerInvocation(EVENTS)
  public long[] lshBatched() {
    return EcomNative.lshBatch(flatTokens, offsets, numPerm, numBands);
  }

  @Benchmark
  @OperationsPerInvocation(EVENTS)
  public long[] lshJava() {
    int stride = numPerm + numBands;
    long[] out = new long[EVENTS * stride];
    long[] hashes = new long[32];
    for (int i = 0; i < EVENTS; i++) {
      String[] set = sets[i];
      if (hashes.length < set.length) {
        hashes = new long[set.length];
      }
      for (int t = 0; t < set.length; t++) {
        hashes[t] = fnv(set[t]);
      }
      int base = i * stride;
      for (int p = 0; p < numPerm; p++) {
        long min = -1L; // unsigned max
        for (int t = 0; t < set.length; t++) {
          long v = permA[p] * hashes[t] + permB[p];
          if (Long.compareUnsigned(v, min) < 0) {
            min = v;
          }
        }
        out[base + p] = min;
      }
      int rows = numPerm / numBands;
      for (int b = 0; b < numBands; b++) {
        long h = FNV_OFFSET;
        h = (h ^ b) * FNV_PRIME;
        for (int k = 0; k < rows; k++) {
          h = (h ^ out[base + b * rows + k]) * FNV_PRIME;
        }
        out[base + numPerm + b] = h;
      }
    }
    return out;
  }

  private static long fnv(String s) {
    long h = FNV_OFFSET;
    for (byte c : s.getBytes(StandardCharsets.UTF_8)) {
      h = (h ^ (c & 0xff)) * FNV_PRIME;
    }
    return h;
  }

  // ---- DP --------------------------------------------------------------------------------

  @Benchmark
  @OperationsPerInvocation(EVENTS)
  public void dpSingle(Blackhole bh) {
    double[] spent = new double[1];
    for (int i = 0; i < EVENTS; i++) {
      bh.consume(
          EcomNative.dpReleaseWindow(
              new String[] {streams[i]},
              window++,
              new long[] {values[i]},
              new long[] {0},
              new double[] {epsilons[i]},
              1.0,
              spent));
    }
  }

  @Benchmark
  @OperationsPerInvocation(EVENTS)
  public long[] dpBatched() {
    return EcomNative.dpReleaseWindow(
        streams, window++, values, uppers, epsilons, 1.0, new double[EVENTS]);
  }

  @Benchmark
  @OperationsPerInvocation(EVENTS)
  public long[] dpJava() {
    long[] out = new long[EVENTS];
    for (int i = 0; i < EVENTS; i++) {
      // Discrete Laplace(1/ε) = difference of two geometric draws with p = 1 - e^-ε.
      double logQ = -epsilons[i];
      out[i] = values[i] + geometric(logQ) - geometric(logQ);
    }
    return out;
  }

  private long geometric(double logQ) {
    return (long) Math.floor(Math.log(1.0 - rng.nextDouble()) / logQ);
  }

  // ---- both, as the job needs them per event ----------------------------------------------

  @Benchmark
  @OperationsPerInvocation(EVENTS)
  public void lshAndDpBatched(Blackhole bh) {
    bh.consume(lshBatched());
    bh.consume(dpBatched());
  }

  @Benchmark
  @OperationsPerInvocation(EVENTS)
  public void lshAndDpJava(Blackhole bh) {
    bh.consume(lshJava());
    bh.consume(dpJava());
  }
}
