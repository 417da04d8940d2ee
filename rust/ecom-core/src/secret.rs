//! Server URLs that may carry credentials, and the files secrets are read from.
//!
//! A [`SecretUrl`] prints (Display and Debug) with its password replaced by `***`, so a URL can
//! go into a log line or an error message as it is. Clients get the password apart from the
//! URL ([`SecretUrl::credentials`] and [`SecretUrl::without_credentials`]) where their own
//! errors would print the URL they were given.

use std::fmt;
use std::path::Path;

/// The keyed hash of a client IP (`ip_hash`): HMAC-SHA256 under the IP-hash key, lower-case
/// hex. The job (Java, `Enrichment.ipHash`), Guard and `ecom hash-ip` compute the same value.
#[derive(Clone)]
pub struct IpHasher(hmac::Hmac<sha2::Sha256>);

impl IpHasher {
    /// A hasher under `key`.
    pub fn new(key: &[u8]) -> Self {
        use hmac::Mac as _;
        Self(hmac::Hmac::new_from_slice(key).expect("HMAC takes a key of any length"))
    }

    /// `ip`'s hash.
    pub fn hash(&self, ip: &str) -> String {
        use hmac::Mac as _;
        let mut m = self.0.clone();
        m.update(ip.as_bytes());
        hex::encode(m.finalize().into_bytes())
    }
}

impl fmt::Debug for IpHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IpHasher(***)")
    }
}

/// `ip`'s hash under `key` (see [`IpHasher`]).
pub fn ip_hash(key: &[u8], ip: &str) -> String {
    IpHasher::new(key).hash(ip)
}

/// A secret value (a token, a key): Debug and Display print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that uses it. Never print it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is this secret, in time independent of where they differ.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let mine = self.0.as_bytes();
        mine.len() == candidate.len() && mine.iter().zip(candidate).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A URL such as `scheme://user:password@host:port/path`, printed without its password.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl {
    url: String,
}

/// What a URL's credentials are: its user (may be empty) and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name, `""` when the URL names none (a Redis `requirepass`).
    pub user: String,
    /// The password; never printed.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("user", &self.user).field("password", &"***").finish()
    }
}

/// Splits `url` into (scheme and `://`, userinfo if any, the rest). The userinfo is what comes
/// before the last `@` of the authority (which ends at the first `/`, `?` or `#`).
fn split(url: &str) -> (&str, Option<&str>, &str) {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return ("", None, url);
    };
    let (head, tail) = url.split_at(start);
    let authority_end = tail.find(['/', '?', '#']).unwrap_or(tail.len());
    match tail[..authority_end].rfind('@') {
        Some(at) => (head, Some(&tail[..at]), &tail[at + 1..]),
        None => (head, None, tail),
    }
}

impl SecretUrl {
    /// `url` as given, with `password` (from a file or the environment) put in its userinfo
    /// when there is one; a password already in the URL is replaced.
    pub fn new(url: &str, password: Option<&str>) -> Self {
        let Some(password) = password else { return Self { url: url.to_string() } };
        let (head, userinfo, rest) = split(url);
        let user = userinfo.map_or("", |u| u.split_once(':').map_or(u, |(user, _)| user));
        Self { url: format!("{head}{user}:{}@{rest}", encode(password)) }
    }

    /// The URL with its credentials, for the client that connects. Never print it.
    pub fn expose(&self) -> &str {
        &self.url
    }

    /// The URL without user or password (for clients given credentials apart).
    pub fn without_credentials(&self) -> String {
        let (head, _, rest) = split(&self.url);
        format!("{head}{rest}")
    }

    /// The URL with its user but without its password, and the password apart: for handing the
    /// URL to a child process in its arguments and the password in its environment.
    pub fn split_password(&self) -> (String, Option<String>) {
        match split(&self.url) {
            (head, Some(userinfo), rest) if userinfo.contains(':') => {
                let (user, password) = userinfo.split_once(':').unwrap_or_default();
                let url = if user.is_empty() { format!("{head}{rest}") } else { format!("{head}{user}@{rest}") };
                (url, Some(decode(password)))
            }
            _ => (self.url.clone(), None),
        }
    }

    /// The value of an `Authorization: Basic` header for the URL's credentials, if it has a
    /// password.
    pub fn basic_auth(&self) -> Option<String> {
        use base64::Engine as _;
        let c = self.credentials()?;
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.user, c.password))
        ))
    }

    /// The URL's user and password, when it has a password.
    pub fn credentials(&self) -> Option<Credentials> {
        let (_, userinfo, _) = split(&self.url);
        let (user, password) = userinfo?.split_once(':')?;
        Some(Credentials { user: decode(user), password: decode(password) })
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.url))
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", redact(&self.url))
    }
}

/// `url` with the password in its userinfo replaced by `***` (the user is kept).
pub fn redact(url: &str) -> String {
    match split(url) {
        (head, Some(userinfo), rest) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let shown = if userinfo.contains(':') { format!("{user}:***") } else { user.to_string() };
            format!("{head}{shown}@{rest}")
        }
        _ => url.to_string(),
    }
}

/// Percent-encodes what a userinfo part cannot hold as it is.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .filter(|_| b[i] == b'%')
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads a secret from `file` (trailing newline dropped), else from the environment variable
/// `env`; `None` when neither is set. An empty secret is an error: a typo'd file must not
/// turn into "no password".
pub fn read(file: Option<&Path>, env: &str) -> Result<Option<String>, String> {
    let value = match file {
        Some(f) => std::fs::read_to_string(f)
            .map_err(|e| format!("reading the secret file {}: {e}", f.display()))?
            .trim_end_matches(['\n', '\r'])
            .to_string(),
        None => match std::env::var(env) {
            Ok(v) => v,
            Err(_) => return Ok(None),
        },
    };
    if value.is_empty() {
        let from = file.map_or_else(|| format!("${env}"), |f| f.display().to_string());
        return Err(format!("the secret in {from} is empty"));
    }
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_print_without_their_password() {
        let u = SecretUrl::new("mongodb://app:s3cr%40t@db1:27017,db2:27017/ecom?tls=true", None);
        assert_eq!(u.to_string(), "mongodb://app:***@db1:27017,db2:27017/ecom?tls=true");
        assert_eq!(format!("{u:?}"), "\"mongodb://app:***@db1:27017,db2:27017/ecom?tls=true\"");
        assert_eq!(u.without_credentials(), "mongodb://db1:27017,db2:27017/ecom?tls=true");
        assert_eq!(u.credentials().unwrap().password, "s3cr@t");
        assert_eq!(u.credentials().unwrap().user, "app");
        assert!(!format!("{:?}", u.credentials()).contains("s3cr"));
        assert_eq!(u.basic_auth().unwrap(), "Basic YXBwOnMzY3JAdA==");
    }

    #[test]
    fn a_password_from_a_file_goes_into_the_userinfo() {
        let es = SecretUrl::new("https://elastic@es:9200", Some("p@ss:/word"));
        assert_eq!(es.to_string(), "https://elastic:***@es:9200");
        assert_eq!(es.credentials().unwrap(), Credentials { user: "elastic".into(), password: "p@ss:/word".into() });
        assert_eq!(es.without_credentials(), "https://es:9200");
        let redis = SecretUrl::new("redis://127.0.0.1:6379", Some("pw"));
        assert_eq!(redis.expose(), "redis://:pw@127.0.0.1:6379");
        assert_eq!(redis.to_string(), "redis://:***@127.0.0.1:6379");
        let replaced = SecretUrl::new("redis://u:old@h:1", Some("new"));
        assert_eq!(replaced.expose(), "redis://u:new@h:1");
        assert_eq!(replaced.split_password(), ("redis://u@h:1".into(), Some("new".into())));
        assert_eq!(redis.split_password(), ("redis://127.0.0.1:6379".into(), Some("pw".into())));
        assert_eq!(SecretUrl::new("http://h:1", None).split_password(), ("http://h:1".into(), None));
    }

    #[test]
    fn ip_hashes_are_the_jobs() {
        // EnrichmentTest holds the same value for the Java side.
        assert_eq!(
            ip_hash(b"test-ip-hash-key", "203.0.113.9"),
            "cb232503523dfbc837bd2752ebecdf646e5d06d6d782cf449430d34a2d4dd854"
        );
        assert_eq!(ip_hash(b"k", "1.2.3.4"), ip_hash(b"k", "1.2.3.4"));
        assert_ne!(ip_hash(b"k", "1.2.3.4"), ip_hash(b"k2", "1.2.3.4"));
    }

    #[test]
    fn secrets_never_print_and_compare_whole() {
        let s = Secret::new("tok-123");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert!(s.matches(b"tok-123"));
        assert!(!s.matches(b"tok-124") && !s.matches(b"tok-12") && !s.matches(b""));
    }

    #[test]
    fn urls_without_credentials_are_untouched() {
        for url in ["http://127.0.0.1:9200", "redis://h:6379/0", "mongodb://h/db?x=a@b", "not a url"] {
            assert_eq!(SecretUrl::new(url, None).to_string(), url);
            assert_eq!(SecretUrl::new(url, None).credentials(), None);
        }
        assert_eq!(redact("http://user@h:1/p"), "http://user@h:1/p");
    }

    #[test]
    fn secrets_come_from_a_file_and_must_not_be_empty() {
        let dir = std::env::temp_dir().join(format!("ecom-secret-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pw");
        std::fs::write(&f, "hunter2\n").unwrap();
        assert_eq!(read(Some(&f), "ECOM_TEST_UNSET_VAR").unwrap().as_deref(), Some("hunter2"));
        std::fs::write(&f, "\n").unwrap();
        assert!(read(Some(&f), "ECOM_TEST_UNSET_VAR").unwrap_err().contains("is empty"));
        assert_eq!(read(None, "ECOM_TEST_UNSET_VAR").unwrap(), None);
        assert!(read(Some(&dir.join("missing")), "X").unwrap_err().contains("reading the secret file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
