//! Where each server of the stack is, with its secret: one declaration per server, flattened
//! into every subcommand that talks to it. A password comes from `--<server>-password-file` or
//! `$<SERVER>_PASSWORD` (or the URL itself) and is never printed: URLs print through
//! [`SecretUrl`], and a child `ecom` process gets the URL in its arguments and the password in
//! its environment.

use anyhow::{bail, Context};
use ecom_core::secret::{self, SecretUrl};
use std::path::PathBuf;

/// Kafka: where every command's clients connect. Their other client settings (TLS, SASL) come
/// from `$ECOM_KAFKA_PROPERTIES_FILE` (ecom_sink::kafka).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct KafkaArgs {
    /// Kafka bootstrap servers (host:port, comma-separated).
    #[arg(
        long = "bootstrap-servers",
        visible_alias = "brokers",
        default_value = KAFKA_DEFAULT,
        env = "KAFKA_BOOTSTRAP"
    )]
    pub(crate) brokers: String,
}

/// The local stack's Kafka.
pub(crate) const KAFKA_DEFAULT: &str = "127.0.0.1:9092";

fn resolve(url: &str, file: Option<&std::path::Path>, env: &str) -> anyhow::Result<SecretUrl> {
    let password = secret::read(file, env).map_err(anyhow::Error::msg)?;
    Ok(SecretUrl::new(url, password.as_deref()))
}

/// Gives `cmd` (a child `ecom` process) the server at `url`: `--<flag> URL` without its
/// password, and the password in `env`.
fn hand_to(cmd: &mut tokio::process::Command, flag: &str, url: &SecretUrl, env: &str) {
    let (bare, password) = url.split_password();
    cmd.arg(flag).arg(bare);
    // The child ranks a password file above the variable: it must not find the parent's.
    cmd.env_remove(format!("{env}_FILE"));
    match password {
        Some(p) => cmd.env(env, p),
        None => cmd.env_remove(env),
    };
}

/// Elasticsearch.
#[derive(Clone, clap::Args)]
pub(crate) struct EsArgs {
    /// Elasticsearch URL; with a user in it (https://USER@host:9200) requests use basic auth.
    #[arg(long, default_value = "http://127.0.0.1:9200", env = "ES_URL", hide_env_values = true)]
    pub(crate) es_url: String,
    /// File holding the Elasticsearch password (else $ES_PASSWORD, else the URL's own).
    #[arg(long, env = "ES_PASSWORD_FILE")]
    pub(crate) es_password_file: Option<PathBuf>,
}

impl EsArgs {
    /// The URL with its password.
    pub(crate) fn url(&self) -> anyhow::Result<SecretUrl> {
        resolve(&self.es_url, self.es_password_file.as_deref(), "ES_PASSWORD").context("--es-password-file")
    }

    /// Hands this server to a child `ecom` process.
    pub(crate) fn hand_to(&self, cmd: &mut tokio::process::Command) -> anyhow::Result<()> {
        hand_to(cmd, "--es-url", &self.url()?, "ES_PASSWORD");
        Ok(())
    }
}

/// MongoDB.
#[derive(Clone, clap::Args)]
pub(crate) struct MongoArgs {
    /// MongoDB URL (mongodb://[USER@]host:port/...).
    #[arg(long, default_value = "mongodb://127.0.0.1:27017", env = "MONGODB_URL", hide_env_values = true)]
    pub(crate) mongo_url: String,
    /// File holding the MongoDB password (else $MONGODB_PASSWORD, else the URL's own).
    #[arg(long, env = "MONGODB_PASSWORD_FILE")]
    pub(crate) mongo_password_file: Option<PathBuf>,
}

impl MongoArgs {
    /// The URL with its password.
    pub(crate) fn url(&self) -> anyhow::Result<SecretUrl> {
        resolve(&self.mongo_url, self.mongo_password_file.as_deref(), "MONGODB_PASSWORD")
            .context("--mongo-password-file")
    }

    /// Hands this server to a child `ecom` process.
    pub(crate) fn hand_to(&self, cmd: &mut tokio::process::Command) -> anyhow::Result<()> {
        hand_to(cmd, "--mongo-url", &self.url()?, "MONGODB_PASSWORD");
        Ok(())
    }
}

/// Redis.
#[derive(Clone, clap::Args)]
pub(crate) struct RedisArgs {
    /// Redis URL (redis://[USER@]host:port, rediss:// for TLS).
    #[arg(long, default_value = "redis://127.0.0.1:6379", env = "REDIS_URL", hide_env_values = true)]
    pub(crate) redis_url: String,
    /// File holding the Redis password (else $REDIS_PASSWORD, else the URL's own).
    #[arg(long, env = "REDIS_PASSWORD_FILE")]
    pub(crate) redis_password_file: Option<PathBuf>,
    /// PEM CA certificates a rediss:// server's certificate must chain to (else the system's).
    #[arg(long, env = "REDIS_CA_FILE")]
    pub(crate) redis_ca_file: Option<PathBuf>,
}

impl RedisArgs {
    /// The URL with its password.
    pub(crate) fn url(&self) -> anyhow::Result<SecretUrl> {
        resolve(&self.redis_url, self.redis_password_file.as_deref(), "REDIS_PASSWORD").context("--redis-password-file")
    }

    /// Hands this server to a child `ecom` process.
    pub(crate) fn hand_to(&self, cmd: &mut tokio::process::Command) -> anyhow::Result<()> {
        hand_to(cmd, "--redis-url", &self.url()?, "REDIS_PASSWORD");
        if let Some(ca) = &self.redis_ca_file {
            cmd.arg("--redis-ca-file").arg(ca);
        }
        Ok(())
    }

    /// The CA file's certificates, when one is named.
    pub(crate) fn ca_pem(&self) -> anyhow::Result<Option<Vec<u8>>> {
        self.redis_ca_file
            .as_deref()
            .map(|f| std::fs::read(f).with_context(|| format!("--redis-ca-file {}", f.display())))
            .transpose()
    }

    /// A client for this server.
    pub(crate) fn client(&self) -> anyhow::Result<redis::Client> {
        Ok(ecom_serve::redis_client(&self.url()?, self.ca_pem()?.as_deref())?)
    }
}

/// The servers' arguments print with their URLs redacted (a URL may hold a password).
macro_rules! redacted_debug {
    ($t:ty, $url:ident) => {
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t))
                    .field(stringify!($url), &secret::redact(&self.$url))
                    .finish_non_exhaustive()
            }
        }
    };
}
redacted_debug!(EsArgs, es_url);
redacted_debug!(MongoArgs, mongo_url);
redacted_debug!(RedisArgs, redis_url);

/// An HTTP client for Elasticsearch's REST API alone: its credentials ride on every request
/// (so this client must never call another server), and `base` is the URL without them.
#[derive(Debug, Clone)]
pub(crate) struct EsHttp {
    pub(crate) client: reqwest::Client,
    pub(crate) base: String,
}

impl EsHttp {
    pub(crate) fn new(url: &SecretUrl) -> anyhow::Result<Self> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(auth) = url.basic_auth() {
            let mut v = reqwest::header::HeaderValue::from_str(&auth)?;
            v.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        let client = reqwest::Client::builder().default_headers(headers).build()?;
        Ok(Self { client, base: url.without_credentials().trim_end_matches('/').to_string() })
    }

    /// Documents in `index` (a pattern may match none) that match `query`.
    pub(crate) async fn count(&self, index: &str, query: serde_json::Value) -> anyhow::Result<u64> {
        let r: serde_json::Value = self
            .client
            .post(format!("{}/{index}/_count?ignore_unavailable=true&allow_no_indices=true", self.base))
            .json(&serde_json::json!({ "query": query }))
            .send()
            .await
            .context("counting documents in Elasticsearch")?
            .json()
            .await?;
        Ok(r["count"].as_u64().unwrap_or(0))
    }
}

impl EsArgs {
    /// A client for Elasticsearch's REST API.
    pub(crate) fn http(&self) -> anyhow::Result<EsHttp> {
        EsHttp::new(&self.url()?)
    }
}

/// The environment variable holding the job's IP-hash key (the job reads it too).
pub(crate) const IP_HASH_KEY_ENV: &str = "ECOM_IP_HASH_KEY";

/// The IP-hash key: from `file`, else `$ECOM_IP_HASH_KEY`, else the local stack's key file if
/// `ecom demo` made one. Never a new key: one the job does not use would hash to nothing.
pub(crate) fn ip_hash_key(file: Option<&std::path::Path>) -> anyhow::Result<String> {
    let stack = stack_key_file();
    let file = match file {
        Some(f) => Some(f.to_path_buf()),
        None if std::env::var_os(IP_HASH_KEY_ENV).is_some() => None,
        None if stack.exists() => Some(stack.clone()),
        None => bail!(
            "no IP-hash key: pass --ip-hash-key-file (the job's key) or set ${IP_HASH_KEY_ENV} ({} does not exist)",
            stack.display()
        ),
    };
    secret::read(file.as_deref(), IP_HASH_KEY_ENV).map_err(anyhow::Error::msg)?.context("no IP-hash key")
}

/// The stack's state directory: `given`, else `$ECOM_HOME`, else `~/.local/state/ecom`.
pub(crate) fn state_dir(given: Option<&std::path::Path>) -> PathBuf {
    given.map(PathBuf::from).or_else(|| std::env::var_os("ECOM_HOME").map(PathBuf::from)).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".local/state/ecom")
    })
}

/// `<state dir>/secrets/ip-hash-key`.
fn stack_key_file() -> PathBuf {
    state_dir(None).join("secrets").join("ip-hash-key")
}

/// The file holding the IP-hash key of this machine's stack: `$ECOM_IP_HASH_KEY_FILE`, else
/// `<$ECOM_HOME or ~/.local/state/ecom>/secrets/ip-hash-key`, made the first time from 32
/// random bytes (hex), readable by its owner only.
pub(crate) fn ip_hash_key_file() -> anyhow::Result<PathBuf> {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(f) = std::env::var_os("ECOM_IP_HASH_KEY_FILE") {
        return Ok(PathBuf::from(f));
    }
    let file = stack_key_file();
    let dir = file.parent().expect("a file in secrets/").to_path_buf();
    if file.exists() {
        return Ok(file);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom").and_then(|mut r| r.read_exact(&mut key)).context("reading /dev/urandom")?;
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file)
        .and_then(|mut f| writeln!(f, "{}", key.iter().map(|b| format!("{b:02x}")).collect::<String>()));
    match written {
        Ok(()) => eprintln!("made a new IP-hash key in {} (keep it: ip_hash values depend on it)", file.display()),
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("writing {}", file.display())),
    }
    Ok(file)
}
