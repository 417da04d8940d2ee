//! `ecom generate --out DIR`: the same records into files (the format: ecom_gen::out_dir).
use super::*;
use ecom_gen::out_dir;

pub(super) async fn to_files(
    a: &GenerateArgs,
    cfg: GenConfig,
    dir: &std::path::Path,
) -> anyhow::Result<GenerateSummary> {
    let mut out = out_dir::Writer::create(dir, !a.no_jsonl)?;
    let mut summary = GenerateSummary::default();
    let mut gen = Generator::new(cfg);
    for p in gen.catalog() {
        out.product(p)?;
    }
    let run = Run::new(a);
    let mut n = 0u64;
    while let Some(rec) = gen.next() {
        if run.over(n) {
            break;
        }
        let wait = run.pacer.delay(n, event_time(&rec));
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        summary.note_record(&rec);
        out.record(&rec)?;
        let t = gen.take_truth();
        out.truth(&t)?;
        summary.note_truth(&t);
        summary.produced += 1;
        run.bar.inc(1);
        n += 1;
    }
    let t = gen.take_truth();
    out.truth(&t)?;
    summary.note_truth(&t);
    out.finish()?;
    run.bar.finish_and_clear();
    summary.seconds = run.started.elapsed().as_secs_f64();
    summary.oracle_auc = ecom_gen::oracle_auc_of(summary.oracle_points.iter().copied());
    let s = serde_json::json!({
        "records": summary.produced,
        "malformed": summary.malformed_by_reason,
        "events_by_kind": summary.kinds,
        "sessions": summary.sessions,
        "truncated_sessions": summary.truncated_sessions,
        "purchasing_sessions": summary.purchasing_sessions,
        "anomalous_sessions": summary.anomalies,
        "oracle_auc": summary.oracle_auc,
        "seed": a.seed,
    });
    std::fs::write(dir.join(out_dir::SUMMARY_JSON), serde_json::to_string_pretty(&s)? + "\n")?;
    Ok(summary)
}
