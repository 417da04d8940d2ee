//! `ecom retention`: drops what is older than the retention period from both stores.

use crate::stack::{EsArgs, MongoArgs};

/// Arguments of `ecom retention`.
#[derive(Debug, clap::Args)]
pub(crate) struct RetentionArgs {
    /// Keep this many days: daily indices whose day ended before now minus this, and MongoDB
    /// documents older than that, go.
    #[arg(long)]
    keep_days: u32,
    /// Count what would go; remove nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    es: EsArgs,
    #[command(flatten)]
    mongo: MongoArgs,
    /// MongoDB database of the sink.
    #[arg(long, default_value = "ecom")]
    mongo_db: String,
    /// Stem of the sink's indices: `<stem>-events-*`, `<stem>-sessions-*`, `<stem>-metrics-*`,
    /// `<stem>-invalid-*` (the sink's default prefixes follow the stem `ecom`).
    #[arg(long, default_value = "ecom")]
    index_stem: String,
}

pub(crate) async fn run(a: RetentionArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.keep_days > 0, "--keep-days must be at least 1");
    let cutoff = ecom_core::now_ms() - i64::from(a.keep_days) * 86_400_000;
    let stores = ecom_sink::stores::Stores::at(&a.es.url()?, &a.mongo.url()?, &a.mongo_db, &a.index_stem).await?;
    stores.ping().await?;
    let e = stores.expire(cutoff, a.dry_run).await?;
    let verb = if a.dry_run { "would remove" } else { "removed" };
    println!("retention: keep {} days (before {cutoff} ms since epoch goes)", a.keep_days);
    println!(
        "Elasticsearch: {verb} {} daily indices{}",
        e.indices.len(),
        if e.indices.is_empty() { String::new() } else { format!(": {}", e.indices.join(", ")) }
    );
    for (collection, n) in &e.documents {
        println!("MongoDB {}.{collection}: {verb} {n} documents", a.mongo_db);
    }
    Ok(())
}
