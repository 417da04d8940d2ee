//! The guard's rules against the real Redis of the local stack (dev/up), no mocks: precision
//! and recall per rule on a labelled data set from ecom-gen, the same stream replayed through
//! gRPC, block and allow lists, each rule on a crafted burst (the service's batches and
//! fallbacks: guard_batches.rs). Each test uses its own key prefix, so they run in any order
//! and side by side.
use ecom_gen::{AnomalyRates, GenConfig, Generator, Payload};
use ecom_proto::v1::guard_client::GuardClient;
use ecom_proto::v1::{truth_record, Anomaly, EventKind, GuardBatchRequest, GuardRequest, GuardResponse, Verdict};
use ecom_serve::guard::{rule, Guard};
mod guard_common;
use guard_common::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

/// One IP-hash key for a run and its replay: the HyperLogLogs count hashed IPs, and another key
/// would give other estimates.
const LABELLED_KEY: &[u8] = b"labelled-run-key";

/// A labelled stream: requests in event-time order and each session's anomaly. Sessions cut
/// short by the end of the stream are fed but not scored: their behaviour is not all there.
struct Labelled {
    requests: Vec<GuardRequest>,
    anomaly: HashMap<String, Anomaly>,
    /// Credential-stuffing sessions of the account-attack shape (one account tried from many
    /// addresses); the others are the stolen-list shape (many accounts from a few addresses).
    account_attack: HashSet<String>,
    truncated: usize,
}

fn labelled(events: u64, seed: u64) -> Labelled {
    let cfg = GenConfig {
        events,
        seed,
        malformed_rate: 0.0,
        // Evening traffic, when the shop is busiest and normal sessions overlap the most.
        start_ms: GenConfig::default().start_ms + 17 * 3_600_000,
        // Several times the defaults, so each kind has enough sessions to measure.
        anomaly_rates: AnomalyRates {
            crawler: 0.012,
            headless: 0.010,
            credential_stuffing: 0.002,
            card_testing: 0.003,
            cart_abandon_storm: 0.002,
        },
        ..Default::default()
    };
    let mut gen = Generator::new(cfg);
    let mut requests: Vec<GuardRequest> = gen
        .by_ref()
        .filter_map(|r| match r.payload {
            Payload::Event(e) => Some(e),
            Payload::Bytes(_) => None,
        })
        .map(|e| {
            let quantity = e.quantity.unwrap_or(0);
            let amount_cents = if e.kind == EventKind::Purchase as i32 {
                i64::from(quantity) * e.unit_price_cents.unwrap_or(0)
            } else {
                0
            };
            GuardRequest {
                event_id: e.event_id,
                event_time_ms: e.event_time_ms,
                ip: e.ip,
                user_id: e.user_id,
                session_id: e.session_id,
                kind: e.kind,
                user_agent: e.user_agent,
                product_id: e.product_id.unwrap_or_default(),
                quantity,
                amount_cents,
                ip_hash: String::new(),
            }
        })
        .collect();
    // The generator delays ~1% of events a little; the guard is fed in event-time order.
    requests.sort_by_key(|r| r.event_time_ms);
    let mut anomaly = HashMap::new();
    let mut truncated = 0;
    for t in gen.take_truth() {
        if let Some(truth_record::Record::Session(s)) = t.record {
            if s.truncated {
                truncated += 1;
            } else {
                anomaly.insert(s.session_id, Anomaly::try_from(s.anomaly).unwrap_or(Anomaly::None));
            }
        }
    }
    // The generator labels both shapes CREDENTIAL_STUFFING; an account tried from more than one
    // address marks the account-attack shape (stolen-list user ids are drawn from ten million).
    let mut ips_per_user: HashMap<&str, HashSet<&str>> = HashMap::new();
    for q in &requests {
        if anomaly.get(&q.session_id) == Some(&Anomaly::CredentialStuffing) {
            ips_per_user.entry(&q.user_id).or_default().insert(&q.ip);
        }
    }
    let account_attack = requests
        .iter()
        .filter(|q| ips_per_user.get(q.user_id.as_str()).is_some_and(|ips| ips.len() > 1))
        .map(|q| q.session_id.clone())
        .collect();
    Labelled { requests, anomaly, account_attack, truncated }
}

/// What the guard said about each session: the rules that fired on any of its events, and
/// whether any event was flagged or blocked.
#[derive(Default)]
struct Caught {
    rules: HashSet<String>,
    flagged: bool,
}

fn by_session(data: &Labelled, resps: &[GuardResponse]) -> HashMap<String, Caught> {
    let mut out: HashMap<String, Caught> = HashMap::new();
    for (q, a) in data.requests.iter().zip(resps) {
        if !data.anomaly.contains_key(&q.session_id) {
            continue;
        }
        let c = out.entry(q.session_id.clone()).or_default();
        c.rules.extend(a.findings.iter().map(|f| f.rule.clone()));
        c.flagged |= matches!(Verdict::try_from(a.verdict), Ok(Verdict::Flag | Verdict::Block));
    }
    out
}

/// The anomalies each rule is meant to catch (recall is measured against them).
fn targets(r: &str) -> &'static [Anomaly] {
    use Anomaly::*;
    match r {
        rule::CRAWLER_AGENT => &[Crawler],
        rule::REGULAR_TIMING => &[HeadlessBot],
        rule::SESSION_RATE | rule::SCRAPING | rule::IMPOSSIBLE_SPEED => &[Crawler, HeadlessBot],
        rule::CREDENTIAL_STUFFING_IP | rule::CREDENTIAL_STUFFING_USER => &[CredentialStuffing],
        rule::CARD_TESTING => &[CardTesting],
        rule::BULK_CART => &[CartAbandonStorm],
        _ => &[],
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        f64::NAN
    } else {
        a as f64 / b as f64
    }
}

#[tokio::test]
#[ignore = "needs the local stack (dev/up)"]
async fn labelled_abuse_precision_and_recall_per_rule() {
    // GUARD_RULES_SEED=N checks the floors on another stream.
    let seed = std::env::var("GUARD_RULES_SEED").map_or(42, |s| s.parse().expect("GUARD_RULES_SEED: a u64"));
    let data = labelled(60_000, seed);
    let prefix = unique_prefix("labelled");
    let guard = Guard::connect(&redis_url(), config(&prefix), 1_000).unwrap().with_ip_hash_key(LABELLED_KEY);
    assert!(guard.redis_ok().await, "Redis at {} must answer", redis_url());

    let started = Instant::now();
    let mut resps = Vec::with_capacity(data.requests.len());
    for batch in data.requests.chunks(500) {
        resps.extend(guard.check_all(batch).await);
    }
    let took = started.elapsed();
    assert!(resps.iter().all(|r| !r.fallback), "no fallback against a healthy Redis");
    let caught = by_session(&data, &resps);

    let sessions: BTreeMap<i32, usize> = caught.keys().fold(BTreeMap::new(), |mut m, s| {
        *m.entry(data.anomaly[s] as i32).or_default() += 1;
        m
    });
    eprintln!(
        "{} events, {} sessions scored ({} normal; {} cut short by the end of the stream not scored) \
         through check_all in batches of 500: {:.2} s ({:.0} events/s)",
        data.requests.len(),
        caught.len(),
        sessions.get(&0).copied().unwrap_or(0),
        data.truncated,
        took.as_secs_f64(),
        data.requests.len() as f64 / took.as_secs_f64()
    );
    // Print the whole table first, then fail on what is below its floor.
    let mut failures = Vec::new();
    eprintln!("{:<24} {:>7} {:>9} {:>9} {:>7}  targets", "rule", "caught", "anomal.", "precision", "recall");
    for r in rule::ALL {
        let hit: Vec<&String> = caught.iter().filter(|(_, c)| c.rules.contains(*r)).map(|(s, _)| s).collect();
        let anomalous = hit.iter().filter(|s| data.anomaly[**s] != Anomaly::None).count();
        let t = targets(r);
        // The two credential-stuffing rules each target one shape of the attack.
        let shape = |s: &String| match *r {
            rule::CREDENTIAL_STUFFING_IP => !data.account_attack.contains(s),
            rule::CREDENTIAL_STUFFING_USER => data.account_attack.contains(s),
            _ => true,
        };
        let is_target = |s: &String| t.contains(&data.anomaly[s]) && shape(s);
        let target_sessions = caught.keys().filter(|s| is_target(s)).count();
        let target_hit = hit.iter().filter(|s| is_target(s)).count();
        let precision = ratio(anomalous, hit.len());
        let recall = ratio(target_hit, target_sessions);
        let mut names: Vec<&str> = t.iter().map(|a| a.as_str_name().trim_start_matches("ANOMALY_")).collect();
        match *r {
            rule::CREDENTIAL_STUFFING_IP => names = vec!["CREDENTIAL_STUFFING (stolen list: many accounts, few IPs)"],
            rule::CREDENTIAL_STUFFING_USER => {
                names = vec!["CREDENTIAL_STUFFING (account attack: few accounts, many IPs)"]
            }
            _ => {}
        }
        eprintln!(
            "{r:<24} {:>7} {anomalous:>9} {precision:>9.3} {recall:>7.3}  {}",
            hit.len(),
            if names.is_empty() { "-".to_string() } else { names.join(",") }
        );
        if !hit.is_empty() && precision < 0.9 {
            failures.push(format!("{r}: precision {precision:.3} < 0.9"));
        }
        let floor = match *r {
            // Measured with seed 42: 1.000, 1.000, 0.848, 0.893, 0.872, 0.920, 0.940 (seeds 7,
            // 11 and 2026 within 0.05, credential_stuffing_user 0.74-0.86). A burst's first
            // sessions come before the evidence against them (an attacked account is flagged from
            // its fourth address on), so the burst rules cannot reach 1.
            rule::CRAWLER_AGENT => 0.99,
            rule::REGULAR_TIMING => 0.99,
            rule::SCRAPING => 0.75,
            rule::CREDENTIAL_STUFFING_IP => 0.85,
            rule::CREDENTIAL_STUFFING_USER => 0.7,
            rule::CARD_TESTING => 0.85,
            rule::BULK_CART => 0.9,
            _ => 0.0,
        };
        if recall < floor {
            failures.push(format!("{r}: recall {recall:.3} < {floor}"));
        }
    }

    eprintln!("{:<24} {:>7} {:>9} {:>7}", "anomaly (any rule)", "sessions", "flagged", "recall");
    let mut flagged_anomalous = 0;
    let mut anomalous = 0;
    for (kind, n) in &sessions {
        let hit = caught.iter().filter(|(s, c)| data.anomaly[*s] as i32 == *kind && c.flagged).count();
        let name = Anomaly::try_from(*kind).unwrap().as_str_name().trim_start_matches("ANOMALY_");
        eprintln!("{name:<24} {n:>7} {hit:>9} {:>7.3}", ratio(hit, *n));
        if *kind != 0 {
            anomalous += n;
            flagged_anomalous += hit;
        }
    }
    // The false positives and the missed sessions, so a failure shows what to look at.
    for (q, a) in data.requests.iter().zip(&resps) {
        if data.anomaly.get(&q.session_id) == Some(&Anomaly::None) && !a.findings.is_empty() {
            eprintln!("  normal session {} ip {}: {:?}", q.session_id, q.ip, a.reasons);
        }
    }
    let flagged = caught.values().filter(|c| c.flagged).count();
    let normal = sessions.get(&0).copied().unwrap_or(0);
    let false_positives = flagged - flagged_anomalous;
    let (precision, recall, fpr) =
        (ratio(flagged_anomalous, flagged), ratio(flagged_anomalous, anomalous), ratio(false_positives, normal));
    eprintln!(
        "verdict flag|block vs any anomaly: precision {precision:.3} recall {recall:.3}, \
         false-positive rate on normal sessions {fpr:.4} ({false_positives} of {normal})"
    );
    for (ok, what) in [
        // Measured with seed 42: 1.000, 0.924, 0.0000.
        (precision >= 0.98, format!("verdict precision {precision:.3} < 0.98")),
        (recall >= 0.88, format!("verdict recall {recall:.3} < 0.88")),
        (fpr <= 0.001, format!("false-positive rate {fpr:.4} > 0.001")),
    ] {
        if !ok {
            failures.push(what);
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");

    // The same stream through gRPC under a fresh prefix: windows follow event time, so the
    // replay gives the same answers event for event.
    let replay_prefix = unique_prefix("labelled-replay");
    let replay = Guard::connect(&redis_url(), config(&replay_prefix), 1_000).unwrap().with_ip_hash_key(LABELLED_KEY);
    let (url, stop, server) = serve(replay).await;
    let mut client = GuardClient::connect(url).await.unwrap();
    let mut again = Vec::with_capacity(resps.len());
    for batch in data.requests.chunks(500) {
        let req = GuardBatchRequest { requests: batch.to_vec() };
        again.extend(client.check_batch(req).await.unwrap().into_inner().responses);
    }
    assert_eq!(again.len(), resps.len());
    for (a, b) in resps.iter().zip(&again) {
        assert_eq!(a, b, "the replay through gRPC differs");
    }
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    cleanup(&prefix).await;
    cleanup(&replay_prefix).await;
}

#[tokio::test]
#[ignore = "needs the local stack (dev/up)"]
async fn block_lists_force_block_and_allow_lists_win() {
    let prefix = unique_prefix("lists");
    let mut c = redis_conn().await;
    let guard = Guard::connect(&redis_url(), config(&prefix), 100).unwrap().with_ip_hash_key(b"lists-key");
    let sadd = |key: &str, member: &str| redis::cmd("SADD").arg(format!("{prefix}:{key}")).arg(member).clone();
    // IP lists hold the IPs' keyed hashes (ecom hash-ip), never the addresses.
    let _: () = redis::pipe()
        .add_command(sadd("block:ip", &guard.ip_key("203.0.113.9")))
        .add_command(sadd("block:user", "u-bad"))
        .add_command(sadd("allow:ip", &guard.ip_key("203.0.113.10")))
        .add_command(sadd("allow:user", "u-staff"))
        .ignore()
        .query_async(&mut c)
        .await
        .unwrap();
    let crawler = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)";
    let out = guard
        .check_all(&[
            event("203.0.113.1", "u-ok", 1),
            event("203.0.113.9", "u-ok", 2),
            event("203.0.113.2", "u-bad", 3),
            event("203.0.113.9", "u-staff", 4),
            GuardRequest { user_agent: crawler.into(), ..event("203.0.113.10", "u-ok", 5) },
            GuardRequest { user_agent: crawler.into(), ..event("203.0.113.3", "u-ok2", 6) },
        ])
        .await;
    let rules = |r: &GuardResponse| r.findings.iter().map(|f| f.rule.clone()).collect::<Vec<_>>();
    assert_eq!((verdict(&out[0]), rules(&out[0])), (Verdict::Allow, vec![]));
    assert_eq!((verdict(&out[1]), rules(&out[1])), (Verdict::Block, vec![rule::BLOCK_LIST.to_string()]));
    assert_eq!(out[1].reasons, vec!["block_list: the IP is on the block list"]);
    assert_eq!(out[2].reasons, vec!["block_list: the user is on the block list"]);
    assert_eq!(verdict(&out[3]), Verdict::Allow, "an allowed user from a blocked IP: allow wins");
    assert_eq!(rules(&out[3]), vec![rule::ALLOW_LIST, rule::BLOCK_LIST]);
    assert_eq!(verdict(&out[4]), Verdict::Allow, "an allowed IP with a crawler agent");
    assert_eq!(rules(&out[4]), vec![rule::ALLOW_LIST, rule::CRAWLER_AGENT]);
    assert_eq!((verdict(&out[5]), rules(&out[5])), (Verdict::Flag, vec![rule::CRAWLER_AGENT.to_string()]));
    assert!(out.iter().all(|r| !r.fallback && r.ip_events_in_window >= 1));
    cleanup(&prefix).await;
}

#[tokio::test]
#[ignore = "needs the local stack (dev/up)"]
async fn each_rule_fires_on_a_crafted_burst() {
    let prefix = unique_prefix("crafted");
    let guard = Guard::connect(&redis_url(), config(&prefix), 1_000).unwrap();
    let t0 = 1_800_000_000_000;
    let mut reqs = Vec::new();
    // Credential stuffing: six users fail to log in from one IP.
    for i in 0..6 {
        reqs.push(GuardRequest {
            kind: EventKind::LoginFailed as i32,
            session_id: format!("cs{i}"),
            ..event("198.51.100.1", &format!("victim{i}"), i)
        });
    }
    // Card testing: small purchases from one IP, one session each.
    for i in 0..4 {
        reqs.push(GuardRequest {
            kind: EventKind::Purchase as i32,
            session_id: format!("ct{i}"),
            product_id: "p-cheap".into(),
            quantity: 1,
            amount_cents: 499,
            ..event("198.51.100.2", &format!("guest{i}"), 10 + i)
        });
    }
    // Bulk cart: four sessions from four IPs add 9 of one product.
    for i in 0..4 {
        reqs.push(GuardRequest {
            kind: EventKind::AddToCart as i32,
            session_id: format!("bc{i}"),
            product_id: "p-hot".into(),
            quantity: 9,
            ..event(&format!("198.51.101.{i}"), &format!("guest-b{i}"), 20 + i)
        });
    }
    // A headless bot: product views every 300 ms, 1 ms of jitter.
    for i in 0..12 {
        reqs.push(GuardRequest {
            kind: EventKind::ProductView as i32,
            event_time_ms: t0 + 100_000 + i * 300 + i % 2,
            product_id: format!("p{i}"),
            ..event("198.51.100.3", "anon-bot", 0)
        });
    }
    let out = guard.check_all(&reqs).await;
    let fired = |i: usize| out[i].findings.iter().map(|f| f.rule.as_str()).collect::<Vec<_>>();
    assert_eq!(fired(1), Vec::<&str>::new(), "two users with failed logins: not yet");
    assert_eq!(fired(2), vec![rule::CREDENTIAL_STUFFING_IP], "the third");
    assert_eq!(fired(6), Vec::<&str>::new(), "one session with a small purchase");
    assert_eq!(fired(7), vec![rule::CARD_TESTING], "the second");
    assert_eq!(fired(12), vec![rule::BULK_CART], "the third session bulk-adding p-hot");
    let last = out.len() - 1;
    assert_eq!(fired(last), vec![rule::REGULAR_TIMING, rule::IMPOSSIBLE_SPEED]);
    assert_eq!(verdict(&out[last]), Verdict::Block, "a CV this low blocks");
    assert!(out[last].findings[0].value < 0.01, "{:?}", out[last].findings[0]);
    assert_eq!(out[last].findings[1].value, 11.0, "11 gaps under 500 ms");
    assert_eq!(out[last].ip_events_in_window, 12);
    cleanup(&prefix).await;
}
