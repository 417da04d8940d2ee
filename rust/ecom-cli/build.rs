//! Lets what links XGBoost (the `ecom` binary, its tests, and ecom-jni-serve's library, which
//! names this file as its build script too) find libxgboost.so.3 without LD_LIBRARY_PATH: the
//! `xgb` crate builds XGBoost as a shared library inside the target dir, so the linked file gets
//! an rpath to it. (xgboost_lib-sys is a direct dependency of both packages so that its build
//! script has run before this one.)
use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR = <target>/<profile>/build/ecom-cli-<hash>/out
    let build = out.ancestors().nth(2).expect("OUT_DIR is inside <profile>/build").to_path_buf();
    let newest = std::fs::read_dir(&build)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("xgboost_lib-sys-"))
        .map(|e| e.path().join("out/lib"))
        .filter(|lib| lib.join("libxgboost.so.3").exists())
        .max_by_key(|lib| lib.join("libxgboost.so.3").metadata().and_then(|m| m.modified()).ok());
    match newest {
        Some(lib) => {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
            println!("cargo:rerun-if-changed={}", lib.join("libxgboost.so.3").display());
        }
        None => println!(
            "cargo:warning=libxgboost.so.3 not found under {}: run with LD_LIBRARY_PATH set to its directory",
            build.display()
        ),
    }
    println!("cargo:rerun-if-changed=build.rs");
}
