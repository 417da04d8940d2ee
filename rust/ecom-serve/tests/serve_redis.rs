//! Service tests against the real Redis (and a real `ecom serve` over gRPC) of the local
//! stack. Run with `cargo test -- --include-ignored` after dev/up (dev/test does both).
use ecom_proto::v1::guard_client::GuardClient;
use ecom_proto::v1::{GuardBatchRequest, GuardRequest, Verdict};
use ecom_serve::guard::{Guard, GuardConfig};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod common;
use common::{free_addr, redis_url, Running};

fn unique_ip() -> String {
    let n = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("192.0.2.{}-{n}", n % 250)
}

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

fn req(ip: &str, i: usize) -> GuardRequest {
    GuardRequest {
        event_id: format!("e{i}"),
        event_time_ms: 1_800_000_000_000,
        ip: ip.into(),
        user_agent: BROWSER.into(),
        ..Default::default()
    }
}

#[tokio::test]
#[ignore = "needs the local stack (dev/up)"]
async fn counts_per_ip_in_redis_and_flags_then_blocks() {
    let cfg = GuardConfig { ip_flag_per_min: 3, ip_block_per_min: 5, ..Default::default() };
    let guard = Guard::connect(&redis_url(), cfg, 100).unwrap();
    assert!(guard.redis_ok().await, "Redis at {} must answer", redis_url());
    let ip = unique_ip();
    let reqs: Vec<_> = (0..7).map(|i| req(&ip, i)).collect();
    let out = guard.check_all(&reqs).await;
    let counts: Vec<i64> = out.iter().map(|r| r.ip_events_in_window).collect();
    assert_eq!(counts, vec![1, 2, 3, 4, 5, 6, 7]);
    let verdicts: Vec<Verdict> = out.iter().map(|r| Verdict::try_from(r.verdict).unwrap()).collect();
    use Verdict::*;
    assert_eq!(verdicts, vec![Allow, Allow, Allow, Flag, Flag, Block, Block]);
    assert!(out.iter().all(|r| !r.fallback));
    assert!(out[3].reasons[0].starts_with("ip_rate: 4 events/min"));
}

#[tokio::test]
async fn unreachable_redis_gives_the_fallback_within_the_deadline() {
    // Port 1 on loopback refuses connections: the guard must not hang.
    let cfg = GuardConfig { redis_timeout: Duration::from_millis(200), ..Default::default() };
    let guard = Guard::connect("redis://127.0.0.1:1", cfg, 100).unwrap();
    let started = Instant::now();
    let out = guard.check_all(&[req("198.51.100.7", 1)]).await;
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    assert!(out[0].fallback);
    assert_eq!(out[0].verdict, Verdict::Unknown as i32, "the declared default, the job's own fallback");
    assert!(out[0].reasons[0].starts_with("fallback:"), "{:?}", out[0].reasons);
}

#[tokio::test]
async fn invalid_items_keep_their_place_when_redis_is_down() {
    let cfg = GuardConfig { redis_timeout: Duration::from_millis(200), ..Default::default() };
    let guard = Guard::connect("redis://127.0.0.1:1", cfg, 100).unwrap();
    let reqs = vec![req("198.51.100.8", 0), req("", 1), req("198.51.100.8", 2)];
    let out = guard.check_each(reqs).await;
    let shape: Vec<(&str, i32, bool)> = out.iter().map(|r| (r.event_id.as_str(), r.verdict, r.fallback)).collect();
    let unknown = Verdict::Unknown as i32;
    assert_eq!(shape, vec![("e0", unknown, true), ("e1", unknown, false), ("e2", unknown, true)]);
    assert_eq!(out[1].reasons, vec!["invalid_request: requests[1].ip: must not be empty (or give ip_hash)"]);
}

#[tokio::test]
#[ignore = "needs the local stack (dev/up)"]
async fn grpc_guard_health_and_http_over_loopback() {
    let http = free_addr();
    let cfg = ecom_serve::ServeConfig {
        grpc_addr: free_addr(),
        http_addr: http,
        redis_url: ecom_core::secret::SecretUrl::new(&redis_url(), None),
        guard: GuardConfig::default(),
        max_batch: 10,
        ..Default::default()
    };
    let serve = Running::start(cfg).await;
    let channel = serve.channel.clone();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let h = health
        .check(tonic_health::pb::HealthCheckRequest { service: "ecom.v1.Guard".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(h.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);

    let mut client = GuardClient::new(channel);
    let ip = unique_ip();
    let r = client.check(req(&ip, 1)).await.unwrap().into_inner();
    assert_eq!((r.verdict, r.ip_events_in_window, r.fallback), (Verdict::Allow as i32, 1, false));
    let batch = GuardBatchRequest { requests: (0..3).map(|i| req(&ip, i)).collect() };
    let rs = client.check_batch(batch).await.unwrap().into_inner().responses;
    assert_eq!(rs.iter().map(|r| r.ip_events_in_window).collect::<Vec<_>>(), vec![2, 3, 4]);

    let bot = GuardRequest { user_agent: "Googlebot/2.1 (+http://www.google.com/bot.html)".into(), ..req(&ip, 5) };
    let r = client.check(bot).await.unwrap().into_inner();
    assert_eq!(r.verdict, Verdict::Flag as i32);
    assert_eq!(r.findings.iter().map(|f| f.rule.as_str()).collect::<Vec<_>>(), vec!["crawler_agent"]);

    let bad = client.check(GuardRequest { ip: String::new(), ..req(&ip, 9) }).await.unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("ip"), "{}", bad.message());
    let too_many = GuardBatchRequest { requests: (0..11).map(|i| req(&ip, i)).collect() };
    assert_eq!(client.check_batch(too_many).await.unwrap_err().code(), tonic::Code::InvalidArgument);
    let mixed =
        GuardBatchRequest { requests: vec![req(&ip, 10), GuardRequest { user_id: "u".repeat(65), ..req(&ip, 11) }] };
    let rs = client.check_batch(mixed).await.unwrap().into_inner().responses;
    assert_eq!(rs.iter().map(|r| r.verdict).collect::<Vec<_>>(), vec![Verdict::Allow as i32, Verdict::Unknown as i32]);

    let body = http_get(&format!("http://{http}/metrics")).await;
    assert!(body.contains("ecom_guard_verdicts_total"), "{body}");
    assert!(body.contains("ecom_guard_findings_total{rule=\"crawler_agent\""), "{body}");
    assert!(body.contains("ecom_guard_redis_seconds"), "{body}");
    assert!(body.contains("ecom_guard_invalid_requests_total{field=\"ip\"}"), "{body}");
    assert!(body.contains("ecom_guard_invalid_requests_total{field=\"user_id\"}"), "{body}");
    let health = http_get(&format!("http://{http}/health")).await;
    assert!(health.contains("\"redis\":\"ok\""), "{health}");

    serve.stop().await;
}

async fn http_get(url: &str) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}
