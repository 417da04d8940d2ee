//! `ecom bench serve`: open-loop load at fixed rates against `ecom serve` over loopback, per
//! method, single and batched; p50/p99/p99.9 and the highest sustainable rate; plus the
//! in-process cost of score and score + SHAP per row. Rows, tokens and guard requests come from
//! generated sessions, so the model sees realistic inputs.
use anyhow::{bail, Context};
use ecom_proto::v1::guard_client::GuardClient;
use ecom_proto::v1::recommend_client::RecommendClient;
use ecom_proto::v1::score_client::ScoreClient;
use ecom_proto::v1::{
    DescribeRequest, GuardBatchRequest, GuardRequest, ScoreBatchRequest, ScoreRequest, SimilarRequest,
};
use futures::future::{BoxFuture, FutureExt};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// Arguments of `ecom bench serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeBench {
    /// Models directory (its current version is served, and measured in-process).
    #[arg(long, default_value = "models", env = "ECOM_MODELS_DIR")]
    models_dir: PathBuf,
    /// Redis for the guard.
    #[command(flatten)]
    redis: crate::stack::RedisArgs,
    /// Measure a running `ecom serve` at this URL instead of starting one (and its
    /// uncoalesced baseline) as child processes.
    #[arg(long)]
    target: Option<String>,
    /// Seconds per rate step.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Requests per batch for the *Batch methods.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// The largest rate tried (requests/s).
    #[arg(long, default_value_t = 40_000)]
    max_rate: u64,
    /// A step is sustainable when it delivers ≥ 95 % of its rate with no error and p99 ≤ this.
    #[arg(long, default_value_t = 10.0)]
    slo_p99_ms: f64,
    /// Only methods whose name contains this (e.g. `Score`).
    #[arg(long)]
    only: Option<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// One fixed-rate step.
#[derive(Debug, Clone, Copy)]
struct Step {
    rate: u64,
    achieved: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    errors: u64,
    shed: u64,
}

impl Step {
    fn sustainable(&self, slo_ms: f64) -> bool {
        self.errors == 0 && self.shed == 0 && self.achieved >= 0.95 * self.rate as f64 && self.p99_ms <= slo_ms
    }
}

/// Score.Predict with SHAP on a server that does not coalesce rows: the baseline.
const BASELINE: &str = "Score.Predict (uncoalesced)";
/// gRPC's own health check on the same server: no work behind it, so its latency is the floor
/// that loopback, HTTP/2, tonic and the scheduler set for every method on this machine.
const FLOOR: &str = "Health.Check (floor)";

/// Request number `i` of a step: true when it succeeded.
type Call = Arc<dyn Fn(u64) -> BoxFuture<'static, bool> + Send + Sync>;

/// Requests in flight at most; beyond it the step counts as not sustained (shed).
const MAX_IN_FLIGHT: usize = 2_048;

fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// Sends `call(i)` at `rate` per second for `secs`, open loop (requests are not held back by
/// slow answers), and measures each from its send.
async fn step(rate: u64, secs: f64, call: Call) -> Step {
    let total = (rate as f64 * secs) as u64;
    let sem = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(f64, bool)>();
    let started = Instant::now();
    let (mut sent, mut shed) = (0u64, 0u64);
    while sent + shed < total {
        let due = ((started.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        while sent + shed < due {
            let Ok(permit) = sem.clone().try_acquire_owned() else {
                shed += 1;
                continue;
            };
            let (call, tx, i) = (call.clone(), tx.clone(), sent);
            tokio::spawn(async move {
                let t = Instant::now();
                let ok = call(i).await;
                let _ = tx.send((t.elapsed().as_secs_f64() * 1e3, ok));
                drop(permit);
            });
            sent += 1;
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    drop(tx);
    let mut lat = Vec::with_capacity(sent as usize);
    let mut errors = 0;
    while let Some((ms, ok)) = rx.recv().await {
        lat.push(ms);
        errors += u64::from(!ok);
    }
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    Step {
        rate,
        achieved: lat.len() as f64 / elapsed,
        p50_ms: pct(&lat, 0.5),
        p99_ms: pct(&lat, 0.99),
        p999_ms: pct(&lat, 0.999),
        errors,
        shed,
    }
}

/// Rates tried: the 1-2-5 steps from `min` to `max`.
fn ladder(min: u64, max: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut base = 1;
    while base <= max {
        out.extend([base, 2 * base, 5 * base].into_iter().filter(|v| (min..=max).contains(v)));
        base *= 10;
    }
    out
}

/// Climbs the ladder until a step is not sustainable; returns every step run.
async fn climb(name: &str, a: &ServeBench, per: usize, call: Call) -> Vec<Step> {
    // Warm-up: connections, the model's first rows, Redis scripts.
    let _ = step(200, 0.5, call.clone()).await;
    let mut steps = Vec::new();
    let rates = if per == 1 { ladder(500, a.max_rate) } else { ladder(10, (a.max_rate * 10 / per as u64).max(10)) };
    for rate in rates {
        let s = step(rate, a.seconds, call.clone()).await;
        if !a.json {
            eprintln!(
                "  {name:<28} {rate:>7}/s -> {:>8.0}/s  p50 {:>7.3} ms  p99 {:>7.3} ms  p99.9 {:>7.3} ms  errors {}  shed {}",
                s.achieved, s.p50_ms, s.p99_ms, s.p999_ms, s.errors, s.shed
            );
        }
        let ok = s.sustainable(a.slo_p99_ms);
        steps.push(s);
        if !ok {
            break;
        }
    }
    steps
}

/// The JSON of one method: the numbers at `at` (or the highest step below it) and max_rps.
fn summary(steps: &[Step], at: u64, slo: f64, rows_per_request: usize) -> Value {
    let max = steps.iter().filter(|s| s.sustainable(slo)).map(|s| s.rate).max().unwrap_or(0);
    let pick = steps.iter().filter(|s| s.rate <= at).max_by_key(|s| s.rate).or(steps.first());
    let mut v = json!({"max_rps": max, "max_rows_per_s": max as usize * rows_per_request});
    if let Some(s) = pick {
        v["at_rps"] = json!(s.rate);
        v["p50_ms"] = json!(s.p50_ms);
        v["p99_ms"] = json!(s.p99_ms);
        v["p999_ms"] = json!(s.p999_ms);
    }
    v["steps"] = steps
        .iter()
        .map(|s| {
            json!({"rps": s.rate, "achieved": s.achieved.round(), "p50_ms": s.p50_ms, "p99_ms": s.p99_ms,
            "p999_ms": s.p999_ms, "errors": s.errors, "shed": s.shed})
        })
        .collect();
    v
}

/// Inputs drawn from generated sessions: full feature rows, session tokens, guard requests.
struct Inputs {
    rows: Vec<Vec<f64>>,
    tokens: Vec<Vec<String>>,
    guard: Vec<GuardRequest>,
}

fn inputs() -> anyhow::Result<Inputs> {
    let dir = std::env::temp_dir().join(format!("ecom-bench-serve-{}", std::process::id()));
    ecom_gen::write_training_files(&dir, ecom_gen::GenConfig { events: 60_000, seed: 42, ..Default::default() })
        .context("generating bench inputs")?;
    let (sessions, _) = ecom_train::data::load_dir(&dir, false)?;
    let rule = ecom_train::prepare::SplitRule::for_sessions(&sessions);
    let (table, _, _) = ecom_train::prepare::build(&sessions, ecom_core::lsh::DEFAULT_PARAMS, &rule)?;
    let c = table.cols();
    let rows = table.x.chunks(c).take(5_000).map(|r| r.iter().map(|v| f64::from(*v)).collect()).collect();
    let tokens =
        sessions.iter().filter(|s| !s.state.tokens.is_empty()).take(5_000).map(|s| s.state.tokens.clone()).collect();
    let g = ecom_gen::Generator::new(ecom_gen::GenConfig { events: 20_000, seed: 43, ..Default::default() });
    let mut guard = Vec::new();
    // The valid events, as the job sends them.
    for r in g {
        if let (ecom_gen::Payload::Event(e), None) = (&r.payload, r.expected_reject) {
            guard.push(ecom_serve::guard::request_for(e));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Inputs { rows, tokens, guard })
}

/// µs per row of Model::score in this process: one row at a time and in batches of `batch`.
fn in_process(models: &std::path::Path, rows: &[Vec<f64>], batch: usize) -> anyhow::Result<Value> {
    let version = ecom_model::current(models).with_context(|| format!("no model in {}", models.display()))?;
    let m = ecom_serve::model::Model::load(&models.join(&version), 1)?;
    let flat: Vec<f32> = rows.iter().flatten().map(|v| *v as f32).collect();
    let c = m.names.len();
    let time = |shap: bool, per: usize| -> anyhow::Result<f64> {
        let n = (rows.len() / per).max(1) * per;
        let t = Instant::now();
        for chunk in flat[..n * c].chunks(per * c) {
            std::hint::black_box(m.score(chunk, shap)?);
        }
        Ok(t.elapsed().as_secs_f64() * 1e6 / n as f64)
    };
    Ok(json!({
        "model_version": version,
        "score_us_per_row": time(false, 1)?,
        "score_shap_us_per_row": time(true, 1)?,
        "batched_score_us_per_row": time(false, batch)?,
        "batched_score_shap_us_per_row": time(true, batch)?,
        "batch": batch,
    }))
}

/// An `ecom serve` child process on loopback ports, killed when dropped.
struct Child {
    url: String,
    _proc: tokio::process::Child,
}

/// Starts this binary's `ecom serve` on `grpc_port` (HTTP on `grpc_port - 32000`) with `extra`
/// flags, logging to a file under the temp dir.
fn spawn_serve(a: &ServeBench, grpc_port: u16, extra: &[&str]) -> anyhow::Result<Child> {
    let log = std::env::temp_dir().join(format!("ecom-bench-serve-{grpc_port}.log"));
    let out = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut cmd = tokio::process::Command::new(std::env::current_exe().context("finding this ecom binary")?);
    cmd.arg("serve");
    a.redis.hand_to(&mut cmd)?;
    let proc = cmd
        .args(["--grpc-addr", &format!("127.0.0.1:{grpc_port}")])
        .args(["--http-addr", &format!("127.0.0.1:{}", grpc_port - 32_000)])
        .arg("--models-dir")
        .arg(&a.models_dir)
        .args(["--max-batch", &a.batch.max(1000).to_string()])
        .args(extra)
        .stdout(out.try_clone()?)
        .stderr(out)
        .kill_on_drop(true)
        .spawn()
        .context("starting ecom serve")?;
    Ok(Child { url: format!("http://127.0.0.1:{grpc_port}"), _proc: proc })
}

/// A channel to `url`, retried for up to 30 s while the server starts.
async fn connect(url: &str) -> anyhow::Result<Channel> {
    let started = Instant::now();
    loop {
        match tonic::transport::Endpoint::from_shared(url.to_string())?.connect().await {
            Ok(c) => return Ok(c),
            Err(e) if started.elapsed() > Duration::from_secs(30) => {
                return Err(e).context(format!("connecting to {url}"))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

pub(crate) async fn run(a: ServeBench) -> anyhow::Result<()> {
    if ecom_model::current(&a.models_dir).is_none() {
        bail!("no model in {} (models/CURRENT): run `ecom train` first", a.models_dir.display());
    }
    eprintln!("ecom bench serve: preparing inputs from generated sessions");
    let inp = Arc::new(inputs()?);
    let local = a.target.is_none();
    let wants = |name: &str| a.only.as_deref().is_none_or(|o| name.contains(o));
    // Serve runs in its own process, as users run it; the baseline is a second one that scores
    // each Score.Predict request in its own XGBoost call.
    let (main, baseline) = if local {
        let base = if wants(BASELINE) { Some(spawn_serve(&a, 50_162, &["--no-coalesce"])?) } else { None };
        (Some(spawn_serve(&a, 50_161, &[])?), base)
    } else {
        (None, None)
    };
    let url = main.as_ref().map_or_else(|| a.target.clone().unwrap_or_default(), |c| c.url.clone());
    let channel = connect(&url).await?;
    let base_channel = match &baseline {
        Some(b) => Some(connect(&b.url).await?),
        None => None,
    };
    let info =
        ScoreClient::new(channel.clone()).describe(DescribeRequest {}).await.context("Score.Describe")?.into_inner();
    if info.feature_names.len() != inp.rows[0].len() {
        bail!("the served model has {} features, this ecom builds {}", info.feature_names.len(), inp.rows[0].len());
    }
    let hash = Arc::new(info.feature_schema_hash.clone());
    let mut out = serde_json::Map::new();
    out.insert("model_version".into(), json!(info.model_version));
    out.insert("target".into(), json!(if local { "ecom serve child process over loopback" } else { url.as_str() }));
    if !a.json {
        eprintln!(
            "ecom bench serve: model {}, {} s per step, SLO p99 ≤ {} ms",
            info.model_version, a.seconds, a.slo_p99_ms
        );
    }
    let batch = a.batch;
    // Requests as the job sends them.
    let score_req = {
        let (inp, hash) = (inp.clone(), hash.clone());
        move |i: u64, k: u32| ScoreRequest {
            features: inp.rows[i as usize % inp.rows.len()].clone(),
            feature_schema_hash: (*hash).clone(),
            top_k_reasons: k,
            session_id: format!("bench-{}", i / 16),
            ..Default::default()
        }
    };
    let score_req = Arc::new(score_req);

    let methods: Vec<(&str, u64, usize)> = vec![
        (FLOOR, 5_000, 1),
        ("Score.Predict", 5_000, 1),
        ("Score.Predict (no SHAP)", 5_000, 1),
        (BASELINE, 5_000, 1),
        ("Score.PredictBatch", 50, batch),
        ("Guard.Check", 5_000, 1),
        ("Guard.CheckBatch", 50, batch),
        ("Recommend.Similar", 5_000, 1),
    ];
    for (name, at, per) in methods {
        if !wants(name) {
            continue;
        }
        let ch: Channel = if name == BASELINE {
            match &base_channel {
                Some(c) => c.clone(),
                None => continue, // a --target run has no baseline server
            }
        } else {
            channel.clone()
        };
        let (inp, sr) = (inp.clone(), score_req.clone());
        let call: Call = match name {
            "Score.Predict" | "Score.Predict (no SHAP)" | BASELINE => {
                let k = if name == "Score.Predict (no SHAP)" { 0 } else { 3 };
                Arc::new(move |i| {
                    let (mut c, r) = (ScoreClient::new(ch.clone()), sr(i, k));
                    async move { c.predict(r).await.is_ok() }.boxed()
                })
            }
            "Score.PredictBatch" => Arc::new(move |i| {
                let mut c = ScoreClient::new(ch.clone());
                let r =
                    ScoreBatchRequest { requests: (0..batch as u64).map(|j| sr(i * batch as u64 + j, 3)).collect() };
                async move { c.predict_batch(r).await.is_ok() }.boxed()
            }),
            FLOOR => Arc::new(move |_| {
                let mut c = tonic_health::pb::health_client::HealthClient::new(ch.clone());
                let r = tonic_health::pb::HealthCheckRequest { service: String::new() };
                async move { c.check(r).await.is_ok() }.boxed()
            }),
            "Guard.Check" => Arc::new(move |i| {
                let mut c = GuardClient::new(ch.clone());
                let r = inp.guard[i as usize % inp.guard.len()].clone();
                async move { c.check(r).await.is_ok_and(|r| !r.get_ref().fallback) }.boxed()
            }),
            "Guard.CheckBatch" => Arc::new(move |i| {
                let mut c = GuardClient::new(ch.clone());
                let n = inp.guard.len();
                let r = GuardBatchRequest {
                    requests: (0..batch).map(|j| inp.guard[(i as usize * batch + j) % n].clone()).collect(),
                };
                async move { c.check_batch(r).await.is_ok_and(|r| r.get_ref().responses.iter().all(|x| !x.fallback)) }
                    .boxed()
            }),
            _ => Arc::new(move |i| {
                let mut c = RecommendClient::new(ch.clone());
                let r = SimilarRequest { tokens: inp.tokens[i as usize % inp.tokens.len()].clone(), k: 10 };
                async move { c.similar(r).await.is_ok() }.boxed()
            }),
        };
        let steps = climb(name, &a, per, call).await;
        out.insert(name.to_string(), summary(&steps, at, a.slo_p99_ms, per));
    }
    if local {
        drop((main, baseline));
        out.insert("in_process".into(), in_process(&a.models_dir, &inp.rows[..inp.rows.len().min(2_000)], batch)?);
    }
    if a.json {
        println!("{}", Value::Object(out));
    } else {
        println!("ecom bench serve (model {}):", info.model_version);
        println!(
            "  {:<28} {:>9} {:>9} {:>9} {:>9} {:>10}",
            "method", "at rps", "p50 ms", "p99 ms", "p99.9 ms", "max rps"
        );
        for (k, v) in &out {
            if v.get("max_rps").is_some() {
                println!(
                    "  {k:<28} {:>9} {:>9.3} {:>9.3} {:>9.3} {:>10}",
                    v["at_rps"],
                    v["p50_ms"].as_f64().unwrap_or(f64::NAN),
                    v["p99_ms"].as_f64().unwrap_or(f64::NAN),
                    v["p999_ms"].as_f64().unwrap_or(f64::NAN),
                    v["max_rps"]
                );
            }
        }
        if let Some(p) = out.get("in_process") {
            println!("  in-process µs per row: {p}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_and_percentiles() {
        assert_eq!(ladder(500, 20_000), vec![500, 1_000, 2_000, 5_000, 10_000, 20_000]);
        assert_eq!(ladder(10, 100), vec![10, 20, 50, 100]);
        let v: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!((pct(&v, 0.5), pct(&v, 0.99), pct(&v, 0.999)), (500.0, 990.0, 999.0));
    }
}
