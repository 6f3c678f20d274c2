//! Transactions that are retried whole when MariaDB picks them as a deadlock victim, a lock
//! wait times out or a statement runs out of time, and that carry a business rejection out as
//! a rollback.

use std::time::Duration;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::Connection;

use crate::Conn;

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

/// A failure the server reports about waiting or time rather than about the statement itself:
/// the same work may well succeed on another try, or without the call that needs the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Contention {
    /// 1213: the transaction was picked as a deadlock victim and rolled back.
    Deadlock,
    /// 1205: a row lock was not granted within `innodb_lock_wait_timeout`.
    LockWait,
    /// 1969 (MariaDB's `max_statement_time`; 3024 on MySQL): the statement was stopped for
    /// running too long.
    Interrupted,
}

/// What kind of contention `error` is, if it is one. diesel reports no error numbers for
/// statements sent as text (`batch_execute`), so the server's messages are matched.
pub(crate) fn contention(error: &DieselError) -> Option<Contention> {
    let DieselError::DatabaseError(kind, info) = error else { return None };
    let message = info.message();
    if matches!(kind, DatabaseErrorKind::SerializationFailure)
        || message.starts_with("Deadlock found")
    {
        Some(Contention::Deadlock)
    } else if message.starts_with("Lock wait timeout exceeded") {
        Some(Contention::LockWait)
    } else if message.contains("max_statement_time exceeded")
        || message.contains("maximum statement execution time exceeded")
    {
        Some(Contention::Interrupted)
    } else {
        None
    }
}

/// Deadlock retries on a Galera cluster (12 attempts in all). There a hot row written through
/// several nodes at once (a flash sale with an instance per node) fails certification at
/// COMMIT (1213, a deadlock) for all but one writer per round, so a transaction may lose
/// several rounds in a row. Timeouts keep their policy: each may cost a whole lock wait again.
const GALERA_DEADLOCK_RETRIES: u32 = 11;

/// The pause before attempt `attempt + 1`: on one server a short growing one (5, 10, 15 ms …);
/// on Galera a jittered exponential back-off (up to 5 · 2^(n−1) ms, at most 400 ms; about 2 s
/// in all over 12 attempts), so writers on different nodes stop meeting in the same round.
fn pause(attempt: u32, galera: bool) -> Duration {
    if !galera {
        return Duration::from_millis(u64::from(attempt) * 5);
    }
    use std::hash::BuildHasher;
    let ceiling = (5_u64 << attempt.saturating_sub(1).min(7)).min(400);
    let random = std::collections::hash_map::RandomState::new().hash_one(attempt);
    Duration::from_millis(ceiling / 2 + random % (ceiling / 2 + 1))
}

/// How often a transaction is tried again after contention.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retries {
    /// After a deadlock: InnoDB rolled the victim back at once, so another try usually passes.
    pub(crate) deadlocks: u32,
    /// After a lock-wait timeout or an interrupted statement: each try may take a whole lock
    /// wait or statement timeout again, so few.
    pub(crate) timeouts: u32,
}

impl Retries {
    /// A single call's transaction: 5 attempts after deadlocks, one retry after a timeout (a
    /// lock wait is half the statement timeout, so two fit in the request limit).
    pub(crate) const USUAL: Self = Self { deadlocks: 4, timeouts: 1 };
    /// A batch's transaction: a timeout is not retried whole; the batch is split instead
    /// (`batch.rs`), so the calls that do not need the stuck row are not made to wait again.
    pub(crate) const BATCH: Self = Self { deadlocks: 4, timeouts: 0 };
}

/// Runs `work` in a transaction; on deadlock, lock-wait timeout or interrupted statement, rolls
/// back and runs it again as [`Retries::USUAL`] allows, with a short growing pause (on Galera:
/// more deadlock retries, with a jittered back-off).
pub(crate) fn transaction<T, E>(
    conn: &mut Conn,
    work: impl FnMut(&mut Conn) -> Result<T, TxError<E>>,
) -> Result<T, TxError<E>> {
    transaction_with(conn, Retries::USUAL, work)
}

/// [`transaction`] with its own retry policy.
pub(crate) fn transaction_with<T, E>(
    conn: &mut Conn,
    retries: Retries,
    mut work: impl FnMut(&mut Conn) -> Result<T, TxError<E>>,
) -> Result<T, TxError<E>> {
    let galera = crate::pool::on_galera(conn);
    let (mut deadlocks, mut timeouts) = (0_u32, 0_u32);
    let mut attempt: u32 = 1;
    loop {
        let attempt_once = |c: &mut Conn| {
            let done = work(c)?;
            crate::galera::still_in_transaction(c)?;
            Ok(done)
        };
        match conn.transaction(attempt_once) {
            Err(TxError::Db(error)) => {
                let again = match contention(&error) {
                    Some(Contention::Deadlock) => {
                        deadlocks += 1;
                        let allowed = if galera {
                            retries.deadlocks.max(GALERA_DEADLOCK_RETRIES)
                        } else {
                            retries.deadlocks
                        };
                        deadlocks <= allowed
                    }
                    Some(Contention::LockWait | Contention::Interrupted) => {
                        timeouts += 1;
                        timeouts <= retries.timeouts
                    }
                    None => false,
                };
                if !again {
                    return Err(TxError::Db(error));
                }
                tracing::debug!(attempt, %error, "retrying a transaction");
                std::thread::sleep(pause(attempt, galera));
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// The client lost the server (gone away, connection lost or closed): no answer came. The
/// transaction was rolled back with the connection — unless the answer lost was the COMMIT's,
/// so only work that is safe to run twice is tried again after it (claims, the expiry sweep).
pub(crate) fn connection_lost(error: &DieselError) -> bool {
    let message = error.to_string();
    ["gone away", "Lost connection", "closed the connection"]
        .iter()
        .any(|lost| message.contains(lost))
}
