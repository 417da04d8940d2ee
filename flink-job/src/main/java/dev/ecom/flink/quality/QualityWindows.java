// The live quality of each model version: closed sessions in, one ModelQuality per window out.
package dev.ecom.flink.quality;

import dev.ecom.flink.metrics.EventTimeTumbling;
import dev.ecom.flink.serde.ProtoTypeInfo;
import dev.ecom.proto.v1.CalibrationBin;
import dev.ecom.proto.v1.ModelQuality;
import dev.ecom.proto.v1.Session;
import java.time.Duration;
import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.common.functions.FlatMapFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.functions.windowing.ProcessWindowFunction;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;
import org.apache.flink.util.Collector;

/**
 * Decisions ({@link #decisions}: each session's serving score, and the shadow version's) → keyed by
 * model version (its shadow scores apart) → tumbling windows by close time (last event + the
 * session gap) → {@link QualityCounts} → one {@link ModelQuality} per window and version: ROC AUC,
 * PR AUC, log loss, Brier, ten calibration bins, the base rate, and the buyers a calibrated model
 * expects with their binomial variance (the calibration z).
 *
 * <p>The ranking measures are computed on the scores' bins of 1/{@link QualityCounts#SCORE_BINS}
 * with ties counting half: exactly ecom-core's {@code roc_auc} and {@code pr_auc} of the binned
 * scores, which is how the demo checks them. A window's state is a fixed ~16 KB whatever its
 * sessions.
 */
public final class QualityWindows {
  /** Stable operator id: changing it drops the open windows on restore. */
  public static final String UID_WINDOW = "quality-window";

  private QualityWindows() {}

  /**
   * Each session's decisions: the serving model's score at its decision point, and the shadow
   * version's score of the same event beside it (sessions without a score are left out).
   *
   * @param sessionGapMs the gap that closed each session, so its close is end_ms + gap
   */
  public static SingleOutputStreamOperator<Decision> decisions(
      DataStream<Session> sessions, long sessionGapMs) {
    return sessions
        .flatMap(new Decisions(sessionGapMs), TypeInformation.of(Decision.class))
        .uid(UID_WINDOW + "-served")
        .name("quality-decisions");
  }

  /** The quality records of {@code decisions}, which must carry watermarks. */
  public static SingleOutputStreamOperator<ModelQuality> build(
      DataStream<Decision> decisions, long windowMs) {
    return decisions
        .keyBy(Decision::key, Types.STRING)
        .window(new EventTimeTumbling<>(windowMs, new CloseTime()))
        .allowedLateness(Duration.ZERO)
        .aggregate(
            new AddDecision(),
            new Emit(),
            TypeInformation.of(QualityCounts.class),
            TypeInformation.of(QualityCounts.class),
            ProtoTypeInfo.forClass(ModelQuality.class))
        .uid(UID_WINDOW)
        .name("quality-window");
  }

  /** A decision's session close. */
  record CloseTime() implements EventTimeTumbling.TimeOf<Decision> {
    @Override
    public long timeMs(Decision d) {
      return d.closeMs;
    }
  }

  /** A scored session as a decision of the serving model and, if it has one, of the shadow. */
  record Decisions(long sessionGapMs) implements FlatMapFunction<Session, Decision> {
    @Override
    public void flatMap(Session s, Collector<Decision> out) {
      long closeMs = s.getEndMs() + sessionGapMs;
      if (s.hasPurchaseProbability()) {
        out.collect(
            new Decision(
                s.getModelVersion(), false, s.getPurchaseProbability(), s.getPurchased(), closeMs));
      }
      if (s.hasShadowProbability()) {
        out.collect(
            new Decision(
                s.getShadowModelVersion(),
                true,
                s.getShadowProbability(),
                s.getPurchased(),
                closeMs));
      }
    }
  }

  static final class AddDecision
      implements AggregateFunction<Decision, QualityCounts, QualityCounts> {
    private static final long serialVersionUID = 1L;

    @Override
    public QualityCounts createAccumulator() {
      return new QualityCounts();
    }

    @Override
    public QualityCounts add(Decision d, QualityCounts acc) {
      return acc.add(d.probability, d.purchased);
    }

    @Override
    public QualityCounts getResult(QualityCounts acc) {
      return acc;
    }

    @Override
    public QualityCounts merge(QualityCounts a, QualityCounts b) {
      return a.merge(b);
    }
  }

  static final class Emit
      extends ProcessWindowFunction<QualityCounts, ModelQuality, String, TimeWindow> {
    private static final long serialVersionUID = 1L;

    @Override
    public void process(
        String version, Context ctx, Iterable<QualityCounts> counts, Collector<ModelQuality> out) {
      TimeWindow w = ctx.window();
      out.collect(
          measure(
              version,
              w.getStart(),
              w.getEnd(),
              counts.iterator().next(),
              ctx.currentProcessingTime()));
    }
  }

  /** The record of one window's counts; {@code key} is a {@link Decision#key}. */
  static ModelQuality measure(String key, long startMs, long endMs, QualityCounts c, long nowMs) {
    boolean shadow = key.endsWith(Decision.SHADOW_SUFFIX);
    String version =
        shadow ? key.substring(0, key.length() - Decision.SHADOW_SUFFIX.length()) : key;
    long pos = 0;
    long neg = 0;
    for (int i = 0; i < QualityCounts.SCORE_BINS; i++) {
      pos += c.positives[i];
      neg += c.negatives[i];
    }
    long n = pos + neg;
    ModelQuality.Builder q =
        ModelQuality.newBuilder()
            .setId(startMs + "/" + key)
            .setShadow(shadow)
            .setWindowStartMs(startMs)
            .setWindowEndMs(endMs)
            .setModelVersion(version)
            .setSessions(n)
            .setPurchases(pos)
            .setBaseRate(n == 0 ? 0 : (double) pos / n)
            .setLogLoss(n == 0 ? 0 : c.logLossSum / n)
            .setBrier(n == 0 ? 0 : c.brierSum / n)
            .setEmittedAtMs(nowMs);
    if (pos > 0 && neg > 0) {
      // Mann-Whitney U over the bins: each buyer beats the non-buyers of lower bins and ties
      // half of its own bin's.
      double wins = 0;
      long negBelow = 0;
      for (int i = 0; i < QualityCounts.SCORE_BINS; i++) {
        wins += c.positives[i] * (negBelow + c.negatives[i] / 2.0);
        negBelow += c.negatives[i];
      }
      q.setRocAuc(wins / ((double) pos * neg));
    }
    if (pos > 0) {
      // Average precision, highest bin first, a bin's sessions taken together.
      double ap = 0;
      long tp = 0;
      long seen = 0;
      for (int i = QualityCounts.SCORE_BINS - 1; i >= 0; i--) {
        tp += c.positives[i];
        seen += c.positives[i] + c.negatives[i];
        if (c.positives[i] > 0) {
          ap += ((double) c.positives[i] / pos) * ((double) tp / seen);
        }
      }
      q.setPrAuc(ap);
    }
    double expected = 0;
    for (double sum : c.predictedSum) {
      expected += sum;
    }
    q.setExpectedPurchases(expected).setPurchaseVariance(c.varianceSum);
    if (c.varianceSum > 0) {
      q.setCalibrationZ((pos - expected) / Math.sqrt(c.varianceSum));
    }
    int per = QualityCounts.SCORE_BINS / QualityCounts.CALIBRATION_BINS;
    for (int b = 0; b < QualityCounts.CALIBRATION_BINS; b++) {
      long sessions = 0;
      long bought = 0;
      for (int i = b * per; i < (b + 1) * per; i++) {
        sessions += c.positives[i] + c.negatives[i];
        bought += c.positives[i];
      }
      if (sessions > 0) {
        q.addCalibration(
            CalibrationBin.newBuilder()
                .setLower((double) b / QualityCounts.CALIBRATION_BINS)
                .setUpper((double) (b + 1) / QualityCounts.CALIBRATION_BINS)
                .setSessions(sessions)
                .setPurchases(bought)
                .setMeanPredicted(c.predictedSum[b] / sessions));
      }
    }
    return q.build();
  }
}
