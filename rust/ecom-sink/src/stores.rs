//! The two stores behind the sink: Elasticsearch (one _bulk per batch, `_id` = the record's
//! id) and MongoDB (unordered inserts, replays replaced; `_id` = the record's id). Events,
//! sessions, window metrics and the job's rejected records each have their own daily indices
//! and collection; the sink's own dead letters go to MongoDB only.
use crate::record::{invalid_id, Batch, DeadLetter};
use crate::{doc, AggregatesConfig, SinkConfig};
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
/// Collection holding closed sessions.
pub const SESSIONS_COLLECTION: &str = "sessions";
/// Collection holding per-minute DP window metrics.
pub const METRICS_COLLECTION: &str = "metrics";
/// Collection holding the records the job rejected (ecom.events.invalid).
pub const INVALID_COLLECTION: &str = "invalid";

/// Connected clients for both stores.
#[derive(Debug, Clone)]
pub struct Stores {
    es: Elasticsearch,
    db: mongodb::Database,
    index_prefix: String,
    sessions_index_prefix: String,
    metrics_index_prefix: String,
    invalid_index_prefix: String,
}

/// One document on its way to both stores: (id, Elasticsearch index, body).
type Doc = (String, String, Value);

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Stores {
    /// Connects to both stores and checks they answer; sessions and metrics, if written, go
    /// to the default prefixes (`ecom-sessions`, `ecom-metrics`).
    pub async fn connect(cfg: &SinkConfig) -> anyhow::Result<Self> {
        Self::connect_with(cfg, &AggregatesConfig::default()).await
    }

    /// Connects to both stores, sessions and metrics indexed under `agg`'s prefixes.
    pub async fn connect_with(cfg: &SinkConfig, agg: &AggregatesConfig) -> anyhow::Result<Self> {
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
        Ok(Self {
            es,
            db,
            index_prefix: cfg.index_prefix.clone(),
            sessions_index_prefix: agg.sessions_index_prefix.clone(),
            metrics_index_prefix: agg.metrics_index_prefix.clone(),
            invalid_index_prefix: agg.invalid_index_prefix.clone(),
        })
    }

    /// Installs the Elasticsearch index templates of events, sessions, metrics and rejected
    /// records, each named
    /// after its prefix (idempotent).
    pub async fn ensure_schema(&self) -> anyhow::Result<()> {
        for (name, body) in [
            (&self.index_prefix, doc::event_index_template(&self.index_prefix)),
            (&self.sessions_index_prefix, doc::session_index_template(&self.sessions_index_prefix)),
            (&self.metrics_index_prefix, doc::metrics_index_template(&self.metrics_index_prefix)),
            (&self.invalid_index_prefix, doc::invalid_index_template(&self.invalid_index_prefix)),
        ] {
            let resp = self
                .es
                .indices()
                .put_index_template(IndicesPutIndexTemplateParts::Name(name))
                .body(body)
                .send()
                .await
                .with_context(|| format!("installing the Elasticsearch index template {name}"))?;
            if !resp.status_code().is_success() {
                let body = resp.text().await.unwrap_or_default();
                bail!("Elasticsearch rejected index template {name}: {body}");
            }
        }
        Ok(())
    }

    /// The documents of each kind, with their ids and daily indices; every record carries
    /// its id (checked by `record::decode`).
    fn docs(&self, batch: &Batch) -> [(&'static str, Vec<Doc>); 4] {
        let at = now_ms();
        let sessions = routed(&batch.sessions, &self.sessions_index_prefix, |s| {
            (s.id.clone(), s.start_ms, doc::session_doc(s, at))
        });
        let metrics = routed(&batch.metrics, &self.metrics_index_prefix, |m| {
            (m.id.clone(), m.window_start_ms, doc::metrics_doc(m, at))
        });
        let invalid = routed(&batch.invalid, &self.invalid_index_prefix, |e| {
            (invalid_id(e).unwrap_or_default(), e.rejected_at_ms, doc::invalid_doc(e, at))
        });
        [
            (EVENTS_COLLECTION, self.event_docs(&batch.events, at)),
            (SESSIONS_COLLECTION, sessions),
            (METRICS_COLLECTION, metrics),
            (INVALID_COLLECTION, invalid),
        ]
    }

    fn event_docs(&self, events: &[EnrichedEvent], at: i64) -> Vec<Doc> {
        routed(events, &self.index_prefix, |e| {
            let ev = e.event.clone().unwrap_or_default();
            (ev.event_id, ev.event_time_ms, doc::to_doc(e, at))
        })
    }

    /// The MongoDB half of `write` for events alone, for `ecom bench sink`.
    pub async fn write_mongo_only(&self, batch: &[EnrichedEvent]) -> anyhow::Result<()> {
        let docs = self.event_docs(batch, now_ms());
        self.upsert(EVENTS_COLLECTION, bson_docs(&docs)?).await
    }

    /// Writes a batch to both stores; Ok only when both acknowledged every document.
    pub async fn write(&self, batch: &Batch) -> anyhow::Result<()> {
        let kinds = self.docs(batch);
        let n: usize = kinds.iter().map(|(_, d)| d.len()).sum();
        // A store that stops answering must surface as an error (and a retry), not a hang.
        let (es, mongo) = tokio::join!(
            tokio::time::timeout(STORE_TIMEOUT, self.write_es(kinds.iter().flat_map(|(_, d)| d))),
            tokio::time::timeout(STORE_TIMEOUT, self.write_mongo(&kinds, &batch.dead))
        );
        es.map_err(|_| {
            anyhow::anyhow!("Elasticsearch did not finish a _bulk of {n} documents within {STORE_TIMEOUT:?}")
        })??;
        mongo.map_err(|_| {
            anyhow::anyhow!(
                "MongoDB did not finish writing {n} documents and {} dead letters within {STORE_TIMEOUT:?}",
                batch.dead.len()
            )
        })??;
        Ok(())
    }

    async fn write_mongo(&self, kinds: &[(&'static str, Vec<Doc>)], dead: &[DeadLetter]) -> anyhow::Result<()> {
        for (collection, docs) in kinds {
            if !docs.is_empty() {
                self.upsert(collection, bson_docs(docs)?).await.with_context(|| format!("MongoDB {collection}"))?;
            }
        }
        if !dead.is_empty() {
            let at_ms = now_ms();
            let docs = dead
                .iter()
                .map(|d| {
                    let raw = Bson::Binary(bson::Binary {
                        subtype: bson::spec::BinarySubtype::Generic,
                        bytes: d.raw.clone(),
                    });
                    (
                        d.id(),
                        doc! {"_id": d.id(), "kind": d.kind.as_str(), "topic": &d.topic, "partition": d.partition,
                        "offset": d.offset, "reason": &d.reason, "raw": raw, "at_ms": at_ms},
                    )
                })
                .collect();
            self.upsert(DEADLETTER_COLLECTION, docs).await.context("writing the sink dead letter")?;
        }
        Ok(())
    }

    async fn write_es(&self, docs: impl Iterator<Item = &Doc>) -> anyhow::Result<()> {
        let mut body: Vec<JsonBody<Value>> = Vec::new();
        for (id, index, d) in docs {
            body.push(json!({"index": {"_index": index, "_id": id}}).into());
            body.push(d.clone().into());
        }
        if body.is_empty() {
            return Ok(());
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

    /// Upsert by _id in steps that stay fast on the local FerretDB as on MongoDB: insert the
    /// batch unordered; the documents whose _id already existed (replays only) are deleted with
    /// one `delete` command of one `{_id: id}` statement each and inserted again. Measured on
    /// FerretDB's SQLite backend at 100k documents (dev/ferretdb adds the _id path index its
    /// filters need): `insert` of 1,000 documents ~0.1-0.2 s; a `{_id: id}` delete statement
    /// ~0.4 ms; one `{_id: {$in: [...]}}` delete ~18 s whatever its size (FerretDB filters `$in`
    /// by reading the whole collection). `update` is avoided: a command of 100 or more
    /// statements that match existing documents hangs FerretDB v1.24's SQLite connection pool.
    /// If the sink dies between the delete and the insert, the batch's offsets are not
    /// committed, so the documents come back when it is re-read.
    async fn upsert(&self, collection: &str, docs: Vec<(String, Document)>) -> anyhow::Result<()> {
        const DUPLICATE_KEY: i32 = 11000;
        let coll = self.db.collection::<Document>(collection);
        // The same id twice in one batch (a record re-read with its replay) would fail the
        // re-insert below on every retry: keep the last, as sequential upserts would.
        let mut seen = std::collections::HashSet::new();
        let mut docs: Vec<_> = docs.into_iter().rev().filter(|(id, _)| seen.insert(id.clone())).collect();
        docs.reverse();
        let (ids, encoded): (Vec<String>, Vec<Document>) = docs.into_iter().unzip();
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
        tracing::debug!(collection, replays = existing.len(), of = ids.len(), "replacing replayed documents");
        metrics::counter!("ecom_sink_mongo_replaced_total", "collection" => collection.to_string())
            .increment(existing.len() as u64);
        let deletes: Vec<Document> = existing.iter().map(|&i| doc! {"q": {"_id": &ids[i]}, "limit": 0}).collect();
        let reply = self
            .db
            .run_command(doc! {"delete": collection, "deletes": deletes, "ordered": false})
            .await
            .context("MongoDB delete of replayed documents")?;
        if let Some(Bson::Array(errs)) = reply.get("writeErrors") {
            if let Some(first) = errs.first() {
                bail!("MongoDB delete of replayed documents: {} write errors, first: {first}", errs.len());
            }
        }
        coll.insert_many(existing.iter().map(|&i| encoded[i].clone()))
            .ordered(false)
            .await
            .context("MongoDB insert of replayed documents")?;
        Ok(())
    }
}

/// Each record's (id, daily index under `prefix` by the time `encode` gives, document).
fn routed<T>(records: &[T], prefix: &str, encode: impl Fn(&T) -> (String, i64, Value)) -> Vec<Doc> {
    records
        .iter()
        .map(|r| {
            let (id, time_ms, body) = encode(r);
            (id, doc::daily_index(prefix, time_ms), body)
        })
        .collect()
}

/// The BSON of each document with `_id` set to its id.
fn bson_docs(docs: &[Doc]) -> anyhow::Result<Vec<(String, Document)>> {
    docs.iter()
        .map(|(id, _, d)| {
            let mut u = bson::to_document(d).with_context(|| format!("encoding document {id} as BSON"))?;
            u.insert("_id", id.clone());
            Ok((id.clone(), u))
        })
        .collect()
}
