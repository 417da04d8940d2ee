//! Injected abuse, labelled in the truth: crawlers (user agents from the public
//! crawler-user-agents list), headless bots (normal agents, machine-regular timing),
//! credential stuffing, card testing and cart-abandon storms. Each returns whole sessions.
use crate::catalog::CATEGORIES;
use crate::persona::DESKTOP_AGENTS;
use crate::Shop;
use ecom_proto::v1::{Anomaly, Event, EventKind, SessionTruth};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::sync::OnceLock;

/// Crawler user agents shipped by the npm package crawler-user-agents (see the file header).
pub fn crawler_agents() -> &'static [&'static str] {
    static LIST: OnceLock<Vec<&'static str>> = OnceLock::new();
    LIST.get_or_init(|| {
        include_str!("../data/crawler-user-agents.txt")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .collect()
    })
}

/// One generated anomalous session: its events and its truth.
pub type Generated = (SessionTruth, Vec<Event>);

/// Who sends an anomalous session's events.
struct Who<'a> {
    sid: &'a str,
    user: &'a str,
    ip: &'a str,
    ua: &'a str,
    country: &'a str,
}

fn base(w: &Who<'_>, t: i64, kind: EventKind, page: String) -> Event {
    Event {
        event_time_ms: t,
        user_id: w.user.to_string(),
        session_id: w.sid.to_string(),
        kind: kind as i32,
        page,
        channel: "direct".into(),
        device: "desktop".into(),
        user_agent: w.ua.to_string(),
        ip: w.ip.to_string(),
        country: w.country.to_string(),
        ..Default::default()
    }
}

fn truth(anomaly: Anomaly, events: &[Event], purchased: bool) -> SessionTruth {
    SessionTruth {
        session_id: events[0].session_id.clone(),
        user_id: events[0].user_id.clone(),
        persona: "anomaly".into(),
        // The generator decided the outcome outright: probability 0 or 1.
        purchase_probability: if purchased { 1.0 } else { 0.0 },
        purchased,
        anomaly: anomaly as i32,
        start_ms: events[0].event_time_ms,
        events: events.len() as i32,
        returning_user: false,
        truncated: false,
        // Decided before the first event.
        decision_events: 0,
        decision_ms: 0,
        observable_probability: if purchased { 1.0 } else { 0.0 },
        inferable_probability: if purchased { 1.0 } else { 0.0 },
    }
}

fn product_view(e: &mut Event, shop: &Shop, rng: &mut ChaCha8Rng) {
    let p = &shop.products[rng.random_range(0..shop.products.len())];
    e.product_id = Some(p.product_id.clone());
    e.unit_price_cents = Some(p.price_cents);
    e.page = format!("/p/{}", p.product_id);
}

fn datacenter_ip(rng: &mut ChaCha8Rng) -> String {
    let prefix = ["34", "35", "52", "66.249", "157.55", "185.191"][rng.random_range(0..6)];
    let mut ip = prefix.to_string();
    while ip.matches('.').count() < 3 {
        ip.push_str(&format!(".{}", rng.random_range(1..255)));
    }
    ip
}

/// A declared crawler walking the catalog quickly.
pub fn crawler(shop: &Shop, start: i64, ids: &mut dyn FnMut(i64) -> String, rng: &mut ChaCha8Rng) -> Vec<Generated> {
    let agents = crawler_agents();
    let ua = agents[rng.random_range(0..agents.len())];
    let sid = ids(start);
    let user = format!("anon-{}", &sid[..8]);
    let ip = datacenter_ip(rng);
    let mut t = start;
    let events: Vec<Event> = (0..rng.random_range(30..150))
        .map(|i| {
            let mut e = base(
                &Who { sid: &sid, user: &user, ip: &ip, ua, country: "US" },
                t,
                EventKind::PageView,
                format!("/c/{}", CATEGORIES[i % CATEGORIES.len()].name),
            );
            if i % 3 != 0 {
                e.kind = EventKind::ProductView as i32;
                product_view(&mut e, shop, rng);
            }
            t += rng.random_range(300..3_000);
            e
        })
        .collect();
    vec![(truth(Anomaly::Crawler, &events, false), events)]
}

/// A headless browser: an ordinary user agent, but requests at machine-regular intervals.
pub fn headless(shop: &Shop, start: i64, ids: &mut dyn FnMut(i64) -> String, rng: &mut ChaCha8Rng) -> Vec<Generated> {
    let sid = ids(start);
    let user = format!("anon-{}", &sid[..8]);
    let ip = datacenter_ip(rng);
    let ua = DESKTOP_AGENTS[rng.random_range(0..DESKTOP_AGENTS.len())];
    let period = rng.random_range(800..2_500);
    let events: Vec<Event> = (0..rng.random_range(40..120))
        .map(|i| {
            let mut e = base(
                &Who { sid: &sid, user: &user, ip: &ip, ua, country: "DE" },
                start + i * period + rng.random_range(0..4),
                EventKind::ProductView,
                String::new(),
            );
            product_view(&mut e, shop, rng);
            e
        })
        .collect();
    vec![(truth(Anomaly::HeadlessBot, &events, false), events)]
}

/// Credential stuffing in one of its two shapes: a list of stolen logins tried from a handful of
/// addresses (many users per IP; two bursts in three), or a few accounts attacked through a pool
/// of rotating proxies so that no address tries more than once or twice (many IPs per user).
pub fn credential_stuffing(start: i64, ids: &mut dyn FnMut(i64) -> String, rng: &mut ChaCha8Rng) -> Vec<Generated> {
    if rng.random_bool(1.0 / 3.0) {
        return account_attack(start, ids, rng);
    }
    let ips: Vec<String> = (0..rng.random_range(1..4)).map(|_| datacenter_ip(rng)).collect();
    let ua = DESKTOP_AGENTS[0];
    let mut t = start;
    (0..rng.random_range(20..60))
        .map(|_| {
            let sid = ids(t);
            let user = format!("u{:07}", rng.random_range(0..10_000_000));
            let ip = &ips[rng.random_range(0..ips.len())];
            let tries = rng.random_range(1..4);
            let events: Vec<Event> = (0..tries)
                .map(|k| {
                    let kind =
                        if k == tries - 1 && rng.random_bool(0.03) { EventKind::Login } else { EventKind::LoginFailed };
                    base(&Who { sid: &sid, user: &user, ip, ua, country: "NL" }, t + k * 400, kind, "/login".into())
                })
                .collect();
            t += rng.random_range(200..2_000);
            (truth(Anomaly::CredentialStuffing, &events, false), events)
        })
        .collect()
}

/// One to three known accounts tried through rotating residential proxies: each session is one
/// proxy address trying one account once or twice, so only the number of addresses per account
/// gives it away.
fn account_attack(start: i64, ids: &mut dyn FnMut(i64) -> String, rng: &mut ChaCha8Rng) -> Vec<Generated> {
    let users: Vec<String> =
        (0..rng.random_range(1..4)).map(|_| format!("u{:07}", rng.random_range(0..10_000_000))).collect();
    let ua = DESKTOP_AGENTS[rng.random_range(0..DESKTOP_AGENTS.len())];
    let mut t = start;
    (0..rng.random_range(15..45))
        .map(|_| {
            let sid = ids(t);
            let user = &users[rng.random_range(0..users.len())];
            let ip = crate::persona::residential_ip(rng);
            let tries = rng.random_range(1..3);
            let events: Vec<Event> = (0..tries)
                .map(|k| {
                    base(
                        &Who { sid: &sid, user, ip: &ip, ua, country: "US" },
                        t + k * 700,
                        EventKind::LoginFailed,
                        "/login".into(),
                    )
                })
                .collect();
            t += rng.random_range(2_000..15_000);
            (truth(Anomaly::CredentialStuffing, &events, false), events)
        })
        .collect()
}

/// A burst of tiny purchases from one address: stolen cards being tried.
pub fn card_testing(
    shop: &Shop,
    start: i64,
    ids: &mut dyn FnMut(i64) -> String,
    rng: &mut ChaCha8Rng,
) -> Vec<Generated> {
    let ip = datacenter_ip(rng);
    let ua = DESKTOP_AGENTS[rng.random_range(0..DESKTOP_AGENTS.len())];
    let cheap: Vec<_> = shop.products.iter().filter(|p| p.price_cents <= 1_500).collect();
    let mut t = start;
    (0..rng.random_range(5..20))
        .map(|_| {
            let sid = ids(t);
            let user = format!("guest-{}", &sid[..8]);
            let p = cheap.get(rng.random_range(0..cheap.len().max(1))).copied().unwrap_or(&shop.products[0]);
            let mut events = Vec::new();
            for (k, kind) in
                [EventKind::ProductView, EventKind::AddToCart, EventKind::CheckoutStart, EventKind::Purchase]
                    .into_iter()
                    .enumerate()
            {
                let mut e = base(
                    &Who { sid: &sid, user: &user, ip: &ip, ua, country: "GB" },
                    t + k as i64 * 1_500,
                    kind,
                    "/checkout".into(),
                );
                if kind != EventKind::CheckoutStart {
                    e.product_id = Some(p.product_id.clone());
                    e.unit_price_cents = Some(p.price_cents);
                    e.page = format!("/p/{}", p.product_id);
                }
                if matches!(kind, EventKind::AddToCart | EventKind::Purchase) {
                    e.quantity = Some(1);
                }
                events.push(e);
            }
            t += rng.random_range(3_000..20_000);
            (truth(Anomaly::CardTesting, &events, true), events)
        })
        .collect()
}

/// Many sessions from many addresses putting the same product in the cart and leaving.
pub fn cart_abandon_storm(
    shop: &Shop,
    start: i64,
    ids: &mut dyn FnMut(i64) -> String,
    rng: &mut ChaCha8Rng,
) -> Vec<Generated> {
    let p = &shop.products[rng.random_range(0..shop.products.len())];
    let mut t = start;
    (0..rng.random_range(20..50))
        .map(|_| {
            let sid = ids(t);
            let user = format!("guest-{}", &sid[..8]);
            let ip = datacenter_ip(rng);
            let ua = DESKTOP_AGENTS[rng.random_range(0..DESKTOP_AGENTS.len())];
            let mut events = Vec::new();
            for (k, kind) in [EventKind::ProductView, EventKind::AddToCart].into_iter().enumerate() {
                let mut e = base(
                    &Who { sid: &sid, user: &user, ip: &ip, ua, country: "PL" },
                    t + k as i64 * 2_000,
                    kind,
                    format!("/p/{}", p.product_id),
                );
                e.product_id = Some(p.product_id.clone());
                e.unit_price_cents = Some(p.price_cents);
                if kind == EventKind::AddToCart {
                    e.quantity = Some(rng.random_range(5..20));
                }
                events.push(e);
            }
            t += rng.random_range(500..5_000);
            (truth(Anomaly::CartAbandonStorm, &events, false), events)
        })
        .collect()
}
