//! `ecom job`: the Flink job on any Flink cluster through its REST API (no local Flink install):
//! submit it, stop it with a savepoint, resume from one, cancel it, list it.
use crate::demo::ClusterArgs;
use anyhow::bail;
use std::time::Duration;

/// Arguments of `ecom job`.
#[derive(Debug, clap::Args)]
pub(crate) struct JobArgs {
    #[command(subcommand)]
    cmd: JobCmd,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(Debug, clap::Subcommand)]
enum JobCmd {
    /// Upload the jar (unless the cluster has it already) and run the job with the options after
    /// `--` (flink-job/README.md); prints the job id once every task runs. Refuses while another
    /// `ecom` job runs on the cluster: two would compete for the same records.
    Submit {
        /// Job parallelism (at most the raw topic's partitions do work).
        #[arg(long, default_value_t = 1)]
        parallelism: u32,
        /// Resume from this savepoint (what `ecom job stop` printed).
        #[arg(long)]
        from_savepoint: Option<String>,
        /// The job's options, e.g. `-- --serve-address serve:50051`.
        #[arg(last = true)]
        job_args: Vec<String>,
    },
    /// Stop the running `ecom` job (or JOB_ID) with a savepoint: every record read is committed
    /// and the offsets are in the savepoint, so `ecom job submit --from-savepoint` resumes with
    /// nothing lost or duplicated. Prints the savepoint's path.
    Stop {
        /// The job; default the one `ecom` job running.
        job_id: Option<String>,
        /// Where the savepoint goes; default the cluster's execution.checkpointing.savepoint-dir.
        #[arg(long)]
        savepoint_dir: Option<String>,
        /// Longest wait for the savepoint, s.
        #[arg(long, default_value_t = 300)]
        timeout_secs: u64,
    },
    /// Cancel the running `ecom` job (or JOB_ID) without a savepoint; a later job resumes from the
    /// consumer group's committed offsets.
    Cancel {
        /// The job; default the one `ecom` job running.
        job_id: Option<String>,
    },
    /// List the cluster's running `ecom` jobs, one id a line.
    List,
}

pub(crate) async fn run(a: JobArgs) -> anyhow::Result<()> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let flink = a.cluster.flink();
    let running = flink.running_ecom_jobs(&http).await?;
    let the_one = |given: Option<String>| -> anyhow::Result<String> {
        match (given, running.as_slice()) {
            (Some(id), _) => Ok(id),
            (None, [one]) => Ok(one.clone()),
            (None, []) => bail!("no ecom job runs on the Flink cluster at {}", a.cluster.flink_rest),
            (None, many) => {
                bail!("{} ecom jobs run at {}: name one ({})", many.len(), a.cluster.flink_rest, many.join(", "))
            }
        }
    };
    match a.cmd {
        JobCmd::Submit { parallelism, from_savepoint, job_args } => {
            if !running.is_empty() {
                bail!(
                    "an ecom job already runs at {} ({}): stop it first (ecom job stop) — two would compete for the same records",
                    a.cluster.flink_rest,
                    running.join(", ")
                );
            }
            let id = flink.start(&http, parallelism, &job_args, from_savepoint.as_deref()).await?;
            println!("{id}");
        }
        JobCmd::Stop { job_id, savepoint_dir, timeout_secs } => {
            let id = the_one(job_id)?;
            let path = flink
                .stop_with_savepoint(&http, &id, savepoint_dir.as_deref(), Duration::from_secs(timeout_secs))
                .await?;
            eprintln!("Flink job {id} stopped with a savepoint; resume with: ecom job submit --from-savepoint {path} -- <the same options>");
            println!("{path}");
        }
        JobCmd::Cancel { job_id } => {
            let id = the_one(job_id)?;
            flink.cancel(&http, &id).await;
        }
        JobCmd::List => running.iter().for_each(|id| println!("{id}")),
    }
    Ok(())
}
