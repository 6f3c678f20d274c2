//! Group commit: calls that arrive while a batch is in the database wait in a queue, and the next
//! batch takes them all at once, so one transaction serves many callers and a hot row is written
//! once per batch rather than once per call. Each caller still gets its own answer.
//!
//! There is no batching window and no timer: a call that finds the queue idle starts a drain
//! right away (a batch of one), and calls that arrive meanwhile form the next batch. Under light
//! load a call costs what it did alone; under heavy load batches grow by themselves.
//!
//! Each kind of call has two lanes (ADR 0007), so that one row held elsewhere cannot stop the
//! calls that do not need it:
//!
//! - the **main lane** locks the rows it can only wait for briefly (users) as usual, and skips
//!   the products (or, for charges, the users) another transaction holds (`SKIP LOCKED`); a call
//!   that needs a skipped row is not decided in that batch but moved to the slow lane, so the
//!   main lane never waits on someone else's product lock (rows the other main lanes of this
//!   store hold are waited for instead: they are free within one short transaction, see
//!   [`Ctx`]);
//! - the **slow lane** first waits for those rows without holding anything (one short
//!   transaction per row, each at most a lock wait), answers `Unexpected` to the calls whose row
//!   is still held, and runs the others in a transaction that waits for its locks;
//! - a batch whose transaction fails for a reason one of its calls may have brought (a lock-wait
//!   timeout, an interrupted statement, deadlocks that persist) is split: in the main lane its
//!   calls move to the slow lane; there it is halved until the failing call is alone, which
//!   answers `Unexpected`. Nothing of a failed transaction is applied.
//!
//! Each queued call carries its caller's tracing span (the request's, with its request id), so
//! batched work stays traceable: a batch's database work runs in a `db_batch` span (the kind of
//! call, the batch's number, size and lane) that follows from every call's span, and each log
//! line about a call (its batch failed, split, moved it to the slow lane, answered it
//! `Unexpected`) is written in that call's own span, naming the batch.

use std::cell::Cell;
use std::collections::{BTreeSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use anyhow::anyhow;
use diesel::prelude::*;
use futures_util::future::Either;
use tokio::sync::oneshot;
use tracing::{Instrument, Span};

use crate::locking::{existing_users, lock_users};
use crate::schema::{products, users};
use crate::tx::{contention, transaction_with, Contention, Retries, TxError};
use crate::{Conn, MysqlStore};

mod alone;

/// How a batch takes the row locks that someone else might hold for long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Rows another transaction holds are skipped (`FOR UPDATE SKIP LOCKED`), and the calls that
    /// need them are answered [`Verdict::Deferred`].
    Skip,
    /// Every lock is waited for (at most the lock wait).
    Wait,
}

/// Rows a deferred call needs that another transaction held.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Busy {
    pub(crate) products: BTreeSet<i64>,
    pub(crate) users: BTreeSet<String>,
}

impl Busy {
    pub(crate) fn is_empty(&self) -> bool {
        self.products.is_empty() && self.users.is_empty()
    }

    pub(crate) fn products(products: impl IntoIterator<Item = i64>) -> Self {
        Self { products: products.into_iter().collect(), ..Self::default() }
    }

    pub(crate) fn user(user: &str) -> Self {
        Self { users: BTreeSet::from([user.to_owned()]), ..Self::default() }
    }

    fn meets(&self, other: &Self) -> bool {
        !self.products.is_disjoint(&other.products) || !self.users.is_disjoint(&other.users)
    }

    pub(crate) fn users<'a>(users: impl IntoIterator<Item = &'a str>) -> Self {
        Self { users: users.into_iter().map(str::to_owned).collect(), ..Self::default() }
    }

    fn add(&mut self, other: &Self) {
        self.products.extend(other.products.iter().copied());
        self.users.extend(other.users.iter().cloned());
    }
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let products = self.products.iter().map(|id| format!("product {id}"));
        let users = self.users.iter().map(|id| format!("user {id}"));
        let rows: Vec<String> = products.chain(users).collect();
        write!(f, "{}", rows.join(", "))
    }
}

/// What a batch says about one of its calls.
#[derive(Debug)]
pub(crate) enum Verdict<T, E> {
    /// Decided in this batch: accepted (and written) or refused.
    Done(Result<T, E>),
    /// Not decided (nothing of it written, its idempotency key not kept): it needs rows another
    /// transaction holds. Only in [`Lane::Skip`].
    Deferred(Busy),
}

impl<T, E> Verdict<T, E> {
    /// The accepted outcome of each call (`None`: refused or put off), in order.
    pub(crate) fn accepted(verdicts: &[Self]) -> Vec<Option<&T>> {
        verdicts
            .iter()
            .map(|verdict| match verdict {
                Verdict::Done(Ok(value)) => Some(value),
                _ => None,
            })
            .collect()
    }
}

/// Runs one batch inside a transaction: one verdict per job, in order. An `Err` fails the whole
/// batch (the transaction rolls back).
pub(crate) type RunBatch<J, T, E> =
    fn(&mut Conn, &[J], &Ctx) -> Result<Vec<Verdict<T, E>>, TxError<anyhow::Error>>;

/// What a batch's transaction knows of its surroundings: its lane, and the rows the main lanes
/// of this store hold at the moment.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) lane: Lane,
    own: Arc<OwnLocks>,
    batch: u64,
    /// A main-lane batch's turn to take its locks (see [`Turnstile`]); `None` in the slow lane.
    turn: Option<Turn>,
}

impl Ctx {
    /// The batch has taken all its locks (and noted them with [`Self::holds`]): the next
    /// main-lane batch of its kind may start taking its own. Calling it again does nothing; a
    /// batch that never calls it passes its turn when its transaction ends.
    pub(crate) fn locked(&self) {
        if let Some(turn) = &self.turn {
            turn.pass();
        }
    }

    /// Notes rows this batch has locked, so other main lanes of this store wait for them rather
    /// than put their calls off (only in [`Lane::Skip`]: the slow lane may hold rows while it
    /// waits for others, which must not make a main lane wait).
    pub(crate) fn holds(&self, rows: Busy) {
        if self.lane == Lane::Skip {
            self.own.add(self.batch, rows);
        }
    }

    /// Of `busy` (rows a `SKIP LOCKED` read left out), those another main-lane batch of this
    /// store holds: they are free again when that short transaction ends, so waiting for them
    /// beats putting calls off.
    pub(crate) fn held_here(&self, busy: &Busy) -> Busy {
        self.own.held_by_others(self.batch, busy)
    }
}

/// Pipelining (`StoreOptions::pipeline`): several main-lane batches of one kind may be in the
/// database at once — one committing while the next locks and decides — but they take their
/// locks one batch after another, in the order they started. So when a batch's `SKIP LOCKED`
/// read leaves out a row an earlier batch of its kind holds, that batch has already noted the
/// row ([`Ctx::holds`]) and the later one waits for it ([`Ctx::held_here`]) instead of putting
/// its calls off: a hot row passes from batch to batch as each commits. (A transaction retried
/// after a deadlock locks again without a turn; at worst a call of it is put off, as without
/// pipelining when another kind's batch holds the row.) Measured no faster on 2 cores, so the
/// default depth is 1 (ADR 0011).
#[derive(Debug, Default)]
pub(crate) struct Turnstile {
    next: AtomicU64,
    serving: Mutex<u64>,
    turned: Condvar,
}

impl Turnstile {
    /// Waits (on a blocking thread) until every batch that started before has taken its locks.
    fn wait_turn(self: &Arc<Self>) -> Turn {
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        let mut serving = self.serving.lock().unwrap_or_else(PoisonError::into_inner);
        while *serving != ticket {
            serving = self.turned.wait(serving).unwrap_or_else(PoisonError::into_inner);
        }
        Turn { turnstile: self.clone(), passed: Cell::new(false) }
    }
}

/// One batch's turn to lock: passed once, when it has locked ([`Ctx::locked`]) or at the latest
/// when it is dropped (its transaction ended, failed or panicked).
#[derive(Debug)]
struct Turn {
    turnstile: Arc<Turnstile>,
    passed: Cell<bool>,
}

impl Turn {
    fn pass(&self) {
        if self.passed.replace(true) {
            return;
        }
        let mut serving = self.turnstile.serving.lock().unwrap_or_else(PoisonError::into_inner);
        *serving += 1;
        self.turnstile.turned.notify_all();
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.pass();
    }
}

/// The rows each running main-lane batch of this store has locked.
#[derive(Debug, Default)]
pub(crate) struct OwnLocks {
    next: AtomicU64,
    held: Mutex<Vec<(u64, Busy)>>,
}

impl OwnLocks {
    fn begin(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    fn add(&self, batch: u64, rows: Busy) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        match held.iter_mut().find(|(id, _)| *id == batch) {
            Some((_, mine)) => mine.add(&rows),
            None => held.push((batch, rows)),
        }
    }

    fn held_by_others(&self, batch: u64, busy: &Busy) -> Busy {
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let mut found = Busy::default();
        for (_, rows) in held.iter().filter(|(id, _)| *id != batch) {
            found.products.extend(busy.products.intersection(&rows.products).copied());
            found.users.extend(busy.users.intersection(&rows.users).cloned());
        }
        found
    }

    /// The batch's transaction has ended: its rows are free.
    fn end(&self, batch: u64) {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).retain(|(id, _)| *id != batch);
    }
}

/// Where a queued call's answer goes, and the span of the caller waiting for it.
#[derive(Debug)]
pub(crate) struct Caller<R> {
    reply: oneshot::Sender<R>,
    span: Span,
}

impl<R> Caller<R> {
    /// Answers the call (a caller that gave up no longer listens: nothing to do then).
    pub(crate) fn send(self, answer: R) {
        let _ = self.reply.send(answer);
    }

    /// Runs `log` in the caller's span, so the line carries the caller's request id.
    fn log(&self, log: impl FnOnce()) {
        self.span.in_scope(log);
    }
}

type Reply<T, E> = Caller<Result<T, E>>;

/// Why a batch's transaction did not commit.
struct Failed {
    error: anyhow::Error,
    /// The failure may be one call's doing (a row it needs is held, its statement ran out of
    /// time, it keeps deadlocking): worth splitting the batch.
    split: bool,
}

/// One kind of coalesced call: its two queues, how it runs, and how batches have turned out.
pub(crate) struct Coalesced<J, T, E> {
    what: &'static str,
    main: Batcher<J, Result<T, E>>,
    slow: Batcher<(J, Busy), Result<T, E>>,
    /// The most a batch may weigh (see `weight`).
    budget: usize,
    weight: fn(&J) -> usize,
    /// The user whose row the job locks (every kind locks its caller's user row).
    user_of: fn(&J) -> &str,
    run: RunBatch<J, T, E>,
    stats: BatchStats,
    /// Numbers batches (both lanes), so the lines of a batch's calls can be told together.
    next_batch: AtomicU64,
    /// The order in which this kind's main-lane batches take their locks.
    turnstile: Arc<Turnstile>,
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
        user_of: fn(&J) -> &str,
        run: RunBatch<J, T, E>,
    ) -> Self {
        Self {
            what,
            main: Batcher::default(),
            slow: Batcher::default(),
            budget,
            weight,
            user_of,
            run,
            stats: BatchStats::default(),
            next_batch: AtomicU64::new(1),
            turnstile: Arc::default(),
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
        if !store.options.group_commit {
            return Either::Left(self.clone().alone(store.clone(), job));
        }
        let (answer, start) = self.main.submit(job, Span::current(), store.options.pipeline);
        if start {
            let (this, store) = (self.clone(), store.clone());
            tokio::spawn(async move { this.drain_main(&store).await });
        }
        let what = self.what;
        Either::Right(async move {
            answer
                .await
                .map_err(|_| E::from(anyhow!("a batch of {what} ended without an answer")))?
        })
    }

    /// Moves a call to the slow lane, starting its drain if none runs.
    fn defer(self: &Arc<Self>, store: &MysqlStore, job: J, reply: Reply<T, E>, busy: Busy) {
        self.stats.deferred.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("db_batch_deferred_total", "calls" => self.what).increment(1);
        if self.slow.enqueue((job, busy), reply, 1) {
            let (this, store) = (self.clone(), store.clone());
            tokio::spawn(async move { this.drain_slow(&store).await });
        }
    }

    /// A new batch of `callers` in `lane`: its number, and the span its database work runs in
    /// (following from each caller's span).
    fn batch_span<'a>(
        &self,
        lane: &'static str,
        callers: impl ExactSizeIterator<Item = &'a Reply<T, E>>,
    ) -> (u64, Span)
    where
        T: 'a,
        E: 'a,
    {
        let batch = self.next_batch.fetch_add(1, Ordering::Relaxed);
        let span =
            tracing::info_span!("db_batch", calls = self.what, batch, size = callers.len(), lane);
        for caller in callers {
            span.follows_from(&caller.span);
        }
        (batch, span)
    }

    /// Runs `jobs` as one transaction on a pooled connection, in `span`; gives the jobs back
    /// with the verdicts (or the failure), so deferred ones can move on.
    async fn run_batch(
        &self,
        store: &MysqlStore,
        jobs: Vec<J>,
        lane: Lane,
        span: &Span,
    ) -> (Option<Vec<J>>, Result<Vec<Verdict<T, E>>, Failed>) {
        let run = self.run;
        let own = store.own_locks.clone();
        let turnstile = self.turnstile.clone();
        let stats = &self.stats;
        if lane == Lane::Skip {
            let now = stats.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            stats.most_in_flight.fetch_max(now, Ordering::Relaxed);
        }
        let done = store
            .blocking(move |c| {
                let turn = (lane == Lane::Skip).then(|| turnstile.wait_turn());
                let ctx = Ctx { lane, batch: own.begin(), own, turn };
                let result = transaction_with(c, Retries::BATCH, |c| run(c, &jobs, &ctx));
                ctx.locked();
                ctx.own.end(ctx.batch);
                (jobs, result)
            })
            .instrument(span.clone())
            .await;
        if lane == Lane::Skip {
            stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
        match done {
            Ok((jobs, Ok(verdicts))) => (Some(jobs), Ok(verdicts)),
            Ok((jobs, Err(TxError::Db(error)))) => {
                let split = contention(&error).is_some();
                let error = anyhow::Error::new(error).context("database transaction failed");
                (Some(jobs), Err(Failed { error, split }))
            }
            Ok((jobs, Err(TxError::Rejected(error)))) => {
                (Some(jobs), Err(Failed { error, split: false }))
            }
            // No connection (or a panic): the jobs never reached the database.
            Err(error) => (None, Err(Failed { error, split: false })),
        }
    }

    /// The users of `jobs` whose row another transaction holds right now (a `SKIP LOCKED` read
    /// of the user rows alone, in a transaction of its own). Empty when none is, or when that
    /// cannot be told.
    async fn held_users(&self, store: &MysqlStore, users: BTreeSet<String>) -> BTreeSet<String> {
        let held = store
            .blocking(move |c| {
                c.transaction(|c| {
                    let ids: BTreeSet<&str> = users.iter().map(String::as_str).collect();
                    let locked = lock_users(c, &ids, Lane::Skip)?;
                    let locked: BTreeSet<&str> = locked.iter().map(|(id, _)| id.as_str()).collect();
                    let missing: Vec<&str> = ids.difference(&locked).copied().collect();
                    if missing.is_empty() {
                        return Ok(BTreeSet::new());
                    }
                    existing_users(c, &missing)
                })
            })
            .await;
        match held {
            Ok(Ok(held)) => held,
            Ok(Err(error)) => {
                tracing::debug!(%error, "could not tell which user rows are held");
                BTreeSet::new()
            }
            Err(error) => {
                tracing::debug!(error = format!("{error:#}"), "could not tell which rows are held");
                BTreeSet::new()
            }
        }
    }

    fn users_of(&self, jobs: &[J]) -> BTreeSet<String> {
        jobs.iter().map(|job| (self.user_of)(job).to_owned()).collect()
    }

    /// Answers every call of batch `batch` `Unexpected` with `error`, logging it in each
    /// call's span.
    fn fail(&self, batch: u64, replies: Vec<Reply<T, E>>, error: &anyhow::Error) {
        let error = format!("{error:#}");
        let (what, calls) = (self.what, replies.len());
        for reply in replies {
            reply.log(|| {
                tracing::warn!(
                    error,
                    calls = what,
                    batch,
                    size = calls,
                    "a batch failed; the call answers Unexpected"
                );
            });
            let failed = anyhow!("a batch of {what} failed: {error}");
            reply.send(Err(E::from(failed)));
        }
    }

    /// Answers one call `Unexpected` with `error`, logging it in the call's span.
    fn unexpected(&self, batch: u64, reply: Reply<T, E>, error: anyhow::Error) {
        reply.log(|| {
            tracing::warn!(
                error = format!("{error:#}"),
                calls = self.what,
                batch,
                "the call answers Unexpected"
            );
        });
        reply.send(Err(E::from(error)));
    }

    /// The main lane: runs queued jobs, a batch per transaction, until the queue is empty.
    async fn drain_main(self: &Arc<Self>, store: &MysqlStore) {
        while let Some(batch) = self.main.next_batch(self.budget, self.weight) {
            let (jobs, replies): (Vec<J>, Vec<_>) = batch.into_iter().unzip();
            self.stats.record(jobs.len());
            metrics::histogram!("db_batch_size", "calls" => self.what).record(jobs.len() as f64);
            let (batch, span) = self.batch_span("main", replies.iter());
            match self.run_batch(store, jobs, Lane::Skip, &span).await {
                (Some(jobs), Ok(verdicts)) => {
                    for ((job, reply), verdict) in jobs.into_iter().zip(replies).zip(verdicts) {
                        match verdict {
                            Verdict::Done(outcome) => reply.send(outcome),
                            Verdict::Deferred(busy) => self.defer(store, job, reply, busy),
                        }
                    }
                }
                // Maybe one call's doing. The calls whose user row is held right now go to the
                // slow lane, the others run again at once; if no row is held any more, the
                // slow lane finds the culprit by halving, while this lane goes on.
                (Some(jobs), Err(Failed { split: true, error })) if jobs.len() > 1 => {
                    let held = self.held_users(store, self.users_of(&jobs)).instrument(span).await;
                    let (error, size) = (format!("{error:#}"), jobs.len());
                    let mut again = Vec::new();
                    for (job, reply) in jobs.into_iter().zip(replies) {
                        let user = (self.user_of)(&job);
                        // The slow lane, naming the held row when one was found.
                        let to_slow_lane = if held.is_empty() {
                            Some(Busy::default())
                        } else {
                            held.contains(user).then(|| Busy::user(user))
                        };
                        reply.log(|| {
                            let next = if to_slow_lane.is_some() {
                                "moves to the slow lane"
                            } else {
                                "runs again (its user row is free)"
                            };
                            tracing::warn!(
                                error,
                                calls = self.what,
                                batch,
                                size,
                                "a batch failed on contention; the call {next}"
                            );
                        });
                        match to_slow_lane {
                            Some(busy) => self.defer(store, job, reply, busy),
                            None => again.push((job, reply)),
                        }
                    }
                    self.main.requeue_front(again);
                }
                (_, Err(Failed { error, .. })) => self.fail(batch, replies, &error),
                (None, Ok(_)) => unreachable!("verdicts come with their jobs"),
            }
        }
    }

    /// The slow lane: for each batch, waits for the rows its calls found held (holding nothing
    /// meanwhile), answers the calls whose rows are still held, and runs the rest with waiting
    /// locks, halving a batch that fails on contention until the failing call is alone.
    async fn drain_slow(self: &Arc<Self>, store: &MysqlStore) {
        let weight = self.weight;
        while let Some(batch) = self.slow.next_batch(self.budget, |(job, _)| weight(job)) {
            let mut rows = Busy::default();
            for ((_, busy), _) in &batch {
                rows.add(busy);
            }
            let mut batch = batch;
            if !rows.is_empty() {
                let callers = batch.iter().map(|(_, reply)| reply);
                let (number, span) = self.batch_span("slow: waiting for held rows", callers);
                match store.blocking(move |c| still_held(c, &rows)).instrument(span).await {
                    Ok(Ok(held)) if !held.is_empty() => {
                        let (stuck, free): (Vec<_>, Vec<_>) =
                            batch.into_iter().partition(|((_, busy), _)| busy.meets(&held));
                        for ((_, busy), reply) in stuck {
                            let error = anyhow!(
                                "{busy} stayed locked by another transaction for longer than \
                                 the lock wait"
                            );
                            self.unexpected(number, reply, error);
                        }
                        batch = free;
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => {
                        let error = anyhow::Error::new(error).context("waiting for held rows");
                        let replies = batch.into_iter().map(|(_, reply)| reply).collect();
                        self.fail(number, replies, &error);
                        continue;
                    }
                    Err(error) => {
                        let replies = batch.into_iter().map(|(_, reply)| reply).collect();
                        self.fail(number, replies, &error);
                        continue;
                    }
                }
            }
            // Calls from a batch that failed on contention (no rows named): that batch just
            // spent a lock wait failing whole, so start from its halves.
            let halve = batch.len() > 1 && batch.iter().any(|((_, busy), _)| busy.is_empty());
            let (jobs, replies): (Vec<J>, Vec<_>) =
                batch.into_iter().map(|((job, _), reply)| (job, reply)).unzip();
            self.run_splitting(store, jobs, replies, halve).await;
        }
    }

    /// Runs `jobs` with waiting locks (as two halves from the start, with `halve`); a part that
    /// fails on contention is halved (first half first, so queue order holds) until the failing
    /// call is alone.
    async fn run_splitting(
        &self,
        store: &MysqlStore,
        mut jobs: Vec<J>,
        mut replies: Vec<Reply<T, E>>,
        halve: bool,
    ) {
        let mut parts = Vec::new();
        if halve {
            let half = jobs.len() / 2;
            parts.push((jobs.split_off(half), replies.split_off(half)));
        }
        parts.push((jobs, replies));
        while let Some((jobs, mut replies)) = parts.pop() {
            if jobs.is_empty() {
                continue;
            }
            self.stats.slow_batches.fetch_add(1, Ordering::Relaxed);
            let (batch, span) = self.batch_span("slow", replies.iter());
            match self.run_batch(store, jobs, Lane::Wait, &span).await {
                (_, Ok(verdicts)) => {
                    for (reply, verdict) in replies.into_iter().zip(verdicts) {
                        match verdict {
                            Verdict::Done(outcome) => reply.send(outcome),
                            Verdict::Deferred(busy) => {
                                let error =
                                    anyhow!("a waiting batch of {} skipped {busy}", self.what);
                                self.unexpected(batch, reply, error);
                            }
                        }
                    }
                }
                (Some(mut jobs), Err(Failed { split: true, error })) if jobs.len() > 1 => {
                    let (error, size) = (format!("{error:#}"), jobs.len());
                    for reply in &replies {
                        reply.log(|| {
                            tracing::debug!(
                                error,
                                calls = self.what,
                                batch,
                                size,
                                "splitting a batch that failed on contention"
                            );
                        });
                    }
                    self.stats.splits.fetch_add(1, Ordering::Relaxed);
                    // The calls whose user row is still held have waited a whole lock wait:
                    // they answer now, and the others run again.
                    let held = self.held_users(store, self.users_of(&jobs)).instrument(span).await;
                    if !held.is_empty() {
                        let (mut rest_jobs, mut rest_replies) = (Vec::new(), Vec::new());
                        for (job, reply) in jobs.into_iter().zip(replies) {
                            let user = (self.user_of)(&job);
                            if held.contains(user) {
                                let error = anyhow!(
                                    "user {user} stayed locked by another transaction for \
                                     longer than the lock wait"
                                );
                                self.unexpected(batch, reply, error);
                            } else {
                                rest_jobs.push(job);
                                rest_replies.push(reply);
                            }
                        }
                        parts.push((rest_jobs, rest_replies));
                        continue;
                    }
                    let half = jobs.len() / 2;
                    let (later_jobs, later_replies) =
                        (jobs.split_off(half), replies.split_off(half));
                    parts.push((later_jobs, later_replies));
                    parts.push((jobs, replies));
                }
                (_, Err(Failed { error, .. })) => self.fail(batch, replies, &error),
            }
        }
    }
}

/// Waits, one row at a time and holding nothing else, for each row in `busy` to be free (a
/// locking read in its own transaction, released at once); returns the rows still held after
/// a lock wait.
fn still_held(c: &mut Conn, busy: &Busy) -> QueryResult<Busy> {
    fn held(result: QueryResult<usize>) -> QueryResult<bool> {
        match result {
            Ok(_) => Ok(false),
            // The wait itself was picked as a deadlock victim, or, on Galera, aborted by a
            // write replicated from another node that needed the row: either way the row is
            // not stuck; the calls run (and retry on contention) like any other.
            Err(error) if contention(&error) == Some(Contention::Deadlock) => Ok(false),
            Err(error)
                if matches!(
                    contention(&error),
                    Some(Contention::LockWait | Contention::Interrupted)
                ) =>
            {
                Ok(true)
            }
            Err(error) => Err(error),
        }
    }
    let mut still = Busy::default();
    for user in &busy.users {
        let wait = c.transaction(|c| {
            users::table
                .find(user)
                .select(users::id)
                .for_update()
                .load::<String>(c)
                .map(|r| r.len())
        });
        if held(wait)? {
            still.users.insert(user.clone());
        }
    }
    for &product in &busy.products {
        let wait = c.transaction(|c| {
            products::table
                .find(product)
                .select(products::id)
                .for_update()
                .load::<i64>(c)
                .map(|r| r.len())
        });
        if held(wait)? {
            still.products.insert(product);
        }
    }
    Ok(still)
}

/// How calls have been grouped into transactions since the store opened.
#[derive(Debug, Default)]
pub struct BatchStats {
    batches: AtomicU64,
    calls: AtomicU64,
    largest: AtomicU64,
    deferred: AtomicU64,
    slow_batches: AtomicU64,
    splits: AtomicU64,
    /// Main-lane transactions in the database right now, and the most there have been.
    in_flight: AtomicU64,
    most_in_flight: AtomicU64,
}

impl BatchStats {
    fn record(&self, size: usize) {
        let size = size as u64;
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.calls.fetch_add(size, Ordering::Relaxed);
        self.largest.fetch_max(size, Ordering::Relaxed);
    }

    /// The most main-lane transactions of this kind that were in the database at once (at
    /// most the pipeline depth, `StoreOptions::pipeline`).
    pub fn most_in_flight(&self) -> u64 {
        self.most_in_flight.load(Ordering::Relaxed)
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

    /// Calls moved from the main lane to the slow lane (a row they needed was held, or their
    /// batch failed on contention).
    pub fn deferred(&self) -> u64 {
        self.deferred.load(Ordering::Relaxed)
    }

    /// Transactions the slow lane ran.
    pub fn slow_batches(&self) -> u64 {
        self.slow_batches.load(Ordering::Relaxed)
    }

    /// Times the slow lane halved a batch that failed on contention.
    pub fn splits(&self) -> u64 {
        self.splits.load(Ordering::Relaxed)
    }
}

/// A job with its caller (the channel it waits on, and its span).
pub(crate) type Waiting<J, R> = (J, Caller<R>);

/// The queue of one kind of job.
#[derive(Debug)]
pub(crate) struct Batcher<J, R> {
    queue: Mutex<Queue<J, R>>,
}

#[derive(Debug)]
struct Queue<J, R> {
    waiting: VecDeque<Waiting<J, R>>,
    /// Drains running (each runs one batch at a time).
    drains: usize,
}

impl<J, R> Default for Batcher<J, R> {
    fn default() -> Self {
        Self { queue: Mutex::new(Queue { waiting: VecDeque::new(), drains: 0 }) }
    }
}

impl<J, R> Batcher<J, R> {
    /// Queues `job` of the caller in `span`. Returns where its answer will arrive, and `true`
    /// when fewer than `drains` drains are running, in which case the caller must start one
    /// (and keep calling [`Self::next_batch`] until it returns `None`).
    pub(crate) fn submit(&self, job: J, span: Span, drains: usize) -> (oneshot::Receiver<R>, bool) {
        let (reply, answer) = oneshot::channel();
        (answer, self.enqueue(job, Caller { reply, span }, drains))
    }

    /// Queues `job` with the caller that already waits on it; `true` as for [`Self::submit`].
    pub(crate) fn enqueue(&self, job: J, caller: Caller<R>, drains: usize) -> bool {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.waiting.push_back((job, caller));
        let start = queue.drains < drains.max(1);
        if start {
            queue.drains += 1;
        }
        start
    }

    /// Puts jobs back at the head of the queue, in their order (they run before later ones).
    pub(crate) fn requeue_front(&self, jobs: Vec<Waiting<J, R>>) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        for job in jobs.into_iter().rev() {
            queue.waiting.push_front(job);
        }
    }

    /// The jobs of the next batch, oldest first: as many as fit in `budget` by `weight` (the
    /// first always does). `None` when the queue is empty, which also ends the calling drain.
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
            queue.drains -= 1;
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
        let (_a, start_a) = batcher.submit(1, Span::none(), 1);
        let (_b, start_b) = batcher.submit(2, Span::none(), 1);
        assert!(start_a);
        assert!(!start_b, "a drain is already running");
        let batch = batcher.next_batch(10, |_| 1).expect("two jobs");
        assert_eq!(batch.iter().map(|(job, _)| *job).collect::<Vec<_>>(), [1, 2]);
        assert!(batcher.next_batch(10, |_| 1).is_none(), "empty: the drain ends");
        let (_c, start_c) = batcher.submit(3, Span::none(), 1);
        assert!(start_c, "after the drain ended, the next caller starts one");
    }

    #[test]
    fn up_to_the_pipeline_depth_callers_start_drains_and_later_ones_queue() {
        let batcher = Batcher::<u32, u32>::default();
        let starts: Vec<bool> = (1..=3).map(|job| batcher.submit(job, Span::none(), 2).1).collect();
        assert_eq!(starts, [true, true, false], "two drains at most");
        let batch = batcher.next_batch(10, |_| 1).expect("the queued jobs");
        assert_eq!(batch.len(), 3, "a drain takes every job waiting");
        assert!(batcher.next_batch(10, |_| 1).is_none(), "one drain found the queue empty");
        assert!(batcher.submit(4, Span::none(), 2).1, "one drain left: room for another");
        assert!(!batcher.submit(5, Span::none(), 2).1);
        assert!(batcher.next_batch(10, |_| 1).is_some());
        assert!(batcher.next_batch(10, |_| 1).is_none());
        assert!(batcher.next_batch(10, |_| 1).is_none(), "both drains ended");
        assert!(batcher.submit(6, Span::none(), 1).1, "with depth 1, the next caller starts one");
        assert!(!batcher.submit(7, Span::none(), 1).1);
    }

    #[test]
    fn batches_take_their_locks_in_the_order_they_started() {
        let turnstile = Arc::new(Turnstile::default());
        let first = turnstile.wait_turn();
        let (locked, second_locked) = std::sync::mpsc::channel();
        let second = {
            let turnstile = turnstile.clone();
            std::thread::spawn(move || {
                let turn = turnstile.wait_turn();
                locked.send(()).expect("the test waits");
                drop(turn);
            })
        };
        let wait = std::time::Duration::from_millis(200);
        assert!(second_locked.recv_timeout(wait).is_err(), "the second waits for the first");
        first.pass();
        first.pass();
        second_locked.recv_timeout(std::time::Duration::from_secs(10)).expect("its turn came");
        second.join().expect("the second batch");
        drop(first);
        let serving = *turnstile.serving.lock().expect("lock");
        assert_eq!(serving, 2, "each turn passed once: by pass() (twice is once) and by drop");
        drop(turnstile.wait_turn());
        assert_eq!(*turnstile.serving.lock().expect("lock"), 3, "a dropped turn passes");
    }

    #[test]
    fn a_batch_stops_at_the_budget_but_always_takes_one_job() {
        let batcher = Batcher::<usize, ()>::default();
        let _answers: Vec<_> =
            [50, 30, 40, 5].into_iter().map(|w| batcher.submit(w, Span::none(), 1).0).collect();
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
