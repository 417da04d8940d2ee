//! The versions of a models folder, and moving CURRENT between them with a record of every move
//! (`models/HISTORY`), so that a promotion can be rolled back.
//!
//! HISTORY holds one line per move, appended: `<ms since epoch>\t<why>\t<from or ->\t<to>`, `why`
//! being `train`, `promote` or `rollback`. CURRENT stays the truth of what serves; HISTORY says how
//! it got there.
use crate::{current, read_json, set_current, Evaluation, Schema};
use crate::{BOOSTER_FILE, METRICS_FILE, NEIGHBOURS_FILE, RECOMMEND_FILE, SCHEMA_FILE};
use anyhow::{bail, Context};
use ecom_core::now_ms;
use std::io::Write;
use std::path::Path;

/// The file of moves.
pub const HISTORY: &str = "HISTORY";

/// One version directory of a models folder.
#[derive(Debug, Clone)]
pub struct Version {
    /// Its name (the directory).
    pub name: String,
    /// Whether CURRENT names it.
    pub serving: bool,
    /// Whether SHADOW names it.
    pub shadow: bool,
    /// Its metrics.json, when readable.
    pub evaluation: Option<Evaluation>,
    /// Why it could not serve ([`check`]), if it could not.
    pub problem: Option<String>,
}

/// Every version directory (names starting with `.` are training's unfinished ones), oldest
/// first by training time, then by name.
pub fn list(models_dir: &Path) -> anyhow::Result<Vec<Version>> {
    let serving = current(models_dir);
    let shadow = crate::pointed(models_dir, crate::SHADOW);
    let entries =
        std::fs::read_dir(models_dir).with_context(|| format!("reading the models folder {}", models_dir.display()))?;
    let mut out = Vec::new();
    for e in entries {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !e.file_type()?.is_dir() {
            continue;
        }
        let dir = e.path();
        out.push(Version {
            serving: serving.as_deref() == Some(name.as_str()),
            shadow: shadow.as_deref() == Some(name.as_str()),
            evaluation: read_json(&dir, METRICS_FILE).ok(),
            problem: check(models_dir, &name).err().map(|e| format!("{e:#}")),
            name,
        });
    }
    out.sort_by(|a, b| {
        let t = |v: &Version| v.evaluation.as_ref().map_or(i64::MIN, |e| e.created_at_ms);
        t(a).cmp(&t(b)).then_with(|| a.name.cmp(&b.name))
    });
    Ok(out)
}

/// Ok when `version` can serve with this build: its schema reads and was trained on the session
/// features ecom-core computes, and every file serve loads is there.
pub fn check(models_dir: &Path, version: &str) -> anyhow::Result<()> {
    if version.is_empty() || version.starts_with('.') || version.contains(['/', '\\']) {
        bail!("{version:?} is not a version name");
    }
    let dir = models_dir.join(version);
    if !dir.is_dir() {
        bail!("no version {version} in {}", models_dir.display());
    }
    let schema: Schema = read_json(&dir, SCHEMA_FILE)?;
    let core = ecom_core::features::schema_hash();
    if schema.core_hash != core {
        bail!(
            "{version} was trained on session features {} but this build computes {core}: retrain it",
            schema.core_hash
        );
    }
    for f in [BOOSTER_FILE, NEIGHBOURS_FILE, RECOMMEND_FILE] {
        if !dir.join(f).is_file() {
            bail!("{version} has no {f}");
        }
    }
    Ok(())
}

/// One move of CURRENT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// `train`, `promote` or `rollback`.
    pub why: String,
    /// What served before (None: nothing).
    pub from: Option<String>,
    /// What serves after.
    pub to: String,
}

/// Makes `version` the serving one after [`check`]ing it, and records the move (`why`). The
/// version that serves already is refused: a move to itself would be a rollback step to nowhere.
pub fn promote(models_dir: &Path, version: &str, why: &str) -> anyhow::Result<Move> {
    check(models_dir, version).with_context(|| format!("{version} cannot serve"))?;
    let from = current(models_dir);
    if from.as_deref() == Some(version) {
        bail!("{version} serves already");
    }
    let m = Move { at_ms: now_ms(), why: why.to_string(), from, to: version.to_string() };
    // CURRENT first: HISTORY never records a move that did not happen.
    set_current(models_dir, version)?;
    let line = format!("{}\t{}\t{}\t{}\n", m.at_ms, m.why, m.from.as_deref().unwrap_or("-"), m.to);
    let path = models_dir.join(HISTORY);
    // One short write in append mode: concurrent moves never interleave within a line.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .with_context(|| format!("{version} serves, but recording the move in {} failed", path.display()))?;
    Ok(m)
}

/// Has serve score `version` in shadow beside the serving one (models/SHADOW), after
/// [`check`]ing it; None stops shadow scoring. The serving version is refused: its shadow
/// scores would equal its answers.
pub fn shadow(models_dir: &Path, version: Option<&str>) -> anyhow::Result<()> {
    let Some(version) = version else {
        return match std::fs::remove_file(models_dir.join(crate::SHADOW)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).context("removing models/SHADOW"),
            _ => Ok(()),
        };
    };
    check(models_dir, version).with_context(|| format!("{version} cannot be scored"))?;
    if current(models_dir).as_deref() == Some(version) {
        bail!("{version} serves already: shadow a candidate");
    }
    crate::set_pointer(models_dir, crate::SHADOW, version)
}

/// Every move recorded, oldest first (none when there is no HISTORY yet).
pub fn history(models_dir: &Path) -> anyhow::Result<Vec<Move>> {
    let path = models_dir.join(HISTORY);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let f: Vec<&str> = l.split('\t').collect();
            let [at, why, from, to] = f[..] else {
                bail!("{} line {}: expected 4 tab-separated fields", path.display(), i + 1)
            };
            Ok(Move {
                at_ms: at.parse().with_context(|| format!("{} line {}: time", path.display(), i + 1))?,
                why: why.to_string(),
                from: (from != "-").then(|| from.to_string()),
                to: to.to_string(),
            })
        })
        .collect()
}

/// Undoes the latest promotion not undone yet: serves again what served before it. HISTORY
/// replays as a stack (each train or promote pushes what served before it, each rollback pops),
/// so successive rollbacks walk back through the promotions, never back and forth.
pub fn rollback(models_dir: &Path) -> anyhow::Result<Move> {
    let Some(now) = current(models_dir) else { bail!("nothing serves in {}: no CURRENT", models_dir.display()) };
    let mut undo: Vec<Option<String>> = Vec::new();
    for m in history(models_dir)? {
        if m.why == "rollback" {
            undo.pop();
        } else {
            undo.push(m.from);
        }
    }
    match undo.pop() {
        None => bail!("{} records no promotion to undo", models_dir.join(HISTORY).display()),
        Some(None) => bail!("nothing served before {now}: nothing to roll back to"),
        Some(Some(before)) => promote(models_dir, &before, "rollback"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{neighbours, write_json};

    fn version(dir: &Path, name: &str) {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        let schema = Schema::new(neighbours::feature_names(), ecom_core::lsh::DEFAULT_PARAMS);
        write_json(&d, SCHEMA_FILE, &schema, true).unwrap();
        for f in [BOOSTER_FILE, NEIGHBOURS_FILE, RECOMMEND_FILE] {
            std::fs::write(d.join(f), "{}").unwrap();
        }
    }

    #[test]
    fn promotions_are_checked_recorded_and_rolled_back_one_step_at_a_time() {
        let dir = std::env::temp_dir().join(format!("ecom-model-versions-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for v in ["v1", "v2", "v3"] {
            version(&dir, v);
        }
        assert!(rollback(&dir).is_err(), "nothing serves yet");
        promote(&dir, "v1", "train").unwrap();
        promote(&dir, "v2", "promote").unwrap();
        let m = promote(&dir, "v3", "promote").unwrap();
        assert_eq!((m.from.as_deref(), m.to.as_str()), (Some("v2"), "v3"));

        assert_eq!(rollback(&dir).unwrap().to, "v2");
        assert_eq!(rollback(&dir).unwrap().to, "v1");
        let e = rollback(&dir).unwrap_err();
        assert!(format!("{e:#}").contains("nothing served before v1"), "{e:#}");
        assert_eq!(current(&dir).as_deref(), Some("v1"));
        let whys: Vec<String> = history(&dir).unwrap().into_iter().map(|m| m.why).collect();
        assert_eq!(whys, ["train", "promote", "promote", "rollback", "rollback"]);
        assert_eq!(current(&dir).as_deref(), Some("v1"));

        // A version that appears twice: rollbacks still walk back, never back and forth.
        promote(&dir, "v2", "promote").unwrap();
        promote(&dir, "v1", "promote").unwrap();
        assert!(promote(&dir, "v1", "promote").is_err(), "v1 serves already");
        assert_eq!(rollback(&dir).unwrap().to, "v2");
        assert_eq!(rollback(&dir).unwrap().to, "v1");
        assert!(rollback(&dir).is_err());

        // A version that cannot serve is refused and CURRENT stays.
        std::fs::remove_file(dir.join("v3").join(BOOSTER_FILE)).unwrap();
        let e = promote(&dir, "v3", "promote").unwrap_err();
        assert!(format!("{e:#}").contains("v3 has no xgboost.json"), "{e:#}");
        let mut schema: Schema = read_json(&dir.join("v2"), SCHEMA_FILE).unwrap();
        schema.core_hash = "0000".into();
        write_json(&dir.join("v2"), SCHEMA_FILE, &schema, true).unwrap();
        assert!(format!("{:#}", promote(&dir, "v2", "promote").unwrap_err()).contains("retrain it"));
        assert!(promote(&dir, "../v1", "promote").is_err());
        assert_eq!(current(&dir).as_deref(), Some("v1"));

        let listed = list(&dir).unwrap();
        let names: Vec<(&str, bool, bool)> =
            listed.iter().map(|v| (v.name.as_str(), v.serving, v.problem.is_none())).collect();
        assert_eq!(names, [("v1", true, true), ("v2", false, false), ("v3", false, false)]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
