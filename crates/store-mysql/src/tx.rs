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

/// Runs `work` in a transaction; on deadlock or lock-wait timeout, rolls back and runs it
/// again (up to 5 attempts, with a short growing pause).
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
            Err(TxError::Db(error)) if attempt < ATTEMPTS && is_transient(&error) => {
                tracing::debug!(attempt, %error, "retrying a transaction");
                std::thread::sleep(Duration::from_millis(u64::from(attempt) * 5));
                attempt += 1;
            }
            result => return result,
        }
    }
}
