//! The guard's rules against the real Redis of the local stack (dev/up), no mocks: precision
//! and recall per rule on a labelled data set from ecom-gen, the same stream replayed through
//! gRPC, block and allow lists, one round trip per batch, a batch with invalid items judged
//! item by item, and the fallback when Redis is slow.
//! Each test uses its own key prefix, so they run in any order and side by side.
use ecom_core::validate::MAX_AMOUNT_CENTS;
use ecom_gen::{AnomalyRates, GenConfig, Generator, Payload};
use ecom_proto::v1::guard_client::GuardClient;
use ecom_proto::v1::guard_server::GuardServer;
use ecom_proto::v1::{truth_record, Anomaly, EventKind, GuardBatchRequest, GuardRequest, GuardResponse, Verdict};
use ecom_serve::guard::{rule, Guard, GuardConfig};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One IP-hash key for a run and its replay: the HyperLogLogs count hashed IPs, and another key
/// would give other estimates.
const LABELLED_KEY: &[u8] = b"labelled-run-key";

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn unique_prefix(test: &str) -> String {
    let n = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("ecom:test:guard:{test}:{n}")
}

async fn redis_conn() -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(redis_url()).unwrap();
    client.get_multiplexed_async_connection().await.unwrap_or_else(|e| panic!("Redis at {}: {e}", redis_url()))
}

/// Deletes a test's keys (they would expire anyway; this keeps a shared Redis tidy).
async fn cleanup(prefix: &str) {
    let mut c = redis_conn().await;
    // SCAN, not KEYS: the Redis may be shared with other tests and services.
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1_000)
            .query_async(&mut c)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: i64 = redis::cmd("UNLINK").arg(keys).query_async(&mut c).await.unwrap();
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
}

fn config(prefix: &str) -> GuardConfig {
    // Generous: the machine may be busy with builds, and a fallback here would be a test failure.
    GuardConfig { key_prefix: prefix.into(), redis_timeout: Duration::from_secs(5), ..Default::default() }
}

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

async fn serve(
    guard: Guard,
) -> (String, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<Result<(), tonic::transport::Error>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder().add_service(GuardServer::new(guard)).serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            async move {
                let _ = rx.await;
            },
        ),
    );
    (format!("http://{addr}"), tx, server)
}

fn event(ip: &str, user: &str, i: i64) -> GuardRequest {
    GuardRequest {
        event_id: format!("e{i}"),
        event_time_ms: 1_800_000_000_000 + i * 1_000,
        ip: ip.into(),
        user_id: user.into(),
        session_id: format!("s-{user}"),
        kind: EventKind::PageView as i32,
        user_agent: "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0".into(),
        ..Default::default()
    }
}

fn verdict(r: &GuardResponse) -> Verdict {
    Verdict::try_from(r.verdict).unwrap()
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

/// A TCP proxy in front of Redis that counts round trips (client sends separated by server
/// replies) and can hold replies back: the guard's traffic seen from outside.
struct Proxy {
    url: String,
    round_trips: Arc<AtomicUsize>,
    delay_ms: Arc<AtomicU64>,
}

async fn proxy() -> Proxy {
    let upstream = redis_url().trim_start_matches("redis://").trim_end_matches('/').to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    let round_trips = Arc::new(AtomicUsize::new(0));
    let delay_ms = Arc::new(AtomicU64::new(0));
    let (trips, delay) = (round_trips.clone(), delay_ms.clone());
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let waiting = Arc::new(AtomicBool::new(false));
            let (trips, waiting_up) = (trips.clone(), waiting.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n @ 1..) = cr.read(&mut buf).await {
                    if !waiting_up.swap(true, Ordering::SeqCst) {
                        trips.fetch_add(1, Ordering::SeqCst);
                    }
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            let delay = delay.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n @ 1..) = sr.read(&mut buf).await {
                    tokio::time::sleep(Duration::from_millis(delay.load(Ordering::SeqCst))).await;
                    waiting.store(false, Ordering::SeqCst);
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Proxy { url, round_trips, delay_ms }
}

async fn evalsha_calls() -> u64 {
    let mut c = redis_conn().await;
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(&mut c).await.unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test]
#[ignore = "needs the local stack (dev/up)"]
async fn a_batch_costs_one_round_trip() {
    let prefix = unique_prefix("round-trip");
    let p = proxy().await;
    let guard = Guard::connect(&p.url, config(&prefix), 1_000).unwrap();
    // Connecting and loading the script take their own round trips, once.
    assert!(guard.redis_ok().await);
    guard.load_script().await.unwrap();
    let batch: Vec<GuardRequest> =
        (0..500).map(|i| event(&format!("192.0.2.{}", i % 50), &format!("u{}", i % 80), i)).collect();
    let before = (p.round_trips.load(Ordering::SeqCst), evalsha_calls().await);
    let out = guard.check_all(&batch).await;
    let after = (p.round_trips.load(Ordering::SeqCst), evalsha_calls().await);
    assert_eq!(out.len(), 500);
    assert!(out.iter().all(|r| !r.fallback));
    assert_eq!(after.0 - before.0, 1, "500 events, one round trip to Redis");
    // Other tests may run scripts at the same time; at least ours went out as EVALSHA.
    assert!(after.1 > before.1, "EVALSHA calls {} -> {}", before.1, after.1);
    cleanup(&prefix).await;
}

#[tokio::test]
#[ignore = "needs the local stack (dev/up)"]
async fn slow_redis_gives_the_declared_fallback_within_the_deadline() {
    let prefix = unique_prefix("slow");
    let p = proxy().await;
    let cfg = GuardConfig {
        key_prefix: prefix.clone(),
        redis_timeout: Duration::from_millis(150),
        fallback_verdict: Verdict::Unknown,
        ..Default::default()
    };
    let guard = Guard::connect(&p.url, cfg, 100).unwrap();
    assert!(guard.redis_ok().await);
    p.delay_ms.store(2_000, Ordering::SeqCst);
    let started = Instant::now();
    let googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    let crawler = GuardRequest { user_agent: googlebot.into(), ..event("192.0.2.78", "u2", 3) };
    let out = guard.check_all(&[event("192.0.2.77", "u1", 1), event("192.0.2.77", "u1", 2), crawler]).await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1_000), "took {took:?}");
    for r in &out {
        assert!(r.fallback);
        assert!(r.reasons[0].starts_with("fallback: redis timeout after 150ms;"), "{:?}", r.reasons);
    }
    for r in &out[..2] {
        assert_eq!(verdict(r), Verdict::Unknown);
        assert!(r.findings.is_empty());
    }
    // The rules that need no Redis still decide: the crawler is flagged, not waved through.
    assert_eq!(verdict(&out[2]), Verdict::Flag);
    assert_eq!(out[2].findings.iter().map(|f| f.rule.as_str()).collect::<Vec<_>>(), [rule::CRAWLER_AGENT]);
    // Once Redis answers in time again, so does the guard.
    p.delay_ms.store(0, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = guard.check_all(&[event("192.0.2.77", "u1", 3)]).await;
        if !out[0].fallback {
            break;
        }
        assert!(Instant::now() < deadline, "still falling back: {:?}", out[0].reasons);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cleanup(&prefix).await;
}

#[tokio::test]
#[ignore = "needs the local stack (dev/up)"]
async fn a_mixed_batch_judges_every_item_on_its_own() {
    let prefix = unique_prefix("mixed");
    let p = proxy().await;
    let guard = Guard::connect(&p.url, config(&prefix), 10).unwrap();
    assert!(guard.redis_ok().await);
    guard.load_script().await.unwrap();
    let (url, stop, server) = serve(guard).await;
    let mut client = GuardClient::connect(url).await.unwrap();
    let ip = "192.0.2.60";
    let purchase = |amount_cents, user: &str, i| GuardRequest {
        kind: EventKind::Purchase as i32,
        product_id: "p1".into(),
        quantity: 1,
        amount_cents,
        ..event(ip, user, i)
    };
    let crawler = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)";
    let requests = vec![
        event(ip, "u0", 0),
        GuardRequest { ip: String::new(), ..event(ip, "u1", 1) },
        event(ip, "u2", 2),
        purchase(MAX_AMOUNT_CENTS + 1, "u3", 3),
        GuardRequest { user_agent: "Mozilla/5.0 ".repeat(100), ..event(ip, "u4", 4) },
        GuardRequest { user_agent: "python-urllib3/2.0.7".into(), ..event("192.0.2.61", "u5", 5) },
        GuardRequest { user_agent: crawler.into(), ..event("192.0.2.62", "u6", 6) },
        GuardRequest { user_agent: String::new(), ..event("192.0.2.63", "u7", 7) },
        purchase(MAX_AMOUNT_CENTS, "u8", 8),
    ];
    let before = p.round_trips.load(Ordering::SeqCst);
    let out =
        client.check_batch(GuardBatchRequest { requests: requests.clone() }).await.unwrap().into_inner().responses;
    assert_eq!(p.round_trips.load(Ordering::SeqCst) - before, 1, "the valid items go to Redis together");
    assert_eq!(out.len(), requests.len());
    for (q, a) in requests.iter().zip(&out) {
        assert_eq!(a.event_id, q.event_id, "answers keep their request's position");
        assert!(!a.fallback, "{a:?}");
    }
    fn rules(r: &GuardResponse) -> Vec<&str> {
        r.findings.iter().map(|f| f.rule.as_str()).collect()
    }
    for (i, reason, value, limit) in [
        (1, "invalid_request: requests[1].ip: must not be empty (or give ip_hash)", 0.0, 1.0),
        (
            3,
            "invalid_request: requests[3].amount_cents: 1000000000001 is above the limit of 1000000000000",
            1e12 + 1.0,
            1e12,
        ),
        (4, "invalid_request: requests[4].user_agent: 1200 bytes is longer than the limit of 1024", 1200.0, 1024.0),
    ] {
        let a = &out[i];
        assert_eq!((verdict(a), rules(a), a.ip_events_in_window), (Verdict::Unknown, vec![rule::INVALID_REQUEST], 0));
        assert_eq!(a.reasons, vec![reason]);
        assert_eq!(
            (a.findings[0].verdict, a.findings[0].value, a.findings[0].threshold),
            (Verdict::Unknown as i32, value, limit)
        );
    }
    // The valid items from 192.0.2.60 were counted, the invalid ones never reached Redis.
    for (i, seen) in [(0, 1), (2, 2), (8, 3)] {
        let a = &out[i];
        assert_eq!((verdict(a), rules(a), a.ip_events_in_window), (Verdict::Allow, vec![], seen), "item {i}");
    }
    assert_eq!((verdict(&out[5]), rules(&out[5])), (Verdict::Flag, vec![rule::HTTP_CLIENT]));
    assert!(out[5].reasons[0].contains("python-urllib3"), "{:?}", out[5].reasons);
    assert_eq!((verdict(&out[6]), rules(&out[6])), (Verdict::Flag, vec![rule::CRAWLER_AGENT]));
    assert_eq!((verdict(&out[7]), rules(&out[7])), (Verdict::Flag, vec![rule::HTTP_CLIENT]));
    assert_eq!(out[7].reasons, vec!["http_client: the user agent is empty; every browser sends one"]);
    assert!(out[5..8].iter().all(|a| a.ip_events_in_window == 1));

    // Only invalid items: answered without going to Redis.
    let before = p.round_trips.load(Ordering::SeqCst);
    let bad = vec![
        GuardRequest { amount_cents: -100, ..event(ip, "u9", 9) },
        GuardRequest { quantity: -1, ..event(ip, "u9", 10) },
        GuardRequest { kind: 42, ..event(ip, "u9", 11) },
        GuardRequest { event_time_ms: 0, ..event(ip, "u9", 12) },
        GuardRequest { session_id: "s".repeat(65), ..event(ip, "u9", 13) },
    ];
    let out = client.check_batch(GuardBatchRequest { requests: bad }).await.unwrap().into_inner().responses;
    assert_eq!(p.round_trips.load(Ordering::SeqCst), before);
    let fields: Vec<&str> = out.iter().map(|a| a.findings[0].detail.split(':').next().unwrap()).collect();
    assert_eq!(
        fields,
        [
            "requests[0].amount_cents",
            "requests[1].quantity",
            "requests[2].kind",
            "requests[3].event_time_ms",
            "requests[4].session_id"
        ]
    );
    assert!(out.iter().all(|a| verdict(a) == Verdict::Unknown && !a.fallback));

    // More items than the batch limit is the caller's bug: the whole call is refused.
    let too_many = GuardBatchRequest { requests: (0..11).map(|i| event(ip, "u10", 20 + i)).collect() };
    let e = client.check_batch(too_many).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("11 items is more than the batch limit of 10"), "{}", e.message());
    // A single Check still refuses an invalid request, naming the field.
    let e = client.check(GuardRequest { amount_cents: -100, ..event(ip, "u11", 40) }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().starts_with("amount_cents: -100 is negative"), "{}", e.message());
    let r = client.check(event("192.0.2.64", "u11", 41)).await.unwrap().into_inner();
    assert_eq!((verdict(&r), r.ip_events_in_window, r.fallback), (Verdict::Allow, 1, false));
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    cleanup(&prefix).await;
}

#[tokio::test]
#[ignore = "needs the local stack (dev/up)"]
async fn the_same_round_trip_keeps_the_live_counts() {
    let prefix = unique_prefix("live");
    let guard = Guard::connect(&redis_url(), config(&prefix), 1_000).unwrap();
    guard.load_script().await.unwrap();
    let minute = |i: i64| (1_800_000_000_000 + i * 1_000) / 60_000;
    // Minute m0: users a, b, c (a twice); an anonymous visitor counts by IP.
    let mut first: Vec<GuardRequest> =
        ["a", "b", "a", "c"].iter().enumerate().map(|(i, u)| event("192.0.2.1", u, i as i64)).collect();
    first.push(GuardRequest { user_id: String::new(), session_id: "s-anon".into(), ..event("192.0.2.9", "", 4) });
    assert!(guard.check_all(&first).await.iter().all(|r| !r.fallback));
    let mut c = redis_conn().await;
    let pf = |m: i64| redis::cmd("PFCOUNT").arg(format!("{prefix}:live:visitors:{m}")).clone();
    let n: i64 = pf(minute(0)).query_async(&mut c).await.unwrap();
    assert_eq!(n, 4, "a, b, c and the anonymous IP");
    let sessions = format!("{prefix}:live:sessions");
    let open: i64 = redis::cmd("ZCARD").arg(&sessions).query_async(&mut c).await.unwrap();
    assert_eq!(open, 4);
    // Much later (past the session gap of 30 min), user d: every earlier session is closed,
    // and a late event of a closed session does not open it again.
    let later = 3_600;
    let second = [event("192.0.2.1", "d", later), event("192.0.2.1", "a", 5)];
    assert!(guard.check_all(&second).await.iter().all(|r| !r.fallback));
    let open: Vec<String> = redis::cmd("ZRANGE").arg(&sessions).arg(0).arg(-1).query_async(&mut c).await.unwrap();
    assert_eq!(open, ["s-d"]);
    let n: i64 = pf(minute(later)).query_async(&mut c).await.unwrap();
    assert_eq!(n, 1);
    let ttl: i64 =
        redis::cmd("PTTL").arg(format!("{prefix}:live:visitors:{}", minute(0))).query_async(&mut c).await.unwrap();
    assert!(ttl > 24 * 3_600_000, "visitor counts are kept for the dashboard's 24 h range: {ttl} ms");
    cleanup(&prefix).await;
}
