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
use ecom_core::secret::IpHasher;
use ecom_proto::v1::guard_server::Guard as GuardApi;
use ecom_proto::v1::{
    EventKind, GuardBatchRequest, GuardBatchResponse, GuardFinding, GuardRequest, GuardResponse, Verdict,
};
use redis::aio::ConnectionManager;
use regex::RegexSet;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status};

/// Names of the guard's rules, as they appear in `GuardFinding.rule`, in reasons and metrics.
pub mod rule {
    /// The IP or the user is on the block list: forces block.
    pub const BLOCK_LIST: &str = "block_list";
    /// The IP or the user is on the allow list: forces allow, over every other finding.
    pub const ALLOW_LIST: &str = "allow_list";
    /// Events per minute from one IP.
    pub const IP_RATE: &str = "ip_rate";
    /// Events per minute from one user.
    pub const USER_RATE: &str = "user_rate";
    /// Events per minute in one session.
    pub const SESSION_RATE: &str = "session_rate";
    /// Distinct users with failed logins from one IP in the burst window.
    pub const CREDENTIAL_STUFFING_IP: &str = "credential_stuffing_ip";
    /// Distinct IPs with failed logins for one user in the burst window.
    pub const CREDENTIAL_STUFFING_USER: &str = "credential_stuffing_user";
    /// Sessions with small purchases from one IP in the burst window.
    pub const CARD_TESTING: &str = "card_testing";
    /// Distinct sessions adding a large quantity of one product in the burst window.
    pub const BULK_CART: &str = "bulk_cart";
    /// Distinct products from one IP in the (short) scraping window.
    pub const SCRAPING: &str = "scraping";
    /// Machine-regular gaps between a session's events (low coefficient of variation).
    pub const REGULAR_TIMING: &str = "regular_timing";
    /// Gaps between a session's events shorter than a human manages.
    pub const IMPOSSIBLE_SPEED: &str = "impossible_speed";
    /// The user agent matches the public crawler list.
    pub const CRAWLER_AGENT: &str = "crawler_agent";
    /// The user agent is empty or an HTTP-client library's or tool's (`HTTP_CLIENT_AGENTS`),
    /// and no crawler pattern matches it: a script, not a browser.
    pub const HTTP_CLIENT: &str = "http_client";
    /// The request breaks a field rule (CheckBatch only; the finding stands alone, with
    /// VERDICT_UNKNOWN, and names the field).
    pub const INVALID_REQUEST: &str = "invalid_request";
    /// Every rule, in the order findings are reported.
    pub const ALL: &[&str] = &[
        ALLOW_LIST,
        BLOCK_LIST,
        IP_RATE,
        USER_RATE,
        SESSION_RATE,
        CREDENTIAL_STUFFING_IP,
        CREDENTIAL_STUFFING_USER,
        CARD_TESTING,
        BULK_CART,
        SCRAPING,
        REGULAR_TIMING,
        IMPOSSIBLE_SPEED,
        CRAWLER_AGENT,
        HTTP_CLIENT,
        INVALID_REQUEST,
    ];
}

/// The rate rules' window: their limits are per minute.
pub const RATE_WINDOW_MS: i64 = 60_000;

/// Guard rules, thresholds and the fallback. Every field has a default, and a JSON file
/// (`from_json_file`) overrides any subset. A rule flags or blocks when its number is above the
/// limit (below it, for the timing rule's coefficient of variation); a limit of
/// 9223372036854775807 turns that level off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuardConfig {
    /// Prefix of every Redis key the guard uses, lists included (`<prefix>:block:ip`).
    pub key_prefix: String,
    /// How long to wait for Redis before answering with the fallback (JSON: `redis_timeout_ms`).
    #[serde(rename = "redis_timeout_ms", with = "millis")]
    pub redis_timeout: Duration,
    /// Verdict returned, with fallback = true, when Redis is unavailable (JSON: "allow",
    /// "flag", "block" or "unknown"); "unknown" by default, the job's own fallback when it
    /// cannot ask the Guard. The rules that need no Redis still decide (the more severe wins).
    #[serde(with = "verdict_name")]
    pub fallback_verdict: Verdict,
    /// Events per IP per minute above which the event is flagged.
    pub ip_flag_per_min: i64,
    /// Events per IP per minute above which the event is blocked.
    pub ip_block_per_min: i64,
    /// Events per user per minute above which the event is flagged.
    pub user_flag_per_min: i64,
    /// Events per user per minute above which the event is blocked.
    pub user_block_per_min: i64,
    /// Events per session per minute above which the event is flagged.
    pub session_flag_per_min: i64,
    /// Events per session per minute above which the event is blocked.
    pub session_block_per_min: i64,
    /// Window of the credential-stuffing, card-testing and bulk-cart rules, in ms.
    pub burst_window_ms: i64,
    /// Distinct users with failed logins from one IP in the window above which it is flagged.
    pub stuffing_ip_flag_users: i64,
    /// Distinct users with failed logins from one IP in the window above which it is blocked.
    pub stuffing_ip_block_users: i64,
    /// Distinct IPs with failed logins for one user in the window above which it is flagged.
    pub stuffing_user_flag_ips: i64,
    /// Distinct IPs with failed logins for one user in the window above which it is blocked.
    pub stuffing_user_block_ips: i64,
    /// A purchase with 0 < amount_cents <= this is small (a card being tested).
    pub card_small_amount_cents: i64,
    /// Sessions with a small purchase from one IP in the window above which it is flagged
    /// (sessions, not purchases: one checkout of several cheap lines is not card testing).
    pub card_flag_sessions: i64,
    /// Sessions with a small purchase from one IP in the window above which it is blocked.
    pub card_block_sessions: i64,
    /// An add to cart of at least this quantity of one product counts for the bulk-cart rule.
    pub bulk_cart_min_quantity: i32,
    /// Distinct sessions bulk-adding one product in the window above which it is flagged.
    pub bulk_cart_flag_sessions: i64,
    /// Distinct sessions bulk-adding one product in the window above which it is blocked.
    pub bulk_cart_block_sessions: i64,
    /// Window of the scraping rule, in ms: short, because a scraper differs from a household
    /// behind one address by how fast it meets new products, not by how many it sees in a day.
    pub scraping_window_ms: i64,
    /// Distinct products from one IP in the scraping window above which it is flagged.
    pub scraping_flag_products: i64,
    /// Distinct products from one IP in the scraping window above which it is blocked.
    pub scraping_block_products: i64,
    /// Gaps a session needs before its timing is judged.
    pub timing_min_gaps: i64,
    /// Coefficient of variation of a session's gaps, x1000, below which it is flagged.
    pub timing_flag_cv_milli: i64,
    /// Coefficient of variation of a session's gaps, x1000, below which it is blocked.
    pub timing_block_cv_milli: i64,
    /// A gap between a session's events shorter than this (ms) is faster than a human.
    pub speed_min_gap_ms: i64,
    /// Too-fast gaps in a session above which it is flagged.
    pub speed_flag_fast_gaps: i64,
    /// Too-fast gaps in a session above which it is blocked.
    pub speed_block_fast_gaps: i64,
    /// A session's timing state is dropped after this long without events (ms); also how long
    /// after the newest event seen a session counts as open in the live counts.
    pub session_idle_ms: i64,
    /// Keep the shop's live counts (visitors per minute, open sessions) in the same Redis
    /// round trip, for `ecom dashboard`; no rule reads them.
    pub live_counts: bool,
    /// Verdict of the crawler-agent rule ("allow" reports only; declared crawlers are often
    /// wanted, e.g. search engines).
    #[serde(with = "verdict_name")]
    pub crawler_agent_verdict: Verdict,
    /// Verdict of the HTTP-client rule: an empty user agent or an HTTP library's, which no
    /// browser sends ("allow" reports only).
    #[serde(with = "verdict_name")]
    pub http_client_verdict: Verdict,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            key_prefix: "ecom:guard".into(),
            redis_timeout: Duration::from_millis(250),
            fallback_verdict: Verdict::Unknown,
            ip_flag_per_min: 300,
            ip_block_per_min: 1_200,
            user_flag_per_min: 120,
            user_block_per_min: 600,
            session_flag_per_min: 60,
            session_block_per_min: 300,
            burst_window_ms: 600_000,
            stuffing_ip_flag_users: 2,
            stuffing_ip_block_users: 10,
            stuffing_user_flag_ips: 3,
            stuffing_user_block_ips: 10,
            card_small_amount_cents: 2_000,
            card_flag_sessions: 1,
            card_block_sessions: 5,
            bulk_cart_min_quantity: 5,
            bulk_cart_flag_sessions: 2,
            bulk_cart_block_sessions: 20,
            scraping_window_ms: 120_000,
            scraping_flag_products: 40,
            scraping_block_products: 150,
            timing_min_gaps: 8,
            timing_flag_cv_milli: 100,
            timing_block_cv_milli: 10,
            speed_min_gap_ms: 500,
            speed_flag_fast_gaps: 4,
            speed_block_fast_gaps: 20,
            session_idle_ms: 1_800_000,
            live_counts: true,
            crawler_agent_verdict: Verdict::Flag,
            http_client_verdict: Verdict::Flag,
        }
    }
}

/// What is wrong with a guard configuration; names the file and the field.
#[derive(Debug, thiserror::Error)]
pub enum GuardConfigError {
    /// The file could not be read.
    #[error("cannot read guard config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid JSON for `GuardConfig`, or a value is out of range.
    #[error("guard config {path}: field `{field}`: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// The field at fault (`.` for the top level, e.g. an unknown field).
        field: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// A value is out of range.
    #[error("guard config: field `{field}`: {message}")]
    Invalid {
        /// The field at fault.
        field: &'static str,
        /// What is wrong and what is expected.
        message: String,
    },
}

impl GuardConfig {
    /// Reads a JSON object whose fields override the defaults, and checks the result.
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self, GuardConfigError> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|source| GuardConfigError::Read { path: path.into(), source })?;
        let cfg: Self =
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(&text)).map_err(|e| {
                GuardConfigError::File {
                    path: path.into(),
                    field: e.path().to_string(),
                    message: e.inner().to_string(),
                }
            })?;
        cfg.validate().map_err(|e| match e {
            GuardConfigError::Invalid { field, message } => {
                GuardConfigError::File { path: path.into(), field: field.into(), message }
            }
            other => other,
        })?;
        Ok(cfg)
    }

    /// Checks ranges: positive windows, flag limits not beyond block limits, usable verdicts.
    pub fn validate(&self) -> Result<(), GuardConfigError> {
        let bad = |field: &'static str, message: String| Err(GuardConfigError::Invalid { field, message });
        if self.key_prefix.is_empty() {
            return bad("key_prefix", "must not be empty".into());
        }
        if self.redis_timeout.is_zero() {
            return bad("redis_timeout_ms", "must be > 0".into());
        }
        if self.fallback_verdict == Verdict::Unspecified {
            return bad("fallback_verdict", "must be \"allow\", \"flag\", \"block\" or \"unknown\"".into());
        }
        for (field, v) in
            [("crawler_agent_verdict", self.crawler_agent_verdict), ("http_client_verdict", self.http_client_verdict)]
        {
            if !matches!(v, Verdict::Allow | Verdict::Flag | Verdict::Block) {
                return bad(field, "must be \"allow\", \"flag\" or \"block\"".into());
            }
        }
        for (field, v) in [
            ("burst_window_ms", self.burst_window_ms),
            ("scraping_window_ms", self.scraping_window_ms),
            ("session_idle_ms", self.session_idle_ms),
            ("speed_min_gap_ms", self.speed_min_gap_ms),
            ("timing_min_gaps", self.timing_min_gaps),
            ("card_small_amount_cents", self.card_small_amount_cents),
            ("bulk_cart_min_quantity", i64::from(self.bulk_cart_min_quantity)),
        ] {
            if v <= 0 {
                return bad(field, format!("{v} must be > 0"));
            }
        }
        for ((flag_field, flag), (block_field, block)) in [
            (("ip_flag_per_min", self.ip_flag_per_min), ("ip_block_per_min", self.ip_block_per_min)),
            (("user_flag_per_min", self.user_flag_per_min), ("user_block_per_min", self.user_block_per_min)),
            (
                ("session_flag_per_min", self.session_flag_per_min),
                ("session_block_per_min", self.session_block_per_min),
            ),
            (
                ("stuffing_ip_flag_users", self.stuffing_ip_flag_users),
                ("stuffing_ip_block_users", self.stuffing_ip_block_users),
            ),
            (
                ("stuffing_user_flag_ips", self.stuffing_user_flag_ips),
                ("stuffing_user_block_ips", self.stuffing_user_block_ips),
            ),
            (("card_flag_sessions", self.card_flag_sessions), ("card_block_sessions", self.card_block_sessions)),
            (
                ("bulk_cart_flag_sessions", self.bulk_cart_flag_sessions),
                ("bulk_cart_block_sessions", self.bulk_cart_block_sessions),
            ),
            (
                ("scraping_flag_products", self.scraping_flag_products),
                ("scraping_block_products", self.scraping_block_products),
            ),
            (
                ("speed_flag_fast_gaps", self.speed_flag_fast_gaps),
                ("speed_block_fast_gaps", self.speed_block_fast_gaps),
            ),
        ] {
            if flag < 0 {
                return bad(flag_field, format!("{flag} must be >= 0"));
            }
            if flag > block {
                return bad(flag_field, format!("{flag} is above {block_field} ({block}); flag before you block"));
            }
        }
        if self.timing_block_cv_milli > self.timing_flag_cv_milli {
            return bad(
                "timing_block_cv_milli",
                format!(
                    "{} is above timing_flag_cv_milli ({}); the block limit is the stricter, lower one",
                    self.timing_block_cv_milli, self.timing_flag_cv_milli
                ),
            );
        }
        Ok(())
    }
}

/// `Duration` as whole milliseconds in JSON.
mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// `Verdict` as "allow", "flag", "block" or "unknown" in JSON.
mod verdict_name {
    use ecom_proto::v1::Verdict;
    use serde::de::{Error, Unexpected};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Verdict, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.as_str_name().trim_start_matches("VERDICT_").to_ascii_lowercase())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Verdict, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "allow" => Ok(Verdict::Allow),
            "flag" => Ok(Verdict::Flag),
            "block" => Ok(Verdict::Block),
            "unknown" => Ok(Verdict::Unknown),
            _ => Err(D::Error::invalid_value(Unexpected::Str(&s), &"\"allow\", \"flag\", \"block\" or \"unknown\"")),
        }
    }
}

/// The crawler regexes of the npm package crawler-user-agents (data/crawler-patterns.txt,
/// written by dev/update-crawler-agents), in file order.
pub fn crawler_patterns() -> &'static [&'static str] {
    static PATTERNS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
        include_str!("../data/crawler-patterns.txt")
            .lines()
            // Leading and trailing spaces are part of some patterns: no trimming.
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    });
    &PATTERNS
}

fn crawler_set() -> &'static RegexSet {
    static SET: LazyLock<RegexSet> = LazyLock::new(|| {
        regex::RegexSetBuilder::new(crawler_patterns())
            .size_limit(64 << 20)
            .build()
            .expect("the shipped crawler patterns compile (a unit test checks every one)")
    });
    &SET
}

/// Index into `crawler_patterns` of the first pattern the user agent matches, if any.
pub fn crawler_match(user_agent: &str) -> Option<usize> {
    let set = crawler_set();
    // is_match can stop at the first hit; matches() only runs for the few crawlers.
    if user_agent.is_empty() || !set.is_match(user_agent) {
        return None;
    }
    set.matches(user_agent).iter().next()
}

/// HTTP-client libraries and tools, as (name, pattern), and first (`EMPTY_AGENT`) the empty
/// user agent, which every browser fills in. Matched case-insensitively. Each pattern is
/// anchored at the start, where these clients put their own product token; every browser,
/// in-app browsers included, starts with `Mozilla/5.0 (`, so none of these can match one (a
/// unit test runs real browser agents through both agent rules). PowerShell is the one client
/// that starts like a browser: its pattern names the whole prefix. The crawler list already
/// knows some of these (curl, Wget, python-requests, okhttp, …): those stay `crawler_agent`
/// findings (`agent_match`).
pub const HTTP_CLIENT_AGENTS: &[(&str, &str)] = &[
    ("an empty user agent", r"^\s*$"),
    ("curl", r"^curl(/|$)"),
    ("libcurl", r"^libcurl"),
    ("PycURL", r"^pycurl/"),
    ("Wget", r"^wget/"),
    ("python-requests", r"^python-requests/"),
    ("python-urllib3", r"^python-urllib3/"),
    ("Python-urllib", r"^python-urllib/"),
    ("httplib2", r"^python-httplib2/"),
    ("aiohttp", r"^(python/[0-9.]+ )?aiohttp/"),
    ("Python", r"^python/[0-9]"),
    ("httpx", r"^python-httpx/"),
    ("Scrapy", r"^scrapy/"),
    ("Java (HttpURLConnection, java.net.http.HttpClient)", r"^java(-http-client)?/[0-9]"),
    ("Apache HttpClient", r"^apache-http(async)?client/"),
    ("Jakarta Commons HttpClient", r"^jakarta commons-httpclient/"),
    ("OkHttp", r"^okhttp/"),
    ("Ktor", r"^ktor client"),
    ("Vert.x WebClient", r"^vert\.x-webclient/"),
    ("Go net/http", r"^go-http-client/"),
    ("node-fetch", r"^node-fetch(/|$)"),
    ("axios", r"^axios/"),
    ("undici", r"^undici(/|$)"),
    ("Node.js fetch", r"^node(/[0-9.]+)?$"),
    ("superagent", r"^node-superagent/"),
    ("got", r"^got( |/|$)"),
    ("Deno", r"^deno/"),
    ("Bun", r"^bun/"),
    ("Postman", r"^postmanruntime/"),
    ("Insomnia", r"^insomnia/"),
    ("HTTPie", r"^httpie/"),
    ("libwww-perl", r"^libwww-perl/"),
    ("Ruby Net::HTTP", r"^ruby(/|$)"),
    ("Faraday", r"^faraday v[0-9]"),
    ("http.rb", r"^http\.rb/"),
    ("rest-client", r"^rest-client/"),
    ("Ruby httpclient", r"^httpclient/"),
    ("Typhoeus", r"^typhoeus"),
    ("Guzzle", r"^guzzlehttp/"),
    ("RestSharp", r"^restsharp/"),
    ("PowerShell", r"^mozilla/5\.0 \([^)]*\) (windows)?powershell/"),
    ("reqwest", r"^reqwest/"),
    ("Dart", r"^dart/"),
];

/// The entry of `HTTP_CLIENT_AGENTS` that matches an empty (or blank) user agent.
pub const EMPTY_AGENT: usize = 0;

fn http_client_set() -> &'static RegexSet {
    static SET: LazyLock<RegexSet> = LazyLock::new(|| {
        regex::RegexSetBuilder::new(HTTP_CLIENT_AGENTS.iter().map(|(_, p)| p))
            .case_insensitive(true)
            .build()
            .expect("the HTTP-client patterns compile (a unit test checks every one)")
    });
    &SET
}

/// Index into `HTTP_CLIENT_AGENTS` of the first entry the user agent matches, if any.
pub fn http_client_match(user_agent: &str) -> Option<usize> {
    http_client_set().matches(user_agent).iter().next()
}

/// What the user agent gives away, by the two agent rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AgentMatch {
    /// Neither list matches: a browser, or an agent neither knows.
    #[default]
    Other,
    /// Index into `crawler_patterns` of the first crawler pattern it matches.
    Crawler(usize),
    /// Index into `HTTP_CLIENT_AGENTS` of the first entry it matches.
    HttpClient(usize),
}

/// The user agent against the crawler list, then the HTTP clients: an agent both know is a
/// crawler only, so one agent gives at most one finding.
pub fn agent_match(user_agent: &str) -> AgentMatch {
    match crawler_match(user_agent) {
        Some(i) => AgentMatch::Crawler(i),
        None => http_client_match(user_agent).map_or(AgentMatch::Other, AgentMatch::HttpClient),
    }
}

/// The request a client sends for a validated event, as the Flink job's GuardCall does:
/// amount_cents is ecom-core's amount (quantity, absent or 0 counting as 1, × unit_price_cents)
/// for a purchase, 0 otherwise. Every event ecom-core accepts gives a valid request.
pub fn request_for(e: &ecom_proto::v1::Event) -> GuardRequest {
    let purchase = e.kind == EventKind::Purchase as i32;
    GuardRequest {
        event_id: e.event_id.clone(),
        event_time_ms: e.event_time_ms,
        ip: e.ip.clone(),
        user_id: e.user_id.clone(),
        session_id: e.session_id.clone(),
        kind: e.kind,
        user_agent: e.user_agent.clone(),
        product_id: e.product_id.clone().unwrap_or_default(),
        quantity: e.quantity.unwrap_or(0),
        amount_cents: if purchase { ecom_core::validate::amount_cents(e).unwrap_or(i64::MAX) } else { 0 },
        ip_hash: e.ip_hash.clone(),
    }
}

/// guard.lua: the whole state update for a batch, one EVALSHA (loaded on first use). It builds
/// key names from its arguments, touching keys not passed in KEYS: it needs a single Redis
/// (replicas are fine), not Redis Cluster.
static SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(include_str!("guard.lua")));
/// Numbers guard.lua returns per event.
const SCRIPT_FIELDS: usize = 12;

/// Flags guard.lua reads per event; the thresholds behind them stay in Rust.
const FLAG_FAILED_LOGIN: u8 = 1;
const FLAG_SMALL_PURCHASE: u8 = 2;
const FLAG_BULK_ADD: u8 = 4;

fn event_flags(r: &GuardRequest, cfg: &GuardConfig) -> u8 {
    let kind = EventKind::try_from(r.kind).unwrap_or(EventKind::Unspecified);
    let mut flags = 0;
    if kind == EventKind::LoginFailed {
        flags |= FLAG_FAILED_LOGIN;
    }
    // An amount of 0 means the caller did not send it: no evidence of a small purchase.
    if kind == EventKind::Purchase && r.amount_cents > 0 && r.amount_cents <= cfg.card_small_amount_cents {
        flags |= FLAG_SMALL_PURCHASE;
    }
    if kind == EventKind::AddToCart && r.quantity >= cfg.bulk_cart_min_quantity && !r.product_id.is_empty() {
        flags |= FLAG_BULK_ADD;
    }
    flags
}

/// The numbers behind one event's verdict: guard.lua's output and the user-agent match.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signals {
    /// Events from the IP in the sliding minute, this one included.
    pub ip_rate: i64,
    /// Events from the user in the sliding minute (0 without a user id).
    pub user_rate: i64,
    /// Events in the session in the sliding minute (0 without a session id).
    pub session_rate: i64,
    /// Distinct users with failed logins from the IP in the burst window.
    pub failed_users_per_ip: i64,
    /// Distinct IPs with failed logins for the user in the burst window.
    pub failed_ips_per_user: i64,
    /// Distinct sessions with a small purchase from the IP in the burst window.
    pub small_purchase_sessions_per_ip: i64,
    /// Distinct sessions bulk-adding this event's product in the burst window (bulk adds only).
    pub bulk_cart_sessions: i64,
    /// Distinct products from the IP in the scraping window (events with a product only).
    pub products_per_ip: i64,
    /// Gaps between the session's events so far.
    pub gaps: i64,
    /// Coefficient of variation of those gaps x1000; -1 until there are two.
    pub gap_cv_milli: i64,
    /// Gaps shorter than `speed_min_gap_ms`.
    pub fast_gaps: i64,
    /// The IP is on the block list.
    pub ip_blocked: bool,
    /// The IP is on the allow list.
    pub ip_allowed: bool,
    /// The user is on the block list.
    pub user_blocked: bool,
    /// The user is on the allow list.
    pub user_allowed: bool,
    /// What the user agent matches (`agent_match`).
    pub agent: AgentMatch,
}

impl Signals {
    /// Reads one event's `SCRIPT_FIELDS` numbers in guard.lua's order.
    fn from_script(n: &[i64], agent: AgentMatch) -> Self {
        Self {
            ip_rate: n[0],
            user_rate: n[1],
            session_rate: n[2],
            failed_users_per_ip: n[3],
            failed_ips_per_user: n[4],
            small_purchase_sessions_per_ip: n[5],
            bulk_cart_sessions: n[6],
            products_per_ip: n[7],
            gaps: n[8],
            gap_cv_milli: n[9],
            fast_gaps: n[10],
            ip_blocked: n[11] & 1 != 0,
            ip_allowed: n[11] & 2 != 0,
            user_blocked: n[11] & 4 != 0,
            user_allowed: n[11] & 8 != 0,
            agent,
        }
    }
}

/// A verdict with every finding behind it and one reason ("rule: detail") per finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Allow, flag or block.
    pub verdict: Verdict,
    /// Every rule that fired, in `rule::ALL` order.
    pub findings: Vec<GuardFinding>,
    /// "rule: detail", one per finding.
    pub reasons: Vec<String>,
}

fn finding(rule: &str, verdict: Verdict, value: f64, threshold: f64, detail: String) -> GuardFinding {
    GuardFinding { rule: rule.into(), verdict: verdict as i32, value, threshold, detail }
}

/// A finding when `value` is above the flag or the block limit.
fn above(rule: &str, value: i64, flag: i64, block: i64, what: &str) -> Option<GuardFinding> {
    let (verdict, limit, level) = if value > block {
        (Verdict::Block, block, "block")
    } else if value > flag {
        (Verdict::Flag, flag, "flag")
    } else {
        return None;
    };
    Some(finding(rule, verdict, value as f64, limit as f64, format!("{value} {what} > {level} limit {limit}")))
}

/// The verdict for one event from its numbers and the configuration. Allow lists win over
/// everything, block lists force block, otherwise the strictest finding decides.
pub fn decide(s: &Signals, cfg: &GuardConfig) -> Decision {
    let window_min = cfg.burst_window_ms as f64 / 60_000.0;
    let mut findings = Vec::new();
    let allowed = s.ip_allowed || s.user_allowed;
    if allowed {
        let who = if s.ip_allowed { "IP" } else { "user" };
        let detail = format!("the {who} is on the allow list, which overrides every other finding");
        findings.push(finding(rule::ALLOW_LIST, Verdict::Allow, 1.0, 1.0, detail));
    }
    if s.ip_blocked || s.user_blocked {
        let who = match (s.ip_blocked, s.user_blocked) {
            (true, true) => "IP and the user are",
            (true, false) => "IP is",
            _ => "user is",
        };
        findings.push(finding(rule::BLOCK_LIST, Verdict::Block, 1.0, 1.0, format!("the {who} on the block list")));
    }
    findings.extend(
        [
            above(rule::IP_RATE, s.ip_rate, cfg.ip_flag_per_min, cfg.ip_block_per_min, "events/min from this IP"),
            above(
                rule::USER_RATE,
                s.user_rate,
                cfg.user_flag_per_min,
                cfg.user_block_per_min,
                "events/min from this user",
            ),
            above(
                rule::SESSION_RATE,
                s.session_rate,
                cfg.session_flag_per_min,
                cfg.session_block_per_min,
                "events/min in this session",
            ),
            above(
                rule::CREDENTIAL_STUFFING_IP,
                s.failed_users_per_ip,
                cfg.stuffing_ip_flag_users,
                cfg.stuffing_ip_block_users,
                &format!("users with failed logins from this IP in {window_min} min"),
            ),
            above(
                rule::CREDENTIAL_STUFFING_USER,
                s.failed_ips_per_user,
                cfg.stuffing_user_flag_ips,
                cfg.stuffing_user_block_ips,
                &format!("IPs with failed logins for this user in {window_min} min"),
            ),
            above(
                rule::CARD_TESTING,
                s.small_purchase_sessions_per_ip,
                cfg.card_flag_sessions,
                cfg.card_block_sessions,
                &format!(
                    "sessions with a purchase of at most {} cents from this IP in {window_min} min",
                    cfg.card_small_amount_cents
                ),
            ),
            above(
                rule::BULK_CART,
                s.bulk_cart_sessions,
                cfg.bulk_cart_flag_sessions,
                cfg.bulk_cart_block_sessions,
                &format!(
                    "sessions adding {}+ of this product to a cart in {window_min} min",
                    cfg.bulk_cart_min_quantity
                ),
            ),
            above(
                rule::SCRAPING,
                s.products_per_ip,
                cfg.scraping_flag_products,
                cfg.scraping_block_products,
                &format!("distinct products from this IP in {} min", cfg.scraping_window_ms as f64 / 60_000.0),
            ),
        ]
        .into_iter()
        .flatten(),
    );
    if s.gaps >= cfg.timing_min_gaps && s.gap_cv_milli >= 0 {
        let level = if s.gap_cv_milli < cfg.timing_block_cv_milli {
            Some((Verdict::Block, cfg.timing_block_cv_milli, "block"))
        } else if s.gap_cv_milli < cfg.timing_flag_cv_milli {
            Some((Verdict::Flag, cfg.timing_flag_cv_milli, "flag"))
        } else {
            None
        };
        if let Some((verdict, limit, name)) = level {
            let (cv, limit) = (s.gap_cv_milli as f64 / 1000.0, limit as f64 / 1000.0);
            let detail = format!(
                "coefficient of variation {cv:.3} of {} gaps between this session's events < {name} limit {limit:.3} \
                 (machine-regular timing)",
                s.gaps
            );
            findings.push(finding(rule::REGULAR_TIMING, verdict, cv, limit, detail));
        }
    }
    findings.extend(above(
        rule::IMPOSSIBLE_SPEED,
        s.fast_gaps,
        cfg.speed_flag_fast_gaps,
        cfg.speed_block_fast_gaps,
        &format!("gaps under {} ms between this session's events", cfg.speed_min_gap_ms),
    ));
    match s.agent {
        AgentMatch::Crawler(i) => {
            let pattern = crawler_patterns().get(i).copied().unwrap_or("?");
            let detail = format!("the user agent matches the public crawler pattern `{pattern}` (crawler-user-agents)");
            findings.push(finding(rule::CRAWLER_AGENT, cfg.crawler_agent_verdict, 1.0, 1.0, detail));
        }
        AgentMatch::HttpClient(EMPTY_AGENT) => {
            let detail = "the user agent is empty; every browser sends one".to_string();
            findings.push(finding(rule::HTTP_CLIENT, cfg.http_client_verdict, 1.0, 1.0, detail));
        }
        AgentMatch::HttpClient(i) => {
            let (name, pattern) = HTTP_CLIENT_AGENTS.get(i).copied().unwrap_or(("?", "?"));
            let detail = format!("the user agent is from {name} (pattern `{pattern}`): an HTTP client, not a browser");
            findings.push(finding(rule::HTTP_CLIENT, cfg.http_client_verdict, 1.0, 1.0, detail));
        }
        AgentMatch::Other => {}
    }
    let verdict = if allowed {
        Verdict::Allow
    } else {
        findings
            .iter()
            .filter_map(|f| Verdict::try_from(f.verdict).ok())
            .max_by_key(|v| *v as i32)
            .unwrap_or(Verdict::Allow)
    };
    let reasons = findings.iter().map(|f| format!("{}: {}", f.rule, f.detail)).collect();
    Decision { verdict, findings, reasons }
}

fn record(d: &Decision) {
    metrics::counter!("ecom_guard_verdicts_total", "verdict" => d.verdict.as_str_name()).increment(1);
    for f in &d.findings {
        let verdict = Verdict::try_from(f.verdict).unwrap_or(Verdict::Unspecified).as_str_name();
        metrics::counter!("ecom_guard_findings_total", "rule" => f.rule.clone(), "verdict" => verdict).increment(1);
    }
}

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

    /// The configuration in use.
    pub fn config(&self) -> &GuardConfig {
        &self.cfg
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
}

impl Guard {
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

/// allow < unknown < flag < block: which of two verdicts wins.
fn severity(v: Verdict) -> u8 {
    match v {
        Verdict::Allow | Verdict::Unspecified => 0,
        Verdict::Unknown => 1,
        Verdict::Flag => 2,
        Verdict::Block => 3,
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
        // Too many items is the caller's bug, not one item's: the whole call is refused.
        let out = if reqs.len() > self.max_batch {
            Err(Status::invalid_argument(format!(
                "requests: {} items is more than the batch limit of {}",
                reqs.len(),
                self.max_batch
            )))
        } else {
            Ok(GuardBatchResponse { responses: self.check_each(reqs).await })
        };
        crate::observe("Guard.CheckBatch", started, out.is_ok());
        Ok(Response::new(out?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecom_core::validate::{MAX_AMOUNT_CENTS, MAX_ID_LEN, MAX_IP_LEN, MAX_TEXT_LEN};

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
        eprintln!(
            "browser user agents matched by crawler_agent or http_client: {} of {}",
            matched.len(),
            browsers.len()
        );
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
        assert_eq!(
            r.reasons,
            vec!["invalid_request: requests[7].user_agent: 2000 bytes is longer than the limit of 1024"]
        );
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
}
