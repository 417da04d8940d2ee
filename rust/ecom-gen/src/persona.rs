//! Who shops: personas with their behaviour parameters, and users drawn from them (new vs
//! returning, device, channel and campaign, country with its time zone, logins).
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A kind of shopper and how it behaves. The numbers are the generator's model; the
/// propensity formula that uses them is documented in docs/GENERATOR.md.
#[derive(Debug, Clone, Copy)]
pub struct Persona {
    /// Name recorded in the truth.
    pub name: &'static str,
    /// Share of users.
    pub weight: u32,
    /// Base purchase log-odds of a session.
    pub base_logit: f64,
    /// Mean product views per session (before intent scaling).
    pub mean_product_views: f64,
    /// Mean page views (home, category pages) per session.
    pub mean_page_views: f64,
    /// Probability a step is a search.
    pub search_rate: f64,
    /// How strongly cart value above the category median lowers the log-odds.
    pub price_sensitivity: f64,
    /// How much a promotion day adds to the log-odds.
    pub promo_sensitivity: f64,
    /// Multiplier on prices of products they look at (luxury > 1, deal hunter < 1).
    pub price_taste: f64,
    /// Categories they favour (empty = all alike).
    pub favourite_categories: &'static [&'static str],
    /// Mean seconds spent on a product page.
    pub product_dwell_s: f64,
    /// Probability of desktop, mobile (rest is tablet).
    pub device_mix: (f64, f64),
    /// Mean quantity per cart line.
    pub mean_quantity: f64,
    /// Where its session conversion (ordinary, complete sessions) must fall; a test checks it.
    pub conversion_band: (f64, f64),
    /// Where the median price of the products it views must fall, in cents; a test checks it.
    pub view_price_band_cents: (i64, i64),
}

/// The personas of the shop.
pub const PERSONAS: &[Persona] = &[
    Persona {
        name: "browser",
        weight: 34,
        base_logit: -5.1,
        mean_product_views: 2.5,
        mean_page_views: 4.0,
        search_rate: 0.10,
        price_sensitivity: 0.6,
        promo_sensitivity: 0.4,
        price_taste: 1.0,
        favourite_categories: &[],
        product_dwell_s: 25.0,
        device_mix: (0.35, 0.55),
        mean_quantity: 1.0,
        conversion_band: (0.004, 0.02),
        view_price_band_cents: (14_000, 28_000),
    },
    Persona {
        name: "researcher",
        weight: 20,
        base_logit: -4.0,
        mean_product_views: 7.0,
        mean_page_views: 2.0,
        search_rate: 0.30,
        price_sensitivity: 0.5,
        promo_sensitivity: 0.3,
        price_taste: 1.1,
        favourite_categories: &["sofas", "beds", "tables", "storage"],
        product_dwell_s: 75.0,
        device_mix: (0.6, 0.3),
        mean_quantity: 1.0,
        conversion_band: (0.035, 0.085),
        view_price_band_cents: (25_000, 50_000),
    },
    Persona {
        name: "deal_hunter",
        weight: 18,
        base_logit: -4.1,
        mean_product_views: 5.0,
        mean_page_views: 3.0,
        search_rate: 0.35,
        price_sensitivity: 1.4,
        promo_sensitivity: 1.3,
        price_taste: 0.6,
        favourite_categories: &["decor", "lighting", "rugs", "chairs"],
        product_dwell_s: 30.0,
        device_mix: (0.3, 0.65),
        mean_quantity: 1.3,
        conversion_band: (0.035, 0.09),
        view_price_band_cents: (5_000, 12_000),
    },
    Persona {
        name: "decisive_buyer",
        weight: 12,
        base_logit: -2.3,
        mean_product_views: 1.8,
        mean_page_views: 1.0,
        search_rate: 0.25,
        price_sensitivity: 0.3,
        promo_sensitivity: 0.2,
        price_taste: 1.0,
        favourite_categories: &[],
        product_dwell_s: 40.0,
        device_mix: (0.5, 0.45),
        mean_quantity: 1.2,
        conversion_band: (0.13, 0.26),
        view_price_band_cents: (14_000, 28_000),
    },
    Persona {
        name: "luxury",
        weight: 8,
        base_logit: -3.3,
        mean_product_views: 4.0,
        mean_page_views: 2.0,
        search_rate: 0.15,
        price_sensitivity: 0.1,
        promo_sensitivity: 0.0,
        price_taste: 2.6,
        favourite_categories: &["sofas", "beds", "lighting", "tables"],
        product_dwell_s: 90.0,
        device_mix: (0.55, 0.3),
        mean_quantity: 1.0,
        conversion_band: (0.05, 0.14),
        view_price_band_cents: (40_000, 85_000),
    },
    Persona {
        name: "business_buyer",
        weight: 8,
        base_logit: -2.9,
        mean_product_views: 4.0,
        mean_page_views: 1.5,
        search_rate: 0.4,
        price_sensitivity: 0.4,
        promo_sensitivity: 0.2,
        price_taste: 1.2,
        favourite_categories: &["office", "chairs", "storage", "lighting"],
        product_dwell_s: 45.0,
        device_mix: (0.9, 0.08),
        mean_quantity: 4.0,
        conversion_band: (0.1, 0.22),
        view_price_band_cents: (14_000, 28_000),
    },
];

/// Countries (ecom-core's markets) with their share of users; the UTC offset of each comes from
/// `ecom_core::features::utc_offset_hours`.
pub const COUNTRIES: &[(&str, u32)] =
    &[("DE", 22), ("FR", 14), ("NL", 8), ("GB", 14), ("SE", 5), ("PL", 6), ("ES", 8), ("IT", 8), ("AT", 4), ("US", 11)];

/// Channels with their log-odds effect on purchase and their referrers / campaigns.
pub const CHANNELS: &[(&str, f64, u32, &str)] = &[
    ("organic", 0.0, 34, "https://www.google.com/"),
    ("paid_search", 0.3, 20, "https://www.google.com/aclk"),
    ("email", 0.5, 10, "https://mail.example.net/"),
    ("social", -0.4, 14, "https://www.instagram.com/"),
    ("direct", 0.25, 16, ""),
    ("affiliate", 0.1, 6, "https://www.dealsite.example/"),
];

/// Campaigns used on paid channels (utm_campaign).
pub const CAMPAIGNS: &[&str] =
    &["spring_sale", "new_collection", "sofa_week", "black_friday", "home_office", "garden_season"];

/// A user of the shop.
#[derive(Debug, Clone)]
pub struct User {
    /// Stable id.
    pub user_id: String,
    /// Index into PERSONAS.
    pub persona: usize,
    /// Country code and its UTC offset.
    pub country: (&'static str, i64),
    /// Preferred device.
    pub device: &'static str,
    /// Browser user agent (one per user).
    pub user_agent: &'static str,
    /// Home IP (v4 text).
    pub ip: String,
    /// Purchases before the data began (returning buyers); a model never sees them.
    pub purchases_before_data: u32,
    /// Purchases since the data began.
    pub purchases_in_data: u32,
    /// What the user's sessions so far tell of their persona and account (`inference`).
    pub belief: crate::inference::Belief,
    /// Sessions so far in this run.
    pub sessions: u32,
    /// Has an account and logs in.
    pub has_account: bool,
}

/// Ordinary browser user agents by device.
pub const DESKTOP_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
];
/// Mobile user agents.
pub const MOBILE_AGENTS: &[&str] = &[
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
];
/// Tablet user agents.
pub const TABLET_AGENTS: &[&str] = &[
    "Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
];

pub(crate) fn weighted<T>(items: &[T], weight: impl Fn(&T) -> u32, rng: &mut ChaCha8Rng) -> usize {
    let total: u32 = items.iter().map(&weight).sum();
    let mut x = rng.random_range(0..total);
    for (i, it) in items.iter().enumerate() {
        let w = weight(it);
        if x < w {
            return i;
        }
        x -= w;
    }
    items.len() - 1
}

/// Most purchases a returning user made before the data began (uniform from none).
pub const MAX_PRIOR_PURCHASES: u32 = 5;
/// Share of new users who have an account (returning users all do).
pub const NEW_USER_ACCOUNT_SHARE: f64 = 0.3;

/// Draws a new user.
pub fn new_user(index: u64, returning_share: f64, rng: &mut ChaCha8Rng) -> User {
    let persona = weighted(PERSONAS, |p| p.weight, rng);
    let p = &PERSONAS[persona];
    let c = COUNTRIES[weighted(COUNTRIES, |c| c.1, rng)];
    let r: f64 = rng.random();
    let (device, agents) = if r < p.device_mix.0 {
        ("desktop", DESKTOP_AGENTS)
    } else if r < p.device_mix.0 + p.device_mix.1 {
        ("mobile", MOBILE_AGENTS)
    } else {
        ("tablet", TABLET_AGENTS)
    };
    let returning = rng.random_bool(returning_share);
    User {
        user_id: format!("u{index:07}"),
        persona,
        country: (c.0, ecom_core::features::utc_offset_hours(c.0)),
        device,
        user_agent: agents[rng.random_range(0..agents.len())],
        ip: residential_ip(rng),
        purchases_before_data: if returning { rng.random_range(0..=MAX_PRIOR_PURCHASES) } else { 0 },
        purchases_in_data: 0,
        belief: crate::inference::prior(device, returning_share),
        sessions: 0,
        has_account: returning || rng.random_bool(NEW_USER_ACCOUNT_SHARE),
    }
}

/// A home or mobile address: any public-looking IPv4 outside the datacenter ranges bots use.
pub(crate) fn residential_ip(rng: &mut ChaCha8Rng) -> String {
    format!(
        "{}.{}.{}.{}",
        rng.random_range(11..223),
        rng.random_range(0..256),
        rng.random_range(0..256),
        rng.random_range(1..255)
    )
}
