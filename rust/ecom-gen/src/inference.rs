//! The inferable oracle: the best purchase probability a model could give from everything it
//! can see, namely this session's behaviour before the decision and the user's earlier
//! sessions, with the persona and the purchases from before the data began *inferred*, not
//! known. Exact Bayes over the generator's own model: every user carries a log-likelihood per
//! hypothesis (persona × account class), each session multiplies in what it showed, and the
//! visible intent is integrated out per hypothesis on a grid. The observable oracle
//! (`session::posterior_probability`) knows the persona and the history before the data; this
//! bound does not, so it is the tighter of the two, and it is calibrated (a test checks).
//!
//! What it reads, per session: the device (once per user), a login at the start, the categories
//! of every step and the focus a campaign's landing page shows, the number of category pages,
//! searches, which products were viewed (each persona's price taste makes some likelier), adds
//! to the cart with their quantities, wishlist adds, product views with their dwell times; for
//! the user's earlier sessions also the outcome, a login at checkout and an abandoned checkout.
//! It leaves out the product a buyer with an empty cart adds after the decision and the
//! post-decision dwell times: a model could use them, so the bound is tight up to those.
use crate::catalog::CATEGORIES;
use crate::persona::{MAX_PRIOR_PURCHASES, NEW_USER_ACCOUNT_SHARE, PERSONAS};
use crate::session::{
    hidden_integrated_table, returning_effect, sigmoid, Evidence, CHOICE_CANDIDATES, CHOICE_SIGMA, DWELL_SIGMA,
    FOCUS_ON_FAVOURITE, LOGIN_AT_START, STAY_IN_FOCUS, VISIBLE_INTENT_SD,
};
use crate::Shop;

/// Account classes: a new user without an account, a new user with one, and a returning user
/// (always with an account) with 0..=MAX_PRIOR_PURCHASES purchases before the data began.
const CLASSES: usize = 2 + MAX_PRIOR_PURCHASES as usize + 1;
const PERSONA_COUNT: usize = PERSONAS.len();
/// Hypotheses per user: persona × account class.
pub const HYPOTHESES: usize = PERSONA_COUNT * CLASSES;

/// A user's log-likelihood per hypothesis (index `persona * CLASSES + class`), prior included.
/// f32 keeps a user at 192 bytes: millions of users live in the generator at once.
pub type Belief = [f32; HYPOTHESES];

/// The log-odds lattice every known term lies on: all effects are multiples of 0.05.
const LATTICE: f64 = 0.05;
/// Grid step for the visible intent, in lattice units (0.2 log-odds, 0.22 sd: the trapezoid rule
/// on a Gaussian-weighted smooth integrand is exact to about 1e-6 at this step).
const STEP_UNITS: i64 = 4;
/// Half-width of the grid in steps: ±6 sd of the visible intent.
const HALF: usize = (6.0 * VISIBLE_INTENT_SD / (STEP_UNITS as f64 * LATTICE) + 0.5) as usize;
/// Weights per class: the grid is fixed per persona, and a class's prior centre lies a whole or
/// a half step off it (history moves it by multiples of 0.1).
const WEIGHTS: usize = 2 * HALF + 2;
/// Bound on the whole steps a class's prior centre moves above the persona's first class
/// (history moves it by up to 0.9: four and a half steps).
const SHIFT: usize = 5;
const POINTS: usize = WEIGHTS + SHIFT - 1;

/// The prior of a new user: persona shares, the device the persona favours, and the account
/// classes (`returning_share` of new users were here before the data began).
pub fn prior(device: &str, returning_share: f64) -> Belief {
    let total: u32 = PERSONAS.iter().map(|p| p.weight).sum();
    let mut b = [0.0; HYPOTHESES];
    for (k, p) in PERSONAS.iter().enumerate() {
        let device_p = match device {
            "desktop" => p.device_mix.0,
            "mobile" => p.device_mix.1,
            _ => 1.0 - p.device_mix.0 - p.device_mix.1,
        };
        let persona = (f64::from(p.weight) / f64::from(total) * device_p).ln();
        for c in 0..CLASSES {
            let class = match c {
                0 => (1.0 - returning_share) * (1.0 - NEW_USER_ACCOUNT_SHARE),
                1 => (1.0 - returning_share) * NEW_USER_ACCOUNT_SHARE,
                _ => returning_share / f64::from(MAX_PRIOR_PURCHASES + 1),
            };
            b[k * CLASSES + c] = (persona + class.ln()) as f32;
        }
    }
    b
}

/// What is known of a session apart from its behaviour: the log-odds terms every hypothesis
/// shares and the history the data shows.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// Channel, local hour and device effects.
    pub z_shared: f64,
    /// Whether the day is a promotion day.
    pub promo_day: bool,
    /// The drift scenario's factor on mean product views.
    pub views_factor: f64,
    /// The cart term plus the drift scenario's decision shift.
    pub rest_shared: f64,
    /// ln(cart value / category-median value), clamped; 0 for an empty cart.
    pub cart_price_rel: f64,
    /// Purchases of this user since the data began.
    pub purchases_in_data: u32,
    /// Whether the user had a session before this one in the data.
    pub visited: bool,
}

/// What came after the decision, which the user's later sessions know.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// The session bought.
    pub purchased: bool,
    /// A login happened at checkout.
    pub login_at_checkout: bool,
    /// A non-buyer with a cart started checkout.
    pub abandoned_checkout: bool,
    /// The cart held something at the decision.
    pub cart: bool,
}

/// Tables computed once per catalog.
#[derive(Debug, Clone)]
pub struct Inference {
    /// ln P(this product | its category, persona) per product, from `session::choose_product`.
    choice_ln: Vec<[f64; PERSONA_COUNT]>,
    /// ln P(focus category) per persona.
    focus_ln: [[f64; CATEGORIES.len()]; PERSONA_COUNT],
    /// ln P(a step's category | focus) as `[focus][category]`.
    step_ln: [[f64; CATEGORIES.len()]; CATEGORIES.len()],
    /// Each persona's other rates.
    rates_ln: Vec<RatesLn>,
}

impl Inference {
    /// Builds the tables for `shop`.
    pub fn new(shop: &Shop) -> Self {
        let total: u32 = CATEGORIES.iter().map(|c| c.weight).sum();
        let share = |c: usize| f64::from(CATEGORIES[c].weight) / f64::from(total);
        let mut focus_ln = [[0.0; CATEGORIES.len()]; PERSONA_COUNT];
        for (k, p) in PERSONAS.iter().enumerate() {
            for (f, c) in CATEGORIES.iter().enumerate() {
                let favourite = p.favourite_categories.contains(&c.name);
                focus_ln[k][f] = if p.favourite_categories.is_empty() {
                    share(f).ln()
                } else {
                    (FOCUS_ON_FAVOURITE * f64::from(u8::from(favourite)) / p.favourite_categories.len() as f64
                        + (1.0 - FOCUS_ON_FAVOURITE) * share(f))
                    .ln()
                };
            }
        }
        let mut step_ln = [[0.0; CATEGORIES.len()]; CATEGORIES.len()];
        for (f, row) in step_ln.iter_mut().enumerate() {
            for (c, cell) in row.iter_mut().enumerate() {
                *cell = (STAY_IN_FOCUS * f64::from(u8::from(c == f)) + (1.0 - STAY_IN_FOCUS) * share(c)).ln();
            }
        }
        let mut choice_ln = vec![[0.0; PERSONA_COUNT]; shop.products.len()];
        for (category, ids) in shop.by_category.iter().enumerate() {
            for (k, p) in PERSONAS.iter().enumerate() {
                let target = (CATEGORIES[category].median_price_cents as f64 * p.price_taste).ln();
                for (i, prob) in choice_probabilities(shop, ids, target).into_iter().enumerate() {
                    choice_ln[ids[i]][k] = prob.ln();
                }
            }
        }
        Self { choice_ln, focus_ln, step_ln, rates_ln: PERSONAS.iter().map(RatesLn::of).collect() }
    }

    /// The session's inferable probability from `belief` (the user's earlier sessions) and what
    /// it showed before the decision, and the log-likelihood per hypothesis of everything the
    /// whole session showed, to add to the user's belief for their next session.
    pub fn infer(&self, belief: &Belief, cx: &Context, ev: &Evidence, out: &Outcome) -> (f64, Belief) {
        // The grid's weights and terms are f32: relative to the peak, summed over ~100 points,
        // single precision keeps about 6 digits of a probability, and halves the work.
        // [whole step, half step off]: the prior's weight of each grid point of a class's window.
        static GAUSS: std::sync::LazyLock<[[f32; WEIGHTS]; 2]> = std::sync::LazyLock::new(|| {
            std::array::from_fn(|half| {
                std::array::from_fn(|i| {
                    let steps = i as f64 - HALF as f64 - 0.5 * half as f64;
                    let sd = steps * STEP_UNITS as f64 * LATTICE / VISIBLE_INTENT_SD;
                    (-0.5 * sd * sd).exp() as f32
                })
            })
        });
        let n = ev.ln_dwell.len() as f64;
        let (s1, s2) = ev.ln_dwell.iter().fold((0.0, 0.0), |(a, b), d| (a + d, b + d * d));
        let added = ev.added.iter().filter(|a| **a).count() as f64;
        let not_added = ev.added.len() as f64 - added;
        let category_ln = self.category_terms(ev);

        let mut current = [f64::NEG_INFINITY; HYPOTHESES];
        let mut whole = [f64::NEG_INFINITY; HYPOTHESES];
        let mut probability = [0.0; HYPOTHESES];
        for (k, p) in PERSONAS.iter().enumerate() {
            let persona_ln = self.persona_terms(k, ev, category_ln[k]);
            let z = |m: u32| {
                p.base_logit
                    + cx.z_shared
                    + if cx.promo_day { p.promo_sensitivity } else { 0.0 }
                    + returning_effect(m + cx.purchases_in_data, cx.visited)
            };
            let base = (z(0) / LATTICE).round() as i64;
            let rest = cx.rest_shared - p.price_sensitivity * cx.cart_price_rel;
            let mean_views = p.mean_product_views * cx.views_factor;
            let (mut ll, mut buy, mut after) = ([0.0; POINTS], [0.0f32; POINTS], [0.0f32; POINTS]);
            let mut intent = [0.0f32; POINTS];
            let mut max = f64::NEG_INFINITY;
            let (ln_mean_views, ln_dwell) = (mean_views.ln(), p.product_dwell_s.ln());
            for d in 0..POINTS {
                let lattice = base + (d as i64 - HALF as i64) * STEP_UNITS;
                let x = lattice as f64 * LATTICE;
                let b = behaviour(lattice);
                intent[d] = b.intent as f32;
                let mu = ln_dwell + b.ln_dwell_factor;
                ll[d] = (ev.views as f64 - 1.0) * (ln_mean_views + b.ln_views_factor)
                    - mean_views * b.views_factor
                    - (s2 - 2.0 * mu * s1 + n * mu * mu) / (2.0 * DWELL_SIGMA * DWELL_SIGMA)
                    + added * b.ln_add
                    + not_added * b.ln_no_add;
                max = max.max(ll[d]);
                buy[d] = hidden_integrated_table(x + rest) as f32;
                // ln of the last view's dwell density, in `after` until the exponentials below.
                if let Some(last) = ev.hidden_dwell {
                    after[d] = (-(last - mu) * (last - mu) / (2.0 * DWELL_SIGMA * DWELL_SIGMA)) as f32;
                }
            }
            // Each point relative to the largest (points below e^-60 of it add nothing), times
            // the probability of buying, and times what came after the decision.
            let (mut e, mut e_buy) = ([0.0f32; POINTS], [0.0f32; POINTS]);
            for d in 0..POINTS {
                let rel = (ll[d] - max) as f32;
                if rel < -60.0 {
                    after[d] = 0.0;
                    continue;
                }
                e[d] = rel.exp();
                e_buy[d] = e[d] * buy[d];
                let outcome = if out.purchased {
                    buy[d]
                } else if out.cart {
                    let abandon = 0.4 * intent[d];
                    (1.0 - buy[d]) * if out.abandoned_checkout { abandon } else { 1.0 - abandon }
                } else {
                    1.0 - buy[d]
                };
                after[d] = outcome * if ev.hidden_dwell.is_some() { (rel + after[d]).exp() } else { e[d] };
            }
            for m in 0..=MAX_PRIOR_PURCHASES {
                let units = (z(m) / LATTICE).round() as i64 - base;
                debug_assert!(units % (STEP_UNITS / 2) == 0, "history moves by 0.1: {units}");
                let (shift, half) = (units.div_euclid(STEP_UNITS) as usize, units.rem_euclid(STEP_UNITS) != 0);
                debug_assert!(shift < SHIFT, "history shift {shift}");
                let gauss = &GAUSS[usize::from(half)];
                let window = shift..shift + WEIGHTS;
                let s0 = dot(gauss, &e[window.clone()]);
                let s1 = dot(gauss, &e_buy[window.clone()]);
                let sh = dot(gauss, &after[window]);
                let classes = if m == 0 { 0..3 } else { 2 + m as usize..3 + m as usize };
                for c in classes {
                    let h = k * CLASSES + c;
                    let (start, checkout) = account_terms(c, ev.login_at_start, out);
                    current[h] = f64::from(belief[h]) + persona_ln + start + s0.ln() + max;
                    whole[h] = persona_ln + start + checkout + sh.ln() + max;
                    probability[h] = s1 / s0;
                }
            }
        }
        let top = current.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !top.is_finite() {
            // Every hypothesis underflowed (no session comes near that): keep the belief and
            // answer what the session alone says under the first one that has an answer.
            return (probability.into_iter().find(|p| p.is_finite()).unwrap_or(0.5), *belief);
        }
        let (mut num, mut den) = (0.0, 0.0);
        for (l, p) in current.iter().zip(probability) {
            let w = (l - top).exp();
            num += w * p;
            den += w;
        }
        let mut next = *belief;
        for (b, w) in next.iter_mut().zip(whole) {
            *b += w as f32;
        }
        if !next.iter().any(|b| b.is_finite()) {
            next = *belief; // the same underflow in what the whole session showed
        }
        (num / den, next)
    }

    /// ln Σ_focus P(focus | persona) Π_steps P(step category | focus), per persona.
    fn category_terms(&self, ev: &Evidence) -> [f64; PERSONA_COUNT] {
        let given_focus: [f64; CATEGORIES.len()] = std::array::from_fn(|f| {
            if ev.shown_focus.is_some_and(|s| s != f) {
                return f64::NEG_INFINITY;
            }
            ev.step_categories.iter().map(|&c| self.step_ln[f][c]).sum()
        });
        std::array::from_fn(|k| {
            let terms: [f64; CATEGORIES.len()] = std::array::from_fn(|f| self.focus_ln[k][f] + given_focus[f]);
            let top = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            top + terms.iter().map(|t| (t - top).exp()).sum::<f64>().ln()
        })
    }

    /// The log-likelihood of the persona's signals that do not depend on the intent.
    fn persona_terms(&self, k: usize, ev: &Evidence, category_ln: f64) -> f64 {
        let (p, r) = (&PERSONAS[k], &self.rates_ln[k]);
        let not_added = ev.added.iter().filter(|a| !**a).count() as f64;
        category_ln + ev.pages as f64 * r.page_views - p.mean_page_views
            + ev.searches as f64 * r.search
            + (ev.views - ev.searches) as f64 * r.no_search
            + ev.products.iter().map(|&i| self.choice_ln[i][k]).sum::<f64>()
            + ev.wishlists as f64 * r.wishlist
            + (not_added - ev.wishlists as f64) * r.no_wishlist
            + ev.quantities.iter().map(|&q| r.quantity(q)).sum::<f64>()
    }
}

/// A persona's rates as logarithms, for [`Inference::persona_terms`].
#[derive(Debug, Clone)]
struct RatesLn {
    page_views: f64,
    search: f64,
    no_search: f64,
    wishlist: f64,
    no_wishlist: f64,
    /// Mean of the Poisson a cart line's quantity is drawn from (then at least 1).
    quantity_mean: f64,
    /// ln P(quantity) for quantities up to 32.
    quantity: [f64; 33],
}

impl RatesLn {
    fn of(p: &crate::persona::Persona) -> Self {
        let wishlist = crate::session::wishlist_rate(p);
        let quantity_mean = p.mean_quantity.max(1.0) - 0.99;
        let mut r = Self {
            page_views: p.mean_page_views.ln(),
            search: p.search_rate.ln(),
            no_search: (1.0 - p.search_rate).ln(),
            wishlist: wishlist.ln(),
            no_wishlist: (1.0 - wishlist).ln(),
            quantity_mean,
            quantity: [0.0; 33],
        };
        for q in 0..33 {
            r.quantity[q] = r.quantity_exact(q as i32);
        }
        r
    }

    /// ln P(quantity q): `max(1, Poisson(quantity_mean))`.
    fn quantity(&self, q: i32) -> f64 {
        self.quantity.get(q.max(0) as usize).copied().unwrap_or_else(|| self.quantity_exact(q))
    }

    fn quantity_exact(&self, q: i32) -> f64 {
        let at = |j: i32| -self.quantity_mean + f64::from(j) * self.quantity_mean.ln() - ln_factorial(j);
        if q <= 1 {
            (at(0).exp() + at(1).exp()).ln()
        } else {
            at(q)
        }
    }
}

/// How behaviour follows the intent at a point `x` of the log-odds lattice (`session::generate`):
/// views scale by `0.5 + 1.5·intent`, dwell by `0.6 + 0.8·intent`, a view goes to the cart with
/// probability `0.04 + 0.45·intent` (at most 0.9), where `intent = sigmoid(x + 1.5)`.
#[derive(Debug, Clone, Copy)]
struct Behaviour {
    intent: f64,
    views_factor: f64,
    ln_views_factor: f64,
    ln_dwell_factor: f64,
    ln_add: f64,
    ln_no_add: f64,
}

/// [`Behaviour`] at lattice point `i` (x = 0.05·i), from a table over x in [-40, 25].
fn behaviour(i: i64) -> Behaviour {
    const LO: i64 = -800;
    const HI: i64 = 500;
    static TABLE: std::sync::LazyLock<Vec<Behaviour>> = std::sync::LazyLock::new(|| {
        (LO..=HI)
            .map(|i| {
                let intent = sigmoid(i as f64 * LATTICE + 1.5);
                let add = (0.04 + 0.45 * intent).min(0.9);
                Behaviour {
                    intent,
                    views_factor: 0.5 + 1.5 * intent,
                    ln_views_factor: (0.5 + 1.5 * intent).ln(),
                    ln_dwell_factor: (0.6 + 0.8 * intent).ln(),
                    ln_add: add.ln(),
                    ln_no_add: (1.0 - add).ln(),
                }
            })
            .collect()
    });
    TABLE[(i.clamp(LO, HI) - LO) as usize]
}

/// ln P(login or not at the start) and ln P(login or not at checkout) for an account class.
fn account_terms(class: usize, login_at_start: bool, out: &Outcome) -> (f64, f64) {
    let account = class > 0;
    let start = match (account, login_at_start) {
        (false, true) => f64::NEG_INFINITY,
        (false, false) => 0.0,
        (true, true) => LOGIN_AT_START.ln(),
        (true, false) => (1.0 - LOGIN_AT_START).ln(),
    };
    // A buyer with an account who has not logged in logs in at checkout; one without cannot.
    let checkout =
        if out.purchased && !login_at_start && account != out.login_at_checkout { f64::NEG_INFINITY } else { 0.0 };
    (start, checkout)
}

/// Σ a·b over equal-length slices, in eight independent sums (no chain of dependent adds; the
/// compiler vectorises them), returned in f64.
fn dot(a: &[f32], b: &[f32]) -> f64 {
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    let mut acc = [0.0f32; 8];
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    f64::from(acc.iter().sum::<f32>() + tail)
}

fn ln_factorial(n: i32) -> f64 {
    (2..=n).map(|i| f64::from(i).ln()).sum()
}

/// P(each product of a category is chosen) for a price taste aiming at `target` (ln cents):
/// `CHOICE_CANDIDATES` uniform draws, the one nearest a log-normal target kept; the target's
/// noise integrated on a grid of ±4 sd.
fn choice_probabilities(shop: &Shop, ids: &[usize], target: f64) -> Vec<f64> {
    const GRID: i32 = 120;
    let ln_price: Vec<f64> = ids.iter().map(|&i| (shop.products[i].price_cents as f64).ln()).collect();
    let n = ids.len() as f64;
    let tail = |r: usize| ((n - r as f64) / n).powi(CHOICE_CANDIDATES);
    let mut probability = vec![0.0; ids.len()];
    let mut order: Vec<usize> = (0..ids.len()).collect();
    let mut weight_sum = 0.0;
    for g in -GRID..=GRID {
        let u = f64::from(g) / f64::from(GRID) * 4.0;
        let weight = (-0.5 * u * u).exp();
        weight_sum += weight;
        let t = target + u * CHOICE_SIGMA;
        order.sort_by(|&a, &b| (ln_price[a] - t).abs().total_cmp(&(ln_price[b] - t).abs()));
        // The nearest of the draws is the product of rank r with P(all draws rank ≥ r) −
        // P(all ≥ r + 1); products at equal distance share their ranks' mass.
        let mut r = 0;
        while r < order.len() {
            let distance = (ln_price[order[r]] - t).abs();
            let tied = order[r..].iter().take_while(|&&i| (ln_price[i] - t).abs() == distance).count();
            let mass = (tail(r) - tail(r + tied)) / tied as f64;
            for &i in &order[r..r + tied] {
                probability[i] += weight * mass;
            }
            r += tied;
        }
    }
    probability.iter().map(|p| p / weight_sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Evidence far outside anything generated (dwell of e^-30 s, forty adds, a purchase after
    /// them) still gives a probability and a belief the next session can use.
    #[test]
    fn absurd_evidence_gives_a_probability_and_a_usable_belief() {
        let shop = Shop::new(200, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1));
        let inference = Inference::new(&shop);
        let cx = Context {
            z_shared: 0.0,
            promo_day: false,
            views_factor: 1.0,
            rest_shared: 0.9,
            cart_price_rel: 0.0,
            purchases_in_data: 0,
            visited: false,
        };
        let absurd = Evidence {
            views: 40,
            ln_dwell: vec![9.0; 39],
            added: vec![true; 40],
            hidden_dwell: Some(-30.0),
            quantities: vec![1; 40],
            step_categories: vec![0; 40],
            ..Default::default()
        };
        let out = Outcome { purchased: true, login_at_checkout: false, abandoned_checkout: false, cart: true };
        let (p, belief) = inference.infer(&prior("desktop", 0.2), &cx, &absurd, &out);
        assert!((0.0..=1.0).contains(&p), "{p}");
        assert!(belief.iter().any(|b| b.is_finite()), "{belief:?}");
        let (next, _) = inference.infer(&belief, &cx, &Evidence { views: 1, ..Default::default() }, &out);
        assert!((0.0..=1.0).contains(&next), "{next}");
    }
}
