//! Group commit under a flash sale: 2 000 concurrent orders for 500 units of one product reach
//! the store at once, so they are placed in shared transactions. The sell-out must still be
//! exact, order by order: 500 accepted, 1 500 refused for stock, every reserved unit held by
//! exactly one pending form, idempotency keys kept only for accepted orders; payments sent twice
//! at once pay each form once; and every unsold unit is back once the forms expire. Charges to
//! one user, coalesced the same way, each see their own balance.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::flash_sale::{flash_sale, remember};
use domain::idempotency::Outcome;
use domain::ports::{IdempotencyStore, UserRepository};
use store_contract::support::{t0, user_with};
use store_mysql::testing::fresh_store_with_url;
use store_mysql::PoolOptions;
use tokio::task::JoinSet;

const POOL: PoolOptions = PoolOptions {
    size: 8,
    checkout_timeout: Duration::from_secs(30),
    statement_timeout: Duration::from_secs(30),
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flash_sale_placed_in_shared_transactions_sells_out_exactly() {
    let (store, url) = fresh_store_with_url(POOL).await;
    let store = Arc::new(store);
    flash_sale(vec![store.clone()], &url).await;
    let orders = store.order_batch_stats();
    assert_eq!(orders.most_in_flight(), 1, "one batch at a time by default: {orders:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_charges_of_one_user_in_shared_transactions_each_see_their_own_balance() {
    let store = Arc::new(fresh_store_with_url(POOL).await.0);
    let alice = user_with(&store, "alice", 0).await;
    let charges: i64 = 2_000;

    let mut tasks = JoinSet::new();
    for amount in 1..=charges {
        let (store, alice) = (store.clone(), alice.clone());
        tasks.spawn(async move {
            let key = (amount % 2 == 0).then(|| remember(&alice, amount as usize)).flatten();
            let amount = domain::values::Points::new(amount).expect("points");
            store.charge(alice, amount, key).await.expect("a charge").get()
        });
    }
    let mut seen = Vec::new();
    while let Some(balance) = tasks.join_next().await {
        seen.push(balance.expect("task"));
    }
    seen.sort_unstable();
    seen.dedup();
    let total = charges * (charges + 1) / 2;
    assert_eq!(seen.len(), charges as usize, "every charge saw its own balance after it");
    assert_eq!(seen.last(), Some(&total), "the last charge saw the sum of all");
    assert_eq!(store_contract::support::balance(&store, &alice).await, total, "none lost");
    let stats = store.charge_batch_stats();
    assert!(stats.batches() < stats.calls(), "charges shared transactions: {stats:?}");
    let key = store.recall(alice.clone(), "k2".to_owned(), t0()).await.expect("recall");
    assert!(
        matches!(key, Some(record) if matches!(record.outcome, Outcome::Charged { .. })),
        "a keyed charge keeps its outcome"
    );
}
