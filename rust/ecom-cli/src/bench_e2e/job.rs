//! One design's run: the job submitted with its options (and serve, sink, a second TaskManager
//! when it scales out), the parts produced into it, its outputs read and the stores counted.
use super::*;

/// Produces the parts into the running job, reads its outputs, probes Elasticsearch and
/// counts the stores.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_job(
    a: &E2eBench,
    parts: &[Part],
    scratch: &Scratch,
    es: &crate::stack::EsHttp,
    mongo: &mongodb::Client,
    flink: &crate::flink::Flink<'_>,
    http: &reqwest::Client,
    job: &str,
    procs: &Procs,
    kills: &[(u64, &'static str, u32)],
    deadline: Instant,
) -> anyhow::Result<Report> {
    let Scratch { names, stem, mongo_db } = scratch;
    let mut watch = flink.watch(http, job, &std::env::temp_dir());
    let total: u64 = parts.iter().map(|p| p.records).sum();
    let mut gen = GenerateArgs::with(total, 1, 0.02, None, &a.cluster.brokers);
    gen.topic = names[0].clone();
    gen.catalog_topic = names[7].clone();
    gen.truth_topic = names[8].clone();
    gen.quiet = true;
    // ~1 s of event time per record at most: the whole run lies in the past.
    gen.start_ms = Some(now_ms() - 2 * 3_600_000 - total as i64 * 1_000);
    gen.rate_steps = parts.iter().filter_map(|p| p.rate.map(|r| (r, p.records))).collect();
    // Ends the generator, the reader and the CPU sampler, on every way out.
    let stop = crate::bench_job::StopOnDrop(Arc::new(AtomicBool::new(false)));
    gen.stop = Some(stop.0.clone());

    // CPU of every process, sampled every 250 ms: each part's share is cut out afterwards by
    // its records' produce times.
    let sampler = {
        let (procs, stop) = (procs.clone(), stop.0.clone());
        tokio::spawn(async move {
            let mut series: Vec<(i64, Vec<(&'static str, f64)>)> = Vec::new();
            loop {
                let mut now = procs.cpu_seconds();
                // A process killed on purpose reads 0 from then on: it keeps what it had used.
                if let Some((_, last)) = series.last() {
                    for (n, l) in now.iter_mut().zip(last) {
                        n.1 = n.1.max(l.1);
                    }
                }
                series.push((now_ms(), now));
                if stop.load(Ordering::Relaxed) {
                    break series;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let (probe_tx, probe_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut reader = {
        let (brokers, topics, stop) = (a.cluster.brokers.clone(), [names[1].clone(), names[2].clone()], stop.0.clone());
        let every = a.probe_every.max(1);
        tokio::task::spawn_blocking(move || read_outputs(&brokers, &topics, total, every, probe_tx, &stop))
    };
    let probe = tokio::spawn(probe_search(es.clone(), format!("{stem}-events-*"), probe_rx));
    let mut producing = crate::bench_job::generate_on_a_thread(gen)?;
    // The kills, timed from here (the generator's start), each logged as it happens.
    let killer = {
        let kills = kills.to_vec();
        tokio::spawn(async move {
            let start = Instant::now();
            let mut done = Vec::new();
            for (after, name, pid) in kills {
                tokio::time::sleep_until((start + Duration::from_secs(after)).into()).await;
                let ok = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status()
                    .is_ok_and(|s| s.success());
                eprintln!(
                    "killed {name} (pid {pid}) {after} s after the first record{}",
                    if ok { "" } else { ": kill failed" }
                );
                done.push((name, after, ok));
            }
            done
        })
    };
    // Every record out of the job, or the first failure of the generator, the reader or the
    // job, or the deadline.
    let mut gen_summary = None;
    let outputs = loop {
        tokio::select! {
            o = &mut reader => break o.context("reading the job's outputs panicked")??,
            g = &mut producing, if gen_summary.is_none() => match g {
                Ok(Ok(summary)) => gen_summary = Some(summary),
                Ok(Err(e)) => return Err(e.context("producing")),
                Err(_) => bail!("the generator's thread ended without a result"),
            },
            ended = watch.ended() => return Err(ended.into()),
            _ = tokio::time::sleep_until(deadline.into()) => {
                bail!("timed out after {} s before every record came out of the job", a.timeout_secs)
            }
        }
    };
    let gen_summary = match gen_summary {
        Some(s) => s,
        None => producing.await.context("the generator's thread ended without a result")?.context("producing")?,
    };
    let first_produced = gen_summary.first_produced_ms;
    let probed = tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), probe)
        .await
        .map_err(|_| anyhow::anyhow!("timed out after {} s probing Elasticsearch", a.timeout_secs))?
        .context("the search probe panicked")?
        .context("probing Elasticsearch")?;

    // The stores: every enriched event and dead letter, counted in each.
    let (mut es_events, mut es_invalid, mut mongo_events, mut mongo_invalid) = (0, 0, 0, 0);
    let db = mongo.database(mongo_db);
    let counts_deadline =
        Instant::now() + Duration::from_secs(300).min(deadline.saturating_duration_since(Instant::now()));
    while Instant::now() < counts_deadline {
        let _ = es.client.post(format!("{}/{stem}-*/_refresh", es.base)).send().await;
        es_events = es_count(es, &format!("{stem}-events-*"), None).await?;
        es_invalid = es_count(es, &format!("{stem}-invalid-*"), None).await?;
        mongo_events =
            db.collection::<mongodb::bson::Document>("events").count_documents(mongodb::bson::doc! {}).await?;
        mongo_invalid =
            db.collection::<mongodb::bson::Document>("invalid").count_documents(mongodb::bson::doc! {}).await?;
        if es_events >= outputs.distinct
            && mongo_events >= outputs.distinct
            && es_invalid >= outputs.invalid
            && mongo_invalid >= outputs.invalid
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(stop);
    let killed = if killer.is_finished() {
        killer.await.context("the killer panicked")?
    } else {
        killer.abort();
        bail!("the run ended before every kill of --kill-after-secs was made: give it a longer ladder");
    };
    if let Some((name, _, _)) = killed.iter().find(|k| !k.2) {
        bail!("could not kill {name}");
    }
    let cpu_series = sampler.await.context("the CPU sampler panicked")?;
    let peak_rss_mb = procs.peak_rss_mb();
    let job_status = watch.finish().await;
    let sink_deadletters = crate::demo::end_offsets(&a.cluster.brokers, &[names[6].as_str()])?.values().sum::<i64>();

    // The burst: the events the sink wrote from its start to the last write, over that span (a
    // backlog left by the ladder is written in it too: what the stores took at full speed).
    let burst_from_ms =
        first_produced + (parts.iter().filter_map(|p| Some(p.records as f64 / p.rate?)).sum::<f64>() * 1000.0) as i64;
    let burst = if parts.last().is_some_and(|p| p.rate.is_none()) {
        let last: Value = es
            .client
            .post(format!("{}/{stem}-events-*/_search", es.base))
            .json(&json!({"size": 0, "aggs": {"last": {"max": {"field": "indexed_at"}}}}))
            .send()
            .await?
            .json()
            .await?;
        let written = es_count(es, &format!("{stem}-events-*"), Some(burst_from_ms)).await?;
        last["aggregations"]["last"]["value"].as_f64().map(|last| (written, last as i64 - burst_from_ms))
    } else {
        None
    };

    // Events that got a serve method's declared fallback: a run whose calls failed is fast for
    // the wrong reason.
    let mut fallbacks = [0; 3];
    for (n, field) in fallbacks.iter_mut().zip(FALLBACKS) {
        *n = es.count(&format!("{stem}-events-*"), json!({"term": {field: true}})).await?;
    }

    let mut samples = outputs.samples;
    let by_id: std::collections::HashMap<&str, usize> =
        outputs.sample_ids.iter().map(|(id, i)| (id.as_str(), *i)).collect();
    for (id, sink_write, searchable) in probed {
        if let Some(&i) = by_id.get(id.as_str()) {
            samples[i].spans[3] = Some(sink_write - samples[i].produced);
            samples[i].spans[4] = Some(searchable - samples[i].produced);
        }
    }
    // Each part's CPU: between the samples nearest its planned start and end after the first
    // record (the generator keeps to its schedule from there); the full-speed part's until the
    // stores held everything.
    let at = |t: i64| {
        let i = cpu_series.partition_point(|(when, _)| *when < t).min(cpu_series.len() - 1);
        &cpu_series[i].1
    };
    let mut from = 0.0;
    let mut cpu = Vec::new();
    for p in parts {
        let to = p.rate.map_or(f64::INFINITY, |r| from + p.records as f64 / r);
        let start = at(first_produced + (from * 1000.0) as i64);
        let end = if to.is_finite() {
            at(first_produced + (to * 1000.0) as i64)
        } else {
            &cpu_series[cpu_series.len() - 1].1
        };
        cpu.push(end.iter().zip(start).map(|((n, after), (_, before))| (*n, after - before)).collect());
        from = to;
    }
    Ok(Report {
        samples,
        first_produced,
        cpu,
        peak_rss_mb,
        produced: gen_summary.produced,
        enriched: outputs.enriched,
        distinct_enriched: outputs.distinct,
        invalid: outputs.invalid,
        es_events,
        es_invalid,
        mongo_events,
        mongo_invalid,
        sink_deadletters: sink_deadletters as u64,
        fallbacks,
        burst,
        job_restarts: job_status.restarts,
        killed: killed.into_iter().map(|(n, after, _)| (n, after)).collect(),
    })
}

/// Starts a second TaskManager of the stack's cluster as a child (one slot, its own metrics
/// ports) and returns its pid.
pub(super) fn start_second_taskmanager(children: &mut Children, log: &(std::fs::File, PathBuf)) -> anyhow::Result<u32> {
    let home = std::env::var_os("FLINK_HOME")
        .context("--scale-out starts a second TaskManager from $FLINK_HOME with $FLINK_CONF_DIR: source dev/env.sh")?;
    std::env::var_os("FLINK_CONF_DIR").context("--scale-out needs $FLINK_CONF_DIR (source dev/env.sh)")?;
    let mut tm = tokio::process::Command::new(PathBuf::from(home).join("bin/taskmanager.sh"));
    tm.arg("start-foreground")
        .args(["-D", "taskmanager.numberOfTaskSlots=1", "-D", "metrics.reporter.prom.port=9251-9259"])
        .stdout(Stdio::from(log.0.try_clone()?))
        .stderr(Stdio::from(log.0.try_clone()?))
        .kill_on_drop(true);
    let child = tm.spawn().context("starting a second TaskManager")?;
    let pid = child.id().context("the second TaskManager exited at once")?;
    children.0.push(("taskmanager 2".into(), child));
    eprintln!("second TaskManager started (pid {pid}, log {})", log.1.display());
    Ok(pid)
}

/// Waits until the cluster has `n` TaskManagers registered (60 s).
pub(super) async fn wait_taskmanagers(http: &reqwest::Client, rest: &str, n: usize) -> anyhow::Result<()> {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let v: Value = match http.get(format!("{rest}/taskmanagers")).send().await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => Value::Null,
        };
        let have = v["taskmanagers"].as_array().map_or(0, Vec::len);
        if have >= n {
            return Ok(());
        }
        if Instant::now() > until {
            bail!("the cluster at {rest} has {have} TaskManagers after 60 s, not {n}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
