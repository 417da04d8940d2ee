//! The driver's Kafka side: the sink's consumer as a [`Source`], the dead-letter topic as
//! [`DeadLetters`], and the stores as a [`Store`].

use super::{DeadLetters, Offsets, Source, Store};
use crate::record::Batch;
use crate::stores::{Rejected, Stores};
use crate::Sink;
use anyhow::Context;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::time::Duration;

impl Store for Stores {
    async fn write(&self, batch: &Batch) -> anyhow::Result<Vec<Rejected>> {
        Stores::write(self, batch).await
    }
}

/// The sink's consumer, with the partitions it paused while a store is away.
pub(crate) struct KafkaSource<'a> {
    consumer: &'a Sink,
    paused: Option<TopicPartitionList>,
}

impl<'a> KafkaSource<'a> {
    pub(crate) fn new(consumer: &'a Sink) -> Self {
        Self { consumer, paused: None }
    }

    fn pause_all(&mut self) {
        let Ok(assigned) = self.consumer.assignment() else { return };
        if let Err(e) = self.consumer.pause(&assigned) {
            tracing::warn!(error = %e, "pausing the partitions failed");
        }
        self.paused = Some(assigned);
    }

    /// A record read while paused (from a partition assigned since): its partition is paused
    /// too and set back to it, so it is read again after the outage, not lost.
    fn hold(&mut self, m: Result<rdkafka::message::BorrowedMessage<'_>, rdkafka::error::KafkaError>) {
        let Ok(msg) = m else { return };
        let (topic, partition, offset) = (msg.topic().to_string(), msg.partition(), msg.offset());
        drop(msg);
        let mut tpl = TopicPartitionList::new();
        if tpl.add_partition_offset(&topic, partition, Offset::Offset(offset)).is_ok() {
            let _ = self.consumer.pause(&tpl);
            if let Err(e) = self.consumer.seek_partitions(tpl, Duration::from_secs(5)) {
                tracing::warn!(error = %e, topic, partition, offset, "could not rewind a partition read while paused");
            }
        }
        self.pause_all();
    }
}

impl Source for KafkaSource<'_> {
    /// Polls with every partition paused, so an outage longer than max.poll.interval.ms does
    /// not drop the sink from its group.
    async fn pause_for(&mut self, wait: Duration) {
        self.pause_all();
        let until = tokio::time::sleep(wait);
        tokio::pin!(until);
        loop {
            tokio::select! {
                _ = &mut until => break,
                m = self.consumer.recv() => self.hold(m),
            }
        }
    }

    fn resume(&mut self) {
        if self.paused.take().is_some() {
            if let Ok(assigned) = self.consumer.assignment() {
                if let Err(e) = self.consumer.resume(&assigned) {
                    tracing::warn!(error = %e, "resuming the partitions failed");
                }
            }
        }
    }

    /// A queued commit's outcome comes to [`crate::SinkContext`]'s commit callback.
    fn commit(&mut self, offsets: &Offsets, wait: bool) -> anyhow::Result<()> {
        let mut tpl = TopicPartitionList::new();
        for ((t, p), o) in offsets {
            tpl.add_partition_offset(t, *p, Offset::Offset(*o)).context("building the offset commit")?;
        }
        Ok(self.consumer.commit(&tpl, if wait { CommitMode::Sync } else { CommitMode::Async })?)
    }
}

/// The dead-letter topic: JSON, keyed by the dead letter's id (the same ids as in MongoDB's
/// `sink_deadletter`).
pub(crate) struct KafkaDeadLetters<'a> {
    pub(crate) producer: &'a rdkafka::producer::FutureProducer,
    pub(crate) topic: &'a str,
}

impl DeadLetters for KafkaDeadLetters<'_> {
    async fn publish(&self, batch: &Batch, rejected: &[Rejected]) -> anyhow::Result<()> {
        use base64::Engine as _;
        let mut letters: Vec<(String, serde_json::Value)> = batch
            .dead
            .iter()
            .map(|d| {
                (
                    d.id(),
                    serde_json::json!({"kind": d.kind.as_str(), "store": "", "topic": d.topic, "partition": d.partition,
                    "offset": d.offset, "reason": d.reason,
                    "raw_base64": base64::engine::general_purpose::STANDARD.encode(&d.raw)}),
                )
            })
            .collect();
        letters.extend(rejected.iter().map(|r| crate::stores::rejected_letter(batch, r)));
        let topic = self.topic;
        let sends = letters.iter().map(|(id, v)| {
            let payload = v.to_string();
            async move {
                self.producer
                    .send(rdkafka::producer::FutureRecord::to(topic).key(id).payload(&payload), Duration::from_secs(30))
                    .await
                    .map_err(|(e, _)| anyhow::anyhow!("dead letter {id} to {topic}: {e}"))
            }
        });
        futures::future::try_join_all(sends).await?;
        if !letters.is_empty() {
            metrics::counter!("ecom_sink_deadletter_published_total").increment(letters.len() as u64);
        }
        Ok(())
    }
}
