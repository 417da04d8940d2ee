//! ecom-serve: the gRPC services the Flink job and users call (Guard over Redis, Score with
//! XGBoost and TreeSHAP, Recommend over an LSH index), with gRPC health and reflection, and
//! HTTP /health and /metrics.
//! Shape: config -> guard (rules over Redis) / model store (hot-reloaded models/) -> tonic
//! services -> server driver.
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]
#![deny(unused_must_use)]

mod batcher;
pub mod guard;
mod http;
pub mod model;
pub mod score;
mod shadow;

use anyhow::Context;
use ecom_core::secret::{Secret, SecretUrl};
use ecom_proto::v1::guard_server::GuardServer;
use ecom_proto::v1::recommend_server::RecommendServer;
use ecom_proto::v1::score_server::ScoreServer;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Everything `ecom serve` needs to start.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// gRPC listen address (default 127.0.0.1:50051).
    pub grpc_addr: SocketAddr,
    /// HTTP listen address for /health and /metrics (default 127.0.0.1:8080).
    pub http_addr: SocketAddr,
    /// Redis URL for the guard's live state (`rediss://` for TLS).
    pub redis_url: SecretUrl,
    /// PEM CA certificates a `rediss://` server's certificate must chain to (None: the
    /// system's roots).
    pub redis_ca_pem: Option<Vec<u8>>,
    /// Guard rules and fallback.
    pub guard: guard::GuardConfig,
    /// Largest batch accepted by the *Batch methods.
    pub max_batch: usize,
    /// The models directory `ecom train` writes (versions + CURRENT).
    pub models_dir: PathBuf,
    /// How often models/CURRENT is checked for a new version.
    pub reload_every: Duration,
    /// Largest gRPC message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Coalesce concurrent Score.Predict rows into shared XGBoost calls (off: one call per
    /// request, the baseline `ecom bench serve` compares against).
    pub coalesce: bool,
    /// TLS on the gRPC port (None: plaintext).
    pub tls: Option<TlsConfig>,
    /// The bearer token Guard, Score and Recommend require (`authorization: Bearer <token>`);
    /// None checks none. Health and reflection stay open, as probes and tools expect.
    pub token: Option<Secret>,
    /// The job's IP-hash key: Guard hashes the raw IPs of requests that carry no ip_hash with
    /// it. None: a key made at start (per-IP state then starts afresh at every restart).
    pub ip_hash_key: Option<Secret>,
    /// What /health reports as the build (the ecom binary passes its version and commit).
    pub version: String,
}

/// TLS of the gRPC port, in PEM.
#[derive(Clone)]
pub struct TlsConfig {
    /// The server's certificate chain.
    pub cert_pem: Vec<u8>,
    /// The server's private key.
    pub key_pem: Vec<u8>,
    /// CA certificates a client's certificate must chain to (mutual TLS); None asks clients
    /// for no certificate.
    pub client_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig").field("mutual", &self.client_ca_pem.is_some()).finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Reads the files; `client_ca` turns on mutual TLS.
    pub fn from_files(
        cert: &std::path::Path,
        key: &std::path::Path,
        client_ca: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let read = |p: &std::path::Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
        Ok(Self { cert_pem: read(cert)?, key_pem: read(key)?, client_ca_pem: client_ca.map(read).transpose()? })
    }
}

/// A Redis client for `url`; a `rediss://` one trusts `ca_pem` when given, else the system's
/// roots.
pub fn redis_client(url: &SecretUrl, ca_pem: Option<&[u8]>) -> redis::RedisResult<redis::Client> {
    match ca_pem {
        Some(ca) => redis::Client::build_with_tls(
            url.expose(),
            redis::TlsCertificates { client_tls: None, root_cert: Some(ca.to_vec()) },
        ),
        None => redis::Client::open(url.expose()),
    }
}

/// Refuses a call without `authorization: Bearer <token>` when a token is set.
#[derive(Clone)]
struct BearerToken(Option<Arc<Secret>>);

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let Some(token) = &self.0 else { return Ok(req) };
        let given = req.metadata().get("authorization").map(|v| v.as_bytes()).unwrap_or_default();
        match given.strip_prefix(b"Bearer ") {
            Some(t) if token.matches(t) => Ok(req),
            Some(_) => {
                metrics::counter!("ecom_grpc_unauthenticated_total", "why" => "wrong_token").increment(1);
                Err(tonic::Status::unauthenticated("the bearer token is not the one this ecom serve expects"))
            }
            None => {
                metrics::counter!("ecom_grpc_unauthenticated_total", "why" => "no_token").increment(1);
                Err(tonic::Status::unauthenticated(
                    "this ecom serve requires a bearer token: send metadata `authorization: Bearer <token>`",
                ))
            }
        }
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            grpc_addr: ([127, 0, 0, 1], 50051).into(),
            http_addr: ([127, 0, 0, 1], 8080).into(),
            redis_url: SecretUrl::new("redis://127.0.0.1:6379", None),
            redis_ca_pem: None,
            guard: guard::GuardConfig::default(),
            max_batch: 1000,
            models_dir: PathBuf::from("models"),
            reload_every: Duration::from_secs(1),
            max_message_bytes: 4 << 20,
            coalesce: true,
            tls: None,
            token: None,
            ip_hash_key: None,
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// Runs the servers until `shutdown` resolves, then drains in-flight requests.
pub async fn run(cfg: ServeConfig, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0])
        .context("configuring Prometheus histogram buckets")?
        .install_recorder()
        .context("installing the Prometheus recorder (is another one installed in this process?)")?;
    cfg.guard.validate().context("checking the guard configuration")?;
    let client = redis_client(&cfg.redis_url, cfg.redis_ca_pem.as_deref())
        .with_context(|| format!("bad Redis URL {} (expected redis://host:port or rediss://)", cfg.redis_url))?;
    let mut guard = guard::Guard::with_client(client, cfg.guard.clone(), cfg.max_batch)?;
    match &cfg.ip_hash_key {
        Some(key) => guard = guard.with_ip_hash_key(key.expose().as_bytes()),
        None => tracing::warn!(
            "no IP-hash key (--ip-hash-key-file or $ECOM_IP_HASH_KEY): requests with a raw ip and no ip_hash are hashed with a key made at start, so their per-IP state starts afresh after a restart and block lists must be filled again (the job sends ip_hash and needs no key here)"
        ),
    }

    // Connect now rather than on the first request, so a burst at start-up does not meet a
    // cold connection and get the fallback. Serving starts either way.
    let warm_deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !guard.redis_ok().await {
        if std::time::Instant::now() > warm_deadline {
            tracing::warn!(redis = %cfg.redis_url, "Redis does not answer; the guard answers with the fallback verdict until it does");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Err(e) = guard.load_script().await {
        tracing::warn!(error = %e, "could not load the guard script yet; the first batch will load it");
    }
    let store = Arc::new(model::ModelStore::new(cfg.models_dir.clone(), booster_copies()));
    {
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.refresh()).await.context("model load task")? {
            Ok(Some(v)) => tracing::info!(version = %v, "serving model"),
            Ok(None) => tracing::warn!(models = %cfg.models_dir.display(), "no model yet (no models/CURRENT): Score and Recommend answer FAILED_PRECONDITION until `ecom train` writes one"),
            Err(e) => tracing::error!(error = format!("{e:#}"), "the current model does not load; Score and Recommend answer FAILED_PRECONDITION until a good one is published"),
        }
    }
    let (health, health_svc) = tonic_health::server::health_reporter();
    health.set_serving::<GuardServer<guard::Guard>>().await;
    tokio::spawn(model_health(store.clone(), health.clone(), cfg.reload_every));
    tokio::spawn(store.clone().watch(cfg.reload_every));
    let shadow = Arc::new(model::ModelStore::shadow(cfg.models_dir.clone(), booster_copies()));
    // Loaded before serving, as CURRENT is: the first answers get their shadow scores too.
    let loading = shadow.clone();
    match tokio::task::spawn_blocking(move || loading.refresh()).await.context("shadow model load task")? {
        Ok(Some(v)) => tracing::info!(version = %v, "scoring in shadow"),
        Ok(None) => {}
        Err(e) => tracing::error!(error = format!("{e:#}"), "the shadow model does not load; no shadow scores"),
    }
    tokio::spawn(shadow.clone().watch(cfg.reload_every));
    let scorer = score::Scorer::new(store.clone(), cfg.max_batch, if cfg.coalesce { score_threads() } else { 0 })
        .context("starting the scoring threads")?
        .with_shadow(shadow);
    // Reflection in both versions: v1, and v1alpha that many clients (grpcurl before 1.9,
    // Python's grpcio-reflection) still ask for.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(ecom_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().context("building gRPC reflection")?;
    let reflection_v1alpha = reflection().build_v1alpha().context("building gRPC reflection (v1alpha)")?;

    let http_listener = tokio::net::TcpListener::bind(cfg.http_addr)
        .await
        .with_context(|| format!("cannot listen on {} for HTTP (is another ecom serve running?)", cfg.http_addr))?;
    let grpc_listener = tokio::net::TcpListener::bind(cfg.grpc_addr)
        .await
        .with_context(|| format!("cannot listen on {} for gRPC (is another ecom serve running?)", cfg.grpc_addr))?;
    let tls = match &cfg.tls {
        None => "off",
        Some(t) if t.client_ca_pem.is_some() => "mutual",
        Some(_) => "on",
    };
    tracing::info!(grpc = %cfg.grpc_addr, http = %cfg.http_addr, redis = %cfg.redis_url, tls, token = cfg.token.is_some(), "ecom serve listening");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut http_stop = stop_rx.clone();
    let http_app = http::router(metrics, guard.clone(), store, cfg.version.clone());
    let http_task = tokio::spawn(async move {
        axum::serve(http_listener, http_app)
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            })
            .await
    });

    let mut grpc_stop = stop_rx;
    let mut server = tonic::transport::Server::builder().timeout(Duration::from_secs(10));
    if let Some(t) = &cfg.tls {
        let mut tls = tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(&t.cert_pem, &t.key_pem));
        if let Some(ca) = &t.client_ca_pem {
            tls = tls.client_ca_root(tonic::transport::Certificate::from_pem(ca));
        }
        server = server.tls_config(tls).context("TLS: the certificate or key does not load")?;
    }
    let auth = BearerToken(cfg.token.clone().map(Arc::new));
    use tonic::service::interceptor::InterceptedService;
    server
        .add_service(health_svc)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(InterceptedService::new(
            GuardServer::new(guard).max_decoding_message_size(cfg.max_message_bytes),
            auth.clone(),
        ))
        .add_service(InterceptedService::new(
            ScoreServer::new(scorer.clone()).max_decoding_message_size(cfg.max_message_bytes),
            auth.clone(),
        ))
        .add_service(InterceptedService::new(
            RecommendServer::new(scorer).max_decoding_message_size(cfg.max_message_bytes),
            auth,
        ))
        // Replies are small: Nagle's algorithm would hold them for the peer's delayed ACK (~40 ms).
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(grpc_listener).with_nodelay(Some(true)),
            async move {
                let _ = grpc_stop.wait_for(|s| *s).await;
            },
        )
        .await
        .context("gRPC server failed")?;
    http_task.await.context("HTTP task panicked")?.context("HTTP server failed")?;
    tracing::info!("ecom serve stopped");
    Ok(())
}

/// Where a field sits, for error messages: "" in a single request, "requests[i]." in a batch.
pub(crate) fn field_at(i: Option<usize>) -> String {
    i.map(|i| format!("requests[{i}].")).unwrap_or_default()
}

/// A batch of `len` items within `max`, or INVALID_ARGUMENT naming the limit: too many items is
/// the caller's bug, not one item's, so the whole call is refused.
pub(crate) fn check_batch(len: usize, max: usize) -> Result<(), tonic::Status> {
    if len > max {
        return Err(tonic::Status::invalid_argument(format!(
            "requests: {len} items is more than the batch limit of {max}"
        )));
    }
    Ok(())
}

/// Records one gRPC call: its latency and whether it succeeded, per method.
pub(crate) fn observe(method: &'static str, started: std::time::Instant, ok: bool) {
    metrics::histogram!("ecom_grpc_seconds", "method" => method).record(started.elapsed().as_secs_f64());
    metrics::counter!("ecom_grpc_requests_total", "method" => method, "ok" => if ok { "true" } else { "false" })
        .increment(1);
}

/// Threads that score coalesced single rows: one per core.
fn score_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Booster copies for concurrent scoring: the scoring threads plus batch requests scored on
/// blocking threads, so a call rarely waits for one.
fn booster_copies() -> usize {
    score_threads() * 2
}

/// Keeps the gRPC health of Score and Recommend in step with whether a model is loaded.
async fn model_health(store: Arc<model::ModelStore>, health: tonic_health::server::HealthReporter, every: Duration) {
    let mut last = None;
    loop {
        let loaded = store.get().is_some();
        if last != Some(loaded) {
            if loaded {
                health.set_serving::<ScoreServer<score::Scorer>>().await;
                health.set_serving::<RecommendServer<score::Scorer>>().await;
            } else {
                health.set_not_serving::<ScoreServer<score::Scorer>>().await;
                health.set_not_serving::<RecommendServer<score::Scorer>>().await;
            }
            last = Some(loaded);
        }
        tokio::time::sleep(every).await;
    }
}
