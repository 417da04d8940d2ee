//! Retention: what is older than a cutoff leaves both stores.
use super::*;

/// What [`Stores::expire`] removed (or would remove).
#[derive(Debug, Default, PartialEq)]
pub struct Expired {
    /// The daily indices, by name.
    pub indices: Vec<String>,
    /// Documents per MongoDB collection.
    pub documents: Vec<(&'static str, u64)>,
}

impl Stores {
    /// Removes what is older than `cutoff_ms` from both stores (or, `dry_run`, counts it):
    /// every daily index of the five kinds whose day ended by then (by its name), and every
    /// MongoDB document whose time field (events `event_time`, sessions `start_ms`, metrics and quality
    /// `window_start_ms`, dead letters `rejected_at`, the sink's own `at_ms`) is before it.
    /// The retention `ecom retention` applies; it works the same on every Elasticsearch and
    /// MongoDB-protocol server, with or without index lifecycle management or TTL indexes.
    pub async fn expire(&self, cutoff_ms: i64, dry_run: bool) -> anyhow::Result<Expired> {
        let mut out = Expired::default();
        for prefix in [
            &self.index_prefix,
            &self.sessions_index_prefix,
            &self.metrics_index_prefix,
            &self.invalid_index_prefix,
            &self.quality_index_prefix,
        ] {
            let r = self
                .es
                .cat()
                .indices(elasticsearch::cat::CatIndicesParts::Index(&[&format!("{prefix}-*")]))
                .format("json")
                .h(&["index"])
                .send()
                .await
                .with_context(|| format!("listing the {prefix}-* indices"))?;
            let rows: Vec<Value> = r.json().await.context("reading the index list")?;
            let mut old: Vec<String> = rows
                .iter()
                .filter_map(|row| row["index"].as_str())
                .filter(|i| doc::daily_index_day(prefix, i).is_some_and(|day| day + 86_400_000 <= cutoff_ms))
                .map(str::to_string)
                .collect();
            old.sort();
            if !dry_run && !old.is_empty() {
                let names: Vec<&str> = old.iter().map(String::as_str).collect();
                let r = self
                    .es
                    .indices()
                    .delete(elasticsearch::indices::IndicesDeleteParts::Index(&names))
                    .send()
                    .await
                    .context("deleting expired indices")?;
                if !r.status_code().is_success() {
                    bail!("Elasticsearch refused to delete {}: {}", old.join(","), r.text().await.unwrap_or_default());
                }
            }
            out.indices.extend(old);
        }
        for (collection, field) in [
            (EVENTS_COLLECTION, "event_time"),
            (SESSIONS_COLLECTION, "start_ms"),
            (METRICS_COLLECTION, "window_start_ms"),
            (INVALID_COLLECTION, "rejected_at"),
            (QUALITY_COLLECTION, "window_start_ms"),
            (DEADLETTER_COLLECTION, "at_ms"),
        ] {
            let coll = self.db.collection::<Document>(collection);
            let old = doc! {field: {"$lt": cutoff_ms}};
            let n = if dry_run {
                coll.count_documents(old).await
            } else {
                coll.delete_many(old).await.map(|r| r.deleted_count)
            }
            .with_context(|| format!("expiring MongoDB {collection}"))?;
            out.documents.push((collection, n));
        }
        Ok(out)
    }
}
