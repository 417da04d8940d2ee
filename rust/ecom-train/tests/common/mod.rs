//! Helpers shared by the training tests.
use ecom_gen::GenConfig;
use std::path::{Path, PathBuf};

/// What `ecom generate --out DIR` writes for training: events.pb, truth.pb, catalog.pb.
pub fn generate(dir: &Path, events: u64, seed: u64) {
    let cfg = GenConfig { events, seed, malformed_rate: 0.02, ..Default::default() };
    ecom_gen::write_training_files(dir, cfg).unwrap();
}

pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ecom-train-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}
