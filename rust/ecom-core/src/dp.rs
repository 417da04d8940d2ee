//! Differential privacy for the live metrics, on OpenDP: the discrete Laplace mechanism for
//! counts and bounded sums (integers, so no floating-point attack surface), with the
//! sensitivity derived from declared bounds, and an accountant that tracks the ε spent per
//! metric stream and window and refuses to go over the budget.
//!
//! Privacy unit: one event. A count changes by at most 1 when one event is added or removed;
//! a sum of per-event values each clamped to `[0, upper]` changes by at most `upper`. Windows
//! are tumbling and each event falls in exactly one, so windows compose in parallel and the
//! budget holds per (stream, window); releases of one stream in one window compose
//! sequentially (their ε add up).
//!
//! Randomness: OpenDP is built without its `use-openssl` feature, so its samplers draw bits
//! from `rand`'s thread-local ChaCha generator seeded by the OS, not from OpenSSL (which would
//! add a C build of OpenSSL to every cold build). The mechanisms and their privacy maps are
//! OpenDP's own.
use opendp::core::Measurement;
use opendp::domains::AtomDomain;
use opendp::measurements::make_laplace;
use opendp::measures::MaxDivergence;
use opendp::metrics::AbsoluteDistance;
use std::collections::BTreeMap;

/// What a released number is, which fixes its sensitivity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    /// How many events: sensitivity 1.
    Count,
    /// A sum of per-event values, each clamped to `[0, upper]` before summing: sensitivity
    /// `upper`.
    BoundedSum {
        /// Largest value one event may contribute.
        upper: i64,
    },
}

impl Quantity {
    /// How much one event can change the true value.
    pub fn sensitivity(self) -> i64 {
        match self {
            Quantity::Count => 1,
            Quantity::BoundedSum { upper } => upper,
        }
    }
}

/// Errors of the privacy layer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DpError {
    /// ε must be a finite number > 0; bounds must be > 0.
    #[error("invalid privacy parameters: {0}")]
    Invalid(String),
    /// The release would take a stream's window over its budget; nothing was released.
    #[error(
        "privacy budget exhausted for stream {stream} window {window_start_ms}: spent {spent}, asked {asked}, budget {budget}"
    )]
    BudgetExceeded {
        /// Metric stream.
        stream: String,
        /// Window start, ms since epoch.
        window_start_ms: i64,
        /// ε already spent there.
        spent: f64,
        /// ε this release needs.
        asked: f64,
        /// The budget per window.
        budget: f64,
    },
    /// OpenDP refused or failed.
    #[error("OpenDP: {0}")]
    OpenDp(String),
}

fn opendp(e: impl std::fmt::Debug) -> DpError {
    DpError::OpenDp(format!("{e:?}"))
}

/// A discrete Laplace mechanism for one kind of quantity at one ε.
pub struct Laplace {
    quantity: Quantity,
    scale: f64,
    epsilon: f64,
    meas: Measurement<AtomDomain<i64>, AbsoluteDistance<i64>, MaxDivergence, i64>,
}

impl std::fmt::Debug for Laplace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Laplace")
            .field("quantity", &self.quantity)
            .field("scale", &self.scale)
            .field("epsilon", &self.epsilon)
            .finish()
    }
}

impl Laplace {
    /// The mechanism with scale = sensitivity / ε. Its ε is what OpenDP's privacy map gives for
    /// the sensitivity (at most the asked ε, up to OpenDP's conservative rounding).
    pub fn new(quantity: Quantity, epsilon: f64) -> Result<Self, DpError> {
        if !(epsilon.is_finite() && epsilon > 0.0) {
            return Err(DpError::Invalid(format!("epsilon {epsilon} must be finite and > 0")));
        }
        let sensitivity = quantity.sensitivity();
        if sensitivity <= 0 {
            return Err(DpError::Invalid(format!("the upper bound of a sum must be > 0, got {sensitivity}")));
        }
        let scale = sensitivity as f64 / epsilon;
        let meas =
            make_laplace::<_, _, MaxDivergence>(AtomDomain::<i64>::default(), AbsoluteDistance::default(), scale, None)
                .map_err(opendp)?;
        let spent = meas.map(&sensitivity).map_err(opendp)?;
        Ok(Self { quantity, scale, epsilon: spent, meas })
    }

    /// ε one release spends, from OpenDP's privacy map.
    pub fn epsilon(&self) -> f64 {
        self.epsilon
    }

    /// The true value plus discrete Laplace noise.
    pub fn release(&self, value: i64) -> Result<i64, DpError> {
        self.meas.invoke(&value).map_err(opendp)
    }
}

/// Tracks ε per (metric stream, window) and refuses releases over the budget.
#[derive(Debug, Clone)]
pub struct Accountant {
    budget: f64,
    spent: BTreeMap<(String, i64), f64>,
}

impl Accountant {
    /// An accountant allowing `budget_per_window` ε per stream and window.
    pub fn new(budget_per_window: f64) -> Result<Self, DpError> {
        if !(budget_per_window.is_finite() && budget_per_window > 0.0) {
            return Err(DpError::Invalid(format!("budget {budget_per_window} must be finite and > 0")));
        }
        Ok(Self { budget: budget_per_window, spent: BTreeMap::new() })
    }

    /// ε spent so far on a stream's window.
    pub fn spent(&self, stream: &str, window_start_ms: i64) -> f64 {
        self.spent.get(&(stream.to_string(), window_start_ms)).copied().unwrap_or(0.0)
    }

    /// Records `epsilon` against the stream's window, or refuses (recording nothing) when it
    /// would go over the budget. Returns the ε spent there after the charge.
    pub fn charge(&mut self, stream: &str, window_start_ms: i64, epsilon: f64) -> Result<f64, DpError> {
        let spent = self.spent(stream, window_start_ms);
        // Tolerate float rounding in sums of ε, never more.
        if spent + epsilon > self.budget * (1.0 + 1e-9) {
            return Err(DpError::BudgetExceeded {
                stream: stream.to_string(),
                window_start_ms,
                spent,
                asked: epsilon,
                budget: self.budget,
            });
        }
        self.spent.insert((stream.to_string(), window_start_ms), spent + epsilon);
        Ok(spent + epsilon)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// E|X| of the discrete Laplace distribution with scale b: 2t / (1 - t²), t = e^(-1/b).
    fn discrete_laplace_mean_abs(scale: f64) -> f64 {
        let t = (-1.0 / scale).exp();
        2.0 * t / (1.0 - t * t)
    }

    #[test]
    fn epsilon_comes_from_the_privacy_map_and_matches_the_ask() {
        for eps in [0.1, 0.5, 1.0, 2.0] {
            for q in [Quantity::Count, Quantity::BoundedSum { upper: 250_000 }] {
                let m = Laplace::new(q, eps).unwrap();
                assert!((m.epsilon() - eps).abs() <= eps * 1e-9, "{q:?} at {eps}: map says {}", m.epsilon());
                assert_eq!(m.scale, q.sensitivity() as f64 / eps);
            }
        }
    }

    #[test]
    fn measured_error_matches_the_theoretical_scale() {
        // 20,000 draws per setting: the mean absolute error's standard error is under 1 % of b.
        let n = 20_000;
        for eps in [0.1, 0.5, 1.0, 2.0] {
            for q in [Quantity::Count, Quantity::BoundedSum { upper: 1_000 }] {
                let m = Laplace::new(q, eps).unwrap();
                let truth = 1_000_000;
                let errs: Vec<f64> = (0..n).map(|_| (m.release(truth).unwrap() - truth) as f64).collect();
                let mean = errs.iter().sum::<f64>() / n as f64;
                let mae = errs.iter().map(|e| e.abs()).sum::<f64>() / n as f64;
                let want = discrete_laplace_mean_abs(m.scale);
                assert!((mae / want - 1.0).abs() < 0.05, "{q:?} eps {eps}: mean |error| {mae} vs theory {want}");
                assert!(mean.abs() < 0.05 * want + 0.05, "{q:?} eps {eps}: biased, mean error {mean}");
            }
        }
    }

    #[test]
    fn the_accountant_refuses_past_the_budget_per_stream_and_window() {
        let mut a = Accountant::new(1.0).unwrap();
        let m = Laplace::new(Quantity::Count, 0.4).unwrap();
        assert!(a.charge("views/sofas", 0, m.epsilon()).is_ok());
        assert!(a.charge("views/sofas", 0, m.epsilon()).is_ok());
        let err = a.charge("views/sofas", 0, m.epsilon()).unwrap_err();
        assert!(matches!(err, DpError::BudgetExceeded { .. }), "{err}");
        assert!(err.to_string().contains("views/sofas"), "{err}");
        assert!((a.spent("views/sofas", 0) - 0.8).abs() < 1e-12, "a refused release spends nothing");
        // Other windows and streams have their own budget.
        assert!(a.charge("views/sofas", 60_000, m.epsilon()).is_ok());
        assert!(a.charge("views/beds", 0, m.epsilon()).is_ok());
    }

    #[test]
    fn bad_parameters_are_refused_with_a_reason() {
        assert!(Laplace::new(Quantity::Count, 0.0).unwrap_err().to_string().contains("epsilon"));
        assert!(Laplace::new(Quantity::Count, f64::NAN).is_err());
        assert!(Laplace::new(Quantity::BoundedSum { upper: 0 }, 1.0).unwrap_err().to_string().contains("upper"));
        assert!(Accountant::new(-1.0).is_err());
    }

    proptest::proptest! {
        /// Whatever the order of charges, no (stream, window) ever holds more than the budget,
        /// and a refused charge changes nothing.
        #[test]
        fn the_accountant_never_overspends(
            charges in proptest::collection::vec((0usize..3, 0i64..3, 0.01f64..0.7), 1..60),
            budget in 0.1f64..2.0,
        ) {
            let mut acc = Accountant::new(budget).unwrap();
            for (stream, window, eps) in charges {
                let name = ["views", "carts", "revenue"][stream];
                let before = acc.spent(name, window);
                match acc.charge(name, window, eps) {
                    Ok(after) => proptest::prop_assert!((after - (before + eps)).abs() < 1e-12),
                    Err(_) => proptest::prop_assert_eq!(acc.spent(name, window), before),
                }
                proptest::prop_assert!(acc.spent(name, window) <= budget * (1.0 + 1e-9));
            }
        }

        /// A count's sensitivity is 1 and a sum's its upper bound; the ε a mechanism reports never exceeds the ε asked (within rounding).
        #[test]
        fn bounds_sensitivity_and_epsilon_hold(
            upper in 1i64..1_000_000,
            eps in 0.05f64..4.0,
        ) {
            let q = Quantity::BoundedSum { upper };
            proptest::prop_assert_eq!(q.sensitivity(), upper);
            proptest::prop_assert_eq!(Quantity::Count.sensitivity(), 1);
            let m = Laplace::new(q, eps).unwrap();
            proptest::prop_assert!(m.epsilon() <= eps * (1.0 + 1e-6), "spent {} for asked {}", m.epsilon(), eps);
        }
    }
}
