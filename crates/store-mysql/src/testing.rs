//! Fresh databases for tests: each test gets its own, named `mall_test_…`, so tests run in
//! parallel without seeing each other. `make test` drops the leftovers of earlier runs.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use diesel::connection::SimpleConnection;
use diesel::{Connection, MysqlConnection};

use crate::{MysqlStore, PoolOptions};

/// The server tests use: `MALL_TEST_DATABASE_URL`, default `mysql://root@127.0.0.1:3306`.
pub fn server_url() -> String {
    std::env::var("MALL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_owned())
}

/// Creates an empty database and returns its URL.
///
/// # Panics
/// Loudly, when the server is unreachable: MySQL tests never skip silently.
pub fn fresh_database_url() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let server = server_url();
    let mut conn = MysqlConnection::establish(&server).unwrap_or_else(|error| {
        panic!(
            "\n\n*** MariaDB is not reachable at {server}: {error}\n\
             *** The MySQL tests need it: run `make db-up` (or start MariaDB yourself), or set\n\
             *** MALL_TEST_DATABASE_URL to a server where root may create databases.\n\n"
        )
    });
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let name = format!(
        "mall_test_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        nanos
    );
    conn.batch_execute(&format!("CREATE DATABASE `{name}`")).expect("create a test database");
    format!("{server}/{name}")
}

/// A migrated store on a fresh database.
///
/// # Panics
/// When MariaDB is unreachable or the migrations fail.
pub async fn fresh_store(options: PoolOptions) -> MysqlStore {
    fresh_store_with_url(options).await.0
}

/// A migrated store on a fresh database, and that database's URL (for a test that also looks
/// at the tables itself).
///
/// # Panics
/// When MariaDB is unreachable or the migrations fail.
pub async fn fresh_store_with_url(options: PoolOptions) -> (MysqlStore, String) {
    tokio::task::spawn_blocking(move || {
        let url = fresh_database_url();
        (MysqlStore::connect(&url, options).expect("a migrated store"), url)
    })
    .await
    .expect("the setup task")
}
