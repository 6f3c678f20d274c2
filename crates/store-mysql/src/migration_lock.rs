//! One migrator at a time across every server of the database, a Galera cluster included.
//!
//! `GET_LOCK` is held per server: on Galera, three instances starting together on three nodes
//! would each get it and run the same DDL (two then fail with `Table … already exists`). So the
//! lock is a row instead, which replicates and certifies like any other: whoever inserts row 1
//! of `__mall_migration_lock` migrates, the others see a duplicate key (or, on Galera, lose the
//! certification of their insert: a deadlock error) and wait for the row to go. The holder
//! renews a short lease while it works, so a migrator that died is taken over after the lease.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use chrono::{NaiveDateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::sql_types::{Datetime, Text};
use diesel::{Connection, RunQueryDsl};

use crate::Conn;

/// The lease a holder keeps renewing; a lock row older than this is a dead migrator's.
const LEASE: Duration = Duration::from_secs(30);
/// How often the holder renews its lease.
const RENEW: Duration = Duration::from_secs(5);
/// How long an instance waits for another one's migrations before giving up.
const WAIT: Duration = Duration::from_secs(300);

const CREATE: &str = "CREATE TABLE IF NOT EXISTS __mall_migration_lock (\
    id TINYINT NOT NULL PRIMARY KEY, \
    holder VARCHAR(64) NOT NULL, \
    expires_at DATETIME(6) NOT NULL) ENGINE=InnoDB";

fn lease_end() -> NaiveDateTime {
    (Utc::now() + LEASE).naive_utc()
}

/// The lock while it is held: renewed in the background, released on [`Held::release`] (or,
/// if the process dies, taken over by another instance once the lease has run out).
pub(crate) struct Held {
    holder: String,
    stop: mpsc::Sender<()>,
    renewer: thread::JoinHandle<()>,
}

/// Waits for the lock and takes it. `url` is used for the renewing connection.
pub(crate) fn acquire(conn: &mut Conn, url: &str) -> anyhow::Result<Held> {
    conn.batch_execute(CREATE).context("creating the migration lock table")?;
    // Unique enough among instances starting together: process id and the start instant.
    let holder =
        format!("{}-{}", std::process::id(), Utc::now().timestamp_nanos_opt().unwrap_or_default());
    let started = Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        // A lock whose lease ran out belongs to a migrator that died: take it over.
        // On Galera this can lose to another node's insert or delete at certification (a
        // deadlock error): then the lock is being taken elsewhere, and the insert below says so.
        let cleared =
            diesel::sql_query("DELETE FROM __mall_migration_lock WHERE id = 1 AND expires_at < ?")
                .bind::<Datetime, _>(Utc::now().naive_utc())
                .execute(conn);
        if let Err(error) = cleared {
            if !held_elsewhere(&error) {
                return Err(anyhow!(error).context("clearing a stale migration lock"));
            }
        }
        let taken = diesel::sql_query(
            "INSERT INTO __mall_migration_lock (id, holder, expires_at) VALUES (1, ?, ?)",
        )
        .bind::<Text, _>(&holder)
        .bind::<Datetime, _>(lease_end())
        .execute(conn);
        match taken {
            Ok(_) => break,
            // Held by another instance (a duplicate key), or lost to another node's insert in
            // Galera's certification (a deadlock error): wait for it to finish.
            Err(error) if held_elsewhere(&error) => {
                if started.elapsed() > WAIT {
                    return Err(anyhow!(
                        "another instance held the migration lock for {} s",
                        WAIT.as_secs()
                    ));
                }
                tracing::debug!(%error, "waiting for another instance's migrations");
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            Err(error) => return Err(anyhow!(error).context("taking the migration lock")),
        }
    }
    let (stop, stopped) = mpsc::channel();
    let renewer = {
        let (url, holder) = (url.to_owned(), holder.clone());
        thread::spawn(move || renew(&url, &holder, &stopped))
    };
    Ok(Held { holder, stop, renewer })
}

fn held_elsewhere(error: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match error {
        Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => true,
        Error::DatabaseError(_, info) => {
            let message = info.message();
            message.contains("Deadlock found") || message.contains("WSREP")
        }
        _ => false,
    }
}

/// Pushes the lease forward every [`RENEW`] until told to stop.
fn renew(url: &str, holder: &str, stopped: &mpsc::Receiver<()>) {
    let mut conn = None;
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(RENEW) {
        if conn.is_none() {
            conn = Conn::establish(url).ok();
        }
        let Some(c) = conn.as_mut() else { continue };
        let renewed =
            diesel::sql_query("UPDATE __mall_migration_lock SET expires_at = ? WHERE holder = ?")
                .bind::<Datetime, _>(lease_end())
                .bind::<Text, _>(holder)
                .execute(c);
        if let Err(error) = renewed {
            tracing::warn!(%error, "could not renew the migration lock's lease");
            conn = None;
        }
    }
}

impl Held {
    /// Stops renewing and deletes the lock row.
    pub(crate) fn release(self, conn: &mut Conn) {
        let _ = self.stop.send(());
        let _ = self.renewer.join();
        let released = diesel::sql_query("DELETE FROM __mall_migration_lock WHERE holder = ?")
            .bind::<Text, _>(&self.holder)
            .execute(conn);
        if let Err(error) = released {
            tracing::warn!(%error, "could not release the migration lock; it lapses with its lease");
        }
    }
}
