//! One store call that concurrent callers share (single flight), and its last good answer,
//! reused for a while: what the ranking decorator and `/health` both need.
//!
//! Callers that ask for the same key while a call for it is in flight (and started recently
//! enough) wait for that call instead of starting their own; a good answer is kept, stamped
//! with when its call started, and reused for `reuse` after that. Failures are never kept.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::future::{BoxFuture, FutureExt, Shared};

type Flight<T> = Shared<BoxFuture<'static, Result<T, Arc<anyhow::Error>>>>;

/// Shared calls keyed by `K` (what was asked), answering `T`.
pub(crate) struct SingleFlight<K, T> {
    /// How long a good answer is reused after its call started (zero: never).
    reuse: TimeDelta,
    state: Arc<Mutex<FlightState<K, T>>>,
}

struct FlightState<K, T> {
    /// The last good answer, with when its call started and what it was asked.
    kept: Option<(DateTime<Utc>, K, T)>,
    /// The call in flight: its number, when it started, what it was asked, its shared answer.
    running: Option<(u64, DateTime<Utc>, K, Flight<T>)>,
    next: u64,
}

fn lock<S>(state: &Mutex<S>) -> MutexGuard<'_, S> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<K, T> SingleFlight<K, T>
where
    K: PartialEq + Clone + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    /// Answers reused for `reuse` after their call started. A zero `reuse` keeps nothing
    /// reusable, and then a caller joins the call in flight however long it has run.
    pub(crate) fn new(reuse: TimeDelta) -> Self {
        let state = FlightState { kept: None, running: None, next: 0 };
        Self { reuse, state: Arc::new(Mutex::new(state)) }
    }

    /// Whether a call that started at `at` is recent enough at `now` to be reused.
    fn recent(&self, at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        now >= at && now - at < self.reuse
    }

    /// The answer for `key`: kept from a call that started less than `reuse` before `now`,
    /// or from the call in flight for it, or from one `call` makes now.
    pub(crate) async fn get(
        &self,
        key: K,
        now: DateTime<Utc>,
        call: impl FnOnce() -> BoxFuture<'static, anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        let flight = {
            let mut state = lock(&self.state);
            let kept = state.kept.as_ref();
            if let Some((_, _, value)) =
                kept.filter(|(at, of, _)| *of == key && self.recent(*at, now))
            {
                return Ok(value.clone());
            }
            let running = state.running.as_ref();
            let joins = |at: &DateTime<Utc>| self.reuse.is_zero() || self.recent(*at, now);
            match running.filter(|(_, at, of, _)| *of == key && joins(at)) {
                Some((_, _, _, flight)) => flight.clone(),
                None => {
                    let number = state.next;
                    state.next += 1;
                    let flight = self.start(number, now, key.clone(), call());
                    state.running = Some((number, now, key, flight.clone()));
                    flight
                }
            }
        };
        flight.await.map_err(|error| anyhow::anyhow!("{error:#}"))
    }

    /// Wraps `call` so that, once answered, it leaves the running slot (if it still holds it)
    /// and keeps a good answer stamped with when the call started.
    fn start(
        &self,
        number: u64,
        started: DateTime<Utc>,
        key: K,
        call: BoxFuture<'static, anyhow::Result<T>>,
    ) -> Flight<T> {
        let state = self.state.clone();
        async move {
            let answer = call.await;
            let mut state = lock(&state);
            if state.running.as_ref().is_some_and(|(n, ..)| *n == number) {
                state.running = None;
            }
            match answer {
                Ok(value) => {
                    if state.kept.as_ref().is_none_or(|(at, ..)| *at <= started) {
                        state.kept = Some((started, key, value.clone()));
                    }
                    Ok(value)
                }
                Err(error) => Err(Arc::new(error)),
            }
        }
        .boxed()
        .shared()
    }
}
