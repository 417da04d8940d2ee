//! `ecom models`: the versions of a models folder, and which one serves. `promote` and
//! `rollback` move CURRENT atomically (a running `ecom serve` picks the move up within its
//! --reload-ms) and record every move in models/HISTORY (ecom_model::versions).
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
}

pub(crate) fn run(a: ModelsArgs) -> anyhow::Result<()> {
    let dir = &a.models_dir;
    match a.cmd {
        ModelsCmd::List { json } => {
            let versions = versions::list(dir).map_err(|e| crate::exit::config(format!("{e:#}")))?;
            if json {
                for v in &versions {
                    println!("{}", serde_json::to_string(&listed(v))?);
                }
                return Ok(());
            }
            if versions.is_empty() {
                println!("no versions in {} (ecom train writes one)", dir.display());
                return Ok(());
            }
            println!(
                "{:<16} {:<7} {:>8} {:>8} {:>8} {:>10} {:>10} {:>8}",
                "VERSION", "SERVING", "ROC AUC", "PR AUC", "BRIER", "ORACLE", "OBSERVABLE", "TEST"
            );
            let num = |x: Option<f64>| x.map_or_else(|| "-".into(), |x| format!("{x:.4}"));
            for v in &versions {
                let e = v.evaluation.as_ref();
                let xgb = e.and_then(|e| e.models.get("xgboost")).map(|m| &m.scores);
                println!(
                    "{:<16} {:<7} {:>8} {:>8} {:>8} {:>10} {:>10} {:>8}{}",
                    v.name,
                    if v.serving { "*" } else { "" },
                    num(xgb.and_then(|s| s.roc_auc)),
                    num(xgb.and_then(|s| s.pr_auc)),
                    num(xgb.and_then(|s| s.brier)),
                    num(e.and_then(|e| e.oracle_auc)),
                    num(e.and_then(|e| e.observable_oracle_auc)),
                    e.map_or_else(|| "-".into(), |e| e.split.test.sessions.to_string()),
                    v.problem.as_ref().map_or_else(String::new, |p| format!("   cannot serve: {p}")),
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

/// A version as `list --json` prints it.
fn listed(v: &versions::Version) -> serde_json::Value {
    let e = v.evaluation.as_ref();
    let xgb = e.and_then(|e| e.models.get("xgboost")).map(|m| &m.scores);
    serde_json::json!({
        "version": v.name,
        "serving": v.serving,
        "created_at_ms": e.map(|e| e.created_at_ms),
        "roc_auc": xgb.and_then(|s| s.roc_auc),
        "pr_auc": xgb.and_then(|s| s.pr_auc),
        "brier": xgb.and_then(|s| s.brier),
        "log_loss": xgb.and_then(|s| s.log_loss),
        "oracle_auc": e.and_then(|e| e.oracle_auc),
        "observable_oracle_auc": e.and_then(|e| e.observable_oracle_auc),
        "test_sessions": e.map(|e| e.split.test.sessions),
        "problem": v.problem,
    })
}
