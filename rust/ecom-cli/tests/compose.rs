//! docker-compose.yml cannot be run here (no Docker engine), so this test checks it against
//! the design: every service of the stack is there, on an official image, published on
//! 127.0.0.1 at the design's port.
use std::collections::BTreeMap;

/// Services and ports of the design (docs/ARCHITECTURE.md, "Ports").
const DESIGN: &[(&str, u16, &str)] = &[
    ("kafka", 9092, "apache/kafka:"),
    ("redis", 6379, "redis:"),
    ("elasticsearch", 9200, "docker.elastic.co/elasticsearch/elasticsearch:"),
    ("kibana", 5601, "docker.elastic.co/kibana/kibana:"),
    ("mongodb", 27017, "mongo:"),
    ("jobmanager", 8081, "flink:"),
];

/// service -> (image, published "host:port:port" entries), from the two-space-indented
/// service blocks under `services:`.
fn services(yaml: &str) -> BTreeMap<String, (String, Vec<String>)> {
    let mut out = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut in_services = false;
    for line in yaml.lines() {
        if line.starts_with("services:") {
            in_services = true;
            continue;
        }
        if !in_services || line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if !line.starts_with(' ') {
            in_services = false;
            continue;
        }
        if line.starts_with("  ") && !line.starts_with("   ") {
            let name = line.trim().trim_end_matches(':').to_string();
            out.insert(name.clone(), (String::new(), Vec::new()));
            current = Some(name);
            continue;
        }
        let Some(name) = &current else { continue };
        let entry = out.get_mut(name).expect("inserted above");
        let t = line.trim();
        if let Some(img) = t.strip_prefix("image:") {
            entry.0 = img.trim().to_string();
        } else if let Some(p) = t.strip_prefix("- \"").and_then(|p| p.strip_suffix('"')) {
            if p.matches(':').count() == 2 {
                entry.1.push(p.to_string());
            }
        }
    }
    out
}

#[test]
fn compose_matches_the_design() {
    // At run time, not `env!`: a shared target dir may hold a binary built in another clone.
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../..");
    let yaml = std::fs::read_to_string(root.join("docker-compose.yml")).expect("docker-compose.yml at the repo root");
    let svcs = services(&yaml);
    for (name, port, image) in DESIGN {
        let (img, ports) = svcs.get(*name).unwrap_or_else(|| panic!("service {name} missing from docker-compose.yml"));
        assert!(img.starts_with(image), "{name}: image {img} is not the official {image}*");
        let want = format!("127.0.0.1:{port}:{port}");
        assert!(ports.contains(&want), "{name}: expected port mapping {want}, found {ports:?}");
    }
    assert!(svcs.contains_key("taskmanager"), "a Flink taskmanager service is needed");
    // Images carry the versions pinned for the local stack.
    let versions = std::fs::read_to_string(root.join("dev/versions.env")).unwrap();
    let pinned = |k: &str| versions.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).unwrap().to_string();
    assert!(svcs["kafka"].0.ends_with(&pinned("KAFKA_VERSION")));
    assert!(svcs["elasticsearch"].0.ends_with(&pinned("ELASTICSEARCH_VERSION")));
    assert!(svcs["jobmanager"].0.starts_with(&format!("flink:{}", pinned("FLINK_VERSION"))));
}
