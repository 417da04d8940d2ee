//! Guard: live security checks over Redis. For each event, or a whole batch, one Lua script
//! (guard.lua: one EVALSHA round trip, atomic) updates the live state — sliding-window rates
//! per IP, user and session; HyperLogLogs of users with failed logins per IP, of IPs with
//! failed logins per user, of products per IP, of sessions bulk-adding one product and of
//! sessions with small purchases per IP; each session's event timing; block and allow lists —
//! and returns the numbers. `decide` turns those numbers and the user agent (the public crawler
//! list, then HTTP-client libraries and an empty agent) into a verdict with findings: pure
//! Rust, unit-tested without Redis. Requests are checked against ecom-core's field limits; in a
//! batch each invalid item gets its own VERDICT_UNKNOWN answer and the others are judged as
//! usual. When Redis does not answer in time, the declared fallback verdict is returned with
//! `fallback = true`; the service never hangs on Redis.
mod agents;
mod config;
mod decide;

pub use agents::{
    agent_match, crawler_match, crawler_patterns, http_client_match, AgentMatch, EMPTY_AGENT, HTTP_CLIENT_AGENTS,
};
pub use config::{rule, GuardConfig, GuardConfigError, RATE_WINDOW_MS};
pub use decide::{decide, request_for, Decision, Signals};

use agents::crawler_set;
use decide::{event_flags, finding, record, severity, SCRIPT, SCRIPT_FIELDS};
#[cfg(test)]
use decide::{FLAG_BULK_ADD, FLAG_FAILED_LOGIN, FLAG_SMALL_PURCHASE};
use ecom_core::secret::IpHasher;
use ecom_proto::v1::guard_server::Guard as GuardApi;
use ecom_proto::v1::{GuardBatchRequest, GuardBatchResponse, GuardRequest, GuardResponse, Verdict};
use redis::aio::ConnectionManager;
use std::collections::HashMap;
use std::time::Instant;
use tonic::{Request, Response, Status};

/// The Guard service: rules over a shared, auto-reconnecting Redis connection.
#[derive(Clone)]
pub struct Guard {
    redis: ConnectionManager,
    cfg: GuardConfig,
    max_batch: usize,
    /// Hashes raw IPs as the job does, so Redis key names and lists hold no raw IP.
    ip_hasher: IpHasher,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").field("cfg", &self.cfg).finish()
    }
}

/// Why one request cannot be judged (ecom-core's field rules), and how Guard answers it.
#[derive(Debug, Clone, PartialEq)]
struct Invalid(ecom_core::validate::FieldError);

impl Invalid {
    /// "field: why", with "requests[i]." before the field in a batch.
    fn message(&self, i: Option<usize>) -> String {
        format!("{}{}: {}", crate::field_at(i), self.0.field, self.0.why)
    }

    /// Its own answer for item `i` of a batch: VERDICT_UNKNOWN (not judged, not a fallback)
    /// with one `invalid_request` finding naming the field.
    fn response(&self, event_id: String, i: usize) -> GuardResponse {
        let detail = self.message(Some(i));
        GuardResponse {
            event_id,
            verdict: Verdict::Unknown as i32,
            reasons: vec![format!("{}: {detail}", rule::INVALID_REQUEST)],
            ip_events_in_window: 0,
            fallback: false,
            findings: vec![finding(rule::INVALID_REQUEST, Verdict::Unknown, self.0.value, self.0.limit, detail)],
        }
    }

    fn record(&self) {
        metrics::counter!("ecom_guard_invalid_requests_total", "field" => self.0.field).increment(1);
    }
}

impl Guard {
    /// Prepares a lazy Redis connection: serve starts even when Redis is down, and answers
    /// with the fallback until Redis is back.
    pub fn connect(redis_url: &str, cfg: GuardConfig, max_batch: usize) -> redis::RedisResult<Self> {
        Self::with_client(redis::Client::open(redis_url)?, cfg, max_batch)
    }

    /// As [`Guard::connect`], with the client made (e.g. [`crate::redis_client`] for TLS).
    pub fn with_client(client: redis::Client, cfg: GuardConfig, max_batch: usize) -> redis::RedisResult<Self> {
        let mgr_cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(cfg.redis_timeout))
            .set_response_timeout(Some(cfg.redis_timeout))
            .set_number_of_retries(1);
        let redis = ConnectionManager::new_lazy_with_config(client, mgr_cfg)?;
        // Compile the crawler patterns now, not on the first request.
        crawler_set();
        // Until `with_ip_hash_key`: a key of this process alone, so raw IPs never reach Redis.
        let mut key = [0u8; 32];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut key)?;
        Ok(Self { redis, cfg, max_batch, ip_hasher: IpHasher::new(&key) })
    }

    /// Hashes requests' raw IPs with `key`, the job's IP-hash key, so per-IP state survives a
    /// restart and matches the job's ip_hash (which the job sends in place of the IP).
    pub fn with_ip_hash_key(mut self, key: &[u8]) -> Self {
        self.ip_hasher = IpHasher::new(key);
        self
    }

    /// The name of `ip` in Redis: its keyed hash. Block and allow lists hold these
    /// (`ecom hash-ip` prints one).
    pub fn ip_key(&self, ip: &str) -> String {
        self.ip_hasher.hash(ip)
    }

    /// What a request's per-IP state is keyed by: its ip_hash, else its ip hashed.
    fn ip_of(&self, r: &GuardRequest) -> String {
        if r.ip_hash.is_empty() {
            self.ip_key(&r.ip)
        } else {
            r.ip_hash.clone()
        }
    }

    /// PINGs Redis within the configured timeout.
    pub async fn redis_ok(&self) -> bool {
        let mut c = self.redis.clone();
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut c);
        matches!(tokio::time::timeout(self.cfg.redis_timeout, ping).await, Ok(Ok(_)))
    }

    /// Loads guard.lua into Redis's script cache, so the first batch needs no extra round trip.
    pub async fn load_script(&self) -> redis::RedisResult<()> {
        let mut c = self.redis.clone();
        SCRIPT.load_async(&mut c).await.map(|_| ())
    }

    /// Checks one request against the field rules (ecom-core's `validate::guard_request`).
    fn validate(r: &GuardRequest) -> Result<(), Invalid> {
        ecom_core::validate::guard_request(r).map_err(Invalid)
    }

    /// Checks a batch item by item: an invalid request gets its own VERDICT_UNKNOWN answer
    /// naming the field (`invalid_request`); the valid ones are judged together, one Redis round
    /// trip, and every answer keeps its request's position.
    pub async fn check_each(&self, reqs: Vec<GuardRequest>) -> Vec<GuardResponse> {
        let mut answers: Vec<Option<GuardResponse>> = Vec::with_capacity(reqs.len());
        let mut valid = Vec::with_capacity(reqs.len());
        for (i, r) in reqs.into_iter().enumerate() {
            match Self::validate(&r) {
                Ok(()) => {
                    answers.push(None);
                    valid.push(r);
                }
                Err(bad) => {
                    bad.record();
                    answers.push(Some(bad.response(r.event_id, i)));
                }
            }
        }
        let mut judged = self.check_all(&valid).await.into_iter();
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| judged.next().expect("check_all answers every request it is given")))
            .collect()
    }

    /// Checks a batch with one Redis round trip; falls back when Redis fails or is slow. The
    /// requests are taken as valid: `check_each` validates first.
    pub async fn check_all(&self, reqs: &[GuardRequest]) -> Vec<GuardResponse> {
        if reqs.is_empty() {
            return Vec::new();
        }
        let mut call = SCRIPT.prepare_invoke();
        call.arg(&self.cfg.key_prefix)
            .arg(RATE_WINDOW_MS)
            .arg(self.cfg.burst_window_ms)
            .arg(self.cfg.scraping_window_ms)
            .arg(self.cfg.session_idle_ms)
            .arg(self.cfg.speed_min_gap_ms)
            .arg(u8::from(self.cfg.live_counts));
        for r in reqs {
            call.arg(r.event_time_ms)
                .arg(self.ip_of(r))
                .arg(&r.user_id)
                .arg(&r.session_id)
                .arg(&r.product_id)
                .arg(event_flags(r, &self.cfg));
        }
        let started = Instant::now();
        let mut conn = self.redis.clone();
        let answer = tokio::time::timeout(self.cfg.redis_timeout, call.invoke_async::<Vec<i64>>(&mut conn)).await;
        metrics::histogram!("ecom_guard_redis_seconds").record(started.elapsed().as_secs_f64());
        let numbers = match answer {
            Ok(Ok(n)) if n.len() == reqs.len() * SCRIPT_FIELDS => Ok(n),
            Ok(Ok(n)) => Err((
                "error",
                format!(
                    "guard script returned {} numbers for {} events (expected {SCRIPT_FIELDS} each)",
                    n.len(),
                    reqs.len()
                ),
            )),
            // The connection's own response timeout may fire first: report it as the timeout.
            Ok(Err(e)) if e.is_timeout() => {
                Err(("timeout", format!("redis timeout after {:?}", self.cfg.redis_timeout)))
            }
            Ok(Err(e)) => Err(("error", format!("redis error: {e}"))),
            Err(_) => Err(("timeout", format!("redis timeout after {:?}", self.cfg.redis_timeout))),
        };
        match numbers {
            Ok(numbers) => {
                // Few distinct user agents per batch: match each once.
                let mut agents: HashMap<&str, AgentMatch> = HashMap::new();
                reqs.iter()
                    .zip(numbers.chunks_exact(SCRIPT_FIELDS))
                    .map(|(r, n)| {
                        let agent = *agents.entry(&r.user_agent).or_insert_with(|| agent_match(&r.user_agent));
                        let signals = Signals::from_script(n, agent);
                        let d = decide(&signals, &self.cfg);
                        record(&d);
                        GuardResponse {
                            event_id: r.event_id.clone(),
                            verdict: d.verdict as i32,
                            reasons: d.reasons,
                            ip_events_in_window: signals.ip_rate,
                            fallback: false,
                            findings: d.findings,
                        }
                    })
                    .collect()
            }
            Err((cause, why)) => {
                tracing::warn!(%why, "guard answering with the fallback verdict");
                metrics::counter!("ecom_guard_redis_errors_total", "cause" => cause).increment(1);
                metrics::counter!("ecom_guard_fallback_total", "verdict" => self.cfg.fallback_verdict.as_str_name())
                    .increment(reqs.len() as u64);
                reqs.iter().map(|r| self.without_redis(r, &why)).collect()
            }
        }
    }

    /// The answer while Redis cannot be asked: the rules that need no Redis state (the
    /// user-agent patterns) still decide, and the verdict is the more severe of theirs and the
    /// declared `fallback_verdict`, with `fallback = true` and the reason first.
    fn without_redis(&self, r: &GuardRequest, why: &str) -> GuardResponse {
        let d = decide(&Signals { agent: agent_match(&r.user_agent), ..Default::default() }, &self.cfg);
        let fallback = self.cfg.fallback_verdict;
        let verdict =
            if d.findings.is_empty() || severity(fallback) >= severity(d.verdict) { fallback } else { d.verdict };
        let mut reasons = vec![format!("fallback: {why}; answered with the declared fallback verdict")];
        reasons.extend(d.reasons);
        GuardResponse {
            event_id: r.event_id.clone(),
            verdict: verdict as i32,
            reasons,
            ip_events_in_window: 0,
            fallback: true,
            findings: d.findings,
        }
    }
}

#[tonic::async_trait]
impl GuardApi for Guard {
    async fn check(&self, request: Request<GuardRequest>) -> Result<Response<GuardResponse>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        let out = match Self::validate(&r) {
            Ok(()) => Ok(self.check_all(std::slice::from_ref(&r)).await.pop().expect("one response per request")),
            Err(bad) => {
                bad.record();
                Err(Status::invalid_argument(bad.message(None)))
            }
        };
        crate::observe("Guard.Check", started, out.is_ok());
        Ok(Response::new(out?))
    }

    async fn check_batch(&self, request: Request<GuardBatchRequest>) -> Result<Response<GuardBatchResponse>, Status> {
        let started = Instant::now();
        let reqs = request.into_inner().requests;
        let out = async {
            crate::check_batch(reqs.len(), self.max_batch)?;
            Ok::<_, Status>(GuardBatchResponse { responses: self.check_each(reqs).await })
        }
        .await;
        crate::observe("Guard.CheckBatch", started, out.is_ok());
        Ok(Response::new(out?))
    }
}

#[cfg(test)]
mod tests;
