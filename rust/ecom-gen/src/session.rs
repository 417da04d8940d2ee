//! The behavioural model of one ordinary session, and its truth. Behaviour follows the
//! session's visible intent; the purchase probability adds what the cart shows and a hidden
//! part no behaviour reveals (see docs/GENERATOR.md for the formula).
use crate::catalog::{self, CATEGORIES};
use crate::inference::{Belief, Context, Inference, Outcome};
use crate::persona::{weighted, User, CAMPAIGNS, CHANNELS, PERSONAS};
use crate::Shop;
use ecom_proto::v1::{Anomaly, Event, EventKind, SessionTruth};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Normal, Poisson};

/// Standard deviation of the visible intent (revealed, noisily, by behaviour).
pub const VISIBLE_INTENT_SD: f64 = 0.9;
/// Standard deviation of the hidden intent (never revealed by behaviour).
pub const HIDDEN_INTENT_SD: f64 = 0.8;
/// Log-normal sigma of a product view's dwell around its persona's mean.
pub(crate) const DWELL_SIGMA: f64 = 0.6;
/// Probability a persona with favourite categories focuses its session on one of them.
pub(crate) const FOCUS_ON_FAVOURITE: f64 = 0.7;
/// Probability a step stays in the session's focus category (else any, by catalog share).
pub(crate) const STAY_IN_FOCUS: f64 = 0.75;
/// Probability a user with an account logs in right after landing.
pub(crate) const LOGIN_AT_START: f64 = 0.35;
/// Products drawn from the category when choosing one to view; the one nearest the price the
/// shopper has in mind is viewed.
pub(crate) const CHOICE_CANDIDATES: i32 = 5;
/// Log-normal sigma of that price around category median × the persona's price taste.
pub(crate) const CHOICE_SIGMA: f64 = 0.3;

/// Log-odds effect of the user's history: purchases before this session (before the data
/// began and since) and whether they visited before.
pub fn returning_effect(purchases: u32, visited: bool) -> f64 {
    (if purchases > 0 { 0.4 + 0.1 * f64::from(purchases.min(5)) } else { 0.0 }) + if visited { 0.2 } else { 0.0 }
}

/// Probability a product view that did not go to the cart goes to the wishlist.
pub(crate) fn wishlist_rate(p: &crate::persona::Persona) -> f64 {
    if p.name == "researcher" {
        0.2
    } else {
        0.06
    }
}

/// Log-odds effect of the local hour of the session's start.
pub fn hour_effect(local_hour: i64) -> f64 {
    match local_hour {
        18..=22 => 0.25,
        0..=5 => -0.5,
        _ => 0.0,
    }
}

/// Log-odds effect of the device.
pub fn device_effect(device: &str) -> f64 {
    match device {
        "desktop" => 0.2,
        "mobile" => -0.25,
        _ => 0.0,
    }
}

/// Logistic function.
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `E[sigmoid(x + h)]` for `h ~ Normal(0, HIDDEN_INTENT_SD)`: the purchase probability with the
/// hidden intent integrated out. The trapezoid rule over ±8 sd in steps of 0.1 sd is exact to
/// rounding for this smooth, fast-decaying integrand.
pub fn hidden_integrated(x: f64) -> f64 {
    const HALF: i32 = 80;
    const STEP: f64 = 0.1; // in standard deviations
    let (mut sum, mut weight) = (0.0, 0.0);
    for i in -HALF..=HALF {
        let z = f64::from(i) * STEP;
        let w = (-0.5 * z * z).exp();
        sum += w * sigmoid(x + z * HIDDEN_INTENT_SD);
        weight += w;
    }
    sum / weight
}

/// `hidden_integrated` from a table in steps of 0.005 over [-25, 25], linearly interpolated
/// (error below 1e-6): the posterior evaluates it 121 times per session.
pub(crate) fn hidden_integrated_table(x: f64) -> f64 {
    const LO: f64 = -25.0;
    const STEP: f64 = 0.005;
    const N: usize = 10_001;
    static TABLE: std::sync::LazyLock<Vec<f64>> =
        std::sync::LazyLock::new(|| (0..N).map(|i| hidden_integrated(LO + i as f64 * STEP)).collect());
    let pos = ((x - LO) / STEP).clamp(0.0, (N - 1) as f64);
    let i = (pos as usize).min(N - 2);
    let f = pos - i as f64;
    TABLE[i] * (1.0 - f) + TABLE[i + 1] * f
}

/// What the behaviour before the decision shows: of the visible intent, the product views, per
/// view whether it went to the cart, and the dwell times the events after the views reveal; of
/// the persona and the account, everything else `inference` reads.
#[derive(Debug, Default)]
pub struct Evidence {
    pub(crate) views: usize,
    pub(crate) ln_dwell: Vec<f64>,
    pub(crate) added: Vec<bool>,
    /// The last product view's ln dwell, which shows only once the next event comes (after the
    /// decision).
    pub(crate) hidden_dwell: Option<f64>,
    pub(crate) login_at_start: bool,
    /// The focus category a campaign's landing page shows.
    pub(crate) shown_focus: Option<usize>,
    /// The category of every product and category-page step.
    pub(crate) step_categories: Vec<usize>,
    pub(crate) pages: usize,
    pub(crate) searches: usize,
    /// Indices into `Shop::products` of the products viewed.
    pub(crate) products: Vec<usize>,
    /// Quantity of every add to the cart.
    pub(crate) quantities: Vec<i32>,
    pub(crate) wishlists: usize,
}

/// The step, in standard deviations of the visible intent, of the grid the posterior is
/// computed on, and its half-width in steps (±6 sd). The integrands are smooth and Gaussian-
/// weighted, so the trapezoid rule is already exact to about 1e-6 at this step.
const V_STEP: f64 = 0.25;
const V_HALF: i32 = 24;

/// The best probability any model could give from what the session shows: the visible intent
/// `v` inferred from the behaviour before the decision (Bayes on a grid: its normal prior times
/// the likelihood of the view count, the dwell times and the add-to-cart choices, which is the
/// behavioural model in `generate`), the hidden intent integrated out. `z_known` is the log-odds
/// without `v` and `h` (persona, channel, hour, device, history, promo), `rest` the cart and
/// price terms. This oracle knows them even where a model must infer them (the persona,
/// purchases before the data began), so it is an upper bound.
fn posterior_probability(p: &crate::persona::Persona, z_known: f64, rest: f64, ev: &Evidence) -> f64 {
    // Sufficient statistics: the likelihood needs only these, not each view.
    let n = ev.ln_dwell.len() as f64;
    let (s1, s2) = ev.ln_dwell.iter().fold((0.0, 0.0), |(a, b), d| (a + d, b + d * d));
    let added = ev.added.iter().filter(|a| **a).count() as f64;
    let not_added = ev.added.len() as f64 - added;
    let (mut sum, mut weight, mut max) = (0.0, 0.0, f64::NEG_INFINITY);
    let mut log_post = [0.0; 2 * V_HALF as usize + 1];
    for (slot, i) in log_post.iter_mut().zip(-V_HALF..=V_HALF) {
        let z = f64::from(i) * V_STEP;
        let intent = sigmoid(z_known + z * VISIBLE_INTENT_SD + 1.5);
        let lambda = p.mean_product_views * (0.5 + 1.5 * intent);
        let mu = (p.product_dwell_s * (0.6 + 0.8 * intent)).ln();
        let q = (0.04 + 0.45 * intent).min(0.9);
        *slot = -0.5 * z * z + (ev.views as f64 - 1.0) * lambda.ln()
            - lambda
            - (s2 - 2.0 * mu * s1 + n * mu * mu) / (2.0 * DWELL_SIGMA * DWELL_SIGMA)
            + added * q.ln()
            + not_added * (1.0 - q).ln();
        max = max.max(*slot);
    }
    for (l, i) in log_post.into_iter().zip(-V_HALF..=V_HALF) {
        let w = (l - max).exp();
        sum += w * hidden_integrated_table(z_known + rest + f64::from(i) * V_STEP * VISIBLE_INTENT_SD);
        weight += w;
    }
    sum / weight
}

/// Builds events with shared session fields.
struct Builder<'a> {
    user: &'a User,
    session_id: String,
    channel: &'static str,
    ip: String,
    device: &'static str,
    user_agent: String,
    t: i64,
    last_page: String,
    events: Vec<Event>,
}

impl Builder<'_> {
    fn push(&mut self, kind: EventKind, page: String, dwell_ms: i64, f: impl FnOnce(&mut Event)) {
        let referrer = if self.events.is_empty() {
            self.last_page.clone()
        } else {
            format!("https://shop.example{}", self.last_page)
        };
        let mut e = Event {
            event_time_ms: self.t,
            user_id: self.user.user_id.clone(),
            session_id: self.session_id.clone(),
            kind: kind as i32,
            page: page.clone(),
            referrer,
            channel: self.channel.to_string(),
            device: self.device.to_string(),
            user_agent: self.user_agent.clone(),
            ip: self.ip.clone(),
            country: self.user.country.0.to_string(),
            ..Default::default()
        };
        f(&mut e);
        self.events.push(e);
        self.last_page = page;
        self.t += dwell_ms.max(300);
    }
}

fn secs(rng: &mut ChaCha8Rng, median_s: f64, sigma: f64) -> i64 {
    (LogNormal::new(median_s.ln(), sigma).expect("sigma > 0").sample(rng) * 1000.0) as i64
}

/// Picks a product of `category` near the price the shopper has in mind; its index in
/// `shop.products`.
fn choose_product(shop: &Shop, category: usize, price_taste: f64, rng: &mut ChaCha8Rng) -> usize {
    let ids = &shop.by_category[category];
    let target = CATEGORIES[category].median_price_cents as f64
        * price_taste
        * LogNormal::new(0.0, CHOICE_SIGMA).expect("ok").sample(rng);
    let distance = |i: &usize| ((shop.products[*i].price_cents as f64).ln() - target.ln()).abs();
    (0..CHOICE_CANDIDATES)
        .map(|_| ids[rng.random_range(0..ids.len())])
        .min_by(|a, b| distance(a).total_cmp(&distance(b)))
        .expect("five candidates")
}

/// How the drift scenario changes a session ([`crate::Drift`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shift {
    /// Added to the purchase log-odds at the decision only.
    pub decision_logit: f64,
    /// Multiplies the persona's mean product views.
    pub views_factor: f64,
}

impl Shift {
    /// No drift.
    pub const NONE: Shift = Shift { decision_logit: 0.0, views_factor: 1.0 };
}

/// Generates one ordinary session of `user` starting at `start_ms`, changed by `shift` (the
/// drift scenario; [`Shift::NONE`] otherwise). Also returns the user's belief (the inferable
/// oracle's, see `inference`) after the whole session, for their next one.
#[allow(clippy::too_many_arguments)]
pub fn generate(
    shop: &Shop,
    inference: &Inference,
    user: &User,
    start_ms: i64,
    promo_day: bool,
    shift: Shift,
    session_id: String,
    rng: &mut ChaCha8Rng,
) -> (SessionTruth, Vec<Event>, Belief) {
    let mut p = PERSONAS[user.persona];
    p.mean_product_views *= shift.views_factor;
    let decision_shift = shift.decision_logit;
    let (channel, channel_effect, _, referrer) = CHANNELS[weighted(CHANNELS, |c| c.2, rng)];
    let campaign = matches!(channel, "paid_search" | "email" | "social" | "affiliate")
        .then(|| CAMPAIGNS[rng.random_range(0..CAMPAIGNS.len())]);
    let local_hour = (start_ms.div_euclid(3_600_000) + user.country.1).rem_euclid(24);
    let prior_purchases = user.purchases_before_data + user.purchases_in_data;
    let returning = prior_purchases > 0 || user.sessions > 0;
    let visible: f64 = Normal::new(0.0, VISIBLE_INTENT_SD).expect("sd > 0").sample(rng);
    let z_shared = channel_effect + hour_effect(local_hour) + device_effect(user.device);
    let z_known = p.base_logit
        + z_shared
        + returning_effect(prior_purchases, user.sessions > 0)
        + if promo_day { p.promo_sensitivity } else { 0.0 };
    let z0 = z_known + visible;
    let intent = sigmoid(z0 + 1.5);

    // Mobile sessions often come from a carrier address rather than the home line.
    let ip = if user.device == "mobile" && rng.random_bool(0.5) {
        format!("100.{}.{}.{}", rng.random_range(64..128), rng.random_range(0..256), rng.random_range(1..255))
    } else {
        user.ip.clone()
    };
    let landing = match campaign {
        Some(c) => format!("{referrer}?utm_source={channel}&utm_campaign={c}"),
        None => referrer.to_string(),
    };
    let mut b = Builder {
        user,
        session_id,
        channel,
        ip,
        device: user.device,
        user_agent: user.user_agent.to_string(),
        t: start_ms,
        last_page: landing,
        events: Vec::new(),
    };
    let focus = if !p.favourite_categories.is_empty() && rng.random_bool(FOCUS_ON_FAVOURITE) {
        let name = p.favourite_categories[rng.random_range(0..p.favourite_categories.len())];
        CATEGORIES.iter().position(|c| c.name == name).expect("favourites are categories")
    } else {
        weighted(CATEGORIES, |c| c.weight, rng)
    };
    let first_page = if campaign.is_some() { format!("/c/{}", CATEGORIES[focus].name) } else { "/".to_string() };
    let dwell = secs(rng, 12.0, 0.6);
    b.push(EventKind::PageView, first_page, dwell, |_| {});
    let login_at_start = user.has_account && rng.random_bool(LOGIN_AT_START);
    if login_at_start {
        login(&mut b, rng);
    }

    let views = Poisson::new(p.mean_product_views * (0.5 + 1.5 * intent)).expect("mean > 0").sample(rng) as usize + 1;
    let pages = Poisson::new(p.mean_page_views).expect("mean > 0").sample(rng) as usize;
    let mut evidence =
        Evidence { views, pages, login_at_start, shown_focus: campaign.map(|_| focus), ..Default::default() };
    let mut cart: Vec<(String, i64, i32, usize)> = Vec::new(); // product, price, qty, category
    let mut steps: Vec<bool> = std::iter::repeat_n(true, views).chain(std::iter::repeat_n(false, pages)).collect();
    for i in (1..steps.len()).rev() {
        steps.swap(i, rng.random_range(0..=i));
    }
    for is_product in steps {
        let category = if rng.random_bool(STAY_IN_FOCUS) { focus } else { weighted(CATEGORIES, |c| c.weight, rng) };
        evidence.step_categories.push(category);
        if !is_product {
            let dwell = secs(rng, 10.0, 0.6);
            b.push(EventKind::PageView, format!("/c/{}", CATEGORIES[category].name), dwell, |_| {});
            continue;
        }
        if rng.random_bool(p.search_rate) {
            evidence.searches += 1;
            let q = search_query(category, rng);
            let dwell = secs(rng, 8.0, 0.5);
            b.push(EventKind::Search, format!("/search?q={}", q.replace(' ', "+")), dwell, |e| {
                e.search_query = Some(q)
            });
        }
        let chosen = choose_product(shop, category, p.price_taste, rng);
        evidence.products.push(chosen);
        let product = &shop.products[chosen];
        let dwell = secs(rng, p.product_dwell_s * (0.6 + 0.8 * intent), DWELL_SIGMA);
        evidence.ln_dwell.push((dwell.max(1) as f64 / 1000.0).ln());
        let (pid, price) = (product.product_id.clone(), product.price_cents);
        b.push(EventKind::ProductView, format!("/p/{pid}"), dwell, |e| {
            e.product_id = Some(pid.clone());
            e.unit_price_cents = Some(price);
        });
        let added = rng.random_bool((0.04 + 0.45 * intent).min(0.9));
        evidence.added.push(added);
        if added {
            let qty = (Poisson::new(p.mean_quantity.max(1.0) - 0.99).expect("mean > 0").sample(rng) as i32).max(1);
            evidence.quantities.push(qty);
            add_to_cart(&mut b, &pid, price, qty, rng);
            cart.push((pid.clone(), price, qty, category));
            if rng.random_bool(0.08) {
                let (rp, rprice, rqty, _) = cart.remove(rng.random_range(0..cart.len()));
                let dwell = secs(rng, 4.0, 0.4);
                b.push(EventKind::RemoveFromCart, "/cart".into(), dwell, |e| {
                    e.product_id = Some(rp);
                    e.unit_price_cents = Some(rprice);
                    e.quantity = Some(rqty);
                });
            }
        } else if rng.random_bool(wishlist_rate(&p)) {
            evidence.wishlists += 1;
            let dwell = secs(rng, 3.0, 0.4);
            b.push(EventKind::WishlistAdd, format!("/p/{pid}"), dwell, |e| {
                e.product_id = Some(pid.clone());
                e.unit_price_cents = Some(price);
            });
        }
    }

    // What the cart shows moves the odds: having one, and its price against the category norm.
    let (cart_term, cart_price_rel) = if cart.is_empty() {
        (-1.6, 0.0)
    } else {
        let value: i64 = cart.iter().map(|(_, price, q, _)| price * i64::from(*q)).sum();
        let norm: i64 = cart.iter().map(|(_, _, q, c)| CATEGORIES[*c].median_price_cents * i64::from(*q)).sum();
        let rel = (value as f64 / norm.max(1) as f64).ln().clamp(-2.0, 2.0);
        (0.9 + 0.15 * (cart.len() as f64 - 1.0).min(4.0), rel)
    };
    let price_term = -p.price_sensitivity * cart_price_rel;
    let cart_at_decision = !cart.is_empty();
    // A product view's dwell shows only when the next event comes: the last one before the
    // decision is not seen yet.
    if b.events.last().is_some_and(|e| e.kind == EventKind::ProductView as i32) {
        evidence.hidden_dwell = evidence.ln_dwell.pop();
    }
    let decision_events = b.events.len() as i32;
    let decision_ms = b.events.last().map_or(0, |e| e.event_time_ms);
    let hidden: f64 = Normal::new(0.0, HIDDEN_INTENT_SD).expect("sd > 0").sample(rng);
    let probability = sigmoid(z0 + cart_term + price_term + decision_shift + hidden);
    let purchased = rng.random_bool(probability);

    let mut login_at_checkout = false;
    let mut abandoned_checkout = false;
    if purchased {
        if cart.is_empty() {
            let product = &shop.products[choose_product(shop, focus, p.price_taste, rng)];
            let (pid, price) = (product.product_id.clone(), product.price_cents);
            let dwell = secs(rng, p.product_dwell_s, 0.5);
            b.push(EventKind::ProductView, format!("/p/{pid}"), dwell, |e| {
                e.product_id = Some(pid.clone());
                e.unit_price_cents = Some(price);
            });
            add_to_cart(&mut b, &pid, price, 1, rng);
            cart.push((pid, price, 1, focus));
        }
        let dwell = secs(rng, 40.0, 0.5);
        b.push(EventKind::CheckoutStart, "/checkout".into(), dwell, |_| {});
        if b.user.has_account && !b.events.iter().any(|e| e.kind == EventKind::Login as i32) {
            login_at_checkout = true;
            login(&mut b, rng);
        }
        for (pid, price, qty, _) in &cart {
            let dwell = secs(rng, 2.0, 0.3);
            b.push(EventKind::Purchase, "/checkout/done".into(), dwell, |e| {
                e.product_id = Some(pid.clone());
                e.unit_price_cents = Some(*price);
                e.quantity = Some(*qty);
            });
        }
    } else if !cart.is_empty() && rng.random_bool(0.4 * intent) {
        abandoned_checkout = true;
        let dwell = secs(rng, 30.0, 0.5);
        b.push(EventKind::CheckoutStart, "/checkout".into(), dwell, |_| {});
    }

    let context = Context {
        z_shared,
        promo_day,
        views_factor: shift.views_factor,
        rest_shared: cart_term + decision_shift,
        cart_price_rel,
        purchases_in_data: user.purchases_in_data,
        visited: user.sessions > 0,
    };
    let outcome = Outcome { purchased, login_at_checkout, abandoned_checkout, cart: cart_at_decision };
    let (inferable, belief) = inference.infer(&user.belief, &context, &evidence, &outcome);
    let events = b.events;
    let user = b.user;
    let truth = SessionTruth {
        session_id: events[0].session_id.clone(),
        user_id: user.user_id.clone(),
        persona: p.name.to_string(),
        purchase_probability: probability,
        purchased,
        anomaly: Anomaly::None as i32,
        start_ms,
        events: events.len() as i32,
        returning_user: returning,
        truncated: false,
        decision_events,
        decision_ms,
        observable_probability: posterior_probability(&p, z_known, cart_term + price_term + decision_shift, &evidence),
        inferable_probability: inferable,
    };
    (truth, events, belief)
}

fn login(b: &mut Builder<'_>, rng: &mut ChaCha8Rng) {
    if rng.random_bool(0.04) {
        let dwell = secs(rng, 6.0, 0.4);
        b.push(EventKind::LoginFailed, "/login".into(), dwell, |_| {});
    }
    let dwell = secs(rng, 5.0, 0.4);
    b.push(EventKind::Login, "/login".into(), dwell, |_| {});
}

fn add_to_cart(b: &mut Builder<'_>, pid: &str, price: i64, qty: i32, rng: &mut ChaCha8Rng) {
    let dwell = secs(rng, 6.0, 0.5);
    b.push(EventKind::AddToCart, format!("/p/{pid}"), dwell, |e| {
        e.product_id = Some(pid.to_string());
        e.unit_price_cents = Some(price);
        e.quantity = Some(qty);
    });
}

/// A furniture search query for a category: a noun with a material, style or colour.
pub fn search_query(category: usize, rng: &mut ChaCha8Rng) -> String {
    let c = &CATEGORIES[category];
    let noun = c.nouns[rng.random_range(0..c.nouns.len())];
    match rng.random_range(0..4) {
        0 => format!("{} {noun}", c.materials[rng.random_range(0..c.materials.len())]),
        1 => format!("{} {noun}", catalog::STYLES[rng.random_range(0..catalog::STYLES.len())]),
        2 => format!("{} {noun}", catalog::COLOURS[rng.random_range(0..catalog::COLOURS.len())]),
        _ => noun.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn hidden_intent_is_integrated_out() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let hidden = Normal::new(0.0, HIDDEN_INTENT_SD).unwrap();
        let mut last = 0.0;
        for x in [-6.0, -3.0, -1.0, 0.0, 0.5, 2.0, 5.0] {
            let p = hidden_integrated(x);
            // Monte Carlo agrees; uncertainty pulls toward 1/2 (Jensen); monotone in x.
            let n = 200_000;
            let mc = (0..n).map(|_| sigmoid(x + hidden.sample(&mut rng))).sum::<f64>() / f64::from(n);
            assert!((p - mc).abs() < 2e-3, "x {x}: {p} vs Monte Carlo {mc}");
            assert!((p - 0.5).abs() <= (sigmoid(x) - 0.5).abs() + 1e-12, "x {x}");
            assert!(p > last, "x {x}");
            last = p;
        }
        assert!((hidden_integrated(0.0) - 0.5).abs() < 1e-12);
        for i in 0..2000 {
            let x = -20.0 + f64::from(i) * 0.0199;
            assert!((hidden_integrated_table(x) - hidden_integrated(x)).abs() < 1e-6, "x {x}");
        }
    }
}
