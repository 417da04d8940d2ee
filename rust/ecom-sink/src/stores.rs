//! The two stores behind the sink: Elasticsearch (_bulk, _id = event_id) and MongoDB (one
//! multi-statement `update` command with upserts, _id = event_id). One round trip each per batch.
use crate::{doc, SinkConfig};
use anyhow::{bail, Context};
use ecom_proto::v1::EnrichedEvent;
use elasticsearch::http::request::JsonBody;
use elasticsearch::http::transport::Transport;
use elasticsearch::indices::IndicesPutIndexTemplateParts;
use elasticsearch::{BulkParts, Elasticsearch};
use mongodb::bson::{self, doc, Bson, Document};
use serde_json::{json, Value};

/// Longest one store may take for one batch before the write counts as failed.
pub const STORE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Collection of dead-lettered records (undecodable payloads) in the MongoDB database.
pub const DEADLETTER_COLLECTION: &str = "sink_deadletter";
/// Collection holding enriched events.
pub const EVENTS_COLLECTION: &str = "events";

/// Connected clients for both stores.
#[derive(Debug, Clone)]
pub struct Stores {
    es: Elasticsearch,
    db: mongodb::Database,
    index_prefix: String,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Stores {
    /// Connects to both stores and checks they answer.
    pub async fn connect(cfg: &SinkConfig) -> anyhow::Result<Self> {
        let transport =
            Transport::single_node(&cfg.es_url).with_context(|| format!("bad Elasticsearch URL {:?}", cfg.es_url))?;
        let es = Elasticsearch::new(transport);
        es.ping()
            .send()
            .await
            .with_context(|| format!("Elasticsearch at {} does not answer (run dev/up?)", cfg.es_url))?;
        let mut opts = mongodb::options::ClientOptions::parse(&cfg.mongo_url)
            .await
            .with_context(|| format!("bad MongoDB URL {:?}", cfg.mongo_url))?;
        opts.server_selection_timeout = Some(std::time::Duration::from_secs(10));
        opts.app_name = Some("ecom-sink".into());
        let client = mongodb::Client::with_options(opts)?;
        let db = client.database(&cfg.mongo_db);
        db.run_command(doc! {"ping": 1})
            .await
            .with_context(|| format!("MongoDB at {} does not answer (run dev/up?)", cfg.mongo_url))?;
        Ok(Self { es, db, index_prefix: cfg.index_prefix.clone() })
    }

    /// Installs the Elasticsearch index template (idempotent).
    pub async fn ensure_schema(&self) -> anyhow::Result<()> {
        let name = self.index_prefix.clone();
        let resp = self
            .es
            .indices()
            .put_index_template(IndicesPutIndexTemplateParts::Name(&name))
            .body(doc::index_template(&self.index_prefix))
            .send()
            .await
            .context("installing the Elasticsearch index template")?;
        if !resp.status_code().is_success() {
            let body = resp.text().await.unwrap_or_default();
            bail!("Elasticsearch rejected index template {name}: {body}");
        }
        Ok(())
    }

    /// (event_id, index, document) for each event; every event must carry an event_id.
    fn docs(&self, batch: &[EnrichedEvent]) -> Vec<(String, String, Value)> {
        let indexed_at = now_ms();
        batch
            .iter()
            .map(|e| {
                let ev = e.event.as_ref().expect("checked when batching");
                (
                    ev.event_id.clone(),
                    doc::daily_index(&self.index_prefix, ev.event_time_ms),
                    doc::to_doc(e, indexed_at),
                )
            })
            .collect()
    }

    /// The MongoDB half of `write` alone, for `ecom bench sink`.
    pub async fn write_mongo_only(&self, batch: &[EnrichedEvent]) -> anyhow::Result<()> {
        self.write_mongo(&self.docs(batch)).await
    }

    /// Writes a batch to both stores; Ok only when both acknowledged every document.
    pub async fn write(&self, batch: &[EnrichedEvent], dead: &[(Vec<u8>, String)]) -> anyhow::Result<()> {
        if !batch.is_empty() {
            let docs = self.docs(batch);
            // A store that stops answering must surface as an error (and a retry), not a hang.
            let (es, mongo) = tokio::join!(
                tokio::time::timeout(STORE_TIMEOUT, self.write_es(&docs)),
                tokio::time::timeout(STORE_TIMEOUT, self.write_mongo(&docs))
            );
            es.map_err(|_| {
                anyhow::anyhow!(
                    "Elasticsearch did not finish a _bulk of {} documents within {STORE_TIMEOUT:?}",
                    docs.len()
                )
            })??;
            mongo.map_err(|_| {
                anyhow::anyhow!("MongoDB did not finish writing {} documents within {STORE_TIMEOUT:?}", docs.len())
            })??;
        }
        if !dead.is_empty() {
            let docs: Vec<Document> = dead
                .iter()
                .map(|(raw, why)| {
                    doc! {"raw": Bson::Binary(bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: raw.clone() }), "reason": why, "at_ms": now_ms()}
                })
                .collect();
            self.db
                .collection::<Document>(DEADLETTER_COLLECTION)
                .insert_many(docs)
                .await
                .context("writing the sink dead letter")?;
        }
        Ok(())
    }

    async fn write_es(&self, docs: &[(String, String, Value)]) -> anyhow::Result<()> {
        let mut body: Vec<JsonBody<Value>> = Vec::with_capacity(docs.len() * 2);
        for (id, index, d) in docs {
            body.push(json!({"index": {"_index": index, "_id": id}}).into());
            body.push(d.clone().into());
        }
        let resp = self.es.bulk(BulkParts::None).body(body).send().await.context("Elasticsearch _bulk request")?;
        let status = resp.status_code();
        let v: Value = resp.json().await.context("reading the _bulk response")?;
        if !status.is_success() {
            bail!("Elasticsearch _bulk answered {status}: {v}");
        }
        if v["errors"].as_bool() == Some(true) {
            let first = v["items"].as_array().and_then(|items| items.iter().find(|i| i["index"]["error"].is_object()));
            bail!("Elasticsearch _bulk had item errors, first: {}", first.cloned().unwrap_or_default());
        }
        Ok(())
    }

    /// Upsert by _id in steps that stay usable on the local FerretDB (measured on its SQLite
    /// backend: a 500-statement `update` grows with collection size, ~30 docs/s at 4k docs;
    /// a single replace or delete by _id scans the collection, ~0.7-1.5 s each at 58k docs;
    /// `insert` of 1,000 documents takes ~0.2 s; one `$in` delete of 1,000 ids ~11 s at 58k
    /// docs). So: insert the batch unordered; the documents whose _id already existed (replays
    /// only) are deleted with one `$in` and inserted again. On MongoDB itself all of these are
    /// index lookups. If the sink dies between the delete and the insert, the batch's offsets
    /// are not committed, so the documents come back when it is re-read.
    async fn write_mongo(&self, docs: &[(String, String, Value)]) -> anyhow::Result<()> {
        const DUPLICATE_KEY: i32 = 11000;
        let coll = self.db.collection::<Document>(EVENTS_COLLECTION);
        let mut encoded = Vec::with_capacity(docs.len());
        for (id, _, d) in docs {
            let mut u = bson::to_document(d).context("encoding a document as BSON")?;
            u.insert("_id", id.clone());
            encoded.push(u);
        }
        let existing: Vec<usize> = match coll.insert_many(encoded.clone()).ordered(false).await {
            Ok(_) => return Ok(()),
            Err(e) => match *e.kind {
                mongodb::error::ErrorKind::InsertMany(ref ime) if ime.write_concern_error.is_none() => {
                    let errs = ime.write_errors.clone().unwrap_or_default();
                    if let Some(other) = errs.iter().find(|w| w.code != DUPLICATE_KEY) {
                        bail!("MongoDB rejected a document of the batch: code {} {}", other.code, other.message);
                    }
                    errs.iter().map(|w| w.index).collect()
                }
                _ => return Err(anyhow::Error::new(e).context("MongoDB insert_many")),
            },
        };
        tracing::debug!(replays = existing.len(), of = docs.len(), "replacing replayed documents");
        metrics::counter!("ecom_sink_mongo_replaced_total").increment(existing.len() as u64);
        let ids: Vec<&str> = existing.iter().map(|&i| docs[i].0.as_str()).collect();
        coll.delete_many(doc! {"_id": {"$in": ids}}).await.context("MongoDB delete of replayed documents")?;
        coll.insert_many(existing.iter().map(|&i| encoded[i].clone()))
            .ordered(false)
            .await
            .context("MongoDB insert of replayed documents")?;
        Ok(())
    }
}
