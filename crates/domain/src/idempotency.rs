//! Safe retries: a client may send an idempotency key with a charge, an order or a payment. The
//! first outcome for (user, key) is stored in the same transaction as its effect and replayed
//! to every retry for 24 hours; a key reused for a different request is refused.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};
use thiserror::Error;

use crate::model::{Order, PaymentReceipt};
use crate::values::{Points, UserId};

/// How long an outcome is replayed.
pub const REPLAY_FOR: TimeDelta = TimeDelta::hours(24);

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("an idempotency key is 1-255 visible ASCII characters")]
pub struct InvalidIdempotencyKey;

/// A client's key for one call, and a fingerprint of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    user: UserId,
    key: String,
    fingerprint: String,
}

impl IdempotencyKey {
    /// # Errors
    /// [`InvalidIdempotencyKey`] when `key` is empty, longer than 255 characters, or not
    /// visible ASCII.
    pub fn new(
        user: UserId,
        key: &str,
        fingerprint: String,
    ) -> Result<Self, InvalidIdempotencyKey> {
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidIdempotencyKey);
        }
        Ok(Self { user, key: key.to_owned(), fingerprint })
    }

    pub fn user(&self) -> &UserId {
        &self.user
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// What identifies the request: the same key with another fingerprint is a misuse.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// What a completed call produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Charged { balance: Points },
    Ordered(Order),
    Paid(PaymentReceipt),
}

/// A stored outcome and the fingerprint of the request that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub fingerprint: String,
    pub outcome: Outcome,
}

/// Asks a store to keep the outcome of this call under `key` until `expires_at`, in the same
/// transaction as the call's effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remember {
    pub key: IdempotencyKey,
    /// When the call started: a stored outcome that expired before it no longer holds the key.
    pub at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Why a call with a key was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdempotencyError {
    /// The key was used before for a different request.
    #[error("this idempotency key was used for a different request")]
    Mismatch,
    /// The first call with this key is still running.
    #[error("a call with this idempotency key is still in progress")]
    InProgress,
    /// A store found the key already used while applying the effect; the caller replays.
    #[error("this idempotency key was used already")]
    AlreadyUsed,
}

/// The keys whose first call is running in this process.
#[derive(Debug, Default)]
pub(crate) struct InFlight(Mutex<HashSet<(UserId, String)>>);

/// Releases a key from [`InFlight`] when the call ends, however it ends.
#[derive(Debug)]
pub(crate) struct InFlightGuard<'a> {
    set: &'a InFlight,
    entry: (UserId, String),
}

impl InFlight {
    pub(crate) fn claim(
        &self,
        key: &IdempotencyKey,
    ) -> Result<InFlightGuard<'_>, IdempotencyError> {
        let entry = (key.user.clone(), key.key.clone());
        let mut running = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !running.insert(entry.clone()) {
            return Err(IdempotencyError::InProgress);
        }
        Ok(InFlightGuard { set: self, entry })
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.set.0.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(raw: &str) -> Result<IdempotencyKey, InvalidIdempotencyKey> {
        IdempotencyKey::new(UserId::parse("alice").expect("user"), raw, "fp".into())
    }

    #[test]
    fn keys_are_visible_ascii_up_to_255_characters() {
        assert!(key("7f1c-retry_1").is_ok());
        assert!(key(&"k".repeat(255)).is_ok());
        assert_eq!(key(""), Err(InvalidIdempotencyKey));
        assert_eq!(key(&"k".repeat(256)), Err(InvalidIdempotencyKey));
        assert_eq!(key("with space"), Err(InvalidIdempotencyKey));
        assert_eq!(key("ключ"), Err(InvalidIdempotencyKey));
    }

    #[test]
    fn a_key_is_in_flight_once_until_its_guard_drops() {
        let running = InFlight::default();
        let first = key("k").expect("key");
        let guard = running.claim(&first).expect("first claim");
        assert_eq!(running.claim(&first).err(), Some(IdempotencyError::InProgress));
        assert!(running.claim(&key("other").expect("key")).is_ok());
        drop(guard);
        assert!(running.claim(&first).is_ok());
    }
}
