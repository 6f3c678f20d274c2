//! The MySQL/MariaDB store: every persistence port on diesel + r2d2.
//!
//! - Diesel is blocking, so every call, `pool.get()` included, runs on tokio's blocking pool
//!   ([`MysqlStore::blocking`]), carrying the caller's tracing span.
//! - Each port method is one transaction ([`tx::transaction`]) that is retried whole on
//!   deadlock (1213), lock-wait timeout (1205) and interrupted statement (1969), see `tx` —
//!   except the product and balance point reads, one autocommit `SELECT` per round
//!   (`point_reads`).
//! - Orders, payments and charges are coalesced (`batch`): a batch locks its rows (`locking`),
//!   loads them into a `domain::rules::Snapshot` (`snapshot`), folds each call through the
//!   domain's rule for it in queue order, and writes what changed (`writes`). The store locks,
//!   loads and persists; it does not decide. Row locks are taken in one order — user, then
//!   order form, then products by ascending id — so transactions do not deadlock one another;
//!   status changes outside a batch (expiry, outbox leases) are guarded by the current status,
//!   and unique keys back the rest. See `docs/persistence.md`. Each queued call carries its
//!   caller's tracing span, a batch's work runs in a `db_batch` span that follows from them,
//!   and a line about a call is written in the call's own span.
//! - Times come from the domain's clock, never from `NOW()`, and are stored as UTC `DATETIME(6)`.

mod accounts;
mod batch;
mod charges;
mod forms;
mod galera;
mod health;
mod idempotency;
mod locking;
mod migration_lock;
mod orders;
mod outbox;
mod payments;
mod point_reads;
mod pool;
mod products;
mod ranking;
mod rows;
pub mod schema;
mod snapshot;
mod sql_text;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod tx;
mod writes;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
pub use batch::BatchStats;
use batch::Coalesced;
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};
use diesel::{Connection, MysqlConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use domain::errors::{ChargeError, PayError, PlaceOrderError};
use domain::model::{Order, PaymentReceipt};
use domain::ports::Clock;
use domain::values::Points;
pub use point_reads::PointReadStats;

type Conn = MysqlConnection;
type DbPool = Pool<pool::Manager>;

/// The migrations in `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// Connection pool settings (`MALL_DB_POOL_SIZE`, `MALL_DB_TIMEOUT_MS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    /// Connections kept at most; never below 2, so a slow request cannot starve the sweeper.
    pub size: u32,
    /// How long a request waits for a free connection before it answers 503, code 7.
    pub checkout_timeout: Duration,
    /// How long one statement may run before MariaDB stops it (`max_statement_time`). The
    /// row-lock wait is derived from it ([`PoolOptions::lock_wait`]), so it must be at least
    /// [`PoolOptions::MIN_STATEMENT_TIMEOUT`].
    pub statement_timeout: Duration,
}

impl PoolOptions {
    /// The shortest statement timeout that leaves room for a lock wait (of 1 s, the least
    /// `innodb_lock_wait_timeout` can be) inside it.
    pub const MIN_STATEMENT_TIMEOUT: Duration = Duration::from_secs(2);

    /// How long a statement waits for a row lock before MariaDB gives up on it
    /// (`innodb_lock_wait_timeout`, whole seconds): half the statement timeout, rounded down,
    /// at least 1 s. So a statement stuck behind someone else's lock ends with a lock-wait
    /// timeout — which says what happened, and is retried or split off — well before the
    /// statement limit interrupts it.
    pub fn lock_wait(&self) -> Duration {
        Duration::from_secs((self.statement_timeout.as_secs() / 2).max(1))
    }

    /// Refuses settings under which the limits would not nest (lock wait < statement timeout).
    ///
    /// # Errors
    /// A statement timeout under [`Self::MIN_STATEMENT_TIMEOUT`].
    pub fn check(&self) -> anyhow::Result<()> {
        if self.statement_timeout < Self::MIN_STATEMENT_TIMEOUT {
            return Err(anyhow!(
                "the database statement timeout ({} ms) must be at least {} ms, to leave room \
                 for a row-lock wait of at least 1 s inside it",
                self.statement_timeout.as_millis(),
                Self::MIN_STATEMENT_TIMEOUT.as_millis()
            ));
        }
        Ok(())
    }
}

/// How the store runs its writes (`MALL_DB_GROUP_COMMIT`, `MALL_DB_PIPELINE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Orders, payments and charges that arrive together share a transaction (group commit,
    /// ADR 0006). Off: each runs alone in its own transaction, waiting for its row locks, as
    /// before group commit — the naive baseline `mall-bench` compares against.
    pub group_commit: bool,
    /// How many batches of one kind (orders, payments, charges; with group commit), and read
    /// rounds of one kind (products, balances; always), may be in the database at once: 1 runs
    /// them one after another; more lets the next batch lock and decide while one commits (they
    /// take their locks in turn, see `batch::Turnstile`). 0 counts as 1.
    pub pipeline: usize,
}

impl StoreOptions {
    /// The default pipeline depth: one batch at a time. Deeper pipelines were measured no
    /// faster on a 2-core machine, on one MariaDB and on Galera (docs/performance.md).
    pub const PIPELINE: u8 = 1;
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { group_commit: true, pipeline: Self::PIPELINE.into() }
    }
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            size: 4,
            checkout_timeout: Duration::from_millis(2_000),
            statement_timeout: Duration::from_millis(5_000),
        }
    }
}

/// Every persistence port on one MySQL/MariaDB database.
#[derive(Clone)]
pub struct MysqlStore {
    pool: DbPool,
    /// Two permits per pooled connection: callers queue here, as tasks, before taking a
    /// blocking thread (one waiting thread per connection keeps the hand-over quick).
    turns: Arc<tokio::sync::Semaphore>,
    checkout_timeout: Duration,
    orders: Arc<Coalesced<orders::OrderJob, Order, PlaceOrderError>>,
    charges: Arc<Coalesced<charges::ChargeJob, Points, ChargeError>>,
    payments: Arc<Coalesced<payments::PayJob, PaymentReceipt, PayError>>,
    closed_hours: Arc<ranking::ClosedHours>,
    /// What time it is for the ranking's kept sums (which sales hours are over); the system
    /// clock unless [`MysqlStore::with_clock`] says otherwise.
    clock: Arc<dyn Clock>,
    /// The rows the batches' main lanes hold at the moment (see `batch::Ctx`).
    own_locks: Arc<batch::OwnLocks>,
    /// Group commit, and the pipeline depth.
    options: StoreOptions,
    /// Product and balance reads, coalesced into rounds (see `point_reads`).
    point_reads: Arc<point_reads::PointReads>,
}

impl fmt::Debug for MysqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.pool.state();
        f.debug_struct("MysqlStore")
            .field("connections", &state.connections)
            .field("idle", &state.idle_connections)
            .field("orders", &self.orders)
            .field("charges", &self.charges)
            .field("payments", &self.payments)
            .finish()
    }
}

impl MysqlStore {
    /// Creates the database if it is missing, applies pending migrations, and opens the pool.
    /// Blocking: call it from a blocking context or before the runtime serves.
    ///
    /// # Errors
    /// When the server is unreachable, a migration fails, or the pool cannot open.
    pub fn connect(url: &str, options: PoolOptions) -> anyhow::Result<Self> {
        Self::connect_with(url, options, StoreOptions::default())
    }

    /// [`Self::connect`], with the store's own options.
    ///
    /// # Errors
    /// As [`Self::connect`].
    pub fn connect_with(
        url: &str,
        options: PoolOptions,
        store: StoreOptions,
    ) -> anyhow::Result<Self> {
        options.check()?;
        let applied = migrate(url)?;
        if !applied.is_empty() {
            tracing::info!(migrations = ?applied, "applied database migrations");
        }
        let manager = pool::Manager(ConnectionManager::<Conn>::new(url));
        let size = options.size.max(2);
        let pool = Pool::builder()
            .max_size(size)
            .min_idle(Some(2))
            .connection_timeout(options.checkout_timeout)
            // Checked from what each connection's queries saw instead (see `pool`).
            .test_on_check_out(false)
            .connection_customizer(Box::new(pool::SessionSetup {
                statement_timeout: options.statement_timeout,
                lock_wait: options.lock_wait(),
            }))
            .build(manager)
            .context("opening the database connection pool")?;
        Ok(Self {
            pool,
            turns: Arc::new(tokio::sync::Semaphore::new(2 * size as usize)),
            checkout_timeout: options.checkout_timeout,
            orders: Arc::new(orders::coalesced()),
            charges: Arc::new(charges::coalesced()),
            payments: Arc::new(payments::coalesced()),
            closed_hours: Arc::default(),
            clock: Arc::new(SystemClock),
            own_locks: Arc::default(),
            options: store,
            point_reads: Arc::default(),
        })
    }

    /// The same store reading the time from `clock` (the shop's clock: `app` hands the one
    /// its use cases use, tests a hand-moved one). The ranking uses it to tell which sales
    /// hours are over.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How orders have been grouped into transactions so far (group commit, see
    /// `docs/persistence.md`).
    pub fn order_batch_stats(&self) -> &BatchStats {
        self.orders.stats()
    }

    /// How payments have been grouped into transactions so far.
    pub fn payment_batch_stats(&self) -> &BatchStats {
        self.payments.stats()
    }

    /// How charges have been grouped into transactions so far.
    pub fn charge_batch_stats(&self) -> &BatchStats {
        self.charges.stats()
    }

    /// Runs `work` in a transaction on a pooled connection, and once more on another one when
    /// the connection was lost without an answer (on Galera, see `galera::IDLE_LIMIT`). The
    /// transaction was rolled back with the connection — unless the answer lost was the
    /// COMMIT's — so only work that is safe to run twice may come here (claims, the sweep).
    async fn transaction_rerun_if_lost<T, F>(&self, what: &str, work: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: Fn(&mut Conn) -> Result<T, tx::TxError<anyhow::Error>> + Clone + Send + 'static,
    {
        let mut tries = 0;
        loop {
            tries += 1;
            let work = work.clone();
            let done = self.blocking(move |c| tx::transaction(c, |c| work(c))).await?;
            match done {
                Err(tx::TxError::Db(error)) if tries == 1 && tx::connection_lost(&error) => {
                    tracing::debug!(%error, what, "lost the connection; running it again");
                }
                done => return done.map_err(tx::TxError::into_error),
            }
        }
    }

    /// Runs `work` with a pooled connection on the blocking pool.
    async fn blocking<T, F>(&self, work: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn) -> T + Send + 'static,
    {
        let pool = self.pool.clone();
        let span = tracing::Span::current();
        // Wait for a connection's turn here, as a task, rather than as a blocking thread parked
        // in the pool: a burst of requests then costs no thread switches while it queues.
        let waited = std::time::Instant::now();
        let permit =
            tokio::time::timeout(self.checkout_timeout, self.turns.clone().acquire_owned())
                .await
                .map_err(|_| {
                    metrics::counter!("db_pool_checkout_failures_total").increment(1);
                    anyhow!("no database connection available within {:?}", self.checkout_timeout)
                })?
                .context("the connection queue closed")?;
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let _permit = permit;
            let conn = checkout(&pool);
            metrics::histogram!("db_pool_wait_seconds").record(waited.elapsed().as_secs_f64());
            let state = pool.state();
            metrics::gauge!("db_pool_connections").set(f64::from(state.connections));
            metrics::gauge!("db_pool_idle_connections").set(f64::from(state.idle_connections));
            let in_use = state.connections.saturating_sub(state.idle_connections);
            metrics::gauge!("db_pool_in_use_connections").set(f64::from(in_use));
            let mut conn: PooledConnection<_> = conn.map_err(|e| {
                metrics::counter!("db_pool_checkout_failures_total").increment(1);
                anyhow!("no database connection available: {e}")
            })?;
            Ok(work(&mut conn))
        })
        .await
        .context("a database task panicked")?
    }
}

/// The time of the machine: the store's clock unless it is given another.
#[derive(Debug)]
struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
    }
}

/// A usable pooled connection: an idle one is pinged first, and replaced if the ping fails
/// (every idle connection may be dead after a database restart, so up to the pool's size).
fn checkout(pool: &DbPool) -> Result<PooledConnection<pool::Manager>, diesel::r2d2::PoolError> {
    let mut tries = 0;
    loop {
        let mut conn = pool.get()?;
        tries += 1;
        if pool::usable(&mut conn) || tries > pool.max_size() {
            return Ok(conn);
        }
    }
}

/// Creates the database named in `url` if it does not exist, then applies every pending
/// migration under a lock row, so instances starting together migrate once — on one server
/// or on every node of a Galera cluster (see `migration_lock`). Returns the versions applied.
///
/// # Errors
/// When the server is unreachable or a migration fails.
pub fn migrate(url: &str) -> anyhow::Result<Vec<String>> {
    let mut conn = establish_creating_database(url)?;
    let lock = migration_lock::acquire(&mut conn, url)?;
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(ToString::to_string).collect())
        .map_err(|e| anyhow!("applying migrations: {e}"));
    lock.release(&mut conn);
    applied
}

fn establish_creating_database(url: &str) -> anyhow::Result<Conn> {
    match Conn::establish(url) {
        Ok(conn) => Ok(conn),
        Err(error) if error.to_string().contains("Unknown database") => {
            let (server, database) = split_database(url)
                .ok_or_else(|| anyhow!("DATABASE_URL names no database: {}", redact(url)))?;
            let mut conn = Conn::establish(server)
                .with_context(|| format!("connecting to {}", redact(server)))?;
            conn.batch_execute(&format!(
                "CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            ))
            .with_context(|| format!("creating database {database}"))?;
            tracing::info!(database, "created the database");
            Conn::establish(url).with_context(|| format!("connecting to {}", redact(url)))
        }
        Err(error) => Err(anyhow!("connecting to {}: {error}", redact(url))),
    }
}

/// `mysql://u:p@host:3306/db?x=y` → (`mysql://u:p@host:3306`, `db`), when the name is plain.
fn split_database(url: &str) -> Option<(&str, &str)> {
    let without_query = url.split('?').next()?;
    let (server, database) = without_query.rsplit_once('/')?;
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '_';
    (server.contains("://")
        && !server.ends_with('/')
        && !database.is_empty()
        && database.chars().all(plain))
    .then_some((server, database))
}

/// The URL with its password hidden, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_split_off_plain_urls_only() {
        assert_eq!(
            split_database("mysql://root@127.0.0.1:3306/mall"),
            Some(("mysql://root@127.0.0.1:3306", "mall"))
        );
        assert_eq!(split_database("mysql://u:p@h/db_1?ssl=false"), Some(("mysql://u:p@h", "db_1")));
        assert_eq!(split_database("mysql://root@127.0.0.1:3306/"), None);
        assert_eq!(split_database("mysql://h/bad`name"), None);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("mysql://u:secret@h:3306/db"), "mysql://u:***@h:3306/db");
        assert_eq!(redact("mysql://root@h/db"), "mysql://root@h/db");
    }
}
