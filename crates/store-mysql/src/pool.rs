//! The connection pool, without a `SELECT 1` before every use.
//!
//! r2d2's usual guard (`test_on_check_out`) costs a round trip per checkout — as much as the
//! query a read then runs. Instead each connection carries a [`Health`] record that diesel's
//! instrumentation keeps up to date from every query it finishes:
//!
//! - a connection whose last query failed in a way the server did not answer for (lost
//!   connection, server gone, a statement killed, …) is discarded when it goes back to the pool;
//!   one the server answered (a constraint, a deadlock, a lock-wait timeout, a statement stopped
//!   by `max_statement_time`, in a prepared statement or inside a multi-statement text) is kept;
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

use crate::tx::contention;
use crate::Conn;

/// A pooled connection idle longer than this is pinged before use.
pub(crate) const IDLE_CHECK: Duration = Duration::from_secs(1);

/// What the instrumentation has seen of one connection.
#[derive(Debug)]
pub(crate) struct Health {
    last_query: Instant,
    broken: bool,
    /// The session setup found this connection on a Galera node.
    galera: bool,
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
/// A statement that fails inside a multi-statement text ends that text (the server runs none
/// after it and sends no more results), so nothing is left to drain either.
fn answered_by_server(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(kind, _) => {
            matches!(
                kind,
                DatabaseErrorKind::UniqueViolation
                    | DatabaseErrorKind::ForeignKeyViolation
                    | DatabaseErrorKind::NotNullViolation
                    | DatabaseErrorKind::CheckViolation
                    | DatabaseErrorKind::SerializationFailure
            ) || contention(error).is_some()
        }
        DieselError::NotFound | DieselError::RollbackTransaction => true,
        _ => false,
    }
}

fn health(conn: &mut Conn) -> Option<&mut Health> {
    conn.instrumentation().downcast_mut::<Health>()
}

/// Whether this pooled connection is on a Galera node (known per connection, so one process
/// may use a single server and a cluster side by side).
pub(crate) fn on_galera(conn: &mut Conn) -> bool {
    health(conn).is_some_and(|h| h.galera)
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
        conn.set_instrumentation(Health {
            last_query: Instant::now(),
            broken: false,
            galera: false,
        });
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
/// UTC, gives up on a row lock after `lock_wait` (half the statement timeout: the transaction
/// is then retried, or the call that needs the row is split off its batch), and has each
/// statement stopped after the statement timeout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionSetup {
    pub(crate) statement_timeout: Duration,
    pub(crate) lock_wait: Duration,
}

impl CustomizeConnection<Conn, diesel::r2d2::Error> for SessionSetup {
    fn on_acquire(&self, conn: &mut Conn) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            .and_then(|()| conn.batch_execute("SET SESSION time_zone = '+00:00'"))
            .and_then(|()| {
                let seconds = self.lock_wait.as_secs().max(1);
                conn.batch_execute(&format!("SET SESSION innodb_lock_wait_timeout = {seconds}"))
            })
            .map_err(diesel::r2d2::Error::QueryError)?;
        // On a Galera node, reads wait until the node has applied every write committed in
        // the cluster before they began (causal reads): a form ordered through one node is
        // then seen by a payment through another, which would otherwise answer "no pending
        // form" while the order's write set is still being applied here.
        if crate::galera::is_on(conn) {
            if let Some(health) = health(conn) {
                health.galera = true;
            }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::mpsc;

    use diesel::sql_types::{BigInt, Unsigned};
    use diesel::RunQueryDsl;

    use super::*;
    use crate::testing::fresh_database_url;
    use crate::tx::Contention;
    use crate::{MysqlStore, PoolOptions};

    fn connection_id(c: &mut Conn) -> u64 {
        diesel::select(diesel::dsl::sql::<Unsigned<BigInt>>("CONNECTION_ID()"))
            .get_result(c)
            .expect("the connection answers")
    }

    /// Runs `text` (several statements) on a pooled connection and reports the error it ended
    /// with, whether the connection still answers as itself afterwards, and whether it is
    /// marked broken.
    async fn fail_on_a_pooled_connection(
        store: &MysqlStore,
        text: &'static str,
        before: impl FnOnce(&mut Conn) + Send + 'static,
    ) -> (u64, DieselError, bool) {
        store
            .blocking(move |c| {
                let id = connection_id(c);
                before(c);
                let error = c.batch_execute(text).expect_err("the text fails");
                let _ = c.batch_execute("ROLLBACK");
                let same = connection_id(c) == id;
                let broken = health(c).is_none_or(|h| h.broken);
                (id, error, same && !broken)
            })
            .await
            .expect("a connection")
    }

    async fn pooled_ids(store: &MysqlStore, times: usize) -> BTreeSet<u64> {
        let mut ids = BTreeSet::new();
        for _ in 0..times {
            ids.insert(store.blocking(connection_id).await.expect("a connection"));
        }
        ids
    }

    /// A deadlock, a lock-wait timeout and a statement stopped by `max_statement_time`, each
    /// inside a multi-statement write: the server answered, so the connection stays usable and
    /// the pool keeps it (no new connection is opened).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_the_server_answered_are_kept() {
        let url = tokio::task::spawn_blocking(fresh_database_url).await.expect("task");
        let options = PoolOptions {
            size: 2,
            checkout_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(2),
        };
        let store = tokio::task::spawn_blocking({
            let url = url.clone();
            move || MysqlStore::connect(&url, options)
        })
        .await
        .expect("task")
        .expect("a store");
        let rows: Vec<String> = (1..=50).map(|i| format!("('p{i}', 1, 10, 0)")).collect();
        let insert = format!(
            "INSERT INTO products (name, price, available, reserved) VALUES {}",
            rows.join(",")
        );
        store.blocking(move |c| c.batch_execute(&insert)).await.expect("task").expect("products");
        let pooled = pooled_ids(&store, 6).await;

        // Interrupted by max_statement_time, between two other statements.
        let (id, error, kept) = fail_on_a_pooled_connection(
            &store,
            "DO 1; SET STATEMENT max_statement_time = 0.2 FOR \
             UPDATE products SET price = price + SLEEP(1) WHERE id = 1; DO 2",
            |_| {},
        )
        .await;
        assert_eq!(contention(&error), Some(Contention::Interrupted), "{error}");
        assert!(kept, "connection {id} is usable and not marked broken after {error}");

        // A lock wait: another session holds product 1.
        let (hold, holding) = holder(&url);
        hold.send(Step::Lock(vec![1])).expect("holder");
        holding.recv().expect("locked");
        let (id, error, kept) = fail_on_a_pooled_connection(
            &store,
            "DO 1; UPDATE products SET price = price WHERE id = 1; DO 2",
            |_| {},
        )
        .await;
        assert_eq!(contention(&error), Some(Contention::LockWait), "{error}");
        assert!(kept, "connection {id} after {error}");
        hold.send(Step::Release).expect("release");

        // A deadlock: this connection holds product 2 and wants 1; the other session holds 1 and
        // many more (so this one is the lighter victim) and wants 2.
        let (hold, holding) = holder(&url);
        let release = hold.clone();
        let (id, error, kept) = fail_on_a_pooled_connection(
            &store,
            "DO 1; UPDATE products SET price = price + 1 WHERE id = 1; DO 2",
            move |c| {
                c.batch_execute("BEGIN; UPDATE products SET price = price + 1 WHERE id = 2")
                    .expect("hold product 2");
                hold.send(Step::Lock((1..=50).filter(|&id| id != 2).collect())).expect("holder");
                holding.recv().expect("locked");
                hold.send(Step::Lock(vec![2])).expect("holder");
                std::thread::sleep(Duration::from_millis(300));
            },
        )
        .await;
        assert_eq!(contention(&error), Some(Contention::Deadlock), "{error}");
        assert!(kept, "connection {id} after {error}");
        let _ = release.send(Step::Release);

        let after = pooled_ids(&store, 6).await;
        assert!(after.is_subset(&pooled), "no connection was replaced: {pooled:?} → {after:?}");
    }

    enum Step {
        /// Lock these products, one statement each (the last may wait), then report.
        Lock(Vec<i64>),
        /// Roll back and end.
        Release,
    }

    /// Another session (READ COMMITTED) that locks products when told, until released.
    fn holder(url: &str) -> (mpsc::Sender<Step>, mpsc::Receiver<()>) {
        let url = url.to_owned();
        let (steps, steps_rx) = mpsc::channel();
        let (done, done_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut conn = Conn::establish(&url).expect("connect");
            conn.batch_execute(
                "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; \
                 SET SESSION innodb_lock_wait_timeout = 10; BEGIN",
            )
            .expect("begin");
            while let Ok(Step::Lock(ids)) = steps_rx.recv_timeout(Duration::from_secs(20)) {
                for id in ids {
                    let sql = format!("UPDATE products SET price = price + 1 WHERE id = {id}");
                    conn.batch_execute(&sql).expect("the holder's lock");
                }
                let _ = done.send(());
            }
            let _ = conn.batch_execute("ROLLBACK");
        });
        (steps, done_rx)
    }
}
