//! `ecom bench dashboard`: how long the live page's refresh takes as the indices grow. It
//! copies the documents of the sink's indices (stem `--from`, default ecom) into scratch
//! indices (stem `--stem`, default ecom-bench) until they hold `--events` enriched events, with
//! sessions, window metrics and dead letters copied as many times, and then times a refresh the
//! way the page makes it (every panel's data call at once) on a dashboard over the original
//! indices and one over the copies, round by round side by side, with Elasticsearch's request
//! cache cleared before each refresh (a live index is refreshed every second, which empties it).
use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Arguments of `ecom bench dashboard`.
#[derive(Debug, clap::Args)]
pub(crate) struct DashBench {
    /// Enriched events the copies should hold (sessions, metrics and dead letters in the
    /// proportion of the originals).
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Index stem of the originals (the sink's: ecom-events-*, …).
    #[arg(long, default_value = "ecom")]
    from: String,
    /// Index stem of the copies (scratch; re-used when it already holds --events events).
    #[arg(long, default_value = "ecom-bench")]
    stem: String,
    /// Refreshes timed per dashboard and range, after one warm-up.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    #[command(flatten)]
    es: crate::stack::EsArgs,
    /// Redis of the Guard's live counts (the Redis panel is timed too).
    #[command(flatten)]
    redis: crate::stack::RedisArgs,
}

/// The sink's index template for an index prefix.
type Template = fn(&str) -> Value;

/// The sink's four kinds: (index part, its template).
const KINDS: [(&str, Template); 4] = [
    ("events", ecom_sink::doc::event_index_template),
    ("sessions", ecom_sink::doc::session_index_template),
    ("metrics", ecom_sink::doc::metrics_index_template),
    ("invalid", ecom_sink::doc::invalid_index_template),
];

pub(crate) async fn run(a: DashBench) -> anyhow::Result<()> {
    if a.stem == a.from || a.stem.is_empty() {
        bail!("--stem must name scratch indices other than --from's");
    }
    let crate::stack::EsHttp { client: http, base: es } = a.es.http()?;
    let base = count(&http, &es, &format!("{}-events-*", a.from)).await?;
    if base == 0 {
        bail!("{}-events-* holds no events: run dev/demo first (the copies are made from them)", a.from);
    }
    let have = count(&http, &es, &format!("{}-events-*", a.stem)).await?;
    if have >= a.events {
        eprintln!("{}-events-* already holds {have} events: timing those", a.stem);
    } else {
        load(&http, &es, &a, base).await?;
    }

    let mut dashboards = Vec::new();
    for stem in [&a.from, &a.stem] {
        let events = count(&http, &es, &format!("{stem}-events-*")).await?;
        let cfg = ecom_dash::DashConfig {
            es_url: a.es.url()?,
            index_stem: stem.clone(),
            redis_url: a.redis.url()?,
            query_timeout: Duration::from_secs(60),
            ..Default::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = ecom_dash::router(cfg)?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        dashboards.push((stem.clone(), events, url));
    }
    let panels: Vec<Value> = http.get(format!("{}/api/panels", dashboards[0].2)).send().await?.json().await?;
    let ids: Vec<String> = panels.iter().filter_map(|p| p["id"].as_str().map(str::to_string)).collect();

    println!("ecom bench dashboard: a refresh of all {} panels at once, request cache cleared first", ids.len());
    println!(
        "{:<20} {:>10} {:>6} {:>8} {:>8}  slowest panel (its p50)",
        "indices", "events", "range", "p50 ms", "max ms"
    );
    for range in ["24h", "all"] {
        // Round by round, one dashboard then the other, so both see the same machine.
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); dashboards.len()];
        let mut per_panel: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); ids.len()]; dashboards.len()];
        for round in 0..=a.rounds {
            for (d, (stem, _, url)) in dashboards.iter().enumerate() {
                let _ = http.post(format!("{es}/{stem}-*/_cache/clear?request=true")).send().await;
                let started = Instant::now();
                let calls = ids.iter().map(|id| {
                    let http = &http;
                    async move {
                        let t = Instant::now();
                        let r: Value =
                            http.get(format!("{url}/api/panels/{id}/data?range={range}")).send().await?.json().await?;
                        if let Some(e) = r["error"].as_str() {
                            bail!("panel {id} over {stem}: {e}");
                        }
                        Ok(t.elapsed().as_secs_f64() * 1e3)
                    }
                });
                let each = futures::future::try_join_all(calls).await?;
                let all = started.elapsed().as_secs_f64() * 1e3;
                if round > 0 {
                    times[d].push(all);
                    for (p, ms) in each.into_iter().enumerate() {
                        per_panel[d][p].push(ms);
                    }
                }
            }
        }
        for (d, (stem, events, _)) in dashboards.iter().enumerate() {
            let (slowest, slowest_ms) = per_panel[d]
                .iter()
                .map(|v| median(v))
                .enumerate()
                .max_by(|x, y| x.1.total_cmp(&y.1))
                .map(|(p, ms)| (ids[p].as_str(), ms))
                .unwrap_or(("-", 0.0));
            let max = times[d].iter().copied().fold(0.0, f64::max);
            println!(
                "{:<20} {:>10} {:>6} {:>8.0} {:>8.0}  {slowest} ({slowest_ms:.0} ms)",
                format!("{stem}-*"),
                events,
                range,
                median(&times[d]),
                max
            );
        }
    }
    Ok(())
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(0.0)
}

async fn count(http: &reqwest::Client, es: &str, index: &str) -> anyhow::Result<u64> {
    let _ = http.post(format!("{es}/{index}/_refresh?ignore_unavailable=true&allow_no_indices=true")).send().await;
    let r: Value = http
        .get(format!("{es}/{index}/_count?ignore_unavailable=true&allow_no_indices=true"))
        .send()
        .await
        .with_context(|| format!("Elasticsearch at {es} (ES_URL)"))?
        .json()
        .await?;
    Ok(r["count"].as_u64().unwrap_or(0))
}

/// Copies each kind's documents `ceil(events / base)` times (events stop at `--events`) into
/// `<stem>-<kind>-<same day>` under the sink's own templates, ids suffixed `~<copy>`.
async fn load(http: &reqwest::Client, es: &str, a: &DashBench, base: u64) -> anyhow::Result<()> {
    let copies = a.events.div_ceil(base);
    eprintln!("copying {base} events (and their sessions, metrics, dead letters) {copies} times into {}-*", a.stem);
    let started = Instant::now();
    for (kind, template) in KINDS {
        let prefix = format!("{}-{kind}", a.stem);
        let r = http.put(format!("{es}/_index_template/{prefix}")).json(&template(&prefix)).send().await?;
        if !r.status().is_success() {
            bail!("installing the index template {prefix}: {}", r.text().await.unwrap_or_default());
        }
        let _ = http.delete(format!("{es}/{prefix}-*?ignore_unavailable=true&allow_no_indices=true")).send().await;
        let from = format!("{}-{kind}-", a.from);
        let limit = if kind == "events" { a.events } else { u64::MAX };
        let mut written = 0u64;
        'copies: for copy in 0..copies {
            let mut page: Value = http
                .post(format!("{es}/{from}*/_search?scroll=2m&ignore_unavailable=true&allow_no_indices=true"))
                .json(&json!({"size": 2_000, "sort": ["_doc"]}))
                .send()
                .await?
                .json()
                .await?;
            loop {
                let hits = page["hits"]["hits"].as_array().cloned().unwrap_or_default();
                if hits.is_empty() {
                    break;
                }
                let mut body = String::new();
                for h in &hits {
                    if written >= limit {
                        break;
                    }
                    let index = h["_index"].as_str().unwrap_or_default().replacen(&from, &format!("{prefix}-"), 1);
                    let id = format!("{}~{copy}", h["_id"].as_str().unwrap_or_default());
                    body.push_str(&json!({"index": {"_index": index, "_id": id}}).to_string());
                    body.push('\n');
                    body.push_str(&h["_source"].to_string());
                    body.push('\n');
                    written += 1;
                }
                if !body.is_empty() {
                    let r: Value = http
                        .post(format!("{es}/_bulk"))
                        .header("content-type", "application/x-ndjson")
                        .body(body)
                        .send()
                        .await?
                        .json()
                        .await?;
                    if r["errors"].as_bool() == Some(true) {
                        bail!("_bulk into {prefix}-*: {}", r["items"][0]);
                    }
                }
                if written >= limit {
                    break 'copies;
                }
                if kind == "events" && written % 100_000 < hits.len() as u64 {
                    eprintln!("  {written} events copied ({:.0} s)", started.elapsed().as_secs_f64());
                }
                let scroll = page["_scroll_id"].as_str().unwrap_or_default().to_string();
                page = http
                    .post(format!("{es}/_search/scroll"))
                    .json(&json!({"scroll": "2m", "scroll_id": scroll}))
                    .send()
                    .await?
                    .json()
                    .await?;
            }
        }
        let _ = http.post(format!("{es}/{prefix}-*/_refresh")).send().await;
        eprintln!("  {prefix}-*: {written} documents ({:.0} s)", started.elapsed().as_secs_f64());
    }
    Ok(())
}
