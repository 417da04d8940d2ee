//! Helpers of the Guard service tests (guard_rules.rs, guard_batches.rs): the stack's Redis, a
//! key prefix per test, a Guard served on a free port, crafted events.
#![allow(dead_code)] // each test binary uses its own subset
use ecom_proto::v1::guard_server::GuardServer;
use ecom_proto::v1::{EventKind, GuardRequest, GuardResponse, Verdict};
use ecom_serve::guard::{Guard, GuardConfig};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub fn unique_prefix(test: &str) -> String {
    let n = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("ecom:test:guard:{test}:{n}")
}

pub async fn redis_conn() -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(redis_url()).unwrap();
    client.get_multiplexed_async_connection().await.unwrap_or_else(|e| panic!("Redis at {}: {e}", redis_url()))
}

/// Deletes a test's keys (they would expire anyway; this keeps a shared Redis tidy).
pub async fn cleanup(prefix: &str) {
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

pub fn config(prefix: &str) -> GuardConfig {
    // Generous: the machine may be busy with builds, and a fallback here would be a test failure.
    GuardConfig { key_prefix: prefix.into(), redis_timeout: Duration::from_secs(5), ..Default::default() }
}

pub async fn serve(
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

pub fn event(ip: &str, user: &str, i: i64) -> GuardRequest {
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

pub fn verdict(r: &GuardResponse) -> Verdict {
    Verdict::try_from(r.verdict).unwrap()
}
