//! The model folder, the one contract between `ecom train` (which writes it) and what reads it
//! (`ecom serve`, the job's in-process scorer, the dashboard, `ecom check`):
//!
//! ```text
//! models/
//!   CURRENT            the serving version's name, one line; moved atomically
//!   HISTORY            every move of CURRENT (versions::promote, versions::rollback)
//!   SHADOW             a candidate version serve scores beside CURRENT, never in answers
//!                      (versions::shadow); absent: none
//!   <version>/         written whole under another name, then renamed into place
//!     schema.json      Schema: feature names in column order, their hashes, LSH parameters
//!     xgboost.json     the XGBoost booster that serves (JSON model format)
//!     neighbours.json  neighbours::NeighbourIndex
//!     recommend.json   recommend::IndexFile
//!     metrics.json     evaluation::Evaluation: the offline scores on the test set
//!     reference.json   drift::Reference: the training rows' bins of the top ecom-core features
//! ```
//!
//! Readers take names and types from here; nothing else spells a file name of the folder.
use anyhow::Context;
use ecom_core::lsh::LshParams;
use std::path::Path;

pub mod drift;
pub mod evaluation;
pub mod neighbours;
pub mod recommend;
pub mod versions;
pub use evaluation::Evaluation;

/// The file naming the serving version.
pub const CURRENT: &str = "CURRENT";
/// The file naming the shadow version, if any.
pub const SHADOW: &str = "SHADOW";
/// [`Schema`] of a version.
pub const SCHEMA_FILE: &str = "schema.json";
/// The serving XGBoost booster of a version.
pub const BOOSTER_FILE: &str = "xgboost.json";
/// [`neighbours::NeighbourIndex`] of a version.
pub const NEIGHBOURS_FILE: &str = "neighbours.json";
/// [`recommend::IndexFile`] of a version.
pub const RECOMMEND_FILE: &str = "recommend.json";
/// [`Evaluation`] of a version.
pub const METRICS_FILE: &str = "metrics.json";
/// [`drift::Reference`] of a version: what its live feature drift is measured against.
pub const REFERENCE_FILE: &str = "reference.json";

/// The feature schema a version was trained on: the columns a scoring row must have, in order.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Schema {
    /// [`schema_hash`] of `names`.
    pub hash: String,
    /// ecom-core's feature schema hash: the session features the job computes.
    pub core_hash: String,
    /// Feature names in column order: ecom-core's, then [`neighbours::NEIGHBOUR_NAMES`].
    pub names: Vec<String>,
    /// The MinHash LSH the neighbour and Recommend indices were built with.
    #[serde(with = "LshParamsDef")]
    pub lsh: LshParams,
}

/// [`LshParams`] as schema.json spells them.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(remote = "LshParams")]
pub(crate) struct LshParamsDef {
    num_perm: usize,
    num_bands: usize,
}

impl Schema {
    /// The schema of a model over `names` (ecom-core's features first) with `lsh`.
    pub fn new(names: Vec<String>, lsh: LshParams) -> Self {
        Self { hash: schema_hash(&names), core_hash: ecom_core::features::schema_hash(), names, lsh }
    }
}

/// The model's feature schema hash: ecom-core's schema hash plus the names training adds.
pub fn schema_hash(names: &[String]) -> String {
    use std::hash::Hasher;
    let mut h = fnv::FnvHasher::default();
    h.write(ecom_core::features::schema_hash().as_bytes());
    h.write(names.join(",").as_bytes());
    format!("{:016x}", h.finish())
}

/// Reads `dir/file` as JSON, naming the file in errors.
pub fn read_json<T: serde::de::DeserializeOwned>(dir: &Path, file: &str) -> anyhow::Result<T> {
    let path = dir.join(file);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

/// Writes `value` as JSON to `dir/file` (pretty when a person may read it).
pub fn write_json<T: serde::Serialize>(dir: &Path, file: &str, value: &T, pretty: bool) -> anyhow::Result<()> {
    let path = dir.join(file);
    let bytes = if pretty { serde_json::to_vec_pretty(value)? } else { serde_json::to_vec(value)? };
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Makes `version` the serving one: CURRENT is replaced in one rename, so a reader sees the old
/// name or the new, never a torn one.
pub fn set_current(models_dir: &Path, version: &str) -> anyhow::Result<()> {
    set_pointer(models_dir, CURRENT, version)
}

/// Writes `version` to the pointer file `name` (CURRENT, SHADOW) in one rename.
pub fn set_pointer(models_dir: &Path, name: &str, version: &str) -> anyhow::Result<()> {
    let tmp = models_dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, format!("{version}\n")).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, models_dir.join(name)).with_context(|| format!("moving models/{name}"))?;
    Ok(())
}

/// XGBoost's ROC AUC on `version`'s offline test set (its metrics.json), when readable.
pub fn offline_roc_auc(models_dir: &Path, version: &str) -> Option<f64> {
    let e: Evaluation = read_json(&models_dir.join(version), METRICS_FILE).ok()?;
    e.models.get("xgboost").and_then(|x| x.scores.roc_auc)
}

/// The serving version, if CURRENT names a version directory that exists.
pub fn current(models_dir: &Path) -> Option<String> {
    pointed(models_dir, CURRENT)
}

/// The version the pointer file `name` (CURRENT, SHADOW) names, if that directory exists.
pub fn pointed(models_dir: &Path, name: &str) -> Option<String> {
    let v = std::fs::read_to_string(models_dir.join(name)).ok()?;
    let v = v.trim().to_string();
    (!v.is_empty() && models_dir.join(&v).is_dir()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_written_reads_back_the_same_and_current_moves_whole() {
        let dir = std::env::temp_dir().join(format!("ecom-model-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("v1")).unwrap();
        let schema = Schema::new(neighbours::feature_names(), ecom_core::lsh::DEFAULT_PARAMS);
        assert_eq!(schema.hash, schema_hash(&schema.names));
        write_json(&dir.join("v1"), SCHEMA_FILE, &schema, true).unwrap();
        assert_eq!(read_json::<Schema>(&dir.join("v1"), SCHEMA_FILE).unwrap(), schema);
        assert_eq!(current(&dir), None);
        set_current(&dir, "v1").unwrap();
        assert_eq!(current(&dir).as_deref(), Some("v1"));
        set_current(&dir, "v2").unwrap(); // no such directory: nothing serves
        assert_eq!(current(&dir), None);
        let e = read_json::<Schema>(&dir.join("v2"), SCHEMA_FILE).unwrap_err();
        assert!(format!("{e:#}").contains("v2/schema.json"), "{e:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
