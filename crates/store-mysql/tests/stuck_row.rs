//! One stuck row must not fail its neighbours. Another session holds a product row with
//! `SELECT … FOR UPDATE` (an operator's open transaction, a long report): orders and payments
//! for other products keep being answered at their usual latency, in several batches, while
//! the calls that need the held row wait at most the lock wait and then answer `Unexpected` with
//! nothing applied (stock, balance, form and idempotency key as they were) — or succeed, when
//! the row is let go before their wait ends.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use domain::errors::{PayError, PlaceOrderError};
use domain::idempotency::{IdempotencyKey, Remember};
use domain::ports::{IdempotencyStore, PaymentRepository};
use domain::values::{ProductId, UserId};
use store_contract::support::{
    available, balance, form, pending_id, place, plan, product_with, secs, t0, user_with,
};
use store_mysql::testing::fresh_store_with_url;
use store_mysql::{MysqlStore, PoolOptions};
use tokio::task::JoinSet;

/// A 4 s statement limit makes the lock wait 2 s: long enough that a call which waited on the
/// held row could not look fast, short enough for a quick test.
const POOL: PoolOptions = PoolOptions {
    size: 6,
    checkout_timeout: Duration::from_secs(10),
    statement_timeout: Duration::from_secs(4),
};
/// What "answered at the usual latency" means here: far below the 2 s lock wait.
const QUICK: Duration = Duration::from_secs(1);
const TTL: TimeDelta = TimeDelta::seconds(600);
const WAVES: usize = 6;
const PER_WAVE: usize = 8;

/// A session of someone else's that holds one product row until told to let go.
struct ForeignLock {
    release: mpsc::Sender<()>,
    done: std::thread::JoinHandle<()>,
}

impl ForeignLock {
    fn hold(url: &str, product: ProductId) -> Self {
        let url = url.to_owned();
        let (locked_tx, locked_rx) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let done = std::thread::spawn(move || {
            let mut conn = MysqlConnection::establish(&url).expect("connect");
            conn.batch_execute("BEGIN").expect("begin");
            #[derive(QueryableByName)]
            struct Id {
                #[diesel(sql_type = BigInt)]
                #[allow(dead_code)]
                id: i64,
            }
            let rows: Vec<Id> = diesel::sql_query(format!(
                "SELECT id FROM products WHERE id = {product} FOR UPDATE"
            ))
            .load(&mut conn)
            .expect("lock the product row");
            assert_eq!(rows.len(), 1);
            locked_tx.send(()).expect("report the lock");
            let _ = release_rx.recv_timeout(Duration::from_secs(30));
            conn.batch_execute("ROLLBACK").expect("rollback");
        });
        locked_rx.recv_timeout(Duration::from_secs(10)).expect("the row is locked");
        Self { release, done }
    }

    fn release(self) {
        let _ = self.release.send(());
        self.done.join().expect("the lock holder");
    }
}

fn key(user: &UserId, name: &str) -> Option<Remember> {
    let key = IdempotencyKey::new(user.clone(), name, format!("fp-{name}")).expect("key");
    Some(Remember { key, at: t0(), expires_at: t0() + TimeDelta::hours(24) })
}

/// (available, reserved) of a product, read by the test itself.
fn stock(url: &str, product: ProductId) -> (i64, i64) {
    let mut conn = MysqlConnection::establish(url).expect("connect");
    schema_stock(&mut conn, product.get())
}

fn schema_stock(conn: &mut MysqlConnection, id: i64) -> (i64, i64) {
    use store_mysql::schema::products;
    products::table
        .find(id)
        .select((products::available, products::reserved))
        .first(conn)
        .expect("a product")
}

async fn stock_of(url: &str, product: ProductId) -> (i64, i64) {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || stock(&url, product)).await.expect("task")
}

async fn hold(url: &str, product: ProductId) -> ForeignLock {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || ForeignLock::hold(&url, product)).await.expect("task")
}

async fn release(lock: ForeignLock) {
    tokio::task::spawn_blocking(move || lock.release()).await.expect("task");
}

/// Orders one unit of `product` for each buyer, `PER_WAVE` at a time, a wave every 150 ms
/// (so they fall into several batches); returns the slowest answer. Every one must succeed.
async fn order_in_waves(
    store: &Arc<MysqlStore>,
    buyers: &[UserId],
    product: ProductId,
    tag: &str,
) -> Duration {
    let mut tasks = JoinSet::new();
    for (wave, chunk) in buyers.chunks(PER_WAVE).enumerate() {
        for user in chunk {
            let (store, user) = (store.clone(), user.clone());
            let order = form(&user, &format!("{tag}-{user}"), &[(product, 1, 10)], t0(), TTL);
            tasks.spawn(async move {
                let started = Instant::now();
                let placed = place(&store, order, None).await;
                (user, placed.map(|_| ()), started.elapsed())
            });
        }
        if wave + 1 < WAVES {
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
    let mut slowest = Duration::ZERO;
    while let Some(joined) = tasks.join_next().await {
        let (user, placed, took) = joined.expect("task");
        placed.unwrap_or_else(|e| panic!("{user}'s order for a free product failed: {e:?}"));
        assert!(took < QUICK, "{user}'s order for a free product took {took:?}");
        slowest = slowest.max(took);
    }
    slowest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_held_product_row_fails_only_the_calls_that_need_it() {
    let (store, url) = fresh_store_with_url(POOL).await;
    let store = Arc::new(store);
    let held = product_with(&store, 10, 100).await;
    let free = product_with(&store, 10, 10_000).await;
    let stuck = user_with(&store, "stuck", 1_000).await;
    let mut buyers = Vec::new();
    for i in 0..WAVES * PER_WAVE {
        buyers.push(user_with(&store, &format!("b{i}"), 1_000).await);
    }
    let batches_before = store.order_batch_stats().batches();

    // 1. The row is held past the lock wait: the order that needs it answers Unexpected, after
    //    about the lock wait; orders for the free product, in the same first batch and in the
    //    waves after it, are answered quickly all along.
    let lock = hold(&url, held).await;
    let stuck_order = {
        let (store, stuck) = (store.clone(), stuck.clone());
        tokio::spawn(async move {
            let order = form(&stuck, "stuck-1", &[(held, 2, 10), (free, 1, 10)], t0(), TTL);
            let started = Instant::now();
            (place(&store, order, key(&stuck, "k-order")).await, started.elapsed())
        })
    };
    let slowest = order_in_waves(&store, &buyers, free, "first").await;
    let (outcome, took) = stuck_order.await.expect("task");
    assert!(
        matches!(outcome, Err(PlaceOrderError::Unexpected(_))),
        "the order for the held row: {outcome:?}"
    );
    assert!(took < Duration::from_secs(8), "answered within a few lock waits: {took:?}");
    let batches = store.order_batch_stats().batches() - batches_before;
    assert!(batches >= WAVES as u64, "the free orders ran in several batches: {batches}");
    println!("held row: free orders' slowest answer {slowest:?}; the stuck order {took:?}");
    release(lock).await;

    // Nothing of the stuck order was applied.
    assert_eq!(stock_of(&url, held).await, (100, 0));
    let free_sold = (WAVES * PER_WAVE) as i64;
    assert_eq!(stock_of(&url, free).await, (10_000 - free_sold, free_sold));
    assert_eq!(pending_id(&store, &stuck, t0()).await, None);
    let kept = store.recall(stuck.clone(), "k-order".to_owned(), t0()).await.expect("recall");
    assert!(kept.is_none(), "the stuck order's key is not kept: {kept:?}");

    // 2. Let go before the lock wait ends: the order that needed the row succeeds.
    let lock = hold(&url, held).await;
    let retried = {
        let (store, stuck) = (store.clone(), stuck.clone());
        tokio::spawn(async move {
            let order = form(&stuck, "stuck-2", &[(held, 2, 10), (free, 1, 10)], t0(), TTL);
            place(&store, order, key(&stuck, "k-order")).await
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    release(lock).await;
    retried.await.expect("task").expect("the order succeeds once the row is let go");
    assert_eq!(stock_of(&url, held).await, (98, 2));

    // 3. Payments: the stuck user's form needs the held row; the buyers' forms do not.
    let lock = hold(&url, held).await;
    let stuck_pay = {
        let (store, stuck) = (store.clone(), stuck.clone());
        tokio::spawn(async move {
            let order = form(&stuck, "stuck-2", &[(held, 2, 10), (free, 1, 10)], t0(), TTL);
            let the_plan = plan(&order, t0() + secs(1));
            store.commit_payment(the_plan, key(&stuck, "k-pay")).await
        })
    };
    let mut pays = JoinSet::new();
    for (wave, chunk) in buyers.chunks(PER_WAVE).enumerate() {
        for user in chunk {
            let (store, user) = (store.clone(), user.clone());
            let order = form(&user, &format!("first-{user}"), &[(free, 1, 10)], t0(), TTL);
            pays.spawn(async move {
                let started = Instant::now();
                let paid = store.commit_payment(plan(&order, t0() + secs(1)), None).await;
                (user, paid.map(|r| r.balance.get()), started.elapsed())
            });
        }
        if wave + 1 < WAVES {
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
    while let Some(joined) = pays.join_next().await {
        let (user, paid, took) = joined.expect("task");
        assert_eq!(paid.expect("a payment of a free product's form"), 990, "{user}");
        assert!(took < QUICK, "{user}'s payment took {took:?}");
    }
    let outcome = stuck_pay.await.expect("task");
    assert!(matches!(outcome, Err(PayError::Unexpected(_))), "the stuck payment: {outcome:?}");
    release(lock).await;
    assert_eq!(balance(&store, &stuck).await, 1_000, "nothing debited");
    assert_eq!(pending_id(&store, &stuck, t0()).await.as_deref(), Some("stuck-2"));
    assert_eq!(stock_of(&url, held).await, (98, 2), "the units stay reserved");
    let kept = store.recall(stuck.clone(), "k-pay".to_owned(), t0()).await.expect("recall");
    assert!(kept.is_none(), "the stuck payment's key is not kept: {kept:?}");

    // 4. Released: the payment goes through.
    let order = form(&stuck, "stuck-2", &[(held, 2, 10), (free, 1, 10)], t0(), TTL);
    let receipt = store.commit_payment(plan(&order, t0() + secs(2)), key(&stuck, "k-pay")).await;
    assert_eq!(receipt.expect("the payment after release").balance.get(), 970);
    assert_eq!(stock_of(&url, held).await, (98, 0));
    assert_eq!(available(&store, free).await, 10_000 - free_sold - 1);
}
