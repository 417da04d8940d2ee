//! The ecom services (serve, sink) that demo, faults and the benches start as children: their
//! command lines, their logs, waiting for their health, and stopping them.

use crate::stack::{EsArgs, MongoArgs, RedisArgs};
use anyhow::{bail, Context};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Children started by a command; killed on drop so an error never leaves them behind.
pub(crate) struct Children(pub(crate) Vec<(String, tokio::process::Child)>);

impl Children {
    /// The first child that has exited, with its exit status.
    pub(crate) fn exited(&mut self) -> Option<(String, std::process::ExitStatus)> {
        self.0.iter_mut().find_map(|(name, c)| c.try_wait().ok().flatten().map(|status| (name.clone(), status)))
    }

    pub(crate) async fn stop(&mut self) {
        for (name, child) in &mut self.0 {
            if let Some(pid) = child.id() {
                // SIGTERM first: both services drain and exit cleanly.
                let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
            }
            match tokio::time::timeout(Duration::from_secs(15), child.wait()).await {
                Ok(_) => eprintln!("stopped ecom {name}"),
                Err(_) => {
                    let _ = child.kill().await;
                    eprintln!("killed ecom {name} (did not stop within 15 s)");
                }
            }
        }
        self.0.clear();
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.start_kill();
        }
    }
}

/// `ecom serve` as a child process: Guard over `redis`, Score and Recommend from `models_dir`,
/// gRPC and HTTP on the given addresses, the IP-hash key handed on ($ECOM_IP_HASH_KEY is
/// inherited when set, else the demo's key file).
pub(crate) fn serve_command(
    exe: &std::path::Path,
    redis: &RedisArgs,
    models_dir: &std::path::Path,
    grpc_addr: &str,
    http_addr: &str,
) -> anyhow::Result<tokio::process::Command> {
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("serve").arg("--models-dir").arg(models_dir);
    cmd.args(["--grpc-addr", grpc_addr, "--http-addr", http_addr]);
    redis.hand_to(&mut cmd)?;
    if std::env::var_os(crate::stack::IP_HASH_KEY_ENV).is_none() {
        cmd.arg("--ip-hash-key-file").arg(crate::stack::ip_hash_key_file()?);
    }
    Ok(cmd)
}

/// `ecom sink` as a child process: from `brokers` into `es` and `mongo`, /health and /metrics
/// on `metrics_addr`.
pub(crate) fn sink_command(
    exe: &std::path::Path,
    es: &EsArgs,
    mongo: &MongoArgs,
    brokers: &str,
    metrics_addr: &str,
) -> anyhow::Result<tokio::process::Command> {
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("sink").args(["--bootstrap-servers", brokers, "--metrics-addr", metrics_addr]);
    es.hand_to(&mut cmd)?;
    mongo.hand_to(&mut cmd)?;
    Ok(cmd)
}

/// Starts `cmd` as `ecom <name>`, its output appended to `log`, killed when dropped.
pub(crate) fn spawn_logged(
    mut cmd: tokio::process::Command,
    name: &str,
    log: &std::path::Path,
) -> anyhow::Result<tokio::process::Child> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    cmd.stdout(Stdio::from(file.try_clone()?))
        .stderr(Stdio::from(file))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting ecom {name}"))
}

/// Waits until `url` answers 2xx (at most 60 s). A child that exits meanwhile, or the timeout,
/// is an error that quotes the last lines of `log`.
pub(crate) async fn wait_http(
    http: &reqwest::Client,
    url: &str,
    what: &str,
    log: &std::path::Path,
    children: &mut Children,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let tail = || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let last: Vec<&str> = text.lines().rev().take(20).collect();
        format!("last log lines ({}):\n{}", log.display(), last.into_iter().rev().collect::<Vec<_>>().join("\n"))
    };
    loop {
        if let Ok(r) = http.get(url).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        // A child that exited (a port taken, a bad flag) is reported at once, not after 60 s.
        if let Some((name, status)) = children.exited() {
            bail!("ecom {name} exited ({status}) while waiting for {what} at {url}; {}", tail());
        }
        if Instant::now() > deadline {
            bail!("{what} did not become healthy at {url} within 60 s; {}", tail());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
