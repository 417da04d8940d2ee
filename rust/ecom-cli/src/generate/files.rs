//! `ecom generate --out DIR`: the same records into files (the `--out DIR` format).
use super::*;

/// File names written by `--out DIR`.
pub(crate) const FILES: [&str; 7] =
    ["events.pb", "events.jsonl", "truth.jsonl", "catalog.jsonl", "summary.json", "truth.pb", "catalog.pb"];

pub(super) async fn to_files(
    a: &GenerateArgs,
    cfg: GenConfig,
    dir: &std::path::Path,
) -> anyhow::Result<GenerateSummary> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let open = |name: &str| -> anyhow::Result<std::io::BufWriter<std::fs::File>> {
        let path = dir.join(name);
        Ok(std::io::BufWriter::new(
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?,
        ))
    };
    let (mut pb, mut jsonl, mut truth, mut catalog) =
        (open(FILES[0])?, open(FILES[1])?, open(FILES[2])?, open(FILES[3])?);
    // The same truth and catalog as delimited protobuf, for `ecom train --from DIR`.
    let (mut truth_pb, mut catalog_pb) = (open(FILES[5])?, open(FILES[6])?);
    let mut summary = GenerateSummary::default();
    let mut gen = Generator::new(cfg);
    for p in gen.catalog() {
        writeln!(catalog, "{}", ecom_gen::json::product(p))?;
        ecom_gen::write_delimited(&mut catalog_pb, &p.encode_to_vec())?;
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
        let value = encode(&rec);
        summary.note_record(&rec);
        // events.pb: each record value with a varint length prefix (protobuf's delimited form).
        ecom_gen::write_delimited(&mut pb, &value)?;
        writeln!(jsonl, "{}", ecom_gen::json::record(&rec))?;
        let t = gen.take_truth();
        for r in &t {
            writeln!(truth, "{}", ecom_gen::json::truth(r))?;
            ecom_gen::write_delimited(&mut truth_pb, &r.encode_to_vec())?;
        }
        summary.note_truth(&t);
        summary.produced += 1;
        run.bar.inc(1);
        n += 1;
    }
    let t = gen.take_truth();
    for r in &t {
        writeln!(truth, "{}", ecom_gen::json::truth(r))?;
        ecom_gen::write_delimited(&mut truth_pb, &r.encode_to_vec())?;
    }
    summary.note_truth(&t);
    for w in [&mut pb, &mut jsonl, &mut truth, &mut catalog, &mut truth_pb, &mut catalog_pb] {
        w.flush()?;
    }
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
    std::fs::write(dir.join(FILES[4]), serde_json::to_string_pretty(&s)? + "\n")?;
    Ok(summary)
}
