//! `ecom`: the one binary. Subcommands generate data, serve gRPC, sink to the stores and run
//! the whole demo. Every subcommand has --help.
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]
#![deny(unused_must_use)]

mod audit;
mod bench;
mod bench_dash;
mod bench_e2e;
mod bench_job;
mod bench_serve;
mod check;
mod config;
mod demo;
mod exit;
mod faults;
mod flink;
mod generate;
mod job;
mod models;
mod replay;
mod retention;
mod services;
mod stack;
mod train;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

// The generator, the sink and serve allocate many small strings per event; glibc's malloc
// spent a third of `ecom generate`'s time (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// This build: the crate version and the git commit it was built from.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("ECOM_GIT_COMMIT"), ")");

/// Real-time and offline analytics for an online furniture shop.
#[derive(Debug, Parser)]
#[command(
    name = "ecom",
    version = VERSION,
    about,
    propagate_version = true,
    after_help = "Every flag can also be set by its environment variable ([env: ...] in each command's --help; \
ECOM_<FLAG> unless it names another) or in a TOML file (--config FILE or $ECOM_CONFIG, a table per \
command: [serve] max-batch = 500, [bench.e2e] rates = [500, 1000]). A flag wins over the environment, \
the environment over the file, the file over the default. Exit codes: 2 configuration, 3 a dependency \
unreachable, 4 data not reconciled (docs/OPERATIONS.md)."
)]
pub(crate) struct Cli {
    /// A TOML file of flag values, a table per command ([serve], [sink], [demo], [bench.e2e], ...).
    #[arg(long, global = true, env = config::CONFIG_ENV)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Generate shop events (with a share of malformed records) into Kafka ecom.events.raw.
    Generate(generate::GenerateArgs),
    /// Run the gRPC services (Guard, Score, Recommend) on :50051 with HTTP /health and /metrics on :8080.
    Serve(ServeArgs),
    /// Copy ecom.events.enriched, ecom.sessions and ecom.metrics into Elasticsearch
    /// (ecom-events-*, ecom-sessions-*, ecom-metrics-*) and MongoDB (ecom.events, ecom.sessions,
    /// ecom.metrics), upserting by id.
    Sink(SinkArgs),
    /// Train purchase models (XGBoost, random forest, MLP) and write models/<version>/.
    Train(train::TrainArgs),
    /// The model versions: list them with their offline scores and which one serves; promote
    /// one or roll back (CURRENT moves atomically; a running serve loads it).
    Models(models::ModelsArgs),
    /// Run the whole slice on the local stack and print a reconciled summary.
    Demo(demo::DemoArgs),
    /// The Flink job on any Flink cluster, by its REST URL: submit, stop with a savepoint,
    /// resume, cancel, list.
    Job(job::JobArgs),
    /// Check the configuration the flags, environment and files give, and probe every
    /// dependency it names (Kafka, Redis, Elasticsearch, MongoDB, Flink, ecom serve, the job jar,
    /// the model), each with what to do when it fails. Exit 2: configuration, 3: unreachable.
    Check(check::CheckArgs),
    /// The fault suite: run the pipeline at a fixed rate and break one real part per scenario
    /// (kill, stop, restart, close an index), then count lost, duplicated and dead-lettered
    /// records from the stores and time the recovery (dev/faults runs it on the local stack).
    Faults(faults::FaultsArgs),
    /// Measure: prints numbers (see docs/BENCHMARKS.md).
    Bench(bench::BenchArgs),
    /// Send dead letters again once their cause is fixed: the sink's (documents a store
    /// refused) to their index or collection, the job's (records it rejected) to its raw topic;
    /// both by the record's own id, so a replay never stores anything twice.
    Replay(replay::ReplayArgs),
    /// Drop what is older than the retention period from both stores: daily indices whose day
    /// ended before it, MongoDB documents older than it (run it daily, e.g. from cron).
    Retention(retention::RetentionArgs),
    /// Look for personal data and secrets where none may be: every client IP of the raw topic
    /// and every secret given, in the logs and state under the state dir, in Elasticsearch's
    /// documents and in Redis's keys. Exits non-zero when one is found.
    Audit(audit::AuditArgs),
    /// Print the keyed hash (ip_hash) of IP addresses, as the job and Guard compute it: what
    /// Guard's block and allow lists hold, and what the stores hold in place of an IP.
    HashIp(HashIpArgs),
    /// Serve the live dashboard on :8088: the shop's panels from Elasticsearch (ecom-events-*,
    /// ecom-sessions-*, ecom-metrics-*), defined in kibana/panels.
    Dashboard(DashboardArgs),
}

#[derive(Debug, clap::Args)]
struct DashboardArgs {
    /// HTTP listen address of the page.
    #[arg(long, default_value = "127.0.0.1:8088", env = "ECOM_DASHBOARD_ADDR")]
    addr: SocketAddr,
    #[command(flatten)]
    es: stack::EsArgs,
    /// Longest a panel's search may take.
    #[arg(long, default_value_t = 5_000)]
    query_timeout_ms: u64,
    /// Stem of the indices to read: `<stem>-events-*`, `<stem>-sessions-*`, `<stem>-metrics-*`
    /// (the sink's default index prefixes are ecom-events, ecom-sessions, ecom-metrics).
    #[arg(long, default_value = "ecom")]
    index_stem: String,
    /// Redis of ecom serve's Guard, which keeps the live counts (visitors, open sessions).
    #[command(flatten)]
    redis: stack::RedisArgs,
    /// The Guard's Redis key prefix (its `key_prefix`).
    #[arg(long, default_value = "ecom:guard")]
    redis_key_prefix: String,
    /// Models directory of ecom serve (its CURRENT model's metrics.json is drawn beside the live
    /// calibration).
    #[arg(long, default_value = "models", env = "ECOM_MODELS_DIR")]
    models_dir: std::path::PathBuf,
    /// Print the panels as Kibana saved objects (the NDJSON of kibana/ecom.ndjson) and exit.
    #[arg(long)]
    kibana_ndjson: bool,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:50051", env = "ECOM_GRPC_ADDR")]
    grpc_addr: SocketAddr,
    /// HTTP listen address for /health and /metrics.
    #[arg(long, default_value = "127.0.0.1:8080", env = "ECOM_HTTP_ADDR")]
    http_addr: SocketAddr,
    /// Redis for the guard's live state.
    #[command(flatten)]
    redis: stack::RedisArgs,
    /// Guard rules and thresholds: a JSON file overriding any subset of the defaults
    /// (docs/OPERATIONS.md lists every field).
    #[arg(long, env = "ECOM_GUARD_CONFIG")]
    guard_config: Option<std::path::PathBuf>,
    /// Milliseconds to wait for Redis before answering with the fallback verdict (overrides
    /// the file's redis_timeout_ms).
    #[arg(long)]
    redis_timeout_ms: Option<u64>,
    /// Largest batch accepted by CheckBatch and PredictBatch.
    #[arg(long, default_value_t = 1000)]
    max_batch: usize,
    /// Models directory written by `ecom train` (versions and CURRENT).
    #[arg(long, default_value = "models", env = "ECOM_MODELS_DIR")]
    models_dir: std::path::PathBuf,
    /// Milliseconds between checks of models/CURRENT for a new version (hot reload).
    #[arg(long, default_value_t = 1000)]
    reload_ms: u64,
    /// Largest gRPC request accepted, in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    max_message_bytes: usize,
    /// Score each Score.Predict request in its own XGBoost call instead of coalescing
    /// concurrent ones (the baseline `ecom bench serve` measures against).
    #[arg(long)]
    no_coalesce: bool,
    /// PEM certificate chain of gRPC's TLS (with --tls-key); without it gRPC is plaintext.
    #[arg(long, env = "ECOM_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "ECOM_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// PEM CA certificates: clients must present a certificate they signed (mutual TLS).
    #[arg(long, env = "ECOM_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<std::path::PathBuf>,
    /// File holding the bearer token Guard, Score and Recommend require (`authorization:
    /// Bearer <token>`); else $ECOM_SERVE_TOKEN; neither: no token is checked.
    #[arg(long, env = "ECOM_SERVE_TOKEN_FILE")]
    token_file: Option<std::path::PathBuf>,
    /// File holding the job's IP-hash key (else $ECOM_IP_HASH_KEY): Guard hashes requests' raw
    /// IPs with it, as the job does, so no raw IP reaches Redis and hashes match the job's.
    #[arg(long, env = "ECOM_IP_HASH_KEY_FILE")]
    ip_hash_key_file: Option<std::path::PathBuf>,
}

#[derive(Debug, clap::Args)]
struct HashIpArgs {
    /// The IP addresses.
    #[arg(required = true)]
    ips: Vec<String>,
    /// File holding the IP-hash key (else $ECOM_IP_HASH_KEY, else the local stack's key file).
    #[arg(long, env = "ECOM_IP_HASH_KEY_FILE")]
    ip_hash_key_file: Option<std::path::PathBuf>,
}

#[derive(Debug, clap::Args)]
struct SinkArgs {
    #[command(flatten)]
    kafka: crate::stack::KafkaArgs,
    /// Topic of enriched events (ecom.v1.EnrichedEvent; the job's --enriched-topic).
    #[arg(long = "enriched-topic", visible_alias = "topic", default_value = ecom_core::topics::ENRICHED)]
    topic: String,
    /// Topic of closed sessions (ecom.v1.Session).
    #[arg(long, default_value = ecom_core::topics::SESSIONS)]
    sessions_topic: String,
    /// Topic of per-minute DP window metrics (ecom.v1.WindowMetrics).
    #[arg(long, default_value = ecom_core::topics::METRICS)]
    metrics_topic: String,
    /// Kafka consumer group.
    #[arg(long, default_value = "ecom-sink")]
    group_id: String,
    #[command(flatten)]
    es: stack::EsArgs,
    /// Index prefix of events (documents go to PREFIX-YYYY.MM.DD by event time).
    #[arg(long, default_value = "ecom-events")]
    index_prefix: String,
    /// Index prefix of sessions (PREFIX-YYYY.MM.DD by start_ms).
    #[arg(long, default_value = "ecom-sessions")]
    sessions_index_prefix: String,
    /// Index prefix of window metrics (PREFIX-YYYY.MM.DD by window_start_ms).
    #[arg(long, default_value = "ecom-metrics")]
    metrics_index_prefix: String,
    /// Topic of the records the job rejected.
    #[arg(long, default_value = ecom_core::topics::INVALID)]
    invalid_topic: String,
    /// Index prefix of rejected records (PREFIX-YYYY.MM.DD by rejected_at_ms).
    #[arg(long, default_value = "ecom-invalid")]
    invalid_index_prefix: String,
    /// Topic of each model version's live quality per window (ecom.v1.ModelQuality).
    #[arg(long, default_value = ecom_core::topics::QUALITY)]
    quality_topic: String,
    /// Index prefix of live model quality (PREFIX-YYYY.MM.DD by window_start_ms).
    #[arg(long, default_value = "ecom-quality")]
    quality_index_prefix: String,
    /// Topic for the sink's own dead letters (undecodable records, documents a store refused).
    #[arg(long, default_value = ecom_core::topics::SINK_DEADLETTER)]
    deadletter_topic: String,
    #[command(flatten)]
    mongo: stack::MongoArgs,
    /// MongoDB database (collections `events`, `sessions`, `metrics`, `invalid`, `sink_deadletter`).
    #[arg(long, default_value = "ecom")]
    mongo_db: String,
    /// Largest batch written at once (records of all kinds).
    #[arg(long, visible_alias = "batch-max", default_value_t = 1000)]
    batch_size: usize,
    /// Elasticsearch's refresh interval for the sink's indices, in ms: how soon a written
    /// document is searchable. Set in the index templates and on existing indices at start.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    es_refresh_interval_ms: u64,
    /// Longest a partial batch waits, in ms.
    #[arg(long, visible_alias = "batch-wait-ms", default_value_t = 200)]
    batch_max_delay_ms: u64,
    /// Kafka's max.poll.interval.ms for the sink's consumer (the session timeout is at most 45 s
    /// and never above it).
    #[arg(long, default_value_t = 300_000)]
    max_poll_interval_ms: u64,
    /// Listen address for /health and /metrics.
    #[arg(long, default_value = "127.0.0.1:9464")]
    metrics_addr: SocketAddr,
    /// Kafka group.instance.id, for static membership (unique per running sink). Without it the
    /// sink joins as a dynamic member with a 10 s session timeout, so a killed sink's partitions
    /// move on within 10 s; a static member keeps a 45 s one. Static members can stay out of
    /// the group after a session timeout (a broker frozen past it: librdkafka issue 3437).
    #[arg(long)]
    instance_id: Option<String>,
    /// What the stores keep of the free-text fields (search_query, referrer, user_agent), which
    /// can carry personal data: keep them, hash them (HMAC under the IP-hash key, so equal texts
    /// still group) or drop them. Applied to events and to the events in dead letters.
    #[arg(long, value_enum, default_value = "keep")]
    free_text: FreeTextArg,
    /// File holding the IP-hash key for --free-text hash (else $ECOM_IP_HASH_KEY, else the local
    /// stack's key file).
    #[arg(long, env = "ECOM_IP_HASH_KEY_FILE")]
    ip_hash_key_file: Option<std::path::PathBuf>,
}

/// `ecom sink --free-text`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FreeTextArg {
    Keep,
    Hash,
    Drop,
}

fn init_tracing() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder.json().init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Runs the command; a failure prints its error chain and exits with the code [`exit::code`]
/// chooses for it.
fn main() -> std::process::ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cmd = config::with_env(Cli::command());
    // A renamed flag's old variable keeps working, with a word about the new name; a file's
    // values reach their flags through the environment, so they only fill what neither a flag
    // nor the environment gives. Set before any thread starts.
    let renamed = config::renamed_env(&cmd);
    for (env, value, old) in &renamed {
        eprintln!("warning: ${old} is the old name of ${env}; it still works, but use ${env}");
        std::env::set_var(env, value);
    }
    let from_file = match config::from_file(&cmd, &args) {
        Ok(values) => values,
        Err(e) => {
            eprintln!("Error: {e:#}");
            return std::process::ExitCode::from(exit::code(&e));
        }
    };
    // clap reads a flag's variable when the flag is declared: declare them again after setting.
    let cmd = if renamed.is_empty() && from_file.is_empty() {
        cmd
    } else {
        from_file.into_iter().for_each(|(k, v)| std::env::set_var(k, v));
        config::with_env(Cli::command())
    };
    let matches = cmd.get_matches_from(args);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: starting the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let code = exit::code(&e);
            // An expected failure (configuration, a dependency down, data not reconciled) is
            // its message chain; anything else also shows where it came from (a backtrace when
            // RUST_BACKTRACE asks for one).
            if code == 1 {
                eprintln!("Error: {e:?}");
            } else {
                eprintln!("Error: {e:#}");
            }
            std::process::ExitCode::from(code)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    init_tracing();
    match cli.cmd {
        Cmd::Generate(a) => generate::run(a).await.map(|_| ()),
        Cmd::Serve(a) => {
            let cfg = ecom_serve::ServeConfig {
                grpc_addr: a.grpc_addr,
                http_addr: a.http_addr,
                redis_url: a.redis.url()?,
                redis_ca_pem: a.redis.ca_pem()?,
                guard: {
                    let mut g = match &a.guard_config {
                        Some(f) => ecom_serve::guard::GuardConfig::from_json_file(f)?,
                        None => ecom_serve::guard::GuardConfig::default(),
                    };
                    if let Some(ms) = a.redis_timeout_ms {
                        g.redis_timeout = Duration::from_millis(ms);
                    }
                    g
                },
                max_batch: a.max_batch,
                models_dir: a.models_dir,
                reload_every: Duration::from_millis(a.reload_ms.max(50)),
                max_message_bytes: a.max_message_bytes,
                coalesce: !a.no_coalesce,
                tls: match (&a.tls_cert, &a.tls_key) {
                    (Some(cert), Some(key)) => {
                        Some(ecom_serve::TlsConfig::from_files(cert, key, a.tls_client_ca.as_deref())?)
                    }
                    _ => None,
                },
                token: ecom_core::secret::read(a.token_file.as_deref(), "ECOM_SERVE_TOKEN")
                    .map_err(anyhow::Error::msg)?
                    .map(ecom_core::secret::Secret::new),
                ip_hash_key: ecom_core::secret::read(a.ip_hash_key_file.as_deref(), stack::IP_HASH_KEY_ENV)
                    .map_err(anyhow::Error::msg)?
                    .map(ecom_core::secret::Secret::new),
                version: VERSION.to_string(),
            };
            ecom_serve::run(cfg, shutdown_signal()).await.context("ecom serve")
        }
        Cmd::Sink(a) => {
            let cfg = ecom_sink::SinkConfig {
                brokers: a.kafka.brokers,
                topic: a.topic,
                group_id: a.group_id,
                es_url: a.es.url()?,
                index_prefix: a.index_prefix,
                mongo_url: a.mongo.url()?,
                mongo_db: a.mongo_db,
                batch_size: a.batch_size,
                batch_max_delay: Duration::from_millis(a.batch_max_delay_ms),
                es_refresh_interval: Duration::from_millis(a.es_refresh_interval_ms),
                metrics_addr: a.metrics_addr,
                max_poll_interval: Duration::from_millis(a.max_poll_interval_ms),
                instance_id: a.instance_id.filter(|id| !id.is_empty()),
                free_text: match a.free_text {
                    FreeTextArg::Keep => ecom_sink::FreeText::Keep,
                    FreeTextArg::Drop => ecom_sink::FreeText::Drop,
                    FreeTextArg::Hash => ecom_sink::FreeText::Hash(ecom_core::secret::IpHasher::new(
                        stack::ip_hash_key(a.ip_hash_key_file.as_deref())?.as_bytes(),
                    )),
                },
                sessions_topic: a.sessions_topic,
                sessions_index_prefix: a.sessions_index_prefix,
                metrics_topic: a.metrics_topic,
                metrics_index_prefix: a.metrics_index_prefix,
                invalid_topic: a.invalid_topic,
                invalid_index_prefix: a.invalid_index_prefix,
                quality_topic: a.quality_topic,
                quality_index_prefix: a.quality_index_prefix,
                deadletter_topic: a.deadletter_topic,
            };
            ecom_sink::run(cfg, shutdown_signal()).await.context("ecom sink")
        }
        Cmd::Train(a) => tokio::task::spawn_blocking(move || train::run(a)).await.context("ecom train")?,
        Cmd::Demo(a) => demo::run(a).await,
        Cmd::Job(a) => job::run(a).await,
        Cmd::Check(a) => check::run(a).await,
        Cmd::Faults(a) => faults::run(a).await,
        Cmd::Bench(a) => bench::run(a).await,
        Cmd::Replay(a) => replay::run(a).await,
        Cmd::Audit(a) => audit::run(a).await,
        Cmd::Retention(a) => retention::run(a).await,
        Cmd::Models(a) => models::run(a),
        Cmd::HashIp(a) => {
            let key = stack::ip_hash_key(a.ip_hash_key_file.as_deref())?;
            for ip in a.ips {
                println!("{ip}\t{}", ecom_core::secret::ip_hash(key.as_bytes(), &ip));
            }
            Ok(())
        }
        Cmd::Dashboard(a) if a.kibana_ndjson => {
            print!("{}", ecom_dash::kibana::ndjson()?);
            Ok(())
        }
        Cmd::Dashboard(a) => {
            let cfg = ecom_dash::DashConfig {
                addr: a.addr,
                es_url: a.es.url()?,
                query_timeout: Duration::from_millis(a.query_timeout_ms.max(1)),
                index_stem: a.index_stem,
                redis_url: a.redis.url()?,
                redis_ca_pem: a.redis.ca_pem()?,
                redis_key_prefix: a.redis_key_prefix,
                models_dir: a.models_dir,
            };
            ecom_dash::run(cfg, shutdown_signal()).await.context("ecom dashboard")
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_version_names_the_commit_it_was_built_from() {
        assert!(super::VERSION.starts_with(concat!(env!("CARGO_PKG_VERSION"), " (commit ")));
        let head = std::process::Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success() && std::env::var_os("ECOM_GIT_COMMIT").is_none());
        if let Some(o) = head {
            let head = String::from_utf8_lossy(&o.stdout).trim().to_string();
            assert!(super::VERSION.contains(&head), "{} does not name HEAD {head}", super::VERSION);
        }
    }
}
