//! `ecom models`: the versions of a models folder, and which one serves. `promote` and
//! `rollback` move CURRENT atomically (a running `ecom serve` picks the move up within its
//! --reload-ms) and record every move in models/HISTORY (ecom_model::versions). `shadow` has
//! serve score a candidate beside the serving version, its score in each answer next to the
//! serving one and never instead of it, so the job's live quality compares the two on the same
//! sessions before a promotion.
use ecom_model::versions::{self, Move};
use std::path::PathBuf;

/// Arguments of `ecom models`.
#[derive(Debug, clap::Args)]
pub(crate) struct ModelsArgs {
    /// The models folder (ecom train's and ecom serve's --models-dir).
    #[arg(long, default_value = "models", env = "ECOM_MODELS_DIR", global = true)]
    models_dir: PathBuf,
    #[command(subcommand)]
    cmd: ModelsCmd,
}

#[derive(Debug, clap::Subcommand)]
enum ModelsCmd {
    /// Every version with its offline scores (XGBoost on its test set, next to the oracles),
    /// which one serves, and why any cannot.
    List {
        /// One JSON object per version, one per line.
        #[arg(long)]
        json: bool,
    },
    /// Serve VERSION: checked first (its files, its feature schema against this build), then
    /// CURRENT moves to it.
    Promote {
        /// A version directory of the models folder.
        version: String,
    },
    /// Serve again what served before the current version was trained in or promoted; each
    /// rollback steps one promotion further back.
    Rollback,
    /// Every move of CURRENT, oldest first.
    History,
    /// Score VERSION in shadow: a running ecom serve scores every row with it too (within its
    /// --reload-ms) and returns that score beside the answer (shadow_probability), never as it;
    /// the job's live quality then has a window per version. Checked as promote checks.
    Shadow {
        /// A version directory of the models folder (not the serving one).
        #[arg(required_unless_present = "off", conflicts_with = "off")]
        version: Option<String>,
        /// Stop shadow scoring.
        #[arg(long)]
        off: bool,
    },
}

pub(crate) fn run(a: ModelsArgs) -> anyhow::Result<()> {
    let dir = &a.models_dir;
    match a.cmd {
        ModelsCmd::List { json } => {
            let versions = versions::list(dir).map_err(|e| crate::exit::config(format!("{e:#}")))?;
            let rows: Vec<Listed<'_>> = versions.iter().map(Listed::of).collect();
            if json {
                for r in &rows {
                    println!("{}", serde_json::to_string(r)?);
                }
                return Ok(());
            }
            if rows.is_empty() {
                println!("no versions in {} (ecom train writes one)", dir.display());
                return Ok(());
            }
            println!(
                "{:<16} {:<7} {:>8} {:>8} {:>8} {:>10} {:>10} {:>10} {:>8}",
                "VERSION", "ROLE", "ROC AUC", "PR AUC", "BRIER", "ORACLE", "OBSERVABLE", "INFERABLE", "TEST"
            );
            let num = |x: Option<f64>| x.map_or_else(|| "-".into(), |x| format!("{x:.4}"));
            for r in &rows {
                println!(
                    "{:<16} {:<7} {:>8} {:>8} {:>8} {:>10} {:>10} {:>10} {:>8}{}",
                    r.version,
                    if r.serving {
                        "serving"
                    } else if r.shadow {
                        "shadow"
                    } else {
                        ""
                    },
                    num(r.roc_auc),
                    num(r.pr_auc),
                    num(r.brier),
                    num(r.oracle_auc),
                    num(r.observable_oracle_auc),
                    num(r.inferable_oracle_auc),
                    r.test_sessions.map_or_else(|| "-".into(), |n| n.to_string()),
                    r.problem.as_ref().map_or_else(String::new, |p| format!("   cannot serve: {p}")),
                );
            }
            Ok(())
        }
        ModelsCmd::Promote { version } => {
            let m = versions::promote(dir, &version, "promote").map_err(|e| crate::exit::config(format!("{e:#}")))?;
            print_move(&m);
            Ok(())
        }
        ModelsCmd::Rollback => {
            let m = versions::rollback(dir).map_err(|e| crate::exit::config(format!("{e:#}")))?;
            print_move(&m);
            Ok(())
        }
        ModelsCmd::Shadow { version, .. } => {
            versions::shadow(dir, version.as_deref()).map_err(|e| crate::exit::config(format!("{e:#}")))?;
            match version {
                Some(v) => println!("shadow: {v} (a running ecom serve scores with it too within its --reload-ms)"),
                None => println!("shadow: off"),
            }
            Ok(())
        }
        ModelsCmd::History => {
            for m in versions::history(dir)? {
                println!("{}\t{}\t{}\t{}", m.at_ms, m.why, m.from.as_deref().unwrap_or("-"), m.to);
            }
            Ok(())
        }
    }
}

fn print_move(m: &Move) {
    println!(
        "{}: {} -> {} (a running ecom serve loads it within its --reload-ms)",
        m.why,
        m.from.as_deref().unwrap_or("nothing"),
        m.to
    );
}

/// A version as `list` shows it (one JSON object per line with `--json`): XGBoost's test-set
/// scores next to the oracles.
#[derive(serde::Serialize)]
struct Listed<'a> {
    version: &'a str,
    serving: bool,
    shadow: bool,
    created_at_ms: Option<i64>,
    roc_auc: Option<f64>,
    pr_auc: Option<f64>,
    brier: Option<f64>,
    log_loss: Option<f64>,
    oracle_auc: Option<f64>,
    observable_oracle_auc: Option<f64>,
    inferable_oracle_auc: Option<f64>,
    test_sessions: Option<u64>,
    problem: Option<&'a str>,
}

impl<'a> Listed<'a> {
    fn of(v: &'a versions::Version) -> Self {
        let e = v.evaluation.as_ref();
        let xgb = e.and_then(|e| e.models.get("xgboost")).map(|m| &m.scores);
        Listed {
            version: &v.name,
            serving: v.serving,
            shadow: v.shadow,
            created_at_ms: e.map(|e| e.created_at_ms),
            roc_auc: xgb.and_then(|s| s.roc_auc),
            pr_auc: xgb.and_then(|s| s.pr_auc),
            brier: xgb.and_then(|s| s.brier),
            log_loss: xgb.and_then(|s| s.log_loss),
            oracle_auc: e.and_then(|e| e.oracle_auc),
            observable_oracle_auc: e.and_then(|e| e.observable_oracle_auc),
            inferable_oracle_auc: e.and_then(|e| e.inferable_oracle_auc),
            test_sessions: e.map(|e| e.split.test.sessions),
            problem: v.problem.as_deref(),
        }
    }
}
