//! Unit tests of the rules, the agent patterns, request checks and the config file.
use super::*;
use ecom_core::validate::{MAX_AMOUNT_CENTS, MAX_ID_LEN, MAX_IP_LEN, MAX_TEXT_LEN};
use ecom_proto::v1::EventKind;
use std::path::PathBuf;
use std::time::Duration;

fn quiet() -> Signals {
    Signals { gap_cv_milli: -1, ..Default::default() }
}

fn rules(d: &Decision) -> Vec<&str> {
    d.findings.iter().map(|f| f.rule.as_str()).collect()
}

#[test]
fn quiet_numbers_allow_with_no_findings() {
    let d = decide(&Signals { ip_rate: 5, user_rate: 5, session_rate: 5, gaps: 3, ..quiet() }, &Default::default());
    assert_eq!(d, Decision { verdict: Verdict::Allow, findings: vec![], reasons: vec![] });
}

#[test]
fn limits_are_exclusive_and_block_beats_flag() {
    let cfg = GuardConfig { ip_flag_per_min: 3, ip_block_per_min: 5, ..Default::default() };
    let verdict = |n| decide(&Signals { ip_rate: n, ..quiet() }, &cfg).verdict;
    assert_eq!([3, 4, 5, 6].map(verdict), [Verdict::Allow, Verdict::Flag, Verdict::Flag, Verdict::Block]);
    let d = decide(&Signals { ip_rate: 4, ..quiet() }, &cfg);
    assert_eq!(d.reasons, vec!["ip_rate: 4 events/min from this IP > flag limit 3"]);
    assert_eq!((d.findings[0].value, d.findings[0].threshold), (4.0, 3.0));
    let d = decide(&Signals { ip_rate: 6, session_rate: 61, ..quiet() }, &cfg);
    assert_eq!(rules(&d), vec![rule::IP_RATE, rule::SESSION_RATE]);
    assert_eq!(d.verdict, Verdict::Block);
    assert_eq!(d.findings[1].verdict, Verdict::Flag as i32);
}

#[test]
fn every_counting_rule_fires_on_its_own_number() {
    let cfg = GuardConfig::default();
    let cases: Vec<(Signals, &str, i64)> = vec![
        (Signals { user_rate: 121, ..quiet() }, rule::USER_RATE, 120),
        (Signals { session_rate: 61, ..quiet() }, rule::SESSION_RATE, 60),
        (Signals { failed_users_per_ip: 3, ..quiet() }, rule::CREDENTIAL_STUFFING_IP, 2),
        (Signals { failed_ips_per_user: 4, ..quiet() }, rule::CREDENTIAL_STUFFING_USER, 3),
        (Signals { small_purchase_sessions_per_ip: 2, ..quiet() }, rule::CARD_TESTING, 1),
        (Signals { bulk_cart_sessions: 3, ..quiet() }, rule::BULK_CART, 2),
        (Signals { products_per_ip: 41, ..quiet() }, rule::SCRAPING, 40),
        (Signals { fast_gaps: 5, ..quiet() }, rule::IMPOSSIBLE_SPEED, 4),
    ];
    for (s, name, limit) in cases {
        let d = decide(&s, &cfg);
        assert_eq!(rules(&d), vec![name], "{s:?}");
        assert_eq!(d.verdict, Verdict::Flag, "{name}");
        assert_eq!(d.findings[0].threshold, limit as f64, "{name}");
        assert!(d.reasons[0].starts_with(&format!("{name}: ")), "{:?}", d.reasons);
    }
}

#[test]
fn regular_timing_needs_enough_gaps_and_a_low_cv() {
    let cfg = GuardConfig::default();
    let d = |gaps, cv| decide(&Signals { gaps, gap_cv_milli: cv, ..quiet() }, &cfg);
    assert_eq!(d(7, 1).verdict, Verdict::Allow, "too few gaps to judge");
    assert_eq!(d(40, -1).verdict, Verdict::Allow, "no CV yet");
    assert_eq!(d(40, 600).verdict, Verdict::Allow, "human spread");
    assert_eq!(d(40, 100).verdict, Verdict::Allow, "the limit itself passes");
    assert_eq!(d(40, 50).verdict, Verdict::Flag);
    let blocked = d(40, 2);
    assert_eq!(blocked.verdict, Verdict::Block);
    assert_eq!(rules(&blocked), vec![rule::REGULAR_TIMING]);
    assert_eq!((blocked.findings[0].value, blocked.findings[0].threshold), (0.002, 0.01));
    assert!(blocked.reasons[0].contains("0.002 of 40 gaps"), "{:?}", blocked.reasons);
}

#[test]
fn allow_list_wins_and_block_list_forces_block() {
    let cfg = GuardConfig::default();
    let blocked = decide(&Signals { ip_blocked: true, ..quiet() }, &cfg);
    assert_eq!((blocked.verdict, rules(&blocked)), (Verdict::Block, vec![rule::BLOCK_LIST]));
    let user_blocked = decide(&Signals { user_blocked: true, ..quiet() }, &cfg);
    assert_eq!(user_blocked.reasons, vec!["block_list: the user is on the block list"]);
    let both = Signals { ip_blocked: true, user_allowed: true, ip_rate: 5_000, ..quiet() };
    let d = decide(&both, &cfg);
    assert_eq!(d.verdict, Verdict::Allow);
    assert_eq!(rules(&d), vec![rule::ALLOW_LIST, rule::BLOCK_LIST, rule::IP_RATE], "the others stay visible");
}

#[test]
fn crawler_agent_uses_the_configured_verdict_and_names_the_pattern() {
    let ua = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    let s = Signals { agent: agent_match(ua), ..quiet() };
    assert!(matches!(s.agent, AgentMatch::Crawler(_)), "{:?}", s.agent);
    let d = decide(&s, &GuardConfig::default());
    assert_eq!((d.verdict, rules(&d)), (Verdict::Flag, vec![rule::CRAWLER_AGENT]));
    assert!(d.reasons[0].contains("`Googlebot\\/`"), "{:?}", d.reasons);
    let report_only = GuardConfig { crawler_agent_verdict: Verdict::Allow, ..Default::default() };
    let d = decide(&s, &report_only);
    assert_eq!((d.verdict, d.findings.len()), (Verdict::Allow, 1));
}

/// Real browser user agents of late 2024: desktop and mobile Chrome, Edge, Firefox, Safari,
/// Opera, Samsung Internet, other Chromium browsers and in-app browsers (WebViews), plus the
/// generator's own.
fn browser_agents() -> Vec<&'static str> {
    use ecom_gen::persona::{DESKTOP_AGENTS, MOBILE_AGENTS, TABLET_AGENTS};
    let mut agents: Vec<&str> = DESKTOP_AGENTS.iter().chain(MOBILE_AGENTS).chain(TABLET_AGENTS).copied().collect();
    agents.extend([
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0",
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 YaBrowser/24.10.0.0 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Vivaldi/7.0.3495.18",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/133.0 Mobile/15E148 Safari/605.1.15",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 EdgiOS/131.2903.68 Mobile/15E148 Safari/605.1.15",
        "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36 EdgA/131.0.0.0",
        "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36 OPR/86.0.0.0",
        "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/131.0.0.0 Mobile DuckDuckGo/5 Safari/537.36",
        "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 339.0.3.12.91 (iPhone15,3; iOS 17_5; en_US; en; scale=3.00; 1290x2796; 618923497)",
        "Mozilla/5.0 (Linux; Android 14; SM-S918B Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/131.0.6778.81 Mobile Safari/537.36 Instagram 357.0.0.25.101 Android (34/14; 480dpi; 1080x2340; samsung; SM-S918B; dm3q; qcom; en_US; 658451432)",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/480.0.0.35.109;FBBV/645313843;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/17.5;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5;FBRV/648010543]",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240905.003; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/131.0.6778.39 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/489.0.0.66.81;]",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 musical_ly_36.5.0 JsSdk/2.0 NetType/WIFI Channel/App Store ByteLocale/en Region/US ByteFullLocale/en WKWebView/1 BytedanceWebview/d8a21c6",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) GSA/343.0.695551749 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [LinkedInApp]/9.30.1571",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Snapchat/13.10.0.44 (like Safari/8618.2.12.10.5, panda)",
        "Mozilla/5.0 (Linux; Android 14; Pixel 7 Build/AP2A.240805.005; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/131.0.6778.39 Mobile Safari/537.36 [Pinterest/Android]",
    ]);
    agents
}

/// Scripts and tools, none of them a browser: the crawler list knows some, the HTTP-client
/// rule the rest.
const AUTOMATION_AGENTS: &[&str] = &[
    "",
    "   ",
    "Java/17.0.2",
    "python-urllib3/2.0.7",
    "PostmanRuntime/7.36.0",
    "curl/8.5.0",
    "Wget/1.21.4",
    "python-requests/2.32.3",
    "Python-urllib/3.12",
    "Python/3.12 aiohttp/3.9.5",
    "python-httpx/0.27.0",
    "python-httplib2/0.22.0 (gzip)",
    "PycURL/7.45.3 libcurl/8.9.1 OpenSSL/3.3.2 zlib/1.3.1",
    "Scrapy/2.11.2 (+https://scrapy.org)",
    "Java-http-client/21.0.5",
    "Apache-HttpClient/4.5.14 (Java/17.0.9)",
    "Apache-HttpAsyncClient/4.1.5 (Java/11.0.25)",
    "okhttp/4.12.0",
    "Ktor client",
    "Go-http-client/1.1",
    "Go-http-client/2.0",
    "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
    "node-fetch",
    "axios/1.7.7",
    "undici",
    "node",
    "got (https://github.com/sindresorhus/got)",
    "Deno/2.1.1",
    "Bun/1.1.34",
    "insomnia/2023.5.8",
    "HTTPie/3.2.4",
    "libwww-perl/6.72",
    "Ruby",
    "Faraday v2.12.0",
    "rest-client/2.1.0 (linux x86_64) ruby/3.3.5p100",
    "http.rb/5.2.0",
    "GuzzleHttp/7",
    "RestSharp/112.1.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Microsoft Windows 10.0.22631; en-US) PowerShell/7.4.6",
    "Mozilla/5.0 (Windows NT; Windows NT 10.0; en-US) WindowsPowerShell/5.1.22621.4249",
    "reqwest/0.12.9",
    "Dart/3.5 (dart:io)",
];

fn agent_rules(ua: &str) -> Vec<String> {
    let d = decide(&Signals { agent: agent_match(ua), ..quiet() }, &GuardConfig::default());
    d.findings.into_iter().map(|f| f.rule).collect()
}

#[test]
fn every_agent_pattern_compiles_and_browsers_match_neither_rule() {
    let patterns = crawler_patterns();
    assert!(patterns.len() > 1_000, "{} patterns", patterns.len());
    for p in patterns {
        regex::Regex::new(p).unwrap_or_else(|e| panic!("pattern {p:?}: {e}"));
    }
    assert!(patterns.contains(&"webmon "), "trailing spaces are kept");
    for (name, p) in HTTP_CLIENT_AGENTS {
        regex::Regex::new(p).unwrap_or_else(|e| panic!("{name} pattern {p:?}: {e}"));
        assert!(p.starts_with('^'), "{name}: {p} is not anchored");
    }
    assert_eq!(HTTP_CLIENT_AGENTS[EMPTY_AGENT].1, r"^\s*$");
    let browsers = browser_agents();
    assert!(browsers.len() >= 30, "{}", browsers.len());
    let matched: Vec<(&str, AgentMatch)> =
        browsers.iter().map(|ua| (*ua, agent_match(ua))).filter(|(_, m)| *m != AgentMatch::Other).collect();
    eprintln!("browser user agents matched by crawler_agent or http_client: {} of {}", matched.len(), browsers.len());
    assert_eq!(matched, vec![], "browsers taken for crawlers or HTTP clients");
}

#[test]
fn automation_agents_get_one_agent_finding_each() {
    let (mut crawler, mut client) = (0, 0);
    for ua in AUTOMATION_AGENTS {
        let fired = agent_rules(ua);
        match fired.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            [rule::CRAWLER_AGENT] => crawler += 1,
            [rule::HTTP_CLIENT] => client += 1,
            _ => panic!("{ua:?}: {fired:?}, expected exactly one of crawler_agent and http_client"),
        }
    }
    eprintln!(
        "automation user agents with a finding: {} of {} (crawler_agent {crawler}, http_client {client})",
        crawler + client,
        AUTOMATION_AGENTS.len()
    );
    assert!(AUTOMATION_AGENTS.len() >= 30);
    // What the crawler list already knows stays its own.
    for ua in ["curl/8.5.0", "python-requests/2.32.3", "Go-http-client/1.1", "Wget/1.21"] {
        assert_eq!(agent_rules(ua), vec![rule::CRAWLER_AGENT], "{ua}");
    }
    for ua in ["", "Java/17.0.2", "python-urllib3/2.0.7", "PostmanRuntime/7.36.0"] {
        assert_eq!(agent_rules(ua), vec![rule::HTTP_CLIENT], "{ua:?}");
    }
    // Anchored: a library's name later in a browser's agent is not a match.
    assert_eq!(http_client_match("Mozilla/5.0 (X11; Linux x86_64) curl/8.5.0 Firefox/133.0"), None);
    let name = |ua| http_client_match(ua).map(|i| HTTP_CLIENT_AGENTS[i].0);
    assert_eq!(name("JAVA/21"), Some("Java (HttpURLConnection, java.net.http.HttpClient)"), "case-insensitive");
}

#[test]
fn http_client_uses_the_configured_verdict_and_names_the_library() {
    let s = Signals { agent: agent_match("PostmanRuntime/7.36.0"), ..quiet() };
    let d = decide(&s, &GuardConfig::default());
    assert_eq!((d.verdict, rules(&d)), (Verdict::Flag, vec![rule::HTTP_CLIENT]));
    assert_eq!(
        d.reasons,
        vec!["http_client: the user agent is from Postman (pattern `^postmanruntime/`): an HTTP client, not a browser"]
    );
    let empty = decide(&Signals { agent: agent_match(""), ..quiet() }, &GuardConfig::default());
    assert_eq!(empty.reasons, vec!["http_client: the user agent is empty; every browser sends one"]);
    let block = GuardConfig { http_client_verdict: Verdict::Block, ..Default::default() };
    assert_eq!(decide(&s, &block).verdict, Verdict::Block);
    let report_only = GuardConfig { http_client_verdict: Verdict::Allow, ..Default::default() };
    let d = decide(&s, &report_only);
    assert_eq!((d.verdict, d.findings.len()), (Verdict::Allow, 1));
    let unknown = GuardConfig { http_client_verdict: Verdict::Unknown, ..Default::default() };
    assert!(unknown.validate().unwrap_err().to_string().contains("http_client_verdict"));
}

#[test]
fn script_numbers_are_read_in_order() {
    let n = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 1 | 8];
    let s = Signals::from_script(&n, AgentMatch::Crawler(3));
    assert_eq!((s.ip_rate, s.products_per_ip, s.gap_cv_milli, s.fast_gaps), (1, 8, 10, 11));
    assert_eq!((s.ip_blocked, s.ip_allowed, s.user_blocked, s.user_allowed), (true, false, false, true));
    assert_eq!(s.agent, AgentMatch::Crawler(3));
}

#[test]
fn flags_mark_failed_logins_small_purchases_and_bulk_adds() {
    let cfg = GuardConfig::default();
    let r = |kind: EventKind, quantity, amount_cents, product: &str| GuardRequest {
        kind: kind as i32,
        quantity,
        amount_cents,
        product_id: product.into(),
        ..Default::default()
    };
    assert_eq!(event_flags(&r(EventKind::LoginFailed, 0, 0, ""), &cfg), FLAG_FAILED_LOGIN);
    assert_eq!(event_flags(&r(EventKind::Login, 0, 0, ""), &cfg), 0);
    assert_eq!(event_flags(&r(EventKind::Purchase, 1, 999, "p1"), &cfg), FLAG_SMALL_PURCHASE);
    assert_eq!(event_flags(&r(EventKind::Purchase, 1, 2_000, "p1"), &cfg), FLAG_SMALL_PURCHASE);
    assert_eq!(event_flags(&r(EventKind::Purchase, 1, 2_001, "p1"), &cfg), 0);
    assert_eq!(event_flags(&r(EventKind::Purchase, 1, 0, "p1"), &cfg), 0, "no amount sent");
    assert_eq!(event_flags(&r(EventKind::AddToCart, 5, 0, "p1"), &cfg), FLAG_BULK_ADD);
    assert_eq!(event_flags(&r(EventKind::AddToCart, 4, 0, "p1"), &cfg), 0);
    assert_eq!(event_flags(&r(EventKind::AddToCart, 9, 0, ""), &cfg), 0, "no product");
}

#[test]
fn requests_are_validated_naming_the_field() {
    let ok = GuardRequest { ip: "192.0.2.1".into(), event_time_ms: 1, ..Default::default() };
    assert!(Guard::validate(&ok).is_ok());
    let long = |n| "s".repeat(n);
    let cases = [
        (GuardRequest { amount_cents: -1, ..ok.clone() }, "requests[3].amount_cents: -1 is negative"),
        (
            GuardRequest { amount_cents: MAX_AMOUNT_CENTS + 1, ..ok.clone() },
            "requests[3].amount_cents: 1000000000001 is above the limit of 1000000000000",
        ),
        (GuardRequest { quantity: -2, ..ok.clone() }, "requests[3].quantity: -2 is negative"),
        (GuardRequest { kind: 99, ..ok.clone() }, "requests[3].kind: 99 is not an EventKind"),
        (GuardRequest { ip: String::new(), ..ok.clone() }, "requests[3].ip: must not be empty (or give ip_hash)"),
        (GuardRequest { event_time_ms: 0, ..ok.clone() }, "requests[3].event_time_ms:"),
        (GuardRequest { session_id: long(65), ..ok.clone() }, "requests[3].session_id: 65 bytes"),
        (GuardRequest { event_id: long(65), ..ok.clone() }, "requests[3].event_id: 65 bytes"),
        (GuardRequest { ip: long(65), ..ok.clone() }, "requests[3].ip: 65 bytes is longer than the limit of 64"),
        (GuardRequest { user_agent: long(1025), ..ok.clone() }, "requests[3].user_agent: 1025 bytes"),
    ];
    for (r, want) in cases {
        let e = Guard::validate(&r).unwrap_err();
        assert!(e.message(Some(3)).contains(want), "{} does not contain {want}", e.message(Some(3)));
        assert!(!e.message(None).contains("requests["), "{}", e.message(None));
    }
    let at_limits = GuardRequest {
        event_id: long(MAX_ID_LEN),
        ip: long(MAX_IP_LEN),
        user_id: long(MAX_ID_LEN),
        session_id: long(MAX_ID_LEN),
        product_id: long(MAX_ID_LEN),
        user_agent: long(MAX_TEXT_LEN),
        amount_cents: MAX_AMOUNT_CENTS,
        ..ok
    };
    assert_eq!(Guard::validate(&at_limits), Ok(()));
}

#[test]
fn an_invalid_item_answers_unknown_naming_the_field() {
    let bad = Guard::validate(&GuardRequest {
        ip: "192.0.2.1".into(),
        event_time_ms: 1,
        user_agent: "u".repeat(2000),
        ..Default::default()
    })
    .unwrap_err();
    let r = bad.response("e7".into(), 7);
    assert_eq!(
        (r.event_id.as_str(), r.verdict, r.fallback, r.ip_events_in_window),
        ("e7", Verdict::Unknown as i32, false, 0)
    );
    assert_eq!(r.reasons, vec!["invalid_request: requests[7].user_agent: 2000 bytes is longer than the limit of 1024"]);
    let f = &r.findings[..];
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].rule.as_str(), f[0].verdict, f[0].value, f[0].threshold),
        (rule::INVALID_REQUEST, Verdict::Unknown as i32, 2000.0, 1024.0)
    );
}

#[test]
fn every_event_the_validator_accepts_is_a_valid_request() {
    use ecom_core::validate::{amount_cents, validate_bytes, validate_event, MAX_FUTURE_SKEW_MS};
    use ecom_gen::{GenConfig, Generator, Payload};
    use ecom_proto::v1::Event;
    let now = 1_800_000_000_000;
    let id = |c: &str| c.repeat(MAX_ID_LEN);
    let at_limits = Event {
        event_id: id("e"),
        event_time_ms: now + MAX_FUTURE_SKEW_MS,
        user_id: id("u"),
        session_id: id("s"),
        kind: EventKind::Purchase as i32,
        product_id: Some(id("p")),
        quantity: Some(4),
        unit_price_cents: Some(MAX_AMOUNT_CENTS / 4),
        user_agent: "M".repeat(MAX_TEXT_LEN),
        ip: "1".repeat(MAX_IP_LEN),
        page: "/".repeat(MAX_TEXT_LEN),
        ..Default::default()
    };
    let mut events = vec![
        at_limits.clone(),
        Event { quantity: None, unit_price_cents: Some(MAX_AMOUNT_CENTS), ..at_limits.clone() },
        Event { quantity: Some(0), unit_price_cents: Some(MAX_AMOUNT_CENTS), ..at_limits.clone() },
        Event { quantity: Some(i32::MAX), unit_price_cents: Some(0), ..at_limits.clone() },
        Event {
            ip: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255".into(),
            user_agent: String::new(),
            ..at_limits.clone()
        },
        Event { event_time_ms: 1, kind: EventKind::LoginFailed as i32, product_id: None, ..at_limits.clone() },
    ];
    for e in &events {
        assert_eq!(validate_event(e, now), Ok(()), "{e:?}");
    }
    // A generated stream with malformed records mixed in: whatever the validator accepts.
    let gen = Generator::new(GenConfig { events: 20_000, seed: 3, malformed_rate: 0.05, ..Default::default() });
    let (mut records, mut rejected) = (0, 0);
    for rec in gen {
        records += 1;
        let valid = match rec.payload {
            Payload::Event(e) => validate_event(&e, i64::MAX / 2).map(|()| e),
            Payload::Bytes(b) => validate_bytes(&b, i64::MAX / 2),
        };
        match valid {
            Ok(e) => events.push(e),
            Err(_) => rejected += 1,
        }
    }
    assert!(rejected > 100 && events.len() > 15_000, "{records} records, {rejected} rejected");
    for e in &events {
        let job = request_for(e);
        assert_eq!(Guard::validate(&job), Ok(()), "{job:?}");
        // Any kind with an amount.
        let any_kind = GuardRequest { amount_cents: amount_cents(e).unwrap(), ..job };
        assert_eq!(Guard::validate(&any_kind), Ok(()), "{any_kind:?}");
    }
}

fn write_temp(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("ecom-guard-{}-{name}.json", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn config_file_overrides_a_subset_and_keeps_the_rest() {
    let path = write_temp(
        "subset",
        r#"{"ip_flag_per_min": 10, "redis_timeout_ms": 40, "fallback_verdict": "unknown", "key_prefix": "t"}"#,
    );
    let cfg = GuardConfig::from_json_file(&path).unwrap();
    let want = GuardConfig {
        ip_flag_per_min: 10,
        redis_timeout: Duration::from_millis(40),
        fallback_verdict: Verdict::Unknown,
        key_prefix: "t".into(),
        ..Default::default()
    };
    assert_eq!(cfg, want);
    std::fs::remove_file(path).unwrap();
    // The defaults validate, and print as a file that reads back to themselves.
    GuardConfig::default().validate().unwrap();
    let path = write_temp("roundtrip", &serde_json::to_string_pretty(&GuardConfig::default()).unwrap());
    assert_eq!(GuardConfig::from_json_file(&path).unwrap(), GuardConfig::default());
    std::fs::remove_file(path).unwrap();
}

#[test]
fn config_file_errors_name_the_file_and_the_field() {
    let cases = [
        ("unknown", r#"{"ip_flag_per_mins": 10}"#, "`ip_flag_per_mins`"),
        ("type", r#"{"card_flag_sessions": "many"}"#, "field `card_flag_sessions`"),
        ("verdict", r#"{"fallback_verdict": "deny"}"#, "field `fallback_verdict`: invalid value: string \"deny\""),
        ("range", r#"{"ip_flag_per_min": 2000}"#, "field `ip_flag_per_min`: 2000 is above ip_block_per_min"),
        ("window", r#"{"burst_window_ms": 0}"#, "field `burst_window_ms`: 0 must be > 0"),
    ];
    for (name, text, want) in cases {
        let path = write_temp(name, text);
        let e = GuardConfig::from_json_file(&path).unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
        assert!(e.contains(want), "{name}: {e}");
        std::fs::remove_file(path).unwrap();
    }
    let e = GuardConfig::from_json_file("/nonexistent/guard.json").unwrap_err().to_string();
    assert!(e.contains("cannot read guard config /nonexistent/guard.json"), "{e}");
}
