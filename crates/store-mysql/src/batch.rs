//! Group commit: calls that arrive while a batch is in the database wait in a queue, and the next
//! batch takes them all at once, so one transaction serves many callers and a hot row is written
//! once per batch rather than once per call. Each caller still gets its own answer.
//!
//! There is no batching window and no timer: a call that finds the queue idle starts a drain
//! right away (a batch of one), and calls that arrive meanwhile form the next batch. Under light
//! load a call costs what it did alone; under heavy load batches grow by themselves.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::anyhow;
use tokio::sync::oneshot;

use crate::tx::{transaction, TxError};
use crate::{Conn, MysqlStore};

/// Runs one batch inside a transaction: one outcome per job, in order. An `Err` fails the whole
/// batch (the transaction rolls back, and every caller gets it as `Unexpected`).
pub(crate) type RunBatch<J, T, E> =
    fn(&mut Conn, &[J]) -> Result<Vec<Result<T, E>>, TxError<anyhow::Error>>;

/// One kind of coalesced call: its queue, how it runs, and how batches have turned out.
pub(crate) struct Coalesced<J, T, E> {
    what: &'static str,
    batcher: Batcher<J, Result<T, E>>,
    /// The most a batch may weigh (see `weight`).
    budget: usize,
    weight: fn(&J) -> usize,
    run: RunBatch<J, T, E>,
    stats: BatchStats,
}

impl<J, T, E> std::fmt::Debug for Coalesced<J, T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalesced").field("what", &self.what).field("stats", &self.stats).finish()
    }
}

impl<J, T, E> Coalesced<J, T, E>
where
    J: Send + 'static,
    T: Send + 'static,
    E: From<anyhow::Error> + Send + 'static,
{
    pub(crate) fn new(
        what: &'static str,
        budget: usize,
        weight: fn(&J) -> usize,
        run: RunBatch<J, T, E>,
    ) -> Self {
        Self {
            what,
            batcher: Batcher::default(),
            budget,
            weight,
            run,
            stats: BatchStats::default(),
        }
    }

    pub(crate) fn stats(&self) -> &BatchStats {
        &self.stats
    }

    /// Queues `job` and waits for its own outcome. The first caller to find no drain running
    /// starts one, detached, so a caller that gives up (its request timed out) does not stop
    /// the batch other callers wait on.
    pub(crate) fn call(
        self: &Arc<Self>,
        store: &MysqlStore,
        job: J,
    ) -> impl Future<Output = Result<T, E>> + Send + 'static {
        let (answer, start) = self.batcher.submit(job);
        if start {
            let (this, store) = (self.clone(), store.clone());
            tokio::spawn(async move { this.drain(&store).await });
        }
        let what = self.what;
        async move {
            answer
                .await
                .map_err(|_| E::from(anyhow!("a batch of {what} ended without an answer")))?
        }
    }

    /// Runs queued jobs, a batch per transaction, until the queue is empty.
    async fn drain(&self, store: &MysqlStore) {
        while let Some(batch) = self.batcher.next_batch(self.budget, self.weight) {
            let (jobs, replies): (Vec<J>, Vec<_>) = batch.into_iter().unzip();
            self.stats.record(jobs.len());
            metrics::histogram!("db_batch_size", "calls" => self.what).record(jobs.len() as f64);
            let run = self.run;
            let done = store
                .blocking(move |c| transaction(c, |c| run(c, &jobs)).map_err(TxError::into_error))
                .await;
            match done {
                Ok(Ok(outcomes)) => {
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        let _ = reply.send(outcome);
                    }
                }
                Ok(Err(error)) | Err(error) => {
                    let error = format!("{error:#}");
                    for reply in replies {
                        let failed = anyhow!("a batch of {} failed: {error}", self.what);
                        let _ = reply.send(Err(E::from(failed)));
                    }
                }
            }
        }
    }
}

/// How calls have been grouped into transactions since the store opened.
#[derive(Debug, Default)]
pub struct BatchStats {
    batches: AtomicU64,
    calls: AtomicU64,
    largest: AtomicU64,
}

impl BatchStats {
    fn record(&self, size: usize) {
        let size = size as u64;
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.calls.fetch_add(size, Ordering::Relaxed);
        self.largest.fetch_max(size, Ordering::Relaxed);
    }

    /// Transactions run.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Calls those transactions answered.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The most calls one transaction took.
    pub fn largest(&self) -> u64 {
        self.largest.load(Ordering::Relaxed)
    }
}

/// A job with the channel its caller waits on.
pub(crate) type Waiting<J, R> = (J, oneshot::Sender<R>);

/// The queue of one kind of job.
#[derive(Debug)]
pub(crate) struct Batcher<J, R> {
    queue: Mutex<Queue<J, R>>,
}

#[derive(Debug)]
struct Queue<J, R> {
    waiting: VecDeque<Waiting<J, R>>,
    draining: bool,
}

impl<J, R> Default for Batcher<J, R> {
    fn default() -> Self {
        Self { queue: Mutex::new(Queue { waiting: VecDeque::new(), draining: false }) }
    }
}

impl<J, R> Batcher<J, R> {
    /// Queues `job`. Returns where its answer will arrive, and `true` when no drain is running,
    /// in which case the caller must start one (and keep calling [`Self::next_batch`] until it
    /// returns `None`).
    pub(crate) fn submit(&self, job: J) -> (oneshot::Receiver<R>, bool) {
        let (reply, answer) = oneshot::channel();
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.waiting.push_back((job, reply));
        let start = !queue.draining;
        queue.draining = true;
        (answer, start)
    }

    /// The jobs of the next batch, oldest first: as many as fit in `budget` by `weight` (the
    /// first always does). `None` when the queue is empty, which also ends the drain.
    pub(crate) fn next_batch(
        &self,
        budget: usize,
        weight: impl Fn(&J) -> usize,
    ) -> Option<Vec<Waiting<J, R>>> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let mut batch = Vec::new();
        let mut used = 0;
        while let Some((job, _)) = queue.waiting.front() {
            let cost = weight(job);
            if !batch.is_empty() && used + cost > budget {
                break;
            }
            used += cost;
            batch.extend(queue.waiting.pop_front());
        }
        if batch.is_empty() {
            queue.draining = false;
            return None;
        }
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_caller_starts_the_drain_and_later_ones_join_the_next_batch() {
        let batcher = Batcher::<u32, u32>::default();
        let (_a, start_a) = batcher.submit(1);
        let (_b, start_b) = batcher.submit(2);
        assert!(start_a);
        assert!(!start_b, "a drain is already running");
        let batch = batcher.next_batch(10, |_| 1).expect("two jobs");
        assert_eq!(batch.iter().map(|(job, _)| *job).collect::<Vec<_>>(), [1, 2]);
        assert!(batcher.next_batch(10, |_| 1).is_none(), "empty: the drain ends");
        let (_c, start_c) = batcher.submit(3);
        assert!(start_c, "after the drain ended, the next caller starts one");
    }

    #[test]
    fn a_batch_stops_at_the_budget_but_always_takes_one_job() {
        let batcher = Batcher::<usize, ()>::default();
        let _answers: Vec<_> = [50, 30, 40, 5].into_iter().map(|w| batcher.submit(w).0).collect();
        let weights = |batch: Vec<Waiting<usize, ()>>| {
            batch.into_iter().map(|(job, _)| job).collect::<Vec<_>>()
        };
        assert_eq!(
            weights(batcher.next_batch(10, |w| *w).expect("one")),
            [50],
            "over budget alone"
        );
        assert_eq!(weights(batcher.next_batch(80, |w| *w).expect("two")), [30, 40, 5]);
        assert!(batcher.next_batch(80, |w| *w).is_none());
    }
}
