//! Elasticsearch's side of a write: one `_bulk` of every document, the items it answers 429 or
//! 5xx sent again, the ones it refuses for good returned as [`Rejected`].
use super::*;

/// Tries of the items Elasticsearch answers 429 or 5xx within one write, before the whole
/// batch counts as failed (and is retried from the start, after the sink's backoff).
pub const ES_ITEM_TRIES: u32 = 5;

/// What Elasticsearch did with one item of a `_bulk`.
#[derive(Debug, PartialEq)]
enum Item {
    Stored,
    /// 429 or 5xx: worth another try.
    Retry(String),
    /// Anything else: it will never be stored as it is.
    Refused(String),
}

fn bulk_item(item: &Value) -> Item {
    let r = item.as_object().and_then(|o| o.values().next()).cloned().unwrap_or_default();
    let status = r["status"].as_u64().unwrap_or(0);
    if (200..300).contains(&status) && r["error"].is_null() {
        return Item::Stored;
    }
    let why = format!(
        "{status} {}: {}",
        r["error"]["type"].as_str().unwrap_or("no error type"),
        r["error"]["reason"].as_str().unwrap_or("no reason given")
    );
    if status == 429 || status >= 500 || status == 0 {
        Item::Retry(why)
    } else {
        Item::Refused(why)
    }
}

/// Up to half of `d` more, from the clock's nanoseconds: enough to keep retries of many sinks
/// from arriving together.
fn jittered(d: std::time::Duration) -> std::time::Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |t| t.subsec_nanos());
    d + d.mul_f64(f64::from(nanos % 1_000) / 2_000.0)
}

impl Stores {
    /// One `_bulk` of every document; the items Elasticsearch answers 429 or 5xx are sent again
    /// (backoff with jitter, [`ES_ITEM_TRIES`] tries), the ones it refuses for good are returned.
    /// A request that fails as a whole is an error: the batch is retried, nothing committed.
    pub(super) async fn write_es(&self, kinds: &[(&'static str, Vec<Doc>)]) -> anyhow::Result<Vec<Rejected>> {
        let mut pending: Vec<(&'static str, &Doc)> =
            kinds.iter().flat_map(|(c, docs)| docs.iter().map(move |d| (*c, d))).collect();
        let mut rejected = Vec::new();
        let mut backoff = std::time::Duration::from_millis(100);
        let mut last = String::new();
        for attempt in 1..=ES_ITEM_TRIES {
            if pending.is_empty() {
                break;
            }
            if attempt > 1 {
                tokio::time::sleep(jittered(backoff)).await;
                backoff *= 2;
            }
            let mut body: Vec<JsonBody<Value>> = Vec::with_capacity(2 * pending.len());
            for (_, (id, index, d)) in &pending {
                body.push(json!({"index": {"_index": index, "_id": id}}).into());
                body.push(d.clone().into());
            }
            let resp = self.es.bulk(BulkParts::None).body(body).send().await.context("Elasticsearch _bulk request")?;
            let status = resp.status_code();
            let v: Value = resp.json().await.context("reading the _bulk response")?;
            if !status.is_success() {
                bail!("Elasticsearch _bulk answered {status}: {v}");
            }
            let items = v["items"].as_array().map(Vec::as_slice).unwrap_or_default();
            if items.len() != pending.len() {
                bail!("Elasticsearch _bulk answered {} items for {} documents", items.len(), pending.len());
            }
            let mut retry = Vec::new();
            for (item, (collection, doc)) in items.iter().zip(pending) {
                let (id, index, d) = doc;
                match bulk_item(item) {
                    Item::Stored => {}
                    Item::Retry(why) => {
                        last = why;
                        retry.push((collection, doc));
                    }
                    Item::Refused(reason) => rejected.push(Rejected {
                        store: "elasticsearch",
                        collection,
                        id: id.clone(),
                        target: index.clone(),
                        reason,
                        document: d.clone(),
                    }),
                }
            }
            if !retry.is_empty() {
                metrics::counter!("ecom_sink_es_item_retries_total").increment(retry.len() as u64);
                tracing::warn!(items = retry.len(), attempt, reason = %last, "Elasticsearch asked to retry items");
            }
            pending = retry;
        }
        if !pending.is_empty() {
            bail!(
                "Elasticsearch still answered 429/5xx for {} documents after {ES_ITEM_TRIES} tries, last: {last}",
                pending.len()
            );
        }
        Ok(rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_items_are_stored_retried_or_refused_by_their_own_status() {
        let item = |status: u64, error: Value| json!({"index": {"_id": "x", "status": status, "error": error}});
        assert_eq!(bulk_item(&item(201, Value::Null)), Item::Stored);
        assert_eq!(bulk_item(&item(200, Value::Null)), Item::Stored);
        let busy = json!({"type": "es_rejected_execution_exception", "reason": "queue full"});
        assert_eq!(bulk_item(&item(429, busy)), Item::Retry("429 es_rejected_execution_exception: queue full".into()));
        assert!(matches!(bulk_item(&item(503, json!({"type": "unavailable_shards_exception"}))), Item::Retry(_)));
        let closed = json!({"type": "index_closed_exception", "reason": "closed"});
        assert_eq!(bulk_item(&item(400, closed)), Item::Refused("400 index_closed_exception: closed".into()));
        assert!(matches!(bulk_item(&item(400, json!({"type": "document_parsing_exception"}))), Item::Refused(_)));
    }

    #[test]
    fn jitter_adds_at_most_half() {
        let d = std::time::Duration::from_millis(100);
        let j = jittered(d);
        assert!(j >= d && j <= d + d / 2, "{j:?}");
    }
}
