//! The two stores behind the sink: Elasticsearch (one _bulk per batch, `_id` = the record's
//! id) and MongoDB (unordered inserts, replays replaced; `_id` = the record's id). Events,
//! sessions, window metrics and the job's rejected records each have their own daily indices
//! and collection; the sink's own dead letters go to MongoDB only.
use crate::record::{invalid_id, Batch, DeadLetter, Kind};
use crate::{doc, SinkConfig};
use anyhow::{bail, Context};
use ecom_core::now_ms;
use ecom_core::secret::SecretUrl;
use ecom_proto::v1::EnrichedEvent;
use elasticsearch::auth::Credentials;
use elasticsearch::http::request::JsonBody;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::indices::{IndicesPutIndexTemplateParts, IndicesPutSettingsParts};
use elasticsearch::{BulkParts, Elasticsearch};
use mongodb::bson::{self, doc, Bson, Document};
use serde_json::{json, Value};
use std::collections::BTreeMap;

mod es;
mod expire;
mod replay;
pub use es::ES_ITEM_TRIES;
pub use expire::Expired;
pub use replay::{add_ms_range, ReplayFilter, ReplayReport};

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
/// Collection holding each model version's live quality per window (ecom.quality).
pub const QUALITY_COLLECTION: &str = "quality";

/// A document a store refused for good (Elasticsearch: an item status other than 2xx, 429 and
/// 5xx, e.g. a mapping error or a closed index; MongoDB: a write error other than a duplicate
/// key). It goes to the dead letter with the store's reason and the batch goes on: one bad
/// document never stops the sink.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// "elasticsearch" or "mongodb".
    pub store: &'static str,
    /// The kind's collection name (events, sessions, metrics, invalid).
    pub collection: &'static str,
    /// The record's id.
    pub id: String,
    /// The Elasticsearch index or MongoDB collection it was for.
    pub target: String,
    /// The store's own reason.
    pub reason: String,
    /// The document as it was sent.
    pub document: Value,
}

/// What to do when a request was refused for its server's TLS certificate (signed by a
/// private CA, say), if that is why it failed: a TLS refusal is not an absent server.
pub fn tls_refusal(e: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    std::iter::successors(Some(e), |e| e.source())
        .any(|e| e.to_string().contains("certificate"))
        .then_some("refused its TLS certificate (signed by a private CA? set SSL_CERT_FILE to the CA's PEM)")
}

/// An Elasticsearch client for `url`; its credentials go in basic auth, never in the URL the
/// client reports in its errors.
pub fn es_client(url: &SecretUrl) -> anyhow::Result<Elasticsearch> {
    let base = url.without_credentials();
    let pool = SingleNodeConnectionPool::new(base.parse().with_context(|| format!("bad Elasticsearch URL {url}"))?);
    let mut builder = TransportBuilder::new(pool);
    if let Some(c) = url.credentials() {
        builder = builder.auth(Credentials::Basic(c.user, c.password));
    }
    Ok(Elasticsearch::new(builder.build()?))
}

/// Connected clients for both stores. Not Debug: the Elasticsearch client's would print its
/// credentials.
#[derive(Clone)]
pub struct Stores {
    es: Elasticsearch,
    db: mongodb::Database,
    es_url: SecretUrl,
    mongo_url: SecretUrl,
    index_prefix: String,
    sessions_index_prefix: String,
    metrics_index_prefix: String,
    invalid_index_prefix: String,
    quality_index_prefix: String,
    free_text: crate::FreeText,
    /// `index.refresh_interval` of every index the sink writes, in Elasticsearch's notation.
    refresh_interval: String,
}

/// One document on its way to both stores: (id, Elasticsearch index, body).
type Doc = (String, String, Value);

impl Stores {
    /// Connects to both stores and checks that both answer.
    pub async fn connect(cfg: &SinkConfig) -> anyhow::Result<Self> {
        let stores = Self::new(cfg).await?;
        stores.ping().await?;
        Ok(stores)
    }

    /// The clients of both stores, without asking either anything: fails only on a bad URL.
    pub async fn new(cfg: &SinkConfig) -> anyhow::Result<Self> {
        let es = es_client(&cfg.es_url)?;
        let mut opts = mongodb::options::ClientOptions::parse(cfg.mongo_url.expose())
            .await
            .with_context(|| format!("bad MongoDB URL {}", cfg.mongo_url))?;
        opts.server_selection_timeout = Some(std::time::Duration::from_secs(10));
        opts.app_name = Some("ecom-sink".into());
        let client = mongodb::Client::with_options(opts)?;
        let db = client.database(&cfg.mongo_db);
        Ok(Self {
            es,
            db,
            es_url: cfg.es_url.clone(),
            mongo_url: cfg.mongo_url.clone(),
            index_prefix: cfg.index_prefix.clone(),
            sessions_index_prefix: cfg.sessions_index_prefix.clone(),
            metrics_index_prefix: cfg.metrics_index_prefix.clone(),
            invalid_index_prefix: cfg.invalid_index_prefix.clone(),
            quality_index_prefix: cfg.quality_index_prefix.clone(),
            free_text: cfg.free_text.clone(),
            refresh_interval: format!("{}ms", cfg.es_refresh_interval.as_millis()),
        })
    }

    /// The clients of both stores at these addresses, for work that writes no new records
    /// (replaying dead letters, retention), the indices named `<stem>-events`,
    /// `<stem>-sessions`, … (the sink's prefixes when they follow one stem).
    pub async fn at(es_url: &SecretUrl, mongo_url: &SecretUrl, mongo_db: &str, stem: &str) -> anyhow::Result<Self> {
        let cfg = SinkConfig {
            es_url: es_url.clone(),
            mongo_url: mongo_url.clone(),
            mongo_db: mongo_db.into(),
            ..SinkConfig::with_stem(stem)
        };
        Self::new(&cfg).await
    }

    /// Ok when both stores answer.
    pub async fn ping(&self) -> anyhow::Result<()> {
        if let Err(e) = self.es.ping().send().await {
            let hint = tls_refusal(&e).unwrap_or("does not answer (run dev/up?)");
            return Err(anyhow::Error::new(e).context(format!("Elasticsearch at {} {hint}", self.es_url)));
        }
        self.db
            .run_command(doc! {"ping": 1})
            .await
            .with_context(|| format!("MongoDB at {} does not answer (run dev/up?)", self.mongo_url))?;
        Ok(())
    }

    /// Installs the Elasticsearch index templates of events, sessions, metrics and rejected
    /// records, each named after its prefix, and sets the refresh interval on the indices of
    /// those prefixes that exist already (idempotent).
    pub async fn ensure_schema(&self) -> anyhow::Result<()> {
        for (name, mut body) in [
            (&self.index_prefix, doc::event_index_template(&self.index_prefix)),
            (&self.sessions_index_prefix, doc::session_index_template(&self.sessions_index_prefix)),
            (&self.metrics_index_prefix, doc::metrics_index_template(&self.metrics_index_prefix)),
            (&self.invalid_index_prefix, doc::invalid_index_template(&self.invalid_index_prefix)),
            (&self.quality_index_prefix, doc::quality_index_template(&self.quality_index_prefix)),
        ] {
            body["template"]["settings"]["refresh_interval"] = Value::from(self.refresh_interval.as_str());
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
            // Indices made before get the interval too; a user allowed to manage templates but
            // not index settings still gets it on every new daily index, so this only warns.
            let pattern = format!("{name}-*");
            let why = match self
                .es
                .indices()
                .put_settings(IndicesPutSettingsParts::Index(&[&pattern]))
                .allow_no_indices(true)
                .body(json!({"index": {"refresh_interval": self.refresh_interval}}))
                .send()
                .await
            {
                Ok(resp) if resp.status_code().is_success() => None,
                Ok(resp) => Some(resp.text().await.unwrap_or_default()),
                Err(e) => Some(e.to_string()),
            };
            if let Some(why) = why {
                tracing::warn!(
                    %pattern, %why,
                    "could not set the refresh interval of the existing indices; new ones get it from the template"
                );
            }
        }
        Ok(())
    }

    /// The documents of each kind, with their ids and daily indices; every record carries
    /// its id (checked by `record::decode`).
    fn docs(&self, batch: &Batch) -> [(&'static str, Vec<Doc>); 5] {
        let at = now_ms();
        let sessions = routed(&batch.sessions, &self.sessions_index_prefix, |s| {
            (s.id.clone(), s.start_ms, doc::session_doc(s, at))
        });
        let metrics = routed(&batch.metrics, &self.metrics_index_prefix, |m| {
            (m.id.clone(), m.window_start_ms, doc::metrics_doc(m, at))
        });
        let invalid = routed(&batch.invalid, &self.invalid_index_prefix, |e| {
            (invalid_id(e).unwrap_or_default(), e.rejected_at_ms, doc::invalid_doc(&self.free_text.invalid(e), at))
        });
        let quality = routed(&batch.quality, &self.quality_index_prefix, |q| {
            (q.id.clone(), q.window_start_ms, doc::quality_doc(q, at))
        });
        [
            (EVENTS_COLLECTION, self.event_docs(&batch.events, at)),
            (SESSIONS_COLLECTION, sessions),
            (METRICS_COLLECTION, metrics),
            (INVALID_COLLECTION, invalid),
            (QUALITY_COLLECTION, quality),
        ]
    }

    fn event_docs(&self, events: &[EnrichedEvent], at: i64) -> Vec<Doc> {
        routed(events, &self.index_prefix, |e| {
            let ev = e.event.clone().unwrap_or_default();
            (ev.event_id, ev.event_time_ms, doc::to_doc(&self.free_text.event(e), at))
        })
    }

    /// The MongoDB half of `write` for events alone, for `ecom bench sink`.
    pub async fn write_mongo_only(&self, batch: &[EnrichedEvent]) -> anyhow::Result<()> {
        let docs = self.event_docs(batch, now_ms());
        match self.upsert(EVENTS_COLLECTION, bson_docs(&docs)?).await?.first() {
            Some(r) => bail!("MongoDB refused {}: {}", r.id, r.reason),
            None => Ok(()),
        }
    }

    /// Writes a batch to both stores; Ok when both acknowledged every document or refused it
    /// for good. The refused ones are written to the dead letter (`sink_deadletter`, with the
    /// store's reason and the Kafka position the record was read from) before Ok, and returned.
    pub async fn write(&self, batch: &Batch) -> anyhow::Result<Vec<Rejected>> {
        let kinds = self.docs(batch);
        let n: usize = kinds.iter().map(|(_, d)| d.len()).sum();
        // A store that stops answering must surface as an error (and a retry), not a hang.
        let (es, mongo) = tokio::join!(
            tokio::time::timeout(STORE_TIMEOUT, self.write_es(&kinds)),
            tokio::time::timeout(STORE_TIMEOUT, self.write_mongo(&kinds, &batch.dead))
        );
        let mut rejected = es.map_err(|_| {
            anyhow::anyhow!("Elasticsearch did not finish a _bulk of {n} documents within {STORE_TIMEOUT:?}")
        })??;
        rejected.extend(mongo.map_err(|_| {
            anyhow::anyhow!(
                "MongoDB did not finish writing {n} documents and {} dead letters within {STORE_TIMEOUT:?}",
                batch.dead.len()
            )
        })??);
        if !rejected.is_empty() {
            self.dead_letter_rejected(batch, &rejected).await?;
        }
        Ok(rejected)
    }

    async fn dead_letter_rejected(&self, batch: &Batch, rejected: &[Rejected]) -> anyhow::Result<()> {
        let at_ms = now_ms();
        let docs = rejected
            .iter()
            .map(|r| {
                let (id, letter) = rejected_letter(batch, r);
                let (topic, partition, offset) =
                    (letter["topic"].as_str(), letter["partition"].as_i64(), letter["offset"].as_i64());
                // The document as JSON text: its field names are the store's to refuse, not ours.
                let d = doc! {"_id": &id, "kind": letter["kind"].as_str(), "store": r.store, "target": &r.target,
                "record_id": &r.id, "topic": topic, "partition": partition.map(|p| p as i32), "offset": offset,
                "reason": &r.reason, "document": r.document.to_string(), "at_ms": at_ms};
                (id, d)
            })
            .collect();
        tokio::time::timeout(STORE_TIMEOUT, self.upsert(DEADLETTER_COLLECTION, docs))
            .await
            .map_err(|_| {
                anyhow::anyhow!("MongoDB did not take {} dead letters within {STORE_TIMEOUT:?}", rejected.len())
            })?
            .context("writing refused documents to the sink dead letter")?
            .into_iter()
            .next()
            .map_or(Ok(()), |r| Err(anyhow::anyhow!("MongoDB refused a dead letter too: {}", r.reason)))
    }

    async fn write_mongo(
        &self,
        kinds: &[(&'static str, Vec<Doc>)],
        dead: &[DeadLetter],
    ) -> anyhow::Result<Vec<Rejected>> {
        let mut rejected = Vec::new();
        for (collection, docs) in kinds {
            if !docs.is_empty() {
                let refused =
                    self.upsert(collection, bson_docs(docs)?).await.with_context(|| format!("MongoDB {collection}"))?;
                for r in refused {
                    let document = docs.iter().find(|(id, _, _)| *id == r.id).map(|d| d.2.clone()).unwrap_or_default();
                    rejected.push(Rejected { collection, target: collection.to_string(), document, ..r });
                }
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
            let refused = self.upsert(DEADLETTER_COLLECTION, docs).await.context("writing the sink dead letter")?;
            if let Some(r) = refused.first() {
                bail!("MongoDB refused a dead letter: {}", r.reason);
            }
        }
        Ok(rejected)
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
    async fn upsert(&self, collection: &str, docs: Vec<(String, Document)>) -> anyhow::Result<Vec<Rejected>> {
        const DUPLICATE_KEY: i32 = 11000;
        let coll = self.db.collection::<Document>(collection);
        // The same id twice in one batch (a record re-read with its replay) would fail the
        // re-insert below on every retry: keep the last, as sequential upserts would.
        let mut seen = std::collections::HashSet::new();
        let mut docs: Vec<_> = docs.into_iter().rev().filter(|(id, _)| seen.insert(id.clone())).collect();
        docs.reverse();
        let (ids, encoded): (Vec<String>, Vec<Document>) = docs.into_iter().unzip();
        let mut rejected = Vec::new();
        let existing: Vec<usize> = match coll.insert_many(encoded.clone()).ordered(false).await {
            Ok(_) => return Ok(rejected),
            Err(e) => match *e.kind {
                mongodb::error::ErrorKind::InsertMany(ref ime) if ime.write_concern_error.is_none() => {
                    let errs = ime.write_errors.clone().unwrap_or_default();
                    // A write error other than a duplicate key is about that document alone
                    // (too large, invalid): it will not be stored as it is.
                    for w in errs.iter().filter(|w| w.code != DUPLICATE_KEY) {
                        rejected.push(Rejected {
                            store: "mongodb",
                            collection: "",
                            id: ids[w.index].clone(),
                            target: collection.to_string(),
                            reason: format!("code {}: {}", w.code, w.message),
                            document: Value::Null,
                        });
                    }
                    errs.iter().filter(|w| w.code == DUPLICATE_KEY).map(|w| w.index).collect()
                }
                _ => return Err(anyhow::Error::new(e).context("MongoDB insert_many")),
            },
        };
        if existing.is_empty() {
            return Ok(rejected);
        }
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
        Ok(rejected)
    }
}

/// A refused document's dead letter: its id (`<store>/<collection>/<record id>`) and what it
/// says, including where the sink read the record, the same in MongoDB and on the Kafka topic.
pub fn rejected_letter(batch: &Batch, r: &Rejected) -> (String, Value) {
    let kind = kind_of(r.collection);
    let (topic, partition, offset) = batch.source_of(kind, &r.id);
    let id = format!("{}/{}/{}", r.store, r.collection, r.id);
    let letter = json!({"kind": kind.as_str(), "store": r.store, "target": r.target, "record_id": r.id,
        "topic": topic, "partition": partition, "offset": offset, "reason": r.reason, "document": r.document});
    (id, letter)
}

/// The kind whose documents go to `collection`.
fn kind_of(collection: &str) -> Kind {
    match collection {
        SESSIONS_COLLECTION => Kind::Session,
        METRICS_COLLECTION => Kind::WindowMetrics,
        INVALID_COLLECTION => Kind::Invalid,
        QUALITY_COLLECTION => Kind::Quality,
        _ => Kind::Event,
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
