//! The pool does not ping before every checkout, so it must still get rid of connections the
//! server dropped: an idle one is pinged and replaced before use, and a busy one that fails is
//! discarded rather than handed out again.

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use domain::ports::UserRepository;
use domain::values::UserId;
use store_mysql::testing::fresh_store_with_url;
use store_mysql::PoolOptions;

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Kills every server connection that has `url`'s database selected, except the killer's own.
fn kill_connections_of(url: &str) -> usize {
    let database = url.rsplit('/').next().expect("a database name").to_owned();
    let mut admin = MysqlConnection::establish(url).expect("connect");
    let ids: Vec<Id> = diesel::sql_query(
        "SELECT id FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()",
    )
    .bind::<Text, _>(database)
    .load(&mut admin)
    .expect("processlist");
    for Id { id } in &ids {
        let _ = diesel::sql_query(format!("KILL {id}")).execute(&mut admin);
    }
    ids.len()
}

async fn kill(url: &str) -> usize {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || kill_connections_of(&url)).await.expect("task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_replaced_not_reused() {
    let options = PoolOptions {
        size: 3,
        checkout_timeout: Duration::from_secs(5),
        statement_timeout: Duration::from_secs(5),
    };
    let (store, url) = fresh_store_with_url(options).await;
    let alice = UserId::parse("alice").expect("id");
    store.register(alice.clone()).await.expect("register");

    // Idle: every connection is checked before use, so nobody sees the kill.
    assert!(kill(&url).await >= 1, "the pool had connections to kill");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    for _ in 0..10 {
        store.balance(alice.clone()).await.expect("an idle dropped connection is replaced first");
    }

    // Busy: a connection used a moment ago is not pinged, so it may fail once — and then it is
    // gone from the pool: at most one failure per pooled connection.
    assert!(kill(&url).await >= 1);
    let mut failures = 0;
    for _ in 0..20 {
        if store.balance(alice.clone()).await.is_err() {
            failures += 1;
        }
    }
    assert!(failures <= 3, "{failures} failures: a dropped connection was handed out again");
    store.balance(alice).await.expect("the pool has recovered");
}
