//! Watching a submitted Flink job over the REST API while a command waits on its outputs: its
//! state and `numRestarts` about once a second, each failure in its exception history printed
//! once as a warning, and its end (FAILED, or CANCELED/FINISHED/SUSPENDED, or gone from the
//! cluster) as a [`JobEnded`] the wait is raced against, so a dead job stops the command at once
//! instead of after its timeout.
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often the watcher asks Flink. Each request is bounded by the HTTP client's timeout.
const POLL: Duration = Duration::from_secs(1);
/// "Caused by:" lines, and frames of the innermost cause, an excerpt of a stack trace keeps.
const EXCERPT_CAUSES: usize = 6;
const EXCERPT_FRAMES: usize = 3;

/// A job as last seen by the watcher.
#[derive(Clone, Debug, Default)]
pub(crate) struct JobStatus {
    /// Flink's job state (RUNNING, RESTARTING, FAILED, ...); NOT_FOUND when the cluster no
    /// longer knows the job; empty before the first answer.
    pub(crate) state: String,
    /// Restarts: Flink's `numRestarts` job metric, or the failures the watcher saw the job
    /// restart from if more (the REST API serves metrics sampled every 10 s, by default, so
    /// the metric alone can miss a job's last restart).
    pub(crate) restarts: u64,
}

/// A job that stopped while a command waited on it: the error such a command ends with.
#[derive(Clone, Debug)]
pub(crate) struct JobEnded {
    /// The job id.
    pub(crate) job: String,
    /// Its state and restarts when it was seen stopped.
    pub(crate) status: JobStatus,
    /// What stopped it, in one line: for FAILED, the first line of the job's root exception
    /// (the newest entry of its exception history).
    pub(crate) headline: String,
    /// For FAILED, the root exception's causes and where the innermost was thrown.
    pub(crate) root_causes: Vec<String>,
    /// Where the full failure cause and exception history were written.
    pub(crate) report: Option<PathBuf>,
}

impl std::fmt::Display for JobEnded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Flink job {} is {} ({} restarts): {}",
            self.job, self.status.state, self.status.restarts, self.headline
        )?;
        for l in &self.root_causes {
            write!(f, "\n    {l}")?;
        }
        if let Some(p) = &self.report {
            write!(f, "\nthe job's failure cause and exception history in full: {}", p.display())?;
        }
        Ok(())
    }
}

impl std::error::Error for JobEnded {}

/// The REST calls the watcher makes about one job.
#[derive(Clone)]
struct JobApi {
    http: reqwest::Client,
    rest: String,
    job: String,
}

impl JobApi {
    async fn get(&self, path: &str) -> Result<(reqwest::StatusCode, Value), reqwest::Error> {
        let r = self.http.get(format!("{}/jobs/{}{path}", self.rest, self.job)).send().await?;
        let status = r.status();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// The job's state (NOT_FOUND when the cluster answers 404), and whether all its tasks run
    /// (a region failover restarts tasks while the job stays RUNNING).
    async fn state(&self) -> Result<(String, bool), reqwest::Error> {
        let (status, j) = self.get("").await?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(("NOT_FOUND".into(), false));
        }
        let all_running = j["vertices"].as_array().is_some_and(|v| v.iter().all(|v| v["status"] == "RUNNING"));
        Ok((j["state"].as_str().unwrap_or_default().to_string(), all_running))
    }

    /// The `numRestarts` metric; None while Flink does not report it (e.g. a finished job).
    async fn restarts(&self) -> Option<u64> {
        let (_, m) = self.get("/metrics?get=numRestarts").await.ok()?;
        m.as_array()?.iter().find(|x| x["id"] == "numRestarts")?["value"].as_str()?.parse().ok()
    }

    /// The exception history, oldest first.
    /// (Flink 2 answers with `exceptionHistory` alone: no `root-exception` any more.)
    async fn history(&self) -> Option<Vec<Value>> {
        let (_, ex) = self.get("/exceptions").await.ok()?;
        let mut entries = ex["exceptionHistory"]["entries"].as_array().cloned().unwrap_or_default();
        entries.sort_by_key(|e| e["timestamp"].as_i64().unwrap_or(0));
        Some(entries)
    }

    async fn status(&self, last: &JobStatus) -> Result<JobStatus, reqwest::Error> {
        let (state, _) = self.state().await?;
        let restarts = self.restarts().await.unwrap_or(last.restarts).max(last.restarts);
        Ok(JobStatus { state, restarts })
    }

    /// Reads why the job stopped and writes the full text to `report_dir`.
    async fn ended(&self, status: JobStatus, report_dir: &Path) -> JobEnded {
        let entries = self.history().await.unwrap_or_default();
        let result = self.get("/execution-result").await.map(|r| r.1).unwrap_or_default();
        let cause = result["job-execution-result"]["failure-cause"]["stack-trace"].as_str().unwrap_or_default();
        let newest = entries.last().and_then(|e| e["stacktrace"].as_str()).unwrap_or_default();
        let root = if newest.is_empty() { cause } else { newest };
        let (headline, root_causes) = match status.state.as_str() {
            "FAILED" if !root.is_empty() => excerpt(root),
            "FAILED" => ("no exception reported".into(), Vec::new()),
            "CANCELED" => ("cancelled, and not by this command".into(), Vec::new()),
            "FINISHED" => ("finished, though its Kafka sources are unbounded: something stopped it".into(), Vec::new()),
            "NOT_FOUND" => ("the cluster no longer knows the job (was the JobManager restarted?)".into(), Vec::new()),
            s => (format!("stopped in state {s}"), Vec::new()),
        };
        let mut text =
            format!("Flink job {} is {} ({} restarts): {headline}\n", self.job, status.state, status.restarts);
        if !cause.is_empty() && cause != newest {
            text.push_str(&format!("\n== failure cause (execution result)\n{cause}\n"));
        }
        for e in entries.iter().rev() {
            text.push_str(&format!(
                "\n== exception history entry at {} ms, task {}\n{}\n",
                e["timestamp"],
                e["taskName"].as_str().unwrap_or("-"),
                e["stacktrace"].as_str().unwrap_or_default()
            ));
        }
        let path = report_dir.join(format!("flink-job-{}.exceptions.txt", self.job));
        let report = match std::fs::create_dir_all(report_dir).and_then(|_| std::fs::write(&path, text)) {
            Ok(()) => Some(path),
            Err(e) => {
                eprintln!("warning: could not write {}: {e}", path.display());
                None
            }
        };
        JobEnded { job: self.job.clone(), status, headline, root_causes, report }
    }
}

/// A Java stack trace's first line, then its "Caused by:" lines and the frames where the
/// innermost cause was thrown (the wrappers' frames are Flink's, rarely the news).
fn excerpt(trace: &str) -> (String, Vec<String>) {
    let lines: Vec<&str> = trace.lines().collect();
    let first = lines.first().copied().unwrap_or_default().to_string();
    let causes: Vec<usize> = (1..lines.len()).filter(|&i| lines[i].starts_with("Caused by:")).collect();
    let innermost = causes.last().copied().unwrap_or(0);
    let mut out: Vec<String> = causes[causes.len().saturating_sub(EXCERPT_CAUSES)..]
        .iter()
        .map(|&i| lines[i].trim_end().to_string())
        .collect();
    let frames = lines[innermost + 1..].iter().take_while(|l| l.trim_start().starts_with("at "));
    out.extend(frames.take(EXCERPT_FRAMES).map(|l| format!("  {}", l.trim())));
    (first, out)
}

/// One line for a failure the job restarted from: its first line and its innermost cause.
fn one_line(entry: &Value) -> String {
    let trace = entry["stacktrace"].as_str().unwrap_or_default();
    let first = trace.lines().next().or(entry["exceptionName"].as_str()).unwrap_or("no exception text");
    let mut line = match entry["taskName"].as_str() {
        Some(t) => format!("{first} (task {t})"),
        None => first.to_string(),
    };
    if let Some(cause) = trace.lines().rfind(|l| l.starts_with("Caused by:")) {
        line.push_str(&format!("; {cause}"));
    }
    line
}

#[derive(Clone, Debug, Default)]
struct Seen {
    status: JobStatus,
    ended: Option<JobEnded>,
}

/// A task polling one job until it stops or the watch is finished or dropped.
pub(crate) struct JobWatch {
    api: JobApi,
    seen: watch::Receiver<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl JobWatch {
    /// Starts watching job `job` on the cluster at `rest`; a report of its end goes to
    /// `report_dir/flink-job-<id>.exceptions.txt`.
    pub(crate) fn start(http: &reqwest::Client, rest: &str, job: &str, report_dir: &Path) -> Self {
        let api = JobApi { http: http.clone(), rest: rest.to_string(), job: job.to_string() };
        let (tx, seen) = watch::channel(Seen::default());
        let task = tokio::spawn(poll(api.clone(), report_dir.to_path_buf(), tx));
        JobWatch { api, seen, task }
    }

    /// Resolves once the job stopped; never, as long as it runs or restarts.
    pub(crate) async fn ended(&mut self) -> JobEnded {
        let ended = self.seen.wait_for(|s| s.ended.is_some()).await.ok().and_then(|s| s.ended.clone());
        match ended {
            Some(e) => e,
            // The watcher is gone (only on a panic): the caller's own timeout still applies.
            None => std::future::pending().await,
        }
    }

    /// Stops watching (before the command cancels the job itself) and returns the job's
    /// state and restarts, read once more.
    pub(crate) async fn finish(self) -> JobStatus {
        self.task.abort();
        let last = self.seen.borrow().status.clone();
        self.api.status(&last).await.unwrap_or(last)
    }
}

impl Drop for JobWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn poll(api: JobApi, report_dir: PathBuf, tx: watch::Sender<Seen>) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // numRestarts as read (it only grows), failures announced as restarts, and numRestarts when
    // the history was last read; the newest failure announced.
    let (mut metric, mut announced, mut metric_at_read) = (0, 0, 0);
    let mut announced_ts = i64::MIN;
    let mut unreachable_since: Option<Instant> = None;
    loop {
        tick.tick().await;
        let (state, all_running) = match api.state().await {
            Ok(s) => s,
            Err(e) => {
                // The JobManager may come back; the waits' own timeouts bound this.
                if unreachable_since.is_none() {
                    eprintln!("warning: Flink's REST API at {} does not answer ({e}); still waiting", api.rest);
                    unreachable_since = Some(Instant::now());
                }
                continue;
            }
        };
        if let Some(t) = unreachable_since.take() {
            eprintln!("Flink's REST API answers again (after {:.0} s)", t.elapsed().as_secs_f64());
        }
        metric = api.restarts().await.unwrap_or(0).max(metric);
        if matches!(state.as_str(), "FAILED" | "CANCELED" | "FINISHED" | "SUSPENDED" | "NOT_FOUND") {
            let ended = api.ended(JobStatus { state, restarts: metric.max(announced) }, &report_dir).await;
            tx.send_modify(|s| {
                s.status = ended.status.clone();
                s.ended = Some(ended);
            });
            return;
        }
        // Failures are announced as restarts only while the job runs or restarts, and only if it
        // still does after the history was read: the failure that ends a job is in its history
        // from the moment it is FAILED, and belongs to its end.
        let live = |s: &str| matches!(s, "RUNNING" | "RESTARTING");
        if live(&state) && (state == "RESTARTING" || !all_running || metric > metric_at_read) {
            let entries = api.history().await;
            let still = api.state().await.is_ok_and(|(s, _)| live(&s));
            if let Some(entries) = entries.filter(|_| still) {
                for e in &entries {
                    let ts = e["timestamp"].as_i64().unwrap_or(0);
                    if ts > announced_ts {
                        eprintln!("warning: Flink job {} restarts after a failure: {}", api.job, one_line(e));
                        announced_ts = ts;
                        announced += 1;
                    }
                }
                metric_at_read = metric;
            }
        }
        tx.send_modify(|s| s.status = JobStatus { state: state.clone(), restarts: metric.max(announced) });
    }
}

/// The first lines of job `job`'s newest failure in its exception history, if it has one.
pub(crate) async fn root_exception(http: &reqwest::Client, rest: &str, job: &str) -> Option<String> {
    let api = JobApi { http: http.clone(), rest: rest.to_string(), job: job.to_string() };
    let entries = api.history().await?;
    let (first, rest) = excerpt(entries.last()?["stacktrace"].as_str()?);
    Some(std::iter::once(first).chain(rest).collect::<Vec<_>>().join("\n    "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like the trace Flink 2.2 reported for a job whose Kafka sink could not write.
    const TRACE: &str = "org.apache.flink.runtime.JobException: Recovery is suppressed by FixedDelayRestartBackoffTimeStrategy(maxNumberRestartAttempts=5, backoffTimeMS=5000)
\tat org.apache.flink.runtime.executiongraph.failover.ExecutionFailureHandler.handleFailure(ExecutionFailureHandler.java:213)
\tat org.apache.flink.runtime.scheduler.DefaultScheduler.recordTaskFailure(DefaultScheduler.java:294)
Caused by: java.io.IOException: One or more Kafka Producer send requests have encountered exception
\tat org.apache.flink.connector.kafka.sink.KafkaWriter.checkAsyncException(KafkaWriter.java:270)
\t... 12 more
Caused by: org.apache.kafka.common.errors.InvalidTopicException: Invalid topics: [ecom.bad#topic]
\tat dev.ecom.flink.A.a(A.java:1)
\tat dev.ecom.flink.A.b(A.java:2)
\tat dev.ecom.flink.A.c(A.java:3)
\tat dev.ecom.flink.A.d(A.java:4)
";

    #[test]
    fn an_excerpt_is_the_first_line_the_causes_and_where_the_innermost_was_thrown() {
        let (first, rest) = excerpt(TRACE);
        assert!(first.ends_with("Recovery is suppressed by FixedDelayRestartBackoffTimeStrategy(maxNumberRestartAttempts=5, backoffTimeMS=5000)"));
        assert_eq!(
            rest,
            [
                "Caused by: java.io.IOException: One or more Kafka Producer send requests have encountered exception",
                "Caused by: org.apache.kafka.common.errors.InvalidTopicException: Invalid topics: [ecom.bad#topic]",
                "  at dev.ecom.flink.A.a(A.java:1)",
                "  at dev.ecom.flink.A.b(A.java:2)",
                "  at dev.ecom.flink.A.c(A.java:3)",
            ]
        );
        let (first, rest) = excerpt("java.lang.IllegalStateException: poison\n\tat a.B.c(B.java:9)\n");
        assert_eq!(
            (first.as_str(), rest),
            ("java.lang.IllegalStateException: poison", vec!["  at a.B.c(B.java:9)".into()])
        );
    }

    #[test]
    fn a_restart_is_one_line_with_its_task_and_innermost_cause() {
        let entry = serde_json::json!({"exceptionName": "java.io.IOException", "stacktrace": TRACE,
                                       "timestamp": 1, "taskName": "invalid-sink: Writer (1/1)"});
        let line = one_line(&entry);
        assert!(line.starts_with("org.apache.flink.runtime.JobException: Recovery is suppressed"), "{line}");
        assert!(line.contains("(task invalid-sink: Writer (1/1))"), "{line}");
        assert!(
            line.ends_with(
                "; Caused by: org.apache.kafka.common.errors.InvalidTopicException: Invalid topics: [ecom.bad#topic]"
            ),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn a_stopped_job_names_its_id_state_restarts_root_exception_and_report() {
        let (headline, root_causes) = excerpt(TRACE);
        let ended = JobEnded {
            job: "4acce366".into(),
            status: JobStatus { state: "FAILED".into(), restarts: 5 },
            headline,
            root_causes,
            report: Some("/tmp/demo/flink-job-4acce366.exceptions.txt".into()),
        };
        let text = ended.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("Flink job 4acce366 is FAILED (5 restarts): org.apache.flink.runtime.JobException")
        );
        assert_eq!(
            lines[2],
            "    Caused by: org.apache.kafka.common.errors.InvalidTopicException: Invalid topics: [ecom.bad#topic]"
        );
        assert_eq!(
            lines.last(),
            Some(&"the job's failure cause and exception history in full: /tmp/demo/flink-job-4acce366.exceptions.txt")
        );
    }
}
