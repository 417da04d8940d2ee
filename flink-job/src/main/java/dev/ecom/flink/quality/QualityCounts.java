// What one model version's window of closed sessions adds up to: the window's accumulator state.
package dev.ecom.flink.quality;

/**
 * A Flink POJO (public no-arg constructor, public fields), so its state gets Flink's POJO
 * serializer and never Kryo. Fixed size whatever the window holds: scores are kept as counts per
 * bin of {@link #SCORE_BINS}, which is all the ranking measures need; log loss and Brier are exact
 * sums.
 */
public final class QualityCounts {
  /** Score bins: a score p falls in bin min(floor(p × 1000), 999). */
  public static final int SCORE_BINS = 1000;

  /** Calibration bins of equal width over [0, 1]. */
  public static final int CALIBRATION_BINS = 10;

  /** Sessions per score bin that did not buy. */
  public long[] negatives = new long[SCORE_BINS];

  /** Sessions per score bin that bought. */
  public long[] positives = new long[SCORE_BINS];

  /** Sum of the predicted probabilities per calibration bin. */
  public double[] predictedSum = new double[CALIBRATION_BINS];

  /** Sum of the sessions' log losses (probabilities clamped to [1e-15, 1 - 1e-15]). */
  public double logLossSum;

  /** Sum of the sessions' squared errors. */
  public double brierSum;

  /** Sum of p (1 − p): the binomial variance of the buyers a calibrated model expects. */
  public double varianceSum;

  public QualityCounts() {}

  static int scoreBin(double p) {
    return Math.min(SCORE_BINS - 1, (int) (clamp01(p) * SCORE_BINS));
  }

  static int calibrationBin(double p) {
    return Math.min(CALIBRATION_BINS - 1, (int) (clamp01(p) * CALIBRATION_BINS));
  }

  private static double clamp01(double p) {
    return Double.isNaN(p) ? 0 : Math.max(0, Math.min(1, p));
  }

  /** Counts one session: its probability at the decision point and whether it bought. */
  public QualityCounts add(double p, boolean bought) {
    (bought ? positives : negatives)[scoreBin(p)]++;
    predictedSum[calibrationBin(p)] += p;
    double q = Math.max(1e-15, Math.min(1 - 1e-15, p));
    logLossSum += bought ? -Math.log(q) : -Math.log(1 - q);
    double err = p - (bought ? 1 : 0);
    brierSum += err * err;
    varianceSum += p * (1 - p);
    return this;
  }

  /** {@code other} added into this. */
  public QualityCounts merge(QualityCounts other) {
    for (int i = 0; i < SCORE_BINS; i++) {
      negatives[i] += other.negatives[i];
      positives[i] += other.positives[i];
    }
    for (int i = 0; i < CALIBRATION_BINS; i++) {
      predictedSum[i] += other.predictedSum[i];
    }
    logLossSum += other.logLossSum;
    brierSum += other.brierSum;
    varianceSum += other.varianceSum;
    return this;
  }
}
