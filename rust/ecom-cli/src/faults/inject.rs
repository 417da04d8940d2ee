//! Breaking one part of the pipeline and bringing it back (`inject`), and the probes the fault
//! suite needs on the way: HTTP statuses, the dev/ scripts, the processes' peak memory.
use super::*;

/// Breaks the part `sc` names and brings it back; returns once it is back.
pub(super) async fn inject(
    f: &FaultsArgs,
    sc: Scenario,
    svc: &mut Services,
    http: &reqwest::Client,
    root: &Path,
    start_ms: i64,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let a = &f.demo;
    let outage = Duration::from_secs(f.outage_secs);
    let logs = svc.logs.clone();
    // Stops `service` for the outage and starts it again; with `health` (whose, URL), what that
    // /health answers 5 s into the outage, for the notes.
    let (serve_health, sink_health) = (a.serve_health(), a.sink_health());
    let stop_start = |service: &'static str, health: Option<(&'static str, String)>| {
        let logs = logs.clone();
        async move {
            stack_cmd(root, "dev/down", &[service], &logs).await?;
            let mut seen = None;
            let mut waited = Duration::ZERO;
            if let Some((whose, url)) = health {
                waited = Duration::from_secs(5).min(outage);
                tokio::time::sleep(waited).await;
                seen = Some(format!("{whose} /health with {service} down: {}", status_of(http, &url).await));
            }
            tokio::time::sleep(outage - waited).await;
            stack_cmd(root, "dev/up", &[], &logs).await?;
            anyhow::Ok(seen)
        }
    };
    match sc {
        Scenario::TaskmanagerKill => stack_cmd(root, "dev/crash-taskmanager", &[], &logs).await?,
        Scenario::SinkKill => {
            for i in 0..3 {
                if i > 0 {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
                svc.kill("sink").await;
                svc.start("sink", a)?;
            }
            svc.wait_healthy(http, "sink", a).await?;
        }
        Scenario::ServeKill => {
            svc.kill("serve").await;
            tokio::time::sleep(outage).await;
            svc.start("serve", a)?;
            svc.wait_healthy(http, "serve", a).await?;
        }
        Scenario::ElasticsearchStop => {
            notes.extend(stop_start("elasticsearch", Some(("sink", sink_health.clone()))).await?)
        }
        Scenario::MongodbStop => notes.extend(stop_start("ferretdb", None).await?),
        Scenario::RedisStop => notes.extend(stop_start("redis", Some(("serve", serve_health.clone()))).await?),
        Scenario::KafkaRestart => {
            stack_cmd(root, "dev/down", &["kafka"], &logs).await?;
            stack_cmd(root, "dev/up", &[], &logs).await?;
        }
        Scenario::KafkaFreeze => {
            stack_cmd(root, "dev/freeze", &["kafka", &outage.as_secs().to_string()], &logs).await?
        }
        Scenario::SinkStartEsDown => {
            stack_cmd(root, "dev/down", &["elasticsearch"], &logs).await?;
            svc.kill("sink").await;
            svc.start("sink", a)?;
            tokio::time::sleep(Duration::from_secs(10)).await;
            let status = status_of(http, &sink_health).await;
            notes.push(format!("a sink started with Elasticsearch down answers /health {status}"));
            if !status.starts_with("503") {
                bail!("a sink started with Elasticsearch down answers /health {status}, not 503");
            }
            tokio::time::sleep(outage.saturating_sub(Duration::from_secs(10))).await;
            stack_cmd(root, "dev/up", &[], &logs).await?;
        }
        Scenario::IndexClosed => {
            let es = a.es.http()?;
            let indices = event_indices(&es, start_ms).await?;
            let list = indices.join(",");
            let (client, base) = (&es.client, &es.base);
            es_ok(client.post(format!("{base}/{list}/_close")).send().await, "closing the event indices").await?;
            notes.push(format!("{} event indices closed for {} s", indices.len(), outage.as_secs()));
            tokio::time::sleep(outage).await;
            es_ok(client.post(format!("{base}/{list}/_open")).send().await, "opening the event indices").await?;
            let health = format!("{base}/_cluster/health/{list}?wait_for_status=yellow&timeout=60s");
            es_ok(client.get(health).timeout(Duration::from_secs(70)).send().await, "waiting for the reopened indices")
                .await?;
        }
    }
    Ok(())
}

/// The daily event indices of event times from `from_ms` to now, each created when missing (the
/// sink would create a missing one instead of meeting a closed one).
async fn event_indices(es: &crate::stack::EsHttp, from_ms: i64) -> anyhow::Result<Vec<String>> {
    let day = 86_400_000;
    let mut names = Vec::new();
    for d in (from_ms / day)..=(now_ms() / day) {
        let name = ecom_sink::doc::daily_index("ecom-events", d * day);
        let r =
            es.client.put(format!("{}/{name}", es.base)).send().await.with_context(|| format!("creating {name}"))?;
        let body = r.text().await.unwrap_or_default();
        if !body.contains("acknowledged") && !body.contains("resource_already_exists_exception") {
            bail!("creating {name}: {body}");
        }
        names.push(name);
    }
    Ok(names)
}

async fn es_ok(r: reqwest::Result<reqwest::Response>, what: &str) -> anyhow::Result<()> {
    let r = r.with_context(|| what.to_string())?;
    if !r.status().is_success() {
        bail!("{what}: Elasticsearch answered {}: {}", r.status(), r.text().await.unwrap_or_default());
    }
    Ok(())
}

async fn status_of(http: &reqwest::Client, url: &str) -> String {
    match http.get(url).send().await {
        Ok(r) => {
            let body = r.status().as_u16().to_string() + " " + r.text().await.unwrap_or_default().trim();
            body.chars().take(90).collect::<String>() + if body.chars().count() > 90 { "…" } else { "" }
        }
        Err(e) => format!("no answer ({e})"),
    }
}

/// Runs a dev/ script, its output appended to `logs/stack.log`; an error carries its tail.
pub(super) async fn stack_cmd(root: &Path, script: &str, args: &[&str], logs: &Path) -> anyhow::Result<()> {
    let log_path = logs.join("stack.log");
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
    let status = tokio::process::Command::new(root.join(script))
        .args(args)
        .stdout(std::process::Stdio::from(log.try_clone()?))
        .stderr(std::process::Stdio::from(log))
        .status()
        .await
        .with_context(|| format!("running {script}"))?;
    if !status.success() {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(10).collect();
        bail!(
            "{script} {} failed ({status}):\n{}",
            args.join(" "),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(())
}

/// Samples the peak resident memory (VmHWM) of serve, sink and the Flink TaskManager every
/// second until the flag is set; a process started again keeps the larger peak.
pub(super) fn sample_memory(
    pids: Arc<Mutex<HashMap<String, u32>>>,
) -> (Arc<std::sync::atomic::AtomicBool>, Arc<Mutex<BTreeMap<String, f64>>>) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let peaks = Arc::new(Mutex::new(BTreeMap::new()));
    let (s, p) = (stop.clone(), peaks.clone());
    tokio::spawn(async move {
        while !s.load(std::sync::atomic::Ordering::Relaxed) {
            let mut now: Vec<(String, u32)> =
                pids.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(n, p)| (n.clone(), *p)).collect();
            if let Some((tm, _)) = crate::bench_job::cmdlines().find(|(_, c)| c.contains("TaskManagerRunner")) {
                now.push(("flink-taskmanager".into(), tm));
            }
            for (name, pid) in now {
                if let Some(mb) = crate::bench_job::vm_hwm_mb(pid) {
                    let mut peaks = p.lock().unwrap_or_else(|p| p.into_inner());
                    let e = peaks.entry(name).or_insert(0.0);
                    *e = f64::max(*e, mb);
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    (stop, peaks)
}
