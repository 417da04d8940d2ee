//! Session features: one implementation for the live job (over JNI, one event at a time) and
//! for training (folded over a session's events). The state is a protobuf message
//! (`SessionState`) so the job can keep it as bytes in Flink state; the feature vector is a
//! pure function of that state and what was known of the user before the session.
//!
//! The schema (names, order, version) is fixed here; its hash goes into every model and
//! `ecom serve` refuses a model whose hash differs.
use ecom_proto::v1::{CartLine, CategoryCount, EnrichedEvent, Event, EventKind, Product, SessionState, UserHistory};

/// Version of the feature schema and of `SessionState`'s meaning. Bump on any change.
pub const SCHEMA_VERSION: u32 = 2;

/// The shop's categories, in the order of the one-hot `focus_*` features.
pub const CATEGORIES: [&str; 11] =
    ["sofas", "beds", "tables", "chairs", "storage", "lighting", "rugs", "decor", "outdoor", "office", "kids"];
/// Devices with a one-hot feature; anything else counts as none of them.
pub const DEVICES: [&str; 3] = ["desktop", "mobile", "tablet"];
/// Channels with a one-hot feature; anything else counts as none of them.
pub const CHANNELS: [&str; 6] = ["organic", "paid_search", "email", "social", "direct", "affiliate"];

/// The shop's markets and their UTC offsets in hours (standard time; no daylight saving).
/// The generator draws users' countries from these.
pub const MARKETS: [(&str, i64); 10] =
    [("DE", 1), ("FR", 1), ("NL", 1), ("GB", 0), ("SE", 1), ("PL", 1), ("ES", 1), ("IT", 1), ("AT", 1), ("US", -5)];

/// UTC offset in hours of a market; 0 (UTC) for a country that is not one.
pub fn utc_offset_hours(country: &str) -> i64 {
    MARKETS.iter().find(|(c, _)| *c == country).map_or(0, |(_, o)| *o)
}

/// Most distinct products and LSH tokens a state keeps; a longer session stops adding.
pub const MAX_DISTINCT: usize = 256;

const KINDS: usize = 11; // EventKind numbers 0..=10

/// The features, in order. `focus_<category>` is one-hot for the most-viewed category.
pub const NAMES: [&str; 54] = [
    "events",
    "page_views",
    "searches",
    "product_views",
    "add_to_carts",
    "remove_from_carts",
    "wishlist_adds",
    "checkout_starts",
    "purchases",
    "logins",
    "login_failures",
    "duration_s",
    "mean_gap_s",
    "max_gap_s",
    "mean_product_dwell_s",
    "distinct_products",
    "distinct_categories",
    "category_entropy_bits",
    "cart_lines",
    "cart_units",
    "cart_value_cents",
    "log_cart_value_eur",
    "mean_viewed_price_cents",
    "max_viewed_price_cents",
    "cart_per_view",
    "hour_utc",
    "day_of_week",
    "device_desktop",
    "device_mobile",
    "device_tablet",
    "channel_organic",
    "channel_paid_search",
    "channel_email",
    "channel_social",
    "channel_direct",
    "channel_affiliate",
    "campaign",
    "external_referrer",
    "logged_in",
    "user_prior_sessions",
    "user_prior_purchases",
    "days_since_last_session",
    "focus_sofas",
    "focus_beds",
    "focus_tables",
    "focus_chairs",
    "focus_storage",
    "focus_lighting",
    "focus_rugs",
    "focus_decor",
    "focus_outdoor",
    "focus_office",
    "focus_kids",
    "hour_local",
];

/// Number of features.
pub const LEN: usize = NAMES.len();

/// A feature vector in schema order.
pub type Features = [f64; LEN];

/// The schema's identity: FNV-1a 64 over the version and the names in order, as 16 hex digits.
/// Models record it; `ecom serve` compares it on load.
pub fn schema_hash() -> String {
    use std::hash::Hasher;
    let mut h = fnv::FnvHasher::default();
    h.write(format!("ecom.features.v{SCHEMA_VERSION}").as_bytes());
    for n in NAMES {
        h.write(b"\0");
        h.write(n.as_bytes());
    }
    format!("{:016x}", h.finish())
}

/// The catalog join the features rely on (the Flink job must do the same): the product's category, price,
/// material and style on the event (left empty when the product is unknown).
pub fn enrich(event: Event, product: Option<&Product>) -> EnrichedEvent {
    EnrichedEvent {
        category: product.map(|p| p.category.clone()).unwrap_or_default(),
        price_cents: product.map_or(0, |p| p.price_cents),
        material: product.map(|p| p.material.clone()).unwrap_or_default(),
        style: product.map(|p| p.style.clone()).unwrap_or_default(),
        event: Some(event),
        ..Default::default()
    }
}

/// A state that has seen nothing yet.
pub fn new_state() -> SessionState {
    SessionState { schema_version: SCHEMA_VERSION, kind_counts: vec![0; KINDS], ..Default::default() }
}

/// Why an event could not be folded into a state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeatureError {
    /// The enriched record has no event inside.
    #[error("enriched record without an event")]
    NoEvent,
    /// The state was made by another schema version.
    #[error("session state has schema version {found}, this ecom-core computes version {SCHEMA_VERSION}")]
    Version {
        /// The version found in the state.
        found: u32,
    },
}

fn insert_sorted(v: &mut Vec<String>, s: &str) {
    if let Err(i) = v.binary_search_by(|x| x.as_str().cmp(s)) {
        if v.len() < MAX_DISTINCT {
            v.insert(i, s.to_string());
        }
    }
}

/// Folds one event into the state. Events may come slightly out of order: times only ever
/// widen the session, and gaps never go negative. Reads only `e.event`, `e.category` and
/// `e.style`: the Flink job sends just those (SessionOperator.foldInput), so a new field read
/// here must be added there too.
pub fn update(state: &mut SessionState, e: &EnrichedEvent) -> Result<(), FeatureError> {
    if state.schema_version != SCHEMA_VERSION {
        return Err(FeatureError::Version { found: state.schema_version });
    }
    let ev = e.event.as_ref().ok_or(FeatureError::NoEvent)?;
    let t = ev.event_time_ms;
    if state.kind_counts.len() != KINDS {
        state.kind_counts.resize(KINDS, 0);
    }
    if state.events == 0 {
        state.first_ms = t;
        state.last_ms = t;
        state.device = ev.device.clone();
        state.channel = ev.channel.clone();
        state.country = ev.country.clone();
        state.campaign = ev.referrer.contains("utm_campaign=");
        state.external_referrer = !ev.referrer.is_empty() && !ev.referrer.starts_with("https://shop.example");
    } else {
        let gap = (t - state.last_ms).max(0);
        state.gap_sum_ms += gap;
        state.max_gap_ms = state.max_gap_ms.max(gap);
        state.first_ms = state.first_ms.min(t);
        state.last_ms = state.last_ms.max(t);
    }
    state.events += 1;
    if let Ok(k) = usize::try_from(ev.kind) {
        if k < KINDS {
            state.kind_counts[k] += 1;
        }
    }
    // A product page's dwell ends with whatever the shopper does next.
    if state.open_product_view_ms != 0 {
        state.product_dwell_sum_ms += (t - state.open_product_view_ms).max(0);
        state.product_dwell_n += 1;
        state.open_product_view_ms = 0;
    }
    let kind = EventKind::try_from(ev.kind).unwrap_or(EventKind::Unspecified);
    if let Some(pid) = ev.product_id.as_deref() {
        insert_sorted(&mut state.products, pid);
        insert_sorted(&mut state.tokens, &format!("p:{pid}"));
        if !e.category.is_empty() {
            insert_sorted(&mut state.tokens, &format!("c:{}", e.category));
        }
        if !e.style.is_empty() {
            insert_sorted(&mut state.tokens, &format!("s:{}", e.style));
        }
    }
    match kind {
        EventKind::ProductView => {
            state.open_product_view_ms = t.max(1);
            if let Some(price) = ev.unit_price_cents {
                state.viewed_price_sum_cents += price;
                state.viewed_price_n += 1;
                state.viewed_price_max_cents = state.viewed_price_max_cents.max(price);
            }
            if !e.category.is_empty() {
                match state.category_views.binary_search_by(|c| c.category.as_str().cmp(&e.category)) {
                    Ok(i) => state.category_views[i].views += 1,
                    Err(i) if state.category_views.len() < MAX_DISTINCT => {
                        state.category_views.insert(i, CategoryCount { category: e.category.clone(), views: 1 })
                    }
                    Err(_) => {}
                }
            }
        }
        EventKind::AddToCart => {
            if let Some(pid) = ev.product_id.as_deref() {
                let qty = ev.quantity.unwrap_or(1).max(1);
                let price = ev.unit_price_cents.unwrap_or(0);
                match state.cart.binary_search_by(|l| l.product_id.as_str().cmp(pid)) {
                    Ok(i) => {
                        state.cart[i].quantity = state.cart[i].quantity.saturating_add(qty);
                        state.cart[i].unit_price_cents = price;
                    }
                    Err(i) if state.cart.len() < MAX_DISTINCT => state
                        .cart
                        .insert(i, CartLine { product_id: pid.to_string(), quantity: qty, unit_price_cents: price }),
                    Err(_) => {}
                }
            }
        }
        EventKind::RemoveFromCart => {
            if let Some(pid) = ev.product_id.as_deref() {
                if let Ok(i) = state.cart.binary_search_by(|l| l.product_id.as_str().cmp(pid)) {
                    let qty = ev.quantity.unwrap_or(state.cart[i].quantity).max(1);
                    state.cart[i].quantity -= qty;
                    if state.cart[i].quantity <= 0 {
                        state.cart.remove(i);
                    }
                }
            }
        }
        EventKind::Login => state.logged_in = true,
        _ => {}
    }
    Ok(())
}

/// The feature vector of a state, given what was known of the user before the session.
pub fn compute(state: &SessionState, user: &UserHistory) -> Features {
    let mut f = [0.0; LEN];
    let count = |k: EventKind| f64::from(state.kind_counts.get(k as usize).copied().unwrap_or(0));
    let events = f64::from(state.events);
    f[0] = events;
    for (i, k) in [
        EventKind::PageView,
        EventKind::Search,
        EventKind::ProductView,
        EventKind::AddToCart,
        EventKind::RemoveFromCart,
        EventKind::WishlistAdd,
        EventKind::CheckoutStart,
        EventKind::Purchase,
        EventKind::Login,
        EventKind::LoginFailed,
    ]
    .into_iter()
    .enumerate()
    {
        f[1 + i] = count(k);
    }
    f[11] = (state.last_ms - state.first_ms) as f64 / 1000.0;
    f[12] = if state.events > 1 { state.gap_sum_ms as f64 / 1000.0 / (events - 1.0) } else { 0.0 };
    f[13] = state.max_gap_ms as f64 / 1000.0;
    f[14] = if state.product_dwell_n > 0 {
        state.product_dwell_sum_ms as f64 / 1000.0 / f64::from(state.product_dwell_n)
    } else {
        0.0
    };
    f[15] = state.products.len() as f64;
    f[16] = state.category_views.len() as f64;
    let total: u32 = state.category_views.iter().map(|c| c.views).sum();
    f[17] = state
        .category_views
        .iter()
        .map(|c| {
            let p = f64::from(c.views) / f64::from(total.max(1));
            -p * p.log2()
        })
        .sum::<f64>()
        .max(0.0);
    f[18] = state.cart.len() as f64;
    f[19] = state.cart.iter().map(|l| f64::from(l.quantity)).sum();
    // Saturating: a hostile client's quantities and prices must not overflow the cart's value.
    let value: i64 = state
        .cart
        .iter()
        .map(|l| l.unit_price_cents.saturating_mul(i64::from(l.quantity)))
        .fold(0, i64::saturating_add);
    f[20] = value as f64;
    f[21] = (1.0 + value.max(0) as f64 / 100.0).ln();
    f[22] = if state.viewed_price_n > 0 {
        state.viewed_price_sum_cents as f64 / f64::from(state.viewed_price_n)
    } else {
        0.0
    };
    f[23] = state.viewed_price_max_cents as f64;
    f[24] = count(EventKind::AddToCart) / count(EventKind::ProductView).max(1.0);
    f[25] = state.first_ms.div_euclid(3_600_000).rem_euclid(24) as f64;
    f[26] = (state.first_ms.div_euclid(86_400_000) + 3).rem_euclid(7) as f64; // 1970-01-01 was a Thursday
    for (i, d) in DEVICES.iter().enumerate() {
        f[27 + i] = f64::from(u8::from(state.device == *d));
    }
    for (i, c) in CHANNELS.iter().enumerate() {
        f[30 + i] = f64::from(u8::from(state.channel == *c));
    }
    f[36] = f64::from(u8::from(state.campaign));
    f[37] = f64::from(u8::from(state.external_referrer));
    f[38] = f64::from(u8::from(state.logged_in));
    f[39] = f64::from(user.prior_sessions);
    f[40] = f64::from(user.prior_purchases);
    f[41] = if user.last_session_ms > 0 && state.events > 0 {
        (state.first_ms - user.last_session_ms).max(0) as f64 / 86_400_000.0
    } else {
        -1.0
    };
    // Focus: the most-viewed category; ties go to the first name in sorted order.
    let focus = state.category_views.iter().fold(None::<&CategoryCount>, |best, c| match best {
        Some(b) if b.views >= c.views => Some(b),
        _ => Some(c),
    });
    if let Some(c) = focus {
        if let Some(i) = CATEGORIES.iter().position(|x| *x == c.category) {
            f[42 + i] = 1.0;
        }
    }
    // The shopper's local hour: its market's offset from UTC.
    f[53] = (state.first_ms.div_euclid(3_600_000) + utc_offset_hours(&state.country)).rem_euclid(24) as f64;
    f
}

/// Folds `events` into a fresh state: what training does for a session (or its prefix).
pub fn fold<'a>(events: impl IntoIterator<Item = &'a EnrichedEvent>) -> Result<SessionState, FeatureError> {
    let mut s = new_state();
    for e in events {
        update(&mut s, e)?;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecom_proto::v1::Event;
    use proptest::prelude::*;
    use prost::Message;

    fn ev(t: i64, kind: EventKind, product: Option<(&str, i64, &str)>, qty: Option<i32>) -> EnrichedEvent {
        let (pid, price, cat) = product.map_or((None, None, ""), |(p, pr, c)| (Some(p.to_string()), Some(pr), c));
        EnrichedEvent {
            event: Some(Event {
                event_id: format!("e{t}"),
                event_time_ms: t,
                session_id: "s".into(),
                user_id: "u".into(),
                kind: kind as i32,
                product_id: pid,
                unit_price_cents: price,
                quantity: qty,
                device: "mobile".into(),
                channel: "email".into(),
                country: "DE".into(),
                referrer: "https://mail.example.net/?utm_source=email&utm_campaign=sofa_week".into(),
                ..Default::default()
            }),
            category: cat.into(),
            style: if cat.is_empty() { String::new() } else { "nordic".into() },
            ..Default::default()
        }
    }

    /// The fuzzer's `validate` target once found `attempt to add with overflow` here: two
    /// add-to-carts of one product with huge quantities and prices. The cart saturates.
    #[test]
    fn huge_quantities_and_prices_saturate_the_cart() {
        let mut state = new_state();
        let big = Some(("p1", i64::MAX / 2, "sofas"));
        update(&mut state, &ev(1, EventKind::AddToCart, big, Some(i32::MAX))).unwrap();
        update(&mut state, &ev(2, EventKind::AddToCart, big, Some(i32::MAX))).unwrap();
        assert_eq!(state.cart[0].quantity, i32::MAX);
        let f = compute(&state, &UserHistory::default());
        assert!(f.iter().all(|x| x.is_finite()), "{f:?}");
    }

    fn get(f: &Features, name: &str) -> f64 {
        f[NAMES.iter().position(|n| *n == name).unwrap_or_else(|| panic!("no feature {name}"))]
    }

    #[test]
    fn names_are_unique_and_the_hash_is_stable() {
        let mut seen = std::collections::HashSet::new();
        assert!(NAMES.iter().all(|n| seen.insert(*n)));
        assert_eq!(schema_hash(), schema_hash());
        assert_eq!(schema_hash().len(), 16);
    }

    #[test]
    fn a_small_session_gives_the_expected_features() {
        let t0 = 1_767_258_000_000; // 2026-01-01 09:00 UTC, a Thursday
        let events = [
            ev(t0, EventKind::PageView, None, None),
            ev(t0 + 10_000, EventKind::ProductView, Some(("P1", 50_000, "sofas")), None),
            ev(t0 + 40_000, EventKind::AddToCart, Some(("P1", 50_000, "sofas")), Some(2)),
            ev(t0 + 50_000, EventKind::ProductView, Some(("P2", 3_000, "decor")), None),
            ev(t0 + 60_000, EventKind::ProductView, Some(("P3", 70_000, "sofas")), None),
            ev(t0 + 65_000, EventKind::RemoveFromCart, Some(("P1", 50_000, "sofas")), Some(1)),
            ev(t0 + 70_000, EventKind::Login, None, None),
        ];
        let s = fold(&events).unwrap();
        let user = UserHistory { prior_sessions: 2, prior_purchases: 1, last_session_ms: t0 - 2 * 86_400_000 };
        let f = compute(&s, &user);
        assert_eq!(get(&f, "events"), 7.0);
        assert_eq!(get(&f, "product_views"), 3.0);
        assert_eq!(get(&f, "duration_s"), 70.0);
        assert_eq!(get(&f, "max_gap_s"), 30.0);
        // Product dwell: 30 s, 10 s, 5 s.
        assert_eq!(get(&f, "mean_product_dwell_s"), 15.0);
        assert_eq!(get(&f, "distinct_products"), 3.0);
        assert_eq!(get(&f, "distinct_categories"), 2.0);
        let h = -(2.0 / 3.0f64) * (2.0 / 3.0f64).log2() - (1.0 / 3.0f64) * (1.0 / 3.0f64).log2();
        assert!((get(&f, "category_entropy_bits") - h).abs() < 1e-12);
        assert_eq!(get(&f, "cart_lines"), 1.0);
        assert_eq!(get(&f, "cart_units"), 1.0);
        assert_eq!(get(&f, "cart_value_cents"), 50_000.0);
        assert_eq!(get(&f, "max_viewed_price_cents"), 70_000.0);
        assert_eq!(get(&f, "mean_viewed_price_cents"), 41_000.0);
        assert_eq!(get(&f, "hour_utc"), 9.0);
        assert_eq!(get(&f, "hour_local"), 10.0); // DE
        assert_eq!(get(&f, "day_of_week"), 3.0);
        assert_eq!(get(&f, "device_mobile"), 1.0);
        assert_eq!(get(&f, "channel_email"), 1.0);
        assert_eq!(get(&f, "campaign"), 1.0);
        assert_eq!(get(&f, "external_referrer"), 1.0);
        assert_eq!(get(&f, "logged_in"), 1.0);
        assert_eq!(get(&f, "days_since_last_session"), 2.0);
        assert_eq!(get(&f, "focus_sofas"), 1.0);
        assert_eq!(get(&f, "focus_decor"), 0.0);
        assert!(s.tokens.contains(&"c:sofas".to_string()) && s.tokens.contains(&"s:nordic".to_string()));
    }

    #[test]
    fn a_state_from_another_schema_is_refused() {
        let mut s = new_state();
        s.schema_version = 99;
        let err = update(&mut s, &ev(1, EventKind::PageView, None, None)).unwrap_err();
        assert!(err.to_string().contains("version 99"), "{err}");
    }

    proptest! {
        /// Folding in one go, or event by event through encoded state bytes (as the job does),
        /// gives the same features.
        #[test]
        fn state_bytes_round_trip_gives_the_same_features(
            steps in proptest::collection::vec((0i64..120_000, 1i32..=10, 0usize..5, 1i32..4), 1..40)
        ) {
            let cats = ["sofas", "beds", "decor", "rugs", "kids"];
            let mut t = 1_767_225_600_000i64;
            let events: Vec<EnrichedEvent> = steps.iter().map(|(dt, k, p, q)| {
                t += dt;
                let kind = EventKind::try_from(*k).unwrap();
                let product = matches!(kind, EventKind::ProductView | EventKind::AddToCart | EventKind::RemoveFromCart | EventKind::WishlistAdd | EventKind::Purchase)
                    .then(|| (["P1", "P2", "P3", "P4", "P5"][*p], 1_000 * (*p as i64 + 1), cats[*p]));
                ev(t, kind, product, Some(*q))
            }).collect();
            let whole = compute(&fold(&events).unwrap(), &UserHistory::default());
            let mut bytes = new_state().encode_to_vec();
            for e in &events {
                let mut s = SessionState::decode(bytes.as_slice()).unwrap();
                update(&mut s, e).unwrap();
                bytes = s.encode_to_vec();
            }
            let stepwise = compute(&SessionState::decode(bytes.as_slice()).unwrap(), &UserHistory::default());
            prop_assert_eq!(whole.map(f64::to_bits), stepwise.map(f64::to_bits));
            prop_assert!(whole.iter().all(|x| x.is_finite()));
            prop_assert!(get(&whole, "cart_units") >= 0.0);
        }
    }
}
