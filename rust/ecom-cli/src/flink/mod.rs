//! Flink's REST API: submitting the job jar to a session cluster (upload once per content, run
//! with options, wait until every task runs), cancelling and stopping with a savepoint
//! ([`Flink`]); and watching a submitted job while a command waits on it (`watch`).
use anyhow::{bail, Context};
use serde_json::Value;
use std::time::{Duration, Instant};

mod watch;
pub(crate) use watch::*;

/// A Flink session cluster to submit the job jar to through its REST API (no local Flink
/// install needed), and the jar.
pub(crate) struct Flink<'a> {
    pub(crate) rest: &'a str,
    pub(crate) jar: Option<&'a std::path::Path>,
}

impl Flink<'_> {
    /// Submits the job with `job_args` at `parallelism`, after cancelling any `ecom` job left
    /// running, and waits until every task runs. Returns the job id.
    pub(crate) async fn submit(
        &self,
        http: &reqwest::Client,
        parallelism: u32,
        job_args: &[String],
    ) -> anyhow::Result<String> {
        // A job left over from an interrupted demo would compete for the same records.
        for id in self.running_ecom_jobs(http).await? {
            eprintln!("cancelling the ecom job {id} left running by an earlier run");
            self.cancel(http, &id).await;
        }
        self.start(http, parallelism, job_args, None).await
    }

    /// The ids of the cluster's `ecom` jobs that are running or about to.
    pub(crate) async fn running_ecom_jobs(&self, http: &reqwest::Client) -> anyhow::Result<Vec<String>> {
        let jobs: Value = http
            .get(format!("{}/jobs/overview", self.rest))
            .send()
            .await
            .with_context(|| format!("Flink's REST API at {} does not answer", self.rest))?
            .json()
            .await?;
        Ok(jobs["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|j| {
                j["name"] == "ecom"
                    && matches!(j["state"].as_str(), Some("RUNNING" | "CREATED" | "RESTARTING" | "INITIALIZING"))
            })
            .filter_map(|j| j["jid"].as_str().map(String::from))
            .collect())
    }

    /// Uploads the jar (unless the cluster has it), runs the job with `job_args` at
    /// `parallelism`, from `savepoint` when given, and waits until every task runs. Returns
    /// the job id.
    pub(crate) async fn start(
        &self,
        http: &reqwest::Client,
        parallelism: u32,
        job_args: &[String],
        savepoint: Option<&str>,
    ) -> anyhow::Result<String> {
        let jar = self
            .jar
            .context("the job jar is not set: run via dev/demo or pass --jar flink-job/target/ecom-flink-job.jar")?;
        if !jar.exists() {
            bail!("job jar {} does not exist: build it with dev/build", jar.display());
        }
        // The job's IP-hash key travels in a file (or $ECOM_IP_HASH_KEY), never in its arguments.
        let mut key = Vec::new();
        let keyed = |o: &str| job_args.iter().any(|a| a.starts_with(o));
        if std::env::var_os(crate::stack::IP_HASH_KEY_ENV).is_none()
            && !keyed("--ip-hash-key-file")
            && !keyed("--allow-dev-ip-hash-key")
        {
            key = vec!["--ip-hash-key-file".to_string(), crate::stack::ip_hash_key_file()?.display().to_string()];
        }
        let jar_id = self.upload_jar(http, jar).await?;
        let args: Vec<&String> = job_args.iter().chain(&key).collect();
        let resp = http
            .post(format!("{}/jars/{jar_id}/run", self.rest))
            .json(&match savepoint {
                None => serde_json::json!({"programArgsList": args, "parallelism": parallelism}),
                Some(path) => serde_json::json!({"programArgsList": args, "parallelism": parallelism,
                                                 "savepointPath": path}),
            })
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .with_context(|| format!("submitting the job to Flink at {}", self.rest))?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or_default();
        let Some(id) = v["jobid"].as_str().filter(|_| status.is_success()).map(String::from) else {
            bail!("Flink at {} refused the job ({status}): {}", self.rest, rest_error(&v));
        };
        // Wait until every task runs: records produced before that are still read (committed
        // offsets / earliest), but latency numbers would include the job's start.
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let j: Value = http.get(format!("{}/jobs/{id}", self.rest)).send().await?.json().await?;
            let running =
                j["vertices"].as_array().is_some_and(|v| !v.is_empty() && v.iter().all(|v| v["status"] == "RUNNING"));
            if running {
                eprintln!("Flink job {id} is running");
                return Ok(id);
            }
            if matches!(j["state"].as_str(), Some("FAILED" | "CANCELED" | "FINISHED")) || Instant::now() > deadline {
                let root = crate::flink::root_exception(http, self.rest, &id).await;
                bail!(
                    "Flink job {id} did not start (state {}): {}",
                    j["state"],
                    root.as_deref().unwrap_or("no exception reported")
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The id of `jar` in the cluster's jar store (`/jars`), uploaded unless a jar of the same
    /// content is there already: Flink keeps each upload under the file name given, and ours is
    /// `ecom-flink-job-<sha256 prefix>.jar`. Other ecom jars there are deleted, so rebuilds do not
    /// pile up in the JobManager's upload directory.
    async fn upload_jar(&self, http: &reqwest::Client, jar: &std::path::Path) -> anyhow::Result<String> {
        use sha2::Digest;
        let bytes = tokio::fs::read(jar).await.with_context(|| format!("reading {}", jar.display()))?;
        let digest = hex::encode(&sha2::Sha256::digest(&bytes)[..8]);
        let name = format!("ecom-flink-job-{digest}.jar");
        let listed: Value = http
            .get(format!("{}/jars", self.rest))
            .send()
            .await
            .with_context(|| format!("Flink's REST API at {} does not answer (run dev/up?)", self.rest))?
            .json()
            .await
            .context("reading Flink's list of jars")?;
        let mut found = None;
        for f in listed["files"].as_array().into_iter().flatten() {
            let (Some(id), Some(n)) = (f["id"].as_str(), f["name"].as_str()) else { continue };
            if n == name && found.is_none() {
                found = Some(id.to_string());
            } else if n.starts_with("ecom-flink-job-") {
                let _ = http.delete(format!("{}/jars/{id}", self.rest)).send().await;
            }
        }
        if let Some(id) = found {
            return Ok(id);
        }
        // One multipart/form-data part, "jarfile", as Flink's upload handler takes it.
        let mut boundary = format!("ecom-{digest}");
        while bytes.windows(boundary.len()).any(|w| w == boundary.as_bytes()) {
            boundary.push('x');
        }
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"jarfile\"; filename=\"{name}\"\r\n\
             Content-Type: application/x-java-archive\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(&bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let resp = http
            .post(format!("{}/jars/upload", self.rest))
            .header(reqwest::header::CONTENT_TYPE, format!("multipart/form-data; boundary={boundary}"))
            .body(body)
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .with_context(|| format!("uploading {} to Flink at {}", jar.display(), self.rest))?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or_default();
        match v["filename"].as_str().and_then(|f| f.rsplit('/').next()).filter(|_| status.is_success()) {
            Some(id) => Ok(id.to_string()),
            None => bail!("Flink at {} refused the jar upload ({status}): {}", self.rest, rest_error(&v)),
        }
    }

    /// Watches job `id` while a command waits on its outputs; the report of its end goes to
    /// `report_dir`.
    pub(crate) fn watch(
        &self,
        http: &reqwest::Client,
        id: &str,
        report_dir: &std::path::Path,
    ) -> crate::flink::JobWatch {
        crate::flink::JobWatch::start(http, self.rest, id, report_dir)
    }

    /// Cancels job `id` and waits (at most 30 s) until it stopped.
    pub(crate) async fn cancel(&self, http: &reqwest::Client, id: &str) {
        let r = http.patch(format!("{}/jobs/{id}?mode=cancel", self.rest)).send().await;
        if let Err(e) = r {
            eprintln!("warning: could not cancel Flink job {id}: {e}");
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = http.get(format!("{}/jobs/{id}", self.rest)).send().await {
                if let Ok(j) = r.json::<Value>().await {
                    if matches!(j["state"].as_str(), Some("CANCELED" | "FAILED" | "FINISHED")) {
                        eprintln!("Flink job {id} cancelled");
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        eprintln!("warning: Flink job {id} did not stop within 30 s");
    }

    /// Stops job `id` with a savepoint (into `dir`, or the cluster's
    /// `execution.checkpointing.savepoint-dir`): the sources stop, a last checkpoint commits the
    /// Kafka transactions, and the job ends FINISHED. Waits up to `wait`; returns the savepoint's
    /// path, from which `start` resumes with nothing lost or duplicated.
    pub(crate) async fn stop_with_savepoint(
        &self,
        http: &reqwest::Client,
        id: &str,
        dir: Option<&str>,
        wait: Duration,
    ) -> anyhow::Result<String> {
        let body = match dir {
            Some(d) => serde_json::json!({"targetDirectory": d, "drain": false}),
            None => serde_json::json!({"drain": false}),
        };
        let resp = http
            .post(format!("{}/jobs/{id}/stop", self.rest))
            .json(&body)
            .send()
            .await
            .with_context(|| format!("asking Flink at {} to stop job {id}", self.rest))?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or_default();
        let Some(trigger) = v["request-id"].as_str().filter(|_| status.is_success()) else {
            bail!("Flink at {} refused to stop job {id} ({status}): {}", self.rest, rest_error(&v));
        };
        let deadline = Instant::now() + wait;
        loop {
            let v: Value =
                http.get(format!("{}/jobs/{id}/savepoints/{trigger}", self.rest)).send().await?.json().await?;
            if v["status"]["id"] == "COMPLETED" {
                if let Some(path) = v["operation"]["location"].as_str() {
                    return Ok(path.to_string());
                }
                bail!(
                    "the savepoint of job {id} failed: {}",
                    v["operation"]["failure-cause"]["stack-trace"]
                        .as_str()
                        .and_then(|t| t.lines().filter_map(|l| l.trim().strip_prefix("Caused by: ")).next_back())
                        .unwrap_or("no cause given")
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "job {id}'s savepoint did not complete within {} s (it may still: see the Flink UI)",
                    wait.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// What Flink's REST API says went wrong: the deepest "Caused by" of its error (the job's own
/// message, e.g. a bad option), else the error as given.
fn rest_error(v: &Value) -> String {
    let all: Vec<&str> = v["errors"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let text = all.join("\n");
    let cause = text.lines().filter_map(|l| l.trim().strip_prefix("Caused by: ")).next_back();
    match cause {
        Some(c) => c.to_string(),
        None if text.is_empty() => v.to_string(),
        None => text.lines().next().unwrap_or_default().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_job_is_reported_by_its_deepest_cause() {
        let v = serde_json::json!({"errors": [
            "org.apache.flink.runtime.rest.handler.RestHandlerException: Could not execute application.\n\tat x\nCaused by: org.apache.flink.client.program.ProgramInvocationException: The main method caused an error\n\tat y\nCaused by: java.lang.IllegalArgumentException: --rpc-batch-size: -3 must be > 0\n\tat z"
        ]});
        assert_eq!(rest_error(&v), "java.lang.IllegalArgumentException: --rpc-batch-size: -3 must be > 0");
        assert_eq!(rest_error(&serde_json::json!({"errors": ["Not found: /jars/x"]})), "Not found: /jars/x");
        assert_eq!(rest_error(&serde_json::json!({})), "{}");
    }
}
