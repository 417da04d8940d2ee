//! The end-to-end test: the real `ecom demo` on the real stack (Kafka, the Flink job jar on
//! the Flink cluster, ecom serve with Redis, ecom sink into Elasticsearch and MongoDB) over
//! ~10k events with malformed ones mixed in. Needs dev/up and a built job jar (dev/test).
use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ecom_test_support::SecureMongo;

/// The stack's FerretDB, stopped and started again on its own files and port with
/// authentication and a TLS listener; on drop it is stopped and dev/up starts it as before.
struct StackMongoWithAuth(Option<SecureMongo>);

impl StackMongoWithAuth {
    fn start(password: &str, auth_db: &str) -> Self {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let home = std::path::PathBuf::from(std::env::var("ECOM_HOME").unwrap());
        let down = Command::new(root.join("dev/down")).arg("ferretdb").output().unwrap();
        assert!(down.status.success(), "dev/down ferretdb: {}", String::from_utf8_lossy(&down.stderr));
        let dir = home.join("ferretdb");
        Self(Some(SecureMongo::start_on(
            password,
            &dir.join("data"),
            "127.0.0.1:27017",
            auth_db,
            &dir.join("ferretdb.log"),
        )))
    }

    fn url(&self) -> String {
        self.0.as_ref().unwrap().url(None, true).expose().to_string()
    }
}

impl Drop for StackMongoWithAuth {
    fn drop(&mut self) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        // Stopped first: dev/up finds the port free and starts the stack's own again.
        drop(self.0.take());
        let up = Command::new(root.join("dev/up")).output().unwrap();
        if !up.status.success() {
            let why = format!("dev/up after the MongoDB with authentication: {}", String::from_utf8_lossy(&up.stderr));
            // A second panic while the test's own unwinds would abort and hide the first.
            if std::thread::panicking() {
                eprintln!("{why}");
            } else {
                panic!("{why}");
            }
        }
    }
}

/// The tests share the stack's topics and the one `ecom` job name: one demo at a time.
static ONE_DEMO: Mutex<()> = Mutex::new(());

/// Trains a small first model with the real commands, as dev/demo does.
fn train_model(models: &std::path::Path) {
    let data = models.with_extension("data");
    for args in [
        vec!["generate", "--events", "40000", "--seed", "3", "--quiet", "--out", data.to_str().unwrap()],
        vec!["train", "--quiet", "--from", data.to_str().unwrap(), "--models-dir", models.to_str().unwrap()],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ecom")).args(&args).output().unwrap();
        assert!(out.status.success(), "ecom {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
}

/// A demo run with 3% malformed records and 1% hostile ones (stuffed to the record limit, ~290 s
/// ahead of the clock, ~1 MB near Kafka's request limit).
fn run_demo(events: &str, seed: &str, start_ms: &str, models: &std::path::Path) -> Value {
    skip_unread_raw_records();
    let out = Command::new(env!("CARGO_BIN_EXE_ecom"))
        .args(["demo", "--json", "--events", events, "--malformed-rate", "0.03", "--hostile-rate", "0.01"])
        .args(["--seed", seed, "--start-ms", start_ms])
        .env("ECOM_MODELS_DIR", models)
        .output()
        .expect("running ecom demo");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ecom demo failed ({}):\n{stdout}\n{stderr}", out.status);
    summary(&stdout)
}

/// `ecom demo --json`'s summary.
fn summary(stdout: &str) -> Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("no JSON summary ({e}):\n{stdout}"))
}

/// The count at `pointer` (e.g. "/stores/es_events"), 0 when absent (an empty map has no key).
fn n(summary: &Value, pointer: &str) -> u64 {
    summary.pointer(pointer).map_or(0, |v| v.as_u64().unwrap_or_else(|| panic!("{pointer} is no count in {summary}")))
}

#[test]
#[ignore = "needs the local stack and the job jar (dev/test)"]
fn demo_reconciles_and_a_second_run_does_not_duplicate() {
    let _one = ONE_DEMO.lock().unwrap_or_else(|e| e.into_inner());
    assert!(std::env::var("FLINK_HOME").is_ok() && std::env::var("ECOM_JOB_JAR").is_ok(), "run through dev/test");
    let seed = format!("{}", std::process::id());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    // As the demo's default: the run's event time ends well before now (no future rejects).
    let start_ms = (now - 2 * 3_600_000 - 10_000 * 6_000).to_string();
    let models = std::env::temp_dir().join(format!("ecom-e2e-models-{seed}"));
    let _ = std::fs::remove_dir_all(&models);
    train_model(&models);
    // A candidate in shadow: the same model under another name, so its live quality must equal
    // the serving one's on the same sessions.
    let serving = std::fs::read_to_string(models.join("CURRENT")).unwrap().trim().to_string();
    let candidate = models.join(format!("{serving}-candidate"));
    std::fs::create_dir_all(&candidate).unwrap();
    for e in std::fs::read_dir(models.join(&serving)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), candidate.join(e.file_name())).unwrap();
    }
    let shadow = Command::new(env!("CARGO_BIN_EXE_ecom"))
        .args(["models", "shadow", &format!("{serving}-candidate"), "--models-dir", models.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(shadow.status.success(), "{}", String::from_utf8_lossy(&shadow.stderr));
    let first = run_demo("10000", &seed, &start_ms, &models);
    assert_eq!(first["reconciled"], true, "{first}");
    let (produced, enriched, invalid) = (n(&first, "/produced"), n(&first, "/enriched"), n(&first, "/invalid"));
    assert_eq!(produced, 10_000);
    assert_eq!(produced, enriched + invalid);
    assert!(invalid > 250 && invalid < 650, "3% of 10k malformed, ~0.3% near the request limit, got {invalid}");
    // Every hostile class went in; `reconciled: yes` says each record got its own label (the
    // stuffed and clock-ahead ones enriched, no on-time event LATE, the ~1 MB ones
    // OVERSIZE_RECORD) and nothing written grew past the record limit.
    for class in ["stuffed_to_limit", "clock_ahead", "near_max_request"] {
        assert!(n(&first, &format!("/hostile/{class}")) > 0, "no {class} records:\n{first}");
    }
    assert!(n(&first, "/invalid_by_reason/REJECT_REASON_OVERSIZE_RECORD") > 0, "{first}");
    assert_eq!(n(&first, "/stores/es_events"), enriched);
    assert_eq!(n(&first, "/stores/mongo_events"), enriched);
    // Every enriched event was scored or marked as the score fallback; sessions closed by event
    // time and per-minute metrics, each saying its ε, came out.
    let (scored, score_fallbacks) = (n(&first, "/scored"), n(&first, "/score_fallbacks"));
    assert_eq!(scored + score_fallbacks, enriched, "{first}");
    assert!(scored > enriched / 2, "most events should be scored:\n{first}");
    assert!(n(&first, "/sessions") > 100, "{first}");
    // Live model quality: the serving model's score at each closed session's decision point
    // against its outcome, next to its offline test set.
    let live = &first["live_quality"][0];
    assert!(n(live, "/sessions") > 100 && n(live, "/purchases") > 0, "{first}");
    let (auc, offline) = (live["roc_auc"].as_f64().unwrap(), live["offline_roc_auc"].as_f64().unwrap());
    assert!(auc > 0.6 && offline > 0.6, "live ROC AUC {auc}, offline {offline}:\n{first}");
    // Its calibration: the buyers it predicted, and how far off the observed ones are.
    assert!(live["expected_purchases"].as_f64().unwrap() > 0.0 && live["calibration_z"].is_f64(), "{first}");
    // The job's quality windows (each checked against the run's sessions by the demo, or it
    // would not reconcile), the shadow version's among them, scored at the same decision points.
    assert!(n(&first, "/quality_windows") > 1, "{first}");
    let in_shadow = first["live_quality"].as_array().unwrap().iter().find(|q| q["shadow"] == true);
    let in_shadow = in_shadow.unwrap_or_else(|| panic!("no shadow quality:\n{first}"));
    assert_eq!(in_shadow["model_version"], format!("{serving}-candidate"));
    // The shadow's score comes with every answer, so it is judged on the very same sessions, and
    // the same model scores them alike (up to float rounding, which may move a score across a
    // 1/1,000 bin of the ranking measures).
    for k in ["/sessions", "/purchases"] {
        assert_eq!(n(in_shadow, k), n(live, k), "{first}");
    }
    assert!((in_shadow["roc_auc"].as_f64().unwrap() - auc).abs() < 0.01, "{first}");
    // Returning users' events carry their earlier sessions (the job's user step).
    assert!(n(&first, "/with_user_history") > 0, "{first}");
    let metrics = n(&first, "/metrics");
    assert!(metrics > 100, "{first}");
    assert_eq!(n(&first, "/metrics_epsilon/2"), metrics, "every metrics record spends ε 2:\n{first}");
    assert!(
        n(&first, "/invalid_by_reason/REJECT_REASON_LATE") > 0
            && n(&first, "/invalid_by_reason/REJECT_REASON_DUPLICATE") > 0,
        "{first}"
    );

    // Same seed and start again: the generator's output is deterministic, so the first 2,000
    // records repeat the first run's (same event ids) and the stores must not grow.
    let second = run_demo("2000", &seed, &start_ms, &models);
    assert_eq!(second["reconciled"], true, "{second}");
    let totals = |s: &Value| (n(s, "/stores/es_events_total"), n(s, "/stores/mongo_events_total"));
    assert_eq!(totals(&second), totals(&first), "a replay duplicated documents");
    let _ = std::fs::remove_dir_all(models.with_extension("data"));
    let _ = std::fs::remove_dir_all(&models);

    // Training from the sessions the job stored learns from the rows training from the stored
    // events gives, but where the job's decision point or event order is not the truth's
    // (docs/TRAINING.md, The job's sessions against the events): 94-98 % of the learnt-from
    // rows' ecom-core features were identical in demos of 20k events. The two neighbour
    // features are left out: they count every session that ended before, and only the events
    // hold each run's last half hour, which the job never closed.
    let (from_events, from_sessions) = (training_rows("events"), training_rows("sessions"));
    let learnt: Vec<&String> =
        from_sessions.keys().filter(|id| from_events.get(*id).is_some_and(|(split, _)| split != "none")).collect();
    assert!(learnt.len() > 200, "{} learnt-from sessions in both", learnt.len());
    let core = |row: &Vec<String>| row[..row.len() - 2].to_vec();
    let same = learnt.iter().filter(|id| core(&from_events[**id].1) == core(&from_sessions[**id].1)).count();
    eprintln!("training rows: {same} of {} learnt-from sessions in both sources identical", learnt.len());
    assert!(same * 100 >= learnt.len() * 90, "only {same} of {} rows agree", learnt.len());
}

/// `ecom train --from mongodb --mongo-read <read>`'s rows by session id: the split, then the
/// label, the oracles and every feature, the two neighbour features last.
fn training_rows(read: &str) -> std::collections::HashMap<String, (String, Vec<String>)> {
    let dir = std::env::temp_dir().join(format!("ecom-e2e-rows-{}-{read}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let csv = dir.with_extension("csv");
    let out = Command::new(env!("CARGO_BIN_EXE_ecom"))
        .args(["train", "--quiet", "--from", "mongodb", "--mongo-read", read, "--threads", "1"])
        .args(["--forest-trees", "5", "--mlp-epochs", "1", "--version-name", "v1", "--models-dir"])
        .arg(&dir)
        .arg("--rows-out")
        .arg(&csv)
        .output()
        .unwrap();
    assert!(out.status.success(), "ecom train --mongo-read {read}:\n{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&csv).unwrap();
    let _ = (std::fs::remove_dir_all(&dir), std::fs::remove_file(&csv));
    text.lines()
        .skip(1)
        .map(|l| {
            let cols: Vec<String> = l.split(',').map(str::to_string).collect();
            (cols[0].clone(), (cols[2].clone(), cols[3..].to_vec()))
        })
        .collect()
}

fn flink_get(path: &str) -> Value {
    let rest = std::env::var("FLINK_REST").unwrap_or_else(|_| "http://127.0.0.1:8081".into());
    let out = Command::new("curl").args(["-fsS", "-m", "5", &format!("{rest}{path}")]).output().expect("running curl");
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// Polls `probe` every 200 ms until it gives a value or `secs` pass.
fn wait_for<T>(what: &str, secs: u64, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up after {secs} s waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `ecom demo` running in the background on a fresh small model, its output going to files (a
/// full pipe would stall it while the test waits on Flink), and the Flink job it submitted.
struct BackgroundDemo {
    child: std::process::Child,
    models: std::path::PathBuf,
    stdout_path: std::path::PathBuf,
    stderr_path: std::path::PathBuf,
    job: String,
}

impl BackgroundDemo {
    /// Trains a model under `name`, starts `ecom demo --events N` with `args` after a start
    /// time that ends two hours before now, and waits until its new job runs.
    fn start(name: &str, seed: u32, events: i64, args: &[&str]) -> Self {
        let seed = format!("{}", std::process::id() + seed);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        let start_ms = (now - 2 * 3_600_000 - events * 6_000).to_string();
        let models = std::env::temp_dir().join(format!("ecom-e2e-{name}-models-{seed}"));
        let _ = std::fs::remove_dir_all(&models);
        train_model(&models);
        skip_unread_raw_records();
        let before: Vec<String> = flink_get("/jobs/overview")["jobs"]
            .as_array()
            .map(|a| a.iter().filter_map(|j| j["jid"].as_str().map(String::from)).collect())
            .unwrap_or_default();
        let (stdout_path, stderr_path) = (models.with_extension("stdout"), models.with_extension("stderr"));
        // Its own process group, so a failed test can stop it with its serve and sink.
        let child = Command::new(env!("CARGO_BIN_EXE_ecom"))
            .process_group(0)
            .args(["demo", "--events", &events.to_string(), "--seed", &seed, "--start-ms", &start_ms])
            .args(args)
            .env("ECOM_MODELS_DIR", &models)
            .stdout(Stdio::from(std::fs::File::create(&stdout_path).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(&stderr_path).unwrap()))
            .spawn()
            .expect("starting ecom demo");
        let job = wait_for("the demo's Flink job to run", 180, || {
            flink_get("/jobs/overview")["jobs"].as_array()?.iter().find_map(|j| {
                let id = j["jid"].as_str()?;
                (j["name"] == "ecom" && j["state"] == "RUNNING" && !before.iter().any(|b| b == id))
                    .then(|| id.to_string())
            })
        });
        Self { child, models, stdout_path, stderr_path, job }
    }

    /// The demo's summary (stdout) and log (stderr) so far.
    fn output(&self) -> (String, String) {
        (
            std::fs::read_to_string(&self.stdout_path).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr_path).unwrap_or_default(),
        )
    }

    /// Removes the model, its data and the output files.
    fn clean_up(mut self) {
        let _ = self.child.wait();
        for p in [&self.stdout_path, &self.stderr_path] {
            let _ = std::fs::remove_file(p);
        }
        let _ = std::fs::remove_dir_all(self.models.with_extension("data"));
        let _ = std::fs::remove_dir_all(&self.models);
    }
}

/// A test that fails leaves no demo behind: it would hold serve's and the sink's ports and
/// cancel the next test's job as one "left running".
impl Drop for BackgroundDemo {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill").args(["-KILL", &format!("-{}", self.child.id())]).status();
            let _ = self.child.wait();
        }
    }
}

#[test]
#[ignore = "needs the local stack and the job jar (dev/test)"]
fn a_task_manager_crash_loses_and_duplicates_nothing() {
    let _one = ONE_DEMO.lock().unwrap_or_else(|e| e.into_inner());
    assert!(std::env::var("FLINK_HOME").is_ok() && std::env::var("ECOM_JOB_JAR").is_ok(), "run through dev/test");
    // This run's job, once records flow through it and a checkpoint has committed some of them.
    let mut demo = BackgroundDemo::start("crash", 1, 20_000, &["--json", "--malformed-rate", "0.03"]);
    let job = demo.job.clone();
    // Crash once a checkpoint has committed records of this run: the source commits its
    // offsets to Kafka when a checkpoint completes, and Kafka says so at once (Flink's REST
    // metrics lag up to 10 s, by which time a 20k backlog may be all read).
    let before = raw_committed();
    wait_for("a checkpoint that committed 1,000 records", 180, || (raw_committed() >= before + 1_000).then_some(()));
    let at_crash = raw_committed() - before;
    assert!(at_crash < 18_000, "the job had nearly finished ({at_crash} records committed) before the crash");

    let crash = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../dev/crash-taskmanager"))
        .output()
        .expect("running dev/crash-taskmanager");
    assert!(crash.status.success(), "dev/crash-taskmanager: {}", String::from_utf8_lossy(&crash.stderr));

    let status = demo.child.wait().expect("waiting for ecom demo");
    let (stdout, log) = demo.output();
    assert!(status.success(), "ecom demo failed ({status}):\n{stdout}\n{log}");
    let summary = summary(&stdout);
    assert_eq!(summary["reconciled"], true, "{summary}\n{log}");
    let (produced, enriched, invalid) = (n(&summary, "/produced"), n(&summary, "/enriched"), n(&summary, "/invalid"));
    assert_eq!(produced, 20_000);
    assert_eq!(produced, enriched + invalid, "{summary}");
    assert_eq!(n(&summary, "/duplicates"), 0, "{summary}");
    assert_eq!(n(&summary, "/stores/es_events"), enriched);
    assert_eq!(n(&summary, "/stores/mongo_events"), enriched);
    // The job did fail over: Flink recorded losing the TaskManager.
    let history =
        flink_get(&format!("/jobs/{job}/exceptions"))["exceptionHistory"]["entries"].as_array().map_or(0, Vec::len);
    assert!(
        history > 0,
        "no failure in the job's exception history: the crash did not hit the job ({at_crash} records committed at the crash)"
    );
    // ...and the demo says so: a restart is no failure of the demo, but it shows.
    assert!(n(&summary, "/job/restarts") >= 1, "{summary}\n{log}");
    assert!(log.contains(&format!("warning: Flink job {job} restarts after a failure")), "{log}");
    eprintln!("crashed the TaskManager at {at_crash} records committed; after the restart: {summary}");
    demo.clean_up();
}

fn flink_cancel(job: &str) {
    let rest = std::env::var("FLINK_REST").unwrap_or_else(|_| "http://127.0.0.1:8081".into());
    let out = Command::new("curl")
        .args(["-fsS", "-m", "5", "-X", "PATCH", &format!("{rest}/jobs/{job}?mode=cancel")])
        .output()
        .expect("running curl");
    assert!(out.status.success(), "cancelling {job}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The job's consumer group (its default --group-id): a consumer of ecom.events.raw.
fn job_group_consumer() -> rdkafka::consumer::BaseConsumer {
    let brokers = std::env::var("KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into());
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "ecom-flink")
        .set("enable.auto.commit", "false")
        .create()
        .expect("creating a Kafka consumer")
}

/// ecom.events.raw's partitions with `offset` (Kafka's ends when `None`).
fn raw_partitions(consumer: &rdkafka::consumer::BaseConsumer) -> rdkafka::TopicPartitionList {
    use rdkafka::consumer::Consumer;
    let md = consumer.fetch_metadata(Some("ecom.events.raw"), Duration::from_secs(10)).expect("Kafka metadata");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in md.topics().iter().flat_map(|t| t.partitions()) {
        let (_, high) = consumer.fetch_watermarks("ecom.events.raw", p.id(), Duration::from_secs(10)).unwrap();
        tpl.add_partition_offset("ecom.events.raw", p.id(), rdkafka::Offset::Offset(high)).unwrap();
    }
    tpl
}

/// The records of ecom.events.raw the job's checkpoints have committed, over all partitions.
fn raw_committed() -> i64 {
    use rdkafka::consumer::Consumer;
    let consumer = job_group_consumer();
    let committed =
        consumer.committed_offsets(raw_partitions(&consumer), Duration::from_secs(10)).expect("committed offsets");
    committed.elements().iter().filter_map(|e| e.offset().to_raw()).filter(|o| *o > 0).sum()
}

/// The job's source commits its offsets on checkpoints only, so the records a cancelled job never
/// read would be the next job's first input (moving its watermark past the next demo's events).
/// Moves the job's consumer group (its default --group-id) to the end of ecom.events.raw.
/// Every demo's job starts after the records already in ecom.events.raw: left unread by an
/// earlier job (cancelled before its offsets were committed, or never run), records with later
/// event times than the next run's would make that run's events late.
fn skip_unread_raw_records() {
    use rdkafka::consumer::{CommitMode, Consumer};
    // A job of an earlier test still running (one that failed) could commit older offsets at
    // its next checkpoint.
    for j in flink_get("/jobs/overview")["jobs"].as_array().cloned().unwrap_or_default() {
        if j["name"] == "ecom"
            && matches!(j["state"].as_str(), Some("RUNNING" | "CREATED" | "RESTARTING" | "INITIALIZING"))
        {
            let id = j["jid"].as_str().unwrap_or_default().to_string();
            flink_cancel(&id);
            wait_for("a leftover job to stop", 60, || {
                matches!(flink_get(&format!("/jobs/{id}"))["state"].as_str(), Some("CANCELED" | "FAILED" | "FINISHED"))
                    .then_some(())
            });
        }
    }
    let consumer = job_group_consumer();
    consumer.commit(&raw_partitions(&consumer), CommitMode::Sync).expect("committing ecom-flink's offsets");
}

#[test]
#[ignore = "needs the local stack and the job jar (dev/test)"]
fn a_job_stopped_under_the_demo_ends_it_at_once() {
    let _one = ONE_DEMO.lock().unwrap_or_else(|e| e.into_inner());
    assert!(std::env::var("FLINK_HOME").is_ok() && std::env::var("ECOM_JOB_JAR").is_ok(), "run through dev/test");
    // A checkpoint interval of a minute keeps the outputs uncommitted (the demo reads
    // read_committed), so the cancel lands while the demo waits on them.
    let mut demo = BackgroundDemo::start("cancel", 2, 3_000, &["--", "--checkpoint-interval-ms", "60000"]);
    let job = demo.job.clone();
    wait_for("the demo to wait on the job's outputs", 120, || {
        demo.output().1.contains("==> waiting for every raw record").then_some(())
    });
    flink_cancel(&job);
    let cancelled = Instant::now();
    let status = loop {
        if let Some(s) = demo.child.try_wait().expect("waiting for ecom demo") {
            break s;
        }
        if cancelled.elapsed() > Duration::from_secs(30) {
            skip_unread_raw_records();
            // Dropping `demo` on the panic stops it with its serve and sink.
            panic!("ecom demo still ran 30 s after its job was cancelled:\n{}", demo.output().1);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    skip_unread_raw_records();
    let (summary, log) = demo.output();
    assert!(!status.success(), "ecom demo succeeded though its job was cancelled:\n{summary}\n{log}");
    assert!(!summary.contains("reconciled"), "{summary}\n{log}");
    assert!(
        log.contains(&format!("Flink job {job} is CANCELED")),
        "the error does not name the job and its state:\n{log}"
    );
    for child in ["serve", "sink"] {
        assert!(log.contains(&format!("stopped ecom {child}")), "ecom {child} was not stopped:\n{log}");
    }
    eprintln!("ecom demo ended {:.1} s after its job was cancelled", cancelled.elapsed().as_secs_f64());
    demo.clean_up();
}

#[test]
#[ignore = "needs the local stack and the job jar (dev/test)"]
fn a_demo_with_credentials_leaves_no_client_ip_or_secret_behind() {
    let _one = ONE_DEMO.lock().unwrap_or_else(|e| e.into_inner());
    assert!(std::env::var("ECOM_HOME").is_ok() && std::env::var("ECOM_JOB_JAR").is_ok(), "run through dev/test");
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let tag = format!("{}-{nanos}", std::process::id());
    // A Redis user with a password the server checks (the default user keeps none, for the
    // other tests); the stack's FerretDB restarted with authentication and a TLS listener on its
    // own files (Elasticsearch and MongoDB keep the same history, which the demo's totals
    // compare; the other e2e tests wait on ONE_DEMO, and dev/up restarts it plain after);
    // Elasticsearch here has no security module and ignores its credentials, which still travel
    // in every request the sink, the demo and the audit make.
    let redis_pw = format!("redis-pw-{tag}");
    let es_pw = format!("es-pw-{tag}");
    // The user is made once, when its database does not exist yet: one password for every run.
    let mongo_pw = "mongo-pw-of-the-audit-test".to_string();
    let mut admin = redis::Client::open("redis://127.0.0.1:6379").unwrap().get_connection().unwrap();
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "ecom-audit", "on", "resetpass", &format!(">{redis_pw}"), "~*", "&*", "+@all"][..])
        .query(&mut admin)
        .unwrap();
    let mongo = StackMongoWithAuth::start(&mongo_pw, "ecom_audit");
    let creds = [
        ("REDIS_URL", "redis://ecom-audit@127.0.0.1:6379".to_string()),
        ("REDIS_PASSWORD", redis_pw.clone()),
        ("ES_URL", "http://elastic@127.0.0.1:9200".to_string()),
        ("ES_PASSWORD", es_pw.clone()),
        ("MONGODB_URL", mongo.url()),
        ("MONGODB_PASSWORD", mongo_pw.clone()),
    ];
    let models = std::env::temp_dir().join(format!("ecom-audit-models-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&models);
    train_model(&models);
    skip_unread_raw_records();
    let out = Command::new(env!("CARGO_BIN_EXE_ecom"))
        .args(["demo", "--json", "--events", "3000", "--malformed-rate", "0.05", "--hostile-rate", "0.01"])
        .envs(creds.iter().map(|(k, v)| (*k, v.as_str())))
        .env("ECOM_MODELS_DIR", &models)
        .output()
        .expect("running ecom demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let summary = summary(&stdout);
    assert_eq!(summary["reconciled"], true, "{summary}");
    // Guard answered through the password-protected user: with a wrong password every event
    // would fall back. Under CI's load serve's 250 ms Redis timeout still fires on part of them
    // (CI saw 489 and 1,418 of ~2,830 at 1,000 events/s), so a tenth answered is the proof.
    let enriched = n(&summary, "/enriched");
    assert!(enriched - n(&summary, "/guard_fallbacks") >= enriched / 10, "{summary}");

    let audit = |extra: &[(&str, &str)]| {
        Command::new(env!("CARGO_BIN_EXE_ecom"))
            .arg("audit")
            .envs(creds.iter().map(|(k, v)| (*k, v.as_str())))
            .envs(extra.iter().copied())
            .output()
            .expect("running ecom audit")
    };
    let clean = audit(&[]);
    let report = String::from_utf8_lossy(&clean.stdout);
    assert!(clean.status.success(), "{report}\n{}", String::from_utf8_lossy(&clean.stderr));
    assert!(report.contains("found: nothing"), "{report}");
    assert!(String::from_utf8_lossy(&clean.stderr).contains("client IPs"), "{report}");

    // The audit finds what it looks for: a log line holding the Redis password is reported.
    let planted = std::path::Path::new(&std::env::var("ECOM_HOME").unwrap()).join(format!("audit-probe-{tag}.log"));
    std::fs::write(&planted, format!("connecting with {redis_pw}\n")).unwrap();
    let caught = audit(&[]);
    std::fs::remove_file(&planted).unwrap();
    let report = String::from_utf8_lossy(&caught.stdout);
    assert!(!caught.status.success() && report.contains("the Redis password"), "{report}");
    // The sink wrote to the password-checked MongoDB: the demo reconciled from it above.
    drop(mongo);
    let _: () = redis::cmd("ACL").arg(&["DELUSER", "ecom-audit"][..]).query(&mut admin).unwrap();
    let _ = std::fs::remove_dir_all(models.with_extension("data"));
    let _ = std::fs::remove_dir_all(&models);
}
