//! Helpers shared by the service tests: scratch dirs, a model trained here, serve started
//! in-process with a stop handle.
#![allow(dead_code)] // each test binary uses its own subset
use ecom_core::lsh::DEFAULT_PARAMS;
use ecom_gen::GenConfig;
use ecom_train::{Input, TrainOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ecom-serve-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A loopback address with a port the kernel just handed out, so a test never collides with
/// a fixed port some other process (or an outgoing connection) holds.
pub fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A development CA with server and client certificates (dev/certs) in a scratch dir.
pub fn certs(name: &str) -> PathBuf {
    let dir = tmp(name);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dev/certs");
    let out = std::process::Command::new(&script).arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}: {}", script.display(), String::from_utf8_lossy(&out.stderr));
    dir
}

/// Generates `events` into `data_dir` and trains version `version` into `models`.
pub fn generate_and_train(data_dir: &Path, models: &Path, events: u64, version: &str) {
    ecom_gen::write_training_files(data_dir, GenConfig { events, seed: 5, ..Default::default() }).unwrap();
    let opts = TrainOptions {
        models_dir: models.to_path_buf(),
        seed: 7,
        threads: 2,
        lsh: DEFAULT_PARAMS,
        forest_trees: 20,
        mlp_epochs: 3,
        progress: false,
        version: Some(version.into()),
        rows_out: None,
    };
    ecom_train::train(Input::from_dir(data_dir, false).unwrap(), &opts).unwrap();
}

/// A running in-process serve and how to stop it.
pub struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub channel: Channel,
}

impl Running {
    /// Starts serve with `cfg` and waits until its gRPC port answers.
    pub async fn start(cfg: ecom_serve::ServeConfig) -> Self {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", cfg.grpc_addr)).unwrap();
        Self::start_with(cfg, endpoint).await
    }

    /// Starts serve with `cfg` and waits until `endpoint` (its gRPC port, as the test's client
    /// reaches it) connects.
    pub async fn start_with(cfg: ecom_serve::ServeConfig, endpoint: tonic::transport::Endpoint) -> Self {
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(ecom_serve::run(cfg, async move {
            let _ = rx.await;
        }));
        let started = Instant::now();
        let channel = loop {
            match endpoint.connect().await {
                Ok(c) => break c,
                Err(_) if task.is_finished() => panic!("serve ended before it answered: {:?}", task.await),
                Err(e) if started.elapsed() > Duration::from_secs(30) => panic!("serve did not come up: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        Self { stop, task, channel }
    }

    /// Stops serve gracefully and checks it ended cleanly.
    pub async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(15), self.task).await.unwrap().unwrap().unwrap();
    }
}
