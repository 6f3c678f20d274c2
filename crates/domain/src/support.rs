//! Plain implementations of the `Clock` and `IdGenerator` ports for tests: a clock you move by
//! hand and sequential ids. Compiled for this crate's tests and with the `testing` feature,
//! which other crates enable from their dev-dependencies only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};

use crate::ports::{Clock, IdGenerator};

/// A clock that stands still until told to move.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(Mutex::new(start))
    }

    pub fn advance(&self, by: TimeDelta) {
        let mut now = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Ids `"{prefix}-1"`, `"{prefix}-2"`, …
#[derive(Debug)]
pub struct SequentialIds {
    prefix: &'static str,
    next: AtomicU64,
}

impl SequentialIds {
    pub fn new(prefix: &'static str) -> Self {
        Self { prefix, next: AtomicU64::new(1) }
    }
}

impl IdGenerator for SequentialIds {
    fn new_id(&self) -> String {
        format!("{}-{}", self.prefix, self.next.fetch_add(1, Ordering::Relaxed))
    }
}
