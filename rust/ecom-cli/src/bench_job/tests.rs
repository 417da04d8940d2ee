//! Unit tests of the per-vertex table read from Flink's job answer.
use super::*;

#[test]
fn vertices_come_from_flinks_job_answer_and_print_per_record_and_per_thousand() {
    let job = json!({"vertices": [
        {"name": "Source: raw-source -> validate-enrich", "metrics": {"read-bytes": 3000, "write-bytes": 8000,
         "read-records": 10, "write-records": 10, "accumulated-busy-time": 50.0, "accumulated-backpressured-time": 7}},
        {"name": "user-history", "metrics": {}}
    ]});
    let v = Vertex::parse(&job);
    assert_eq!(v.len(), 2);
    assert_eq!(
        v[0],
        Vertex {
            name: "Source: raw-source -> validate-enrich".into(),
            read_records: 10,
            read_bytes: 3000,
            write_records: 10,
            write_bytes: 8000,
            busy_ms: 50,
            backpressured_ms: 7
        }
    );
    let table = vertex_table(&v);
    let row = table.lines().nth(1).unwrap();
    let cells: Vec<&str> = row.split_whitespace().rev().take(6).collect();
    // Per 1,000 of the raw source's 10 records: bp 700 ms, busy 5,000 ms; 800 B out, 10 out,
    // 300 B in, 10 in.
    assert_eq!(cells, ["700", "5000", "800", "10", "300", "10"]);
    assert!(table.lines().nth(2).unwrap().contains(" - "), "no records: no bytes per record");
}
