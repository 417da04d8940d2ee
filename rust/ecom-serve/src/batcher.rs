//! Coalesces concurrent Score.Predict rows into one XGBoost call. Every XGBoost call costs a
//! fixed ~70 µs (matrix set-up, configuration) on top of the per-row work, so a few worker
//! threads each take whatever rows are queued (up to a limit) and score them together. Nothing
//! waits for a batch to fill: an idle service scores a lone row at once.
use crate::model::{Model, Scored};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use tonic::Status;

struct Job {
    model: Arc<Model>,
    row: Vec<f32>,
    shap: bool,
    reply: oneshot::Sender<Result<Scored, String>>,
}

/// The queue and its scoring threads; the threads end when the batcher is dropped.
#[derive(Clone)]
pub(crate) struct Batcher {
    tx: SyncSender<Job>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Batcher")
    }
}

impl Batcher {
    /// Starts `workers` threads scoring up to `max_rows` rows per call from a queue of
    /// `capacity` rows.
    pub(crate) fn start(workers: usize, max_rows: usize, capacity: usize) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel(capacity);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new().name(format!("ecom-score-{i}")).spawn(move || work(&rx, max_rows.max(1)))?;
        }
        Ok(Self { tx })
    }

    /// Scores one row of `model`; RESOURCE_EXHAUSTED when the queue is full.
    pub(crate) async fn score(&self, model: Arc<Model>, row: Vec<f32>, shap: bool) -> Result<Scored, Status> {
        let (reply, rx) = oneshot::channel();
        self.tx.try_send(Job { model, row, shap, reply }).map_err(|e| match e {
            TrySendError::Full(_) => {
                metrics::counter!("ecom_score_queue_full_total").increment(1);
                Status::resource_exhausted("the scoring queue is full: retry with backoff, or use PredictBatch")
            }
            TrySendError::Disconnected(_) => Status::unavailable("serve is shutting down"),
        })?;
        rx.await
            .map_err(|_| Status::internal("a scoring thread stopped"))?
            .map_err(|e| Status::internal(format!("scoring failed: {e}")))
    }
}

fn work(rx: &Mutex<Receiver<Job>>, max_rows: usize) {
    loop {
        let mut jobs = Vec::new();
        {
            // Whoever holds the lock waits for the next row, then takes what queued behind it.
            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            match rx.recv() {
                Ok(j) => jobs.push(j),
                Err(_) => return,
            }
            while jobs.len() < max_rows {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
        }
        metrics::histogram!("ecom_score_batch_rows").record(jobs.len() as f64);
        // One call per (model version, with or without SHAP): a reload can split a batch.
        while let Some(first) = jobs.first() {
            let (model, shap) = (first.model.clone(), first.shap);
            let (group, rest): (Vec<Job>, Vec<Job>) =
                jobs.into_iter().partition(|j| Arc::ptr_eq(&j.model, &model) && j.shap == shap);
            jobs = rest;
            let x: Vec<f32> = group.iter().flat_map(|j| j.row.iter().copied()).collect();
            match model.score(&x, shap) {
                Ok(scored) => {
                    for (j, s) in group.into_iter().zip(scored) {
                        let _ = j.reply.send(Ok(s));
                    }
                }
                Err(e) => {
                    let e = format!("{e:#}");
                    for j in group {
                        let _ = j.reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }
}
