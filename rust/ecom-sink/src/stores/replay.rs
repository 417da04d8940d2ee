//! Replaying the sink's dead letters to the store that refused them.
use super::*;

/// Which of the sink's dead letters [`Stores::replay`] sends again: those of a store refused
/// documents, not yet replayed, whose reason contains `reason` and that were written within
/// `[since_ms, until_ms]`.
#[derive(Debug, Clone, Default)]
pub struct ReplayFilter {
    /// "elasticsearch" or "mongodb"; both when `None`.
    pub store: Option<String>,
    /// A part of the store's reason, e.g. "index_closed_exception".
    pub reason: Option<String>,
    /// Written at or after (ms since epoch).
    pub since_ms: Option<i64>,
    /// Written at or before (ms since epoch).
    pub until_ms: Option<i64>,
    /// Count what would be replayed, write nothing.
    pub dry_run: bool,
}

/// What a replay did. `matched = replayed + refused` (+ 0 when not a dry run); a refused
/// letter stays pending with the store's new reason.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplayReport {
    /// Dead letters the filter chose.
    pub matched: u64,
    /// Stored this time, by the record's own id (a document already there is overwritten, not
    /// duplicated); the dead letter is marked `replayed_at_ms`.
    pub replayed: u64,
    /// Refused again; the dead letter keeps `replayed_at_ms` unset and records `replay_reason`.
    pub refused: u64,
    /// The first store reason of a refusal.
    pub first_refusal: Option<String>,
}

/// Adds `field` in `[since_ms, until_ms]` to a MongoDB filter (either end may be open).
pub fn add_ms_range(q: &mut Document, field: &str, since_ms: Option<i64>, until_ms: Option<i64>) {
    let mut range = Document::new();
    if let Some(ms) = since_ms {
        range.insert("$gte", ms);
    }
    if let Some(ms) = until_ms {
        range.insert("$lte", ms);
    }
    if !range.is_empty() {
        q.insert(field, range);
    }
}

impl Stores {
    /// Sends the documents of the dead letters `f` chooses to the index or collection each
    /// was refused by, under the record's own id, and marks each one replayed. Idempotent: a
    /// letter is replayed once, and a document that is already stored is replaced.
    pub async fn replay(&self, f: &ReplayFilter) -> anyhow::Result<ReplayReport> {
        let mut q = doc! {"document": {"$exists": true}, "replayed_at_ms": {"$exists": false}};
        if let Some(store) = &f.store {
            q.insert("store", store);
        }
        add_ms_range(&mut q, "at_ms", f.since_ms, f.until_ms);
        let coll = self.db.collection::<Document>(DEADLETTER_COLLECTION);
        let mut cursor = coll.find(q).await.context("reading the sink dead letter")?;
        let mut letters = Vec::new();
        while cursor.advance().await.context("reading the sink dead letter")? {
            let l = cursor.deserialize_current().context("decoding a sink dead letter")?;
            let reason = l.get_str("reason").unwrap_or_default();
            if f.reason.as_ref().is_none_or(|r| reason.contains(r.as_str())) {
                letters.push(l);
            }
        }
        let mut report = ReplayReport { matched: letters.len() as u64, ..Default::default() };
        if f.dry_run {
            return Ok(report);
        }
        for chunk in letters.chunks(500) {
            let mut es: Vec<(&Document, Doc)> = Vec::new();
            let mut mongo: BTreeMap<String, Vec<(&Document, Doc)>> = BTreeMap::new();
            for l in chunk {
                let (id, target) =
                    (l.get_str("record_id").unwrap_or_default(), l.get_str("target").unwrap_or_default());
                let body: Value = serde_json::from_str(l.get_str("document").unwrap_or("null"))
                    .with_context(|| format!("dead letter {:?}: its document is not JSON", l.get("_id")))?;
                let d = (id.to_string(), target.to_string(), body);
                match l.get_str("store") {
                    Ok("elasticsearch") => es.push((l, d)),
                    _ => mongo.entry(target.to_string()).or_default().push((l, d)),
                }
            }
            let mut outcome: Vec<(&Document, Option<String>)> = Vec::new();
            if !es.is_empty() {
                let docs: Vec<(&'static str, Vec<Doc>)> = vec![("", es.iter().map(|(_, d)| d.clone()).collect())];
                let refused = self.write_es(&docs).await.context("replaying to Elasticsearch")?;
                for (l, (id, _, _)) in &es {
                    outcome.push((l, refused.iter().find(|r| &r.id == id).map(|r| r.reason.clone())));
                }
            }
            for (collection, docs) in &mongo {
                let plain: Vec<Doc> = docs.iter().map(|(_, d)| d.clone()).collect();
                let refused = self.upsert(collection, bson_docs(&plain)?).await.context("replaying to MongoDB")?;
                for (l, (id, _, _)) in docs {
                    outcome.push((l, refused.iter().find(|r| &r.id == id).map(|r| r.reason.clone())));
                }
            }
            let now = now_ms();
            for (l, refused) in outcome {
                let set = match &refused {
                    None => doc! {"$set": {"replayed_at_ms": now}},
                    Some(why) => doc! {"$set": {"replay_reason": why, "replay_tried_at_ms": now}},
                };
                coll.update_one(doc! {"_id": l.get("_id").cloned().unwrap_or(Bson::Null)}, set)
                    .await
                    .context("marking a replayed dead letter")?;
                match refused {
                    None => report.replayed += 1,
                    Some(why) => {
                        report.refused += 1;
                        report.first_refusal.get_or_insert(why);
                    }
                }
            }
        }
        Ok(report)
    }
}
