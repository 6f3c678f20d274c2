//! The connection pool, without a `SELECT 1` before every use.
//!
//! r2d2's usual guard (`test_on_check_out`) costs a round trip per checkout — as much as the
//! query a read then runs. Instead each connection carries a [`Health`] record that diesel's
//! instrumentation keeps up to date from every query it finishes:
//!
//! - a connection whose last query failed in a way the server did not answer for (lost
//!   connection, server gone, interrupted statement, …) is discarded when it goes back to the pool;
//! - a connection idle for longer than [`IDLE_CHECK`] is pinged before it is handed out, and
//!   replaced if the ping fails — so a database restart while the pool sat idle costs nothing.
//!
//! What is given up: when the database goes away under load, each connection in use fails once
//! (the request answers 503, code 7) before it is replaced.

use std::time::{Duration, Instant};

use diesel::connection::{Instrumentation, InstrumentationEvent, SimpleConnection};
use diesel::r2d2::{ConnectionManager, CustomizeConnection, ManageConnection, R2D2Connection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::Connection;

use crate::Conn;

/// A pooled connection idle longer than this is pinged before use.
pub(crate) const IDLE_CHECK: Duration = Duration::from_secs(1);

/// What the instrumentation has seen of one connection.
#[derive(Debug)]
pub(crate) struct Health {
    last_query: Instant,
    broken: bool,
}

impl Instrumentation for Health {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::FinishQuery { error, .. } = event {
            self.last_query = Instant::now();
            if error.is_some_and(|e| !answered_by_server(e)) {
                self.broken = true;
            }
        }
    }
}

/// Errors the server itself reported about the statement: the connection is fine after them.
fn answered_by_server(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(kind, info) => {
            matches!(
                kind,
                DatabaseErrorKind::UniqueViolation
                    | DatabaseErrorKind::ForeignKeyViolation
                    | DatabaseErrorKind::NotNullViolation
                    | DatabaseErrorKind::CheckViolation
                    | DatabaseErrorKind::SerializationFailure
            ) || info.message().contains("Lock wait timeout")
        }
        DieselError::NotFound | DieselError::RollbackTransaction => true,
        _ => false,
    }
}

fn health(conn: &mut Conn) -> Option<&mut Health> {
    conn.instrumentation().downcast_mut::<Health>()
}

/// Makes sure a checked-out connection is usable: pings it when it has been idle, and reports
/// `false` (after marking it broken, so the pool drops it) when the ping fails.
pub(crate) fn usable(conn: &mut Conn) -> bool {
    let idle = health(conn).is_none_or(|h| h.last_query.elapsed() >= IDLE_CHECK);
    if !idle {
        return true;
    }
    match conn.ping() {
        Ok(()) => true,
        Err(error) => {
            tracing::debug!(%error, "a pooled connection failed its ping; replacing it");
            if let Some(health) = health(conn) {
                health.broken = true;
            }
            false
        }
    }
}

/// diesel's manager, with broken connections told apart by their [`Health`].
#[derive(Debug)]
pub(crate) struct Manager(pub(crate) ConnectionManager<Conn>);

impl ManageConnection for Manager {
    type Connection = Conn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Conn, Self::Error> {
        let mut conn = self.0.connect()?;
        conn.set_instrumentation(Health { last_query: Instant::now(), broken: false });
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), Self::Error> {
        self.0.is_valid(conn)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        self.0.has_broken(conn) || health(conn).is_some_and(|h| h.broken)
    }
}

/// Every pooled connection runs in READ COMMITTED (no gap locks on the guarded updates), in
/// UTC, gives up on a row lock after 10 s (the transaction is then retried), and has each
/// statement stopped after the statement timeout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionSetup {
    pub(crate) statement_timeout: Duration,
}

impl CustomizeConnection<Conn, diesel::r2d2::Error> for SessionSetup {
    fn on_acquire(&self, conn: &mut Conn) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            .and_then(|()| conn.batch_execute("SET SESSION time_zone = '+00:00'"))
            .and_then(|()| conn.batch_execute("SET SESSION innodb_lock_wait_timeout = 10"))
            .map_err(diesel::r2d2::Error::QueryError)?;
        // On a Galera node, reads wait until the node has applied every write committed in
        // the cluster before they began (causal reads): a form ordered through one node is
        // then seen by a payment through another, which would otherwise answer "no pending
        // form" while the order's write set is still being applied here.
        if crate::galera::is_on(conn) {
            crate::galera::seen();
            conn.batch_execute(&format!(
                "SET SESSION wsrep_sync_wait = 1; SET SESSION wait_timeout = {}",
                crate::galera::IDLE_LIMIT.as_secs()
            ))
            .map_err(diesel::r2d2::Error::QueryError)?;
        }
        // MariaDB's name; MySQL has none for writes, so a refusal here is not fatal.
        let seconds = self.statement_timeout.as_secs_f64();
        if let Err(error) =
            conn.batch_execute(&format!("SET SESSION max_statement_time = {seconds:.3}"))
        {
            tracing::debug!(%error, "this server has no max_statement_time");
            if let Some(health) = health(conn) {
                health.broken = false;
            }
        }
        Ok(())
    }
}
