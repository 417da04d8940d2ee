//! Helpers shared by the training tests.
use ecom_gen::{GenConfig, Generator, Payload};
use prost::Message;
use std::path::{Path, PathBuf};

fn delimited(w: &mut impl std::io::Write, bytes: &[u8]) {
    ecom_gen::write_delimited(w, bytes).unwrap();
}

/// What `ecom generate --out DIR` writes for training: events.pb, truth.pb, catalog.pb.
pub fn generate(dir: &Path, events: u64, seed: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let mut g = Generator::new(GenConfig { events, seed, malformed_rate: 0.02, ..Default::default() });
    let file = |n: &str| std::io::BufWriter::new(std::fs::File::create(dir.join(n)).unwrap());
    let (mut ev, mut tr, mut cat) = (file("events.pb"), file("truth.pb"), file("catalog.pb"));
    for p in g.catalog() {
        delimited(&mut cat, &p.encode_to_vec());
    }
    while let Some(r) = g.next() {
        match &r.payload {
            Payload::Event(e) => delimited(&mut ev, &e.encode_to_vec()),
            Payload::Bytes(b) => delimited(&mut ev, b),
        }
        for t in g.take_truth() {
            delimited(&mut tr, &t.encode_to_vec());
        }
    }
    for t in g.take_truth() {
        delimited(&mut tr, &t.encode_to_vec());
    }
}

pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ecom-train-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}
