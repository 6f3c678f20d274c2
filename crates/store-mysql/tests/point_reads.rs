//! Coalesced point reads: concurrent product and balance reads share `SELECT … WHERE id IN (…)`
//! rounds, each answer is its own row's, and a read that starts after a write has committed
//! sees that write even while other rounds are in flight (no cache). Each runs with one round of
//! a kind at a time (the default) and with two (`StoreOptions::pipeline`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use domain::model::ProductEdit;
use domain::ports::{ProductRepository, UserRepository};
use domain::values::{Count, ProductId};
use store_contract::support::{available, balance, points, product_with, uid, user_with};
use store_mysql::testing::fresh_store_with_options;
use store_mysql::{MysqlStore, PoolOptions, StoreOptions};
use tokio::task::JoinSet;

const POOL: PoolOptions = PoolOptions {
    size: 4,
    checkout_timeout: Duration::from_secs(10),
    statement_timeout: Duration::from_secs(10),
};

/// Fresh stores with one read round of a kind at a time, and with two.
async fn stores() -> [Arc<MysqlStore>; 2] {
    let depth = |pipeline| StoreOptions { pipeline, ..StoreOptions::default() };
    let one = fresh_store_with_options(POOL, depth(1)).await.0;
    let two = fresh_store_with_options(POOL, depth(2)).await.0;
    [Arc::new(one), Arc::new(two)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reads_share_rounds_and_each_gets_its_own_row() {
    for store in stores().await {
        reads_share_rounds(store).await;
    }
}

async fn reads_share_rounds(store: Arc<MysqlStore>) {
    let mut products = Vec::new();
    for i in 1..=20 {
        products.push((product_with(&store, i, 1_000 + i).await, 1_000 + i));
    }
    let mut users = Vec::new();
    for i in 1..=20 {
        users.push((user_with(&store, &format!("user{i}"), 100 * i).await, 100 * i));
    }
    let (product_rounds, balance_rounds) =
        (store.product_read_stats().rounds(), store.balance_read_stats().rounds());

    let mut tasks = JoinSet::new();
    for n in 0..1_000 {
        let store = store.clone();
        let (product, stock) = products[n % products.len()];
        let (user, points) = users[n % users.len()].clone();
        tasks.spawn(async move {
            assert_eq!(available(&store, product).await, stock, "product {product}");
            assert_eq!(balance(&store, &user).await, points, "user {user}");
            let missing = ProductId::new(1_000_000 + n as i64).expect("an id");
            assert!(store.product(missing).await.expect("a read").is_none());
            assert!(store.balance(uid(&format!("nobody{n}"))).await.expect("a read").is_none());
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("every read answered its own row");
    }
    let (products, balances) = (store.product_read_stats(), store.balance_read_stats());
    let rounds = products.rounds() - product_rounds;
    assert!(rounds < 2_000, "2 000 product reads in {rounds} rounds: {products:?}");
    let rounds = balances.rounds() - balance_rounds;
    assert!(rounds < 2_000, "2 000 balance reads in {rounds} rounds: {balances:?}");
    assert!(products.largest() > 1 && balances.largest() > 1, "{products:?} {balances:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_after_a_committed_write_sees_it_while_rounds_keep_running() {
    for store in stores().await {
        read_after_write(store).await;
    }
}

async fn read_after_write(store: Arc<MysqlStore>) {
    let alice = user_with(&store, "alice", 0).await;
    let bob = user_with(&store, "bob", 5).await;
    let tea = product_with(&store, 1, 1).await;

    // Other readers keep rounds of both kinds in flight the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let mut noise = JoinSet::new();
    for _ in 0..16 {
        let (store, stop, bob) = (store.clone(), stop.clone(), bob.clone());
        noise.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                assert_eq!(balance(&store, &bob).await, 5);
                assert!(available(&store, tea).await >= 1);
            }
        });
    }
    for i in 1..=100 {
        store.charge(alice.clone(), points(1), None).await.expect("a charge");
        assert_eq!(balance(&store, &alice).await, i, "the read after charge {i}");
        let restock =
            ProductEdit { restock: Some(Count::new(1).expect("1")), ..Default::default() };
        store.edit(tea, restock).await.expect("a restock");
        assert_eq!(available(&store, tea).await, 1 + i, "the read after restock {i}");
    }
    stop.store(true, Ordering::Relaxed);
    while let Some(done) = noise.join_next().await {
        done.expect("the other readers saw bob's balance and the tea");
    }
}
