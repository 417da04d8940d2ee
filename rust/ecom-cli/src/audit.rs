//! `ecom audit`: looks for personal data and secrets where none may be. Every client IP the raw
//! topic holds (the pipeline's only input of addresses) and every secret this process was
//! given (store passwords, the serve token, the IP-hash key) is searched for in the logs and
//! state under the state dir (Flink's checkpoints and FerretDB's files included), in every
//! document of Elasticsearch's `ecom-*` indices, and in Redis's key names and list members.
//! The raw topic itself (Kafka's data dir), the secrets dir and generated data sets are the
//! inputs and are left out.

use crate::stack::{EsArgs, MongoArgs, RedisArgs};
use anyhow::{bail, Context};
use ecom_proto::v1::Event;
use prost::Message as _;
use regex::bytes::Regex;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Arguments of `ecom audit`.
#[derive(Debug, clap::Args)]
pub(crate) struct AuditArgs {
    /// The stack's state dir (logs, checkpoints, FerretDB's files).
    #[arg(long, env = "ECOM_HOME")]
    state_dir: PathBuf,
    #[command(flatten)]
    kafka: crate::stack::KafkaArgs,
    /// The raw topic: the client IPs to look for.
    #[arg(long, default_value = ecom_core::topics::RAW)]
    raw_topic: String,
    #[command(flatten)]
    es: EsArgs,
    #[command(flatten)]
    redis: RedisArgs,
    /// MongoDB (only its password is looked for; FerretDB's files are read with the state dir).
    #[command(flatten)]
    mongo: MongoArgs,
    /// File holding serve's bearer token, to look for (else $ECOM_SERVE_TOKEN).
    #[arg(long, env = "ECOM_SERVE_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// File holding the IP-hash key to look for (else $ECOM_IP_HASH_KEY, else the stack's).
    #[arg(long, env = "ECOM_IP_HASH_KEY_FILE")]
    ip_hash_key_file: Option<PathBuf>,
}

/// What to look for, and what was found where.
struct Needles {
    ips: HashSet<Vec<u8>>,
    secrets: Vec<(String, Regex)>,
    ipv4: Regex,
    found: Vec<String>,
}

impl Needles {
    /// Records every raw IP and secret in `hay`, found at `place`.
    fn scan(&mut self, place: &str, hay: &[u8]) {
        let mut ips: Vec<String> = Vec::new();
        for m in self.ipv4.find_iter(hay) {
            if self.ips.contains(m.as_bytes()) && ips.len() < 3 {
                ips.push(String::from_utf8_lossy(m.as_bytes()).into_owned());
            }
        }
        if !ips.is_empty() {
            self.found.push(format!("{place}: client IP(s) {}", ips.join(", ")));
        }
        for (name, s) in &self.secrets {
            if s.is_match(hay) {
                self.found.push(format!("{place}: the {name}"));
            }
        }
    }
}

pub(crate) async fn run(a: AuditArgs) -> anyhow::Result<()> {
    let ips: HashSet<Vec<u8>> = crate::train::read_topic(&a.kafka.brokers, &a.raw_topic)?
        .iter()
        .filter_map(|b| Event::decode(b.as_slice()).ok())
        .filter(|e| !e.ip.is_empty())
        .map(|e| e.ip.into_bytes())
        .collect();
    let mut secrets = Vec::new();
    for (name, url) in [
        ("Elasticsearch password", a.es.url()?),
        ("Redis password", a.redis.url()?),
        ("MongoDB password", a.mongo.url()?),
    ] {
        if let Some(c) = url.credentials() {
            secrets.push((name.to_string(), c.password.into_bytes()));
        }
    }
    if let Some(token) =
        ecom_core::secret::read(a.token_file.as_deref(), "ECOM_SERVE_TOKEN").map_err(anyhow::Error::msg)?
    {
        secrets.push(("serve token".into(), token.into_bytes()));
    }
    secrets.push(("IP-hash key".into(), crate::stack::ip_hash_key(a.ip_hash_key_file.as_deref())?.into_bytes()));
    let secrets = secrets
        .into_iter()
        .map(|(name, s)| Regex::new(&regex::escape(&String::from_utf8_lossy(&s))).map(|r| (name, r)))
        .collect::<Result<Vec<_>, _>>()?;
    let ipv4 = Regex::new(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}").expect("a valid pattern");
    let mut n = Needles { ips, secrets, ipv4, found: Vec::new() };
    eprintln!(
        "ecom audit: looking for {} client IPs (every one in {}) and {} secrets",
        n.ips.len(),
        a.raw_topic,
        n.secrets.len()
    );

    let files = scan_dir(&mut n, &a.state_dir)?;
    let docs = scan_es(&mut n, &a.es).await?;
    let keys = scan_redis(&mut n, &a.redis).await?;
    println!("files under {} read: {files}", a.state_dir.display());
    println!("Elasticsearch documents read (ecom-*): {docs}");
    println!("Redis keys read: {keys}");
    if n.found.is_empty() {
        println!("found: nothing (no client IP, no secret)");
        Ok(())
    } else {
        for f in &n.found {
            println!("FOUND {f}");
        }
        bail!("{} places hold a client IP or a secret", n.found.len())
    }
}

/// Every file under `dir` but the inputs: Kafka's data (the raw topic), the secrets, and the
/// generator's data sets (`*.data`, `train-data`).
fn scan_dir(n: &mut Needles, dir: &Path) -> anyhow::Result<u64> {
    let mut files = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let skip = name == "secrets"
                || name == "train-data"
                || name.ends_with(".data")
                || (name == "data" && d.ends_with("kafka"))
                || (name == "data" && d.ends_with("elasticsearch"));
            if skip {
                continue;
            }
            let ty = entry.file_type()?;
            if ty.is_dir() {
                stack.push(path);
            } else if ty.is_file() {
                // A file can vanish or be unreadable while the stack runs (a rolled log).
                if let Ok(bytes) = std::fs::read(&path) {
                    n.scan(&path.display().to_string(), &bytes);
                    files += 1;
                }
            }
        }
    }
    Ok(files)
}

/// Every document of the `ecom-*` indices, scrolled 2,000 at a time.
async fn scan_es(n: &mut Needles, es: &EsArgs) -> anyhow::Result<u64> {
    let es = es.http()?;
    let mut r: Value = es
        .client
        .post(format!("{}/ecom-*/_search?scroll=1m&ignore_unavailable=true&allow_no_indices=true", es.base))
        .json(&json!({"size": 2000, "sort": ["_doc"]}))
        .send()
        .await
        .context("Elasticsearch does not answer")?
        .json()
        .await?;
    let mut docs = 0;
    loop {
        let hits = r["hits"]["hits"].as_array().cloned().unwrap_or_default();
        if hits.is_empty() {
            break;
        }
        for h in &hits {
            let place =
                format!("Elasticsearch {}/{}", h["_index"].as_str().unwrap_or("?"), h["_id"].as_str().unwrap_or("?"));
            n.scan(&place, h["_source"].to_string().as_bytes());
            // A dead letter's raw bytes are base64 in the document: look inside them too.
            if let Some(raw) = h["_source"]["raw"].as_str() {
                use base64::Engine as _;
                if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(raw) {
                    n.scan(&format!("{place} (raw)"), &bytes);
                }
            }
        }
        docs += hits.len() as u64;
        let id = r["_scroll_id"].as_str().context("a scroll without an id")?.to_string();
        r = es
            .client
            .post(format!("{}/_search/scroll", es.base))
            .json(&json!({"scroll": "1m", "scroll_id": id}))
            .send()
            .await?
            .json()
            .await?;
    }
    Ok(docs)
}

/// Every key name, and the members of the Guard's IP lists.
async fn scan_redis(n: &mut Needles, redis: &RedisArgs) -> anyhow::Result<u64> {
    let client = redis.client()?;
    let mut c = client.get_multiplexed_async_connection().await.context("Redis does not answer")?;
    let mut cursor: u64 = 0;
    let mut keys = 0;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) =
            redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(1000).query_async(&mut c).await?;
        for k in &batch {
            n.scan("Redis key name", k);
            if k.ends_with(b":block:ip") || k.ends_with(b":allow:ip") {
                let members: Vec<Vec<u8>> = redis::cmd("SMEMBERS").arg(k).query_async(&mut c).await?;
                for m in members {
                    n.scan(&format!("Redis {}", String::from_utf8_lossy(k)), &m);
                }
            }
        }
        keys += batch.len() as u64;
        if next == 0 {
            break;
        }
        cursor = next;
    }
    Ok(keys)
}
