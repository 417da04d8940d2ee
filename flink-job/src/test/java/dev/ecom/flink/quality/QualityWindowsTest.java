package dev.ecom.flink.quality;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.ecom.proto.v1.CalibrationBin;
import dev.ecom.proto.v1.ModelQuality;
import org.junit.jupiter.api.Test;

class QualityWindowsTest {
  private static ModelQuality of(double[] p, boolean[] y) {
    QualityCounts c = new QualityCounts();
    for (int i = 0; i < p.length; i++) {
      c.add(p[i], y[i]);
    }
    return QualityWindows.measure("v1", 0, 600_000, c, 1);
  }

  @Test
  void measuresAsEcomCoreDoesOnDistinctScores() {
    // The same case as ecom-core's metrics tests: AUC 0.75, average precision 0.8333.
    ModelQuality q =
        of(new double[] {0.1, 0.4, 0.35, 0.8}, new boolean[] {false, false, true, true});
    assertThat(q.getId()).isEqualTo("0/v1");
    assertThat(q.getShadow()).isFalse();
    assertThat(q.getSessions()).isEqualTo(4);
    assertThat(q.getPurchases()).isEqualTo(2);
    assertThat(q.getBaseRate()).isEqualTo(0.5);
    assertThat(q.getRocAuc()).isCloseTo(0.75, within(1e-12));
    assertThat(q.getPrAuc()).isCloseTo(0.8333333333, within(1e-9));
    double logLoss = -(Math.log(0.9) + Math.log(0.6) + Math.log(0.35) + Math.log(0.8)) / 4;
    assertThat(q.getLogLoss()).isCloseTo(logLoss, within(1e-12));
    double brier = (0.01 + 0.16 + 0.4225 + 0.04) / 4;
    assertThat(q.getBrier()).isCloseTo(brier, within(1e-12));
    // Calibration: 1.65 buyers expected, variance 0.09 + 0.24 + 0.2275 + 0.16, 2 bought.
    assertThat(q.getExpectedPurchases()).isCloseTo(1.65, within(1e-12));
    assertThat(q.getPurchaseVariance()).isCloseTo(0.7175, within(1e-12));
    assertThat(q.getCalibrationZ()).isCloseTo(0.35 / Math.sqrt(0.7175), within(1e-12));
  }

  @Test
  void scoresInOneBinTieAndCalibrationBinsSayWhatTheyHold() {
    // 0.5004 and 0.5008 share a bin: the buyer beats 0.05 and ties the other, AUC 0.75.
    ModelQuality q = of(new double[] {0.5004, 0.5008, 0.05}, new boolean[] {true, false, false});
    assertThat(q.getRocAuc()).isCloseTo(0.75, within(1e-12));
    assertThat(q.getCalibrationList())
        .extracting(
            CalibrationBin::getLower, CalibrationBin::getSessions, CalibrationBin::getPurchases)
        .containsExactly(
            org.assertj.core.groups.Tuple.tuple(0.0, 1L, 0L),
            org.assertj.core.groups.Tuple.tuple(0.5, 2L, 1L));
    assertThat(q.getCalibration(1).getMeanPredicted()).isCloseTo(0.5006, within(1e-12));
  }

  @Test
  void aWindowWithoutBuyersHasNoRankingMeasures() {
    ModelQuality q = of(new double[] {0.2, 1.0}, new boolean[] {false, false});
    assertThat(q.hasRocAuc()).isFalse();
    assertThat(q.hasPrAuc()).isFalse();
    assertThat(q.getBaseRate()).isZero();
    // p = 1 has no variance, p = 0.2 has 0.16: z = (0 − 1.2) / 0.4.
    assertThat(q.getCalibrationZ()).isCloseTo(-3.0, within(1e-12));
    assertThat(q.getCalibrationList())
        .extracting(CalibrationBin::getUpper)
        .containsExactly(0.3, 1.0);
  }

  @Test
  void aShadowVersionsWindowSaysSoInItsIdAndFlag() {
    ModelQuality q =
        QualityWindows.measure("v2/shadow", 0, 1, new QualityCounts().add(0.5, true), 0);
    assertThat(q.getId()).isEqualTo("0/v2/shadow");
    assertThat(q.getModelVersion()).isEqualTo("v2");
    assertThat(q.getShadow()).isTrue();
  }

  @Test
  void mergedCountsEqualOneAccumulator() {
    QualityCounts a = new QualityCounts().add(0.3, true).add(0.7, false);
    QualityCounts b = new QualityCounts().add(0.9, true);
    QualityCounts all = new QualityCounts().add(0.3, true).add(0.7, false).add(0.9, true);
    assertThat(QualityWindows.measure("v", 0, 1, a.merge(b), 0))
        .isEqualTo(QualityWindows.measure("v", 0, 1, all, 0));
  }
}
