//! The delivery rules against in-memory stand-ins that log what happens, in order.
use super::*;
use crate::record::DeadLetter;
use ecom_proto::v1::{EnrichedEvent, Event};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type Log = Arc<Mutex<Vec<String>>>;

fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

fn entries(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

/// Documents by id (a rewrite overwrites, as in the real stores); fails the first
/// `failures` writes, and refuses for good the documents whose ids are in `refuse`.
struct MemStore {
    docs: Mutex<HashMap<String, EnrichedEvent>>,
    failures: Mutex<u32>,
    refuse: Vec<String>,
    log: Log,
}

impl MemStore {
    fn new(failures: u32, log: &Log) -> Self {
        Self { docs: Mutex::default(), failures: Mutex::new(failures), refuse: Vec::new(), log: log.clone() }
    }
}

impl Store for MemStore {
    async fn write(&self, batch: &Batch) -> anyhow::Result<Vec<Rejected>> {
        {
            let mut failures = self.failures.lock().unwrap();
            if *failures > 0 {
                *failures -= 1;
                self.log.lock().unwrap().push("write failed".into());
                anyhow::bail!("the store is away");
            }
        }
        let mut rejected = Vec::new();
        let mut docs = self.docs.lock().unwrap();
        for e in &batch.events {
            let id = e.event.as_ref().unwrap().event_id.clone();
            if self.refuse.contains(&id) {
                rejected.push(Rejected {
                    store: "elasticsearch",
                    collection: "events",
                    id,
                    target: "ecom-events-1970.01.01".into(),
                    reason: "mapper_parsing_exception".into(),
                    document: serde_json::json!({}),
                });
            } else {
                docs.insert(id, e.clone());
            }
        }
        self.log.lock().unwrap().push(format!("wrote {}", docs.len()));
        Ok(rejected)
    }
}

/// Logs what it would publish; refuses everything when `down`.
struct MemDeadLetters {
    down: bool,
    log: Log,
}

impl DeadLetters for MemDeadLetters {
    async fn publish(&self, batch: &Batch, rejected: &[Rejected]) -> anyhow::Result<()> {
        if self.down {
            self.log.lock().unwrap().push("publish failed".into());
            anyhow::bail!("the dead-letter topic is away");
        }
        let ids: Vec<String> = batch.dead.iter().map(|d| d.id()).chain(rejected.iter().map(|r| r.id.clone())).collect();
        self.log.lock().unwrap().push(format!("published {ids:?}"));
        Ok(())
    }
}

/// Logs pauses, resumes and commits; the first `failed_commits` commits fail.
struct MemSource {
    paused_ms: u128,
    committed: Option<Offsets>,
    failed_commits: u32,
    log: Log,
}

impl MemSource {
    fn new(log: &Log) -> Self {
        Self { paused_ms: 0, committed: None, failed_commits: 0, log: log.clone() }
    }
}

impl Source for MemSource {
    async fn pause_for(&mut self, wait: Duration) {
        self.paused_ms += wait.as_millis();
        self.log.lock().unwrap().push(format!("paused {} ms", wait.as_millis()));
        tokio::time::sleep(wait).await;
    }

    fn resume(&mut self) {
        self.log.lock().unwrap().push("resumed".into());
    }

    fn commit(&mut self, offsets: &Offsets, _wait: bool) -> anyhow::Result<()> {
        if self.failed_commits > 0 {
            self.failed_commits -= 1;
            self.log.lock().unwrap().push("commit failed".into());
            anyhow::bail!("a rebalance took the partition");
        }
        self.log.lock().unwrap().push("committed".into());
        self.committed = Some(offsets.clone());
        Ok(())
    }
}

fn batch(n: usize) -> (Batch, Offsets) {
    let mut b = Batch::default();
    for i in 0..n {
        let event = Event { event_id: format!("e{i}"), ..Default::default() };
        b.events.push(EnrichedEvent { event: Some(event), ..Default::default() });
    }
    b.dead.push(DeadLetter {
        kind: Kind::Event,
        topic: "ecom.events.enriched".into(),
        partition: 0,
        offset: n as i64,
        raw: vec![0x0f],
        reason: "not an ecom.v1.EnrichedEvent".into(),
    });
    let offsets = Offsets::from([(("ecom.events.enriched".to_string(), 0), n as i64 + 1)]);
    (b, offsets)
}

fn running() -> tokio::sync::watch::Receiver<bool> {
    tokio::sync::watch::channel(false).1
}

/// The sink's driver with a backoff of 100 ms doubling to 400 ms.
fn driver<'a>(
    store: &'a MemStore,
    dead: &'a MemDeadLetters,
    stop: &'a tokio::sync::watch::Receiver<bool>,
    health: &'a Health,
) -> Driver<'a, MemStore, MemDeadLetters> {
    let backoff = Backoff { first: Duration::from_millis(100), max: Duration::from_millis(400) };
    Driver { store, dead_letters: dead, stop: stop.clone(), health, backoff }
}

#[tokio::test]
async fn offsets_are_committed_only_after_the_stores_took_the_batch_and_its_dead_letters_are_out() {
    let log = log();
    let (store, dead) = (MemStore::new(2, &log), MemDeadLetters { down: false, log: log.clone() });
    let mut source = MemSource::new(&log);
    let health = Health::default();
    let (b, offsets) = batch(3);
    driver(&store, &dead, &running(), &health).deliver(&mut source, &b, &offsets).await.unwrap();
    assert_eq!(
        entries(&log),
        [
            "write failed",
            "paused 100 ms",
            "write failed",
            "paused 200 ms",
            "wrote 3",
            "resumed",
            "published [\"ecom.events.enriched/0/3\"]",
            "committed"
        ]
    );
    assert_eq!(source.committed, Some(offsets));
    assert_eq!(health.get(), None, "healthy again once the batch is written");
}

#[tokio::test]
async fn documents_a_store_refuses_for_good_become_dead_letters_before_the_commit() {
    let log = log();
    let mut store = MemStore::new(0, &log);
    store.refuse = vec!["e1".into()];
    let dead = MemDeadLetters { down: false, log: log.clone() };
    let mut source = MemSource::new(&log);
    let (b, offsets) = batch(3);
    driver(&store, &dead, &running(), &Health::default()).deliver(&mut source, &b, &offsets).await.unwrap();
    assert_eq!(entries(&log), ["wrote 2", "resumed", "published [\"ecom.events.enriched/0/3\", \"e1\"]", "committed"]);
}

#[tokio::test]
async fn a_dead_letter_topic_that_refuses_leaves_the_offsets_where_they_were() {
    let log = log();
    let (store, dead) = (MemStore::new(0, &log), MemDeadLetters { down: true, log: log.clone() });
    let mut source = MemSource::new(&log);
    let (b, offsets) = batch(2);
    let err =
        driver(&store, &dead, &running(), &Health::default()).deliver(&mut source, &b, &offsets).await.unwrap_err();
    assert!(format!("{err:#}").contains("the batch will be read again"), "{err:#}");
    assert_eq!(entries(&log), ["wrote 2", "resumed", "publish failed"]);
    assert_eq!(source.committed, None);
}

#[tokio::test]
async fn on_shutdown_a_store_that_keeps_failing_is_given_up_after_three_attempts_uncommitted() {
    let log = log();
    let (store, dead) = (MemStore::new(u32::MAX, &log), MemDeadLetters { down: false, log: log.clone() });
    let mut source = MemSource::new(&log);
    let (stop_tx, stop) = tokio::sync::watch::channel(true);
    let health = Health::default();
    let (b, offsets) = batch(2);
    let err = driver(&store, &dead, &stop, &health).deliver(&mut source, &b, &offsets).await.unwrap_err();
    drop(stop_tx);
    assert!(format!("{err:#}").contains("giving up on shutdown"), "{err:#}");
    assert_eq!(
        entries(&log),
        ["write failed", "paused 100 ms", "write failed", "paused 200 ms", "write failed", "resumed"]
    );
    assert_eq!(source.committed, None);
    assert!(health.get().unwrap().contains("attempt 3"), "{:?}", health.get());
}

#[tokio::test]
async fn a_failed_commit_loses_nothing_the_batch_read_again_overwrites_its_own_documents() {
    let log = log();
    let (store, dead) = (MemStore::new(0, &log), MemDeadLetters { down: false, log: log.clone() });
    let mut source = MemSource { failed_commits: 1, ..MemSource::new(&log) };
    let (b, offsets) = batch(4);
    // The commit fails: the delivery still succeeds (the records are read again) ...
    driver(&store, &dead, &running(), &Health::default()).deliver(&mut source, &b, &offsets).await.unwrap();
    assert_eq!(source.committed, None);
    // ... and delivering the same batch again leaves each document once.
    driver(&store, &dead, &running(), &Health::default()).deliver(&mut source, &b, &offsets).await.unwrap();
    assert_eq!(store.docs.lock().unwrap().len(), 4);
    assert_eq!(source.committed, Some(offsets));
    let log = entries(&log);
    assert_eq!(log.iter().filter(|l| *l == "wrote 4").count(), 2);
    assert_eq!(log.iter().filter(|l| *l == "commit failed").count(), 1);
}

#[tokio::test]
async fn the_backoff_doubles_up_to_its_cap() {
    let log = log();
    let (store, dead) = (MemStore::new(5, &log), MemDeadLetters { down: false, log: log.clone() });
    let mut source = MemSource::new(&log);
    let (b, offsets) = batch(1);
    driver(&store, &dead, &running(), &Health::default()).deliver(&mut source, &b, &offsets).await.unwrap();
    let pauses: Vec<String> = entries(&log).into_iter().filter(|l| l.starts_with("paused")).collect();
    assert_eq!(pauses, ["paused 100 ms", "paused 200 ms", "paused 400 ms", "paused 400 ms", "paused 400 ms"]);
    assert_eq!(source.paused_ms, 1_500);
    assert_eq!(Backoff::STORES.first, Duration::from_millis(100));
    assert_eq!(Backoff::STORES.max, Duration::from_secs(10));
}
