//! Group commit off (`MALL_DB_GROUP_COMMIT=off`, the naive baseline `mall-bench` measures):
//! each order, payment and charge runs alone in its own transaction, and the store still passes
//! the whole persistence contract, its concurrent scenarios included.

use std::sync::Arc;
use std::time::Duration;

use domain::ports::UserRepository;
use store_contract::support::{balance, points, user_with};
use store_mysql::testing::fresh_store_with_options;
use store_mysql::{MysqlStore, PoolOptions, StoreOptions};
use tokio::task::JoinSet;

const POOL: PoolOptions = PoolOptions {
    size: 16,
    checkout_timeout: Duration::from_secs(10),
    statement_timeout: Duration::from_secs(10),
};

const NAIVE: StoreOptions = StoreOptions { group_commit: false, pipeline: 1 };

async fn naive_store() -> MysqlStore {
    fresh_store_with_options(POOL, NAIVE).await.0
}

store_contract::store_contract!(
    |clock| async move { Arc::new(naive_store().await.with_clock(clock)) }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_group_commit_every_call_has_a_transaction_of_its_own() {
    let store = Arc::new(naive_store().await);
    let alice = user_with(&store, "alice", 0).await;
    let mut tasks = JoinSet::new();
    for _ in 0..200 {
        let (store, alice) = (store.clone(), alice.clone());
        tasks.spawn(async move { store.charge(alice, points(1), None).await.expect("a charge") });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("task");
    }
    assert_eq!(balance(&store, &alice).await, 200, "no charge lost");
    let stats = store.charge_batch_stats();
    assert_eq!((stats.calls(), stats.batches(), stats.largest()), (200, 200, 1), "{stats:?}");
}
