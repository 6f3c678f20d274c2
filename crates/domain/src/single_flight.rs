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
    state: Arc<Mutex<FlightState<K, T>>>,
}

impl<K, T> Default for SingleFlight<K, T> {
    fn default() -> Self {
        Self { state: Arc::new(Mutex::new(FlightState { kept: None, running: None, next: 0 })) }
    }
}

struct FlightState<K, T> {
    /// The last good answer, with when its call started and what it was asked.
    kept: Option<(DateTime<Utc>, K, T)>,
    /// The call in flight: its number, when it started, what it was asked, its shared answer.
    running: Option<(u64, DateTime<Utc>, K, Flight<T>)>,
    next: u64,
}

/// Whether a call that started at `at` is recent enough at `now` to be reused for `reuse`
/// (a zero `reuse` keeps nothing, but still joins a call in flight).
fn recent(at: DateTime<Utc>, now: DateTime<Utc>, reuse: TimeDelta) -> bool {
    reuse.is_zero() || (now >= at && now - at < reuse)
}

fn lock<S>(state: &Mutex<S>) -> MutexGuard<'_, S> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<K, T> SingleFlight<K, T>
where
    K: PartialEq + Clone + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    /// The answer for `key`: kept from a call that started less than `reuse` before `now`,
    /// or from the call in flight for it, or from one `start` makes now.
    pub(crate) async fn get(
        &self,
        key: K,
        now: DateTime<Utc>,
        reuse: TimeDelta,
        start: impl FnOnce() -> BoxFuture<'static, anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        let flight = {
            let mut state = lock(&self.state);
            if !reuse.is_zero() {
                let kept = state.kept.as_ref();
                if let Some((_, _, value)) =
                    kept.filter(|(at, of, _)| *of == key && recent(*at, now, reuse))
                {
                    return Ok(value.clone());
                }
            }
            let running = state.running.as_ref();
            match running.filter(|(_, at, of, _)| *of == key && recent(*at, now, reuse)) {
                Some((_, _, _, flight)) => flight.clone(),
                None => {
                    let number = state.next;
                    state.next += 1;
                    let flight = self.start(number, now, key.clone(), reuse, start());
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
        reuse: TimeDelta,
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
                    let newer = state.kept.as_ref().is_none_or(|(at, ..)| *at <= started);
                    if !reuse.is_zero() && newer {
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
