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
use domain::ports::{IdempotencyStore, OrderRepository, PaymentRepository, UserRepository};
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
        Self::hold_row(url, format!("SELECT id FROM products WHERE id = {product} FOR UPDATE"))
    }

    /// Runs `locking_read` (which must return one row) in a transaction kept open, in READ
    /// COMMITTED: the row alone is held (in REPEATABLE READ a locking read of a secondary index
    /// also locks the gap before the row, which would hold up other users' new forms too).
    fn hold_row(url: &str, locking_read: String) -> Self {
        let url = url.to_owned();
        let (locked_tx, locked_rx) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let done = std::thread::spawn(move || {
            let mut conn = MysqlConnection::establish(&url).expect("connect");
            conn.batch_execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; BEGIN")
                .expect("begin");
            #[derive(QueryableByName)]
            struct One {
                #[diesel(sql_type = BigInt)]
                #[allow(dead_code)]
                one: i64,
            }
            let rows: Vec<One> =
                diesel::sql_query(locking_read.replacen("SELECT id", "SELECT 1 AS one", 1))
                    .load(&mut conn)
                    .expect("lock the row");
            assert_eq!(rows.len(), 1, "{locking_read}");
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

/// A users table of a realistic size: on a table of a few rows MariaDB reads a batch's users by
/// scanning the whole index, and a locking scan waits on every held row it passes.
async fn filler_users(url: &str) {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let rows: Vec<String> = (0..500).map(|i| format!("('filler{i}', 0)")).collect();
        let mut conn = MysqlConnection::establish(&url).expect("connect");
        conn.batch_execute(&format!(
            "INSERT INTO users (id, balance) VALUES {}; ANALYZE TABLE users",
            rows.join(",")
        ))
        .expect("filler users");
    })
    .await
    .expect("task");
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

    // 3. Payments: the stuck user's form needs the held row; the buyers' forms do not. A payment
    //    naming another form than the pending one sells nothing: refused at once (code 5), not
    //    put off to wait for the row its user's form holds.
    let lock = hold(&url, held).await;
    let wrong = form(&stuck, "not-stuck-2", &[(held, 2, 10), (free, 1, 10)], t0(), TTL);
    let started = Instant::now();
    let refused = store.commit_payment(plan(&wrong, t0() + secs(1)), None).await;
    let took = started.elapsed();
    assert!(matches!(refused, Err(PayError::NoPendingOrder)), "another form: {refused:?}");
    assert!(took < QUICK, "refused without waiting for the held row: {took:?}");
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

/// A user row held elsewhere: charges to other users are answered at their usual latency
/// (charges skip held user rows too); orders of other users at most one lock wait late (the
/// main lane waits for user rows, then puts the held user's calls aside and runs the others
/// again). The held user's calls answer `Unexpected`, with nothing applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_held_user_row_fails_only_that_users_calls() {
    let (store, url) = fresh_store_with_url(POOL).await;
    let store = Arc::new(store);
    let tea = product_with(&store, 10, 1_000).await;
    let stuck = user_with(&store, "stuck", 1_000).await;
    let mut others = Vec::new();
    for i in 0..8 {
        others.push(user_with(&store, &format!("o{i}"), 1_000).await);
    }
    filler_users(&url).await;
    let lock = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            ForeignLock::hold_row(&url, "SELECT id FROM users WHERE id = 'stuck' FOR UPDATE".into())
        }
    })
    .await
    .expect("task");

    // Charges, all at once.
    let mut charges = JoinSet::new();
    for user in std::iter::once(&stuck).chain(&others) {
        let (store, user) = (store.clone(), user.clone());
        charges.spawn(async move {
            let started = Instant::now();
            let amount = domain::values::Points::new(5).expect("points");
            let charged = store.charge(user.clone(), amount, None);
            (user, charged.await, started.elapsed())
        });
    }
    while let Some(joined) = charges.join_next().await {
        let (user, charged, took) = joined.expect("task");
        if user == stuck {
            assert!(
                matches!(charged, Err(domain::errors::ChargeError::Unexpected(_))),
                "{charged:?}"
            );
        } else {
            assert_eq!(charged.expect("a charge to a free user").get(), 1_005);
            assert!(took < QUICK, "{user}'s charge took {took:?}");
        }
    }

    // Orders, all at once, in one batch: a first order keeps the lane busy (its user row is
    // held a moment) while the others queue behind it.
    let gate = user_with(&store, "gate", 1_000).await;
    let gate_lock = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            ForeignLock::hold_row(&url, "SELECT id FROM users WHERE id = 'gate' FOR UPDATE".into())
        }
    })
    .await
    .expect("task");
    let first = {
        let (store, gate) = (store.clone(), gate.clone());
        let order = form(&gate, "order-gate", &[(tea, 1, 10)], t0(), TTL);
        tokio::spawn(async move { place(&store, order, None).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let deferred_before = store.order_batch_stats().deferred();
    let mut orders = JoinSet::new();
    for user in std::iter::once(&stuck).chain(&others) {
        let (store, user) = (store.clone(), user.clone());
        let order = form(&user, &format!("order-{user}"), &[(tea, 1, 10)], t0(), TTL);
        orders.spawn(async move {
            let started = Instant::now();
            let placed = place(&store, order, key(&user, "k")).await;
            (user, placed, started.elapsed())
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    release(gate_lock).await;
    first.await.expect("task").expect("the first order");
    while let Some(joined) = orders.join_next().await {
        let (user, placed, took) = joined.expect("task");
        if user == stuck {
            assert!(matches!(placed, Err(PlaceOrderError::Unexpected(_))), "{placed:?}");
        } else {
            placed.unwrap_or_else(|e| panic!("{user}'s order failed: {e:?}"));
            assert!(took < Duration::from_secs(3), "{user}'s order took {took:?}");
        }
    }
    release(lock).await;
    assert_eq!(
        store.order_batch_stats().deferred() - deferred_before,
        1,
        "the held user's order was put aside, the others ran again at once"
    );

    assert_eq!(balance(&store, &stuck).await, 1_000);
    assert_eq!(pending_id(&store, &stuck, t0()).await, None);
    let kept = store.recall(stuck.clone(), "k".to_owned(), t0()).await.expect("recall");
    assert!(kept.is_none(), "{kept:?}");
    assert_eq!(stock_of(&url, tea).await, (991, 9));
    let order = form(&stuck, "order-stuck", &[(tea, 1, 10)], t0(), TTL);
    place(&store, order, key(&stuck, "k")).await.expect("the order once the row is let go");
}

/// A held row the batch cannot name (here a pending form row, which the main lane must not
/// skip): the batch fails on the lock wait, its calls go to the slow lane, and the slow lane
/// halves them until the call that needs the row is alone. The others succeed; that one answers
/// `Unexpected` with nothing applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_held_row_no_call_names_is_found_by_halving_the_batch() {
    let (store, url) = fresh_store_with_url(POOL).await;
    let store = Arc::new(store);
    let tea = product_with(&store, 10, 1_000).await;
    let stuck = user_with(&store, "stuck", 1_000).await;
    let earlier = form(&stuck, "earlier", &[(tea, 1, 10)], t0(), TTL);
    place(&store, earlier, None).await.expect("a pending form");
    let mut others = Vec::new();
    for i in 0..3 {
        others.push(user_with(&store, &format!("o{i}"), 1_000).await);
    }
    let gate = user_with(&store, "gate", 1_000).await;
    filler_users(&url).await;
    let lock = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            ForeignLock::hold_row(
                &url,
                "SELECT id FROM order_forms WHERE pending_user = 'stuck' FOR UPDATE".into(),
            )
        }
    })
    .await
    .expect("task");
    let gate_lock = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            ForeignLock::hold_row(&url, "SELECT id FROM users WHERE id = 'gate' FOR UPDATE".into())
        }
    })
    .await
    .expect("task");
    let first = {
        let (store, gate) = (store.clone(), gate.clone());
        let order = form(&gate, "order-gate", &[(tea, 1, 10)], t0(), TTL);
        tokio::spawn(async move { place(&store, order, None).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let splits_before = store.order_batch_stats().splits();
    let mut orders = JoinSet::new();
    for user in std::iter::once(&stuck).chain(&others) {
        let (store, user) = (store.clone(), user.clone());
        let order = form(&user, &format!("order-{user}"), &[(tea, 2, 10)], t0(), TTL);
        orders.spawn(async move {
            let started = Instant::now();
            let placed = place(&store, order, key(&user, "k")).await;
            (user, placed, started.elapsed())
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    release(gate_lock).await;
    first.await.expect("task").expect("the first order");
    while let Some(joined) = orders.join_next().await {
        let (user, placed, took) = joined.expect("task");
        println!("{user}: {:?} after {took:?}", placed.as_ref().map(|o| o.id.to_string()));
        if user == stuck {
            assert!(matches!(placed, Err(PlaceOrderError::Unexpected(_))), "{placed:?}");
        } else {
            placed.unwrap_or_else(|e| panic!("{user}'s order failed: {e:?}"));
            assert!(took < Duration::from_secs(8), "{user}'s order took {took:?}");
        }
    }
    release(lock).await;
    assert!(store.order_batch_stats().splits() > splits_before, "the batch was halved");
    assert_eq!(pending_id(&store, &stuck, t0()).await.as_deref(), Some("earlier"));
    let kept = store.recall(stuck.clone(), "k".to_owned(), t0()).await.expect("recall");
    assert!(kept.is_none(), "{kept:?}");
    // 1 (earlier) + 1 (gate) + 2 × 3 (the others).
    assert_eq!(stock_of(&url, tea).await, (992, 8));
}

/// The expiry sweep skips a due form that holds a product row someone else holds (it expires
/// on a later sweep), and expires the others without waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sweeper_leaves_a_form_on_a_held_product_for_later() {
    let (store, url) = fresh_store_with_url(POOL).await;
    let store = Arc::new(store);
    let held = product_with(&store, 10, 100).await;
    let free = product_with(&store, 10, 100).await;
    let a = user_with(&store, "a", 1_000).await;
    let b = user_with(&store, "b", 1_000).await;
    place(&store, form(&a, "fa", &[(held, 2, 10), (free, 1, 10)], t0(), TTL), None)
        .await
        .expect("a's form");
    place(&store, form(&b, "fb", &[(free, 3, 10)], t0(), TTL), None).await.expect("b's form");

    let lock = hold(&url, held).await;
    let started = Instant::now();
    assert_eq!(store.expire_due(t0() + TTL, 100).await.expect("a sweep"), 1);
    assert!(started.elapsed() < QUICK, "the sweep waited: {:?}", started.elapsed());
    assert_eq!(stock_of(&url, free).await, (99, 1), "b's units are back, a's still held");
    release(lock).await;
    assert_eq!(store.expire_due(t0() + TTL, 100).await.expect("a sweep"), 1);
    assert_eq!(stock_of(&url, held).await, (100, 0));
    assert_eq!(stock_of(&url, free).await, (100, 0));
}
