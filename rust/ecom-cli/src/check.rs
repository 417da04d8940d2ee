//! `ecom check`: the configuration this machine's flags, environment and files give, checked,
//! and every dependency it names probed with a real request, each with what to do when it
//! fails. Exits 2 when the configuration itself is wrong, 3 when a dependency does not answer.
use crate::demo::ClusterArgs;
use crate::stack::{EsArgs, MongoArgs, RedisArgs};
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `ecom check`: the same flags and environment variables as the commands that
/// use each dependency.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    es: EsArgs,
    #[command(flatten)]
    mongo: MongoArgs,
    #[command(flatten)]
    redis: RedisArgs,
    /// ecom serve's HTTP base URL (its /health).
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "ECOM_SERVE_HTTP_URL")]
    serve_http_url: String,
    /// The models directory serve and training use.
    #[arg(long, default_value = "models", env = "ECOM_MODELS_DIR")]
    models_dir: PathBuf,
    /// Longest wait for each dependency, s.
    #[arg(long, default_value_t = 5)]
    timeout_secs: u64,
}

/// What one check found.
#[derive(Debug, PartialEq)]
pub(crate) enum Verdict {
    Ok(String),
    /// The configuration is wrong (exit 2).
    Config(String),
    /// The dependency did not answer (exit 3).
    Unreachable(String),
    /// It answers, but something a run needs is missing: shown as a warning by `ecom check` (no
    /// exit code of its own), a failure for a run ([`require_servers`]).
    Missing(String),
    /// It answers and a run can go on, but users should look (no exit code of its own).
    Warn(String),
}

const HINT: &str = "dev/up starts the local stack; dev/status says what is down";

/// One probed dependency: what, where, and what was found.
pub(crate) type Row = (&'static str, String, Verdict);

/// The servers the pipeline runs on (Kafka and its topics, Redis, Elasticsearch, MongoDB,
/// Flink), each asked a real request: `ecom check`'s first rows, and what `ecom demo` and
/// `ecom faults` require before they start anything.
pub(crate) async fn probe_servers(
    cluster: &ClusterArgs,
    es: &EsArgs,
    mongo_args: &MongoArgs,
    redis_args: &RedisArgs,
    timeout: Duration,
    http: &reqwest::Client,
) -> anyhow::Result<Vec<Row>> {
    let mut rows: Vec<Row> = Vec::new();
    let brokers = cluster.brokers.clone();
    let kafka = tokio::task::spawn_blocking(move || kafka(&brokers, timeout)).await?;
    rows.push(("Kafka", cluster.brokers.clone(), kafka));
    rows.push(match redis_args.url() {
        Err(e) => ("Redis", redis_args.redis_url.clone(), Verdict::Config(format!("{e:#}"))),
        Ok(url) => ("Redis", url.to_string(), redis(redis_args, timeout).await),
    });
    rows.push(match es.http() {
        Err(e) => ("Elasticsearch", es.es_url.clone(), Verdict::Config(format!("{e:#}"))),
        Ok(es) => {
            let v = match es.client.get(format!("{}/_cluster/health", es.base)).timeout(timeout).send().await {
                Ok(r) if r.status().is_success() => {
                    let body: serde_json::Value = r.json().await.unwrap_or_default();
                    match body["status"].as_str().unwrap_or("?") {
                        "red" => Verdict::Warn("cluster status red: some indices cannot be written".into()),
                        status => Verdict::Ok(format!("cluster status {status}")),
                    }
                }
                Ok(r) if r.status() == reqwest::StatusCode::UNAUTHORIZED => {
                    Verdict::Config("401: the credentials are wrong (--es-url user, --es-password-file)".into())
                }
                Ok(r) => Verdict::Unreachable(format!("answers {}", r.status())),
                Err(e) => Verdict::Unreachable(format!("{e}; {}", ecom_sink::stores::tls_refusal(&e).unwrap_or(HINT))),
            };
            ("Elasticsearch", es.base.clone(), v)
        }
    });
    rows.push(match mongo_args.url() {
        Err(e) => ("MongoDB", mongo_args.mongo_url.clone(), Verdict::Config(format!("{e:#}"))),
        Ok(url) => ("MongoDB", url.to_string(), mongo(url.expose(), timeout).await),
    });
    rows.push(("Flink", cluster.flink_rest.clone(), flink(http, &cluster.flink_rest).await));
    Ok(rows)
}

/// Fails unless every server answers and is ready for a run (every topic there, a TaskManager
/// registered); warnings, such as a red Elasticsearch that still takes this run's writes when its
/// own indices are fine, are printed. Exit 2 when the configuration is wrong, 3 when something
/// is down or missing.
pub(crate) async fn require_servers(
    cluster: &ClusterArgs,
    es: &EsArgs,
    mongo: &MongoArgs,
    redis: &RedisArgs,
    http: &reqwest::Client,
) -> anyhow::Result<()> {
    let rows = probe_servers(cluster, es, mongo, redis, Duration::from_secs(10), http).await?;
    let mut config = Vec::new();
    let mut down = Vec::new();
    for (what, addr, v) in rows {
        match v {
            Verdict::Ok(_) => {}
            Verdict::Warn(t) => eprintln!("warning: {what} at {addr}: {t}"),
            Verdict::Config(t) => config.push(format!("{what} at {addr}: {t}")),
            Verdict::Unreachable(t) | Verdict::Missing(t) => down.push(format!("{what} at {addr}: {t}")),
        }
    }
    if !config.is_empty() {
        return Err(crate::exit::config(config.join("; ")));
    }
    if !down.is_empty() {
        return Err(crate::exit::unreachable(format!("{}; `ecom check` shows every dependency", down.join("; "))));
    }
    Ok(())
}

pub(crate) async fn run(a: CheckArgs) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(a.timeout_secs.max(1));
    let http = reqwest::Client::builder().timeout(timeout).build()?;

    let mut rows = probe_servers(&a.cluster, &a.es, &a.mongo, &a.redis, timeout, &http).await?;
    rows.push(("job jar", jar_where(&a.cluster), jar(&a.cluster)));
    rows.push(("ecom serve", a.serve_http_url.clone(), serve(&http, &a.serve_http_url).await));
    rows.push(("models", a.models_dir.display().to_string(), models(&a.models_dir)));

    let width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).min(48);
    let mut code = 0;
    for (what, addr, v) in &rows {
        let (tag, text) = match v {
            Verdict::Ok(t) => ("ok", t),
            Verdict::Warn(t) | Verdict::Missing(t) => ("warn", t),
            Verdict::Config(t) => {
                code = code.max(crate::exit::CONFIG);
                ("CONFIG", t)
            }
            Verdict::Unreachable(t) => {
                if code == 0 {
                    code = crate::exit::UNREACHABLE;
                }
                ("DOWN", t)
            }
        };
        println!("{what:<14} {addr:<width$}  {tag:<6} {text}");
    }
    match code {
        0 => Ok(()),
        c if c == crate::exit::CONFIG => Err(crate::exit::config("the configuration is wrong (CONFIG above)")),
        _ => Err(crate::exit::unreachable("a dependency does not answer (DOWN above)")),
    }
}

/// Kafka: the cluster's metadata, and whether the pipeline's topics exist.
fn kafka(brokers: &str, timeout: Duration) -> Verdict {
    let consumer: BaseConsumer = match ecom_sink::kafka::client(brokers).and_then(|c| Ok(c.create()?)) {
        Ok(c) => c,
        Err(e) => return Verdict::Config(format!("{e:#} (--bootstrap-servers, $ECOM_KAFKA_PROPERTIES_FILE)")),
    };
    match consumer.fetch_metadata(None, timeout) {
        Err(e) => Verdict::Unreachable(format!("{e}; {HINT}")),
        Ok(md) => {
            let have: Vec<&str> = md.topics().iter().map(|t| t.name()).collect();
            let missing: Vec<&str> = ecom_core::topics::ALL.iter().copied().filter(|t| !have.contains(t)).collect();
            if missing.is_empty() {
                Verdict::Ok(format!("{} broker(s), every ecom topic present", md.brokers().len()))
            } else {
                Verdict::Missing(format!("no topic {} (dev/up creates them)", missing.join(", ")))
            }
        }
    }
}

async fn redis(r: &RedisArgs, timeout: Duration) -> Verdict {
    let client = match r.client() {
        Ok(c) => c,
        Err(e) => return Verdict::Config(format!("{e:#}")),
    };
    let ping = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(timeout, ping).await {
        Ok(Ok(_)) => Verdict::Ok("PING answered".into()),
        Ok(Err(e)) if e.kind() == redis::ErrorKind::AuthenticationFailed => {
            Verdict::Config(format!("{e}: the password is wrong (--redis-password-file)"))
        }
        Ok(Err(e)) => Verdict::Unreachable(format!("{e}; {HINT}")),
        Err(_) => Verdict::Unreachable(format!("no answer within {} s; {HINT}", timeout.as_secs())),
    }
}

async fn mongo(url: &str, timeout: Duration) -> Verdict {
    let mut opts = match mongodb::options::ClientOptions::parse(url).await {
        Ok(o) => o,
        Err(e) => return Verdict::Config(format!("{e} (--mongo-url)")),
    };
    opts.server_selection_timeout = Some(timeout);
    let ping = async {
        let c = mongodb::Client::with_options(opts)?;
        c.database("admin").run_command(mongodb::bson::doc! {"ping": 1}).await
    };
    match ping.await {
        Ok(_) => Verdict::Ok("ping answered".into()),
        Err(e) if matches!(*e.kind, mongodb::error::ErrorKind::Authentication { .. }) => {
            Verdict::Config(format!("{e}: the credentials are wrong (--mongo-password-file)"))
        }
        Err(e) => {
            // The driver's message goes on to describe its whole topology: its first sentence says it.
            let text = e.to_string();
            let first = text.split(". Topology").next().unwrap_or(&text).trim_start_matches("Kind: ");
            Verdict::Unreachable(format!("{first}; {HINT}"))
        }
    }
}

async fn flink(http: &reqwest::Client, rest: &str) -> Verdict {
    match http.get(format!("{rest}/overview")).send().await {
        Ok(r) if r.status().is_success() => {
            let o: serde_json::Value = r.json().await.unwrap_or_default();
            let (tms, free) = (o["taskmanagers"].as_u64().unwrap_or(0), o["slots-available"].as_u64().unwrap_or(0));
            if tms == 0 {
                Verdict::Missing("no TaskManager registered: a job would wait for slots".into())
            } else {
                Verdict::Ok(format!(
                    "Flink {}, {tms} TaskManager(s), {free} free slot(s)",
                    o["flink-version"].as_str().unwrap_or("?")
                ))
            }
        }
        Ok(r) => Verdict::Unreachable(format!("answers {}", r.status())),
        Err(e) => Verdict::Unreachable(format!("{e}; {HINT}")),
    }
}

fn jar_where(c: &ClusterArgs) -> String {
    c.jar.as_ref().map_or_else(|| "(not set)".into(), |j| j.display().to_string())
}

fn jar(c: &ClusterArgs) -> Verdict {
    match &c.jar {
        None => Verdict::Warn("--jar / $ECOM_JOB_JAR not set: ecom job submit and ecom demo need it".into()),
        Some(j) if j.is_file() => Verdict::Ok("present".into()),
        Some(j) => Verdict::Config(format!("{} does not exist: dev/build makes it", j.display())),
    }
}

async fn serve(http: &reqwest::Client, base: &str) -> Verdict {
    match http.get(format!("{}/health", base.trim_end_matches('/'))).send().await {
        Ok(r) => {
            let ok = r.status().is_success();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            let version = body["version"].as_str().unwrap_or("?").to_string();
            if ok {
                Verdict::Ok(format!("healthy, {version}"))
            } else {
                Verdict::Warn(format!("degraded: redis {}, model {}", body["redis"], body["model"]))
            }
        }
        Err(e) => Verdict::Unreachable(format!("{e}: start it with `ecom serve` (the job falls back without it)")),
    }
}

fn models(dir: &std::path::Path) -> Verdict {
    match ecom_model::current(dir) {
        Some(v) => Verdict::Ok(format!("CURRENT = {v}")),
        None => Verdict::Warn("no models/CURRENT: `ecom train` (dev/demo trains one)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_server_that_does_not_listen_is_down_and_a_missing_jar_is_a_configuration_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let http = reqwest::Client::new();
        assert!(matches!(flink(&http, &format!("http://127.0.0.1:{port}")).await, Verdict::Unreachable(_)));
        assert!(matches!(serve(&http, &format!("http://127.0.0.1:{port}")).await, Verdict::Unreachable(_)));
        let c = ClusterArgs {
            jar: Some("/nonexistent/ecom.jar".into()),
            flink_rest: String::new(),
            brokers: String::new(),
        };
        assert!(matches!(jar(&c), Verdict::Config(_)));
        assert!(matches!(models(std::path::Path::new("/nonexistent")), Verdict::Warn(_)));
    }
}
