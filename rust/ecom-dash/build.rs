//! Embeds the page (dashboard/), its chart library (dashboard/node_modules, installed by
//! `npm ci` in dev/install) and every panel definition (kibana/panels/*.json) into the crate, so
//! the binary serves the dashboard with no files and no internet.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The page's own files and the vendored builds, as (name served under /assets/, path).
const ASSETS: &[(&str, &str)] = &[
    ("app.js", "app.js"),
    ("style.css", "style.css"),
    ("vega.min.js", "node_modules/vega/build/vega.min.js"),
    ("vega-lite.min.js", "node_modules/vega-lite/build/vega-lite.min.js"),
    ("vega-embed.min.js", "node_modules/vega-embed/build/vega-embed.min.js"),
];

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("../..");
    let page = root.join("dashboard");
    let panels = root.join("kibana/panels");
    println!("cargo:rerun-if-changed={}", page.join("index.html").display());
    println!("cargo:rerun-if-changed={}", panels.display());
    let mut out = String::new();
    let index = page.join("index.html");
    writeln!(out, "/// dashboard/index.html.\npub const INDEX_HTML: &str = include_str!({:?});", abs(&index)).unwrap();
    out.push_str("/// (name under /assets/, contents) of the page's files and the vendored chart library.\n");
    out.push_str("pub const ASSETS: &[(&str, &[u8])] = &[\n");
    for (name, rel) in ASSETS {
        let path = page.join(rel);
        println!("cargo:rerun-if-changed={}", path.display());
        if !path.exists() {
            panic!(
                "{} is missing: the dashboard's chart library comes from npm; run dev/install (or `npm ci` in dashboard/)",
                path.display()
            );
        }
        writeln!(out, "    ({name:?}, include_bytes!({:?})),", abs(&path)).unwrap();
    }
    out.push_str("];\n/// (file stem, JSON) of every panel in kibana/panels, sorted by name.\n");
    out.push_str("pub const PANELS: &[(&str, &str)] = &[\n");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&panels)
        .unwrap_or_else(|e| panic!("reading {}: {e}", panels.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for f in files {
        println!("cargo:rerun-if-changed={}", f.display());
        let stem = f.file_stem().and_then(|s| s.to_str()).expect("a UTF-8 file name").to_string();
        writeln!(out, "    ({stem:?}, include_str!({:?})),", abs(&f)).unwrap();
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("embedded.rs");
    std::fs::write(dest, out).expect("writing embedded.rs");
}

fn abs(p: &Path) -> String {
    p.canonicalize().unwrap_or_else(|e| panic!("{}: {e}", p.display())).display().to_string()
}
