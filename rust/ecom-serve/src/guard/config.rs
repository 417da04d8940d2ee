//! Guard's rules, thresholds and fallback: defaults, a JSON file overriding any subset, and
//! the checks that name the file and the field of a bad one.
use ecom_proto::v1::Verdict;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

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
