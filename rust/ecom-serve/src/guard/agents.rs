//! The user-agent rules: the public crawler list, then HTTP-client libraries and the empty
//! agent.
use regex::RegexSet;
use std::sync::LazyLock;

/// The crawler regexes of the npm package crawler-user-agents (data/crawler-patterns.txt,
/// written by dev/update-crawler-agents), in file order.
pub fn crawler_patterns() -> &'static [&'static str] {
    static PATTERNS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
        include_str!("../../data/crawler-patterns.txt")
            .lines()
            // Leading and trailing spaces are part of some patterns: no trimming.
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    });
    &PATTERNS
}

pub(super) fn crawler_set() -> &'static RegexSet {
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
