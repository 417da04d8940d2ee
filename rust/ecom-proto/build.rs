//! Generates the prost/tonic code from proto/ecom/v1, the same files the Flink job compiles.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: `env!` would bake in the path of whichever clone first built this
    // script, and a shared target dir reuses the script from another clone.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [root.join("ecom/v1/events.proto"), root.join("ecom/v1/services.proto")];
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let descriptor = PathBuf::from(std::env::var("OUT_DIR")?).join("ecom_descriptor.bin");
    tonic_prost_build::configure().file_descriptor_set_path(&descriptor).compile_protos(&files, &[root])?;
    Ok(())
}
