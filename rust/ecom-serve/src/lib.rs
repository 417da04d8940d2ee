//! ecom-serve: the gRPC services the Flink job and users call (Guard over Redis in this
//! slice), with gRPC health and reflection, and HTTP /health and /metrics.
//! Shape: config -> guard (logic over a Redis connection) -> tonic service -> server driver.
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]
#![deny(unused_must_use)]

pub mod guard;
mod http;

use anyhow::Context;
use ecom_proto::v1::guard_server::GuardServer;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

/// Everything `ecom serve` needs to start.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// gRPC listen address (default 127.0.0.1:50051).
    pub grpc_addr: SocketAddr,
    /// HTTP listen address for /health and /metrics (default 127.0.0.1:8080).
    pub http_addr: SocketAddr,
    /// Redis URL for the guard's live state.
    pub redis_url: String,
    /// Guard rules and fallback.
    pub guard: guard::GuardConfig,
    /// Largest batch accepted by the *Batch methods.
    pub max_batch: usize,
}

/// Runs the servers until `shutdown` resolves, then drains in-flight requests.
pub async fn run(cfg: ServeConfig, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0])
        .context("configuring Prometheus histogram buckets")?
        .install_recorder()
        .context("installing the Prometheus recorder (is another one installed in this process?)")?;
    cfg.guard.validate().context("checking the guard configuration")?;
    let guard = guard::Guard::connect(&cfg.redis_url, cfg.guard.clone(), cfg.max_batch)
        .with_context(|| format!("bad Redis URL {:?} (expected redis://host:port)", cfg.redis_url))?;

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
    let (health, health_svc) = tonic_health::server::health_reporter();
    health.set_serving::<GuardServer<guard::Guard>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(ecom_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("building gRPC reflection")?;

    let http_listener = tokio::net::TcpListener::bind(cfg.http_addr)
        .await
        .with_context(|| format!("cannot listen on {} for HTTP (is another ecom serve running?)", cfg.http_addr))?;
    let grpc_listener = tokio::net::TcpListener::bind(cfg.grpc_addr)
        .await
        .with_context(|| format!("cannot listen on {} for gRPC (is another ecom serve running?)", cfg.grpc_addr))?;
    tracing::info!(grpc = %cfg.grpc_addr, http = %cfg.http_addr, redis = %cfg.redis_url, "ecom serve listening");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut http_stop = stop_rx.clone();
    let http_app = http::router(metrics, guard.clone());
    let http_task = tokio::spawn(async move {
        axum::serve(http_listener, http_app)
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            })
            .await
    });

    let mut grpc_stop = stop_rx;
    tonic::transport::Server::builder()
        .timeout(Duration::from_secs(10))
        .add_service(health_svc)
        .add_service(reflection)
        .add_service(GuardServer::new(guard).max_decoding_message_size(4 << 20))
        .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(grpc_listener), async move {
            let _ = grpc_stop.wait_for(|s| *s).await;
        })
        .await
        .context("gRPC server failed")?;
    http_task.await.context("HTTP task panicked")?.context("HTTP server failed")?;
    tracing::info!("ecom serve stopped");
    Ok(())
}
