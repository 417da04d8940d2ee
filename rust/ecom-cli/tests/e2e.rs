//! The end-to-end test: the real `ecom demo` on the real stack (Kafka, the Flink job jar on
//! the Flink cluster, ecom serve with Redis, ecom sink into Elasticsearch and MongoDB) over
//! ~10k events with malformed ones mixed in. Needs dev/up and a built job jar (dev/test).
use std::process::Command;

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

fn run_demo(events: &str, seed: &str, start_ms: &str, models: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ecom"))
        .args(["demo", "--events", events, "--malformed-rate", "0.03", "--seed", seed, "--start-ms", start_ms])
        .env("ECOM_MODELS_DIR", models)
        .output()
        .expect("running ecom demo");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ecom demo failed ({}):\n{stdout}\n{stderr}", out.status);
    stdout
}

fn field(summary: &str, label: &str) -> u64 {
    let line = summary.lines().find(|l| l.contains(label)).unwrap_or_else(|| panic!("no '{label}' in:\n{summary}"));
    line.split_whitespace().find_map(|w| w.parse::<u64>().ok()).unwrap_or_else(|| panic!("no number in {line}"))
}

/// The number right after `label` on its line, e.g. "score fallbacks 3" → 3.
fn summary_number_after(summary: &str, label: &str) -> u64 {
    let after = summary.split(label).nth(1).unwrap_or_else(|| panic!("no '{label}' in:\n{summary}"));
    after.split(|c: char| !c.is_ascii_digit()).find(|w| !w.is_empty()).unwrap().parse().unwrap()
}

fn total_in(summary: &str, label: &str) -> u64 {
    let line = summary.lines().find(|l| l.contains(label)).unwrap();
    let after = line.split("holds ").nth(1).unwrap();
    after.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
#[ignore = "needs the local stack and the job jar (dev/test)"]
fn demo_reconciles_and_a_second_run_does_not_duplicate() {
    assert!(std::env::var("FLINK_HOME").is_ok() && std::env::var("ECOM_JOB_JAR").is_ok(), "run through dev/test");
    let seed = format!("{}", std::process::id());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    // As the demo's default: the run's event time ends well before now (no future rejects).
    let start_ms = (now - 2 * 3_600_000 - 10_000 * 6_000).to_string();
    let models = std::env::temp_dir().join(format!("ecom-e2e-models-{seed}"));
    let _ = std::fs::remove_dir_all(&models);
    train_model(&models);
    let first = run_demo("10000", &seed, &start_ms, &models);
    assert!(first.contains("reconciled: yes"), "{first}");
    let produced = field(&first, "produced to");
    let enriched = field(&first, "enriched in");
    let invalid = field(&first, "invalid  in");
    assert_eq!(produced, 10_000);
    assert_eq!(produced, enriched + invalid);
    assert!(invalid > 150 && invalid < 450, "3% of 10k should be malformed, got {invalid}");
    assert_eq!(field(&first, "documents in Elasticsearch"), enriched);
    assert_eq!(field(&first, "documents in MongoDB"), enriched);
    // Every enriched event was scored or marked as the score fallback; sessions closed by event
    // time and per-minute metrics, each saying its ε, came out.
    let scored = field(&first, "scored (purchase probability)");
    let score_fallbacks = summary_number_after(&first, "score fallbacks");
    assert_eq!(scored + score_fallbacks, enriched, "{first}");
    assert!(scored > enriched / 2, "most events should be scored:\n{first}");
    assert!(field(&first, "sessions closed in") > 100, "{first}");
    // Returning users' events carry their earlier sessions (the job's user step).
    assert!(field(&first, "with the user's earlier sessions") > 0, "{first}");
    assert!(field(&first, "metrics records in") > 100, "{first}");
    assert!(first.contains("(ε spent per record: 2 on"), "{first}");
    assert!(field(&first, "REJECT_REASON_LATE") > 0 && field(&first, "REJECT_REASON_DUPLICATE") > 0, "{first}");

    // Same seed and start again: the generator's output is deterministic, so the first 2,000
    // records repeat the first run's (same event ids) and the stores must not grow.
    let es_before = total_in(&first, "documents in Elasticsearch");
    let second = run_demo("2000", &seed, &start_ms, &models);
    assert!(second.contains("reconciled: yes"), "{second}");
    assert_eq!(total_in(&second, "documents in Elasticsearch"), es_before, "a replay duplicated documents");
    assert_eq!(total_in(&second, "documents in MongoDB"), total_in(&first, "documents in MongoDB"));
    let _ = std::fs::remove_dir_all(models.with_extension("data"));
    let _ = std::fs::remove_dir_all(&models);
}
