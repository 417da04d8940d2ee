//! The Guard service against the real Redis of the local stack (dev/up), no mocks: one round trip
//! per batch, the fallback when Redis is slow, a batch with invalid items judged item by item,
//! and the live counts kept in the same round trip. Each test uses its own key prefix.
mod guard_common;
use ecom_core::validate::MAX_AMOUNT_CENTS;
use ecom_proto::v1::guard_client::GuardClient;
use ecom_proto::v1::{EventKind, GuardBatchRequest, GuardRequest, GuardResponse, Verdict};
use ecom_serve::guard::{rule, Guard, GuardConfig};
use guard_common::*;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
