//! The sink's delivery rules, written against three small traits so that they can be tested
//! without Kafka or the stores (tests.rs, with in-memory ones):
//!
//! 1. a batch is written to the stores until they take it, retrying with backoff
//!    ([`Backoff::STORES`]: 100 ms doubling to 10 s) while the partitions are paused and the consumer stays in its group;
//!    on shutdown a store that keeps failing is given up after 3 attempts;
//! 2. then the batch's dead letters (undecodable records, documents a store refused for good)
//!    are published, every one acknowledged;
//! 3. only then are the batch's offsets committed, without waiting for the broker's answer
//!    (the consumer keeps polling, so a slow or frozen coordinator cannot hold it past its
//!    session timeout), except on shutdown. A failed commit loses nothing: the records are read
//!    again and overwrite their own documents (the stores are idempotent by id).
//!
//! Anything that fails before step 3 leaves the offsets where they were.

use crate::record::{Batch, Kind};
use crate::stores::Rejected;
use crate::Health;
use anyhow::Context;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

mod kafka;
#[cfg(test)]
mod tests;
pub(crate) use kafka::{KafkaDeadLetters, KafkaSource};

/// The offset to commit per (topic, partition): the one after the last record read.
pub(crate) type Offsets = BTreeMap<(String, i32), i64>;

/// Where batches are written: both stores at once ([`crate::stores::Stores`]).
pub(crate) trait Store {
    /// Writes every record of `batch`; Ok with the documents a store refused for good (they
    /// become dead letters), Err when the batch must be written again.
    fn write(&self, batch: &Batch) -> impl Future<Output = anyhow::Result<Vec<Rejected>>> + Send;
}

/// Where the sink's dead letters are published (the dead-letter topic).
pub(crate) trait DeadLetters {
    /// Publishes the batch's undecodable records and `rejected`, each acknowledged.
    fn publish(&self, batch: &Batch, rejected: &[Rejected]) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// The consumer the batches come from.
pub(crate) trait Source {
    /// Reads nothing new for `wait`, staying in the consumer group.
    fn pause_for(&mut self, wait: Duration) -> impl Future<Output = ()> + Send;
    /// Reads again after [`Source::pause_for`]; nothing when not paused.
    fn resume(&mut self);
    /// Commits `offsets`: queued, its outcome reported later, or with `wait` (on shutdown)
    /// acknowledged before it returns.
    fn commit(&mut self, offsets: &Offsets, wait: bool) -> anyhow::Result<()>;
}

/// How long to wait between write attempts: `first`, doubling up to `max`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    pub(crate) first: Duration,
    pub(crate) max: Duration,
}

impl Backoff {
    /// The sink's: 100 ms doubling to 10 s.
    pub(crate) const STORES: Backoff = Backoff { first: Duration::from_millis(100), max: Duration::from_secs(10) };
}

/// Delivers batches: rules 1–3 of the module.
pub(crate) struct Driver<'a, S, D> {
    pub(crate) store: &'a S,
    pub(crate) dead_letters: &'a D,
    /// True once the sink is stopping.
    pub(crate) stop: tokio::sync::watch::Receiver<bool>,
    pub(crate) health: &'a Health,
    pub(crate) backoff: Backoff,
}

impl<S: Store + Sync, D: DeadLetters + Sync> Driver<'_, S, D> {
    /// Delivers one batch, read from `source` up to `offsets`.
    pub(crate) async fn deliver(
        &self,
        source: &mut impl Source,
        batch: &Batch,
        offsets: &Offsets,
    ) -> anyhow::Result<()> {
        let rejected = self.write_until_done(source, batch).await?;
        self.dead_letters
            .publish(batch, &rejected)
            .await
            .context("writing the sink's dead letters to Kafka (the batch will be read again)")?;
        if let Err(e) = source.commit(offsets, *self.stop.borrow()) {
            tracing::warn!(error = format!("{e:#}"), "committing Kafka offsets failed; the batch will be read again");
            metrics::counter!("ecom_sink_commit_errors_total").increment(1);
        }
        count_written(batch);
        Ok(())
    }

    /// Writes a batch to the stores, retrying with backoff: a failing store pauses the sink
    /// instead of losing data.
    async fn write_until_done(&self, source: &mut impl Source, batch: &Batch) -> anyhow::Result<Vec<Rejected>> {
        let mut backoff = self.backoff.first;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let started = Instant::now();
            match self.store.write(batch).await {
                Ok(rejected) => {
                    self.health.set(None);
                    source.resume();
                    for r in &rejected {
                        tracing::warn!(store = r.store, id = %r.id, target = %r.target, reason = %r.reason,
                            "a store refused a document for good: it is in the sink dead letter");
                        metrics::counter!("ecom_sink_rejected_total", "store" => r.store, "collection" => r.collection)
                            .increment(1);
                    }
                    log_written(batch, started.elapsed());
                    return Ok(rejected);
                }
                Err(e) => {
                    self.health.set(Some(format!("cannot write a batch (attempt {attempt}): {e:#}")));
                    metrics::counter!("ecom_sink_write_errors_total").increment(1);
                    tracing::error!(
                        error = format!("{e:#}"),
                        attempt,
                        "writing a batch failed; retrying (offsets not committed)"
                    );
                    if *self.stop.borrow() && attempt >= 3 {
                        source.resume();
                        return Err(e.context("giving up on shutdown; the batch will be re-read from Kafka on restart"));
                    }
                    source.pause_for(backoff).await;
                    backoff = (backoff * 2).min(self.backoff.max);
                }
            }
        }
    }
}

fn log_written(batch: &Batch, took: Duration) {
    metrics::histogram!("ecom_sink_batch_seconds").record(took.as_secs_f64());
    let (events, sessions, metrics, invalid, dead) =
        (batch.events.len(), batch.sessions.len(), batch.metrics.len(), batch.invalid.len(), batch.dead.len());
    let seconds = took.as_secs_f64();
    if took > Duration::from_secs(5) {
        tracing::warn!(events, sessions, metrics, invalid, dead, seconds, "slow batch write");
    } else {
        tracing::debug!(events, sessions, metrics, invalid, dead, seconds, "batch written");
    }
}

/// Counts a committed batch. `ecom_sink_events_total` and `ecom_sink_deadletter_total` keep
/// their names from when events were the only kind; the dead letters carry a `kind` label.
fn count_written(batch: &Batch) {
    metrics::counter!("ecom_sink_events_total").increment(batch.count(Kind::Event) as u64);
    metrics::counter!("ecom_sink_sessions_total").increment(batch.count(Kind::Session) as u64);
    metrics::counter!("ecom_sink_window_metrics_total").increment(batch.count(Kind::WindowMetrics) as u64);
    metrics::counter!("ecom_sink_invalid_total").increment(batch.count(Kind::Invalid) as u64);
    for kind in Kind::ALL {
        let dead = batch.dead_count(kind);
        if dead > 0 {
            metrics::counter!("ecom_sink_deadletter_total", "kind" => kind.as_str()).increment(dead as u64);
        }
    }
}
