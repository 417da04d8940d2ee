//! Lets what links XGBoost (the `ecom` binary, its tests, and ecom-jni-serve's library, which
//! names this file as its build script too) find libxgboost.so.3 without LD_LIBRARY_PATH: the
//! `xgb` crate builds XGBoost as a shared library inside the target dir, so the linked file gets
//! an rpath to it. (xgboost_lib-sys is a direct dependency of both packages so that its build
//! script has run before this one.) The rpath names the linked file's own directory first
//! (`$ORIGIN`), so a copy with libxgboost.so.3 beside it runs anywhere (dev/dist).
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
            // First the file's own directory, where dev/dist's tarball puts libxgboost.so.3 beside
            // it; then the build's copy.
            println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN");
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
            println!("cargo:rerun-if-changed={}", lib.join("libxgboost.so.3").display());
        }
        None => println!(
            "cargo:warning=libxgboost.so.3 not found under {}: run with LD_LIBRARY_PATH set to its directory",
            build.display()
        ),
    }
    println!("cargo:rerun-if-changed=build.rs");
    commit();
}

/// `ECOM_GIT_COMMIT` for `ecom --version` and serve's /health: `$ECOM_GIT_COMMIT` when set (a
/// build from a tarball or in a container without .git), else the checkout's HEAD, else
/// "unknown". Rebuilt when HEAD moves.
fn commit() {
    println!("cargo:rerun-if-env-changed=ECOM_GIT_COMMIT");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = std::env::var("ECOM_GIT_COMMIT").ok().filter(|c| !c.is_empty()).or_else(|| {
        let dir = PathBuf::from(git(&["rev-parse", "--absolute-git-dir"])?);
        println!("cargo:rerun-if-changed={}", dir.join("HEAD").display());
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={}", dir.join(r).display());
        }
        git(&["rev-parse", "--short=12", "HEAD"])
    });
    println!("cargo:rustc-env=ECOM_GIT_COMMIT={}", commit.as_deref().unwrap_or("unknown"));
}
