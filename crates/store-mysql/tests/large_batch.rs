//! Batches that touch more rows than one statement may name: MariaDB takes at most 65 535
//! placeholders per prepared statement, and 700 buyers whose pending forms hold 100 products
//! each make a batch lock 70 000 product rows. The locking reads go in chunks (ascending, so
//! the lock order holds), and the writes in statements of bounded size; every call is answered
//! exactly.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use domain::model::Order;
use domain::ports::PaymentRepository;
use domain::values::{ProductId, UserId};
use store_contract::support::{form, place, plan, product_with, secs, t0, uid, user_with};
use store_mysql::testing::fresh_store_with_url;
use store_mysql::{MysqlStore, PoolOptions};
use tokio::task::JoinSet;

const BUYERS: usize = 700;
const LINES: usize = 100;
const TTL: TimeDelta = TimeDelta::seconds(600);
const POOL: PoolOptions = PoolOptions {
    size: 4,
    checkout_timeout: Duration::from_secs(60),
    statement_timeout: Duration::from_secs(60),
};

#[derive(QueryableByName)]
struct Sum {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn sum(url: &str, sql: &str) -> i64 {
    let mut conn = MysqlConnection::establish(url).expect("connect");
    diesel::sql_query(sql).get_result::<Sum>(&mut conn).expect("query").n
}

async fn sum_of(url: &str, sql: &'static str) -> i64 {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || sum(&url, sql)).await.expect("task")
}

/// Products 1..=70 000, one unit of each reserved by a pending form of 100 lines per buyer
/// (`f{i}` of `u{i}`, total 100); every buyer has 1 000 points. Written straight to the tables.
fn seed(url: &str) -> Vec<Order> {
    let mut conn = MysqlConnection::establish(url).expect("connect");
    let at = t0().naive_utc().format("'%Y-%m-%d %H:%M:%S'").to_string();
    let expires = (t0() + TTL).naive_utc().format("'%Y-%m-%d %H:%M:%S'").to_string();
    for chunk in (0..BUYERS * LINES).collect::<Vec<_>>().chunks(10_000) {
        let rows: Vec<String> =
            chunk.iter().map(|i| format!("({}, 'bulk', 1, 0, 1)", i + 1)).collect();
        conn.batch_execute(&format!(
            "INSERT INTO products (id, name, price, available, reserved) VALUES {}",
            rows.join(",")
        ))
        .expect("products");
    }
    let users: Vec<String> = (0..BUYERS).map(|i| format!("('u{i}', 1000)")).collect();
    let forms: Vec<String> = (0..BUYERS)
        .map(|i| format!("('f{i}', 'u{i}', 'u{i}', 'pending', {LINES}, {at}, {expires})"))
        .collect();
    conn.batch_execute(&format!(
        "INSERT INTO users (id, balance) VALUES {}; \
         INSERT INTO order_forms (id, user_id, pending_user, status, total, created_at, \
         expires_at) VALUES {}",
        users.join(","),
        forms.join(",")
    ))
    .expect("users and forms");
    let mut orders = Vec::new();
    for i in 0..BUYERS {
        let lines: Vec<String> =
            (0..LINES).map(|k| format!("('f{i}', {}, 1, 1)", i * LINES + k + 1)).collect();
        conn.batch_execute(&format!(
            "INSERT INTO order_lines (order_id, product_id, count, price) VALUES {}",
            lines.join(",")
        ))
        .expect("lines");
        let lines: Vec<(ProductId, i64, i64)> = (0..LINES)
            .map(|k| (ProductId::new((i * LINES + k + 1) as i64).expect("id"), 1, 1))
            .collect();
        orders.push(form(&uid(&format!("u{i}")), &format!("f{i}"), &lines, t0(), TTL));
    }
    conn.batch_execute("ANALYZE TABLE users, products, order_forms, order_lines").expect("stats");
    orders
}

/// A store seeded as [`seed`] says, a `gate` user with a pending form, and that user's row
/// held by another session until the returned sender is dropped or sent to: the first call of
/// `gate` keeps the lane busy while the buyers' calls queue, so they form one batch.
async fn setup() -> (Arc<MysqlStore>, String, Vec<Order>, Order, std::sync::mpsc::Sender<()>) {
    let (store, url) = fresh_store_with_url(POOL).await;
    let orders = tokio::task::spawn_blocking({
        let url = url.clone();
        move || seed(&url)
    })
    .await
    .expect("seed");
    let store = Arc::new(store);
    let tea = product_with(&store, 1, 10).await;
    let gate = user_with(&store, "gate", 1_000).await;
    let gate_order = form(&gate, "gate-form", &[(tea, 1, 1)], t0(), TTL);
    place(&store, gate_order.clone(), None).await.expect("the gate's form");
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (locked_tx, locked) = std::sync::mpsc::channel();
    let holder_url = url.clone();
    std::thread::spawn(move || {
        let mut conn = MysqlConnection::establish(&holder_url).expect("connect");
        conn.batch_execute(
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; BEGIN; \
             UPDATE users SET balance = balance WHERE id = 'gate'",
        )
        .expect("hold the gate");
        locked_tx.send(()).expect("locked");
        let _ = released.recv_timeout(Duration::from_secs(60));
        conn.batch_execute("ROLLBACK").expect("rollback");
    });
    locked.recv().expect("the gate is held");
    (store, url, orders, gate_order, release)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payment_batch_of_70_000_products_is_locked_in_chunks() {
    let (store, url, orders, gate_order, release) = setup().await;
    let first = {
        let store = store.clone();
        tokio::spawn(
            async move { store.commit_payment(plan(&gate_order, t0() + secs(1)), None).await },
        )
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut pays = JoinSet::new();
    for order in &orders {
        let (store, the_plan) = (store.clone(), plan(order, t0() + secs(1)));
        pays.spawn(async move { store.commit_payment(the_plan, None).await });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = release.send(());
    first.await.expect("task").expect("the gate's payment");
    while let Some(joined) = pays.join_next().await {
        let receipt = joined.expect("task").expect("a payment in the large batch");
        assert_eq!(receipt.balance.get(), 900);
    }
    let largest = store.payment_batch_stats().largest();
    assert!(largest >= BUYERS as u64, "the buyers paid in one batch: largest {largest}");
    assert_eq!(sum_of(&url, "SELECT CAST(SUM(reserved) AS SIGNED) AS n FROM products").await, 0);
    assert_eq!(
        sum_of(&url, "SELECT CAST(SUM(units) AS SIGNED) AS n FROM sales_hourly").await,
        (BUYERS * LINES + 1) as i64
    );
    assert_eq!(sum_of(&url, "SELECT COUNT(*) AS n FROM payments").await, BUYERS as i64 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_batch_replacing_forms_of_70_000_products_is_locked_in_chunks() {
    let (store, url, _, gate_order, release) = setup().await;
    let hot = product_with(&store, 1, 1_000).await;
    let first = {
        let (store, gate) = (store.clone(), gate_order.user_id.clone());
        let order = form(&gate, "gate-again", &[(hot, 1, 1)], t0(), TTL);
        tokio::spawn(async move { place(&store, order, None).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut orders = JoinSet::new();
    for i in 0..BUYERS {
        let store = store.clone();
        let user: UserId = uid(&format!("u{i}"));
        let order = form(&user, &format!("new{i}"), &[(hot, 1, 1)], t0(), TTL);
        orders.spawn(async move { place(&store, order, None).await });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = release.send(());
    first.await.expect("task").expect("the gate's order");
    while let Some(joined) = orders.join_next().await {
        joined.expect("task").expect("an order in the large batch");
    }
    let largest = store.order_batch_stats().largest();
    assert!(largest >= BUYERS as u64, "the buyers ordered in one batch: largest {largest}");
    // Every replaced form gave its units back; the hot product holds one per buyer (and gate).
    assert_eq!(
        sum_of(
            &url,
            "SELECT CAST(SUM(available) AS SIGNED) AS n FROM products WHERE name = 'bulk'"
        )
        .await,
        (BUYERS * LINES) as i64
    );
    assert_eq!(
        sum_of(&url, "SELECT CAST(SUM(reserved) AS SIGNED) AS n FROM products WHERE name = 'bulk'")
            .await,
        0
    );
    assert_eq!(
        sum_of(&url, "SELECT COUNT(*) AS n FROM order_forms WHERE status = 'replaced'").await,
        BUYERS as i64 + 1
    );
}
