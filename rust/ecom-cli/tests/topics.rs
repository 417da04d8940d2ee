//! The topic names are written in three languages: ecom-core's `topics` (Rust), the job's
//! `Topics.java` and dev/up's list (docker-compose.yml is held to dev/up by dev/compose-check).
//! This holds the other two to the Rust list.
use ecom_core::topics;

fn repo_file(path: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

#[test]
fn dev_up_creates_exactly_the_topics_ecom_core_names() {
    let up = repo_file("dev/up");
    let line = up.lines().find_map(|l| l.strip_prefix("topics=(")).expect("dev/up has a topics=(…) line");
    let listed: Vec<&str> = line.trim_end_matches(')').split_whitespace().collect();
    assert_eq!(listed, topics::ALL);
}

#[test]
fn the_jobs_topics_are_ecom_cores() {
    let java = repo_file("flink-job/src/main/java/dev/ecom/flink/Topics.java");
    let named: Vec<(&str, &str)> = java
        .lines()
        .filter_map(|l| l.trim().strip_prefix("public static final String "))
        .map(|rest| {
            let (name, value) = rest.split_once(" = ").expect("NAME = \"value\";");
            (name, value.trim_end_matches(';').trim_matches('"'))
        })
        .collect();
    let rust = [
        ("RAW", topics::RAW),
        ("ENRICHED", topics::ENRICHED),
        ("INVALID", topics::INVALID),
        ("SESSIONS", topics::SESSIONS),
        ("METRICS", topics::METRICS),
        ("QUALITY", topics::QUALITY),
        ("CATALOG", topics::CATALOG),
    ];
    assert_eq!(named, rust);
}
