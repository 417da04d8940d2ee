//! Evaluation metrics shared by the generator's oracle report and training.

/// ROC AUC of `scores` against binary `labels` (Mann-Whitney U with average ranks for ties).
/// None when either class is missing or the inputs differ in length.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    if scores.len() != labels.len() {
        return None;
    }
    let pos = labels.iter().filter(|l| **l).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        // Ranks i+1..=j+1 share their average.
        let avg = (i + j + 2) as f64 / 2.0;
        rank_sum_pos += avg * idx[i..=j].iter().filter(|&&k| labels[k]).count() as f64;
        i = j + 1;
    }
    let u = rank_sum_pos - (pos * (pos + 1)) as f64 / 2.0;
    Some(u / (pos as f64 * neg as f64))
}

/// Average precision (area under the precision-recall curve, step-wise as scikit-learn's
/// `average_precision_score`): the mean of the precision at each positive, ties taken together.
pub fn pr_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    if scores.len() != labels.len() {
        return None;
    }
    let pos = labels.iter().filter(|l| **l).count();
    if pos == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut seen, mut ap, mut i) = (0usize, 0usize, 0.0, 0);
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let new_tp = idx[i..=j].iter().filter(|&&k| labels[k]).count();
        tp += new_tp;
        seen += j - i + 1;
        ap += (new_tp as f64 / pos as f64) * (tp as f64 / seen as f64);
        i = j + 1;
    }
    Some(ap)
}

/// Mean binary cross-entropy, probabilities clipped to [1e-15, 1 - 1e-15].
pub fn log_loss(probs: &[f64], labels: &[bool]) -> Option<f64> {
    if probs.is_empty() || probs.len() != labels.len() {
        return None;
    }
    let sum: f64 = probs
        .iter()
        .zip(labels)
        .map(|(p, y)| {
            let p = p.clamp(1e-15, 1.0 - 1e-15);
            if *y {
                -p.ln()
            } else {
                -(1.0 - p).ln()
            }
        })
        .sum();
    Some(sum / probs.len() as f64)
}

/// Mean squared error of the probabilities against the 0/1 outcomes.
pub fn brier(probs: &[f64], labels: &[bool]) -> Option<f64> {
    if probs.is_empty() || probs.len() != labels.len() {
        return None;
    }
    let sum: f64 = probs.iter().zip(labels).map(|(p, y)| (p - f64::from(u8::from(*y))).powi(2)).sum();
    Some(sum / probs.len() as f64)
}

/// One reliability bin: predictions in [lo, hi), how many, their mean and the observed rate.
#[derive(Debug, Clone, PartialEq)]
pub struct ReliabilityBin {
    /// Lower edge of the bin.
    pub lo: f64,
    /// Upper edge of the bin.
    pub hi: f64,
    /// Rows in the bin.
    pub count: usize,
    /// Mean predicted probability in the bin.
    pub mean_predicted: f64,
    /// Share of positives in the bin.
    pub observed_rate: f64,
}

/// Calibration in `bins` equal-width bins over [0, 1]; empty bins are left out.
pub fn reliability(probs: &[f64], labels: &[bool], bins: usize) -> Vec<ReliabilityBin> {
    let bins = bins.max(1);
    let mut acc = vec![(0usize, 0.0f64, 0usize); bins];
    for (p, y) in probs.iter().zip(labels) {
        let b = ((p.clamp(0.0, 1.0) * bins as f64) as usize).min(bins - 1);
        acc[b].0 += 1;
        acc[b].1 += p;
        acc[b].2 += usize::from(*y);
    }
    acc.iter()
        .enumerate()
        .filter(|(_, (n, _, _))| *n > 0)
        .map(|(b, (n, sum, pos))| ReliabilityBin {
            lo: b as f64 / bins as f64,
            hi: (b + 1) as f64 / bins as f64,
            count: *n,
            mean_predicted: sum / *n as f64,
            observed_rate: *pos as f64 / *n as f64,
        })
        .collect()
}

/// Points of the ROC curve (false positive rate, true positive rate), from (0,0) to (1,1).
pub fn roc_curve(scores: &[f64], labels: &[bool]) -> Vec<(f64, f64)> {
    curve(
        scores,
        labels,
        |tp, fp, pos, neg, _| (fp as f64 / neg.max(1) as f64, tp as f64 / pos.max(1) as f64),
        (0.0, 0.0),
    )
}

/// Points of the precision-recall curve (recall, precision), from recall 0.
pub fn pr_curve(scores: &[f64], labels: &[bool]) -> Vec<(f64, f64)> {
    curve(
        scores,
        labels,
        |tp, _, pos, _, seen| (tp as f64 / pos.max(1) as f64, tp as f64 / seen.max(1) as f64),
        (0.0, 1.0),
    )
}

/// Walks the thresholds from the highest score down, one point per distinct score.
fn curve(
    scores: &[f64],
    labels: &[bool],
    point: impl Fn(usize, usize, usize, usize, usize) -> (f64, f64),
    start: (f64, f64),
) -> Vec<(f64, f64)> {
    let pos = labels.iter().filter(|l| **l).count();
    let neg = labels.len() - pos;
    let mut idx: Vec<usize> = (0..scores.len().min(labels.len())).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp, mut out, mut i) = (0, 0, vec![start], 0);
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        for &k in &idx[i..=j] {
            if labels[k] {
                tp += 1;
            } else {
                fp += 1;
            }
        }
        out.push(point(tp, fp, pos, neg, tp + fp));
        i = j + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_known_values() {
        assert_eq!(roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]), Some(0.75));
        assert_eq!(roc_auc(&[1.0, 2.0], &[false, true]), Some(1.0));
        assert_eq!(roc_auc(&[0.5, 0.5], &[false, true]), Some(0.5));
        assert_eq!(roc_auc(&[0.5], &[true]), None);
    }

    #[test]
    fn probability_metrics_known_values() {
        // scikit-learn: average_precision_score([0,0,1,1], [0.1,0.4,0.35,0.8]) = 0.8333...
        let ap = pr_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
        assert!((ap - 0.833_333_333).abs() < 1e-6, "{ap}");
        let ll = log_loss(&[0.9, 0.2], &[true, false]).unwrap();
        assert!((ll - (-(0.9f64.ln()) - 0.8f64.ln()) / 2.0).abs() < 1e-12);
        assert!((brier(&[0.9, 0.2], &[true, false]).unwrap() - (0.01 + 0.04) / 2.0).abs() < 1e-12);
        let bins = reliability(&[0.05, 0.07, 0.95], &[false, true, true], 10);
        assert_eq!(bins.len(), 2);
        assert_eq!((bins[0].count, bins[0].observed_rate), (2, 0.5));
        let roc = roc_curve(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]);
        assert_eq!(roc.first(), Some(&(0.0, 0.0)));
        assert_eq!(roc.last(), Some(&(1.0, 1.0)));
    }
}
