//! `ecom train`: purchase models from the generator's files (see ecom-train).
use anyhow::bail;
use ecom_core::lsh::LshParams;
use std::path::PathBuf;

/// Arguments of `ecom train`.
#[derive(Debug, clap::Args)]
pub(crate) struct TrainArgs {
    /// Where sessions come from: a directory written by `ecom generate --out DIR`, or `mongodb`
    /// for the sink's ecom.sessions.
    #[arg(long)]
    from: String,
    /// Root of the model versions; models/<version>/ is written and models/CURRENT moved to it.
    #[arg(long, default_value = "models", env = "ECOM_MODELS_DIR")]
    models_dir: PathBuf,
    /// Seed of every model.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Threads for XGBoost (default: all cores).
    #[arg(long)]
    threads: Option<u32>,
    /// MinHash permutations of the neighbour features (as the job's --lsh-perm).
    #[arg(long, default_value_t = 32)]
    lsh_perm: usize,
    /// LSH bands (as the job's --lsh-bands).
    #[arg(long, default_value_t = 8)]
    lsh_bands: usize,
    /// Trees in the random forest.
    #[arg(long, default_value_t = 200)]
    forest_trees: u32,
    /// Most MLP epochs (early stopping usually ends sooner).
    #[arg(long, default_value_t = 60)]
    mlp_epochs: usize,
    /// Version name (default: v<unix seconds>).
    #[arg(long)]
    version_name: Option<String>,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

pub(crate) fn run(a: TrainArgs) -> anyhow::Result<()> {
    let source = if a.from == "mongodb" {
        bail!(
            "--from mongodb reads ecom.sessions, which the Flink job does not emit yet; \
             train from the generator's files: ecom generate --out DIR, then ecom train --from DIR"
        )
    } else {
        ecom_train::Source::Dir(PathBuf::from(&a.from))
    };
    let threads =
        a.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1));
    let opts = ecom_train::TrainOptions {
        source,
        models_dir: a.models_dir,
        seed: a.seed,
        threads,
        lsh: LshParams { num_perm: a.lsh_perm, num_bands: a.lsh_bands },
        forest_trees: a.forest_trees,
        mlp_epochs: a.mlp_epochs,
        progress: !a.quiet,
        version: a.version_name,
    };
    let out = ecom_train::train(&opts)?;
    print!("{}", ecom_train::summary(&out));
    Ok(())
}
