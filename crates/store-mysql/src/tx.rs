//! Transactions that are retried whole when MariaDB picks them as a deadlock victim or a lock
//! wait times out, and that carry a business rejection out as a rollback.

use std::time::Duration;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::Connection;

use crate::Conn;

/// Attempts per transaction (the first try plus retries).
const ATTEMPTS: u32 = 5;

/// Why a transaction ended without committing.
#[derive(Debug)]
pub(crate) enum TxError<E> {
    /// A business rule said no (lack of stock, …): rolled back, not retried.
    Rejected(E),
    /// The database failed.
    Db(DieselError),
}

impl<E> From<DieselError> for TxError<E> {
    fn from(error: DieselError) -> Self {
        Self::Db(error)
    }
}

impl<E: From<anyhow::Error>> TxError<E> {
    /// The use case's error: the rejection itself, or `Unexpected` for a database failure.
    pub(crate) fn into_error(self) -> E {
        match self {
            Self::Rejected(error) => error,
            Self::Db(error) => {
                E::from(anyhow::Error::new(error).context("database transaction failed"))
            }
        }
    }
}

/// Shorthand for rejecting inside a transaction.
pub(crate) fn reject<T, E>(error: E) -> Result<T, TxError<E>> {
    Err(TxError::Rejected(error))
}

fn is_transient(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        DieselError::DatabaseError(_, info) => {
            let message = info.message();
            message.contains("Deadlock found") || message.contains("Lock wait timeout")
        }
        _ => false,
    }
}

/// Attempts per transaction on a Galera cluster. There a hot row written through several
/// nodes at once (a flash sale with an instance per node) fails certification at COMMIT (1213)
/// for all but one writer per round, so a transaction may lose several rounds in a row.
const GALERA_ATTEMPTS: u32 = 12;

/// Lock-wait timeouts keep the usual 5 attempts: each may cost a whole lock wait again.
fn attempts(error: &DieselError) -> u32 {
    let lock_wait = matches!(error, DieselError::DatabaseError(_, info)
        if info.message().contains("Lock wait timeout"));
    if crate::galera::is_seen() && !lock_wait {
        GALERA_ATTEMPTS
    } else {
        ATTEMPTS
    }
}

/// The pause before attempt `attempt + 1`: on one server a short growing one (5, 10, 15 ms …);
/// on Galera a jittered exponential back-off (up to 5 · 2^(n−1) ms, at most 400 ms; about 2 s
/// in all over 12 attempts), so writers on different nodes stop meeting in the same round.
fn pause(attempt: u32) -> Duration {
    if !crate::galera::is_seen() {
        return Duration::from_millis(u64::from(attempt) * 5);
    }
    use std::hash::BuildHasher;
    let ceiling = (5_u64 << attempt.saturating_sub(1).min(7)).min(400);
    let random = std::collections::hash_map::RandomState::new().hash_one(attempt);
    Duration::from_millis(ceiling / 2 + random % (ceiling / 2 + 1))
}

/// Runs `work` in a transaction; on deadlock or lock-wait timeout, rolls back and runs it
/// again (up to 5 attempts with a short growing pause; on Galera 12 with a jittered back-off).
pub(crate) fn transaction<T, E>(
    conn: &mut Conn,
    mut work: impl FnMut(&mut Conn) -> Result<T, TxError<E>>,
) -> Result<T, TxError<E>> {
    let mut attempt = 1;
    loop {
        let attempt_once = |c: &mut Conn| {
            let done = work(c)?;
            crate::galera::still_in_transaction(c)?;
            Ok(done)
        };
        match conn.transaction(attempt_once) {
            Err(TxError::Db(error)) if attempt < attempts(&error) && is_transient(&error) => {
                tracing::debug!(attempt, %error, "retrying a transaction");
                std::thread::sleep(pause(attempt));
                attempt += 1;
            }
            result => return result,
        }
    }
}
