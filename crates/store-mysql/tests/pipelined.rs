//! Pipelined batches (`MALL_DB_PIPELINE=2`, ADR 0011): two batches of a kind, and two read
//! rounds of a kind, may be in the database at once. The store still passes the whole
//! persistence contract, its concurrent scenarios included, and a hot product's row passes
//! from one order batch to the next without any order being put off.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use store_contract::support::{available, form, place, product_with, t0, user_with};
use store_mysql::testing::fresh_store_with_options;
use store_mysql::{MysqlStore, PoolOptions, StoreOptions};
use tokio::task::JoinSet;

const POOL: PoolOptions = PoolOptions {
    size: 8,
    checkout_timeout: Duration::from_secs(30),
    statement_timeout: Duration::from_secs(30),
};

const PIPELINED: StoreOptions = StoreOptions { group_commit: true, pipeline: 2 };

const TTL: TimeDelta = TimeDelta::seconds(600);

async fn pipelined_store() -> MysqlStore {
    fresh_store_with_options(POOL, PIPELINED).await.0
}

store_contract::store_contract!(|clock| async move {
    Arc::new(pipelined_store().await.with_clock(clock))
});

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pipelined_order_batches_hand_a_hot_row_on_and_keep_the_stock_exact() {
    const CLIENTS: usize = 32;
    const ORDERS_EACH: usize = 40;
    const STOCK: i64 = 1_000_000;
    let store = Arc::new(pipelined_store().await);
    let hot = product_with(&store, 1, STOCK).await;
    let mut buyers = Vec::new();
    for i in 0..CLIENTS {
        buyers.push(user_with(&store, &format!("p{i}"), 1_000).await);
    }

    // Each client orders again as soon as it is answered (each order replaces its previous
    // form), so batches follow each other closely and two are often in the database at once.
    let mut clients = JoinSet::new();
    for (i, user) in buyers.into_iter().enumerate() {
        let store = store.clone();
        clients.spawn(async move {
            for n in 0..ORDERS_EACH {
                let order = form(&user, &format!("c{i}-{n}"), &[(hot, 1, 1)], t0(), TTL);
                place(&store, order, None).await.expect("stock and points suffice");
            }
        });
    }
    while let Some(done) = clients.join_next().await {
        done.expect("client");
    }

    let orders = store.order_batch_stats();
    assert_eq!(orders.calls(), (CLIENTS * ORDERS_EACH) as u64, "{orders:?}");
    assert_eq!(orders.most_in_flight(), 2, "two order batches at once: {orders:?}");
    // A batch that found the hot row held by the other batch of its kind waited for it (the
    // row is free once that short transaction commits) instead of putting its orders off.
    assert_eq!(orders.deferred(), 0, "no order went to the slow lane: {orders:?}");
    assert_eq!(
        available(&store, hot).await,
        STOCK - CLIENTS as i64,
        "only each client's last form holds a unit; every replaced one gave its unit back"
    );
}
