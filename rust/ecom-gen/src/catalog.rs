//! The shop's catalog: furniture products over eleven categories, each with plausible
//! materials, styles, sizes and a log-normal price distribution per category (integer cents).
use ecom_proto::v1::Product;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};

/// What a category looks like: price distribution and the attributes it draws from.
#[derive(Debug, Clone, Copy)]
pub struct Category {
    /// Name as it appears in events and the catalog.
    pub name: &'static str,
    /// Median price in cents.
    pub median_price_cents: i64,
    /// Log-normal sigma of the price (spread).
    pub price_sigma: f64,
    /// Lowest and highest price in cents (clamped).
    pub price_range_cents: (i64, i64),
    /// Share of the catalog.
    pub weight: u32,
    /// Kinds of product, used in names and search queries.
    pub nouns: &'static [&'static str],
    /// Materials it is made of.
    pub materials: &'static [&'static str],
    /// (width, depth, height) ranges in cm.
    pub size_cm: ((i32, i32), (i32, i32), (i32, i32)),
    /// Typical gross margin in basis points.
    pub margin_bp: (i32, i32),
}

/// The eleven categories of the shop.
pub const CATEGORIES: &[Category] = &[
    Category {
        name: "sofas",
        median_price_cents: 89_900,
        price_sigma: 0.45,
        price_range_cents: (19_900, 699_900),
        weight: 10,
        nouns: &["sofa", "corner sofa", "sofa bed", "loveseat", "chaise longue"],
        materials: &["linen", "velvet", "leather", "wool", "polyester"],
        size_cm: ((140, 320), (80, 180), (70, 100)),
        margin_bp: (3500, 5500),
    },
    Category {
        name: "beds",
        median_price_cents: 59_900,
        price_sigma: 0.5,
        price_range_cents: (12_900, 459_900),
        weight: 9,
        nouns: &["bed frame", "box spring bed", "bunk bed", "day bed", "headboard"],
        materials: &["oak", "pine", "walnut", "metal", "upholstered"],
        size_cm: ((90, 200), (190, 220), (30, 140)),
        margin_bp: (3000, 5000),
    },
    Category {
        name: "tables",
        median_price_cents: 34_900,
        price_sigma: 0.6,
        price_range_cents: (4_900, 329_900),
        weight: 11,
        nouns: &["dining table", "coffee table", "side table", "console table", "extendable table"],
        materials: &["oak", "walnut", "glass", "marble", "pine", "metal"],
        size_cm: ((40, 260), (40, 110), (40, 78)),
        margin_bp: (3000, 5200),
    },
    Category {
        name: "chairs",
        median_price_cents: 12_900,
        price_sigma: 0.55,
        price_range_cents: (2_900, 149_900),
        weight: 12,
        nouns: &["dining chair", "armchair", "bar stool", "rocking chair", "bench"],
        materials: &["oak", "rattan", "velvet", "plastic", "metal", "leather"],
        size_cm: ((40, 95), (45, 95), (75, 110)),
        margin_bp: (3500, 6000),
    },
    Category {
        name: "storage",
        median_price_cents: 24_900,
        price_sigma: 0.6,
        price_range_cents: (2_900, 249_900),
        weight: 11,
        nouns: &["wardrobe", "chest of drawers", "bookcase", "sideboard", "shoe cabinet", "shelf"],
        materials: &["oak", "pine", "white lacquer", "walnut", "metal"],
        size_cm: ((40, 240), (25, 65), (40, 240)),
        margin_bp: (3000, 5000),
    },
    Category {
        name: "lighting",
        median_price_cents: 7_900,
        price_sigma: 0.7,
        price_range_cents: (990, 89_900),
        weight: 10,
        nouns: &["floor lamp", "pendant lamp", "desk lamp", "wall light", "table lamp"],
        materials: &["brass", "glass", "paper", "metal", "ceramic"],
        size_cm: ((10, 60), (10, 60), (20, 190)),
        margin_bp: (4500, 6500),
    },
    Category {
        name: "rugs",
        median_price_cents: 14_900,
        price_sigma: 0.65,
        price_range_cents: (1_990, 199_900),
        weight: 8,
        nouns: &["rug", "runner", "round rug", "shaggy rug", "outdoor rug"],
        materials: &["wool", "jute", "cotton", "polypropylene", "viscose"],
        size_cm: ((60, 300), (90, 400), (1, 4)),
        margin_bp: (4500, 6500),
    },
    Category {
        name: "decor",
        median_price_cents: 2_900,
        price_sigma: 0.75,
        price_range_cents: (490, 39_900),
        weight: 13,
        nouns: &["mirror", "vase", "cushion", "throw", "wall art", "candle holder", "plant pot"],
        materials: &["ceramic", "glass", "cotton", "brass", "linen", "stoneware"],
        size_cm: ((10, 120), (5, 60), (5, 180)),
        margin_bp: (5000, 7000),
    },
    Category {
        name: "outdoor",
        median_price_cents: 29_900,
        price_sigma: 0.6,
        price_range_cents: (2_900, 299_900),
        weight: 6,
        nouns: &["garden table", "lounge chair", "parasol", "garden sofa", "sun lounger"],
        materials: &["teak", "acacia", "aluminium", "rattan", "steel"],
        size_cm: ((50, 260), (50, 200), (40, 250)),
        margin_bp: (3500, 5500),
    },
    Category {
        name: "office",
        median_price_cents: 24_900,
        price_sigma: 0.55,
        price_range_cents: (3_900, 219_900),
        weight: 6,
        nouns: &["desk", "office chair", "standing desk", "filing cabinet", "monitor stand"],
        materials: &["oak", "steel", "mesh", "walnut", "white laminate"],
        size_cm: ((40, 200), (40, 90), (45, 130)),
        margin_bp: (3500, 5500),
    },
    Category {
        name: "kids",
        median_price_cents: 9_900,
        price_sigma: 0.6,
        price_range_cents: (1_490, 89_900),
        weight: 4,
        nouns: &["kids bed", "toy storage", "high chair", "kids desk", "play tent"],
        materials: &["pine", "birch", "cotton", "plastic", "beech"],
        size_cm: ((30, 200), (30, 100), (30, 160)),
        margin_bp: (4000, 6000),
    },
];

/// Styles, shared by all categories.
pub const STYLES: &[&str] =
    &["scandinavian", "industrial", "mid-century", "modern", "rustic", "classic", "boho", "minimalist"];
/// Colours, shared by all categories.
pub const COLOURS: &[&str] =
    &["white", "black", "grey", "beige", "natural", "green", "blue", "terracotta", "walnut brown"];
/// Brands of the shop's suppliers.
pub const BRANDS: &[&str] = &[
    "Nordhus",
    "Atelier Loft",
    "Verde Living",
    "Casa Forte",
    "Oakline",
    "Lumen & Co",
    "Hygge Home",
    "Studio Brera",
    "Tidewood",
    "Kinderkraft",
];

/// Generates `n` products deterministically from `rng`; ids are P00000..
pub fn generate(n: usize, rng: &mut ChaCha8Rng) -> Vec<Product> {
    let total: u32 = CATEGORIES.iter().map(|c| c.weight).sum();
    (0..n)
        .map(|i| {
            let mut pick = rng.random_range(0..total);
            let cat = CATEGORIES
                .iter()
                .find(|c| {
                    if pick < c.weight {
                        true
                    } else {
                        pick -= c.weight;
                        false
                    }
                })
                .expect("pick < total");
            product(i, cat, rng)
        })
        .collect()
}

fn pick<'a>(xs: &[&'a str], rng: &mut ChaCha8Rng) -> &'a str {
    xs[rng.random_range(0..xs.len())]
}

fn product(i: usize, cat: &Category, rng: &mut ChaCha8Rng) -> Product {
    let dist = LogNormal::new((cat.median_price_cents as f64).ln(), cat.price_sigma).expect("sigma > 0");
    let raw = dist.sample(rng) as i64;
    // Shops price at .90 or .00; clamp into the category's plausible range.
    let price = (raw.clamp(cat.price_range_cents.0, cat.price_range_cents.1) / 100) * 100
        + if rng.random_bool(0.7) { 90 } else { 0 };
    let style = pick(STYLES, rng);
    let material = pick(cat.materials, rng);
    let colour = pick(COLOURS, rng);
    let noun = pick(cat.nouns, rng);
    let ((w0, w1), (d0, d1), (h0, h1)) = cat.size_cm;
    Product {
        product_id: format!("P{i:05}"),
        name: format!("{} {} {}", capitalise(style), material, noun),
        category: cat.name.to_string(),
        material: material.to_string(),
        style: style.to_string(),
        colour: colour.to_string(),
        brand: pick(BRANDS, rng).to_string(),
        price_cents: price,
        width_cm: rng.random_range(w0..=w1),
        depth_cm: rng.random_range(d0..=d1),
        height_cm: rng.random_range(h0..=h1),
        stock: if rng.random_bool(0.05) { 0 } else { rng.random_range(1..500) },
        margin_bp: rng.random_range(cat.margin_bp.0..=cat.margin_bp.1),
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn catalog_is_large_varied_and_priced_per_category() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let products = generate(2_400, &mut rng);
        assert_eq!(products.len(), 2_400);
        for c in CATEGORIES {
            let mut prices: Vec<i64> =
                products.iter().filter(|p| p.category == c.name).map(|p| p.price_cents).collect();
            assert!(prices.len() > 50, "{} has {} products", c.name, prices.len());
            prices.sort_unstable();
            let median = prices[prices.len() / 2] as f64;
            let want = c.median_price_cents as f64;
            assert!((median / want - 1.0).abs() < 0.25, "{}: median {median} vs {want}", c.name);
            assert!(prices.iter().all(|p| *p >= c.price_range_cents.0 && *p <= c.price_range_cents.1 + 90));
        }
        assert!(products.iter().all(|p| p.price_cents % 100 == 0 || p.price_cents % 100 == 90));
    }
}
