//! Guard: live security checks on Redis. This slice counts events per IP in a one-minute
//! window (INCR + EXPIRE in one MULTI/EXEC, one round trip per event or per batch) and flags
//! or blocks above configured thresholds. When Redis does not answer in time, the declared
//! fallback verdict is returned with `fallback = true`; the service never hangs on Redis.
use ecom_proto::v1::guard_server::Guard as GuardApi;
use ecom_proto::v1::{GuardBatchRequest, GuardBatchResponse, GuardRequest, GuardResponse, Verdict};
use redis::aio::ConnectionManager;
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status};

/// Guard rules and the fallback.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// Events per IP per minute above which the event is flagged.
    pub ip_flag_per_min: i64,
    /// Events per IP per minute above which the event is blocked.
    pub ip_block_per_min: i64,
    /// How long to wait for Redis before answering with the fallback.
    pub redis_timeout: Duration,
    /// Verdict returned (with fallback = true) when Redis is unavailable.
    pub fallback_verdict: Verdict,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            ip_flag_per_min: 300,
            ip_block_per_min: 1_200,
            redis_timeout: Duration::from_millis(250),
            fallback_verdict: Verdict::Allow,
        }
    }
}

/// The Guard service: rules over a shared, auto-reconnecting Redis connection.
#[derive(Clone)]
pub struct Guard {
    redis: ConnectionManager,
    cfg: GuardConfig,
    max_batch: usize,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").field("cfg", &self.cfg).finish()
    }
}

const WINDOW_MS: i64 = 60_000;

impl Guard {
    /// Prepares a lazy Redis connection: serve starts even when Redis is down, and answers
    /// with the fallback until Redis is back.
    pub fn connect(redis_url: &str, cfg: GuardConfig, max_batch: usize) -> redis::RedisResult<Self> {
        let client = redis::Client::open(redis_url)?;
        let mgr_cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(cfg.redis_timeout))
            .set_response_timeout(Some(cfg.redis_timeout))
            .set_number_of_retries(1);
        let redis = ConnectionManager::new_lazy_with_config(client, mgr_cfg)?;
        Ok(Self { redis, cfg, max_batch })
    }

    /// PINGs Redis within the configured timeout.
    pub async fn redis_ok(&self) -> bool {
        let mut c = self.redis.clone();
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut c);
        matches!(tokio::time::timeout(self.cfg.redis_timeout, ping).await, Ok(Ok(_)))
    }

    fn validate(r: &GuardRequest, i: Option<usize>) -> Result<(), Status> {
        let at = i.map(|i| format!("requests[{i}].")).unwrap_or_default();
        if r.ip.is_empty() {
            return Err(Status::invalid_argument(format!("{at}ip: must not be empty")));
        }
        if r.event_time_ms <= 0 {
            return Err(Status::invalid_argument(format!("{at}event_time_ms: must be ms since epoch > 0")));
        }
        Ok(())
    }

    /// Checks a batch with one Redis round trip; falls back when Redis fails or is slow.
    pub async fn check_all(&self, reqs: &[GuardRequest]) -> Vec<GuardResponse> {
        let started = Instant::now();
        let mut pipe = redis::pipe();
        pipe.atomic();
        for r in reqs {
            let key = format!("ecom:guard:ip:{}:{}", r.ip, r.event_time_ms.div_euclid(WINDOW_MS));
            pipe.incr(&key, 1).expire(&key, 2 * WINDOW_MS / 1000).ignore();
        }
        let mut conn = self.redis.clone();
        let counts: Result<Vec<i64>, String> =
            match tokio::time::timeout(self.cfg.redis_timeout, pipe.query_async::<Vec<i64>>(&mut conn)).await {
                Ok(Ok(c)) => Ok(c),
                Ok(Err(e)) => Err(format!("redis error: {e}")),
                Err(_) => Err(format!("redis timeout after {:?}", self.cfg.redis_timeout)),
            };
        metrics::histogram!("ecom_guard_redis_seconds").record(started.elapsed().as_secs_f64());
        match counts {
            Ok(counts) => reqs.iter().zip(counts).map(|(r, n)| self.decide(r, n)).collect(),
            Err(why) => {
                tracing::warn!(%why, "guard answering with the fallback verdict");
                metrics::counter!("ecom_guard_redis_errors_total").increment(1);
                reqs.iter()
                    .map(|r| GuardResponse {
                        event_id: r.event_id.clone(),
                        verdict: self.cfg.fallback_verdict as i32,
                        reasons: vec![format!("fallback: {why}")],
                        ip_events_in_window: 0,
                        fallback: true,
                        findings: vec![],
                    })
                    .inspect(|_| metrics::counter!("ecom_guard_fallback_total").increment(1))
                    .collect()
            }
        }
    }

    fn decide(&self, r: &GuardRequest, n: i64) -> GuardResponse {
        let (verdict, reasons) = if n > self.cfg.ip_block_per_min {
            (Verdict::Block, vec![format!("ip_rate: {n} events/min > block limit {}", self.cfg.ip_block_per_min)])
        } else if n > self.cfg.ip_flag_per_min {
            (Verdict::Flag, vec![format!("ip_rate: {n} events/min > flag limit {}", self.cfg.ip_flag_per_min)])
        } else {
            (Verdict::Allow, vec![])
        };
        metrics::counter!("ecom_guard_verdicts_total", "verdict" => verdict.as_str_name()).increment(1);
        GuardResponse {
            event_id: r.event_id.clone(),
            verdict: verdict as i32,
            reasons,
            ip_events_in_window: n,
            fallback: false,
            findings: vec![],
        }
    }
}

#[tonic::async_trait]
impl GuardApi for Guard {
    async fn check(&self, request: Request<GuardRequest>) -> Result<Response<GuardResponse>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        Self::validate(&r, None)?;
        let mut out = self.check_all(std::slice::from_ref(&r)).await;
        metrics::histogram!("ecom_grpc_seconds", "method" => "Guard.Check").record(started.elapsed().as_secs_f64());
        Ok(Response::new(out.pop().expect("one response per request")))
    }

    async fn check_batch(&self, request: Request<GuardBatchRequest>) -> Result<Response<GuardBatchResponse>, Status> {
        let started = Instant::now();
        let reqs = request.into_inner().requests;
        if reqs.len() > self.max_batch {
            return Err(Status::invalid_argument(format!(
                "requests: {} items is more than the batch limit of {}",
                reqs.len(),
                self.max_batch
            )));
        }
        for (i, r) in reqs.iter().enumerate() {
            Self::validate(r, Some(i))?;
        }
        let responses = self.check_all(&reqs).await;
        metrics::histogram!("ecom_grpc_seconds", "method" => "Guard.CheckBatch")
            .record(started.elapsed().as_secs_f64());
        Ok(Response::new(GuardBatchResponse { responses }))
    }
}
