//! From one event's numbers to a verdict: what guard.lua returns per event, the flags it reads,
//! and `decide`, pure Rust over those numbers and the configuration.
use super::agents::{crawler_patterns, AgentMatch, EMPTY_AGENT, HTTP_CLIENT_AGENTS};
use super::config::{rule, GuardConfig};
use ecom_proto::v1::{EventKind, GuardFinding, GuardRequest, Verdict};
use std::sync::LazyLock;

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
pub(super) static SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(include_str!("guard.lua")));
/// Numbers guard.lua returns per event.
pub(super) const SCRIPT_FIELDS: usize = 12;

/// Flags guard.lua reads per event; the thresholds behind them stay in Rust.
pub(super) const FLAG_FAILED_LOGIN: u8 = 1;
pub(super) const FLAG_SMALL_PURCHASE: u8 = 2;
pub(super) const FLAG_BULK_ADD: u8 = 4;

pub(super) fn event_flags(r: &GuardRequest, cfg: &GuardConfig) -> u8 {
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
    pub(super) fn from_script(n: &[i64], agent: AgentMatch) -> Self {
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

pub(super) fn finding(rule: &str, verdict: Verdict, value: f64, threshold: f64, detail: String) -> GuardFinding {
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

pub(super) fn record(d: &Decision) {
    metrics::counter!("ecom_guard_verdicts_total", "verdict" => d.verdict.as_str_name()).increment(1);
    for f in &d.findings {
        let verdict = Verdict::try_from(f.verdict).unwrap_or(Verdict::Unspecified).as_str_name();
        metrics::counter!("ecom_guard_findings_total", "rule" => f.rule.clone(), "verdict" => verdict).increment(1);
    }
}

/// allow < unknown < flag < block: which of two verdicts wins.
pub(super) fn severity(v: Verdict) -> u8 {
    match v {
        Verdict::Allow | Verdict::Unspecified => 0,
        Verdict::Unknown => 1,
        Verdict::Flag => 2,
        Verdict::Block => 3,
    }
}
